"""SwinIR baseline: published sizes, official state-dict names/shapes, any-size input, weights.

Reference facts: JingyunLiang/SwinIR ``models/network_swinir.py`` (commit 6545850f) and the
SwinIR paper (arXiv 2108.10257): classic SwinIR-M 11.8M parameters; lightweight 878K / 886K /
897K for x2 / x3 / x4, which count everything except the relative-position bias tables
(24 blocks x 225 x 6 = 32,400 values), so the module holds 910,152 / 918,267 / 929,628.
"""

from __future__ import annotations

import math
import re

import pytest
import torch

from resyn.models import build_model, load_model, save_model
from resyn.models.official import load_official
from resyn.models.swinir import SwinIR, SwinIRConfig

TINY = dict(embed_dim=12, depths=(2, 2), num_heads=(2, 3), window_size=4, img_size=16)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "preset,scale,expected,published",
    [
        ("swinir-classic", 2, 11_752_487, 11.8e6),
        ("swinir-classic", 4, 11_900_199, 11.9e6),
        ("swinir-light", 2, 910_152, 878e3),
        ("swinir-light", 3, 918_267, 886e3),
        ("swinir-light", 4, 929_628, 897e3),
    ],
)
def test_parameter_counts_match_published(preset, scale, expected, published):
    with torch.device("meta"):  # shapes only: no memory, no slow init
        model = build_model(preset, scale=scale)
    total = n_params(model)
    assert total == expected
    tables = sum(p.numel() for k, p in model.named_parameters() if "bias_table" in k)
    if preset == "swinir-light":  # the paper's light numbers exclude the bias tables
        assert abs((total - tables) - published) < 1e3
    else:
        assert abs(total - published) / published < 0.01


# (name, shape) pairs of the official SwinIR lightweight x2 model (network_swinir.py with
# embed_dim=60, depths=[6]*4, num_heads=[6]*4, window_size=8, img_size=64, mlp_ratio=2).
PUBLISHED_LIGHT_X2 = {
    "conv_first.weight": (60, 3, 3, 3),
    "conv_first.bias": (60,),
    "patch_embed.norm.weight": (60,),
    "patch_embed.norm.bias": (60,),
    "layers.0.residual_group.blocks.0.norm1.weight": (60,),
    "layers.0.residual_group.blocks.0.attn.relative_position_bias_table": (225, 6),
    "layers.0.residual_group.blocks.0.attn.relative_position_index": (64, 64),
    "layers.0.residual_group.blocks.0.attn.qkv.weight": (180, 60),
    "layers.0.residual_group.blocks.0.attn.qkv.bias": (180,),
    "layers.0.residual_group.blocks.0.attn.proj.weight": (60, 60),
    "layers.0.residual_group.blocks.0.norm2.bias": (60,),
    "layers.0.residual_group.blocks.0.mlp.fc1.weight": (120, 60),
    "layers.0.residual_group.blocks.0.mlp.fc2.weight": (60, 120),
    "layers.0.residual_group.blocks.1.attn_mask": (64, 64, 64),
    "layers.3.residual_group.blocks.5.attn_mask": (64, 64, 64),
    "layers.3.residual_group.blocks.5.mlp.fc2.bias": (60,),
    "layers.0.conv.weight": (60, 60, 3, 3),
    "layers.3.conv.bias": (60,),
    "norm.weight": (60,),
    "conv_after_body.weight": (60, 60, 3, 3),
    "upsample.0.weight": (12, 60, 3, 3),
    "upsample.0.bias": (12,),
}
BLOCK_KEYS = {
    "norm1.weight",
    "norm1.bias",
    "attn.relative_position_bias_table",
    "attn.relative_position_index",
    "attn.qkv.weight",
    "attn.qkv.bias",
    "attn.proj.weight",
    "attn.proj.bias",
    "norm2.weight",
    "norm2.bias",
    "mlp.fc1.weight",
    "mlp.fc1.bias",
    "mlp.fc2.weight",
    "mlp.fc2.bias",
}


