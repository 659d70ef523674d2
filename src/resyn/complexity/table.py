"""Per-file score rows and the scores table on disk (CSV or Parquet), written atomically."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from resyn.io.images import DEFAULT_MAX_PIXELS, ImageReadError

COLUMNS = ["path", "width", "height", "ent", "ene", "diss", "raw", "complexity", "bpp", "error"]
FLOAT_COLUMNS = ["ent", "ene", "diss", "raw", "complexity", "bpp"]
FORMATS = (".csv", ".parquet")


def score_path(
    path: str, with_bpp: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> dict[str, Any]:
    """Score one file into a row (without ``complexity``, which needs the center). Never raises
    for a bad file: the row's ``error`` names the cause and the numbers are NaN."""
    from resyn.complexity.score import bpp, raw_features
    from resyn.io import read_image

    row: dict[str, Any] = {"path": path, "width": None, "height": None, "error": ""}
    for key in ("ent", "ene", "diss", "raw", "bpp"):
        row[key] = math.nan
    try:
        arr = read_image(path, max_pixels=max_pixels)
        row["height"], row["width"] = int(arr.shape[0]), int(arr.shape[1])
        row.update(raw_features(arr))
        if with_bpp:
            row["bpp"] = bpp(arr)
    except ImageReadError as exc:
        row["error"] = exc.reason
    except ValueError as exc:  # too small, unsupported layout: the message says it all
        row["error"] = str(exc)
    except MemoryError:
        row["error"] = "out of memory while decoding or scoring"
    except Exception as exc:  # a scoring job reports every file; it never stops on one
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


def score_paths(
    paths: list[str], with_bpp: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> list[dict[str, Any]]:
    """Score a batch of files (the unit of work sent to a process or a Dask worker)."""
    _single_threaded()
    return [score_path(p, with_bpp, max_pixels) for p in paths]


def _single_threaded() -> None:
    import cv2

    if cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)


def check_output_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if p.suffix.lower() not in FORMATS:
        raise ValueError(f"output {p.name}: use a .csv or .parquet file name")
    if p.suffix.lower() == ".parquet":
        _require_pyarrow()
    return p


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ValueError(
            "Parquet files need pyarrow: pip install 'resyn[parquet]' (or use a .csv output)"
        ) from None


def read_table(path: str | os.PathLike[str]):
    """Read a scores table (CSV or Parquet) as a DataFrame with the known columns typed."""
    import pandas as pd

    p = Path(path)
    try:
        if p.suffix.lower() == ".parquet":
            _require_pyarrow()
            df = pd.read_parquet(p)
        else:
            df = pd.read_csv(p, keep_default_na=False, na_values=[""], dtype={"path": str})
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"{p}: cannot read scores table ({type(exc).__name__}: {exc})") from None
    if "path" not in df.columns:
        raise ValueError(f"{p}: not a scores table (no 'path' column)")
    if "error" not in df.columns:
        df["error"] = ""
    df["error"] = _text(df["error"])
    for col in FLOAT_COLUMNS:
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def _text(column) -> list[str]:
    return ["" if v is None or v != v else str(v) for v in column]


def write_table(rows: list[dict[str, Any]], path: str | os.PathLike[str], center: float) -> Path:
    """Write rows atomically, sorted by path, with ``complexity = raw - center``."""
    import pandas as pd

    from resyn.io.atomic import atomic_path

    df = pd.DataFrame(rows, columns=COLUMNS)
    df["complexity"] = df["raw"] - center
    for col in ("width", "height"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    df["error"] = _text(df["error"])
    if df["bpp"].isna().all():
        df = df.drop(columns=["bpp"])
    df = df.sort_values("path", kind="stable").reset_index(drop=True)
    target = Path(path)
    with atomic_path(target) as tmp:
        if target.suffix.lower() == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False, float_format="%.12g")
    return target
