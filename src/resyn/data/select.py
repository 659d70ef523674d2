"""The selection step of a build: analyses in, manifest rows (kept or rejected, with reason) out.

A pure function of the journaled analyses and the options, so a resumed build selects exactly
what an uninterrupted one does, and other thresholds or seeds can be tried without measuring
again.
"""

from __future__ import annotations

import hashlib
from typing import Any

from resyn.data import layout
from resyn.data.config import BuildOptions, Source
from resyn.data.manifest import KEPT, REJECTED, ManifestRow


def quality_reason(blur: float, flat: float, options: BuildOptions) -> str | None:
    """Why an image with this Laplacian variance and flat-pixel share fails the blur or the
    flatness filter (a manifest ``reason``), or None when it passes both."""
    if blur < options.blur_threshold:
        return f"blurry: Laplacian variance {blur:.1f} < {options.blur_threshold:g}"
    if flat > options.flat_threshold:
        return f"flat: flat share {flat:.3f} > {options.flat_threshold:g}"
    return None


def _balance_key(seed: int, source: str, relpath: str) -> str:
    return hashlib.sha256(f"{seed}\0{source}\0{relpath}".encode()).hexdigest()


def _side_quotas(quota: int, above: int, below: int, low_share: float) -> dict[bool, int]:
    """Images to keep above zero (True) and at/below it (False) out of a total of 2 * quota."""
    if low_share == 0.5:
        return {True: quota, False: quota}
    total = 2 * quota
    low = min(round(total * low_share), below)
    high = min(total - low, above)
    if low < round(total * low_share):  # too few simple images: shrink the other side with it
        high = min(high, round(low * (1 - low_share) / low_share))
    elif high < total - low:  # too few complex images
        low = min(low, round(high * low_share / (1 - low_share)))
    return {True: high, False: low}


def decide(
    sources: list[Source],
    inputs: dict[str, list[tuple[str, int, int]]],
    records: dict[tuple[str, str], dict[str, Any]],
    options: BuildOptions,
) -> list[ManifestRow]:
    """Turn analyses into manifest rows (see the module docs for the order of checks).

    Duplicates: identical decoded pixels, across all sources; the first occurrence (sources in
    the order given, files in sorted path order) is the one considered further.

    Balance, per source: the eligible images are walked in the order of
    ``sha256(f"{seed}\\0{source}\\0{relpath}")`` (a seeded shuffle that does not move when other
    files are added) and an image is kept while the quota of its side (complexity score > 0, or
    <= 0) lasts. The quota is ``min(#above, #at_or_below)``, further capped at
    ``per_source // 2``, so both sides end up exactly equal.

    With ``low_share`` other than 0.5 the same total (twice that quota) is split into
    ``round(total * low_share)`` images at/below zero and the rest above, each side capped at
    what the source has (a cap makes the set smaller rather than less skewed).
    """
    rows: list[ManifestRow] = []
    first_seen: dict[str, str] = {}
    for src in sources:
        relpaths = [rel for rel, _, _ in inputs[src.name]]
        names = layout.assign_names(src.name, relpaths)
        eligible: list[tuple[ManifestRow, str]] = []
        for rel, size, _ in inputs[src.name]:
            rec = records[(src.name, rel)]
            row = ManifestRow(
                source=src.name, kind=src.kind, path=(src.path / rel).as_posix(), bytes=size
            )
            rows.append(row)
            if "error" in rec:
                row.reason = f"unreadable: {rec['error']}"
                continue
            row.width, row.height, row.layout, row.hash = (
                rec["width"],
                rec["height"],
                rec["layout"],
                rec["hash"],
            )
            row.blur, row.flat = rec["blur"], rec["flat"]
            row.ent, row.ene, row.diss, row.raw = rec["ent"], rec["ene"], rec["diss"], rec["raw"]
            row.complexity = rec["score"]
            if row.hash in first_seen:
                row.reason = f"duplicate: of {first_seen[row.hash]}"
                continue
            first_seen[row.hash] = row.path
            if min(row.width, row.height) < options.min_size:
                row.reason = (
                    f"too-small: {row.width}x{row.height}, both sides must be >= {options.min_size}"
                )
            elif reason := quality_reason(row.blur, row.flat, options):
                row.reason = reason
            elif row.complexity is None:
                row.reason = f"unscorable: {rec.get('complexity_error', 'no complexity score')}"
            else:
                eligible.append((row, rel))
        above = sum(1 for r, _ in eligible if r.complexity > 0)
        quota = min(above, len(eligible) - above)
        if options.per_source is not None:
            quota = min(quota, options.per_source // 2)
        quotas = _side_quotas(quota, above, len(eligible) - above, options.low_share)
        taken = {True: 0, False: 0}
        for row, rel in sorted(eligible, key=lambda e: _balance_key(options.seed, src.name, e[1])):
            side = row.complexity > 0
            if taken[side] < quotas[side]:
                taken[side] += 1
                row.status, row.name = KEPT, names[rel]
            else:
                label = "> 0" if side else "<= 0"
                row.reason = (
                    f"balance: quota of {quotas[side]} images with complexity {label} is full"
                )
    for row in rows:
        if row.status != KEPT:
            row.status = REJECTED
    return rows
