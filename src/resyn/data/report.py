"""``report.png`` (the paper's Fig. 1/2 for a built set) and the numbers behind ``dataset stats``.

"Before filtering" means every decodable, non-duplicate input; "after" means the kept images.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from resyn.data.manifest import REASONS, ManifestRow

#: Resolution classes of the paper's Fig. 1, by the long side in pixels.
RESOLUTION_BINS = (
    (0, 1000, "<1K"),
    (1000, 2000, "1K-2K"),
    (2000, 4000, "2K-4K"),
    (4000, 10**9, ">=4K"),
)


def resolution_class(width: int, height: int) -> str:
    long_side = max(width, height)
    for lo, hi, label in RESOLUTION_BINS:
        if lo <= long_side < hi:
            return label
    return RESOLUTION_BINS[-1][2]


@dataclass
class SourceStats:
    source: str
    kind: str
    inputs: int = 0
    kept: int = 0
    above: int = 0  # kept with complexity > 0
    at_or_below: int = 0
    reasons: Counter = field(default_factory=Counter)


@dataclass
class DatasetStats:
    sources: list[SourceStats]
    resolutions: Counter  # kept images per resolution class
    kept_sizes: list[tuple[int, int]]
    kept_complexity: list[float]

    @property
    def kept(self) -> int:
        return sum(s.kept for s in self.sources)

    @property
    def inputs(self) -> int:
        return sum(s.inputs for s in self.sources)


def _pre_filter(rows: list[ManifestRow]) -> list[ManifestRow]:
    return [r for r in rows if r.complexity is not None and r.reason_code != "duplicate"]


def compute_stats(rows: list[ManifestRow]) -> DatasetStats:
    per: dict[str, SourceStats] = {}
    for r in rows:
        s = per.setdefault(r.source, SourceStats(r.source, r.kind))
        s.inputs += 1
        if r.kept:
            s.kept += 1
            if r.complexity is not None and r.complexity > 0:
                s.above += 1
            else:
                s.at_or_below += 1
        else:
            s.reasons[r.reason_code] += 1
    kept = [r for r in rows if r.kept]
    return DatasetStats(
        sources=list(per.values()),
        resolutions=Counter(resolution_class(r.width, r.height) for r in kept),
        kept_sizes=[(r.width, r.height) for r in kept],
        kept_complexity=[r.complexity for r in kept if r.complexity is not None],
    )


def save_report(rows: list[ManifestRow], path: str | os.PathLike[str]) -> Path:
    """Draw the four-panel report and write it atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from resyn.io.atomic import atomic_path

    stats = compute_stats(rows)
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    kind_color = {"real": "#4C72B0", "synthetic": "#DD8452"}

    # (a) kept images by source, coloured by kind, with the real/synthetic shares in the title.
    ax = axes[0, 0]
    names = [s.source for s in stats.sources]
    ax.bar(names, [s.inputs for s in stats.sources], color="#dddddd", label="inputs")
    ax.bar(
        names,
        [s.kept for s in stats.sources],
        color=[kind_color.get(s.kind, "gray") for s in stats.sources],
        label="kept",
    )
    for i, s in enumerate(stats.sources):
        share = 100 * s.kept / stats.kept if stats.kept else 0
        ax.text(i, s.kept, f"{s.kept} ({share:.0f}%)", ha="center", va="bottom", fontsize=9)
    by_kind = Counter()
    for s in stats.sources:
        by_kind[s.kind] += s.kept
    shares = ", ".join(
        f"{k} {100 * v / stats.kept:.0f}%" for k, v in sorted(by_kind.items()) if stats.kept
    )
    ax.set_title(f"kept images by source ({stats.kept} of {stats.inputs}; {shares or 'none'})")
    ax.set_ylabel("images")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in kind_color.values()]
    ax.legend(
        [*handles, plt.Rectangle((0, 0), 1, 1, color="#dddddd")],
        [*kind_color.keys(), "inputs"],
        fontsize=8,
    )

    # (b) resolution histogram (long side) before and after filtering, with the paper's classes.
    ax = axes[0, 1]
    pre = _pre_filter(rows)
    long_pre = [max(r.width, r.height) for r in pre]
    long_kept = [max(w, h) for w, h in stats.kept_sizes]
    if long_pre:
        bins = np.linspace(0, max(long_pre) * 1.05 + 1, 25)
        ax.hist(long_pre, bins=bins, color="#bbbbbb", label="decoded inputs")
        ax.hist(long_kept, bins=bins, color="#55A868", label="kept")
    classes = ", ".join(
        f"{label}: {stats.resolutions.get(label, 0)}" for _, _, label in RESOLUTION_BINS
    )
    ax.set_title(f"resolution (long side); kept {classes}", fontsize=10)
    ax.set_xlabel("pixels")
    ax.set_ylabel("images")
    ax.legend(fontsize=8)

    # (c) complexity before and after filtering.
    ax = axes[1, 0]
    c_pre = [r.complexity for r in pre if np.isfinite(r.complexity)]
    c_kept = [c for c in stats.kept_complexity if np.isfinite(c)]
    if c_pre:
        lo, hi = min(c_pre), max(c_pre)
        pad = (hi - lo) * 0.05 + 1e-6
        bins = np.linspace(lo - pad, hi + pad, 25)
        ax.hist(c_pre, bins=bins, color="#bbbbbb", label=f"before filtering ({len(c_pre)})")
        ax.hist(c_kept, bins=bins, color="#C44E52", alpha=0.8, label=f"kept ({len(c_kept)})")
        for kind, color in kind_color.items():  # the paper's Fig. 2: real vs synthetic
            values = [r.complexity for r in pre if r.kind == kind and np.isfinite(r.complexity)]
            if values:
                ax.hist(
                    values,
                    bins=bins,
                    histtype="step",
                    lw=1.8,
                    color=color,
                    label=f"{kind}, before filtering ({len(values)})",
                )
    ax.axvline(0, color="black", lw=1, ls="--")
    above = sum(1 for c in c_kept if c > 0)
    ax.set_title(f"complexity score; kept > 0: {above}, <= 0: {len(c_kept) - above}")
    ax.set_xlabel("complexity score")
    ax.set_ylabel("images")
    ax.legend(fontsize=8)

    # (d) why images were rejected, per source.
    ax = axes[1, 1]
    x = np.arange(len(REASONS))
    width = 0.8 / max(1, len(stats.sources))
    for i, s in enumerate(stats.sources):
        ax.bar(
            x + i * width,
            [s.reasons.get(code, 0) for code in REASONS],
            width,
            label=f"{s.source} ({s.kind})",
        )
    ax.set_xticks(x + width * (len(stats.sources) - 1) / 2, REASONS)
    ax.set_title("rejections by reason and source")
    ax.set_ylabel("images")
    if stats.sources:
        ax.legend(fontsize=8)

    fig.suptitle("resyn dataset report", fontsize=14)
    fig.tight_layout()
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return target
