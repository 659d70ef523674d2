"""Paired training and validation data, deterministic per sample.

Folder layout (BasicSR, as written by ``resyn dataset build``)::

    DIR/HR/<name>.png
    DIR/LR_bicubic/X{s}/<name>x{s}.png      (or <name>.png; optional)

``DIR`` may also be a plain folder of images (used as HR). SR without an LR folder makes the LR
with MATLAB bicubic (``resyn.degrade.imresize``) once per image and caches it; denoising and JPEG
need only HR: noise / JPEG are applied on the fly to each training patch.

Determinism: training sample number ``k`` (``k = step * total_batch + position in the batch``) is
a pure function of ``(seed, k)``: the image (a per-epoch permutation seeded by ``(seed, epoch)``),
the crop, the flips / rotation and the noise seed (which, for a blind task, also draws the
sample's noise sigma or JPEG quality: ``Task.level``). So the data stream does not depend on the
number of devices, workers or accumulation steps, and a resumed run sees exactly the samples an
uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from resyn.errors import ResynError

if TYPE_CHECKING:
    from resyn.degrade.tasks import Task


class DataError(ResynError, ValueError):
    """A data folder that cannot be trained on; the message names the folder or file."""


@dataclass(frozen=True)
class Pair:
    name: str
    hr: Path
    lr: Path | None


def find_pairs(
    root: str | Path, task: Task, *, what: str = "data", prefer_sub: bool = False
) -> list[Pair]:
    """HR images of ``root`` and, for SR, their LR files when ``root/LR_bicubic/X{s}`` exists.

    With ``prefer_sub`` (training) and a ``root/HR_sub`` folder (``resyn dataset build --crop``),
    the sub-image crops and ``LR_bicubic_sub/X{s}`` are used instead, as BasicSR trains.
    """
    from resyn.io import find_images

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{what} folder does not exist: {root}")
    sub = prefer_sub and (root / "HR_sub").is_dir()
    hr_dir = root / ("HR_sub" if sub else "HR")
    if not hr_dir.is_dir():
        hr_dir = root
    skip = {"LR_bicubic", "LR_bicubic_sub", "HR_sub", ".resyn_state"}
    hrs = [p for p in find_images([hr_dir]) if not (set(p.relative_to(hr_dir).parts[:-1]) & skip)]
    if not hrs:
        raise DataError(f"{what} folder {hr_dir} contains no images")
    lr_dir = root / ("LR_bicubic_sub" if sub else "LR_bicubic") / f"X{task.scale}"
    if task.kind != "sr" or not lr_dir.is_dir():
        return [Pair(p.stem, p, None) for p in hrs]
    pairs = []
    for p in hrs:
        cands = [lr_dir / f"{p.stem}x{task.scale}{p.suffix}", lr_dir / p.name]
        lr = next((c for c in cands if c.is_file()), None)
        if lr is None:
            raise DataError(f"{what}: no LR image for {p} in {lr_dir} (looked for {cands[0].name})")
        pairs.append(Pair(p.stem, p, lr))
    return pairs


def check_pairs(pairs: list[Pair], scale: int, *, min_hr: int = 1, what: str = "data") -> None:
    """Header-only size checks: LR x scale must match HR (HR may exceed by < scale pixels, which
    is mod-cropped), and every HR side must be at least ``min_hr`` (the training patch)."""
    for pair in pairs:
        w, h = _header_size(pair.hr, what)
        if min(h, w) < min_hr:
            raise DataError(
                f"{what}: {pair.hr} is {w}x{h}, smaller than the training patch {min_hr}"
            )
        if pair.lr is None:
            continue
        lw, lh = _header_size(pair.lr, what)
        if not (0 <= h - lh * scale < scale and 0 <= w - lw * scale < scale):
            raise DataError(
                f"{what}: LR {pair.lr} is {lw}x{lh} but HR {pair.hr} is {w}x{h}; "
                f"with scale {scale} the HR should be {lw * scale}x{lh * scale}"
            )


def decode_all(pairs: list[Pair], *, what: str = "data", max_bytes: int | None = None) -> bool:
    """Decode every file of ``pairs`` once: a truncated or corrupt image whose header is fine
    (``check_pairs`` reads headers only) is a DataError naming it, before training starts.

    Skipped (returns False) when the files total more than ``max_bytes``: decoding a large
    dataset takes long, and such an image is then met (and named) during training instead."""
    from resyn.io import ImageReadError, read_image

    paths = [p for pair in pairs for p in (pair.hr, pair.lr) if p is not None]
    if max_bytes is not None and sum(p.stat().st_size for p in paths) > max_bytes:
        return False
    for path in paths:
        try:
            read_image(path)
        except ImageReadError as exc:
            raise DataError(f"{what}: cannot read {path}: {exc.reason}") from None
    return True


def _header_size(path: Path, what: str) -> tuple[int, int]:
    """(width, height) from the image header; an unreadable file is a DataError naming it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{what}: cannot read {path} ({exc})") from None


