"""The inference core: run a restoration model on an image of any size.

``run_model`` takes a float ``(H, W, C)`` image in [0, 1] (C = the model's ``in_chans``) and
returns the model output ``(H*s, W*s, C)``. It

- pads inputs that are smaller than ``MIN_TILE`` (reflect, or replicate for tiny sides) and
  crops the output back, so any size from ``MIN_INPUT_SIDE`` pixels up works;
- splits large images into overlapping tiles and blends the tile outputs with a feathered
  window (a linear ramp over the overlap on every side that touches another tile, 1 elsewhere;
  the accumulated weights are divided out, so every output pixel is a convex combination);
- chooses the tile size automatically when the estimated memory of a whole-image pass exceeds a
  budget (``max_memory``);
- accumulates tiles one row of tiles at a time and converts finished rows straight into the
  output array, so a 4000x3000 photo at x4 never holds a float copy of the whole output;
- in ``bf16`` runs the model under autocast (with ``FP32_MODULES`` in float32, so the residual
  stream keeps float32) and re-runs any tile whose output is not finite in fp32 (with a
  warning), so reduced precision never yields black or NaN images; ``auto`` is bf16 where the
  device multiplies bf16 natively, else fp32 (``resyn.precision``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from resyn.models.descriptor import ModelDescriptor, describe
from resyn.restore.options import (  # noqa: F401  (MIN_INPUT_SIDE, DEFAULT_MAX_MEMORY: engine names)
    DEFAULT_MAX_MEMORY,
    MIN_INPUT_SIDE,
    MIN_TILE,
    InferenceOptions,
)

#: Tile sizes tried by the automatic tiler, largest first.
AUTO_TILE_SIZES = (1024, 768, 640, 512, 384, 320, 256, 192, 128, 96, 64)


@dataclass(frozen=True)
class TilingInfo:
    """How an image was processed; recorded in output metadata and evaluation protocols."""

    tile: int | None  # tile side in input pixels; None = whole image in one pass
    overlap: int
    tiles: int
    auto: bool  # True when the tile size was chosen by the memory budget
    estimated_bytes: int  # estimated peak memory of one forward pass as run
    fp32_fallbacks: int = 0  # bf16 tiles re-run in fp32 because their output was not finite
    ensemble: int = 1  # forward passes averaged per tile (8: flips and rotations)
    precision: str = "fp32"  # the precision the model ran in (``auto`` resolved)

    def describe(self) -> str:
        if self.tile is None:
            text = "whole image (no tiling)"
        else:
            how = "auto" if self.auto else "requested"
            text = (
                f"tile={self.tile} overlap={self.overlap} tiles={self.tiles} ({how}), "
                "linear feathered blending"
            )
        if self.ensemble > 1:
            text += f"; x{self.ensemble} self-ensemble (flips and 90-degree rotations averaged)"
        if self.fp32_fallbacks:
            text += f"; {self.fp32_fallbacks} tile(s) recomputed in fp32"
        return text


def model_scale(model: nn.Module) -> int:
    """The model's scale factor, from its descriptor."""
    return describe(model).scale


def model_channels(model: nn.Module) -> int:
    """The channels the model takes, from its descriptor."""
    return describe(model).in_channels


def estimate_memory(model: nn.Module, height: int, width: int) -> int:
    """Estimated peak bytes of one float32 forward pass on an ``height x width`` input: the
    descriptor's parameters plus its bytes per output pixel (``ModelDescriptor.memory_bytes``;
    for RWKV-IR calibrated against the peak RSS of rwkvir-light on CPU, docs/restore.md)."""
    return describe(model).memory_bytes(height, width)


def choose_tile(
    model: nn.Module, height: int, width: int, max_memory: int, overlap: int
) -> int | None:
    """None when the whole image fits ``max_memory``, else the largest tile that fits."""
    return _choose(describe(model), height, width, max_memory, overlap)


