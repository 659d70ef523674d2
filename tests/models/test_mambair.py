"""MambaIR baseline: published sizes, official state-dict names/shapes, any-size input, weights.

Reference facts: csguoh/MambaIR ``basicsr/archs/mambair_arch.py`` (commit 33d7b346) and its
option files: classic SR embed 180, depths 6x6, d_state 16, mlp_ratio 2, pixelshuffle;
lightweight SR (Oct-2024 release) embed 60, depths 4x6, d_state 10, mlp_ratio 1.2,
pixelshuffledirect with the depth-wise CAB. The revised MambaIR paper (arXiv 2402.15648 v3)
lists MambaIR-light at 905K / 913K / 924K parameters (x2 / x3 / x4); the MambaIRv2 paper lists
the classic model at 20.4M.
"""

from __future__ import annotations

import re

import pytest
import torch

from resyn.models import build_model, load_model, save_model
from resyn.models.mambair import MambaIR, MambaIRConfig
from resyn.models.official import load_official

TINY = dict(embed_dim=12, depths=(1, 1), d_state=4, squeeze_factor=4, img_size=16)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "preset,scale,expected,published",
    [
        ("mambair-classic", 2, 20_421_863, 20.4e6),
        ("mambair-light", 2, 905_016, 905e3),
        ("mambair-light", 3, 913_131, 913e3),
        ("mambair-light", 4, 924_492, 924e3),
    ],
)
def test_parameter_counts_match_published(preset, scale, expected, published):
    with torch.device("meta"):  # shapes only
        total = n_params(build_model(preset, scale=scale))
    assert total == expected
    assert abs(total - published) / published < 0.005


LIGHT_BLOCK = "layers.0.residual_group.blocks.0."
PUBLISHED_LIGHT_X2 = {
    "conv_first.weight": (60, 3, 3, 3),
    "patch_embed.norm.weight": (60,),
    LIGHT_BLOCK + "ln_1.weight": (60,),
    LIGHT_BLOCK + "self_attention.in_proj.weight": (144, 60),
    LIGHT_BLOCK + "self_attention.conv2d.weight": (72, 1, 3, 3),
    LIGHT_BLOCK + "self_attention.conv2d.bias": (72,),
    LIGHT_BLOCK + "self_attention.x_proj_weight": (4, 24, 72),
    LIGHT_BLOCK + "self_attention.dt_projs_weight": (4, 72, 4),
    LIGHT_BLOCK + "self_attention.dt_projs_bias": (4, 72),
    LIGHT_BLOCK + "self_attention.A_logs": (288, 10),
    LIGHT_BLOCK + "self_attention.Ds": (288,),
    LIGHT_BLOCK + "self_attention.out_norm.weight": (72,),
    LIGHT_BLOCK + "self_attention.out_proj.weight": (60, 72),
    LIGHT_BLOCK + "skip_scale": (60,),
    LIGHT_BLOCK + "conv_blk.cab.0.weight": (30, 60, 1, 1),
    LIGHT_BLOCK + "conv_blk.cab.1.weight": (30, 1, 3, 3),
    LIGHT_BLOCK + "conv_blk.cab.3.weight": (60, 30, 1, 1),
    LIGHT_BLOCK + "conv_blk.cab.4.weight": (60, 1, 3, 3),
    LIGHT_BLOCK + "conv_blk.cab.5.attention.1.weight": (2, 60, 1, 1),
    LIGHT_BLOCK + "conv_blk.cab.5.attention.3.weight": (60, 2, 1, 1),
    LIGHT_BLOCK + "ln_2.bias": (60,),
    LIGHT_BLOCK + "skip_scale2": (60,),
    "layers.3.residual_group.blocks.5.self_attention.A_logs": (288, 10),
    "layers.0.conv.weight": (60, 60, 3, 3),
    "norm.weight": (60,),
    "conv_after_body.weight": (60, 60, 3, 3),
    "upsample.0.weight": (12, 60, 3, 3),
}
CLASSIC_X4 = {
    LIGHT_BLOCK + "self_attention.in_proj.weight": (720, 180),
    LIGHT_BLOCK + "self_attention.x_proj_weight": (4, 44, 360),
    LIGHT_BLOCK + "self_attention.dt_projs_weight": (4, 360, 12),
    LIGHT_BLOCK + "self_attention.A_logs": (1440, 16),
    LIGHT_BLOCK + "conv_blk.cab.0.weight": (60, 180, 3, 3),
    LIGHT_BLOCK + "conv_blk.cab.2.weight": (180, 60, 3, 3),
    LIGHT_BLOCK + "conv_blk.cab.3.attention.1.weight": (6, 180, 1, 1),
    LIGHT_BLOCK + "conv_blk.cab.3.attention.3.weight": (180, 6, 1, 1),
    "layers.5.residual_group.blocks.5.skip_scale2": (180,),
    "conv_before_upsample.0.weight": (64, 180, 3, 3),
    "upsample.0.weight": (256, 64, 3, 3),
    "upsample.2.weight": (256, 64, 3, 3),
    "conv_last.weight": (3, 64, 3, 3),
}
LIGHT_BLOCK_KEYS = (
    {
        "ln_1.weight",
        "ln_1.bias",
        "skip_scale",
        "ln_2.weight",
        "ln_2.bias",
        "skip_scale2",
        "self_attention.in_proj.weight",
        "self_attention.conv2d.weight",
        "self_attention.conv2d.bias",
        "self_attention.x_proj_weight",
        "self_attention.dt_projs_weight",
        "self_attention.dt_projs_bias",
        "self_attention.A_logs",
        "self_attention.Ds",
        "self_attention.out_norm.weight",
        "self_attention.out_norm.bias",
        "self_attention.out_proj.weight",
    }
    | {f"conv_blk.cab.{i}.{p}" for i in (0, 1, 3, 4) for p in ("weight", "bias")}
    | {f"conv_blk.cab.5.attention.{i}.{p}" for i in (1, 3) for p in ("weight", "bias")}
)