def test_state_dict_matches_published_light_layout():
    state = build_model("swinir-light", scale=2).state_dict()
    for key, shape in PUBLISHED_LIGHT_X2.items():
        assert key in state, key
        assert tuple(state[key].shape) == shape, key
    pattern = re.compile(r"layers\.(\d)\.residual_group\.blocks\.(\d)\.(.+)")
    per_block: dict[tuple[int, int], set[str]] = {}
    others = set()
    for key in state:
        m = pattern.fullmatch(key)
        if m:
            per_block.setdefault((int(m[1]), int(m[2])), set()).add(m[3])
        else:
            others.add(key)
    assert sorted(per_block) == [(i, j) for i in range(4) for j in range(6)]
    for (_, j), keys in per_block.items():
        assert keys == BLOCK_KEYS | ({"attn_mask"} if j % 2 else set())
    assert others == {
        "conv_first.weight",
        "conv_first.bias",
        "patch_embed.norm.weight",
        "patch_embed.norm.bias",
        "norm.weight",
        "norm.bias",
        "conv_after_body.weight",
        "conv_after_body.bias",
        "upsample.0.weight",
        "upsample.0.bias",
    } | {f"layers.{i}.conv.{p}" for i in range(4) for p in ("weight", "bias")}


@pytest.mark.parametrize(
    "scale,heads",
    [
        (2, ["upsample.0.weight"]),
        (3, ["upsample.0.weight"]),
        (4, ["upsample.0.weight", "upsample.2.weight"]),
    ],
)
def test_classic_head_names(scale, heads):
    model = SwinIR(SwinIRConfig(upscale=scale, upsampler="pixelshuffle", **TINY))
    state = model.state_dict()
    assert state["conv_before_upsample.0.weight"].shape == (64, 12, 3, 3)
    assert state["conv_last.weight"].shape == (3, 64, 3, 3)
    ups = sorted(k for k in state if k.startswith("upsample.") and k.endswith("weight"))
    assert ups == heads
    assert state[heads[0]].shape[0] == (9 if scale == 3 else 4) * 64


def test_relative_position_index_is_the_published_formula():
    idx = build_model("swinir-light", scale=2).state_dict()[
        "layers.0.residual_group.blocks.0.attn.relative_position_index"
    ]
    ws = 8
    for a, b in [(0, 0), (0, 63), (9, 18), (63, 0), (27, 36)]:
        dy, dx = a // ws - b // ws + ws - 1, a % ws - b % ws + ws - 1
        assert idx[a, b] == dy * (2 * ws - 1) + dx


def _fill(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for i, (_, p) in enumerate(model.named_parameters()):
            t = torch.arange(p.numel(), dtype=torch.float64)
            p.copy_((0.1 * torch.sin(0.37 * t + 1.3 * i)).view_as(p))
    return model.eval()


def test_matches_official_network_output():
    # Golden numbers from the official network_swinir.py (commit 6545850f), same weights
    # (parameter i in state-dict order = 0.1 sin(0.37 k + 1.3 i)) and input.
    model = _fill(SwinIR(SwinIRConfig(upscale=2, upsampler="pixelshuffledirect", **TINY)))
    x = (0.5 + 0.4 * torch.sin(0.1 * torch.arange(3 * 8 * 12.0))).view(1, 3, 8, 12)
    with torch.no_grad():
        y = model(x).double()
    assert y.shape == (1, 3, 16, 24)
    assert y.sum().item() == pytest.approx(453.084563434124, rel=1e-5)
    assert y.abs().sum().item() == pytest.approx(521.3564113378525, rel=1e-5)
    got = y.flatten()[[0, 7, 50, -1]].tolist()
    assert got == pytest.approx([0.529962, 0.652572, 0.090413, 0.647526], abs=2e-5)


@pytest.mark.parametrize(
    "upsampler,scale,in_chans",
    [
        ("pixelshuffle", 2, 3),
        ("pixelshuffle", 3, 3),
        ("pixelshuffledirect", 4, 3),
        ("nearest+conv", 4, 3),
        ("", 1, 1),
    ],
)
@pytest.mark.parametrize("hw", [(5, 7), (3, 2)])  # odd, smaller than a window
def test_any_input_size(upsampler, scale, in_chans, hw):
    model = SwinIR(SwinIRConfig(upscale=scale, in_chans=in_chans, upsampler=upsampler, **TINY))
    model.eval()
    x = torch.rand(2, in_chans, *hw)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, in_chans, hw[0] * scale, hw[1] * scale)
    assert torch.isfinite(y).all()


def test_padding_does_not_leak_between_images_of_a_batch():
    model = SwinIR(SwinIRConfig(upscale=2, upsampler="pixelshuffledirect", **TINY)).eval()
    x = torch.rand(2, 3, 9, 14)  # non-square, padded to 12 x 16
    with torch.no_grad():
        both = model(x)
        one = model(x[1:])
    torch.testing.assert_close(both[1:], one, rtol=1e-5, atol=1e-5)


