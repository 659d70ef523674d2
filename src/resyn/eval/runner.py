"""Evaluate models on benchmark folders with the field's conventions (docs/evaluation.md).

Per image: the ground truth is ``Task.target(HR)`` (uint8; mod-cropped by the scale for SR; gray
for gray tasks), the input is the LR file or ``Task.degrade(HR, seed)``, the model output is
clipped to [0, 1] and quantised with ``round(x * 255)`` to uint8, and ``resyn.metrics`` gives
PSNR/SSIM in float64 on all channels and on BT.601 Y, with ``crop_border = scale`` for SR (0
otherwise). Complexity and BPP are computed on the ground truth.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from resyn.eval.data import BenchmarkSet
from resyn.eval.models import EvalModel, run_baseline
from resyn.restore.engine import run_model
from resyn.restore.options import MIN_TILE, InferenceOptions

if TYPE_CHECKING:
    from resyn.degrade.tasks import Task

COLUMNS = ("name", "psnr", "ssim", "psnr_y", "ssim_y", "complexity", "bpp", "seconds")


def tiling_policy(options: InferenceOptions) -> str:
    """How ``options`` tile and pad, in words, for the evaluation protocol."""
    if options.tile == 0:
        how = "whole image in one forward pass"
    elif options.tile:
        how = f"tiles of {options.tile}x{options.tile} input pixels, overlap {options.overlap}"
    elif options.max_memory is None:
        how = "whole image in one forward pass"
    else:
        how = (
            f"whole image unless the estimated memory exceeds {options.max_memory / 2**30:.1f} "
            f"GiB, then tiles with overlap {options.overlap} (see 'Tiling used')"
        )
    return (
        f"{how}; inputs smaller than {MIN_TILE} px are reflect-padded and the output cropped; "
        "tiles are blended with a linear feathered window; models pad internally to their "
        "window size and crop"
    )


@dataclass
class DatasetResult:
    dataset: str
    model: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # name -> reason
    tiling: set[str] = field(default_factory=set)

    def mean(self, column: str) -> float:
        values = [r[column] for r in self.rows if np.isfinite(r[column])]
        return float(np.mean(values)) if values else float("nan")


def crop_border(task: Task) -> int:
    return int(task.scale) if task.kind == "sr" else 0


def _load_pair(pair, task: Task, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(ground truth uint8 HWC, input float32 HWC in [0, 1] scale)."""
    from resyn.io import read_image, to_rgb8

    hr = read_image(pair.hr)
    if hr.dtype != np.uint8:
        hr = to_rgb8(hr) if not task.gray else np.rint(hr / 257.0).astype(np.uint8)
    gt = task.target(hr)
    if pair.lr is None:
        return gt, task.degrade(hr, seed=seed)
    lr = read_image(pair.lr)
    if lr.dtype != np.uint8:
        lr = np.rint(lr / 257.0).astype(np.uint8)
    if task.gray:
        from resyn.degrade import rgb_to_gray_uint8

        lr = lr[:, :, :-1] if lr.ndim == 3 and lr.shape[2] in (2, 4) else lr
        lr = rgb_to_gray_uint8(lr) if lr.ndim == 3 and lr.shape[2] == 3 else lr
        lr = lr.reshape(lr.shape[0], lr.shape[1], 1)
    else:
        lr = to_rgb8(lr)
    return gt, lr.astype(np.float32) / np.float32(255.0)


def _quantise(x: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def _run_network(model: Any, lq: np.ndarray, options: InferenceOptions) -> tuple[np.ndarray, Any]:
    """uint8 output of ``model`` on ``lq``. A color model given a gray input (a blind color
    denoising / JPEG model on a gray task) runs on the gray plane replicated to RGB; the mean of
    its three outputs is the result, as ``resyn.restore`` does for gray images."""
    from resyn.restore.engine import model_channels

    if lq.shape[2] == 1 and model_channels(model) == 3:
        rgb, info = run_model(model, np.repeat(lq, 3, axis=2), options, out_dtype=np.uint16)
        mean = rgb.mean(axis=2, keepdims=True, dtype=np.float64) / 65535.0
        return np.rint(mean * 255.0).astype(np.uint8), info
    return run_model(model, lq, options, out_dtype=np.uint8)


def evaluate_dataset(
    models: list[EvalModel],
    data: BenchmarkSet,
    task: Task,
    options: InferenceOptions,
    *,
    progress: Callable[[str], None] | None = None,
    on_output: Callable[[EvalModel, str, np.ndarray], None] | None = None,
) -> list[DatasetResult]:
    """Run every model on every pair of ``data``; one ``DatasetResult`` per model."""
    from resyn.complexity import bpp, complexity
    from resyn.io import ImageReadError
    from resyn.metrics import psnr, ssim

    results = [DatasetResult(data.name, m.label) for m in models]
    border = crop_border(task)
    # auto resolved once, so every image runs as the protocol says
    run_options = dataclasses.replace(options, precision=options.resolved_precision())
    for pair in data.pairs:
        if pair.name in data.unreadable:
            for r in results:
                r.skipped[pair.name] = data.unreadable[pair.name]
            if progress:
                progress(pair.name)
            continue
        try:
            gt, lq = _load_pair(pair, task, options.seed)
            s = task.scale if task.kind == "sr" else 1
            if (lq.shape[0] * s, lq.shape[1] * s) != gt.shape[:2]:
                raise ValueError(
                    f"input {lq.shape[1]}x{lq.shape[0]} x{s} does not match the "
                    f"(mod-cropped) HR {gt.shape[1]}x{gt.shape[0]}"
                )
            g2 = gt[:, :, 0] if gt.shape[2] == 1 else gt
            cplx, bits = complexity(g2).score, bpp(g2)
        except (ImageReadError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, ImageReadError) else str(exc)
            for r in results:
                r.skipped[pair.name] = reason
            if progress:
                progress(pair.name)
            continue
        for model, result in zip(models, results, strict=True):
            start = time.perf_counter()
            if model.model is None:
                out = run_baseline(model.kind, _quantise(lq), task)
                result.tiling.add("none (no network)")
            else:
                out, info = _run_network(model.model, lq, run_options)
                result.tiling.add(info.describe())
            seconds = time.perf_counter() - start
            if on_output is not None:
                on_output(model, pair.name, out)
            y_ok = out.shape[2] == 3
            result.rows.append(
                {
                    "name": pair.name,
                    "psnr": psnr(out, gt, crop_border=border),
                    "ssim": ssim(out, gt, crop_border=border),
                    "psnr_y": psnr(out, gt, crop_border=border, y_channel=y_ok),
                    "ssim_y": ssim(out, gt, crop_border=border, y_channel=y_ok),
                    "complexity": float(cplx),
                    "bpp": float(bits),
                    "seconds": seconds,
                }
            )
        if progress:
            progress(pair.name)
    return results