def test_state_dict_matches_published_light_layout():
    with torch.device("meta"):
        state = build_model("mambair-light", scale=2).state_dict()
    for key, shape in PUBLISHED_LIGHT_X2.items():
        assert key in state, key
        assert tuple(state[key].shape) == shape, key
    pattern = re.compile(r"layers\.(\d)\.residual_group\.blocks\.(\d)\.(.+)")
    blocks: dict[tuple[int, int], set[str]] = {}
    others = set()
    for key in state:
        m = pattern.fullmatch(key)
        if m:
            blocks.setdefault((int(m[1]), int(m[2])), set()).add(m[3])
        else:
            others.add(key)
    assert sorted(blocks) == [(i, j) for i in range(4) for j in range(6)]
    assert all(keys == LIGHT_BLOCK_KEYS for keys in blocks.values())
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


def test_state_dict_matches_published_classic_layout():
    with torch.device("meta"):
        state = build_model("mambair-classic", scale=4).state_dict()
    for key, shape in CLASSIC_X4.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(".cab.4." in k for k in state)


def _fill(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for i, (_, p) in enumerate(model.named_parameters()):
            t = torch.arange(p.numel(), dtype=torch.float64)
            p.copy_((0.1 * torch.sin(0.37 * t + 1.3 * i)).view_as(p))
    return model.eval()


@pytest.mark.parametrize(
    "upsampler,depths,golden",
    [
        (
            "pixelshuffle",
            (2,),
            (174.3533911406994, 174.3533911406994, [0.478027, 0.478487, 0.453718, 0.371417]),
        ),
        (
            "pixelshuffledirect",
            (1,),
            (166.352671995759, 169.86168678104877, [0.33329, 0.031446, 0.637085, 0.304989]),
        ),
    ],
)
def test_matches_official_network_output(upsampler, depths, golden):
    # Golden numbers from the official mambair_arch.py (commit 33d7b346, with mamba_ssm's
    # reference scan), same weights (parameter i = 0.1 sin(0.37 k + 1.3 i)) and input.
    model = _fill(
        MambaIR(
            MambaIRConfig(
                upscale=2,
                embed_dim=30,
                depths=depths,
                d_state=4,
                mlp_ratio=1.2,
                upsampler=upsampler,
                img_size=16,
            )
        )
    )
    x = (0.5 + 0.4 * torch.sin(0.1 * torch.arange(3 * 5 * 7.0))).view(1, 3, 5, 7)
    with torch.no_grad():
        y = model(x).double()
    assert y.shape == (1, 3, 10, 14)
    total, total_abs, samples = golden
    assert y.sum().item() == pytest.approx(total, rel=1e-5)
    assert y.abs().sum().item() == pytest.approx(total_abs, rel=1e-5)
    assert y.flatten()[[0, 7, 50, -1]].tolist() == pytest.approx(samples, abs=2e-5)


@pytest.mark.parametrize(
    "upsampler,scale,in_chans",
    [("pixelshuffle", 2, 3), ("pixelshuffle", 3, 3), ("pixelshuffledirect", 4, 3), ("", 1, 1)],
)
@pytest.mark.parametrize("hw", [(5, 7), (1, 3)])
def test_any_input_size(upsampler, scale, in_chans, hw):
    model = MambaIR(MambaIRConfig(upscale=scale, in_chans=in_chans, upsampler=upsampler, **TINY))
    x = torch.rand(2, in_chans, *hw)
    with torch.no_grad():
        y = model.eval()(x)
    assert y.shape == (2, in_chans, hw[0] * scale, hw[1] * scale)
    assert torch.isfinite(y).all()


def test_scan_chunking_does_not_change_the_output():
    big = MambaIR(MambaIRConfig(upscale=2, upsampler="pixelshuffledirect", **TINY)).eval()
    small = MambaIR(
        MambaIRConfig(upscale=2, upsampler="pixelshuffledirect", scan_chunk_elements=500, **TINY)
    ).eval()
    small.load_state_dict(big.state_dict())
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(small(x), big(x), rtol=1e-5, atol=1e-5)


def test_trains_one_step():
    model = build_model("mambair-light", scale=2, **TINY).train()
    loss = (model(torch.rand(2, 3, 6, 6)) - torch.rand(2, 3, 12, 12)).abs().mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_save_and_load_model_round_trip(tmp_path):
    model = build_model("mambair-light", scale=3, **TINY).eval()
    again = load_model(save_model(model, tmp_path / "m.safetensors"))
    assert isinstance(again, MambaIR) and again.config == model.config
    x = torch.rand(1, 3, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))


