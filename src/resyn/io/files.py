"""Find image files given files, folders and glob patterns."""

from __future__ import annotations

import errno
import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})


@dataclass
class ImageScan:
    """What :func:`scan_images` found: ``files`` (sorted; broken symbolic links included, so
    that the caller reports them) and ``hidden``, the image files skipped inside folders
    because their name starts with a dot."""

    files: list[Path] = field(default_factory=list)
    hidden: list[Path] = field(default_factory=list)


def is_broken_link(path: Path) -> bool:
    """A symbolic link that cannot be followed: its target does not exist, or it is a loop."""
    return path.is_symlink() and not path.exists()


def link_problem(path: Path) -> str | None:
    """Why the symbolic link ``path`` cannot be followed, in words; ``None`` when it can (or when
    ``path`` is not a link)."""
    if not path.is_symlink():
        return None
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop (following it leads back to a link already followed)"
        return f"broken symbolic link (its target {os.readlink(path)} does not exist)"
    return None


def resolved(path: Path) -> Path:
    """``path.resolve()``, or the absolute path when a symbolic link loop stops resolution."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):  # RuntimeError: "Symlink loop" (Python < 3.13)
        return Path(os.path.abspath(path))


def output_folder_problem(folder: Path) -> str | None:
    """Why files cannot be written into ``folder`` (created if missing), in words; ``None`` if
    they can. Checked before any work, so that a bad ``-o`` costs nothing."""
    if folder.exists():
        if not folder.is_dir():
            return f"{folder} is a file, not a folder"
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"the folder {folder} is not writable"
        return None
    parent = folder.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{folder} cannot be created: {parent} is a file, not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{folder} cannot be created: {parent} is not writable"
    return None


def scan_images(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    recursive: bool = True,
    extensions: frozenset[str] = IMAGE_EXTENSIONS,
) -> ImageScan:
    """Expand files, folders and globs into a sorted, de-duplicated list of image paths.

    A file named explicitly is kept whatever its extension (so that a broken or mislabelled file
    is reported by the caller, not silently skipped); inside folders only ``extensions`` count,
    and dot-files are skipped (counted in ``hidden``). Broken symbolic links are kept like
    files: reading one fails with "broken symbolic link". Raises ``FileNotFoundError`` naming an
    input that matches nothing.
    """
    # Keyed by the absolute path, so one file given twice (relative and absolute, or through
    # "..") is one input; the first spelling given is kept. Links are not resolved: two links
    # are two inputs with their own output names.
    found: dict[str, Path] = {}
    hidden: dict[str, Path] = {}

    def keep(into: dict[str, Path], path: Path) -> None:
        into.setdefault(os.path.abspath(path), path)

    def add_folder(folder: Path) -> None:
        files, dots = _walk(folder, recursive, extensions)
        for f in files:
            keep(found, f)
        for f in dots:
            keep(hidden, f)

    for item in inputs:
        text = os.fspath(item)
        if any(ch in text for ch in "*?[") and not os.path.lexists(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise FileNotFoundError(f"no file matches the pattern {text!r}")
            for m in matches:
                p = Path(m)
                if p.is_dir():
                    add_folder(p)
                elif _is_file_or_broken_link(p) and p.suffix.lower() in extensions:
                    keep(found, p)
            continue
        p = Path(text)
        if p.is_dir():
            add_folder(p)
        elif _is_file_or_broken_link(p):
            keep(found, p)
        else:
            raise FileNotFoundError(f"no such file or folder: {text}")
    return ImageScan(sorted(found.values()), sorted(hidden.values()))


def find_images(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    recursive: bool = True,
    extensions: frozenset[str] = IMAGE_EXTENSIONS,
) -> list[Path]:
    """The ``files`` of :func:`scan_images` (see there)."""
    return scan_images(inputs, recursive=recursive, extensions=extensions).files


def _is_file_or_broken_link(p: Path) -> bool:
    return p.is_file() or is_broken_link(p)


def _walk(
    folder: Path, recursive: bool, extensions: frozenset[str]
) -> tuple[list[Path], list[Path]]:
    pattern = "**/*" if recursive else "*"
    files, dots = [], []
    for p in folder.glob(pattern):
        if p.suffix.lower() not in extensions or not _is_file_or_broken_link(p):
            continue
        (dots if p.name.startswith(".") else files).append(p)
    return sorted(files), sorted(dots)
