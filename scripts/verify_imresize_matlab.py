"""Compare ``resyn.degrade.imresize`` with images that MATLAB's ``imresize`` wrote.

The reference is the folder ``imresize_bicubic/`` of github.com/xinntao/matlab_functions_verification
(not bundled here: its license is not stated): ``baboon.png`` and MATLAB's
``imresize(im2double(img), s, 'bicubic')`` written with ``imwrite`` (so rounded to uint8) as
``baboon_{down,up}_x{s}_matlab.png``. MATLAB computed in double, so our float path is compared
(float64 in [0, 1], rounded once); our uint8 path rounds after each axis, as MATLAB does for
uint8 input, and is shown beside it for scale.

    .venv/bin/python scripts/verify_imresize_matlab.py PATH/TO/imresize_bicubic
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from resyn.degrade import imresize
from resyn.io import read_image

CASES = {"down_x2": 1 / 2, "down_x3": 1 / 3, "down_x4": 1 / 4, "up_x2": 2, "up_x3": 3, "up_x4": 4}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    args = ap.parse_args()
    src = read_image(args.folder / "baboon.png")
    print(f"baboon.png {src.shape[1]}x{src.shape[0]}; differences in uint8 levels")
    print("| case | output | float path: max | mean | share != 0 | uint8 path: max | mean |")
    print("|---|---|---|---|---|---|---|")
    for name, scale in CASES.items():
        path = args.folder / f"baboon_{name}_matlab.png"
        if not path.is_file():
            continue
        ref = read_image(path).astype(np.int64)
        ours = np.clip(np.round(imresize(src / 255.0, scale) * 255), 0, 255).astype(np.int64)
        d = np.abs(ours - ref)
        d8 = np.abs(imresize(src, scale).astype(np.int64) - ref)
        print(
            f"| {name} | {ref.shape[1]}x{ref.shape[0]} | {d.max()} | {d.mean():.6f} | "
            f"{(d > 0).mean():.6f} | {d8.max()} | {d8.mean():.4f} |"
        )


if __name__ == "__main__":
    main()
