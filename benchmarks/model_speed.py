"""Forward speed and peak memory: RWKV-IR light vs SwinIR light vs MambaIR light.

All three at x4 (the lightweight presets: ~0.88M / 0.93M / 0.92M parameters), input
N x N (LR size; the output is 4N x 4N), batch 1, float32, ``torch.inference_mode``.

Method (documented in the report section):

* every (model, size, device) measurement runs in its own subprocess, so the peak of one does
  not hide the next and a crash or out-of-memory of one model does not end the run;
* CPU time: one warm-up forward on a 32 x 32 input, then the median of ``--repeats`` forwards at
  full size (wall clock, ``time.perf_counter``);
* CPU memory: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the process's peak resident set);
  the table shows the peak during the forward passes minus the peak before them (model built,
  input allocated, warm-up done): the working memory of the forward pass;
* CUDA (when available): warm-up at full size, ``torch.cuda.synchronize`` around each timed
  forward, ``torch.cuda.max_memory_allocated`` minus the memory allocated before the forward;
* a model that fails to build (e.g. ``rwkvir`` not written yet) or to run is listed with the
  reason instead of numbers.

Usage: ``.venv/bin/python benchmarks/model_speed.py [--sizes 256 512 1024] [--device cpu cuda]
[--models ...] [--timeout S]``. On 2 busy CPU cores MambaIR-light took ~9 min at 256x256
(pure-PyTorch scan); expect ~16x that at 1024x1024, so set ``--timeout`` accordingly.
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
MODELS = ("rwkvir-light", "swinir-light", "mambair-light")
REFERENCE = "rwkvir-light"
SCALE = 4


def child(model_name: str, size: int, device: str, repeats: int) -> dict:
    """Runs inside the subprocess: build, warm up, time, measure memory."""
    import resource

    import torch

    from resyn.runtime import tune_cpu_allocator

    tune_cpu_allocator()  # as the resyn command does (RESYN_ALLOCATOR=system: glibc defaults)
    from resyn.models import build_model

    def rss_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux

    try:
        model = build_model(model_name, scale=SCALE).eval().to(device)
    except Exception as exc:
        return {"error": f"build failed: {type(exc).__name__}: {exc}"}
    params = sum(p.numel() for p in model.parameters())
    from resyn.models.profile import count_flops

    flops = count_flops(model, SCALE, (size * SCALE, size * SCALE))
    x = torch.rand(1, 3, size, size, device=device)
    times = []
    try:
        with torch.inference_mode():
            if device == "cuda":
                model(x)
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            else:
                model(torch.rand(1, 3, 32, 32))
                base = rss_mb()
            for _ in range(repeats):
                if device == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                y = model(x)
                if device == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
                del y
            if device == "cuda":
                peak = (torch.cuda.max_memory_allocated() - base) / 2**20
            else:
                peak = rss_mb() - base
    except Exception as exc:
        return {
            "error": f"forward failed: {type(exc).__name__}: {str(exc)[:200]}",
            "params": params,
        }
    return {
        "params": params,
        "flops": flops,
        "seconds": statistics.median(times),
        "peak_mb": peak,
        "threads": torch.get_num_threads(),
    }


def gemm_child(repeats: int = 5) -> dict:
    """float32 GEMM throughput (2048 x 2048 x 2048) with torch's threads: the FLOP floor's rate."""
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return {
        "gflops": 2 * 2048**3 / statistics.median(times) / 1e9,
        "threads": torch.get_num_threads(),
    }


def measure(model: str, size: int, device: str, repeats: int, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", model, str(size), device, str(repeats)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit code {proc.returncode}: {tail[:200]}"}
    return json.loads(lines[-1])


def table(results: dict, sizes: list[int], device: str, models: list[str]) -> str:
    unit = "MiB (RSS growth)" if device == "cpu" else "MiB (CUDA allocated)"
    head = "| model | params | " + " | ".join(
        f"{s}² time s (x RWKV-IR) | {s}² peak {unit} (x RWKV-IR)" for s in sizes
    )
    lines = [head + " |", "|" + "---|" * (2 + 2 * len(sizes))]
    notes = []
    for model in models:
        row = [model, ""]
        for s in sizes:
            r = results[(model, s, device)]
            ref = results.get((REFERENCE, s, device), {})
            if "error" in r:
                row += ["n/a", "n/a"]
                notes.append(f"- {model} at {s}x{s} on {device}: {r['error']}")
                if "params" in r:
                    row[1] = f"{r['params'] / 1e3:.0f}K"
                continue
            row[1] = f"{r['params'] / 1e3:.0f}K"
            rt = f" ({r['seconds'] / ref['seconds']:.2f}x)" if "seconds" in ref else ""
            rm = f" ({r['peak_mb'] / ref['peak_mb']:.2f}x)" if ref.get("peak_mb") else ""
            row += [f"{r['seconds']:.2f}{rt}", f"{r['peak_mb']:.0f}{rm}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines + (["", *notes] if notes else []))


def floor_table(results: dict, sizes: list[int], models: list[str], gemm: dict) -> str:
    """Time against the FLOP floor: FLOPs (torch.utils.flop_counter) / measured GEMM rate."""
    lines = [
        f"FLOP floor: the model's FLOPs at that size divided by the float32 GEMM rate measured "
        f"first in this run ({gemm['gflops']:.1f} GFLOP/s, 2048³, {gemm['threads']} threads); "
        "target (issue 13): RWKV-IR <= 2.5x its floor and >= 3x faster than SwinIR at 256².",
        "",
        "| model | " + " | ".join(f"{s}² GFLOP / floor s / time ÷ floor" for s in sizes) + " |",
        "|" + "---|" * (1 + len(sizes)),
    ]
    for model in models:
        row = [model]
        for s in sizes:
            r = results[(model, s, "cpu")]
            if "flops" not in r or "seconds" not in r:
                row.append("n/a")
                continue
            floor = r["flops"] / (gemm["gflops"] * 1e9)
            row.append(f"{r['flops'] / 1e9:.1f} / {floor:.2f} / **{r['seconds'] / floor:.2f}x**")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--device", nargs="+", default=None, help="cpu and/or cuda (default: all)")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--repeats", type=int, default=1, help="timed forwards per measurement")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per measurement")
    ap.add_argument("--no-report", action="store_true", help="do not update docs/benchmarks.md")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        model, size, device, repeats = args.child
        if model == "gemm":
            print(json.dumps(gemm_child()))
            return
        print(json.dumps(child(model, int(size), device, int(repeats))))
        return

    import torch

    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    gemm = measure("gemm", 0, "cpu", 1, 600) if "cpu" in devices else None
    if gemm:
        print(f"cpu float32 GEMM: {gemm['gflops']:.1f} GFLOP/s ({gemm['threads']} threads)")
    results = {}
    for device in devices:
        for size in args.sizes:
            for model in args.models:
                r = measure(model, size, device, args.repeats, args.timeout)
                results[(model, size, device)] = r
                shown = r.get("error") or f"{r['seconds']:.2f} s, {r['peak_mb']:.0f} MiB"
                print(f"{device} {size}x{size} {model}: {shown}", flush=True)
    body = [
        f"Lightweight presets at x{SCALE}, batch 1, float32, `torch.inference_mode`, input "
        f"N x N (output {SCALE}N x {SCALE}N); median of {args.repeats} forward(s) after a warm-up; "
        "one subprocess per measurement. Peak memory: CPU = growth of the process's peak RSS "
        "(`ru_maxrss`) during the timed forwards; CUDA = `max_memory_allocated` above the "
        "memory held before the forward. Ratios are to RWKV-IR (lower is better). MambaIR "
        "runs resyn's pure-PyTorch selective scan (no CUDA kernel), SwinIR pads to a multiple "
        "of its 8x8 window. Allocator: as the `resyn` command sets it (`resyn.runtime`: "
        "freed memory is reused instead of faulted in again); "
        f"this run: RESYN_ALLOCATOR={os.environ.get('RESYN_ALLOCATOR', 'tuned')}.",
    ]
    if "cuda" not in devices:
        body.append("No CUDA device was available for this run.")
    for device in devices:
        body += ["", f"**{device.upper()}**", "", table(results, args.sizes, device, args.models)]
        if device == "cpu" and gemm and "error" not in gemm:
            body += ["", floor_table(results, args.sizes, args.models, gemm)]
    text = "\n".join(body)
    print(text)
    if not args.no_report:
        from _report import update_section

        update_section("model_speed", "Model speed: RWKV-IR vs SwinIR vs MambaIR (light, x4)", text)


if __name__ == "__main__":
    main()
