"""Where every file of a built dataset lives and what it is called (BasicSR conventions).

::

    DIR/
      HR/<name>.png                         ground truth, mod-cropped (see below)
      LR_bicubic/X{s}/<name>x{s}.png        MATLAB-bicubic downscale of HR by s
      HR_sub/<name>_s{k:03d}.png            optional crops (--crop/--step/--thresh-size)
      LR_bicubic_sub/X{s}/<name>_s{k:03d}.png   the aligned LR crops (crop/s, step/s)
      meta_info.txt                         "<name>.png (h,w,c)" per HR image
      meta_info_sub.txt                     the same for HR_sub (only with --crop)
      manifest.csv  report.png  resyn_dataset.json  .resyn_state/  .resyn_dataset.lock

``<name>`` is ``<source>_<stem>``; files in sub-folders of a source add their folder names
(``<source>_<dir>_<stem>``), and if two inputs would still share a name the later one (in sorted
path order) gets ``_<8 hex digits of its path hash>`` appended.

Mod-crop policy: the HR image is cropped at the bottom and right to a multiple of the least
common multiple of all scales (12 for 2,3,4), so ``LR_s.shape * s == HR.shape`` for every scale.
"""

from __future__ import annotations

import hashlib
import math
import re
from functools import reduce
from pathlib import Path

HR_DIR = "HR"
LR_DIR = "LR_bicubic"
HR_SUB_DIR = "HR_sub"
LR_SUB_DIR = "LR_bicubic_sub"
MANIFEST = "manifest.csv"
META_INFO = "meta_info.txt"
META_INFO_SUB = "meta_info_sub.txt"
REPORT = "report.png"
CONFIG = "resyn_dataset.json"
STATE_DIR = ".resyn_state"
#: The OS lock that allows one build per folder at a time. Not in MANAGED: ``--overwrite``
#: must not delete the lock of the build that holds it.
LOCK = ".resyn_dataset.lock"

#: Everything the builder owns inside DIR (``--overwrite`` removes exactly these).
MANAGED = (
    HR_DIR,
    LR_DIR,
    HR_SUB_DIR,
    LR_SUB_DIR,
    MANIFEST,
    META_INFO,
    META_INFO_SUB,
    REPORT,
    CONFIG,
    STATE_DIR,
)

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def sanitize(text: str) -> str:
    """Keep file names portable: runs of other characters become one underscore."""
    return _UNSAFE.sub("_", text).strip("_") or "image"


def base_name(source: str, relpath: str) -> str:
    """``<source>_<dir>_<stem>`` for an input file at ``relpath`` inside its source folder."""
    rel = Path(relpath)
    parts = [*rel.parent.parts, rel.stem] if rel.parent != Path(".") else [rel.stem]
    return sanitize(source + "_" + "_".join(parts))


def assign_names(source: str, relpaths: list[str]) -> dict[str, str]:
    """Unique output names for the (sorted) inputs of one source."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for rel in sorted(relpaths):
        name = base_name(source, rel)
        if name in used:
            name = f"{name}_{hashlib.sha256(rel.encode()).hexdigest()[:8]}"
        used.add(name)
        names[rel] = name
    return names


def mod_unit(scales: list[int]) -> int:
    """Least common multiple of the scales: HR sizes are cropped to a multiple of it."""
    return reduce(math.lcm, scales, 1)


def cropped_size(height: int, width: int, scales: list[int]) -> tuple[int, int]:
    unit = mod_unit(scales)
    return height - height % unit, width - width % unit


def crop_positions(size: int, crop: int, step: int, thresh: int) -> list[int]:
    """BasicSR ``extract_subimages`` positions along one axis.

    Start at 0 and move by ``step`` while a full crop fits; if the remainder after the last crop
    is larger than ``thresh``, add one more crop flush with the far edge. An axis shorter than
    ``crop`` gives no crops.
    """
    if size < crop:
        return []
    positions = list(range(0, size - crop + 1, step))
    if size - (positions[-1] + crop) > thresh:
        positions.append(size - crop)
    return positions


def crop_boxes(height: int, width: int, crop: int, step: int, thresh: int) -> list[tuple[int, int]]:
    """Top-left corners of the HR crops, in BasicSR order (rows outer, columns inner)."""
    return [
        (y, x)
        for y in crop_positions(height, crop, step, thresh)
        for x in crop_positions(width, crop, step, thresh)
    ]


def hr_path(out: Path, name: str) -> Path:
    return out / HR_DIR / f"{name}.png"


def lr_path(out: Path, name: str, scale: int) -> Path:
    return out / LR_DIR / f"X{scale}" / f"{name}x{scale}.png"


def sub_name(name: str, index: int) -> str:
    """Crop ``index`` (1-based) of image ``name``: ``<name>_s001``."""
    return f"{name}_s{index:03d}"


def hr_sub_path(out: Path, name: str, index: int) -> Path:
    return out / HR_SUB_DIR / f"{sub_name(name, index)}.png"


def lr_sub_path(out: Path, name: str, index: int, scale: int) -> Path:
    return out / LR_SUB_DIR / f"X{scale}" / f"{sub_name(name, index)}.png"


def expected_outputs(
    out: Path,
    name: str,
    height: int,
    width: int,
    scales: list[int],
    crop: int | None,
    step: int | None,
    thresh: int,
) -> list[Path]:
    """Every file that one kept image produces, given its original size."""
    h, w = cropped_size(height, width, scales)
    paths = [hr_path(out, name)] + [lr_path(out, name, s) for s in scales]
    if crop:
        assert step is not None
        for k in range(1, len(crop_boxes(h, w, crop, step, thresh)) + 1):
            paths.append(hr_sub_path(out, name, k))
            paths.extend(lr_sub_path(out, name, k, s) for s in scales)
    return paths
