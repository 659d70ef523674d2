"""End-to-end builds over small generated pools seeded with broken, tiny, blurry, flat and
duplicate files (workers=1: inline, fast)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from resyn.cli.main import app
from resyn.data import (
    BuildError,
    BuildOptions,
    Source,
    build_dataset,
    decide,
    layout,
    list_inputs,
    read_manifest,
)
from resyn.data.build import _read_journal
from resyn.data.manifest import KEPT
from resyn.degrade import imresize
from resyn.io import read_image, to_rgb8

_spec = importlib.util.spec_from_file_location("pools", Path(__file__).with_name("pools.py"))
pools = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pools)

OPTS = BuildOptions(min_size=64, crop=48, step=24)


@pytest.fixture
def pool(tmp_path: Path) -> tuple[list[Source], dict[str, str]]:
    real = pools.make_clean_pool(tmp_path / "real", 4, 3)
    expect = pools.make_bad_pool(real)
    synth = pools.make_clean_pool(tmp_path / "synth", 3, 4, seed0=10)
    return [Source("cam", real, "real"), Source("gen", synth, "synthetic")], expect


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".resyn_state" not in p.parts
    }


def test_build_filters_balances_and_lays_out(pool, tmp_path: Path) -> None:
    sources, expect = pool
    out = tmp_path / "out"
    result = build_dataset(sources, out, OPTS, workers=1, log=lambda m: None)
    rows = read_manifest(out / "manifest.csv")
    assert rows == result.rows
    # Every input file has exactly one row, including the non-image one.
    n_inputs = sum(1 for s in sources for p in s.path.iterdir() if p.is_file())
    assert len(rows) == n_inputs
    by_name = {Path(r.path).name: r for r in rows if r.source == "cam"}
    for fname, code in expect.items():
        row = by_name[fname]
        if code == "ok":  # decoded and measured; only balancing may drop it
            assert row.reason_code in ("", "balance"), (fname, row.reason)
            assert row.width and row.complexity is not None and row.blur is not None
        else:
            assert row.reason_code == code, (fname, row.reason)
    assert "0 bytes" in by_name["empty.jpg"].reason
    assert by_name["zdup_noisy_00.bmp"].reason == f"duplicate: of {by_name['noisy_00.png'].path}"
    assert (by_name["exif_rot.jpg"].width, by_name["exif_rot.jpg"].height) == (80, 120)
    assert by_name["deep16.png"].layout == "gray16"
    assert by_name["rgba.png"].layout == "rgba8"
    assert by_name["gray.png"].layout == "gray8"
    assert by_name["palette.png"].layout == "rgb8"

    # Balance: per source, equal numbers above and at/below zero, as many as the rarer side.
    for src in sources:
        mine = [r for r in rows if r.source == src.name]
        kept = [r for r in mine if r.kept]
        above = sum(r.complexity > 0 for r in kept)
        eligible = [r for r in mine if r.kept or r.reason_code == "balance"]
        rarer = min(
            sum(r.complexity > 0 for r in eligible), sum(r.complexity <= 0 for r in eligible)
        )
        assert above == len(kept) - above == rarer > 0

    # Outputs: HR is the decoded image mod-cropped to 12; LR is MATLAB bicubic of HR.
    kept = [r for r in rows if r.kept]
    meta = (out / "meta_info.txt").read_text().splitlines()
    assert len(meta) == len(kept)
    assert sorted(p.name for p in (out / "HR").iterdir()) == sorted(f"{r.name}.png" for r in kept)
    row = next(r for r in kept if r.source == "cam")
    hr = read_image(out / "HR" / f"{row.name}.png")
    src = to_rgb8(read_image(row.path))
    h, w = src.shape[0] // 12 * 12, src.shape[1] // 12 * 12
    np.testing.assert_array_equal(hr, src[:h, :w])
    assert f"{row.name}.png ({h},{w},3)" in meta
    for s in (2, 3, 4):
        lr = read_image(out / "LR_bicubic" / f"X{s}" / f"{row.name}x{s}.png")
        assert lr.shape == (h // s, w // s, 3)
        np.testing.assert_array_equal(lr, imresize(hr, 1 / s))
    # Crops: BasicSR grid on HR, aligned LR crops cut from the LR image.
    sub = read_image(out / "HR_sub" / f"{row.name}_s002.png")
    np.testing.assert_array_equal(sub, hr[0:48, 24:72])
    lr3 = read_image(out / "LR_bicubic" / "X3" / f"{row.name}x3.png")
    np.testing.assert_array_equal(
        read_image(out / "LR_bicubic_sub" / "X3" / f"{row.name}_s002.png"), lr3[0:16, 8:24]
    )
    sub_meta = (out / "meta_info_sub.txt").read_text().splitlines()
    assert len(sub_meta) == len(list((out / "HR_sub").iterdir())) == 9 * len(kept)
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.rglob("*.tmp"))


def test_second_run_does_no_work_and_changed_sources_reuse_the_journal(pool, tmp_path) -> None:
    sources, _ = pool
    out = tmp_path / "out"
    opts = BuildOptions(min_size=64, scales=(2, 4))
    build_dataset(sources, out, opts, workers=1, log=lambda m: None)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    messages: list[str] = []
    again = build_dataset(sources, out, opts, workers=1, log=messages.append)
    assert again.nothing_to_do and "nothing to do" in messages[-1]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before

    # A deleted output is rebuilt; a new source file is the only one analysed.
    victim = sorted((out / "LR_bicubic" / "X4").glob("cam_*"))[0]  # a source left unchanged
    victim.unlink()
    pools.save(sources[1].path / "smooth_new.png", pools.smooth(77))
    third = build_dataset(sources, out, opts, workers=1, log=lambda m: None)
    assert third.analysed == 1 and victim.exists()
    assert any(r.path.endswith("smooth_new.png") for r in third.rows)


def test_seed_and_per_source_make_a_deterministic_selection(pool, tmp_path: Path) -> None:
    sources, _ = pool
    out = tmp_path / "out"
    build_dataset(sources, out, BuildOptions(min_size=64, scales=(2,)), workers=1, log=print)
    # The decision is a pure function of the journaled analyses: replay it for other options.
    records = _read_journal(out / ".resyn_state" / "analysis.jsonl")
    inputs = {s.name: list_inputs(s) for s in sources}
    picks = []
    for seed in (0, 0, 1, 2, 3):
        rows = decide(sources, inputs, records, BuildOptions(min_size=64, per_source=2, seed=seed))
        kept = [r for r in rows if r.status == KEPT]
        for src in sources:
            mine = [r for r in kept if r.source == src.name]
            assert len(mine) == 2 and sum(r.complexity > 0 for r in mine) == 1
        picks.append(sorted(r.name for r in kept))
    assert picks[0] == picks[1]
    assert len({tuple(p) for p in picks}) > 1  # other seeds pick other images
    # per_source larger than the rarer side: still exactly balanced.
    rows = decide(sources, inputs, records, BuildOptions(min_size=64, per_source=100))
    assert [r.status for r in rows] == [r.status for r in read_manifest(out / "manifest.csv")]


def test_low_share_skews_the_selection_at_the_balanced_size(pool, tmp_path: Path) -> None:
    from resyn.data.config import config_dict

    sources, _ = pool
    out = tmp_path / "out"
    build_dataset(sources, out, BuildOptions(min_size=64, scales=(2,)), workers=1, log=print)
    records = _read_journal(out / ".resyn_state" / "analysis.jsonl")
    inputs = {s.name: list_inputs(s) for s in sources}

    def kept(share: float) -> dict[str, tuple[int, int, int, int]]:
        rows = decide(sources, inputs, records, BuildOptions(min_size=64, low_share=share))
        counts = {}
        for src in sources:
            mine = [r for r in rows if r.source == src.name and r.complexity is not None]
            eligible = [r for r in mine if r.status == KEPT or r.reason.startswith("balance")]
            keep = [r for r in mine if r.status == KEPT]
            counts[src.name] = (
                sum(r.complexity <= 0 for r in keep),
                sum(r.complexity > 0 for r in keep),
                sum(r.complexity <= 0 for r in eligible),
                sum(r.complexity > 0 for r in eligible),
            )
        return counts

    balanced, skewed = kept(0.5), kept(0.75)
    assert any(low for low, _, _, _ in balanced.values())
    for name, (low, high, avail_low, avail_high) in skewed.items():
        b_low, b_high, _, _ = balanced[name]
        assert b_low == b_high  # 0.5 is the ReSyn rule, exactly balanced
        total = b_low + b_high
        want_low = round(total * 0.75)
        if avail_low >= want_low and avail_high >= total - want_low:
            assert (low, high) == (want_low, total - want_low)  # the balanced set's size
        else:  # a side ran short: a smaller set, still skewed as asked
            assert low + high < total and abs(low / (low + high) - 0.75) < 0.1
        assert low >= b_low or low + high < total
    assert any(skewed[n][0] > balanced[n][0] for n in skewed)  # the pool allows a real skew
    with pytest.raises(BuildError, match="--low-share"):
        BuildOptions(low_share=1.0).validate()
    # a balanced build's recorded definition is unchanged by the option's existence
    assert "low_share" not in config_dict(sources, BuildOptions(), out)["options"]
    assert config_dict(sources, BuildOptions(low_share=0.8), out)["options"]["low_share"] == 0.8


def test_bad_sources_and_output_folders(pool, tmp_path: Path) -> None:
    sources, _ = pool
    out = tmp_path / "out"
    with pytest.raises(BuildError, match="does not exist"):
        build_dataset([*sources, Source("gone", tmp_path / "nope")], out, OPTS, workers=1)
    assert not out.exists()  # nothing done before the error
    with pytest.raises(BuildError, match="overlap"):
        build_dataset(sources, sources[0].path / "out", OPTS, workers=1)
    with pytest.raises(BuildError, match="unique"):
        build_dataset([sources[0], sources[0]], out, OPTS, workers=1)

    small = BuildOptions(min_size=64, scales=(2,))
    build_dataset(sources[:1], out, small, workers=1, log=lambda m: None)
    other = BuildOptions(min_size=70, scales=(2,))
    with pytest.raises(BuildError, match=r"another dataset \(min_size 64 -> 70"):
        build_dataset(sources[:1], out, other, workers=1)
    with pytest.raises(BuildError, match="another dataset"):
        build_dataset(sources, out, small, workers=1)
    (out / "my_notes.txt").write_text("keep me")
    res = build_dataset(sources[:1], out, other, workers=1, overwrite=True, log=lambda m: None)
    assert not res.nothing_to_do and (out / "my_notes.txt").exists()
    cfg = json.loads((out / "resyn_dataset.json").read_text())
    assert cfg["options"]["min_size"] == 70 and not cfg["sources"][0]["path"].startswith("/")

    stranger = tmp_path / "stranger"
    (stranger / "HR").mkdir(parents=True)
    for overwrite in (False, True):
        with pytest.raises(BuildError, match="not a resyn dataset"):
            build_dataset(sources, stranger, small, workers=1, overwrite=overwrite)
    assert (stranger / "HR").exists()


def test_unusual_encodings_become_8bit_rgb_outputs(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    pool.mkdir()
    deep = (pools.noisy(60)[:, :, 0].astype(np.uint16) * 257) + 100  # 16-bit gray, complex
    cv2.imwrite(str(pool / "deep.png"), deep)
    pools.save(pool / "flat_gray.png", pools.smooth(61)[:, :, 0])  # 8-bit gray, simple
    out = tmp_path / "out"
    res = build_dataset(
        [Source("u", pool)],
        out,
        BuildOptions(min_size=64, scales=(2,)),
        workers=1,
        log=lambda m: None,
    )
    assert [r.status for r in res.rows] == ["kept", "kept"]
    hr = read_image(out / "HR" / "u_deep.png")
    assert hr.dtype == np.uint8 and hr.shape == (96, 96, 3)
    expected = np.round(deep.astype(np.float64) / 257).astype(np.uint8)
    np.testing.assert_array_equal(hr, np.repeat(expected[:, :, None], 3, axis=2))
    gray = read_image(out / "HR" / "u_flat_gray.png")
    assert gray.shape == (96, 96, 3) and (gray[..., 0] == gray[..., 2]).all()


def test_a_source_file_changed_behind_the_journal_is_a_clear_error(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    pools.save(pool / "a.bmp", pools.noisy(70))  # BMP: same dimensions, same file size
    pools.save(pool / "b.bmp", pools.smooth(71))
    out = tmp_path / "out"
    opts = BuildOptions(min_size=64, scales=(2,))
    build_dataset([Source("s", pool)], out, opts, workers=1, log=lambda m: None)
    (out / "HR" / "s_a.png").unlink()
    st = (pool / "a.bmp").stat()
    pools.save(pool / "a.bmp", pools.noisy(72))
    os.utime(pool / "a.bmp", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (pool / "a.bmp").stat().st_size == st.st_size
    with pytest.raises(BuildError, match="changed since it was analysed"):
        build_dataset([Source("s", pool)], out, opts, workers=1, log=lambda m: None)


def test_one_build_at_a_time_per_output_folder(tmp_path: Path) -> None:
    fcntl = pytest.importorskip("fcntl")
    pool = pools.make_clean_pool(tmp_path / "pool", 1, 1)
    out = tmp_path / "out"
    opts = BuildOptions(min_size=64, scales=(2,))
    build_dataset([Source("s", pool)], out, opts, workers=1, log=lambda m: None)
    before = _files(out)
    state = sorted(p.name for p in (out / ".resyn_state").iterdir())
    other = BuildOptions(min_size=70, scales=(2,))
    with (out / layout.LOCK).open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running build holds it
        with pytest.raises(BuildError, match="another resyn dataset build is running"):
            build_dataset([Source("s", pool)], out, opts, workers=1)
        # --overwrite used to delete HR/ and .resyn_state/ (lock included) before locking
        with pytest.raises(BuildError, match="another resyn dataset build is running"):
            build_dataset([Source("s", pool)], out, other, workers=1, overwrite=True)
        res = CliRunner().invoke(
            app,
            ["dataset", "build", "-s", f"s={pool}", "-o", str(out), "--min-size", "70",
             "--scales", "2", "--overwrite"],
        )  # fmt: skip
        assert res.exit_code == 2 and "another resyn dataset build is running" in res.output
        assert _files(out) == before
        assert sorted(p.name for p in (out / ".resyn_state").iterdir()) == state
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    assert build_dataset([Source("s", pool)], out, opts, workers=1, log=print).nothing_to_do
    # --overwrite replaces the dataset but keeps the lock file (a running build may hold it)
    build_dataset([Source("s", pool)], out, other, workers=1, overwrite=True, log=print)
    assert (out / layout.LOCK).exists()


def test_the_lock_file_alone_does_not_make_a_folder_foreign(tmp_path: Path) -> None:
    pool = pools.make_clean_pool(tmp_path / "pool", 1, 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / layout.LOCK).touch()  # a build killed before it recorded its definition
    opts = BuildOptions(min_size=64, scales=(2,))
    res = build_dataset([Source("s", pool)], out, opts, workers=1, log=lambda m: None)
    assert res.counts["kept"] == 2


def test_broken_links_are_rows_and_hidden_entries_are_counted(tmp_path: Path) -> None:
    pool = pools.make_clean_pool(tmp_path / "pool", 1, 1)
    (pool / "dead.png").symlink_to(tmp_path / "gone.png")
    pools.save(pool / ".thumb.png", pools.noisy(3))
    pools.save(pool / ".cache" / "x.png", pools.noisy(4))
    out = tmp_path / "out"
    logs: list[str] = []
    opts = BuildOptions(min_size=64, scales=(2,))
    res = build_dataset([Source("s", pool)], out, opts, workers=1, log=logs.append)
    rows = {Path(r.path).name: r for r in res.rows}
    assert set(rows) == {"noisy_00.png", "smooth_00.png", "dead.png"}
    assert rows["dead.png"].reason.startswith("unreadable: broken symbolic link")
    assert any("skipped 2 hidden files or folders" in m for m in logs), logs
    # once the link's target exists, the file is analysed again (not the stale journal record)
    pools.save(tmp_path / "gone.png", pools.noisy(5))
    res = build_dataset([Source("s", pool)], out, opts, workers=1, log=logs.append)
    assert {Path(r.path).name: r.reason_code for r in res.rows}["dead.png"] != "unreadable"
