"""Training speed of the standard on CPU: iterations/s of rwkvir-light (x2, float32) at the
standard's patch size (GT 128, LR 64), per-device batch 1 (and optionally more), with the
standard's optimizer and loss (Adam betas (0.9, 0.99), L1). One forward + backward + Adam step is
one iteration; the data pipeline is excluded (random tensors).

    .venv/bin/python benchmarks/train_speed.py [--batch 1 2] [--iters 3] [--model rwkvir-light]
        [--threads N]
"""

from __future__ import annotations

import argparse
import time

from _report import update_section


def measure(model_name: str, scale: int, batch: int, lr_patch: int, iters: int, warmup: int):
    import torch

    from resyn.models import build_model

    torch.manual_seed(0)
    model = build_model(model_name, scale=scale).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.9, 0.99))
    x = torch.rand(batch, 3, lr_patch, lr_patch)
    y = torch.rand(batch, 3, lr_patch * scale, lr_patch * scale)
    times = []
    for i in range(warmup + iters):
        t = time.perf_counter()
        loss = torch.nn.functional.l1_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    times.sort()
    median = times[len(times) // 2]
    params = sum(p.numel() for p in model.parameters())
    return median, params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="rwkvir-light")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--batch", type=int, nargs="+", default=[1])
    ap.add_argument("--lr-patch", type=int, default=64)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()

    import torch

    from resyn.runtime import tune_cpu_allocator

    tune_cpu_allocator()  # as `resyn train` does
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = []
    for b in args.batch:
        sec, params = measure(args.model, args.scale, b, args.lr_patch, args.iters, args.warmup)
        rows.append((b, sec, params))
        print(
            f"{args.model} x{args.scale} batch {b}: {sec:.3f} s/iter, {1 / sec:.3f} it/s, "
            f"{b / sec:.2f} patches/s",
            flush=True,
        )
    gt = args.lr_patch * args.scale
    lines = [
        f"`{args.model}` x{args.scale} ({rows[0][2]:,} parameters), CPU float32, "
        f"{torch.get_num_threads()} threads, GT patch {gt} (LR {args.lr_patch}), Adam + L1; "
        f"one iteration = forward + backward + optimizer step on random tensors (no data "
        f"loading); median of {args.iters} after {args.warmup} warm-up.",
        "",
        "| per-device batch | s / iteration | iterations / s | patches / s | "
        "light-sr-x2-50k at total batch 64 (est.) |",
        "|---|---|---|---|---|",
    ]
    for b, sec, _ in rows:
        # 50K iterations x 64 patches, at this per-patch throughput (accumulation of 64/b).
        hours = 50_000 * 64 / (b / sec) / 3600
        lines.append(f"| {b} | {sec:.3f} | {1 / sec:.3f} | {b / sec:.2f} | {hours:,.0f} h |")
    lines += [
        "",
        "The smoke preset (`--budget 0.002`: 100 iterations x total batch 64) needs "
        f"~{100 * 64 / (rows[-1][0] / rows[-1][1]) / 60:.0f} min of this throughput; "
        "the standard's real budgets are GPU work.",
    ]
    if not args.no_write:
        print(update_section("train_speed", "Training speed (CPU, float32)", "\n".join(lines)))


if __name__ == "__main__":
    main()
