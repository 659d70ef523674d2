"""Forward time in fp32 vs bf16 on CPU: RWKV-IR light and SwinIR light at x4, 256x256 input.

Each model runs in its own subprocess with ``--threads`` torch threads (default 2). Inside it,
both precisions go through the inference engine exactly as ``resyn restore`` runs them
(``resyn.restore.engine.run_model``, whole image, ``tile=0``; bf16 = the engine's autocast
policy), side by side: one warm-up forward in each precision at full size, then ``--repeats``
rounds that each time one fp32 and one bf16 forward, so a change in the machine's load hits
both alike. The table shows the medians, their ratio and how far the bf16 output is from the
fp32 one (PSNR between the two outputs, random initialisation, values clipped to [0, 1]). The
minima are shown too: on a shared machine the other work slows some rounds, and the fastest
round of each precision is the least disturbed.

The section also records the CPU's bf16 capability (``resyn.precision.cpu_bf16_native``, the
``/proc/cpuinfo`` flags that matter) and what ``--precision auto`` resolves to, and the load
average before and after the run: on a shared machine a high load makes both columns slower
and the ratio noisier.

    .venv/bin/python benchmarks/precision_speed.py [--size 256] [--repeats 5] [--threads 2]
        [--models rwkvir-light swinir-light] [--no-report]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("rwkvir-light", "swinir-light")
SCALE = 4
#: /proc/cpuinfo flags that say how a CPU handles bf16 (recorded in the section).
FLAGS_SHOWN = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "avx512_fp16")


def child(model_name: str, size: int, repeats: int, threads: int) -> dict:
    """Runs inside the subprocess: build, warm up both precisions, time them alternately."""
    import numpy as np
    import torch

    from resyn.models import build_model
    from resyn.restore.engine import psnr_float, run_model
    from resyn.runtime import tune_cpu_allocator

    tune_cpu_allocator()  # as the resyn command does
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(model_name, scale=SCALE).eval()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = (
        0.5
        + 0.3 * np.sin(9 * xx + 5 * yy)[:, :, None]
        + 0.05 * rng.standard_normal((size, size, 3))
    )
    img = np.clip(img, 0, 1).astype(np.float32)

    def forward(precision: str) -> tuple[float, np.ndarray]:
        start = time.perf_counter()
        out, _ = run_model(model, img, tile=0, precision=precision, max_memory=None)
        return time.perf_counter() - start, out

    outputs = {p: forward(p)[1] for p in ("fp32", "bf16")}  # warm-up, and the outputs compared
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(repeats):
        for precision in ("fp32", "bf16"):
            times[precision].append(forward(precision)[0])
    a, b = (np.clip(outputs[p], 0, 1) for p in ("fp32", "bf16"))
    return {
        "fp32": statistics.median(times["fp32"]),
        "bf16": statistics.median(times["bf16"]),
        "fp32_all": times["fp32"],
        "bf16_all": times["bf16"],
        "psnr_bf16_vs_fp32": psnr_float(b, a),
        "threads": torch.get_num_threads(),
    }


def measure(model: str, size: int, repeats: int, threads: int, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", model, str(size), str(repeats), str(threads)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit code {proc.returncode}: {tail[:200]}"}
    return json.loads(lines[-1])


def capability() -> str:
    """The CPU's bf16 capability and what ``--precision auto`` picks, in one paragraph."""
    from resyn.precision import auto_precision, read_cpu_flags

    flags = read_cpu_flags()
    shown = (
        "unknown (no /proc/cpuinfo flags)"
        if flags is None
        else ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in FLAGS_SHOWN)
    )
    resolved, reason = auto_precision("cpu")
    return f"CPU flags: {shown}. `--precision auto` on this CPU: {resolved} ({reason})."


def bi_wkv_line() -> str:
    """The Bi-WKV backend RWKV-IR used (``resyn.ops.bi_wkv_backend_status``), if known."""
    try:
        from resyn.ops import bi_wkv_backend_status
    except ImportError:
        return "unknown"
    name, detail = bi_wkv_backend_status()
    return f"{name} ({detail})"


def table(results: dict[str, dict]) -> str:
    lines = [
        "| model | fp32 s median (min) | bf16 s median (min) | bf16 / fp32 (medians, minima) "
        "| bf16 vs fp32 output PSNR dB |",
        "|---|---|---|---|---|",
    ]
    notes = []
    for model, r in results.items():
        if "error" in r:
            lines.append(f"| {model} | n/a | n/a | n/a | n/a |")
            notes.append(f"- {model}: {r['error']}")
            continue
        lo32, lo16 = min(r["fp32_all"]), min(r["bf16_all"])
        lines.append(
            f"| {model} | {r['fp32']:.2f} ({lo32:.2f}) | {r['bf16']:.2f} ({lo16:.2f}) | "
            f"{r['bf16'] / r['fp32']:.2f}x, {lo16 / lo32:.2f}x | {r['psnr_bf16_vs_fp32']:.1f} |"
        )
    return "\n".join(lines + (["", *notes] if notes else []))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="input side (output 4x)")
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds (fp32 + bf16 each)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per model")
    ap.add_argument("--no-report", action="store_true", help="do not update docs/benchmarks.md")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        model, size, repeats, threads = args.child
        print(json.dumps(child(model, int(size), int(repeats), int(threads))))
        return

    load_before = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    results = {}
    for model in args.models:
        r = measure(model, args.size, args.repeats, args.threads, args.timeout)
        results[model] = r
        shown = r.get("error") or (
            f"fp32 {r['fp32']:.2f} s, bf16 {r['bf16']:.2f} s "
            f"(all fp32 {', '.join(f'{t:.2f}' for t in r['fp32_all'])}; "
            f"bf16 {', '.join(f'{t:.2f}' for t in r['bf16_all'])})"
        )
        print(f"{model}: {shown}", flush=True)
    load_after = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    body = "\n".join(
        [
            f"x{SCALE}, input {args.size}x{args.size} (output {SCALE * args.size}x"
            f"{SCALE * args.size}), batch 1, {args.threads} torch threads, random initialisation; "
            "each model in its own subprocess, both precisions through the engine as "
            "`resyn restore` runs them (`run_model`, whole image; bf16 = the engine's autocast "
            f"policy); one warm-up forward in each precision, then {args.repeats} rounds of one "
            "fp32 and one bf16 forward; medians, and in brackets the fastest round. The last column is the PSNR between the bf16 "
            "and the fp32 outputs (clipped to [0, 1]).",
            "",
            capability(),
            "",
            table(results),
            "",
            f"Bi-WKV backend: {bi_wkv_line()}. Load average at the start of the run: "
            f"{load_before}; after it: {load_after}.",
        ]
    )
    print(body)
    if not args.no_report:
        from _report import update_section

        update_section("precision_speed", "Precision: fp32 vs bf16 forward time (CPU, x4)", body)


if __name__ == "__main__":
    main()
