"""Restoration tasks by name (``sr-x4``, ``denoise-25``, ``jpeg-gray-q10``, ...).

A :class:`Task` turns a clean uint8 image into the pair the field tests on:

* ``target(hr)``: the ground truth as uint8 HWC (mod-cropped by the scale for SR; the gray
  version for gray tasks), what PSNR/SSIM are computed against;
* ``degrade(hr, seed)``: the low-quality input as float32 HWC in [0, 1] (not clipped for noise).

Blind tasks (``denoise``, ``jpeg``, and their ``-gray`` forms) train one model for a range of
levels: each call of ``degrade`` draws its level (noise sigma uniform in [0, 50], JPEG quality
uniform in 10..90) from ``seed``, so a training sample's degradation is a pure function of its
seed. A blind model is evaluated at fixed levels (``denoise-25``, ``jpeg-q10``): see
:meth:`Task.serves`.

Conventions (see docs/degradations.md): SR = MATLAB bicubic ``imresize`` of the mod-cropped HR by
``1/scale`` (uint8, as the ``LR_bicubic`` folders); denoising = SwinIR/MambaIR seeded Gaussian
noise; JPEG = OpenCV encoder, gray tasks on the Y channel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from resyn.degrade.jpeg import jpeg, rgb_to_gray_uint8, rgb_to_y_uint8
from resyn.degrade.noise import add_gaussian_noise
from resyn.degrade.resize import imresize, mod_crop

__all__ = ["BLIND_QUALITY", "BLIND_SIGMA", "TASK_FORMS", "Task", "parse_task"]

#: Noise sigma range (0-255 scale) of the blind ``denoise`` task: uniform, continuous.
BLIND_SIGMA = (0.0, 50.0)
#: JPEG quality range of the blind ``jpeg`` task: uniform over the integers, both ends included.
BLIND_QUALITY = (10, 90)

TASK_FORMS = (
    "sr-x<scale> (scale 2..8, e.g. sr-x2, sr-x3, sr-x4)",
    "denoise-<sigma> (color, sigma 1..255, e.g. denoise-15, denoise-25, denoise-50)",
    "denoise-gray-<sigma> (e.g. denoise-gray-25)",
    "jpeg-q<quality> (color, quality 1..100, e.g. jpeg-q10, jpeg-q40)",
    "jpeg-gray-q<quality> (e.g. jpeg-gray-q10)",
    "denoise / denoise-gray (blind: sigma drawn in 0..50 per sample)",
    "jpeg / jpeg-gray (blind: quality drawn in 10..90 per sample)",
)

_PATTERNS = {
    "sr": re.compile(r"sr-x(\d+)"),
    "denoise": re.compile(r"denoise-(gray-)?(\d+)"),
    "jpeg": re.compile(r"jpeg-(gray-)?q(\d+)"),
    "blind": re.compile(r"(denoise|jpeg)(-gray)?"),
}


TaskKind = Literal["sr", "denoise", "jpeg"]


@dataclass(frozen=True)
class Task:
    """One restoration task. Build it with :func:`parse_task`."""

    name: str
    kind: TaskKind
    scale: int = 1
    sigma: float | None = None
    quality: int | None = None
    gray: bool = False
    blind: bool = False  # one model for a range of levels (BLIND_SIGMA / BLIND_QUALITY)

    @property
    def channels(self) -> int:
        """Channels of the model input/output for this task (1 gray, 3 color)."""
        return 1 if self.gray else 3

    def target(self, hr: np.ndarray) -> np.ndarray:
        """The ground truth for ``hr`` as uint8 ``(H, W, C)``: color tasks give RGB (gray inputs
        replicated, alpha dropped), gray tasks give one channel (JPEG: BT.601 Y in [16, 235] as
        SwinIR; denoising: OpenCV luma as ``cv2.imread(..., IMREAD_GRAYSCALE)``); SR mod-crops to a
        multiple of the scale."""
        img = _as_uint8_image(hr)
        if self.gray:
            if img.ndim == 3 and img.shape[2] in (2, 4):  # drop alpha
                img = img[:, :, :-1]
            if img.ndim == 3 and img.shape[2] == 3:
                img = rgb_to_y_uint8(img) if self.kind == "jpeg" else rgb_to_gray_uint8(img)
            if img.ndim == 2:
                img = img[:, :, None]
        else:
            from resyn.io import to_rgb8

            if img.ndim == 3 and img.shape[2] == 1:
                img = img[:, :, 0]
            img = to_rgb8(img)
        if self.kind == "sr":
            img = mod_crop(img, self.scale)
        return np.ascontiguousarray(img)

    def degrade(self, hr: np.ndarray, seed: int = 0) -> np.ndarray:
        """The low-quality input for ``hr``: float32 ``(h, w, C)`` on the [0, 1] scale.

        ``seed`` affects noise tasks (0 reproduces the published test inputs) and blind tasks,
        whose level is drawn from it (:meth:`level`)."""
        gt = self.target(hr)
        if self.kind == "sr":
            return (imresize(gt, 1.0 / self.scale).astype(np.float32)) / np.float32(255.0)
        level = self.level(seed)
        if self.kind == "denoise":
            if level == 0:  # the blind range's clean end: add_gaussian_noise needs sigma > 0
                return gt.astype(np.float32) / np.float32(255.0)
            return add_gaussian_noise(gt, level, seed)
        return jpeg(gt, int(level)).astype(np.float32) / np.float32(255.0)

    def level(self, seed: int = 0) -> float:
        """The noise sigma (0-255 scale) or JPEG quality :meth:`degrade` applies with ``seed``:
        the task's own for a fixed level, drawn from ``seed`` for a blind task (sigma uniform in
        ``BLIND_SIGMA``, quality uniform over the integers of ``BLIND_QUALITY``)."""
        if self.kind == "sr":
            raise ValueError(f"task {self.name} has no noise or JPEG level")
        if not self.blind:
            value = self.sigma if self.kind == "denoise" else self.quality
            assert value is not None
            return value
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        rng = np.random.default_rng([int(seed), 0xB11D])
        if self.kind == "denoise":
            return float(rng.uniform(*BLIND_SIGMA))
        return int(rng.integers(BLIND_QUALITY[0], BLIND_QUALITY[1] + 1))

    def serves(self, other: Task) -> bool:
        """Whether a model trained for this task restores ``other``: the same task, or this one
        is blind and ``other`` is a fixed level of the same kind and color (``denoise`` serves
        ``denoise-15``/``-25``/``-50``, ``jpeg`` serves ``jpeg-q10``...). A color blind model also
        serves the gray forms (``denoise-gray-25``, ``jpeg-gray-q10``): gray inputs are
        replicated to RGB and the output channels averaged (resyn.restore, resyn.eval)."""
        if other.name == self.name:
            return True
        if not self.blind or other.blind or other.kind != self.kind:
            return False
        return other.gray == self.gray or not self.gray

    def lq_size(self, hr_shape: tuple[int, ...]) -> tuple[int, int]:
        """``(h, w)`` of :meth:`degrade`'s output for an HR image of shape ``hr_shape``."""
        if len(hr_shape) < 2:
            raise ValueError(f"hr_shape needs at least (H, W), got {hr_shape!r}")
        h, w = int(hr_shape[0]), int(hr_shape[1])
        if self.kind == "sr":
            if h < self.scale or w < self.scale:
                raise ValueError(f"image {h}x{w} is smaller than the scale {self.scale}")
            return h // self.scale, w // self.scale
        return h, w


