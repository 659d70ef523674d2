"""read_image: OpenCV fast path for plain JPEG/BMP gives Pillow's results and Pillow's errors."""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps
from skimage import data as skdata

from resyn.io import ImageReadError, read_image
from resyn.io import images as images_mod


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.ascontiguousarray(skdata.astronaut()[100:196, 120:248])  # 96x128 RGB, real texture


def _save(arr: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


def _pillow(data: bytes) -> np.ndarray:
    """The previous decoder: Pillow, EXIF orientation applied by Pillow's own exif_transpose."""
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    return np.asarray(img)


@pytest.fixture
def imdecode_calls(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = cv2.imdecode

    def spy(buf, flags):
        calls.append(flags)
        return real(buf, flags)

    monkeypatch.setattr(cv2, "imdecode", spy)
    return calls


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and bool((a == b).all())


@pytest.mark.parametrize("layout", ["L", "RGB", "RGBA"])
def test_png_is_identical_to_pillow_and_to_the_pixels(photo, layout):
    arr = {"L": photo[:, :, 1], "RGB": photo, "RGBA": np.dstack([photo, photo[:, :, 0]])}[layout]
    data = _save(np.ascontiguousarray(arr), "PNG")
    out = read_image(data)
    assert _same(out, _pillow(data)) and _same(out, arr)


@pytest.mark.parametrize("subsampling", [0, 1, 2])
@pytest.mark.parametrize("gray", [False, True])
def test_baseline_jpeg_takes_the_fast_path_and_matches_pillow(
    photo, subsampling, gray, imdecode_calls
):
    arr = np.ascontiguousarray(photo[:, :, 1]) if gray else photo
    data = _save(arr, "JPEG", quality=90, subsampling=subsampling)
    out = read_image(data)
    assert imdecode_calls, "plain baseline JPEG should be decoded by OpenCV"
    assert _same(out, _pillow(data))
    assert out.flags.c_contiguous


def test_opencv_written_jpeg_with_restart_markers_matches_pillow(photo, imdecode_calls):
    params = [cv2.IMWRITE_JPEG_QUALITY, 75, cv2.IMWRITE_JPEG_RST_INTERVAL, 1]
    data = cv2.imencode(".jpg", photo[:, :, ::-1], params)[1].tobytes()
    assert _same(read_image(data), _pillow(data)) and imdecode_calls


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_of_jpeg_is_applied_once(photo, orientation, imdecode_calls):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _save(photo, "JPEG", quality=90, exif=exif.tobytes())
    out = read_image(data)
    assert imdecode_calls
    expected = _pillow(data)
    assert _same(out, expected)
    assert out.shape[:2] == ((128, 96) if orientation >= 5 else (96, 128))


def test_progressive_jpeg_and_trailing_bytes_stay_with_pillow_and_match(photo, imdecode_calls):
    prog = _save(photo, "JPEG", quality=90, progressive=True)
    assert _same(read_image(prog), _pillow(prog))
    assert not imdecode_calls  # a stray marker mid-scan could not be told from a real one
    trailing = _save(photo, "JPEG", quality=90) + b"camera trailer"
    assert _same(read_image(trailing), _pillow(trailing))  # EOI found: fast path, same result


def test_mpo_first_frame(photo):
    buf = io.BytesIO()
    second = Image.fromarray(np.ascontiguousarray(photo[::-1]))
    Image.fromarray(photo).save(buf, "MPO", save_all=True, append_images=[second])
    data = buf.getvalue()
    assert _same(read_image(data), _pillow(data))


def test_24bit_bmp(photo):
    data = _save(photo, "BMP")
    assert _same(read_image(data), photo)


@pytest.mark.parametrize(
    ("fmt", "kw"),
    [
        ("JPEG", {}),
        ("PNG", {}),
        ("WEBP", {}),
        ("WEBP", {"lossless": True}),
        ("TIFF", {}),
        ("TIFF", {"compression": "tiff_lzw"}),
        ("BMP", {}),
    ],
)
@pytest.mark.parametrize("keep", [0.01, 0.3, 0.7, 0.99])
def test_truncated_files_raise_image_read_error(photo, tmp_path, fmt, kw, keep):
    """Pillow raises OSError from Image.open for a cut WebP ("could not create decoder object")
    or JPEG header, and cannot identify a TIFF cut before its directory: all are "corrupt or
    truncated", not a crash and not "not an image"."""
    data = _save(photo, fmt, **kw)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: max(16, int(len(data) * keep))])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's "Corrupt EXIF data" stays out of the output
        with pytest.raises(ImageReadError, match="corrupt or truncated") as err:
            read_image(path)
    assert err.value.path == str(path)


