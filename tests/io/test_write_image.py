"""write_image / encode_png keep the layout: gray + alpha stays a gray + alpha PNG."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from resyn.io import encode_png, read_image, write_image

_PNG_COLOR_TYPE = {0: "gray", 2: "rgb", 4: "gray+alpha", 6: "rgba"}


def _ihdr(png: bytes) -> tuple[int, str]:
    assert png[12:16] == b"IHDR"
    return png[24], _PNG_COLOR_TYPE[png[25]]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gray_alpha_round_trip_stays_gray_alpha(tmp_path, rng, dtype):
    top = np.iinfo(dtype).max
    gray = rng.integers(0, top + 1, (37, 53)).astype(dtype)
    alpha = np.linspace(0, top, 53 * 37).reshape(37, 53).astype(dtype)
    la = np.dstack([gray, alpha])
    path = write_image(tmp_path / "la.png", la, metadata={"resyn": "test"})
    data = path.read_bytes()
    assert _ihdr(data) == (8 * np.dtype(dtype).itemsize, "gray+alpha")  # not RGBA
    out = read_image(path)
    assert out.dtype == dtype and out.shape == la.shape
    np.testing.assert_array_equal(out, la)
    # another decoder agrees on the pixels (OpenCV expands gray + alpha to BGRA)
    bgra = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert bgra.dtype == dtype
    for c in range(3):
        np.testing.assert_array_equal(bgra[:, :, c], gray)
    np.testing.assert_array_equal(bgra[:, :, 3], alpha)
    with Image.open(io.BytesIO(data)) as im:
        im.load()  # CRCs and zlib stream valid
        assert im.text == {"resyn": "test"}


def test_8bit_gray_alpha_is_pillow_la(rng):
    la = rng.integers(0, 256, (9, 11, 2), dtype=np.uint8)
    with Image.open(io.BytesIO(encode_png(la, compression=9))) as im:
        assert im.mode == "LA"
        np.testing.assert_array_equal(np.asarray(im), la)


@pytest.mark.parametrize("shape", [(20, 30), (20, 30, 1), (20, 30, 3), (20, 30, 4)])
def test_other_layouts_unchanged(rng, shape):
    arr = rng.integers(0, 65536, shape).astype(np.uint16)
    out = read_image(encode_png(arr))
    np.testing.assert_array_equal(out, arr[:, :, 0] if shape[-1:] == (1,) else arr)
