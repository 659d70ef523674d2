"""Bi-WKV and RWKV-IR light on a CUDA device: seconds and peak memory (for a lent GPU).

Cases (each timed with ``torch.cuda.synchronize`` around it; median of ``--repeats`` after 3
warm-ups; peak = ``max_memory_allocated`` minus the memory allocated before the case):

* ``bi_wkv`` forward + backward, float32, B=1, C=64, T from 4K to 1M tokens, both methods, and
  the model's training shape (B=8, T=1024, C=48);
* an rwkvir-light x2 training step (forward + backward + Adam) at batch 8, LR 64x64, float32
  and bf16 autocast;
* rwkvir-light x4 inference at 256², 512² and 1024² input, float32 and bf16 autocast.

    python3 benchmarks/bi_wkv_cuda.py [--repeats 10] [--no-report]

Writes the ``bi_wkv_cuda`` section of docs/benchmarks.md (on the machine it runs on; the device
check, scripts/device_check.sh, brings that file back).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import update_section


def timed(step: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median seconds, peak MiB above the memory held before the first call)."""
    import torch

    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    return statistics.median(times), peak


def op_case(B: int, T: int, C: int, method: str, repeats: int) -> tuple[float, float]:
    import torch

    from resyn.ops import bi_wkv

    g = torch.Generator(device="cuda").manual_seed(0)
    k = ((torch.rand(B, T, C, device="cuda", generator=g) * 2 - 1) * 3).requires_grad_()
    v = torch.randn(B, T, C, device="cuda", generator=g).requires_grad_()
    w = ((torch.rand(C, device="cuda", generator=g) * 8 - 5) / T).requires_grad_()
    u = ((torch.rand(C, device="cuda", generator=g) - 0.5) / T).requires_grad_()

    def step() -> None:
        y = bi_wkv(k, v, w, u, method=method)
        torch.autograd.grad(y, (k, v, w, u), torch.ones_like(y))

    return timed(step, repeats)


def train_case(precision: str, repeats: int) -> tuple[float, float]:
    import torch

    from resyn.models import build_model

    torch.manual_seed(0)
    model = build_model("rwkvir-light", scale=2, global_skip="bicubic").cuda().train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.9, 0.99))
    x = torch.rand(8, 3, 64, 64, device="cuda")
    y = torch.rand(8, 3, 128, 128, device="cuda")

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(x)
        loss = torch.nn.functional.l1_loss(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return timed(step, repeats)


def infer_case(side: int, precision: str, repeats: int) -> tuple[float, float]:
    import torch

    from resyn.models import build_model

    model = build_model("rwkvir-light", scale=4).cuda().eval()
    x = torch.rand(1, 3, side, side, device="cuda")

    def step() -> None:
        with (
            torch.inference_mode(),
            torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"),
        ):
            model(x)

    return timed(step, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-report", action="store_true", help="print only")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("bi_wkv_cuda: no CUDA device")
    r = args.repeats
    op_rows = []
    shapes = [(1, T, 64) for T in (4096, 16384, 65536, 262144, 1048576)] + [(8, 1024, 48)]
    for B, T, C in shapes:
        cells = []
        for method in ("auto", "general"):
            sec, mib = op_case(B, T, C, method, r)
            cells.append(f"{sec * 1e3:.2f} ms / {mib:.0f} MiB")
        op_rows.append(f"| {B} | {T:,} | {C} | {cells[0]} | {cells[1]} |")
        print(op_rows[-1], flush=True)
    model_rows = []
    for precision in ("fp32", "bf16"):
        sec, mib = train_case(precision, r)
        model_rows.append(
            f"| training step x2, batch 8, LR 64² | {precision} | {sec * 1e3:.1f} ms | {mib:.0f} |"
        )
        print(model_rows[-1], flush=True)
    for side in (256, 512, 1024):
        for precision in ("fp32", "bf16"):
            sec, mib = infer_case(side, precision, max(1, r // 2))
            model_rows.append(
                f"| inference x4, input {side}² | {precision} | {sec * 1e3:.1f} ms | {mib:.0f} |"
            )
            print(model_rows[-1], flush=True)
    body = "\n".join(
        [
            "`benchmarks/bi_wkv_cuda.py`: the pure-PyTorch Bi-WKV (no fused kernel) and "
            "rwkvir-light on the GPU; median of the timed repeats after 3 warm-ups, peak = "
            "`max_memory_allocated` above the memory held before the case.",
            "",
            "| B | T | C | fwd+bwd, auto (scaled where exact) | fwd+bwd, general |",
            "|---|---|---|---|---|",
            *op_rows,
            "",
            "| rwkvir-light | precision | time | peak MiB |",
            "|---|---|---|---|",
            *model_rows,
        ]
    )
    if not args.no_report:
        print(update_section("bi_wkv_cuda", "Bi-WKV and RWKV-IR on CUDA", body))


if __name__ == "__main__":
    main()