def test_files_that_are_not_images_keep_their_message(tmp_path):
    for text in (b"this is not an image\n", b"<html>not a png</html>", b"II* a text"):
        with pytest.raises(ImageReadError, match="not an image, or an unsupported format"):
            read_image(text)


def test_jpeg_without_its_last_byte_is_truncated(photo):
    data = _save(photo, "JPEG")
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(data[:-1])


def test_corrupt_jpeg_scan_gives_the_same_outcome_as_pillow(photo):
    """A 0xFF written into the scan data makes a stray marker: Pillow refuses most of these, and
    OpenCV (which would fill gray and warn) must not be the one to decide."""
    data = _save(photo, "JPEG", quality=90)
    sos = data.index(b"\xff\xda")
    raised = 0
    for pos in range(sos + 40, len(data) - 10, 97):
        if data[pos + 1] in (0x00, 0xFF) or 0xD0 <= data[pos + 1] <= 0xD7:
            continue
        bad = data[:pos] + b"\xff" + data[pos + 1 :]
        try:
            expected = _pillow(bad)
        except OSError:
            raised += 1
            with pytest.raises(ImageReadError, match="corrupt or truncated"):
                read_image(bad)
        else:
            assert _same(read_image(bad), expected)
    assert raised > 0


def test_pixel_limit_refused_before_any_decode(photo, monkeypatch):
    data = _save(photo, "JPEG")

    def forbidden(*args, **kwargs):
        raise AssertionError("decoded pixels before the pixel-limit check")

    monkeypatch.setattr(cv2, "imdecode", forbidden)
    monkeypatch.setattr(ImageFile.ImageFile, "load", forbidden)
    with pytest.raises(ImageReadError, match="pixel limit"):
        read_image(data, max_pixels=96 * 128 - 1)


def test_16bit_png_stays_uint16():
    ramp = (np.arange(40 * 50, dtype=np.uint32) * 31 % 65536).astype(np.uint16).reshape(40, 50)
    rgb = np.dstack([ramp, ramp[::-1], 65535 - ramp])
    for arr in (ramp, rgb):
        png = images_mod.encode_png(arr)
        out = read_image(png)
        assert out.dtype == np.uint16 and _same(out, arr)


def test_cmyk_and_palette_jpeg_png_still_decoded_by_pillow(photo):
    buf = io.BytesIO()
    Image.fromarray(photo).convert("CMYK").save(buf, "JPEG")
    cmyk = buf.getvalue()
    assert _same(read_image(cmyk), np.asarray(Image.open(io.BytesIO(cmyk)).convert("RGB")))
    pal = io.BytesIO()
    Image.fromarray(photo).convert("P").save(pal, "PNG")
    out = read_image(pal.getvalue())
    assert _same(out, np.asarray(Image.open(io.BytesIO(pal.getvalue())).convert("RGB")))


def test_opencv_warnings_stay_out_of_the_output(capfd, monkeypatch):
    """A truncated 16-bit PNG is decoded by OpenCV, which used to print "[ WARN:0@0.1] global
    grfmt_png.cpp ... PNG input buffer is incomplete" in the middle of progress bars."""
    monkeypatch.delenv("OPENCV_LOG_LEVEL", raising=False)
    images_mod._opencv.cache_clear()
    ramp = (np.arange(64 * 64, dtype=np.uint32) * 13 % 65536).astype(np.uint16).reshape(64, 64)
    png = images_mod.encode_png(ramp)
    capfd.readouterr()
    with pytest.raises(ImageReadError, match="corrupt or truncated"):
        read_image(png[: len(png) // 2])
    assert "WARN" not in capfd.readouterr().err
