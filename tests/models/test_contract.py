"""The contract every registered preset keeps, checked at every scale it supports on a tiny
configuration of its architecture: any (odd) input size, gradients to every parameter, a
weights-file round trip that changes nothing, FLOPs counted on the meta device."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from torch import nn

from resyn.models import build_model, list_presets, load_model, save_model
from resyn.models.profile import count_flops

# Per architecture, the overrides that make a preset tiny (a few thousand parameters) while
# keeping its head, its blocks and its options. A new architecture needs an entry here.
TINY: dict[str, dict[str, Any]] = {
    "rwkvir": dict(embed_dim=8, depths=(1, 1), hidden_rate=2, num_feat=8),
    "swinir": dict(
        embed_dim=8,
        depths=(1, 2),
        num_heads=(2, 2),
        window_size=4,
        img_size=8,
        drop_path_rate=0.0,
    ),
    "mambair": dict(embed_dim=8, depths=(1, 1), d_state=4, squeeze_factor=1, drop_path_rate=0.0),
}

CASES = [(p.name, s) for p in list_presets() for s in p.scales]
ODD_SIZES = ((7, 11), (13, 5), (9, 9))


def tiny(name: str, scale: int, in_channels: int = 3) -> nn.Module:
    arch = next(p.arch for p in list_presets() if p.name == name)
    if arch not in TINY:
        pytest.fail(f"architecture {arch!r} of preset {name} has no tiny overrides in TINY")
    torch.manual_seed(0)
    return build_model(name, scale=scale, in_channels=in_channels, **TINY[arch])


def test_every_architecture_has_a_tiny_configuration() -> None:
    assert {p.arch for p in list_presets()} <= set(TINY)
    assert len(CASES) >= 9  # three architectures, SR at 2-4 and restoration at 1


@pytest.mark.parametrize(("name", "scale"), CASES)
def test_forward_at_odd_sizes(name: str, scale: int) -> None:
    model = tiny(name, scale).eval()
    for h, w in ODD_SIZES:
        with torch.no_grad():
            y = model(torch.rand(1, 3, h, w))
        assert y.shape == (1, 3, h * scale, w * scale), (name, h, w)
        assert torch.isfinite(y).all(), (name, h, w)


@pytest.mark.parametrize("name", [p.name for p in list_presets() if p.default_scale == 1])
def test_restoration_presets_take_gray_input(name: str) -> None:
    model = tiny(name, 1, in_channels=1).eval()
    with torch.no_grad():
        y = model(torch.rand(1, 1, 11, 7))
    assert y.shape == (1, 1, 11, 7)


@pytest.mark.parametrize(("name", "scale"), CASES)
def test_gradients_reach_every_parameter(name: str, scale: int) -> None:
    model = tiny(name, scale).train()
    with torch.no_grad():  # zero-initialised layers (residual heads) would stop the gradient
        for p in model.parameters():
            if not p.any():
                p.normal_(0.0, 0.1)
    y = model(torch.rand(2, 3, 9, 7))
    (y * torch.rand_like(y)).sum().backward()
    unreached = [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.any())]
    assert not unreached, f"{name} x{scale}: no gradient for {unreached}"
    for n, p in model.named_parameters():
        assert torch.isfinite(p.grad).all(), n  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "scale"), CASES)
def test_save_load_round_trip(name: str, scale: int, tmp_path) -> None:
    model = tiny(name, scale).eval()
    path = save_model(model, tmp_path / "m.safetensors", info={"note": "contract"})
    loaded = load_model(path)
    assert type(loaded) is type(model)
    assert dataclasses.asdict(loaded.config) == dataclasses.asdict(model.config)
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    x = torch.rand(1, 3, 7, 10)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


@pytest.mark.parametrize(("name", "scale"), CASES)
def test_flops_on_the_meta_device(name: str, scale: int) -> None:
    model = tiny(name, scale)
    small = count_flops(model, scale, (8 * scale, 12 * scale))
    large = count_flops(model, scale, (16 * scale, 24 * scale))
    assert small > 0
    # convolutions and (windowed) matmuls: FLOPs grow with the pixel count
    assert large / small == pytest.approx(4.0, rel=1e-3)
    # counting ran on a copy: the model's own parameters are still real tensors on the CPU
    assert all(p.device.type == "cpu" for p in model.parameters())


@pytest.mark.parametrize(("name", "scale"), CASES)
def test_descriptor_is_consistent(name: str, scale: int, tmp_path) -> None:
    from resyn.models import describe, get_preset

    preset = get_preset(name)
    model = tiny(name, scale).eval()
    d = describe(model)
    assert (d.architecture, d.preset, d.scale) == (preset.arch, name, scale)
    assert d.purpose == ("sr" if scale > 1 else "restoration")
    assert d.purpose == "sr" or set(preset.tasks) <= {"denoise", "jpeg"}
    assert "fp32" in d.precisions
    assert d.parameter_bytes == sum(p.numel() * p.element_size() for p in model.parameters())
    side = d.size.padded(d.size.minimum)
    with torch.no_grad():
        y = model(torch.rand(1, d.in_channels, side, side))
    assert y.shape == (1, d.out_channels, side * d.scale, side * d.scale)
    assert 0 < d.memory_bytes(8, 8) < d.memory_bytes(16, 16)
    assert d.memory_bytes(16, 16) - d.memory_bytes(8, 8) == pytest.approx(
        d.bytes_per_output_pixel * (16 * 16 - 8 * 8) * scale * scale, rel=1e-6
    )
    loaded = describe(load_model(save_model(model, tmp_path / "m.safetensors")))
    assert dataclasses.replace(loaded, source=None) == d
