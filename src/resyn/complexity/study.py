"""The complexity study: score distributions (the paper's Fig. 2) and how well complexity and
BPP predict restoration PSNR (Fig. 3). Importable for the evaluation code.

PSNR tables (CSV) need a ``name`` column (image file name or stem) and a PSNR column, ``psnr_y``
by default. A PSNR ``name`` is joined to the scored ``path`` with that exact file name, else to
the one with that file stem; a name that matches several scored files is ambiguous and left out
(with a warning).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from resyn.complexity.table import read_table


def load_scores(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A scores table written by ``resyn complexity score`` (CSV or Parquet)."""
    df = read_table(path)
    if "complexity" not in df.columns:
        raise ValueError(
            f"{path}: no 'complexity' column; is it a `resyn complexity score` output?"
        )
    return df


def load_psnr(path: str | os.PathLike[str], metric: str = "psnr_y") -> pd.DataFrame:
    """A per-image PSNR table with at least ``name`` and ``metric`` columns."""
    p = Path(path)
    try:
        df = pd.read_csv(p)
    except Exception as exc:
        raise ValueError(f"{p}: cannot read PSNR table ({type(exc).__name__}: {exc})") from None
    missing = [c for c in ("name", metric) if c not in df.columns]
    if missing:
        raise ValueError(
            f"{p}: missing column(s) {', '.join(missing)}; a PSNR table needs 'name' and "
            f"'{metric}' (has: {', '.join(map(str, df.columns))})"
        )
    df[metric] = pd.to_numeric(df[metric], errors="coerce")
    return df


def _base(value: str) -> str:
    return Path(str(value).replace("\\", "/")).name


def _stem(value: str) -> str:
    return Path(str(value).replace("\\", "/")).stem


def join_scores_psnr(
    scores: pd.DataFrame, psnr: pd.DataFrame, metric: str = "psnr_y"
) -> pd.DataFrame:
    """Rows ``name, complexity, bpp, psnr, path`` for images in both tables (scored without
    error, finite PSNR). A PSNR ``name`` is matched to the scored file with exactly that file
    name first (``img.png`` is not ``img.jpg``), else to the one with that stem (``img``);
    a name that matches several scored files (the same name in two folders) is left out with a
    warning. When two PSNR rows match one file, the last one counts."""
    s = scores[scores["error"].fillna("") == ""].copy() if "error" in scores else scores.copy()
    s = s.reset_index(drop=True)
    if "bpp" not in s.columns:
        s["bpp"] = np.nan
    by_name: dict[str, list[int]] = {}
    by_stem: dict[str, list[int]] = {}
    for i, path in enumerate(s["path"]):
        by_name.setdefault(_base(path), []).append(i)
        by_stem.setdefault(_stem(path), []).append(i)
    match: dict[int, float] = {}  # score row -> PSNR value
    ambiguous: list[str] = []
    for name, value in zip(psnr["name"], psnr[metric], strict=True):
        base = _base(name)
        rows = by_name.get(base) or by_stem.get(base) or by_stem.get(_stem(base)) or []
        if len(rows) == 1:
            match[rows[0]] = value
        elif rows:
            ambiguous.append(f"{name} ({', '.join(str(s.at[i, 'path']) for i in rows[:2])})")
    if ambiguous:
        warnings.warn(
            f"{len(ambiguous)} PSNR name(s) match more than one scored file (scored files share "
            f"a file stem or name, e.g. {ambiguous[0]}); they are left out of the join",
            stacklevel=2,
        )
    rows = sorted(match)
    joined = s.loc[rows, ["path", "complexity", "bpp"]].copy()
    joined.insert(0, "name", [_stem(p) for p in joined["path"]])
    joined["psnr"] = pd.to_numeric(pd.Series([match[i] for i in rows], index=rows, dtype=float))
    joined = joined[np.isfinite(joined["psnr"]) & np.isfinite(joined["complexity"])]
    return joined.reset_index(drop=True)


