"""Decode and encode images the way a restoration tool needs.

``read_image`` returns a numpy array in one of a few canonical layouts, whatever the file was:

- ``(H, W)`` gray, ``(H, W, 2)`` gray + alpha, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA;
- ``uint8``, or ``uint16`` when the file holds more than 8 bits per sample (16-bit PNG/TIFF);
- EXIF orientation applied; palette images expanded; CMYK converted to RGB.

Everything that goes wrong raises ``ImageReadError`` whose message names the file and the cause
(empty file, not an image, truncated data, pixel limit exceeded, unsupported mode).

Decoders. Pillow always reads the header first (format, mode, size, EXIF orientation), so the
pixel limit is enforced before any pixel data is decoded. Intact baseline 8-bit JPEG/MPO files
(mode ``L`` or ``RGB``) and uncompressed 24-bit BMPs are then decoded by OpenCV (``cv2.imdecode``,
libjpeg-turbo), about twice as fast for a 2048x1536 JPEG because Pillow's conversion to numpy
costs as much as its decode. Everything else is decoded by Pillow as before: PNG (Pillow's
``getexif`` already decodes a PNG to find an eXIf chunk after the pixels, so OpenCV would decode
it twice), WebP (OpenCV silently decodes some corrupt WebP bitstreams that Pillow refuses),
palette, 1-bit, LA, CMYK, 16-bit, TIFF, GIF, progressive or multi-scan JPEGs, and JPEGs with a
stray marker or no EOI. The results are bit-identical: both use libjpeg-turbo with its defaults
(ISLOW IDCT, fancy upsampling); measured on the scikit-image photographs and the bundled training
photos at quality 75 and 90 with 4:4:4, 4:2:2 and 4:2:0 subsampling, and checked by
``tests/io/test_read_image.py``. When OpenCV cannot decode a file or returns an unexpected
layout, Pillow decodes it, so corrupt and truncated files raise the errors they always raised.
"""

from __future__ import annotations

import functools
import io
import os
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from resyn.errors import ResynError
from resyn.io.atomic import atomic_write_bytes
from resyn.io.files import link_problem

# A decompression-bomb guard: images with more pixels than this are refused unless the caller
# raises the limit. 16k x 16k is far above any photo the toolkit expects.
DEFAULT_MAX_PIXELS = 268_435_456

_EXIF_ORIENTATION = 0x0112