def test_trains_one_step():
    model = build_model("swinir-light", scale=2, embed_dim=12, depths=(1, 1), num_heads=(2, 2))
    model.train()
    x = torch.rand(2, 3, 8, 8)
    loss = (model(x) - torch.rand(2, 3, 16, 16)).abs().mean()
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_save_and_load_model_round_trip(tmp_path):
    model = build_model("swinir-light", scale=3, **TINY).eval()
    path = save_model(model, tmp_path / "swinir.safetensors", info={"task": "sr-x3"})
    again = load_model(path)
    assert isinstance(again, SwinIR) and again.config == model.config
    x = torch.rand(1, 3, 7, 6)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))


@pytest.mark.parametrize("wrapper", ["params_ema", "params", None])
def test_load_official_round_trip(tmp_path, wrapper):
    model = SwinIR(
        SwinIRConfig(upscale=4, upsampler="pixelshuffle", resi_connection="3conv", **TINY)
    ).eval()
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({wrapper: state} if wrapper else state, tmp_path / "official.pth")
    loaded = load_official("swinir", tmp_path / "official.pth")
    assert loaded.config == model.config
    x = torch.rand(1, 3, 6, 9)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_load_official_infers_light_and_jpeg_layouts(tmp_path):
    light = build_model("swinir-light", scale=3)
    torch.save({"params": light.state_dict()}, tmp_path / "light.pth")
    cfg = load_official("swinir", tmp_path / "light.pth").config
    assert (cfg.embed_dim, cfg.depths, cfg.num_heads, cfg.upscale) == (60, (6,) * 4, (6,) * 4, 3)
    assert (cfg.upsampler, cfg.window_size, cfg.img_size, cfg.mlp_ratio) == (
        "pixelshuffledirect",
        8,
        64,
        2.0,
    )
    jpeg = SwinIR(
        SwinIRConfig(
            upscale=1,
            in_chans=1,
            upsampler="",
            img_size=126,
            window_size=7,
            embed_dim=12,
            depths=(2,),
            num_heads=(3,),
        )
    )
    torch.save({"params": jpeg.state_dict()}, tmp_path / "jpeg.pth")
    cfg = load_official("swinir", tmp_path / "jpeg.pth").config
    assert (cfg.window_size, cfg.img_size, cfg.img_range, cfg.in_chans) == (7, 126, 255.0, 1)
    assert load_official("swinir", tmp_path / "jpeg.pth", img_range=1.0).config.img_range == 1.0


def test_load_official_errors(tmp_path):
    model = SwinIR(SwinIRConfig(upscale=2, upsampler="pixelshuffledirect", **TINY))
    state = model.state_dict()
    state["layers.0.conv.weight"] = torch.zeros(12, 12, 1, 1)
    del state["norm.bias"]
    torch.save({"params_ema": state}, tmp_path / "bad.pth")
    with pytest.raises(ValueError) as err:
        load_official("swinir", tmp_path / "bad.pth")
    msg = str(err.value)
    assert "missing (1): norm.bias" in msg
    assert "layers.0.conv.weight: expected (12, 12, 3, 3), found (12, 12, 1, 1)" in msg

    with pytest.raises(ValueError, match="looks like a swinir checkpoint"):
        load_official("mambair", tmp_path / "bad.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a loadable PyTorch checkpoint"):
        load_official("swinir", tmp_path / "junk.pth")
    torch.save({"params": {"conv.weight": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="neither a SwinIR nor a MambaIR"):
        load_official("swinir", tmp_path / "other.pth")
    with pytest.raises(FileNotFoundError):
        load_official("swinir", tmp_path / "absent.pth")


def test_config_errors_are_named():
    with pytest.raises(ValueError, match="unknown upsampler"):
        SwinIRConfig(upsampler="bilinear")
    with pytest.raises(ValueError, match="same length"):
        SwinIRConfig(depths=(2, 2), num_heads=(2,))
    with pytest.raises(ValueError, match="scales 2\\^n and 3"):
        SwinIRConfig(upscale=5)
    with pytest.raises(ValueError, match="unknown option"):
        build_model("swinir-light", scale=2, windowsize=8)
    assert math.isclose(SwinIRConfig(upsampler="residual", upscale=1).img_range, 1.0)
