"""Unit checks of the dataset builder's pieces: names, crop grid, filters, options, sources."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from resyn.data import BuildError, BuildOptions, Source, layout, parse_source
from resyn.data.filters import content_hash, flat_ratio, laplacian_variance, to_gray
from resyn.data.manifest import ManifestRow, read_manifest, write_manifest


def test_crop_positions_follow_basicsr_extract_subimages() -> None:
    # Full crops every `step`, plus one flush with the edge when the remainder exceeds thresh.
    assert layout.crop_positions(100, 48, 24, 0) == [0, 24, 48, 52]
    assert layout.crop_positions(100, 48, 24, 4) == [0, 24, 48]
    assert layout.crop_positions(96, 48, 24, 0) == [0, 24, 48]
    assert layout.crop_positions(47, 48, 24, 0) == []
    assert layout.crop_boxes(60, 100, 48, 48, 0) == [
        (0, 0),
        (0, 48),
        (0, 52),
        (12, 0),
        (12, 48),
        (12, 52),
    ]


def test_mod_crop_to_lcm_of_scales_and_expected_files(tmp_path: Path) -> None:
    assert layout.mod_unit([2, 3, 4]) == 12
    assert layout.cropped_size(101, 97, [2, 3, 4]) == (96, 96)
    assert layout.cropped_size(101, 97, [2]) == (100, 96)
    files = layout.expected_outputs(tmp_path, "a_x", 101, 97, [2, 4], 48, 24, 0)
    # 100x96 HR -> 4 x 3 crops; each crop has an HR file and one LR file per scale.
    assert len(files) == 1 + 2 + 12 * 3
    assert tmp_path / "LR_bicubic" / "X4" / "a_xx4.png" in files
    assert tmp_path / "LR_bicubic_sub" / "X2" / "a_x_s012.png" in files


def test_output_names_are_unique_and_portable() -> None:
    names = layout.assign_names("src", ["x/a.png", "x_a.png", "b c.jpg", "b c.png"])
    assert len(set(names.values())) == 4
    assert names["x/a.png"] == "src_x_a"
    assert names["b c.jpg"] == "src_b_c"
    assert names["b c.png"].startswith("src_b_c_") and len(names["b c.png"]) == len("src_b_c_") + 8


def test_blur_and_flat_measures(rng: np.random.Generator) -> None:
    sharp = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    soft = cv2.GaussianBlur(sharp, (0, 0), 3)
    assert laplacian_variance(sharp) > 100 * laplacian_variance(soft)
    assert flat_ratio(np.full((32, 32), 7, np.uint8)) == 1.0
    assert flat_ratio(sharp) < 0.05
    half = np.zeros((32, 32), np.uint8)
    half[:, 16:] = 255  # one vertical edge: only the columns next to it are not flat
    assert flat_ratio(half) == pytest.approx(30 / 32)
    assert to_gray(np.dstack([sharp] * 3)).tolist() == sharp.tolist()


def _flat_float64(gray: np.ndarray, gradient: float) -> float:
    g = gray.astype(np.float64)
    gx = cv2.Sobel(g, cv2.CV_64F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_64F, 0, 1, ksize=3)
    return float(np.mean(np.hypot(gx, gy) < gradient))


def test_blur_and_flat_in_float32_equal_the_float64_definition(rng) -> None:
    smooth = cv2.GaussianBlur(rng.integers(0, 256, (120, 90), dtype=np.uint8), (0, 0), 1.2)
    for gray in (smooth, rng.integers(0, 256, (50, 70), dtype=np.uint8)):
        lap = cv2.Laplacian(gray.astype(np.float64), cv2.CV_64F, ksize=1).var()
        assert laplacian_variance(gray) == pytest.approx(lap, rel=1e-12)
        for gradient in (10.0, 0.5, 1.0, 7.3, 12.25, 40.0):  # exact, borderline values included
            assert flat_ratio(gray, gradient) == _flat_float64(gray, gradient)


def test_blur_and_flat_do_not_make_float64_copies(rng) -> None:
    import tracemalloc

    gray = rng.integers(0, 256, (800, 1000), dtype=np.uint8)
    peaks = {}
    for name, fn in (("blur", laplacian_variance), ("flat", flat_ratio)):
        tracemalloc.start()
        fn(gray)
        peaks[name] = tracemalloc.get_traced_memory()[1] / gray.size
        tracemalloc.stop()
    # float32 working images: 4 bytes a pixel for the Laplacian, 2 x 4 (+ a mask) for Sobel;
    # the float64 version peaked at 16 and 33 bytes a pixel
    assert peaks["blur"] < 6 and peaks["flat"] < 12, peaks


def test_content_hash_depends_on_pixels_and_shape() -> None:
    a = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    assert content_hash(a) == content_hash(a.copy())
    assert content_hash(a) != content_hash(a.reshape(4, 12, 1)[:, :, 0])
    b = a.copy()
    b[0, 0, 0] += 1
    assert content_hash(a) != content_hash(b)


def test_parse_source(tmp_path: Path) -> None:
    s = parse_source("sam=/data/sam:real")
    assert (s.name, s.path, s.kind) == ("sam", Path("/data/sam"), "real")
    assert parse_source("mj=imgs:synthetic").kind == "synthetic"
    # a mistyped kind is named, not reported as a missing folder
    for bad, kind in (("real=pool/real:Real", "'Real'"), ("x=a:synth", "'synth'")):
        with pytest.raises(BuildError, match=f"unknown kind {kind} \\(real\\|synthetic\\)"):
            parse_source(bad)
    odd = tmp_path / "a:b"
    odd.mkdir()  # only :real/:synthetic are kinds; an existing path with a colon is a path
    assert parse_source(f"x={odd}").path == odd
    assert parse_source(f"x={odd}:synthetic") == Source("x", odd, "synthetic")
    assert parse_source("x=data/pool:2024").path == Path("data/pool:2024")  # not a word
    assert parse_source("x=pool").kind == "real"
    for bad in ("nopath", "=pool", "a b=pool", "x="):
        with pytest.raises(BuildError):
            parse_source(bad)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"min_size": 0}, "--min-size"),
        ({"flat_threshold": 1.5}, "--flat-threshold"),
        ({"per_source": 1}, "--per-source"),
        ({"scales": (2, 2)}, "--scales"),
        ({"scales": (1,)}, "--scales"),
        ({"crop": 100, "step": 50}, "multiples of every scale"),
        ({"step": 24}, "--step needs --crop"),
    ],
)
def test_bad_options_are_named(kwargs: dict, words: str) -> None:
    with pytest.raises(BuildError, match=words):
        BuildOptions(**kwargs).validate()
    BuildOptions(crop=96, step=48).validate()


def test_manifest_round_trip(tmp_path: Path) -> None:
    rows = [
        ManifestRow(
            "a",
            "real",
            "p/x.png",
            "a_x",
            10,
            20,
            "rgb8",
            123,
            "ab",
            1.5,
            0.25,
            3.0,
            4.25,
            -0.1,
            100.0,
            0.5,
            "kept",
            "",
        ),
        ManifestRow("a", "real", "p/y,z.png", bytes=0, reason="unreadable: empty file, 0 bytes"),
    ]
    write_manifest(tmp_path / "m.csv", rows)
    assert read_manifest(tmp_path / "m.csv") == rows
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a resyn manifest"):
        read_manifest(tmp_path / "bad.csv")
