"""Benchmark folders: find HR images and their low-quality inputs, checked before any work.

Accepted layouts for a dataset folder ``DIR``:

- ``DIR/HR/*.png`` (+ optional ``DIR/LR_bicubic/X{s}/``), the BasicSR/DIV2K layout;
- ``DIR/*.png``: the folder itself holds the HR images.

For SR tasks an LR file is looked up in ``DIR/LR_bicubic/X{s}`` (or ``x{s}``) as
``<stem>x{s}.<ext>`` (DIV2K naming) or under the HR file's own stem; without an LR folder, LR
images are made from the mod-cropped HR with MATLAB-bicubic ``resyn.degrade.imresize``. Noisy and
JPEG inputs are always made from the HR with ``Task.degrade(hr, seed)`` (same seed for every
image, 0 by default: the SwinIR/MambaIR test convention).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from resyn.errors import ResynError
from resyn.io import IMAGE_EXTENSIONS

if TYPE_CHECKING:
    from resyn.degrade.tasks import Task


class EvalError(ResynError, ValueError):
    """Bad evaluation input, reported before any work starts."""


@dataclass(frozen=True)
class Pair:
    name: str  # HR file name
    hr: Path
    lr: Path | None  # None: made from the HR


@dataclass
class BenchmarkSet:
    name: str
    root: Path
    hr_dir: Path
    lr_dir: Path | None
    pairs: list[Pair]
    unreadable: dict[str, str] = field(default_factory=dict)  # name -> reason (header check)

    @property
    def lq_source(self) -> str:
        if self.lr_dir is not None:
            return f"LR files from {self.lr_dir.relative_to(self.root)}"
        return "made from HR"


def _images(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    )


def _header_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels."""
    from PIL import Image

    with Image.open(path) as img:
        w, h = img.size
        orientation = img.getexif().get(0x0112, 1) if hasattr(img, "getexif") else 1
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def parse_data_arg(text: str) -> tuple[str, Path]:
    """``NAME=DIR`` or ``DIR`` (the name is then the folder's name)."""
    if "=" in text:
        name, _, folder = text.partition("=")
        if not name or not folder:
            raise EvalError(f"--data {text!r}: expected NAME=DIR")
        return name, Path(folder)
    path = Path(text)
    return path.resolve().name, path


def discover(name: str, root: str | os.PathLike[str], task: Task) -> BenchmarkSet:
    """Collect the HR/LR pairs of one benchmark folder; ``EvalError`` on structural problems.

    Checked here, before any model runs: the folder exists and holds images, every HR image has
    its LR file when an LR folder exists, and HR/LR sizes agree (LR = floor(HR / scale)).
    Files whose header cannot be read are kept in ``unreadable`` (reported and skipped later).
    """
    root = Path(root)
    if not root.is_dir():
        raise EvalError(f"dataset {name}: folder not found: {root}")
    hr_dir = root / "HR" if (root / "HR").is_dir() else root
    hrs = _images(hr_dir)
    if not hrs:
        raise EvalError(f"dataset {name}: no images in {hr_dir}")
    lr_dir = None
    if task.kind == "sr":
        for cand in (f"X{task.scale}", f"x{task.scale}"):
            if (root / "LR_bicubic" / cand).is_dir():
                lr_dir = root / "LR_bicubic" / cand
                break
        if lr_dir is None and (root / "LR_bicubic").is_dir():
            found = sorted(p.name for p in (root / "LR_bicubic").iterdir() if p.is_dir())
            raise EvalError(
                f"dataset {name}: {root / 'LR_bicubic'} has no X{task.scale} folder for task "
                f"{task.name} (found: {', '.join(found) or 'nothing'})"
            )
    lr_files = {p.name: p for p in _images(lr_dir)} if lr_dir is not None else {}
    lr_by_stem = {p.stem: p for p in lr_files.values()}
    pairs, unreadable, missing, mismatched = [], {}, [], []
    for hr in hrs:
        lr = None
        if lr_dir is not None:
            lr = lr_by_stem.get(f"{hr.stem}x{task.scale}") or lr_by_stem.get(hr.stem)
            if lr is None:
                missing.append(hr.name)
                continue
        pairs.append(Pair(hr.name, hr, lr))
        try:
            hh, hw = _header_size(hr)
        except Exception as exc:
            unreadable[hr.name] = f"unreadable HR image ({type(exc).__name__}: {exc})"
            continue
        if lr is not None:
            try:
                lh, lw = _header_size(lr)
            except Exception as exc:
                unreadable[hr.name] = f"unreadable LR image {lr.name} ({type(exc).__name__})"
                continue
            want = (hh // task.scale, hw // task.scale)
            if (lh, lw) != want:
                mismatched.append(
                    f"{hr.name} is {hw}x{hh}, {lr.name} is {lw}x{lh} (expected "
                    f"{want[1]}x{want[0]} at x{task.scale})"
                )
    if missing:
        raise EvalError(
            f"dataset {name}: {len(missing)} HR image(s) have no LR file in {lr_dir} "
            f"(looked for <stem>x{task.scale}.<ext> and <stem>.<ext>): {', '.join(missing[:5])}"
        )
    if mismatched:
        raise EvalError(
            f"dataset {name}: HR/LR sizes disagree for {len(mismatched)} pair(s): "
            + "; ".join(mismatched[:3])
        )
    return BenchmarkSet(name, root, hr_dir, lr_dir, pairs, unreadable)
