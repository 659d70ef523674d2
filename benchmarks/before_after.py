"""One number for a before/after comparison across commits, on the same machine: a forward of
rwkvir-light x4 at 256x256 (2 threads, median of 3) or a training iteration of rwkvir-light x2,
batch 8, GT 128 (1 thread, median of 3 after a warm-up). Run it once with an older checkout's
source first on the path and once with this one:

    git worktree add /tmp/old <commit>
    PYTHONPATH=/tmp/old/src .venv/bin/python benchmarks/before_after.py fwd
    .venv/bin/python benchmarks/before_after.py fwd          # and `train` for the other one
"""

from __future__ import annotations

import sys
import time


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "fwd"
    if mode not in ("fwd", "train"):
        raise SystemExit("usage: before_after.py fwd|train")
    import torch

    import resyn
    from resyn.models import build_model
    from resyn.runtime import tune_cpu_allocator

    tune_cpu_allocator()
    times = []
    if mode == "fwd":
        torch.set_num_threads(2)
        model = build_model("rwkvir-light", scale=4).eval()
        x = torch.rand(1, 3, 256, 256)
        with torch.inference_mode():
            model(x)
            for _ in range(3):
                start = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - start)
    else:
        torch.set_num_threads(1)
        torch.manual_seed(0)
        model = build_model("rwkvir-light", scale=2).train()
        opt = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.9, 0.99))
        x, y = torch.rand(8, 3, 64, 64), torch.rand(8, 3, 128, 128)
        for i in range(4):
            start = time.perf_counter()
            loss = torch.nn.functional.l1_loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i:
                times.append(time.perf_counter() - start)
    print(f"{resyn.__file__}: {mode} median {sorted(times)[1]:.2f} s")


if __name__ == "__main__":
    main()