class ImageReadError(ResynError, ValueError):
    """An image file could not be decoded; ``reason`` is a short cause for reports."""

    def __init__(self, path: str | os.PathLike[str] | None, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.reason = reason
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{reason}")


def read_image(
    source: str | os.PathLike[str] | bytes,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode an image file (or its bytes) into a canonical numpy array (see module docs)."""
    path = None if isinstance(source, bytes) else Path(source)
    if path is not None:
        if not path.exists():
            raise ImageReadError(path, link_problem(path) or "file not found")
        if path.is_dir():
            raise ImageReadError(path, "is a folder, not an image file")
        data = path.read_bytes()
    else:
        data = source
    if len(data) == 0:
        raise ImageReadError(path, "empty file (0 bytes)")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        # "Corrupt EXIF data" and the like: a bad file raises ImageReadError below, and a bad
        # EXIF block in a good file only costs its orientation; no stray lines in the output.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        saved_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # our own limit below gives the clearer message
        try:
            try:
                img = Image.open(io.BytesIO(data))
            except UnidentifiedImageError:
                fmt = _signature_format(data)
                if fmt is None:
                    raise ImageReadError(path, "not an image, or an unsupported format") from None
                raise ImageReadError(
                    path, f"corrupt or truncated image data ({fmt} header, but unreadable)"
                ) from None
            except _decode_errors() as exc:  # e.g. WebP: "could not create decoder object"
                raise ImageReadError(path, _corrupt(exc)) from None
            width, height = img.size
            if width <= 0 or height <= 0:
                raise ImageReadError(path, f"invalid size {width}x{height}")
            if max_pixels is not None and width * height > max_pixels:
                raise ImageReadError(
                    path,
                    f"{width}x{height} = {width * height} pixels exceeds the pixel limit of "
                    f"{max_pixels} (possible decompression bomb; raise max_pixels, or --max-pixels, to allow it)",
                )
            try:
                orientation = _orientation(img)
                if _is_high_bit_depth(img, data):
                    arr = _decode_with_opencv(data, path)
                else:
                    arr = _decode_8bit_fast(img, data)
                    if arr is None:
                        arr = _decode_with_pillow(img, path)
            except ImageReadError:
                raise
            except _decode_errors() as exc:
                raise ImageReadError(path, _corrupt(exc)) from None
        finally:
            Image.MAX_IMAGE_PIXELS = saved_limit
    return np.ascontiguousarray(_apply_orientation(arr, orientation))


@functools.cache
def _opencv():
    """``cv2``, with OpenCV's log level lowered to errors the first time resyn decodes or
    encodes in a process: its warnings ("PNG input buffer is incomplete" for a file that is
    reported as corrupt anyway) would print in the middle of progress bars. An
    ``OPENCV_LOG_LEVEL`` set by the user is left as it is."""
    import cv2

    if not os.environ.get("OPENCV_LOG_LEVEL"):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    return cv2


@functools.cache
def _decode_errors() -> tuple[type[BaseException], ...]:
    """What Pillow's and OpenCV's decoders raise for bad data (besides UnidentifiedImageError).
    A function so that OpenCV is only imported when an error needs it."""
    import cv2

    return (OSError, ValueError, SyntaxError, EOFError, struct.error, cv2.error)


def _corrupt(exc: BaseException) -> str:
    return f"corrupt or truncated image data ({str(exc).strip() or type(exc).__name__})"


def _signature_format(data: bytes) -> str | None:
    """The format whose magic number ``data`` starts with (for files Pillow cannot identify:
    a truncated TIFF, a PNG cut inside its header), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:2] == b"BM" and len(data) >= 14 and data[6:10] == b"\x00\x00\x00\x00":
        return "BMP"  # the reserved header fields are zero
    return None


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(_EXIF_ORIENTATION, 1)
        return int(value) if value in range(1, 9) else 1
    except Exception:  # a broken EXIF block must not make a good image unreadable
        return 1


def _is_high_bit_depth(img: Image.Image, data: bytes) -> bool:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return True
    if img.format == "PNG" and len(data) > 25:
        return data[24] == 16  # IHDR bit depth byte
    if img.format == "TIFF":
        bits = img.tag_v2.get(258) if hasattr(img, "tag_v2") else None
        if bits is not None:
            bits = bits if isinstance(bits, (tuple, list)) else (bits,)
            return max(int(b) for b in bits) > 8
    return False


# OpenCV refuses images above 2**30 pixels (OPENCV_IO_MAX_IMAGE_PIXELS); leave those to Pillow.
_OPENCV_MAX_PIXELS = 1 << 30


def _fast_path_applies(img: Image.Image, data: bytes) -> bool:
    """Whether OpenCV decodes this file to exactly what ``_decode_with_pillow`` would return.

    Only complete files of the plain 8-bit layouts: anything unusual, and any file that looks
    truncated, stays with Pillow, which produces the established results and error messages.
    """
    mode = img.mode
    if mode not in ("L", "RGB", "RGBA") or img.width * img.height >= _OPENCV_MAX_PIXELS:
        return False
    fmt = img.format
    if fmt in ("JPEG", "MPO"):  # MPO: OpenCV and Pillow both decode the first picture
        return mode != "RGBA" and _jpeg_is_clean(data)
    if fmt == "BMP" and len(data) >= 54:
        offset, header = (int.from_bytes(data[i : i + 4], "little") for i in (10, 14))
        bits = int.from_bytes(data[28:30], "little")
        compression = int.from_bytes(data[30:34], "little")
        stride = (img.width * 3 + 3) // 4 * 4
        return (
            header >= 40
            and bits == 24
            and compression == 0
            and int.from_bytes(data[22:26], "little", signed=True) > 0  # bottom-up rows
            and mode == "RGB"
            and offset + stride * img.height <= len(data)
        )
    return False


# In entropy-coded data 0xFF is followed by 0x00 (a stuffed data byte) or 0xD0-0xD7 (a restart
# marker); any other byte after 0xFF starts a marker (or is a fill byte 0xFF).
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def _jpeg_is_clean(data: bytes) -> bool:
    """True for a baseline JPEG with one scan of all components that runs intact up to an EOI.

    Pillow refuses a JPEG whose scan data is cut short or hits a stray marker (a corrupt 0xFF
    byte), while OpenCV fills the rest with gray and only prints a warning; such files, and
    progressive or multi-scan files (where a stray marker cannot be told from a real one), go to
    Pillow. Bytes after the EOI (MPO frames, trailers) are ignored by both decoders.
    """
    n = len(data)
    if data[:2] != b"\xff\xd8":
        return False
    pos, frame_components = 2, 0
    while True:  # header segments, up to the start of scan
        while pos + 1 < n and data[pos] == 0xFF and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes
        if pos + 4 > n or data[pos] != 0xFF:
            return False
        code = data[pos + 1]
        if code in (0xC0, 0xC1) and pos + 10 <= n:  # baseline / extended sequential, Huffman
            frame_components = data[pos + 9]
        elif 0xC0 <= code <= 0xCF and code not in (0xC4, 0xC8, 0xCC):
            return False  # progressive, lossless, arithmetic or hierarchical frame
        elif code in (0x01, 0xD8, 0xD9) or 0xD0 <= code <= 0xD7:
            return False
        if code == 0xDA:
            if pos + 5 > n or data[pos + 4] != frame_components:
                return False  # no frame header, or a scan of only some components
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
            break
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    while True:  # entropy-coded data: the next marker must be the EOI
        m = _JPEG_MARKER.search(data, pos)
        if m is None:
            return False  # no EOI: truncated
        code = data[m.start() + 1]
        if code != 0xFF:
            return code == 0xD9
        pos = m.start() + 1  # fill byte


def _decode_8bit_fast(img: Image.Image, data: bytes) -> np.ndarray | None:
    """OpenCV decode of a plain 8-bit file, or None to let Pillow decode it (see module docs)."""
    if not _fast_path_applies(img, data):
        return None
    cv2 = _opencv()

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    channels = {"L": (), "RGB": (3,), "RGBA": (4,)}[img.mode]
    if arr is None or arr.dtype != np.uint8 or arr.shape != (img.height, img.width, *channels):
        return None
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB if arr.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    return arr


def _decode_with_opencv(data: bytes, path: Path | None) -> np.ndarray:
    cv2 = _opencv()

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageReadError(path, "corrupt or truncated high-bit-depth image")
    if arr.dtype not in (np.uint8, np.uint16):
        if np.issubdtype(arr.dtype, np.integer):
            arr = np.clip(arr, 0, 65535).astype(np.uint16)
        else:
            raise ImageReadError(path, f"unsupported sample type {arr.dtype}")
    if arr.ndim == 3:
        if arr.shape[2] == 3:
            arr = arr[:, :, ::-1]
        elif arr.shape[2] == 4 and _is_gray_alpha_png(data):
            arr = arr[:, :, [0, 3]]  # OpenCV expands gray + alpha to BGRA; gray stays gray
        elif arr.shape[2] == 4:
            arr = arr[:, :, [2, 1, 0, 3]]
        elif arr.shape[2] == 1:
            arr = arr[:, :, 0]
    return arr


def _is_gray_alpha_png(data: bytes) -> bool:
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 25 and data[25] == 4  # IHDR


def _decode_with_pillow(img: Image.Image, path: Path | None) -> np.ndarray:
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(path, f"corrupt or truncated image data ({exc})") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved
    mode = img.mode
    if mode == "P" or mode == "PA":
        img = img.convert("RGBA" if _palette_has_alpha(img) else "RGB")
    elif mode == "1":
        img = img.convert("L")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
    elif mode == "RGBa":
        img = img.convert("RGBA")
    elif mode == "La":
        img = img.convert("LA")
    elif mode == "F":
        raise ImageReadError(path, "floating-point images are not supported")
    if img.mode not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("RGB")
    # The four modes left all have 8-bit samples. tobytes + frombuffer measured a little faster
    # than np.asarray (which calls tobytes too) and np.array (one more copy); same read-only array.
    channels = {"L": (), "LA": (2,), "RGB": (3,), "RGBA": (4,)}[img.mode]
    return np.frombuffer(img.tobytes(), np.uint8).reshape(img.height, img.width, *channels)


def _palette_has_alpha(img: Image.Image) -> bool:
    return img.mode == "PA" or "transparency" in img.info


def _apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation tag (1..8) to an HW[C] array."""
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1, :]
    if orientation == 5:
        return np.swapaxes(arr, 0, 1)
    if orientation == 6:
        return np.rot90(arr, k=-1)
    if orientation == 7:  # transverse: a transpose about the anti-diagonal (5 is the main one)
        return np.swapaxes(arr[::-1, ::-1], 0, 1)
    if orientation == 8:
        return np.rot90(arr, k=1)
    return arr


def split_alpha(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Split ``(H, W, 2|4)`` into color and alpha; other layouts have no alpha."""
    if arr.ndim == 3 and arr.shape[2] in (2, 4):
        color = arr[:, :, :-1]
        if color.shape[2] == 1:
            color = color[:, :, 0]
        return color, arr[:, :, -1]
    return arr, None


def to_rgb8(arr: np.ndarray) -> np.ndarray:
    """Any canonical layout to ``(H, W, 3) uint8`` RGB (alpha dropped, gray replicated,
    16-bit rounded to 8-bit)."""
    color, _ = split_alpha(arr)
    if color.dtype == np.uint16:
        color = np.round(color.astype(np.float64) / 257.0).astype(np.uint8)
    elif color.dtype != np.uint8:
        raise ValueError(f"expected uint8 or uint16 samples, got {color.dtype}")
    if color.ndim == 2:
        color = np.repeat(color[:, :, None], 3, axis=2)
    return np.ascontiguousarray(color)


def encode_png(
    arr: np.ndarray, *, compression: int = 6, metadata: dict[str, str] | None = None
) -> bytes:
    """Encode an HW / HWC (1, 2, 3 or 4 channels) uint8/uint16 gray, gray+alpha, RGB or RGBA
    array as PNG bytes of the same layout and bit depth (2 channels: a gray+alpha PNG).

    ``metadata`` entries become PNG ``tEXt`` chunks (Latin-1 keys and values).
    """
    cv2 = _opencv()

    if arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG needs uint8 or uint16 samples, got {arr.dtype}")
    a = arr
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3 and a.shape[2] == 2:  # gray + alpha: OpenCV writes no LA PNG
        png = _encode_gray_alpha_png(a, compression)
    else:
        if a.ndim == 3 and a.shape[2] == 3:
            a = a[:, :, ::-1]
        elif a.ndim == 3 and a.shape[2] == 4:
            a = a[:, :, [2, 1, 0, 3]]
        ok, buf = cv2.imencode(
            ".png", np.ascontiguousarray(a), [cv2.IMWRITE_PNG_COMPRESSION, compression]
        )
        if not ok:
            raise ValueError("PNG encoding failed")
        png = buf.tobytes()
    if metadata:
        png = _insert_text_chunks(png, metadata)
    return png


def _encode_gray_alpha_png(a: np.ndarray, compression: int) -> bytes:
    """A gray + alpha PNG (colour type 4). 8-bit through Pillow (mode ``LA``); Pillow has no
    16-bit LA mode, so 16-bit samples are written here: big-endian, every row with the PNG
    "Up" filter, zlib at ``compression``, exactly as the PNG specification defines them."""
    if a.dtype == np.uint8:
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(a), "LA").save(buf, "PNG", compress_level=compression)
        return buf.getvalue()
    h, w = a.shape[:2]
    raw = np.ascontiguousarray(a, dtype=">u2").view(np.uint8).reshape(h, w * 4)
    rows = np.empty((h, w * 4 + 1), np.uint8)
    rows[:, 0] = 2  # Up: each byte minus the byte above it (the first row has zeros above)
    rows[0, 1:] = raw[0]
    rows[1:, 1:] = raw[1:] - raw[:-1]  # uint8 arithmetic wraps modulo 256, as PNG wants

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0)  # 16 bits, gray + alpha
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), compression))
        + chunk(b"IEND", b"")
    )


