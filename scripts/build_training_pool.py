"""A larger training pool from the same licensed sources as data/train: tiles of the originals.

The bundled pools (data/train) hold each source photo once, resized to 1024 px; `resyn dataset
build` balances images, so on those 30 images it keeps 12. This script writes, for every source
of data/train (the same files, authors and licenses: scripts/make_bundled_data.py, nothing
else, so none of the held-out photos of data/test), non-overlapping 512x512 tiles of the
original at two sizes: long side 1024 (the bundled and test scale) and long side 2048 (finer
detail; sources are never enlarged, and one smaller than a tile is kept whole). Tiles are the
units the builder then scores, filters and balances, so the high-complexity photos it dropped
now contribute their complex tiles. The median raw complexity of the tiles that pass the
builder's default blur and flatness filters is written to ``center.txt``, to pass as
``--center`` so that balancing keeps both halves (the median of all tiles, 10.09, is below most
of the sharp ones: the build then kept 52 of 294 tiles; with the median of those that pass,
13.40, it keeps 90, 62 real and 28 synthetic, about 3x the pixels of the 12-image set).

    .venv/bin/python scripts/build_training_pool.py [--out runs/pool] [--cache /tmp/resyn-debs]
    .venv/bin/resyn dataset build --source real=runs/pool/real:real \\
        --source synthetic=runs/pool/synthetic:synthetic --out runs/resyn-train-pool \\
        --min-size 256 --center "$(cat runs/pool/center.txt)" --scales 2,4

Nothing written here is committed (runs/ is git-ignored).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
from make_bundled_data import (
    REAL_TRAIN,
    SYNTHETIC_TRAIN,
    fetch_packages,
    fit,
    load,
    save_png,
)

from resyn.complexity import raw_features
from resyn.data.config import BuildOptions
from resyn.data.filters import flat_ratio, laplacian_variance, to_gray
from resyn.data.select import quality_reason

ROOT = Path(__file__).resolve().parents[1]

TILE = 512
SIZES = (1024, 2048)  # long side of the resized original the tiles are cut from


def tiles(img: np.ndarray, size: int = TILE) -> list[tuple[int, int, np.ndarray]]:
    """Non-overlapping ``size`` x ``size`` tiles, centred (the margins split evenly)."""
    h, w = img.shape[:2]
    rows, cols = h // size, w // size
    top, left = (h - rows * size) // 2, (w - cols * size) // 2
    return [
        (r, c, img[top + r * size : top + (r + 1) * size, left + c * size : left + (c + 1) * size])
        for r in range(rows)
        for c in range(cols)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "pool")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/resyn-debs"))
    args = ap.parse_args()
    roots = fetch_packages(args.cache)
    raws: list[float] = []
    defaults = BuildOptions()  # the builder's default blur and flatness thresholds
    for kind, items in (("real", REAL_TRAIN), ("synthetic", SYNTHETIC_TRAIN)):
        for item in items:
            src = load(item, roots)
            done: set[tuple[int, int]] = set()
            for side in SIZES:
                img = fit(src, side)
                if img.shape[:2] in done:  # a source smaller than this size: already cut
                    continue
                done.add(img.shape[:2])
                cut = tiles(img) or [(0, 0, img)]  # smaller than a tile: the whole image
                for r, c, view in cut:
                    tile = np.ascontiguousarray(view)
                    path = args.out / kind / f"{item.name}_{side}_{r}{c}.png"
                    if not path.is_file():
                        save_png(path, tile)
                    gray = to_gray(tile)
                    if quality_reason(laplacian_variance(gray), flat_ratio(gray), defaults) is None:
                        raws.append(raw_features(tile)["raw"])
            print(f"{kind}/{item.name}: {len(raws)} sharp tiles so far", flush=True)
    center = statistics.median(raws)
    (args.out / "center.txt").write_text(f"{center:.3f}\n")
    print(
        f"{len(raws)} tiles pass the filters; their median raw complexity {center:.3f} (center.txt)"
    )


if __name__ == "__main__":
    main()
