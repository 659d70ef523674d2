"""The tiled inference engine: shapes, seamless blending, automatic tiling, bf16 fallback."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from resyn.restore.engine import (
    TilingInfo,
    choose_tile,
    estimate_memory,
    psnr_float,
    ramp_window,
    run_model,
    tile_starts,
)


def _image(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = 0.5 + 0.3 * np.sin(6 * xx + 3 * yy)[:, :, None]
    return np.clip(base + 0.1 * rng.standard_normal((h, w, c)), 0, 1).astype(np.float32)


def test_tile_starts_cover_with_overlap() -> None:
    for length, tile, overlap in [(100, 32, 8), (64, 32, 8), (33, 32, 8), (10, 32, 8), (97, 40, 0)]:
        starts = tile_starts(length, tile, overlap)
        covered = np.zeros(length, bool)
        for s in starts:
            covered[s : s + tile] = True
            assert 0 <= s and s + min(tile, length) <= length
        assert covered.all()
        for a, b in itertools.pairwise(starts):
            assert a + tile - b >= overlap


def test_ramp_window_positive_and_one_inside() -> None:
    w = ramp_window(20, 4, 4)
    assert (w > 0).all() and w.max() == 1.0
    np.testing.assert_allclose(w[:4], [0.2, 0.4, 0.6, 0.8])
    np.testing.assert_allclose(w[-4:], [0.8, 0.6, 0.4, 0.2])
    assert (ramp_window(10, 0, 0) == 1).all()


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_whole_image_shape_and_matches_model(make_tiny_conv, scale: int) -> None:
    model = make_tiny_conv(scale)
    img = _image(21, 17)
    out, info = run_model(model, img, tile=0)
    assert out.shape == (21 * scale, 17 * scale, 3) and out.dtype == np.float32
    assert info.tile is None and info.tiles == 1
    with torch.no_grad():
        ref = model(torch.from_numpy(img.transpose(2, 0, 1))[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-6)


@pytest.mark.parametrize("h,w,tile,overlap", [(70, 53, 24, 8), (64, 64, 32, 8), (40, 90, 32, 4)])
def test_tiled_matches_whole_image(make_tiny_conv, h: int, w: int, tile: int, overlap: int) -> None:
    model = make_tiny_conv(2)
    img = _image(h, w)
    whole, _ = run_model(model, img, tile=0)
    tiled, info = run_model(model, img, tile=tile, overlap=overlap)
    assert info.tile == tile and info.tiles > 1
    assert tiled.shape == whole.shape
    # Receptive field radius 2 < overlap: only tile-edge pixels differ and they get low weight.
    assert psnr_float(np.clip(tiled, 0, 1), np.clip(whole, 0, 1)) > 60


def test_overlap_zero_still_covers_every_pixel(make_tiny_conv) -> None:
    model = make_tiny_conv(2)
    img = _image(50, 50)
    tiled, info = run_model(model, img, tile=16, overlap=0)
    assert np.isfinite(tiled).all() and info.tiles == 16


def test_uint8_and_uint16_output_equal_rounded_float(make_tiny_conv) -> None:
    model = make_tiny_conv(2)
    img = _image(40, 36)
    ref, _ = run_model(model, img, tile=16, overlap=4)
    out8, _ = run_model(model, img, tile=16, overlap=4, out_dtype=np.uint8)
    out16, _ = run_model(model, img, tile=16, overlap=4, out_dtype=np.uint16)
    np.testing.assert_array_equal(out8, np.rint(np.clip(ref, 0, 1) * 255).astype(np.uint8))
    np.testing.assert_array_equal(out16, np.rint(np.clip(ref, 0, 1) * 65535).astype(np.uint16))


def test_small_image_is_padded_and_too_small_refused(make_tiny_conv) -> None:
    model = make_tiny_conv(2)
    out, _ = run_model(model, _image(5, 7))
    assert out.shape == (10, 14, 3)
    with pytest.raises(ValueError, match="too small"):
        run_model(model, _image(3, 40))


def test_channel_mismatch_and_bad_arguments(make_tiny_conv) -> None:
    model = make_tiny_conv(2, in_chans=1)
    with pytest.raises(ValueError, match="1-channel"):
        run_model(model, _image(20, 20))
    with pytest.raises(ValueError, match="precision"):
        run_model(model, _image(20, 20, 1), precision="fp16")
    with pytest.raises(ValueError, match="tile"):
        run_model(model, _image(20, 20, 1), tile=4)


def test_automatic_tiling_under_budget(make_tiny_conv) -> None:
    model = make_tiny_conv(2)
    img = _image(300, 260)
    need = estimate_memory(model, 300, 260)
    out_whole, info_whole = run_model(model, img, max_memory=need + 1)
    assert info_whole.tile is None and info_whole.auto
    budget = estimate_memory(model, 128, 128)
    out, info = run_model(model, img, max_memory=budget, overlap=16)
    assert info.auto and info.tile is not None and info.tile <= 128 and info.tiles > 1
    assert info.estimated_bytes <= budget
    assert "auto" in info.describe() and "tile=" in info.describe()
    assert psnr_float(np.clip(out, 0, 1), np.clip(out_whole, 0, 1)) > 60
    assert choose_tile(model, 300, 260, need + 1, 16) is None


class _NaNUnderAutocast(torch.nn.Module):
    """Returns NaN when run under CPU autocast: the bf16 path must fall back to fp32."""

    def __init__(self) -> None:
        super().__init__()
        from types import SimpleNamespace

        self.config = SimpleNamespace(upscale=1, in_chans=3)
        self.conv = torch.nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if torch.is_autocast_enabled("cpu"):
            return y * float("nan")
        return y


def test_bf16_never_returns_nan() -> None:
    model = _NaNUnderAutocast().eval()
    img = _image(40, 40)
    ref, _ = run_model(model, img, tile=0)
    with pytest.warns(RuntimeWarning, match="fp32"):
        out, info = run_model(model, img, tile=24, overlap=4, precision="bf16")
    assert np.isfinite(out).all() and info.fp32_fallbacks == info.tiles == 4
    assert psnr_float(out, ref) > 60


def test_bf16_close_to_fp32(make_tiny_conv) -> None:
    model = make_tiny_conv(2)
    img = _image(32, 32)
    ref, _ = run_model(model, img, tile=0)
    out, info = run_model(model, img, tile=0, precision="bf16")
    assert info.fp32_fallbacks == 0
    assert psnr_float(np.clip(out, 0, 1), np.clip(ref, 0, 1)) > 35


def test_progress_callback_counts_tiles(make_tiny_conv) -> None:
    calls: list[tuple[int, int]] = []
    _, info = run_model(
        make_tiny_conv(2),
        _image(48, 48),
        tile=24,
        overlap=4,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert calls[-1] == (info.tiles, info.tiles) and len(calls) == info.tiles
    assert isinstance(info, TilingInfo)


def test_rwkvir_tiles_agree_with_whole_image() -> None:
    """RWKV-IR's Bi-WKV is global (and its decay is divided by the token count), so tiles
    cannot reproduce the whole-image output exactly; overlap + feathering keep the difference
    far below 0.1 dB of PSNR against the ground truth."""
    pytest.importorskip("resyn.models.rwkvir", reason="rwkvir is not available")
    from resyn.degrade import imresize
    from resyn.models import build_model

    torch.manual_seed(0)
    model = build_model("rwkvir-light", scale=2, embed_dim=8, depths=(1,)).eval()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:144] / 128
    hr = np.clip(
        0.5 + 0.3 * np.sin(9 * xx + 5 * yy)[:, :, None] + 0.05 * rng.standard_normal((128, 144, 3)),
        0,
        1,
    )
    hr8 = np.rint(hr * 255).astype(np.uint8)
    lr = imresize(hr8, 0.5).astype(np.float32) / 255
    gt = hr8.astype(np.float32) / 255
    whole, _ = run_model(model, lr, tile=0)
    tiled, info = run_model(model, lr, tile=48, overlap=16)
    assert info.tiles == 4
    whole, tiled = np.clip(whole, 0, 1), np.clip(tiled, 0, 1)
    assert psnr_float(tiled, whole) > 40  # measured 45.3 dB (random init)
    assert abs(psnr_float(tiled, gt) - psnr_float(whole, gt)) < 0.1  # measured 0.03 dB


def _views_mean(model, img: np.ndarray) -> np.ndarray:
    """The oracle of the x8 self-ensemble, with numpy's own flips and rotations (HWC)."""
    outs = []
    for flip in (False, True):
        for turns in range(4):
            view = np.rot90(img[:, ::-1] if flip else img, turns)
            x = torch.from_numpy(np.ascontiguousarray(view.transpose(2, 0, 1)))[None]
            with torch.no_grad():
                y = model(x)[0].permute(1, 2, 0).numpy()
            y = np.rot90(y, -turns)
            outs.append(y[:, ::-1] if flip else y)
    return np.mean(outs, axis=0)


