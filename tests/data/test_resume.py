"""A build killed with SIGKILL (during analysis, then during writing) and run again finishes
with the same manifest and files as an uninterrupted build, and no half-written files."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resyn.data import BuildOptions, Source, build_dataset

_spec = importlib.util.spec_from_file_location("pools", Path(__file__).with_name("pools.py"))
pools = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pools)

pytestmark = [
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL"),
    pytest.mark.slow,
]


def _files(folder: Path) -> dict[str, bytes]:
    skip = {"report.png"}  # a plot; compared for existence only
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".resyn_state" not in p.parts and p.name not in skip
    }


def _run_until(cmd: list[str], ready, timeout: float = 90.0) -> int:
    """Start the build; SIGKILL it as soon as ``ready()``; return its exit status."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if ready():
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.002)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode


def _count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _count_files(folder: Path) -> int:
    return sum(1 for _ in folder.glob("*.png")) if folder.exists() else 0


def test_killed_build_resumes_to_the_same_result(tmp_path: Path) -> None:
    pool = pools.make_clean_pool(tmp_path / "pool", 12, 12)
    args = ["--min-size", "64", "--scales", "2,4", "--crop", "48", "--step", "24"]
    opts = BuildOptions(min_size=64, scales=(2, 4), crop=48, step=24)
    reference = tmp_path / "reference"
    build_dataset([Source("p", pool)], reference, opts, workers=1, log=lambda m: None)

    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "resyn.cli.main",
        "dataset",
        "build",
        "--source",
        f"p={pool}",
        "--out",
        str(out),
        "--workers",
        "1",
        *args,
    ]
    journal = out / ".resyn_state" / "analysis.jsonl"
    # Killed while analysing: part of the journal is written, no outputs yet.
    assert _run_until(cmd, lambda: _count_lines(journal) >= 5) == -signal.SIGKILL
    assert 5 <= _count_lines(journal) < 24 and not (out / "manifest.csv").exists()
    # Killed while writing images.
    assert _run_until(cmd, lambda: _count_files(out / "HR") >= 3) == -signal.SIGKILL
    assert not (out / "manifest.csv").exists()
    # Finishes: same manifest and same files as the uninterrupted build.
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())  # undo rich's line wrapping
    assert "from the journal" in said and "already done" in said
    assert (out / "manifest.csv").read_text() == (reference / "manifest.csv").read_text()
    assert _files(out) == _files(reference)
    assert (out / "report.png").exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    # And once more: nothing to do.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "nothing to do" in " ".join(again.stdout.split())
