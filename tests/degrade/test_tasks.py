"""Task names and the pairs they make."""

from __future__ import annotations

import numpy as np
import pytest

from resyn.degrade import (
    Task,
    add_gaussian_noise,
    imresize,
    jpeg,
    mod_crop,
    parse_task,
    rgb_to_y_uint8,
)


@pytest.fixture
def hr(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (50, 37, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sr-x2", Task("sr-x2", "sr", scale=2)),
        ("SR-X4", Task("sr-x4", "sr", scale=4)),
        ("denoise-25", Task("denoise-25", "denoise", sigma=25.0)),
        ("denoise-gray-50", Task("denoise-gray-50", "denoise", sigma=50.0, gray=True)),
        ("jpeg-q10", Task("jpeg-q10", "jpeg", quality=10)),
        (" jpeg-gray-q40 ", Task("jpeg-gray-q40", "jpeg", quality=40, gray=True)),
    ],
)
def test_parse(name: str, expected: Task) -> None:
    assert parse_task(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "",
        "sr",
        "sr-x1",
        "sr-x9",
        "sr-4",
        "denoise-0",
        "denoise-256",
        "denoise-x",
        "jpeg-q0",
        "jpeg-q101",
        "jpeg-10",
        "deblur-3",
        "denoise-grey",
        "jpeg-grey-q10",
        "jpeg-q",
        "denoise-blind",
    ],
)
def test_parse_rejects(name: str) -> None:
    with pytest.raises(ValueError, match="Valid forms: sr-x"):
        parse_task(name)


def test_parse_non_string() -> None:
    with pytest.raises(ValueError, match="string"):
        parse_task(4)  # type: ignore[arg-type]


def test_task_is_frozen() -> None:
    with pytest.raises(AttributeError):
        parse_task("sr-x2").scale = 3  # type: ignore[misc]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sr_degrade(hr: np.ndarray, scale: int) -> None:
    task = parse_task(f"sr-x{scale}")
    lq = task.degrade(hr)
    want = imresize(mod_crop(hr, scale), 1 / scale).astype(np.float32) / 255
    assert lq.dtype == np.float32
    np.testing.assert_array_equal(lq, want)
    assert lq.shape[:2] == task.lq_size(hr.shape)
    assert task.target(hr).shape == (50 - 50 % scale, 37 - 37 % scale, 3)


def test_denoise_degrade(hr: np.ndarray) -> None:
    lq = parse_task("denoise-15").degrade(hr, seed=0)
    np.testing.assert_array_equal(lq, add_gaussian_noise(hr, 15, 0))
    assert lq.shape == hr.shape
    gray = parse_task("denoise-gray-15")
    assert gray.degrade(hr).shape == (50, 37, 1) and gray.channels == 1
    assert gray.lq_size(hr.shape) == (50, 37)


def test_jpeg_degrade(hr: np.ndarray) -> None:
    np.testing.assert_array_equal(
        parse_task("jpeg-q30").degrade(hr), jpeg(hr, 30).astype(np.float32) / 255
    )
    task = parse_task("jpeg-gray-q30")
    gt = task.target(hr)
    np.testing.assert_array_equal(gt[:, :, 0], rgb_to_y_uint8(hr))
    np.testing.assert_array_equal(task.degrade(hr), jpeg(gt, 30).astype(np.float32) / 255)


def test_layouts_are_normalised(hr: np.ndarray) -> None:
    gray = hr[:, :, 0]
    assert parse_task("sr-x2").target(gray).shape == (50, 36, 3)  # gray replicated
    rgba = np.concatenate([hr, np.full((50, 37, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(parse_task("jpeg-q10").target(rgba), hr)
    np.testing.assert_array_equal(parse_task("denoise-gray-25").target(gray)[:, :, 0], gray)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((8, 8), np.float32), np.zeros((8, 8, 5), np.uint8), np.zeros((0, 8), np.uint8)],
)
def test_degrade_bad_input(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        parse_task("sr-x2").degrade(bad)


def test_lq_size_too_small() -> None:
    with pytest.raises(ValueError, match="smaller"):
        parse_task("sr-x4").lq_size((3, 10))
