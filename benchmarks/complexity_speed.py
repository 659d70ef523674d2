"""Images per second of `resyn complexity score` on 2048x1536 JPEG photos.

Photos: the colour photographs that ship with scikit-image, resized (bicubic) to 2048x1536 with
a little Gaussian grain (sigma 2) so the upscaling does not leave them unnaturally smooth, saved
as JPEG quality 90. Runs the real command line (a subprocess per configuration) with 2 local
processes and with a 2-worker local Dask cluster, without and with --bpp, and times the
per-image stages on one core. Usage: .venv/bin/python benchmarks/complexity_speed.py [--n 100]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import update_section

ROOT = Path(__file__).resolve().parents[1]

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left", "hubble_deep_field")


def make_photos(folder: Path, n: int) -> list[Path]:
    import cv2
    import skimage
    from skimage import io as skio

    data = Path(skimage.__file__).parent / "data"
    rng = np.random.default_rng(0)
    sources = []
    for name in PHOTOS:
        f = next(data.glob(f"{name}.*"))
        img = skio.imread(f)[..., :3]
        sources.append(cv2.resize(img, (2048, 1536), interpolation=cv2.INTER_CUBIC))
    paths = []
    for i in range(n):
        base = sources[i % len(sources)]
        if (i // len(sources)) % 2:
            base = base[:, ::-1]  # mirrored copies: different files, same statistics
        grain = rng.normal(0, 2.0, base.shape)
        img = np.clip(base.astype(np.float32) + grain, 0, 255).astype(np.uint8)
        p = folder / f"photo_{i:03d}.jpg"
        cv2.imwrite(str(p), img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(p)
    return paths


def run_cli(folder: Path, out: Path, extra: list[str]) -> tuple[float, float, int]:
    """(scoring seconds as reported by the command, wall seconds, images scored)."""
    cmd = [str(ROOT / ".venv" / "bin" / "resyn"), "complexity", "score", str(folder), "-o",
           str(out), "--workers", "2", *extra]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    text = " ".join(proc.stdout.split())
    m = re.search(r"scored (\d+) in ([\d.]+) s", text)
    if not m:
        raise RuntimeError(f"unexpected output: {text}")
    return float(m.group(2)), wall, int(m.group(1))


def stage_times(paths: list[Path]) -> dict[str, float]:
    """Median milliseconds per stage on one core."""
    import cv2
    from skimage.feature import graycomatrix

    from resyn.complexity import bpp, glcm, to_gray8
    from resyn.io import read_image

    cv2.setNumThreads(1)
    angles = np.deg2rad([0, 45, 90, 135])
    stages: dict[str, list[float]] = {}

    def timed(label: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        stages.setdefault(label, []).append(time.perf_counter() - t0)
        return result

    for p in paths:
        arr = timed("decode (resyn.io.read_image)", read_image, p)
        gray = timed("luma", to_gray8, arr)
        timed("GLCM counts, calcHist (ours)", glcm, gray, method="calchist")
        timed("GLCM counts, numpy bincount", glcm, gray, method="bincount")
        timed("GLCM, skimage graycomatrix", graycomatrix, gray, [1], angles, 256, True, True)
        timed("BPP (PNG level 6)", bpp, arr)
    return {k: 1e3 * float(np.median(v)) for k, v in stages.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100, help="photos without --bpp")
    ap.add_argument("--n-bpp", type=int, default=10, help="photos with --bpp")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fast, slow = root / "photos", root / "photos_bpp"
        fast.mkdir()
        slow.mkdir()
        paths = make_photos(fast, args.n)
        for p in paths[: args.n_bpp]:
            (slow / p.name).symlink_to(p)
        stages = stage_times(paths[:6])
        rows = []
        for engine in ("local", "dask"):
            for label, folder, extra in (("no", fast, []), ("yes", slow, ["--bpp"])):
                out = root / f"{engine}_{label}.csv"
                secs, wall, n = run_cli(folder, out, ["--engine", engine, *extra])
                rows.append((engine, label, n, n / secs, n / wall))
                print(rows[-1], flush=True)
    body = [
        "`resyn complexity score --workers 2` on 2048x1536 JPEG photos (q90; scikit-image "
        "photographs resized, with grain). 'scoring' = images / time the command reports "
        "(worker or cluster start-up included, interpreter start not); 'end-to-end' = images / "
        "wall-clock of the whole command. Target: >= 25 img/s without BPP on 2 cores.",
        "",
        "| engine | BPP | images | scoring img/s | end-to-end img/s |",
        "|---|---|---|---|---|",
    ]
    body += [f"| {e} ({'2 processes' if e == 'local' else '2-worker LocalCluster'}) | {b} | "
             f"{n} | {r:.1f} | {w:.1f} |" for e, b, n, r, w in rows]  # fmt: skip
    body += ["", "Per-image stages, one core (median ms over 6 photos):", "",
             "| stage | ms |", "|---|---|"]  # fmt: skip
    body += [f"| {k} | {v:.1f} |" for k, v in stages.items()]
    update_section("complexity_speed", "GLCM complexity scoring speed", "\n".join(body))
    print("\n".join(body))


if __name__ == "__main__":
    main()