def _load(path: Path, task: Task, target: bool = True) -> np.ndarray:
    """uint8 HWC: the task's ground truth (``Task.target``: gray tasks one channel, SR
    mod-cropped) or, for LR files, plain RGB."""
    from resyn.io import ImageReadError, read_image, to_rgb8

    try:
        rgb = to_rgb8(read_image(path))
    except ImageReadError as exc:
        raise DataError(f"cannot read {path}: {exc.reason}") from None
    return task.target(rgb) if target else rgb


def load_pair(pair: Pair, task: Task) -> tuple[np.ndarray, np.ndarray | None]:
    """(HR, LR) as uint8 arrays in task space; SR HR mod-cropped to LR x scale."""
    from resyn.degrade import imresize

    hr = _load(pair.hr, task)
    if task.kind != "sr":
        return hr, None
    s = task.scale
    if pair.lr is not None:
        lr = _load(pair.lr, task, target=False)
        if lr.shape[0] * s != hr.shape[0] or lr.shape[1] * s != hr.shape[1]:
            raise DataError(
                f"LR {pair.lr} ({lr.shape[1]}x{lr.shape[0]}) x{s} does not match HR {pair.hr}"
            )
        return hr, lr
    return hr, imresize(hr, 1.0 / s)


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    if img.ndim == 2:
        img = img[:, :, None]
    if img.dtype == np.uint8:
        img = img.astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32))


def _augment(imgs: list[np.ndarray], rng: np.random.Generator, hflip: bool, rot: bool):
    h = hflip and rng.random() < 0.5
    v = rot and rng.random() < 0.5
    t = rot and rng.random() < 0.5
    out = []
    for img in imgs:
        if h:
            img = img[:, ::-1]
        if v:
            img = img[::-1]
        if t:
            img = img.swapaxes(0, 1)
        out.append(img)
    return out


