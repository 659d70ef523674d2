"""``manifest.csv``: one row per input file, kept or rejected, with everything measured on it."""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from resyn.io import atomic_write_text

KEPT = "kept"
REJECTED = "rejected"

#: Reason codes (the text before ":" in the ``reason`` column), in pipeline order.
REASONS = ("unreadable", "duplicate", "too-small", "blurry", "flat", "unscorable", "balance")


@dataclass
class ManifestRow:
    """One input file. Measurements are empty when the file could not be decoded."""

    source: str
    kind: str
    path: str
    name: str = ""  # output name (``HR/<name>.png``), only for kept images
    width: int | None = None
    height: int | None = None
    layout: str = ""  # decoded layout, e.g. rgb8, gray16, rgba8
    bytes: int | None = None
    hash: str = ""
    ent: float | None = None
    ene: float | None = None
    diss: float | None = None
    raw: float | None = None
    complexity: float | None = None
    blur: float | None = None
    flat: float | None = None
    status: str = REJECTED
    reason: str = ""

    @property
    def kept(self) -> bool:
        return self.status == KEPT

    @property
    def reason_code(self) -> str:
        return self.reason.split(":", 1)[0] if self.reason else ""


COLUMNS = [f.name for f in fields(ManifestRow)]
_INT = {"width", "height", "bytes"}
_FLOAT = {"ent", "ene", "diss", "raw", "complexity", "blur", "flat"}


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def manifest_text(rows: list[ManifestRow]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        d = asdict(row)
        writer.writerow([_fmt(d[c]) for c in COLUMNS])
    return buf.getvalue()


def write_manifest(path: str | os.PathLike[str], rows: list[ManifestRow]) -> Path:
    """Write the manifest atomically."""
    return atomic_write_text(path, manifest_text(rows))


def read_manifest(path: str | os.PathLike[str]) -> list[ManifestRow]:
    """Read a manifest written by :func:`write_manifest`; ValueError naming a bad column."""
    p = Path(path)
    with p.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or set(reader.fieldnames) != set(COLUMNS):
            raise ValueError(
                f"{p}: not a resyn manifest (columns {reader.fieldnames}, expected {COLUMNS})"
            )
        rows = []
        for line_no, rec in enumerate(reader, start=2):
            values: dict[str, object] = {}
            for key, text in rec.items():
                if key in _INT:
                    values[key] = int(text) if text else None
                elif key in _FLOAT:
                    values[key] = float(text) if text else None
                else:
                    values[key] = text
            if values["status"] not in (KEPT, REJECTED):
                raise ValueError(f"{p}:{line_no}: status must be kept or rejected")
            rows.append(ManifestRow(**values))  # type: ignore[arg-type]
    return rows