def test_self_ensemble_averages_the_eight_views(make_tiny_conv) -> None:
    model = make_tiny_conv(2)  # random 3x3 convolutions: not flip/rotation equivariant
    img = _image(19, 26)
    single, _ = run_model(model, img, tile=0)
    whole, info = run_model(model, img, tile=0, ensemble=True)
    assert info.ensemble == 8 and "x8 self-ensemble" in info.describe()
    np.testing.assert_allclose(whole, _views_mean(model, img), atol=1e-6)
    assert np.abs(whole - single).max() > 1e-3  # the views really differ for this model
    tiled, tinfo = run_model(model, img, tile=16, overlap=4, ensemble=True)
    assert tinfo.tiles > 1 and tinfo.ensemble == 8
    assert psnr_float(np.clip(tiled, 0, 1), np.clip(whole, 0, 1)) > 60


def test_self_ensemble_of_an_equivariant_model_is_the_model() -> None:
    class Nearest(torch.nn.Module):  # nearest x2 upscaling commutes with flips and rotations
        upscale, in_chans = 2, 3

        def forward(self, x):
            return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")

    img = _image(11, 14)
    single, info = run_model(Nearest(), img, tile=0)
    both, info8 = run_model(Nearest(), img, tile=0, ensemble=True)
    assert info.ensemble == 1 and "self-ensemble" not in info.describe()
    np.testing.assert_allclose(both, single, atol=1e-7)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_matches_cpu_tiled_and_whole(make_tiny_conv, precision) -> None:
    model = make_tiny_conv(2)
    img = _image(40, 37)
    cpu, _ = run_model(model, img, tile=0)
    for tile in (0, 16):
        out, info = run_model(model, img, tile=tile, overlap=4, device="cuda", precision=precision)
        assert info.fp32_fallbacks == 0
        assert psnr_float(np.clip(out, 0, 1), np.clip(cpu, 0, 1)) > (
            80 if precision == "fp32" else 35
        )
