#!/usr/bin/env python
"""Assemble the bundled demo data under ``data/`` from clearly licensed offline sources.

Sources: scikit-image's bundled sample photos (public domain / CC0) and Debian packages fetched
with ``apt-get download`` and unpacked with ``dpkg-deb -x`` (nothing is installed).

Steps (deterministic for a given set of package versions):

1. download the ``.deb`` files into ``--cache`` (default ``/tmp/resyn-debs``) and extract them;
2. check every selected file's author appears in its package's ``copyright`` file;
3. decode, drop alpha, and downscale so the long side is at most 1024 px with
   ``resyn.degrade.imresize`` (MATLAB antialiased bicubic; images already small are kept);
4. write PNGs (zlib level 9):
   ``data/train/real/``, ``data/train/synthetic/``, the held-out test set
   ``data/test/ReSynDemo/HR`` (mod-12 crops of photos that are NOT in the training pool) with
   ``LR_bicubic/X{2,3,4}/<name>x{s}.png`` made by ``imresize(HR, 1/s)``, a second one laid out
   the same, ``data/test/ReSynUnseen`` (photos used for nothing but reporting), and
   ``data/examples/``;
5. write ``data/LICENSES.md`` (every file with source, author, license) and check the total size
   is at most 25 MB.

Usage: ``python scripts/make_bundled_data.py [--out data] [--cache /tmp/resyn-debs]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resyn.degrade import add_gaussian_noise, imresize, mod_crop
from resyn.io import atomic_write_text, encode_png, read_image, to_rgb8
from resyn.io.atomic import atomic_write_bytes

MAX_SIDE = 1024
BUDGET_BYTES = 25 * 1024 * 1024
TEST_SET = "ReSynDemo"
TEST_SCALES = (2, 3, 4)
TEST_MOD = 12

# Package versions the committed data was made from (a newer archive may differ; we warn).
PACKAGES = {
    "lomiri-wallpapers-16.04": "20.04.0-2",
    "lomiri-wallpapers-20.04": "20.04.0-2",
    "mate-backgrounds": "1.26.0-1",
    "gnome-backgrounds": "43.1-1",
    "sway-backgrounds": "1.7-6",
    "ukui-wallpapers": "20.04.3-1.1",
}

LICENSE_URLS = {
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC-BY-SA-3.0": "https://creativecommons.org/licenses/by-sa/3.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "GPL-2+": "https://www.gnu.org/licenses/old-licenses/gpl-2.0.html",
    "Expat": "https://opensource.org/license/mit",
    "Public domain": "",
}


@dataclass(frozen=True)
class Item:
    name: str  # output stem
    source: str  # "skimage" or a Debian package name
    path: str  # skimage function name, or the path inside the package
    author: str
    license: str
    check: str = ""  # text that must occur in the package's copyright file ("" = author)


L16 = "lomiri-wallpapers-16.04"
L20 = "lomiri-wallpapers-20.04"
BG = "usr/share/backgrounds"
MATE = f"{BG}/mate"

REAL_TRAIN = [
    Item(
        "skimage_astronaut",
        "skimage",
        "astronaut",
        "NASA (Eileen Collins portrait)",
        "Public domain",
    ),
    Item("skimage_chelsea", "skimage", "chelsea", "Stefan van der Walt", "CC0-1.0"),
    Item("skimage_coffee", "skimage", "coffee", "Rachel Michetti", "CC0-1.0"),
    Item("skimage_rocket", "skimage", "rocket", "SpaceX", "Public domain"),
    Item(
        "lomiri_bridge",
        L16,
        f"{BG}/Bridge_by_Sander_Klootwijk.jpg",
        "Sander Klootwijk",
        "CC-BY-SA-4.0",
    ),
    Item("lomiri_dragonfly", L16, f"{BG}/Dragonfly_by_Bolly.jpg", '"Bolly"', "CC-BY-SA-4.0"),
    Item("lomiri_fig", L16, f"{BG}/Picture_0B_by_freespace.jpg", 'Trevor "Freespace"', "CC-BY-4.0"),
    Item("lomiri_wine", L16, f"{BG}/Wine_by_Jakkub_Mede.jpg", "Jakub Mede", "CC-BY-4.0"),
    Item(
        "lomiri_aitzgorri",
        L16,
        f"{BG}/aitzgorri_by_Aitzol_Berasategi.jpg",
        "Aitzol Berasategi",
        "CC-BY-4.0",
    ),
    Item("lomiri_free", L16, f"{BG}/free_by_Peter_Nerlich.jpg", "Peter Nerlich", "CC-BY-SA-4.0"),
    Item(
        "lomiri_greentock",
        L16,
        f"{BG}/greentock_by_Peter_Nerlich.jpg",
        "Peter Nerlich",
        "CC-BY-SA-4.0",
    ),
    Item(
        "lomiri_life", L16, f"{BG}/life_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"
    ),
    Item(
        "lomiri_seeding",
        L16,
        f"{BG}/seeding_by_Clements_Engelhardt.jpg",
        "Clemens Engelhardt",
        "CC0-1.0",
    ),
    Item(
        "lomiri_kleiber", L20, f"{BG}/Kleiber_by_Lukas_Baubkus.jpg", "Lukas Baubkus", "CC-BY-SA-3.0"
    ),
    Item("mate_aqua", "mate-backgrounds", f"{MATE}/nature/Aqua.jpg", "Charles Barbin", "GPL-2+"),
    Item("mate_dune", "mate-backgrounds", f"{MATE}/nature/Dune.jpg", "Marco Cogoni", "GPL-2+"),
    Item(
        "mate_freshflower",
        "mate-backgrounds",
        f"{MATE}/nature/FreshFlower.jpg",
        "Jens Ansorg",
        "GPL-2+",
    ),
    Item(
        "mate_garden", "mate-backgrounds", f"{MATE}/nature/Garden.jpg", "Charles Barbin", "GPL-2+"
    ),
    Item(
        "mate_yellowflower",
        "mate-backgrounds",
        f"{MATE}/nature/YellowFlower.jpg",
        "Charles Barbin",
        "GPL-2+",
    ),
]

GNOME_NOTE = "Jakub Steiner and GNOME contributors (file not listed individually; package license)"
SYNTHETIC_TRAIN = [
    Item(
        "gnome_adwaita_l",
        "gnome-backgrounds",
        f"{BG}/gnome/adwaita-l.webp",
        "Jakub Steiner",
        "CC-BY-SA-3.0",
        "adwaita*",
    ),
    Item(
        "gnome_truchet_d",
        "gnome-backgrounds",
        f"{BG}/gnome/truchet-d.webp",
        GNOME_NOTE,
        "GPL-2+",
        "GNU General Public License",
    ),
    Item("lomiri_fossa", L20, f"{BG}/Fossa_by_Jasper_Roks.jpg", "Jasper Roks", "CC-BY-SA-3.0"),
    Item("lomiri_infinite_sea", L20, f"{BG}/Infinite-Sea_by_Aury88.jpg", "Aury88", "CC-BY-SA-3.0"),
    Item(
        "lomiri_painting_colors",
        L20,
        f"{BG}/Painting-Colors_by__herobrine7gamer.jpg",
        "HEROBRINE7GAMER",
        "CC-BY-SA-3.0",
    ),
    Item(
        "mate_elephants",
        "mate-backgrounds",
        f"{MATE}/abstract/Elephants.jpg",
        "Wyng Stancikaite",
        "GPL-2+",
    ),
    Item(
        "sway_blue",
        "sway-backgrounds",
        f"{BG}/sway/Sway_Wallpaper_Blue_1366x768.png",
        "Drew DeVault",
        "Expat",
    ),
    Item(
        "ukui_2004default",
        "ukui-wallpapers",
        f"{BG}/2004default.jpg",
        "Ubuntu Kylin community contributors",
        "CC-BY-SA-3.0",
    ),
    Item(
        "ukui_calla",
        "ukui-wallpapers",
        f"{BG}/calla.png",
        "Ubuntu Kylin community contributors",
        "CC-BY-SA-3.0",
    ),
    Item(
        "ukui_goldfish",
        "ukui-wallpapers",
        f"{BG}/goldfish.png",
        "Ubuntu Kylin community contributors",
        "CC-BY-SA-3.0",
    ),
    Item(
        "ukui_string",
        "ukui-wallpapers",
        f"{BG}/string.jpg",
        "Ubuntu Kylin community contributors",
        "CC-BY-SA-3.0",
    ),
]

# Held-out test photos (not in the training pool): (item, crop (h, w), crop centre as fractions).
TEST = [
    (
        Item(
            "brushes", L16, f"{BG}/Picture_1A_by_freespace.jpg", 'Trevor "Freespace"', "CC-BY-4.0"
        ),
        (288, 384),
        (0.5, 0.5),
    ),
    (
        Item(
            "dog", L16, f"{BG}/friends_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"
        ),
        (384, 288),
        (0.55, 0.5),
    ),
    (
        Item(
            "sunset", L16, f"{BG}/sunset_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0"
        ),
        (288, 384),
        (0.55, 0.5),
    ),
    (
        Item(
            "mountains",
            L16,
            f"{BG}/picosdeeuropa_by_Aitzol_Berasategi.jpg",
            "Aitzol Berasategi",
            "CC-BY-4.0",
        ),
        (288, 384),
        (0.45, 0.5),
    ),
    (
        Item(
            "ladybird",
            "mate-backgrounds",
            f"{MATE}/nature/LadyBird.jpg",
            "Charles Barbin",
            "GPL-2+",
        ),
        (288, 384),
        (0.45, 0.68),
    ),
    (
        Item("storm", "mate-backgrounds", f"{MATE}/nature/Storm.jpg", "Sergey Nazarov", "GPL-2+"),
        (288, 384),
        (0.5, 0.5),
    ),
    (
        Item(
            "twowings",
            "mate-backgrounds",
            f"{MATE}/nature/TwoWings.jpg",
            "Charles Barbin",
            "GPL-2+",
        ),
        (288, 384),
        (0.5, 0.45),
    ),
    (
        Item(
            "wood",
            "mate-backgrounds",
            f"{MATE}/nature/Wood.jpg",
            "Jean-François Fortin Tam",
            "GPL-2+",
        ),
        (288, 288),
        (0.5, 0.5),
    ),
]

# A second held-out set, used for nothing but reporting: no training, no choice of checkpoint or
# hyper-parameter looked at it (ReSynDemo is the validation set of the shipped weights' runs, so
# their checkpoints were chosen on it). The only photos of the sources left unused: three
# mate-backgrounds close-ups of foliage, two non-overlapping crops each.
UNSEEN_SET = "ReSynUnseen"
_BLINDS = Item(
    "blinds", "mate-backgrounds", f"{MATE}/nature/Blinds.jpg", "Lennart Poettering", "GPL-2+"
)
_MEADOW = Item(
    "greenmeadow",
    "mate-backgrounds",
    f"{MATE}/nature/GreenMeadow.jpg",
    "Timothy Schellhase",
    "GPL-2+",
)
_RAIN = Item(
    "raindrops",
    "mate-backgrounds",
    f"{MATE}/nature/RainDrops.jpg",
    '"blackcombwhistler07"',
    "GPL-2+",
)
UNSEEN = [
    (_BLINDS, "blinds_a", (288, 384), (0.5, 0.2)),
    (_BLINDS, "blinds_b", (288, 384), (0.5, 0.75)),
    (_MEADOW, "greenmeadow_a", (288, 384), (0.3, 0.25)),
    (_MEADOW, "greenmeadow_b", (288, 384), (0.7, 0.75)),
    (_RAIN, "raindrops_a", (288, 384), (0.35, 0.3)),
    (_RAIN, "raindrops_b", (288, 384), (0.6, 0.8)),
]

# README examples: a small photo crop to upscale and a noisy version (sigma 25) to denoise.
EXAMPLE_SOURCE = Item("chelsea", "skimage", "chelsea", "Stefan van der Walt", "CC0-1.0")
EXAMPLE_SCALE = 2 / 3  # 451x300 -> 301x200 with imresize, then crop
EXAMPLE_CROP = (192, 256)  # (h, w), the cat's face
EXAMPLE_CENTRE = (0.5, 0.45)
EXAMPLE_SIGMA = 25


def fetch_packages(cache: Path) -> dict[str, Path]:
    """``apt-get download`` each package once and extract it; returns package -> root folder."""
    cache.mkdir(parents=True, exist_ok=True)
    roots: dict[str, Path] = {}
    for pkg, version in PACKAGES.items():
        debs = sorted(cache.glob(f"{pkg}_*.deb"))
        if not debs:
            print(f"downloading {pkg}", flush=True)
            subprocess.run(["apt-get", "download", pkg], cwd=cache, check=True)
            debs = sorted(cache.glob(f"{pkg}_*.deb"))
        deb = debs[-1]
        got = deb.name.split("_")[1]
        if got != version:
            print(f"warning: {pkg} is {got}, the committed data used {version}", file=sys.stderr)
        root = cache / f"x_{pkg}"
        if not root.exists():
            tmp = cache / f"x_{pkg}.partial"
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
            tmp.rename(root)
        roots[pkg] = root
    return roots


def copyright_text(roots: dict[str, Path], pkg: str) -> str:
    return (roots[pkg] / "usr/share/doc" / pkg / "copyright").read_text(encoding="utf-8")


def load(item: Item, roots: dict[str, Path]) -> np.ndarray:
    """Decode a source image as uint8 RGB (alpha dropped), verifying its attribution."""
    if item.source == "skimage":
        import skimage.data

        img = getattr(skimage.data, item.path)()
    else:
        text = copyright_text(roots, item.source)
        needle = item.check or item.author.strip('"')
        if needle not in text:
            raise SystemExit(f"{item.source} copyright does not mention {needle!r} ({item.path})")
        img = read_image(roots[item.source] / item.path, max_pixels=None)
        if img.ndim == 3 and img.shape[2] == 4 and int(img[:, :, 3].min()) < 255:
            raise SystemExit(f"{item.path} has transparent pixels; pick another file")
    return to_rgb8(img)


def fit(img: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """Downscale with MATLAB bicubic so that the long side is at most ``max_side``."""
    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img
    out = imresize(img, max_side / max(h, w))
    return out[:max_side, :max_side]  # guard against ceil() giving max_side + 1


def crop(img: np.ndarray, size: tuple[int, int], centre: tuple[float, float]) -> np.ndarray:
    h, w = img.shape[:2]
    ch, cw = size
    if ch > h or cw > w:
        raise SystemExit(f"crop {size} larger than image {img.shape[:2]}")
    top = min(max(round(centre[0] * h - ch / 2), 0), h - ch)
    left = min(max(round(centre[1] * w - cw / 2), 0), w - cw)
    return img[top : top + ch, left : left + cw]


def save_png(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, encode_png(img, compression=9))


def source_label(item: Item) -> str:
    if item.source == "skimage":
        return f"scikit-image `skimage.data.{item.path}()`"
    return f"Debian `{item.source}` {PACKAGES[item.source]}: `/{item.path}`"


def license_cell(lic: str) -> str:
    url = LICENSE_URLS.get(lic, "")
    return f"[{lic}]({url})" if url else lic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/resyn-debs"))
    args = ap.parse_args()
    out: Path = args.out
    roots = fetch_packages(args.cache)
    rows: list[tuple[str, Item, str]] = []  # (relative file, item, what was done)

    for folder, items in (("train/real", REAL_TRAIN), ("train/synthetic", SYNTHETIC_TRAIN)):
        for item in items:
            src = load(item, roots)
            img = fit(src)
            rel = f"{folder}/{item.name}.png"
            save_png(out / rel, img)
            how = (
                "as is"
                if img is src
                else f"{src.shape[1]}x{src.shape[0]} -> {img.shape[1]}x{img.shape[0]}"
            )
            rows.append((rel, item, how))
            print(f"{rel}: {img.shape[1]}x{img.shape[0]}", flush=True)

    tests = [(TEST_SET, item, item.name, size, centre) for item, size, centre in TEST]
    tests += [(UNSEEN_SET, *entry) for entry in UNSEEN]
    for test_set, item, name, size, centre in tests:
        src = load(item, roots)
        hr = mod_crop(crop(fit(src), size, centre), TEST_MOD)
        rel = f"test/{test_set}/HR/{name}.png"
        save_png(out / rel, hr)
        how = f"resized to long side {MAX_SIDE}, {hr.shape[1]}x{hr.shape[0]} crop"
        if test_set == UNSEEN_SET:
            how += f" centred at ({centre[0]}, {centre[1]}) of the height and width"
        rows.append((rel, item, how))
        for s in TEST_SCALES:
            lr_rel = f"test/{test_set}/LR_bicubic/X{s}/{name}x{s}.png"
            save_png(out / lr_rel, imresize(hr, 1.0 / s))
            rows.append((lr_rel, item, f"`imresize(HR, 1/{s})` of the HR above"))
        print(f"{rel}: {hr.shape[1]}x{hr.shape[0]}", flush=True)

    ex = crop(imresize(load(EXAMPLE_SOURCE, roots), EXAMPLE_SCALE), EXAMPLE_CROP, EXAMPLE_CENTRE)
    h, w = EXAMPLE_CROP
    save_png(out / f"examples/cat_{w}x{h}.png", ex)
    rows.append((f"examples/cat_{w}x{h}.png", EXAMPLE_SOURCE, f"`imresize` by 2/3, {w}x{h} crop"))
    noisy = add_gaussian_noise(ex, EXAMPLE_SIGMA, seed=0)
    noisy8 = np.clip(np.round(noisy * 255.0), 0, 255).astype(np.uint8)
    save_png(out / f"examples/cat_{w}x{h}_noise{EXAMPLE_SIGMA}.png", noisy8)
    rows.append(
        (
            f"examples/cat_{w}x{h}_noise{EXAMPLE_SIGMA}.png",
            EXAMPLE_SOURCE,
            f"the crop plus Gaussian noise sigma {EXAMPLE_SIGMA} (seed 0), rounded to uint8",
        )
    )

    write_licenses(out, rows)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"total size of {out}: {total / 1e6:.2f} MB", flush=True)
    if total > BUDGET_BYTES:
        raise SystemExit(f"bundled data is {total / 1e6:.1f} MB, over the 25 MB budget")


def write_licenses(out: Path, rows: list[tuple[str, Item, str]]) -> None:
    lines = [
        "# Bundled data: sources and licenses",
        "",
        "Generated by `scripts/make_bundled_data.py`. Every image below is a modified (resized",
        "and/or cropped, re-encoded as PNG) version of the listed source file; the author and",
        "license come from scikit-image's `skimage/data/_fetchers.py` docstrings or from the",
        "Debian package's `/usr/share/doc/<package>/copyright` file. Images under CC-BY-SA and",
        "GPL-2+ stay under those licenses (share-alike); attribution is given here.",
        "The gnome-backgrounds `copyright` file lists only some files individually; files it does",
        "not list are covered by the package's stated license (GPL-2+).",
        "",
        "| file | source | author | license | changes |",
        "|---|---|---|---|---|",
    ]
    for rel, item, how in rows:
        lines.append(
            f"| `{rel}` | {source_label(item)} | {item.author} | {license_cell(item.license)} | {how} |"
        )
    lines.append("")
    atomic_write_text(out / "LICENSES.md", "\n".join(lines))


if __name__ == "__main__":
    main()
