"""The shipped weights on data/test/ReSynDemo with the compiled Bi-WKV and with the pure-PyTorch
path, side by side: mean PSNR / PSNR-Y per weights file from ``resyn eval`` (BasicSR
conventions, float32), run once per backend (``RESYN_BI_WKV=torch`` for the pure path), and the
time each evaluation took. Target (issue 13): identical to 0.01 dB.

    .venv/bin/python benchmarks/backend_parity.py
"""

from __future__ import annotations

import csv
import os
import subprocess
import tempfile
import time
from pathlib import Path

from _report import update_section

ROOT = Path(__file__).resolve().parents[1]

WEIGHTS = {"sr-x2": "sr-x2", "sr-x4": "sr-x4", "denoise-25": "denoise-25"}
TEST_SET = ROOT / "data" / "test" / "ReSynDemo"


def evaluate(backend: str) -> tuple[dict[str, dict[str, str]], float]:
    """{task: summary row} for every shipped weights file, and the seconds it took."""
    env = dict(os.environ, RESYN_BI_WKV=backend)
    out: dict[str, dict[str, str]] = {}
    start = time.perf_counter()
    for task, name in WEIGHTS.items():
        weights = ROOT / "src" / "resyn" / "weights" / f"{name}.safetensors"
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [
                str(ROOT / ".venv" / "bin" / "resyn"),
                "eval",
                "--model",
                f"{task}={weights}",
                "--data",
                f"ReSynDemo={TEST_SET}",
                "--task",
                task,
                "-o",
                tmp,
                "--precision",
                "fp32",
            ]
            subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
            rows = list(csv.DictReader((Path(tmp) / "summary.csv").open()))
        out[task] = next(r for r in rows if r["model"] == task)
    return out, time.perf_counter() - start


def main() -> None:
    compiled, t_compiled = evaluate("auto")
    pure, t_pure = evaluate("torch")
    rows = []
    worst = 0.0
    for task in WEIGHTS:
        a, b = compiled[task], pure[task]
        d = max(abs(float(a[k]) - float(b[k])) for k in ("psnr", "psnr_y"))
        worst = max(worst, d)
        rows.append(
            f"| {task} | {float(a['psnr']):.4f} / {float(a['psnr_y']):.4f} | "
            f"{float(b['psnr']):.4f} / {float(b['psnr_y']):.4f} | {d:.4f} |"
        )
        print(task, a["psnr"], a["psnr_y"], b["psnr"], b["psnr_y"], flush=True)
    body = "\n".join(
        [
            "`benchmarks/backend_parity.py`: the shipped weights on data/test/ReSynDemo "
            f"({compiled['sr-x2']['n']} photos) through `resyn eval` (float32, BasicSR "
            "conventions), once with the compiled Bi-WKV and once with `RESYN_BI_WKV=torch`. "
            "Target (issue 13): identical to 0.01 dB.",
            "",
            "| weights | compiled PSNR / PSNR-Y dB | pure PyTorch PSNR / PSNR-Y dB | largest difference dB |",
            "|---|---|---|---|",
            *rows,
            "",
            f"Largest difference {worst:.4f} dB ({'met' if worst <= 0.01 else 'NOT met'}). "
            f"The three evaluations took {t_compiled:.0f} s compiled, {t_pure:.0f} s pure.",
        ]
    )
    print(update_section("backend_parity", "Compiled vs pure Bi-WKV: shipped weights' PSNR", body))


if __name__ == "__main__":
    main()
