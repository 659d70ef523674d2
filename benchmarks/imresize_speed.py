"""Time resyn.degrade.imresize (MATLAB bicubic) on a 2048x1536 uint8 RGB image.

Single quick run per setting (plus one warm-up) - the numbers are indicative, the machine may be
shared. Also reports PIL's bicubic resize for scale, which is NOT MATLAB-compatible.
"""

from __future__ import annotations

import time

import numpy as np
from _report import update_section

from resyn.degrade import imresize


def _time(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (1536, 2048, 3), dtype=np.uint8)
    pil = Image.fromarray(img)
    rows = []
    for label, scale in (("x1/2", 1 / 2), ("x1/4", 1 / 4), ("x2 (up)", 2)):
        t = _time(lambda s=scale: imresize(img, s))
        f = _time(lambda s=scale: imresize(img.astype(np.float32), s))
        size = (round(2048 * scale), round(1536 * scale))
        p = _time(lambda sz=size: pil.resize(sz, Image.Resampling.BICUBIC))
        out = imresize(img, scale)
        rows.append(
            f"| {label} | {out.shape[1]}x{out.shape[0]} | {t * 1000:.0f} | {f * 1000:.0f} | "
            f"{p * 1000:.0f} |"
        )
    body = "\n".join(
        [
            "`benchmarks/imresize_speed.py`: `resyn.degrade.imresize` on a 2048x1536 RGB image "
            "(median of 3 runs after a warm-up). PIL bicubic is shown for scale only (different "
            "definition, not MATLAB-compatible).",
            "",
            "| scale | output | imresize uint8 (ms) | imresize float32 (ms) | PIL bicubic (ms) |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    path = update_section("imresize_speed", "MATLAB bicubic imresize speed", body)
    print(body)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
