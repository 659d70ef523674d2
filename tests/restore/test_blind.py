"""Blind denoise / jpeg models: which tasks they serve, shipped-weights fallback, gray input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from resyn.degrade import parse_task
from resyn.restore import Restorer, WeightsError, load_restorer, restore_array
from resyn.restore import weights as W


def _meta(task: str, chans: int = 3, scale: int = 1) -> dict:
    return {"config": {"upscale": scale, "in_chans": chans}, "info": {"task": task}}


@pytest.mark.parametrize(
    ("trained", "task"),
    [
        ("denoise", "denoise-15"),
        ("denoise", "denoise-25"),
        ("denoise", "denoise-50"),
        ("denoise", "denoise"),
        ("denoise", "denoise-gray-25"),  # color blind on gray: replicated
        ("jpeg", "jpeg-q10"),
        ("jpeg", "jpeg-q40"),
        ("jpeg", "jpeg-gray-q10"),
    ],
)
def test_blind_model_serves_fixed_levels(trained: str, task: str) -> None:
    W.check_weights_for_task(_meta(trained), parse_task(task), "w.safetensors")


@pytest.mark.parametrize(
    ("trained", "chans", "task", "match"),
    [
        ("denoise", 3, "jpeg-q10", "trained for task denoise, not jpeg-q10"),
        ("jpeg", 3, "denoise-25", "trained for task jpeg, not denoise-25"),
        ("denoise-25", 3, "denoise", "trained for task denoise-25, not denoise"),
        ("denoise-25", 3, "denoise-50", "trained for task denoise-25"),
        ("denoise-25", 3, "denoise-gray-25", "trained for task denoise-25"),
        ("denoise-gray", 1, "denoise-25", "trained for task denoise-gray"),
    ],
)
def test_other_pairs_are_refused(trained: str, chans: int, task: str, match: str) -> None:
    with pytest.raises(WeightsError, match=match):
        W.check_weights_for_task(_meta(trained, chans), parse_task(task), "w.safetensors")


def test_fixed_level_falls_back_to_the_blind_model(
    tmp_path, monkeypatch, tiny_arch, make_tiny_conv
) -> None:
    from resyn.models import save_model

    def tiny_restore():
        return make_tiny_conv(1)

    monkeypatch.setattr(W, "WEIGHTS_DIR", tmp_path)
    save_model(tiny_restore(), tmp_path / "denoise.safetensors", info={"task": "denoise"})
    save_model(tiny_restore(), tmp_path / "denoise-25.safetensors", info={"task": "denoise-25"})
    assert W.default_weights_path("denoise-50") == tmp_path / "denoise.safetensors"
    assert W.default_weights_path("denoise-25") == tmp_path / "denoise-25.safetensors"
    assert W.default_weights_path("denoise") == tmp_path / "denoise.safetensors"
    assert W.default_weights_path("denoise-gray-15") == tmp_path / "denoise.safetensors"
    restorer = load_restorer("denoise-50")
    assert restorer.task.name == "denoise-50" and restorer.weights.name == "denoise.safetensors"
    with pytest.raises(WeightsError) as err:
        W.default_weights_path("jpeg-q10")
    text = str(err.value)
    assert "jpeg-q10.safetensors nor jpeg.safetensors (the blind model)" in text
    assert "no shipped weights yet" in text and "shipped tasks: denoise-25, denoise)" in text
    with pytest.raises(WeightsError, match=r"sr-x3\.safetensors does not exist"):
        W.default_weights_path("sr-x3")
    table = W.task_weights()
    assert table["denoise-15"] == tmp_path / "denoise.safetensors" and table["jpeg"] is None
    assert W.tasks_help().startswith("with shipped weights: denoise, denoise-15, denoise-25")
    assert "no shipped weights yet: sr-x2, sr-x3, sr-x4, jpeg" in W.tasks_help()


def test_gray_stored_as_rgb_is_restored_as_gray(tiny_arch, make_tiny_conv) -> None:
    model = make_tiny_conv(1)
    rng = np.random.default_rng(1)
    plane = rng.integers(0, 256, (20, 22), dtype=np.uint8)
    rgb = np.repeat(plane[:, :, None], 3, axis=2)
    for task in ("denoise", "jpeg-q10"):
        restorer = Restorer.from_model(model, "denoise" if task == "denoise" else "jpeg")
        restorer.task = parse_task(task)
        out, _ = restore_array(restorer, rgb)
        gray, _ = restore_array(restorer, plane)
        assert out.shape == rgb.shape and out.dtype == np.uint8
        assert (out[:, :, 0] == out[:, :, 1]).all() and (out[:, :, 0] == out[:, :, 2]).all()
        np.testing.assert_array_equal(out[:, :, 0], gray)
        with torch.no_grad():
            y = model(torch.from_numpy(rgb.transpose(2, 0, 1) / 255.0).float()[None])[0]
        tinted = np.rint(np.clip(y.numpy(), 0, 1) * 255).transpose(1, 2, 0)
        assert np.abs(tinted[:, :, 0] - tinted[:, :, 2]).max() > 0  # the model alone tints
    # a color image is restored in color; SR keeps an equal-channel RGB as the model gives it
    color = rng.integers(0, 256, (20, 22, 3), dtype=np.uint8)
    out, _ = restore_array(Restorer.from_model(model, "denoise"), color)
    assert np.abs(out[:, :, 0].astype(int) - out[:, :, 2]).max() > 0