def fill_bpp(joined: pd.DataFrame, base: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Compute missing ``bpp`` values from the image files named in ``path`` (relative paths
    are tried as given, then relative to ``base``); files that cannot be read stay NaN."""
    from resyn.complexity.score import bpp

    out = joined.copy()
    for i in out.index[out["bpp"].isna()]:
        p = Path(out.at[i, "path"])
        candidates = [p] if p.is_absolute() or base is None else [p, Path(base) / p]
        for c in candidates:
            if c.is_file():
                try:
                    out.at[i, "bpp"] = bpp(c)
                except ValueError:
                    pass
                break
    return out


@dataclass(frozen=True)
class Correlation:
    n: int
    pearson: float
    spearman: float


def correlation(x: np.ndarray, y: np.ndarray) -> Correlation:
    """Pearson and Spearman rho over the pairs where both values are finite (NaN if < 3)."""
    from scipy.stats import pearsonr, spearmanr

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Correlation(int(x.size), float("nan"), float("nan"))
    return Correlation(
        int(x.size), float(pearsonr(x, y).statistic), float(spearmanr(x, y).statistic)
    )


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson rho of each row pair of two (resamples, n) arrays; NaN where a row is constant."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    den = np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (xc * yc).sum(axis=1) / den, np.nan)


def bootstrap_pearson(
    complexity: np.ndarray,
    bpp: np.ndarray,
    psnr: np.ndarray,
    *,
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Percentile bootstrap intervals (images resampled with replacement, the same resample for
    both predictors) of Pearson rho(PSNR, complexity), rho(PSNR, BPP) and of the paired
    difference ``|rho_complexity| - |rho_BPP|`` (> 0: complexity is the better predictor).

    Only images with all three values finite count; NaN intervals with fewer than 3."""
    c, b, p = (np.asarray(a, np.float64) for a in (complexity, bpp, psnr))
    ok = np.isfinite(c) & np.isfinite(b) & np.isfinite(p)
    c, b, p = c[ok], b[ok], p[ok]
    keys = ("pearson_complexity", "pearson_bpp", "delta_abs_pearson")
    nan = float("nan")
    if c.size < 3 or resamples < 1:
        return {f"{k}_{end}": nan for k in keys for end in ("lo", "hi")}
    idx = np.random.default_rng(seed).integers(0, c.size, size=(resamples, c.size))
    rc, rb = _pearson_rows(c[idx], p[idx]), _pearson_rows(b[idx], p[idx])
    tail = 100 * (1 - level) / 2
    out = {}
    for key, values in zip(keys, (rc, rb, np.abs(rc) - np.abs(rb)), strict=True):
        values = values[np.isfinite(values)]
        lo, hi = np.percentile(values, [tail, 100 - tail]) if values.size else (nan, nan)
        out[f"{key}_lo"], out[f"{key}_hi"] = float(lo), float(hi)
    return out


def correlate(
    scores: pd.DataFrame | str | os.PathLike[str],
    psnr: pd.DataFrame | str | os.PathLike[str] | None = None,
    metric: str = "psnr_y",
    *,
    compute_bpp: bool = False,
    bootstrap: int = 0,
) -> dict[str, float]:
    """Correlations of PSNR with complexity and with BPP for one restorer.

    Either ``correlate(joined)`` with the output of ``join_scores_psnr``, or
    ``correlate(scores, psnr, metric)`` with tables or file paths (joined here; with
    ``compute_bpp`` missing BPP values are computed from the image files). With
    ``bootstrap=N`` the result also holds ``delta_abs_pearson`` and 95% intervals from N
    resamples (``bootstrap_pearson``: keys ending in ``_lo`` / ``_hi``).
    """
    if psnr is None:
        if not isinstance(scores, pd.DataFrame) or "psnr" not in scores.columns:
            raise ValueError("correlate(joined) needs the output of join_scores_psnr")
        joined = scores
    else:
        base = None
        if not isinstance(scores, pd.DataFrame):
            base = Path(scores).parent
            scores = load_scores(scores)
        if not isinstance(psnr, pd.DataFrame):
            psnr = load_psnr(psnr, metric)
        joined = join_scores_psnr(scores, psnr, metric)
        if compute_bpp and joined["bpp"].isna().any():
            joined = fill_bpp(joined, base)
    c = correlation(joined["complexity"].to_numpy(), joined["psnr"].to_numpy())
    b = correlation(joined["bpp"].to_numpy(), joined["psnr"].to_numpy())
    out = {
        "n": c.n,
        "pearson_complexity": c.pearson,
        "spearman_complexity": c.spearman,
        "n_bpp": b.n,
        "pearson_bpp": b.pearson,
        "spearman_bpp": b.spearman,
    }
    if bootstrap:
        out["delta_abs_pearson"] = abs(c.pearson) - abs(b.pearson)
        out.update(
            bootstrap_pearson(
                joined["complexity"].to_numpy(),
                joined["bpp"].to_numpy(),
                joined["psnr"].to_numpy(),
                resamples=bootstrap,
            )
        )
    return out


def correlation_table(
    scores: pd.DataFrame,
    psnr_tables: dict[str, pd.DataFrame],
    metric: str = "psnr_y",
    *,
    compute_bpp: bool = True,
    base: str | os.PathLike[str] | None = None,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """One row of correlations per restorer (label -> PSNR table), plus the joined data."""
    rows, joined_all = [], {}
    for label, psnr in psnr_tables.items():
        joined = join_scores_psnr(scores, psnr, metric)
        if compute_bpp and joined["bpp"].isna().any():
            joined = fill_bpp(joined, base)
        joined_all[label] = joined
        rows.append({"restorer": label, **correlate(joined)})
    return pd.DataFrame(rows), joined_all


def to_markdown(table: pd.DataFrame) -> str:
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in r]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_correlation(
    joined: dict[str, pd.DataFrame], table: pd.DataFrame, output: str | os.PathLike[str]
) -> Path:
    """Fig. 3: PSNR against complexity (left) and against BPP (right), one color per restorer,
    each with its least-squares line and rho in the legend. Written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    stats = table.set_index("restorer")
    for k, (label, df) in enumerate(joined.items()):
        color = f"C{k}"
        for ax, col, name in ((axes[0], "complexity", "complexity"), (axes[1], "bpp", "bpp")):
            d = df[np.isfinite(df[col]) & np.isfinite(df["psnr"])]
            rho = stats.loc[label, f"pearson_{name}"]
            ax.scatter(d[col], d["psnr"], s=12, alpha=0.6, color=color)
            if len(d) >= 2 and np.ptp(d[col]) > 0:
                slope, icept = np.polyfit(d[col], d["psnr"], 1)
                xs = np.linspace(d[col].min(), d[col].max(), 50)
                ax.plot(
                    xs,
                    slope * xs + icept,
                    color=color,
                    lw=1.8,
                    label=f"{label}: Pearson ρ = {rho:.3f} (n={len(d)})",
                )
    axes[0].set_xlabel("GLCM complexity")
    axes[1].set_xlabel("bits per pixel (PNG)")
    for ax, title in zip(axes, ("PSNR vs complexity", "PSNR vs BPP"), strict=True):
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, output)


def plot_distributions(
    datasets: dict[str, np.ndarray], output: str | os.PathLike[str], *, bins: int = 40
) -> Path:
    """Fig. 2: per dataset the sorted scores against the image rank (0-100 %), and histograms;
    the zero line; the share of images below zero in the legend. Written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    finite = {k: np.sort(v[np.isfinite(v)]) for k, v in datasets.items()}
    allv = np.concatenate([v for v in finite.values() if v.size] or [np.zeros(1)])
    edges = np.linspace(min(allv.min(), 0.0), max(allv.max(), 0.0), bins + 1)
    for k, (label, v) in enumerate(finite.items()):
        if v.size == 0:
            continue
        below = 100.0 * np.mean(v < 0)
        text = f"{label} (n={v.size}, {below:.0f}% < 0)"
        rank = 100.0 * (np.arange(v.size) + 0.5) / v.size
        left.plot(rank, v, color=f"C{k}", lw=2, label=text)
        left.fill_between(rank, v, 0, where=v < 0, color=f"C{k}", alpha=0.12)
        right.hist(v, bins=edges, color=f"C{k}", alpha=0.45, density=True, label=text)
    left.axhline(0, color="k", lw=1, ls="--")
    right.axvline(0, color="k", lw=1, ls="--")
    left.set_xlabel("images sorted by complexity (%)")
    left.set_ylabel("complexity")
    left.set_title("Sorted complexity per dataset")
    right.set_xlabel("complexity")
    right.set_ylabel("density")
    right.set_title("Complexity distribution")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, output)


def _save(fig, output: str | os.PathLike[str]) -> Path:
    import matplotlib.pyplot as plt

    from resyn.io.atomic import atomic_path

    target = Path(output)
    try:
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    finally:
        plt.close(fig)
    return target
