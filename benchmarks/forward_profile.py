"""Where one forward pass spends its time, by operator: rwkvir-light x4 on a 256x256 input,
float32, ``torch.inference_mode``, after a warm-up, under ``torch.profiler`` (CPU).

    .venv/bin/python benchmarks/forward_profile.py [--side 256] [--model rwkvir-light]
        [--threads N] [--no-write]
"""

from __future__ import annotations

import argparse
import time

from _report import update_section


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="rwkvir-light")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--rows", type=int, default=14)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from resyn.models import build_model
    from resyn.ops import bi_wkv_backend_status
    from resyn.runtime import tune_cpu_allocator

    tune_cpu_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model(args.model, scale=args.scale).eval()
    x = torch.rand(1, 3, args.side, args.side)
    with torch.inference_mode():
        model(x)
        start = time.perf_counter()
        model(x)
        plain = time.perf_counter() - start
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model(x)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    rows = [
        f"| `{e.key}` | {e.count} | {e.self_cpu_time_total / 1e3:.0f} | "
        f"{100 * e.self_cpu_time_total / total:.1f}% |"
        for e in events[: args.rows]
    ]
    backend, why = bi_wkv_backend_status("cpu")
    body = "\n".join(
        [
            f"`benchmarks/forward_profile.py`: {args.model} x{args.scale}, {args.side}x{args.side} "
            f"input, float32, {torch.get_num_threads()} threads, Bi-WKV backend {backend} "
            f"({why}). One forward took {plain:.2f} s without the profiler; self CPU time by "
            "operator under `torch.profiler` (summed over threads):",
            "",
            "| operator | calls | self CPU ms | share |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    print(body)
    if not args.no_write:
        update_section("forward_profile", "Where a forward pass spends its time (CPU)", body)


if __name__ == "__main__":
    main()
