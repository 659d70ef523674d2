"""ModelDescriptor: what build_model, load_model and load_official carry, and its estimate."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from resyn.models import (
    ModelDescriptor,
    SizeRequirements,
    build_model,
    describe,
    load_model,
    save_model,
)
from resyn.models.descriptor import ArchitectureTraits, attach, derive

TINY = dict(embed_dim=8, depths=(1,))


def test_build_model_carries_the_preset() -> None:
    model = build_model("rwkvir-light", scale=3, **TINY)
    d = describe(model)
    assert (d.architecture, d.preset, d.scale, d.purpose) == ("rwkvir", "rwkvir-light", 3, "sr")
    assert (d.in_channels, d.out_channels) == (3, 3)
    assert d.task is None and d.source is None and dict(d.info) == {}
    for old in ("preset_name", "weights_info", "official_source"):
        assert not hasattr(model, old)


def test_restoration_preset_is_gray_or_color() -> None:
    d = describe(build_model("rwkvir-restore", in_channels=1, **TINY))
    assert (d.purpose, d.scale, d.in_channels, d.out_channels) == ("restoration", 1, 1, 1)


def test_load_model_carries_file_task_and_info(tmp_path) -> None:
    path = save_model(
        build_model("rwkvir-light", scale=2, **TINY),
        tmp_path / "m.safetensors",
        info={"task": "sr-x2", "run": "r1"},
    )
    d = describe(load_model(path))
    assert d.preset == "rwkvir-light" and d.task == "sr-x2" and d.source == str(path)
    assert dict(d.info) == {"task": "sr-x2", "run": "r1"}
    with pytest.raises(TypeError):
        d.info["task"] = "other"  # type: ignore[index]


def test_load_official_carries_its_source(tmp_path) -> None:
    from resyn.models.official import load_official

    model = build_model(
        "swinir-light",
        scale=2,
        embed_dim=12,
        depths=(2, 2),
        num_heads=(2, 3),
        window_size=4,
        img_size=16,
    )
    torch.save({"params": model.state_dict()}, tmp_path / "official.pth")
    d = describe(load_official("swinir", tmp_path / "official.pth"))
    assert d.architecture == "swinir" and d.source == str(tmp_path / "official.pth")
    assert d.preset is None and d.scale == 2


def test_descriptor_is_frozen_and_survives_copies() -> None:
    model = build_model("rwkvir-light", scale=2, **TINY)
    d = describe(model)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.scale = 4  # type: ignore[misc]
    assert describe(copy.deepcopy(model)) == d
    assert describe(model.to("cpu").eval()) is d


def test_memory_estimate_is_the_calibrated_one() -> None:
    # rwkvir-light x2: 25 live feature tensors of C=48 float32, plus output, crop and blend
    # buffers (3 x 3 channels x 4 pixels x 4 bytes) per input pixel; the docs' 3.9 GB at 1024x768
    model = build_model("rwkvir-light", scale=2)
    params = sum(p.numel() for p in model.parameters()) * 4
    per_pixel = 48 * 25 * 4 + 3 * 2 * 2 * 4 * 3
    d = describe(model)
    assert d.memory_bytes(768, 1024) == params + per_pixel * 768 * 1024
    assert 3.8e9 < d.memory_bytes(768, 1024) < 4.0e9
    assert d.bytes_per_output_pixel == pytest.approx(per_pixel / 4)


def test_pixelshuffle_head_costs_more_per_pixel() -> None:
    light = describe(build_model("swinir-light", scale=4, embed_dim=60))
    classic = describe(build_model("swinir-classic", scale=4, embed_dim=60))
    assert classic.bytes_per_output_pixel - light.bytes_per_output_pixel == 64 * 4 * 4 / 2


def test_a_module_without_a_descriptor_gets_one_from_its_config() -> None:
    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 1)

    d = describe(Plain())
    assert (d.architecture, d.scale, d.in_channels, d.purpose) == ("Plain", 1, 3, "restoration")
    assert d.parameter_bytes == (9 + 3) * 4
    assert d.precisions == ("fp32", "bf16") and d.tiling_changes_output


def test_traits_must_be_typed() -> None:
    class Wrong(torch.nn.Module):
        traits = ("live_feature_tensors", 3)

    with pytest.raises(TypeError, match="ArchitectureTraits"):
        derive(Wrong())


def test_size_requirements() -> None:
    size = SizeRequirements(minimum=8, multiple_of=4)
    assert size.fits(8, 12) and not size.fits(8, 10) and not size.fits(4, 8)
    assert size.padded(5) == 8 and size.padded(9) == 12 and size.padded(9, at_least=16) == 16
    assert SizeRequirements().padded(5, at_least=16) == 16
    with pytest.raises(ValueError, match="positive"):
        SizeRequirements(multiple_of=0)


def test_attach_replaces_the_descriptor() -> None:
    model = build_model("rwkvir-light", scale=2, **TINY)
    other = dataclasses.replace(describe(model), preset="mine")
    assert describe(attach(model, other)).preset == "mine"
    assert describe(model).with_origin(task="sr-x2").preset == "mine"


def test_descriptor_validates() -> None:
    base = describe(build_model("rwkvir-light", scale=2, **TINY))
    with pytest.raises(ValueError, match="scale and channels"):
        dataclasses.replace(base, scale=0)
    with pytest.raises(ValueError, match="precision"):
        dataclasses.replace(base, precisions=())
    assert isinstance(base, ModelDescriptor)
    assert ArchitectureTraits().live_feature_tensors == 64