def _insert_text_chunks(png: bytes, metadata: dict[str, str]) -> bytes:
    chunks = b""
    for key, value in metadata.items():
        body = key.encode("latin-1") + b"\x00" + str(value).encode("latin-1", "replace")
        chunks += struct.pack(">I", len(body)) + b"tEXt" + body
        chunks += struct.pack(">I", zlib.crc32(b"tEXt" + body) & 0xFFFFFFFF)
    iend = png.rfind(b"IEND") - 4
    return png[:iend] + chunks + png[iend:]


def write_image(
    path: str | os.PathLike[str],
    arr: np.ndarray,
    *,
    quality: int = 95,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write an image atomically; the format follows the extension (PNG keeps 16 bits)."""
    cv2 = _opencv()

    target = Path(path)
    ext = target.suffix.lower()
    if ext == ".png":
        data = encode_png(arr, metadata=metadata)
    else:
        a = arr
        if a.dtype == np.uint16 and ext not in (".tif", ".tiff"):
            a = np.round(a.astype(np.float64) / 257.0).astype(np.uint8)
        if a.ndim == 3 and a.shape[2] == 3:
            a = a[:, :, ::-1]
        elif a.ndim == 3 and a.shape[2] == 4:
            a = a[:, :, [2, 1, 0, 3]]
        params: list[int] = []
        if ext in (".jpg", ".jpeg"):
            params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        elif ext == ".webp":
            params = [cv2.IMWRITE_WEBP_QUALITY, quality]
        ok, buf = cv2.imencode(ext, np.ascontiguousarray(a), params)
        if not ok:
            raise ValueError(f"cannot encode {target.name} as {ext}")
        data = buf.tobytes()
    return atomic_write_bytes(target, data)
