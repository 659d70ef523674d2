"""The two per-image jobs of a build, run in worker processes: analyse and write outputs.

Both are plain top-level functions of picklable arguments so that they run under a local
process pool or on Dask workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from resyn.data import layout
from resyn.data.filters import content_hash, flat_ratio, laplacian_variance, to_gray
from resyn.io.images import DEFAULT_MAX_PIXELS

#: zlib level of the written PNGs: 3, as BasicSR's extract_subimages (lossless either way;
#: 3 is about twice as fast as 6 for a few percent more bytes).
PNG_LEVEL = 3


def describe_layout(arr: np.ndarray) -> str:
    """``gray8``, ``graya16``, ``rgb8``, ``rgba8``... for the manifest."""
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    kind = {1: "gray", 2: "graya", 3: "rgb", 4: "rgba"}.get(channels, f"c{channels}")
    return f"{kind}{arr.dtype.itemsize * 8}"


def load_rgb8(
    path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, str]:
    """Decode a file the way the dataset stores it: 8-bit RGB (alpha dropped, gray replicated,
    16-bit rounded), EXIF orientation applied. Returns the image and its original layout."""
    from resyn.io import read_image, to_rgb8

    arr = read_image(path, max_pixels=max_pixels)
    return to_rgb8(arr), describe_layout(arr)


def analyze_file(
    source: str,
    root: str,
    relpath: str,
    size: int,
    mtime_ns: int,
    center: float,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> dict[str, Any]:
    """Measure one input file. Never raises for a bad image: ``error`` holds the reason (an
    image too small for GLCM gets ``score`` None and ``complexity_error``)."""
    from resyn.io import ImageReadError

    record: dict[str, Any] = {
        "source": source,
        "relpath": relpath,
        "size": size,
        "mtime_ns": mtime_ns,
    }
    try:
        rgb, arr_layout = load_rgb8(Path(root) / relpath, max_pixels)
    except ImageReadError as exc:
        record["error"] = exc.reason
        return record
    except Exception as exc:  # any decoder failure is a property of the file, not a crash
        record["error"] = f"cannot decode ({type(exc).__name__}: {exc})"
        return record

    from resyn.complexity import complexity

    gray = to_gray(rgb)
    record.update(
        width=int(rgb.shape[1]),
        height=int(rgb.shape[0]),
        layout=arr_layout,
        hash=content_hash(rgb),
        blur=laplacian_variance(gray),
        flat=flat_ratio(gray),
        ent=None,
        ene=None,
        diss=None,
        raw=None,
        score=None,
    )
    try:
        result = complexity(rgb, center=center)
    except ValueError as exc:
        record["complexity_error"] = str(exc)
        return record
    record.update(
        ent=float(result.ent),
        ene=float(result.ene),
        diss=float(result.diss),
        raw=float(result.raw),
        score=float(result.score),
    )
    return record


def analysis_of_dead_worker(task: tuple[Any, ...], reason: str) -> dict[str, Any]:
    """The journal record of an input whose analysis killed its worker process (it becomes an
    ``unreadable`` row); ``task`` is the argument tuple of :func:`analyze_file`."""
    source, _root, relpath, size, mtime_ns = task[:5]
    return {
        "source": source,
        "relpath": relpath,
        "size": size,
        "mtime_ns": mtime_ns,
        "error": reason,
    }


def writing_killed_worker(task: tuple[Any, ...], reason: str) -> int:
    """``on_death`` of the writing stage: a kept image that kills its worker stops the build."""
    from resyn.data.config import BuildError

    raise BuildError(f"{task[0]}: {reason} while writing its outputs; run the build again")


def write_outputs(
    src: str,
    expected_hash: str,
    out: str,
    name: str,
    scales: list[int],
    crop: int | None,
    step: int | None,
    thresh: int,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> int:
    """Write HR, LR and crops of one kept image; files that already exist are skipped (they were
    written atomically by an earlier, interrupted run). Returns the number of files written."""
    from resyn.data.config import BuildError
    from resyn.degrade import imresize
    from resyn.io import ImageReadError, encode_png
    from resyn.io.atomic import atomic_write_bytes

    out_dir = Path(out)
    try:
        rgb, _ = load_rgb8(src, max_pixels)
    except ImageReadError as exc:
        raise BuildError(
            f"{src}: {exc.reason}, but it was readable when analysed; run again"
        ) from None
    if content_hash(rgb) != expected_hash:
        raise BuildError(f"{src} changed since it was analysed; run the build again")
    h, w = layout.cropped_size(rgb.shape[0], rgb.shape[1], scales)
    hr = np.ascontiguousarray(rgb[:h, :w])
    written = 0

    def put(path: Path, make: Any) -> None:
        nonlocal written
        if not path.exists():
            atomic_write_bytes(
                path, encode_png(np.ascontiguousarray(make()), compression=PNG_LEVEL)
            )
            written += 1

    lrs: dict[int, np.ndarray] = {}

    def lr(s: int) -> np.ndarray:
        if s not in lrs:
            lrs[s] = imresize(hr, 1.0 / s)
            if lrs[s].shape[:2] != (h // s, w // s):
                raise RuntimeError(f"imresize gave {lrs[s].shape[:2]} for {(h, w)} at x{s}")
        return lrs[s]

    put(layout.hr_path(out_dir, name), lambda: hr)
    for s in scales:
        put(layout.lr_path(out_dir, name, s), lambda s=s: lr(s))
    if crop:
        assert step is not None
        for k, (y, x) in enumerate(layout.crop_boxes(h, w, crop, step, thresh), start=1):
            put(
                layout.hr_sub_path(out_dir, name, k),
                lambda y=y, x=x: hr[y : y + crop, x : x + crop],
            )
            for s in scales:
                c, ys, xs = crop // s, y // s, x // s
                put(
                    layout.lr_sub_path(out_dir, name, k, s),
                    lambda s=s, c=c, ys=ys, xs=xs: lr(s)[ys : ys + c, xs : xs + c],
                )
    return written
