"""``resyn.restore(image, task=...)``: restore one image array with a RWKV-IR (or any resyn) model.

Layout rules (the output keeps the input's layout and sample type):

- ``uint8`` in -> ``uint8`` out; ``uint16`` in -> ``uint16`` out (the model runs in float on
  ``x / 65535``, so 16-bit precision is kept up to the model's own accuracy);
- gray ``(H, W)`` stays gray: a 1-channel model gets it directly; a 3-channel (color) model gets
  the gray plane replicated to RGB and the mean of its three output channels is returned;
- for denoising and JPEG tasks, an RGB image whose three channels are equal is gray too: the
  color model runs on it (the gray plane replicated) and the mean of its output channels is
  written back to all three, so no color tint appears in a gray scan;
- a color image given to a 1-channel model is restored one channel at a time;
- alpha (``(H, W, 2)`` / ``(H, W, 4)``) is not shown to the model: it is resized with bicubic
  interpolation to the output size (unchanged for scale 1) and re-attached.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from resyn.models.descriptor import ModelDescriptor, describe
from resyn.restore.engine import TilingInfo, run_model
from resyn.restore.options import DEFAULT_MAX_MEMORY, InferenceOptions, PrecisionChoice
from resyn.restore.weights import (
    WeightsError,
    check_weights_for_task,
    infer_task_name,
    resolve_weights,
)

if TYPE_CHECKING:
    from resyn.degrade.tasks import Task


@dataclass
class Restorer:
    """A loaded model ready to restore images for one task."""

    model: nn.Module
    task: Task
    weights: Path | None
    meta: dict[str, Any]

    @property
    def descriptor(self) -> ModelDescriptor:
        return describe(self.model)

    @property
    def scale(self) -> int:
        return self.descriptor.scale

    @classmethod
    def from_model(cls, model: nn.Module, task: str) -> Restorer:
        """Wrap an in-memory model (tests, notebooks) after the same task checks as files."""
        from resyn.degrade import parse_task
        from resyn.models.weights import model_config_dict

        parsed = parse_task(task)
        meta = {"arch": getattr(type(model), "arch", None), "config": model_config_dict(model)}
        meta["info"], meta["preset"] = {}, describe(model).preset
        check_weights_for_task(meta, parsed, "the model")
        return cls(model=model.eval(), task=parsed, weights=None, meta=meta)

    def describe(self) -> str:
        descriptor = self.descriptor
        name = descriptor.preset or descriptor.architecture
        where = self.weights.name if self.weights else "in-memory model"
        return f"{name} ({where})"


def load_restorer(
    task: str | None = "sr-x4",
    weights: str | os.PathLike[str] | None = None,
    *,
    device: str = "cpu",
) -> Restorer:
    """Resolve and load weights for ``task`` (shipped weights when ``weights`` is None).

    With ``task=None`` and explicit weights, the task recorded in the weights is used.
    Raises ``WeightsError`` (a ValueError) with a message naming the cause.
    """
    from resyn.degrade import parse_task
    from resyn.models import load_model
    from resyn.models.weights import WeightsFileError

    if task is None:
        if weights is None:
            raise WeightsError("give a task (e.g. sr-x4) or a weights file")
        path = resolve_weights("", weights)
        meta = _read_meta(path)
        task = infer_task_name(meta)
    parsed = parse_task(task)
    path = resolve_weights(parsed.name, weights)
    meta = _read_meta(path)
    check_weights_for_task(meta, parsed, str(path))
    try:
        # Shipped weights come with the package; any other file is checked as untrusted.
        model = load_model(path, device=device, trusted=weights is None)
    except WeightsFileError as exc:  # already names the file
        raise WeightsError(str(exc)) from None
    except (RuntimeError, ValueError, KeyError) as exc:
        raise WeightsError(f"cannot load {path}: {exc}") from None
    return Restorer(model=model, task=parsed, weights=path, meta=meta)


def _read_meta(path: Path) -> dict[str, Any]:
    from resyn.models import read_metadata

    try:
        return read_metadata(path)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        raise WeightsError(str(exc)) from None


def restore_array(
    restorer: Restorer,
    image: np.ndarray,
    options: InferenceOptions | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    **fields: Any,
) -> tuple[np.ndarray, TilingInfo]:
    """Restore a canonical image array (see module docs); return ``(image, TilingInfo)``.

    ``options`` (:class:`InferenceOptions`), with any of its fields given as keywords replacing
    them (``tile=0, precision="auto"``); the precision used is ``TilingInfo.precision``.
    """
    from resyn.io import split_alpha

    opts = InferenceOptions.of(options, **fields)
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8 or uint16 samples, got {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 2, 3, 4)):
        raise ValueError(f"unsupported image layout {image.shape}")
    peak = 255.0 if image.dtype == np.uint8 else 65535.0
    color, alpha = split_alpha(image)
    if color.ndim == 3 and color.shape[2] == 1:
        color = color[:, :, 0]
    gray_rgb = _is_gray_rgb(color) and restorer.task.kind in ("denoise", "jpeg")
    if gray_rgb:
        color = color[:, :, 0]
    gray = color.ndim == 2
    x = color.astype(np.float32)
    x /= np.float32(peak)
    chans = restorer.descriptor.in_channels
    kwargs: dict[str, Any] = dict(options=opts, progress=progress)
    # The engine converts finished rows straight to integers, so no float copy of the whole
    # output is ever held (a 4000x3000 photo at x4 would need 2.3 GB per float copy).
    dtype = image.dtype
    if gray and chans == 1:
        out, info = run_model(restorer.model, x[:, :, None], out_dtype=dtype, **kwargs)
        out = out[:, :, 0]
    elif gray:
        # color model on gray: replicate, then average the three (clipped, 16-bit) outputs
        rgb, info = run_model(
            restorer.model, np.repeat(x[:, :, None], 3, axis=2), out_dtype=np.uint16, **kwargs
        )
        del x
        out = np.empty(rgb.shape[:2], dtype=dtype)
        for r in range(0, rgb.shape[0], 256):
            mean = rgb[r : r + 256].mean(axis=2, dtype=np.float32) / np.float32(65535.0)
            out[r : r + 256] = np.rint(mean * np.float32(peak)).astype(dtype)
    elif chans == 1:
        out = np.empty((0,), dtype=dtype)
        for i in range(3):
            plane, info = run_model(restorer.model, x[:, :, i : i + 1], out_dtype=dtype, **kwargs)
            if out.size == 0:
                out = np.empty((*plane.shape[:2], 3), dtype=dtype)
            out[:, :, i] = plane[:, :, 0]
    else:
        out, info = run_model(restorer.model, x, out_dtype=dtype, **kwargs)
    if gray_rgb:
        out = np.repeat(out[:, :, None], 3, axis=2)
    if alpha is not None:
        a = _resize_alpha(alpha, out.shape[1], out.shape[0])
        out = np.concatenate([out if out.ndim == 3 else out[:, :, None], a[:, :, None]], axis=2)
    return out, info


def _is_gray_rgb(color: np.ndarray) -> bool:
    """An RGB array whose three channels are equal (a gray image stored as RGB)."""
    if color.ndim != 3 or color.shape[2] != 3:
        return False
    first = color[:, :, 0]
    return bool(np.array_equal(first, color[:, :, 1]) and np.array_equal(first, color[:, :, 2]))


def _resize_alpha(alpha: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    if alpha.shape == (height, width):
        return alpha
    peak = 255.0 if alpha.dtype == np.uint8 else 65535.0
    a = cv2.resize(alpha.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    return np.rint(np.clip(a, 0.0, peak)).astype(alpha.dtype)


_CACHE: dict[tuple[str | None, str | None, str, float], Restorer] = {}


def restore(
    image: np.ndarray | str | os.PathLike[str],
    task: str | None = "sr-x4",
    weights: str | os.PathLike[str] | None = None,
    tile: int | None = None,
    overlap: int = 32,
    device: str = "cpu",
    precision: PrecisionChoice = "fp32",
    max_memory: int | None = DEFAULT_MAX_MEMORY,
    ensemble: bool = False,
) -> np.ndarray:
    """Restore one image; returns an array with the input's layout and sample type.

    ``image``: a canonical array (see ``resyn.io.read_image``) or a path to an image file.
    ``task``: ``sr-x2|sr-x3|sr-x4|denoise|denoise-25|jpeg|jpeg-q10|denoise-gray-25...``
    (``resyn.restore.task_weights()`` lists them with their shipped weights); the shipped
    weights for it are used unless ``weights`` names a file (``denoise-25`` uses the blind
    ``denoise`` model when no ``denoise-25`` weights are shipped).
    ``tile``: None = automatic under ``max_memory`` bytes, 0 = whole image, N = N x N tiles
    with ``overlap`` pixels blended. ``precision``: ``fp32``, ``bf16`` or ``auto`` (bf16 on a
    CUDA GPU that supports it or a CPU with AVX512-BF16 / AMX-BF16, else fp32; see
    ``resyn.precision``). ``ensemble``: average the model over the eight flips and rotations
    of the input (slightly better, 8x the time).
    """
    options = InferenceOptions(
        tile=tile,
        overlap=overlap,
        max_memory=max_memory,
        device=device,
        precision=precision,
        ensemble=ensemble,
    )
    if not isinstance(image, np.ndarray):
        from resyn.io import read_image

        image = read_image(image)
    key_path = None if weights is None else str(Path(weights).resolve())
    mtime = Path(key_path).stat().st_mtime if key_path and Path(key_path).exists() else 0.0
    key = (task, key_path, device, mtime)
    restorer = _CACHE.get(key)
    if restorer is None:
        restorer = load_restorer(task, weights, device=device)
        _CACHE.clear()
        _CACHE[key] = restorer
    out, _ = restore_array(restorer, image, options)
    return out
