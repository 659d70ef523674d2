"""Wall time of `resyn dataset build` on the bundled pools (data/train/{real,synthetic}).

Runs the documented example command (docs/dataset.md) as a subprocess with 2 local worker
processes into a fresh temporary folder, then the same command again (which must do nothing),
and records both times, the kept counts and the number of files written.
Usage: .venv/bin/python benchmarks/dataset_build.py [--data data/train] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import update_section

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "train")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    sources = []
    for kind in ("real", "synthetic"):
        folder = args.data / kind
        if not folder.is_dir():
            sys.exit(f"error: {folder} does not exist")
        sources += ["--source", f"{kind}={folder}:{kind}"]
    options = ["--min-size", "256", "--crop", "240", "--step", "120"]
    with tempfile.TemporaryDirectory(prefix="resyn-dataset-bench-") as tmp:
        out = Path(tmp) / "set"
        cmd = [
            sys.executable,
            "-m",
            "resyn.cli.main",
            "dataset",
            "build",
            *sources,
            "--out",
            str(out),
            "--workers",
            str(args.workers),
            *options,
        ]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = subprocess.run(cmd, check=True, capture_output=True, text=True)
        second = time.perf_counter() - t0
        if "nothing to do" not in " ".join(again.stdout.split()):
            sys.exit("error: the second run did work:\n" + again.stdout)
        counts = json.loads((out / ".resyn_state" / "complete.json").read_text())["counts"]
    shown = " ".join(cmd[3:]).replace(f"={ROOT}/", "=").replace(str(out), "<tmp>/set")
    body = (
        f"`resyn {shown}`\n\n"
        "| run | wall time (s) |\n| --- | --- |\n"
        f"| first build ({counts['inputs']} inputs, {counts['kept']} kept, "
        f"{counts['files']} image files) | {first:.1f} |\n"
        f"| same command again (nothing to do) | {second:.1f} |\n"
    )
    update_section("dataset_build", "dataset build (bundled pools)", body)
    print(body)


if __name__ == "__main__":
    main()
