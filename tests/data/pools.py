"""Small synthetic image pools for the dataset-builder tests (generated, nothing downloaded).

Imported by the tests with ``importlib`` from this folder (no package needed).
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def noisy(seed: int, h: int = 96, w: int = 96) -> np.ndarray:
    """High-complexity RGB image (uniform noise): complexity score > 0."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def smooth(seed: int, h: int = 96, w: int = 96) -> np.ndarray:
    """Low-complexity but sharp RGB image (gradient + mild noise): score <= 0, passes filters."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 60 + 100 * (xx / w) + 40 * (yy / h) + 10 * seed % 50
    img = base[:, :, None] + rng.normal(0, 3, (h, w, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def blurry(h: int = 96, w: int = 96) -> np.ndarray:
    img = noisy(99, h, w).astype(np.float64)
    return np.clip(cv2.GaussianBlur(img, (0, 0), 6), 0, 255).astype(np.uint8)


def flat(h: int = 96, w: int = 96) -> np.ndarray:
    img = np.full((h, w, 3), 128, np.uint8)
    img[: h // 4, : w // 4] = noisy(98, h // 4, w // 4)  # 6% busy: sharp, yet mostly flat
    return img


def save(path: Path, img: np.ndarray | Image.Image, **kwargs: object) -> Path:
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)
    return path


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def make_clean_pool(folder: Path, n_noisy: int, n_smooth: int, seed0: int = 0) -> Path:
    for i in range(n_noisy):
        save(folder / f"noisy_{i:02d}.png", noisy(seed0 + i))
    for i in range(n_smooth):
        save(folder / f"smooth_{i:02d}.png", smooth(seed0 + i))
    return folder


def make_bad_pool(folder: Path) -> dict[str, str]:
    """Every kind of bad or unusual input; returns {file name: expected reason code or 'ok'}."""
    folder.mkdir(parents=True, exist_ok=True)
    expect: dict[str, str] = {}
    good = png_bytes(noisy(50))
    (folder / "corrupt.png").write_bytes(good[:16] + b"\x00garbage" * 50)
    expect["corrupt.png"] = "unreadable"
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    expect["truncated.png"] = "unreadable"
    (folder / "empty.jpg").write_bytes(b"")
    expect["empty.jpg"] = "unreadable"
    (folder / "notes.txt").write_text("not an image\n")
    expect["notes.txt"] = "unreadable"
    (folder / "fake.png").write_text("<html>not a png</html>")
    expect["fake.png"] = "unreadable"
    # The same pixels as noisy_00.png of the clean pool, stored as BMP: an exact duplicate.
    save(folder / "zdup_noisy_00.bmp", noisy(0))
    expect["zdup_noisy_00.bmp"] = "duplicate"
    save(folder / "tiny.png", noisy(51, 40, 40))
    expect["tiny.png"] = "too-small"
    save(folder / "blurry.png", blurry())
    expect["blurry.png"] = "blurry"
    save(folder / "flat.png", flat())
    expect["flat.png"] = "flat"
    # Unusual but valid encodings: each must decode and be measured.
    sixteen = (noisy(52, 96, 96)[:, :, 0].astype(np.uint16) * 257) + 3
    cv2.imwrite(str(folder / "deep16.png"), sixteen)
    expect["deep16.png"] = "ok"
    save(folder / "palette.png", Image.fromarray(noisy(53)).quantize(64), format="PNG")
    expect["palette.png"] = "ok"
    save(folder / "cmyk.jpg", Image.fromarray(noisy(54)).convert("CMYK"), quality=95)
    expect["cmyk.jpg"] = "ok"
    rgba = np.dstack([noisy(55), np.full((96, 96), 200, np.uint8)])
    save(folder / "rgba.png", rgba)
    expect["rgba.png"] = "ok"
    save(folder / "gray.png", smooth(56)[:, :, 0])
    expect["gray.png"] = "ok"
    rotated = Image.fromarray(noisy(57, 80, 120))  # stored 120 wide, 80 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    rotated.save(folder / "exif_rot.jpg", quality=95, exif=exif.tobytes())
    expect["exif_rot.jpg"] = "ok"
    return expect