def parse_task(name: str) -> Task:
    """Parse a task name such as ``sr-x4``, ``denoise-25``, ``denoise-gray-50``, ``jpeg-q10``,
    ``jpeg-gray-q40`` or a blind ``denoise`` / ``jpeg`` (case-insensitive).

    Raises:
        ValueError: unknown form or out-of-range number; the message lists the valid forms.
    """
    if not isinstance(name, str):
        raise ValueError(f"task name must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    forms = "; ".join(TASK_FORMS)
    if m := _PATTERNS["blind"].fullmatch(key):
        kind, gray = m.group(1), bool(m.group(2))
        return Task(name=key, kind=kind, gray=gray, blind=True)
    if m := _PATTERNS["sr"].fullmatch(key):
        scale = int(m.group(1))
        if not 2 <= scale <= 8:
            raise ValueError(f"task {name!r}: SR scale must be in 2..8. Valid forms: {forms}")
        return Task(name=f"sr-x{scale}", kind="sr", scale=scale)
    if m := _PATTERNS["denoise"].fullmatch(key):
        gray, sigma = bool(m.group(1)), int(m.group(2))
        if not 0 < sigma <= 255:
            raise ValueError(f"task {name!r}: sigma must be in 1..255. Valid forms: {forms}")
        canon = f"denoise-{'gray-' if gray else ''}{sigma}"
        return Task(name=canon, kind="denoise", sigma=float(sigma), gray=gray)
    if m := _PATTERNS["jpeg"].fullmatch(key):
        gray, quality = bool(m.group(1)), int(m.group(2))
        if not 1 <= quality <= 100:
            raise ValueError(f"task {name!r}: JPEG quality must be in 1..100. Valid forms: {forms}")
        canon = f"jpeg-{'gray-' if gray else ''}q{quality}"
        return Task(name=canon, kind="jpeg", quality=quality, gray=gray)
    raise ValueError(f"unknown task {name!r}. Valid forms: {forms}")


def _as_uint8_image(hr: np.ndarray) -> np.ndarray:
    if not isinstance(hr, np.ndarray):
        raise ValueError(f"expected a numpy image, got {type(hr).__name__}")
    if hr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {hr.dtype}")
    if hr.ndim not in (2, 3) or (hr.ndim == 3 and hr.shape[2] not in (1, 2, 3, 4)):
        raise ValueError(f"expected an HW or HWC (C in 1..4) image, got shape {hr.shape}")
    if 0 in hr.shape:
        raise ValueError(f"image is empty (shape {hr.shape})")
    return hr
