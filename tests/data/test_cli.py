"""``resyn dataset build`` / ``stats`` from the command line, and the parallel engines."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

from resyn.cli.main import app
from resyn.data import BuildOptions, Source, build_dataset, read_manifest
from resyn.data.engine import run_tasks
from resyn.data.work import analyze_file

_spec = importlib.util.spec_from_file_location("pools", Path(__file__).with_name("pools.py"))
pools = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pools)

runner = CliRunner()


def _text(res) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(res.output.split())


def test_cli_build_then_stats(tmp_path: Path) -> None:
    real = pools.make_clean_pool(tmp_path / "real", 3, 2)
    synth = pools.make_clean_pool(tmp_path / "synth", 2, 2, seed0=20)
    out = tmp_path / "set"
    args = [
        "dataset",
        "build",
        "-s",
        f"r={real}",
        "-s",
        f"g={synth}:synthetic",
        "-o",
        str(out),
        "--min-size",
        "64",
        "--scales",
        "2",
        "--workers",
        "2",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "kept 8 of 9 inputs" in _text(res)
    rows = read_manifest(out / "manifest.csv")
    assert {r.kind for r in rows if r.source == "g"} == {"synthetic"}
    assert len(list((out / "LR_bicubic" / "X2").iterdir())) == 8

    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "nothing to do" in _text(res)

    res = runner.invoke(app, ["dataset", "stats", str(out)])
    assert res.exit_code == 0, res.output
    assert "8 kept of 9 inputs" in _text(res)
    assert "4 above 0, 4 at or below 0" in _text(res)
    assert "balance" in res.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-s", "x=/no/such/folder"], "does not exist"),
        (["-s", "bad name=/tmp"], "must be letters"),
        (["-s", "x={pool}", "--scales", "2,x"], "--scales"),
        (["-s", "x={pool}", "--crop", "50", "--scales", "4"], "multiples of every scale"),
        (["-s", "x={pool}", "--engine", "spark"], "--engine"),
        (["-s", "x={pool}:Real"], "unknown kind 'Real' (real|synthetic)"),
    ],
)
def test_cli_errors_are_clear(tmp_path: Path, extra: list[str], message: str) -> None:
    pool = pools.make_clean_pool(tmp_path / "pool", 1, 1)
    extra = [e.replace("{pool}", str(pool)) for e in extra]
    res = runner.invoke(app, ["dataset", "build", "-o", str(tmp_path / "o"), *extra])
    assert res.exit_code == 2
    assert "error:" in res.output and message in _text(res)
    assert "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


def test_cli_stats_on_a_folder_without_manifest(tmp_path: Path) -> None:
    res = runner.invoke(app, ["dataset", "stats", str(tmp_path)])
    assert res.exit_code == 2 and "no manifest.csv" in _text(res)


def _square(x: int) -> int:
    return x * x


def test_engines_give_the_same_results() -> None:
    tasks = [(i,) for i in range(6)]
    expected = [i * i for i in range(6)]
    assert list(run_tasks(_square, tasks, workers=1)) == expected
    assert sorted(run_tasks(_square, tasks, workers=2)) == expected
    with pytest.raises(ValueError, match="unknown engine"):
        list(run_tasks(_square, tasks, engine="spark"))


@pytest.mark.slow
def test_dask_engine_builds_the_same_dataset(tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    pool = pools.make_clean_pool(tmp_path / "pool", 2, 2)
    opts = BuildOptions(min_size=64, scales=(2,))
    runs = {}
    for engine in ("local", "dask"):
        out = tmp_path / engine
        build_dataset([Source("p", pool)], out, opts, workers=1, engine=engine, log=print)
        runs[engine] = (
            (out / "manifest.csv").read_text(),
            {p.name: p.read_bytes() for p in (out / "LR_bicubic" / "X2").iterdir()},
        )
    assert runs["local"] == runs["dask"]
    assert len(runs["dask"][1]) == 4


def _analyze_or_die(source, root, relpath, *rest):
    import os

    if "crash" in relpath:
        os._exit(3)  # what a segfaulting decoder or the OOM killer does to a worker
    return analyze_file(source, root, relpath, *rest)


def test_a_file_that_kills_its_worker_is_an_unreadable_row(tmp_path: Path, monkeypatch) -> None:
    import resyn.data.work as work
    from resyn.io import parallel

    monkeypatch.setattr(parallel, "MP_START", "fork")  # children see the patched function
    monkeypatch.setattr(work, "analyze_file", _analyze_or_die)
    pool = pools.make_clean_pool(tmp_path / "pool", 2, 2)
    pools.save(pool / "crash.png", pools.noisy(40))
    out = tmp_path / "set"
    res = runner.invoke(
        app,
        ["dataset", "build", "-s", f"p={pool}", "-o", str(out), "--min-size", "64",
         "--scales", "2", "--workers", "2"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = {Path(r.path).name: r for r in read_manifest(out / "manifest.csv")}
    assert len(rows) == 5
    assert rows["crash.png"].reason.startswith("unreadable: worker died on this file")
    assert sum(r.kept for r in rows.values()) == 4  # the others were not lost with it


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:1", "tcp://127.0.0.1"])
def test_unreachable_or_bad_scheduler_is_one_clear_line(tmp_path: Path, monkeypatch, address):
    pytest.importorskip("distributed")
    from resyn.io import parallel

    monkeypatch.setattr(parallel, "DEFAULT_CONNECT_TIMEOUT", 1.0)
    pool = pools.make_clean_pool(tmp_path / "pool", 1, 1)
    res = runner.invoke(
        app,
        ["dataset", "build", "-s", f"p={pool}", "-o", str(tmp_path / "o"), "--min-size", "64",
         "--engine", "dask", "--scheduler", address],
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    text = _text(res)
    assert "error:" in text and address in text and "Traceback" not in res.output
    assert "cannot reach the Dask scheduler" in text or "invalid Dask scheduler address" in text


def test_max_pixels_option(tmp_path: Path) -> None:
    import json

    pool = pools.make_clean_pool(tmp_path / "pool", 1, 1)  # 96x96 = 9216 pixels each
    pools.save(pool / "big.png", pools.noisy(30, 96, 200))
    out = tmp_path / "set"
    base = ["dataset", "build", "-s", f"p={pool}", "-o", str(out), "--min-size", "64",
            "--scales", "2", "--workers", "1"]  # fmt: skip
    res = runner.invoke(app, [*base, "--max-pixels", "10000"])
    assert res.exit_code == 0, res.output
    rows = {Path(r.path).name: r for r in read_manifest(out / "manifest.csv")}
    assert "pixel limit of 10000" in rows["big.png"].reason
    assert (
        rows["big.png"].reason.startswith("unreadable:")
        and "--max-pixels" in rows["big.png"].reason
    )
    assert rows["noisy_00.png"].kept and rows["smooth_00.png"].kept
    config = json.loads((out / "resyn_dataset.json").read_text())
    assert config["options"]["max_pixels"] == 10000
    res = runner.invoke(app, [*base, "--max-pixels", "0"])
    assert res.exit_code == 2 and "--max-pixels must be positive" in _text(res)


def test_a_definition_from_before_max_pixels_still_resumes(tmp_path: Path) -> None:
    import json

    pool = pools.make_clean_pool(tmp_path / "pool", 1, 1)
    out = tmp_path / "set"
    opts = BuildOptions(min_size=64, scales=(2,))
    build_dataset([Source("p", pool)], out, opts, workers=1, log=lambda m: None)
    config = out / "resyn_dataset.json"
    old = json.loads(config.read_text())
    del old["options"]["max_pixels"]  # as written by an older resyn
    config.write_text(json.dumps(old))
    assert build_dataset([Source("p", pool)], out, opts, workers=1, log=print).nothing_to_do
    assert json.loads(config.read_text())["options"]["max_pixels"] == opts.max_pixels
