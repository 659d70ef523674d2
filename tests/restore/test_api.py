"""resyn.restore: layouts (gray, 16-bit, alpha), weights lookup and task checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from resyn.restore import Restorer, WeightsError, load_restorer, restore_array
from resyn.restore.engine import run_model


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _model_out(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        y = model(torch.from_numpy(x.transpose(2, 0, 1)).float()[None])[0]
    return y.permute(1, 2, 0).numpy()


def test_rgb_uint8(make_tiny_conv) -> None:
    model = make_tiny_conv(2)
    img = _rgb(20, 24)
    out, info = restore_array(Restorer.from_model(model, "sr-x2"), img)
    assert out.shape == (40, 48, 3) and out.dtype == np.uint8 and info.tile is None
    ref = np.rint(np.clip(_model_out(model, img / 255.0), 0, 1) * 255).astype(np.uint8)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


def test_uint16_stays_uint16_with_full_precision(make_tiny_conv) -> None:
    model = make_tiny_conv(2)
    rng = np.random.default_rng(3)
    img = rng.integers(0, 65536, (16, 18, 3), dtype=np.uint16)
    out, _ = restore_array(Restorer.from_model(model, "sr-x2"), img)
    assert out.dtype == np.uint16 and out.shape == (32, 36, 3)
    ref = np.clip(_model_out(model, img / 65535.0), 0, 1) * 65535
    assert np.abs(out - ref).max() <= 1.0  # 16-bit precision, not 8-bit steps (257)


def test_gray_with_color_model_and_gray_model(make_tiny_conv) -> None:
    gray = _rgb(16, 16)[:, :, 0]
    color_model = make_tiny_conv(2, in_chans=3)
    out, _ = restore_array(Restorer.from_model(color_model, "sr-x2"), gray)
    assert out.shape == (32, 32) and out.dtype == np.uint8
    rep = np.repeat((gray / 255.0)[:, :, None], 3, axis=2)
    ref = np.clip(_model_out(color_model, rep), 0, 1).mean(axis=2) * 255
    assert np.abs(out - ref).max() <= 1.0
    gray_model = make_tiny_conv(2, in_chans=1)
    out1, _ = restore_array(Restorer.from_model(gray_model, "sr-x2"), gray)
    assert out1.shape == (32, 32)


def test_color_image_with_gray_model_runs_per_channel(make_tiny_conv) -> None:
    model = make_tiny_conv(2, in_chans=1)
    img = _rgb(18, 20)  # >= MIN_TILE: no padding, so the model output is comparable
    out, _ = restore_array(Restorer.from_model(model, "sr-x2"), img)
    assert out.shape == (36, 40, 3)
    for c in range(3):
        ref = np.clip(_model_out(model, img[:, :, c : c + 1] / 255.0)[:, :, 0], 0, 1) * 255
        assert np.abs(out[:, :, c] - ref).max() <= 1.0


@pytest.mark.parametrize("layout", ["rgba", "la"])
def test_alpha_resized_separately_and_reattached(make_tiny_conv, layout: str) -> None:
    model = make_tiny_conv(2)
    rgb = _rgb(20, 20)
    alpha = np.zeros((20, 20), np.uint8)
    alpha[5:15, 5:15] = 255
    img = np.dstack([rgb, alpha]) if layout == "rgba" else np.dstack([rgb[:, :, 0], alpha])
    out, _ = restore_array(Restorer.from_model(model, "sr-x2"), img)
    assert out.shape == (40, 40, img.shape[2])
    a = out[:, :, -1]
    assert a[20, 20] == 255 and a[0, 0] == 0 and a[39, 39] == 0
    color_only, _ = restore_array(Restorer.from_model(model, "sr-x2"), img[:, :, :-1].squeeze())
    np.testing.assert_array_equal(out[:, :, :-1].squeeze(), color_only)


def test_tiled_restore_equals_whole(make_tiny_conv) -> None:
    restorer = Restorer.from_model(make_tiny_conv(2), "sr-x2")
    img = _rgb(60, 44)
    whole, _ = restore_array(restorer, img, tile=0)
    tiled, info = restore_array(restorer, img, tile=24, overlap=8)
    assert info.tiles > 1
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1


def test_task_checks_on_in_memory_models(make_tiny_conv) -> None:
    with pytest.raises(WeightsError, match="x2 model but task sr-x4 needs x4"):
        Restorer.from_model(make_tiny_conv(2), "sr-x4")
    with pytest.raises(WeightsError, match=r"color .*gray"):
        Restorer.from_model(make_tiny_conv(1, in_chans=3), "denoise-gray-25")
    with pytest.raises(ValueError, match="unknown task"):
        Restorer.from_model(make_tiny_conv(2), "sr-fast")


def test_saved_weights_and_shipped_weights_errors(tmp_path, tiny_arch, make_tiny_conv) -> None:
    from resyn.models import save_model

    path = tmp_path / "x2.safetensors"
    save_model(make_tiny_conv(2), path, info={"task": "sr-x2"})
    restorer = load_restorer("sr-x2", path)
    assert restorer.scale == 2 and restorer.task.name == "sr-x2"
    assert load_restorer(None, path).task.name == "sr-x2"  # task read from the weights
    with pytest.raises(WeightsError, match="x2 model but task sr-x4"):
        load_restorer("sr-x4", path)
    with pytest.raises(
        WeightsError, match=r"no shipped weights for task .sr-x7.*sr-x7\.safetensors"
    ):
        load_restorer("sr-x7", None)
    with pytest.raises(WeightsError, match="not found"):
        load_restorer("sr-x2", tmp_path / "missing.safetensors")
    # a folder is named as such (it used to be "weights file not found"), with its files
    for task in ("sr-x2", None):
        with pytest.raises(WeightsError, match=r"is a folder, not a weights file.*x2\.safetensors"):
            load_restorer(task, tmp_path)
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="safetensors"):
        load_restorer("sr-x2", bogus)


def test_restore_function_reads_paths(tmp_path, tiny_arch, make_tiny_conv) -> None:
    import resyn
    from resyn.io import write_image
    from resyn.models import save_model

    path = tmp_path / "x2.safetensors"
    save_model(make_tiny_conv(2), path, info={"task": "sr-x2"})
    img = _rgb(10, 12)
    write_image(tmp_path / "in.png", img)
    out = resyn.restore(tmp_path / "in.png", task="sr-x2", weights=path)
    import resyn.restore as package

    out2 = package.restore(img, task="sr-x2", weights=path, tile=16, overlap=4)
    assert out.shape == (20, 24, 3)
    assert np.abs(out.astype(int) - out2.astype(int)).max() <= 1
    assert callable(package)


def test_run_model_float_matches_restore(make_tiny_conv) -> None:
    model = make_tiny_conv(3)
    img = _rgb(9, 11)
    y, _ = run_model(model, img.astype(np.float32) / 255)
    out, _ = restore_array(Restorer.from_model(model, "sr-x3"), img)
    np.testing.assert_array_equal(out, np.rint(np.clip(y, 0, 1) * 255).astype(np.uint8))
