"""The centering constant of the complexity score: a documented default, or a calibrated one.

``DEFAULT_CENTER`` is the median raw score (ENT - ENE + DISS) of the twelve photographs that ship
with scikit-image (``DEFAULT_CENTER_REFERENCE``), so that "0" means "as complex as a typical
photograph"; ``tests/complexity/test_center.py`` recomputes it.

``resyn complexity calibrate REF...`` stores the median raw score of a reference set in a JSON
file; from then on ``complexity(..., center=None)`` and the command line use it. Where that file
lives, first match wins:

1. ``$RESYN_COMPLEXITY_CENTER_FILE``
2. ``$RESYN_HOME/complexity_center.json``
3. ``${XDG_CONFIG_HOME:-~/.config}/resyn/complexity_center.json``
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

DEFAULT_CENTER = 19.0721

DEFAULT_CENTER_REFERENCE = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "moon.png",
    "motorcycle_left.png",
    "rocket.jpg",
)

ENV_FILE = "RESYN_COMPLEXITY_CENTER_FILE"

_cache: dict[tuple[str, int], float] = {}


def center_file() -> Path:
    """Where the calibrated center is read from and saved to (see the module docs)."""
    explicit = os.environ.get(ENV_FILE)
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("RESYN_HOME")
    if home:
        return Path(home).expanduser() / "complexity_center.json"
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config).expanduser() / "resyn" / "complexity_center.json"


def load_center(path: str | os.PathLike[str]) -> float:
    """The ``center`` stored in a calibration file; ValueError naming the file if unusable."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
        value = float(data["center"])
    except FileNotFoundError:
        raise ValueError(f"{p}: complexity center file not found") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{p}: not a valid complexity center file ({type(exc).__name__}: {exc}); "
            "re-run `resyn complexity calibrate` or delete it"
        ) from None
    if not np.isfinite(value):
        raise ValueError(f"{p}: center is not a finite number")
    return value


def active_center(path: str | os.PathLike[str] | None = None) -> float:
    """The calibrated center if its file exists (``path`` or ``center_file()``), else
    ``DEFAULT_CENTER``. Cached per file modification time."""
    p = Path(path) if path is not None else center_file()
    try:
        stamp = p.stat().st_mtime_ns
    except FileNotFoundError:
        if path is not None:
            raise ValueError(f"{p}: complexity center file not found") from None
        return DEFAULT_CENTER
    key = (str(p), stamp)
    if key not in _cache:
        _cache[key] = load_center(p)
    return _cache[key]


def center_source(path: str | os.PathLike[str] | None = None) -> str:
    """Human-readable origin of ``active_center(path)``."""
    p = Path(path) if path is not None else center_file()
    return f"calibrated ({p})" if p.exists() else "built-in default (DEFAULT_CENTER)"


def median_center(raw_scores: Iterable[float]) -> float:
    """The center that puts the median of ``raw_scores`` at 0 (NaNs ignored)."""
    values = np.asarray([v for v in raw_scores if np.isfinite(v)], np.float64)
    if values.size == 0:
        raise ValueError("no reference image could be scored; cannot calibrate")
    return float(np.median(values))


def save_center(
    center: float,
    path: str | os.PathLike[str] | None = None,
    *,
    n_images: int,
    inputs: list[str],
) -> Path:
    """Write a calibration file atomically; returns its path."""
    from resyn import __version__
    from resyn.io import atomic_write_text

    target = Path(path) if path is not None else center_file()
    payload = {
        "center": float(center),
        "definition": "median of raw = ENT - ENE + DISS over the reference images",
        "n_images": int(n_images),
        "inputs": inputs,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "resyn": __version__,
    }
    atomic_write_text(target, json.dumps(payload, indent=2) + "\n")
    return target