@pytest.mark.parametrize(
    "overrides",
    [
        dict(upscale=2, upsampler="pixelshuffle", resi_connection="3conv"),
        dict(upscale=4, upsampler="pixelshuffledirect"),
        dict(upscale=2, upsampler="pixelshuffledirect", cab="conv3", compress_ratio=6),
        dict(upscale=1, upsampler="", in_chans=1),
    ],
)
def test_load_official_round_trip(tmp_path, overrides):
    cfg = dict(TINY, embed_dim=24, **overrides)
    model = MambaIR(MambaIRConfig(**cfg)).eval()
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"params_ema": state}, tmp_path / "official.pth")
    loaded = load_official("mambair", tmp_path / "official.pth")
    for key in (
        "upscale",
        "in_chans",
        "embed_dim",
        "depths",
        "d_state",
        "upsampler",
        "resi_connection",
        "cab_kind",
        "rank",
        "squeeze_factor",
    ):
        assert getattr(loaded.config, key) == getattr(model.config, key), key
    assert loaded.config.mlp_ratio * 24 == pytest.approx(model.config.mlp_ratio * 24)
    x = torch.rand(1, cfg.get("in_chans", 3), 4, 7)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_load_official_errors(tmp_path):
    model = MambaIR(MambaIRConfig(upscale=2, upsampler="pixelshuffledirect", **TINY))
    state = model.state_dict()
    state["extra.weight"] = torch.zeros(1)
    torch.save({"params": state}, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match=r"unexpected \(1\): extra.weight"):
        load_official("mambair", tmp_path / "extra.pth")
    with pytest.raises(ValueError, match="looks like a mambair checkpoint"):
        load_official("swinir", tmp_path / "extra.pth")
    with pytest.raises(ValueError, match="unknown official checkpoint kind"):
        load_official("hat", tmp_path / "extra.pth")


def test_config_errors_are_named():
    with pytest.raises(ValueError, match="unknown upsampler"):
        MambaIRConfig(upsampler="nearest+conv", upscale=4)
    with pytest.raises(ValueError, match="cab must be"):
        MambaIRConfig(cab="big")
    with pytest.raises(ValueError, match="needs upscale 1"):
        MambaIRConfig(upsampler="", upscale=2)