def _choose(
    descriptor: ModelDescriptor, height: int, width: int, max_memory: int, overlap: int
) -> int | None:
    if descriptor.memory_bytes(height, width) <= max_memory:
        return None
    for size in AUTO_TILE_SIZES:
        if size <= 2 * overlap:
            break
        if size >= max(height, width):
            continue
        if descriptor.memory_bytes(size, size) <= max_memory:
            return size
    return max(AUTO_TILE_SIZES[-1], 2 * overlap + MIN_TILE)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)`` with >= ``overlap``."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def ramp_window(length: int, ramp_before: int, ramp_after: int) -> np.ndarray:
    """1-D blending weights: a linear ramp (strictly positive) at the sides that overlap."""
    w = np.ones(length, dtype=np.float32)
    for ramp, side in ((ramp_before, 0), (ramp_after, 1)):
        ramp = min(ramp, length // 2)
        if ramp <= 0:
            continue
        values = (np.arange(ramp, dtype=np.float32) + 1.0) / (ramp + 1.0)
        if side == 0:
            w[:ramp] = np.minimum(w[:ramp], values)
        else:
            w[length - ramp :] = np.minimum(w[length - ramp :], values[::-1])
    return w


#: The eight symmetries of the square, as (horizontal flip, quarter turns): the geometric
#: self-ensemble of EDSR / RCAN ("+" results) runs the model on each and averages the outputs
#: mapped back.
DIHEDRAL = tuple((flip, turns) for flip in (False, True) for turns in range(4))


def self_ensemble(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The mean of ``model`` over the eight flips/rotations of ``x`` (N, C, H, W), each output
    mapped back to ``x``'s orientation (accumulated in float32)."""
    total = None
    for flip, turns in DIHEDRAL:
        xt = x.flip(3) if flip else x
        y = model(torch.rot90(xt, turns, (2, 3))).float()
        y = torch.rot90(y, -turns, (2, 3))
        y = y.flip(3) if flip else y
        total = y if total is None else total.add_(y)
    assert total is not None
    return total.div_(len(DIHEDRAL))


#: Submodules (by name) that run in float32 when the rest of the model runs under bf16
#: autocast. ``conv_first``, the shallow-feature convolution of RWKV-IR, SwinIR and MambaIR,
#: makes the residual stream: in bf16 every block's ``x + f(x)`` would round the running sum to
#: 8 bits of mantissa; in float32 the sum stays float32 (float32 + bf16 is float32) and only the
#: block branches (linear layers, convolutions) run in bf16; the measured effect on the shipped
#: weights is in docs/restore.md. LayerNorms then see float32 inputs and autocast keeps them in
#: float32; Bi-WKV always scans in float32.
FP32_MODULES = ("conv_first",)


@contextmanager
def fp32_modules(
    model: nn.Module, device_type: str, names: tuple[str, ...] | None = None
) -> Iterator[list[str]]:
    """While open, the submodules of ``model`` named in ``names`` (default ``FP32_MODULES``;
    those it has) run with autocast disabled on float32 inputs; yields the names found. Their
    ``forward`` is wrapped on the instance and restored on exit."""
    wanted = FP32_MODULES if names is None else names
    found = [(name, module) for name, module in model.named_modules() if name in wanted]
    for _, module in found:
        module.forward = _float32_forward(module.forward, device_type)
    try:
        yield [name for name, _ in found]
    finally:
        for _, module in found:
            del module.forward  # the class's forward again


def _float32_forward(forward: Callable[..., torch.Tensor], device_type: str) -> Callable:
    """``forward`` with autocast off and floating-point tensor arguments cast to float32."""

    def run(*args: object, **kwargs: object) -> torch.Tensor:
        args = tuple(
            a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args
        )
        with torch.autocast(device_type=device_type, enabled=False):
            return forward(*args, **kwargs)

    return run


class _Forward:
    """Runs the model on one (padded) tile with the precision and ensemble policies."""

    def __init__(
        self,
        model: nn.Module,
        descriptor: ModelDescriptor,
        device: torch.device,
        precision: str,
        ensemble: bool = False,
    ) -> None:
        self.model = model
        self.descriptor = descriptor
        self.device = device
        self.precision = precision
        self.ensemble = ensemble
        self.scale = descriptor.scale
        self.fallbacks = 0

    def _model(self, x: torch.Tensor) -> torch.Tensor:
        return self_ensemble(self.model, x) if self.ensemble else self.model(x)

    def __call__(self, patch: np.ndarray) -> np.ndarray:
        h, w, _ = patch.shape
        x = torch.from_numpy(np.ascontiguousarray(patch.transpose(2, 0, 1)))[None]
        x = x.to(self.device, torch.float32)
        size = self.descriptor.size
        ph, pw = size.padded(h, MIN_TILE) - h, size.padded(w, MIN_TILE) - w
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        y = self._run(x)
        y = y[:, :, : h * self.scale, : w * self.scale]
        return y[0].permute(1, 2, 0).float().cpu().numpy()

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if self.precision == "bf16":
                dev = self.device.type
                with (
                    torch.autocast(device_type=dev, dtype=torch.bfloat16),
                    fp32_modules(self.model, dev),
                ):
                    y = self._model(x)
                y = y.float()
                if torch.isfinite(y).all():
                    return y
                self.fallbacks += 1
                warnings.warn(
                    "bf16 output was not finite for a tile; recomputed it in fp32",
                    RuntimeWarning,
                    stacklevel=3,
                )
            return self._model(x).float()


def run_model(
    model: nn.Module,
    image: np.ndarray,
    options: InferenceOptions | None = None,
    *,
    out_dtype: type | np.dtype = np.float32,
    progress: Callable[[int, int], None] | None = None,
    **fields: Any,
) -> tuple[np.ndarray, TilingInfo]:
    """Run ``model`` on a float ``(H, W, C)`` image in [0, 1]; return ``(output, TilingInfo)``.

    ``options`` (:class:`InferenceOptions`: tile, overlap, memory budget, device, precision,
    ensemble), with any of its fields given as keywords replacing them (``tile=0``). The
    overlap is clipped to below half a tile. ``out_dtype``: float32 returns the raw model
    output (not clamped); uint8 / uint16 return the output clipped to [0, 1], scaled to 255 /
    65535 and rounded. ``progress(done, total)`` is called after every tile. The precision used
    is ``TilingInfo.precision``.
    """
    opts = InferenceOptions.of(options, **fields)
    descriptor = describe(model)
    dtype = _check_input(image, descriptor, out_dtype)
    h, w, c = image.shape
    tile, overlap, auto = plan_tiles(descriptor, h, w, opts)
    forward = _Forward(
        model.to(opts.torch_device).eval(),
        descriptor,
        opts.torch_device,
        _precision(opts, descriptor),
        opts.ensemble,
    )
    scale = descriptor.scale
    out = np.empty((h * scale, w * scale, c), dtype=dtype)
    image = np.asarray(image, dtype=np.float32)
    if tile is None:
        out[...] = _convert(forward(image), dtype)
        if progress is not None:
            progress(1, 1)
        tiles, est = 1, descriptor.memory_bytes(h, w)
    else:
        tiles = _run_tiles(forward, image, out, tile, overlap, progress)
        est = descriptor.memory_bytes(tile, tile)
    views = len(DIHEDRAL) if opts.ensemble else 1
    return out, TilingInfo(
        tile, overlap if tile else 0, tiles, auto, est, forward.fallbacks, views, forward.precision
    )


def _check_input(
    image: np.ndarray, descriptor: ModelDescriptor, out_dtype: type | np.dtype
) -> np.dtype:
    """``ValueError`` for an image the model cannot take; the output sample type."""
    if image.ndim != 3:
        raise ValueError(f"expected an (H, W, C) float image, got shape {image.shape}")
    h, w, c = image.shape
    chans = descriptor.in_channels
    if c != chans:
        raise ValueError(f"the model takes {chans}-channel input, the image has {c} channel(s)")
    if min(h, w) < MIN_INPUT_SIDE:
        raise ValueError(
            f"image of {w}x{h} pixels is too small for the model: each side must be at least "
            f"{MIN_INPUT_SIDE} pixels"
        )
    dtype = np.dtype(out_dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.uint8), np.dtype(np.uint16)):
        raise ValueError(f"out_dtype must be float32, uint8 or uint16, not {dtype}")
    return dtype


def plan_tiles(
    descriptor: ModelDescriptor, height: int, width: int, options: InferenceOptions
) -> tuple[int | None, int, bool]:
    """``(tile, overlap, auto)``: the tile side (None = whole image), the overlap clipped to
    below half a tile, and whether the memory budget chose the tile."""
    tile, overlap = options.tile, options.overlap
    auto = tile is None and options.max_memory is not None
    if tile is None and options.max_memory is not None:
        tile = _choose(descriptor, height, width, options.max_memory, overlap)
    elif tile == 0:
        tile = None
    if tile is not None and tile >= height and tile >= width:
        tile = None
    if tile is not None:
        overlap = min(overlap, (tile - 1) // 2)
    return tile, overlap, auto


def _precision(options: InferenceOptions, descriptor: ModelDescriptor) -> str:
    """The precision to run in: ``auto`` resolved for the device, then checked against the
    precisions the model supports (``auto`` falls back to fp32)."""
    resolved = options.resolved_precision()
    if resolved in descriptor.precisions:
        return resolved
    if options.precision == "auto" and "fp32" in descriptor.precisions:
        return "fp32"
    raise ValueError(
        f"{descriptor.architecture} runs in {', '.join(descriptor.precisions)}, not {resolved}"
    )


def _run_tiles(
    forward: _Forward,
    image: np.ndarray,
    out: np.ndarray,
    tile: int,
    overlap: int,
    progress: Callable[[int, int], None] | None,
) -> int:
    """Run ``forward`` on overlapping tiles of ``image`` and blend them into ``out``, one row
    of tiles at a time: the accumulator holds output rows [acc_start, acc_start + tile*scale);
    rows above the current tile row are final and are written to ``out``. Returns the number
    of tiles."""
    h, w, c = image.shape
    scale = forward.scale
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    total, done = len(ys) * len(xs), 0
    acc_start = 0
    acc = np.zeros((tile * scale, w * scale, c), dtype=np.float32)
    wsum = np.zeros((tile * scale, w * scale), dtype=np.float32)
    for iy, y0 in enumerate(ys):
        y1 = min(y0 + tile, h)
        n = y0 * scale - acc_start
        if n > 0:
            _flush(out, acc_start, acc[:n], wsum[:n])
            keep = acc.shape[0] - n
            acc[:keep] = acc[n:]
            wsum[:keep] = wsum[n:]
            acc[keep:] = 0.0
            wsum[keep:] = 0.0
            acc_start = y0 * scale
        wy = _edge_ramps((y1 - y0) * scale, overlap * scale, iy, len(ys))
        for ix, x0 in enumerate(xs):
            x1 = min(x0 + tile, w)
            pred = forward(image[y0:y1, x0:x1])
            wx = _edge_ramps((x1 - x0) * scale, overlap * scale, ix, len(xs))
            weight = wy[:, None] * wx[None, :]
            r0, r1 = y0 * scale - acc_start, y1 * scale - acc_start
            pred *= weight[:, :, None]
            acc[r0:r1, x0 * scale : x1 * scale] += pred
            wsum[r0:r1, x0 * scale : x1 * scale] += weight
            done += 1
            if progress is not None:
                progress(done, total)
    rows = h * scale - acc_start
    _flush(out, acc_start, acc[:rows], wsum[:rows])
    return total


def _edge_ramps(length: int, ramp: int, index: int, count: int) -> np.ndarray:
    """The blending window of tile ``index`` of ``count`` along one axis: ramps on the sides
    that touch another tile."""
    return ramp_window(length, ramp if index > 0 else 0, ramp if index < count - 1 else 0)


def _flush(out: np.ndarray, start: int, acc: np.ndarray, wsum: np.ndarray, rows: int = 64) -> None:
    """Normalise accumulated rows by their weights and store them in ``out`` (a few rows at a
    time, so the temporaries stay small)."""
    for r in range(0, acc.shape[0], rows):
        block = acc[r : r + rows] / wsum[r : r + rows, :, None]
        out[start + r : start + r + block.shape[0]] = _convert(block, out.dtype)


def _convert(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.float32:
        return values
    peak = 255.0 if dtype == np.uint8 else 65535.0
    return np.rint(np.clip(values, 0.0, 1.0) * peak).astype(dtype)


def psnr_float(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) between two float images in [0, 1]; used to compare tiled and whole outputs."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)
