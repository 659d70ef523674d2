"""Image files in and out: robust decoding, atomic writes, file discovery."""

from resyn.io.atomic import atomic_write_bytes, atomic_write_text
from resyn.io.files import IMAGE_EXTENSIONS, ImageScan, find_images, scan_images
from resyn.io.images import (
    DEFAULT_MAX_PIXELS,
    ImageReadError,
    encode_png,
    read_image,
    split_alpha,
    to_rgb8,
    write_image,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "ImageScan",
    "atomic_write_bytes",
    "atomic_write_text",
    "encode_png",
    "find_images",
    "read_image",
    "scan_images",
    "split_alpha",
    "to_rgb8",
    "write_image",
]