class TrainSet(Dataset):
    """Random patches: ``dataset[k]`` -> ``(lq, gt)`` float32 CHW tensors in [0, 1].

    ``k`` is the global sample number (any non-negative int); see the module docstring.
    """

    def __init__(
        self,
        pairs: list[Pair],
        task: Task,
        patch: int,
        *,
        seed: int = 0,
        hflip: bool = True,
        rot90: bool = True,
        enlarge_ratio: int = 1,
        cache_bytes: int = 2 << 30,
    ) -> None:
        self.pairs, self.task, self.patch, self.seed = pairs, task, patch, seed
        self.hflip, self.rot90, self.enlarge = hflip, rot90, enlarge_ratio
        self.cache_bytes = cache_bytes
        self._cache: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        self._cached = 0
        self._perm: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:  # one "epoch"; indices beyond it are valid too
        return len(self.pairs) * self.enlarge

    def image_index(self, k: int) -> int:
        m = len(self)
        epoch, pos = divmod(k, m)
        if self._perm is None or self._perm[0] != epoch:
            rng = np.random.default_rng([self.seed, 0x5EED, epoch])
            self._perm = (epoch, rng.permutation(m))
        return int(self._perm[1][pos]) % len(self.pairs)

    def _get(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        if i in self._cache:
            return self._cache[i]
        hr, lr = load_pair(self.pairs[i], self.task)
        size = hr.nbytes + (lr.nbytes if lr is not None else 0)
        if self._cached + size <= self.cache_bytes:
            self._cache[i] = (hr, lr)
            self._cached += size
        return hr, lr

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = int(k)
        hr, lr = self._get(self.image_index(k))
        rng = np.random.default_rng([self.seed, 0xC0DE, k])
        if self.task.kind == "sr":
            s, lp = self.task.scale, self.patch // self.task.scale
            y = int(rng.integers(0, lr.shape[0] - lp + 1))
            x = int(rng.integers(0, lr.shape[1] - lp + 1))
            lq = lr[y : y + lp, x : x + lp]
            gt = hr[y * s : (y + lp) * s, x * s : (x + lp) * s]
            lq, gt = _augment([lq, gt], rng, self.hflip, self.rot90)
            return _to_tensor(lq), _to_tensor(gt)
        p = self.patch
        y = int(rng.integers(0, hr.shape[0] - p + 1))
        x = int(rng.integers(0, hr.shape[1] - p + 1))
        (gt,) = _augment([hr[y : y + p, x : x + p]], rng, self.hflip, self.rot90)
        gt = np.ascontiguousarray(gt)
        noise_seed = int(rng.integers(0, 2**31 - 1))
        lq = self.task.degrade(gt, seed=noise_seed)
        return _to_tensor(np.asarray(lq, dtype=np.float32)), _to_tensor(gt)


class StepSampler(Sampler[int]):
    """Yields the global sample numbers this rank trains on, from ``start_step`` to the end.

    Step ``s`` uses samples ``s*T .. s*T+T-1`` (``T`` = total batch); micro-batch ``m`` of rank
    ``r`` takes the slice ``(m*world + r)*b .. +b`` (``b`` = per-device batch).

    ``len()`` is the whole schedule's count (from step 0) even when resuming: Lightning restores
    its count of the epoch's batches (``start_step`` of them done) and ends the epoch at
    ``len()``; a length of only the remaining steps made it end the epoch early and iterate the
    sampler again from ``start_step``, repeating those samples.
    """

    def __init__(
        self,
        *,
        total: int,
        per_device: int,
        accumulate: int,
        rank: int,
        world: int,
        start_step: int,
        iterations: int,
    ) -> None:
        if per_device * accumulate * world != total:
            raise ValueError(
                f"per-device batch {per_device} x accumulation {accumulate} x world {world} "
                f"!= total batch {total}"
            )
        self.total, self.b, self.accum = total, per_device, accumulate
        self.rank, self.world = rank, world
        self.start, self.iterations = start_step, iterations

    def __len__(self) -> int:
        return self.iterations * self.accum * self.b

    def __iter__(self) -> Iterator[int]:
        for s in range(self.start, self.iterations):
            for m in range(self.accum):
                base = s * self.total + (m * self.world + self.rank) * self.b
                yield from range(base, base + self.b)


@dataclass
class ValImage:
    name: str
    lq: torch.Tensor  # 1CHW float32 in [0, 1]
    gt: np.ndarray  # uint8 HWC or HW
    baseline: np.ndarray  # uint8: bicubic upscale of the LR (SR) or the degraded input


def load_val(pairs: list[Pair], task: Task, *, seed: int = 0) -> list[ValImage]:
    """Full validation images; noisy inputs use the fixed ``seed`` for every image (0 is the
    published test convention)."""
    from resyn.degrade import imresize

    out = []
    for pair in pairs:
        hr, lr = load_pair(pair, task)
        if task.kind == "sr":
            lq = lr.astype(np.float32) / 255.0
            base = imresize(lr, task.scale)
        else:
            lq = np.asarray(task.degrade(hr, seed=seed), dtype=np.float32)
            base = np.clip(np.round(lq * 255.0), 0, 255).astype(np.uint8)
        out.append(ValImage(pair.name, _to_tensor(lq)[None], hr, base))
    return out
