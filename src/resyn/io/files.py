"""Find image files given files, folders and glob patterns."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})


def find_images(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    recursive: bool = True,
    extensions: frozenset[str] = IMAGE_EXTENSIONS,
) -> list[Path]:
    """Expand files, folders and globs into a sorted, de-duplicated list of image paths.

    A file named explicitly is kept whatever its extension (so that a broken or mislabelled file
    is reported by the caller, not silently skipped); inside folders only ``extensions`` count.
    Raises ``FileNotFoundError`` naming an input that matches nothing.
    """
    found: dict[Path, None] = {}
    for item in inputs:
        text = os.fspath(item)
        if any(ch in text for ch in "*?[") and not Path(text).exists():
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise FileNotFoundError(f"no file matches the pattern {text!r}")
            for m in matches:
                p = Path(m)
                if p.is_file() and p.suffix.lower() in extensions:
                    found[p] = None
                elif p.is_dir():
                    for q in _walk(p, recursive, extensions):
                        found[q] = None
            continue
        p = Path(text)
        if p.is_dir():
            for q in _walk(p, recursive, extensions):
                found[q] = None
        elif p.is_file():
            found[p] = None
        else:
            raise FileNotFoundError(f"no such file or folder: {text}")
    return sorted(found)


def _walk(folder: Path, recursive: bool, extensions: frozenset[str]) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(
        p
        for p in folder.glob(pattern)
        if p.is_file() and p.suffix.lower() in extensions and not p.name.startswith(".")
    )
