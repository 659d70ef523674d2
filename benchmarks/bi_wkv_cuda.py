"""Bi-WKV and RWKV-IR light on a CUDA device: seconds and peak memory (for a lent GPU).

Cases (each timed with ``torch.cuda.synchronize`` around it; median of ``--repeats`` after 3
warm-ups; peak = ``max_memory_allocated`` minus the memory allocated before the case):

* ``bi_wkv`` forward + backward, float32, B=1, C=64, T from 4K to 1M tokens, both methods, and
  the model's training shapes (B=8, T=1024 and 4096, C=48);
* the fused Triton kernels (``resyn.ops._bi_wkv_triton``) forward + backward against the
  pure-PyTorch path at B=1, C=64, T=65,536 and 262,144 and B=8, T=4,096, C=48: (B, C, T)
  contiguous, a permuted (B, T, C) tensor, and a 256-row grid read column-major; their largest
  difference to the PyTorch path; and, at the longest shape, the kernels' block size;
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
import time
from collections.abc import Callable

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


TRITON_SHAPES = [(1, 65536, 64), (1, 262144, 64), (8, 4096, 48)]


def _triton_inputs(B: int, T: int, C: int, layout: str) -> tuple:
    """k, v (B, C, T) in ``layout`` ("bct" contiguous or "btc": a permuted (B, T, C) tensor),
    w, u as in ``op_case``; the same values for either layout."""
    import torch

    g = torch.Generator(device="cuda").manual_seed(0)
    k = (torch.rand(B, T, C, device="cuda", generator=g) * 2 - 1) * 3
    v = torch.randn(B, T, C, device="cuda", generator=g)
    w = (torch.rand(C, device="cuda", generator=g) * 8 - 5) / T
    u = (torch.rand(C, device="cuda", generator=g) - 0.5) / T
    if layout == "bct":
        k, v = k.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous()
    else:
        k, v = k.transpose(1, 2), v.transpose(1, 2)
    return k, v, w, u


def triton_case(
    B: int, T: int, C: int, layout: str, grid_h: int, repeats: int
) -> tuple[float, float]:
    """The Triton forward (saving for the backward) + backward with ∂L/∂y = 1."""
    import torch

    from resyn.ops import _bi_wkv_triton as bt

    k, v, w, u = _triton_inputs(B, T, C, layout)
    out = torch.empty(B, C, T, device="cuda")
    grad = torch.ones(B, C, T, device="cuda")
    gk = torch.empty(B, C, T, device="cuda")
    gv = torch.empty(B, C, T, device="cuda")

    def step() -> None:
        saved = bt.forward(k, v, w, u, grid_h, out, False, True)
        bt.backward(k, v, w, u, grid_h, grad, saved, gk, gv, False)

    return timed(step, repeats)


def triton_vs_torch(B: int, T: int, C: int) -> tuple[float, float]:
    """Largest |y| and |∂L/∂k| difference, Triton vs the general PyTorch path, relative to the
    largest value (float32 both; a sanity check of the kernels at this shape)."""
    import torch

    from resyn.ops import _bi_wkv_triton as bt
    from resyn.ops import bi_wkv

    k, v, w, u = _triton_inputs(B, T, C, "bct")
    out = torch.empty(B, C, T, device="cuda")
    grad = torch.randn(B, C, T, device="cuda", generator=torch.Generator("cuda").manual_seed(1))
    gk, gv = torch.empty_like(out), torch.empty_like(out)
    saved = bt.forward(k, v, w, u, 0, out, False, True)
    bt.backward(k, v, w, u, 0, grad, saved, gk, gv, False)
    kr, vr = k.clone().requires_grad_(), v.clone().requires_grad_()
    y = bi_wkv(kr, vr, w, u, method="general", channels_first=True)
    (gk_ref,) = torch.autograd.grad(y, (kr,), grad)

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).abs().max() / b.abs().max())

    return rel(out, y.detach()), rel(gk, gk_ref)


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


def triton_table(torch_cells: dict[tuple[int, int, int], list[str]], repeats: int) -> list[str]:
    """Rows of the Triton table (printed as they come), and a block-size sweep at the longest
    shape; a row saying why when the kernels cannot run here."""
    from resyn.ops import _bi_wkv_triton as bt

    ok, why = bt.available()
    if not ok:
        print(f"triton: skipped ({why})", flush=True)
        return [f"| - | - | - | - | skipped: {why} | - | - | - |"]
    rows = []
    for B, T, C in TRITON_SHAPES:
        cells = []
        for layout, grid_h in (("bct", 0), ("btc", 0), ("bct", 256)):
            sec, mib = triton_case(B, T, C, layout, grid_h, repeats)
            cells.append(f"{sec * 1e3:.2f} ms / {mib:.0f} MiB")
        dy, dk = triton_vs_torch(B, T, C)
        rows.append(
            f"| {B} | {T:,} | {C} | {torch_cells[(B, T, C)][0]} | {' | '.join(cells)} "
            f"| {dy:.1e} / {dk:.1e} |"
        )
        print(rows[-1], flush=True)
    default = bt.BLOCK
    B, T, C = TRITON_SHAPES[1]
    sweep = []
    for block in (256, 512, 1024):
        bt.BLOCK = block
        sec, _ = triton_case(B, T, C, "bct", 0, repeats)
        sweep.append(f"{block}: {sec * 1e3:.2f} ms")
    bt.BLOCK = default
    rows.append(f"\nBlock size at B={B}, T={T:,}, C={C}: {', '.join(sweep)} (default {default}).")
    print(rows[-1], flush=True)
    return rows


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
    shapes = [(1, T, 64) for T in (4096, 16384, 65536, 262144, 1048576)]
    shapes += [(8, 1024, 48), (8, 4096, 48)]
    torch_cells: dict[tuple[int, int, int], list[str]] = {}
    for B, T, C in shapes:
        cells = []
        for method in ("auto", "general"):
            sec, mib = op_case(B, T, C, method, r)
            cells.append(f"{sec * 1e3:.2f} ms / {mib:.0f} MiB")
        torch_cells[(B, T, C)] = cells
        op_rows.append(f"| {B} | {T:,} | {C} | {cells[0]} | {cells[1]} |")
        print(op_rows[-1], flush=True)
    triton_rows = triton_table(torch_cells, r)
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
            "`benchmarks/bi_wkv_cuda.py`: the pure-PyTorch Bi-WKV, the fused Triton kernels "
            "and rwkvir-light on the GPU; median of the timed repeats after 3 warm-ups, peak = "
            "`max_memory_allocated` above the memory held before the case.",
            "",
            "| B | T | C | fwd+bwd, auto (scaled where exact) | fwd+bwd, general |",
            "|---|---|---|---|---|",
            *op_rows,
            "",
            "Triton forward (saving y, log D) + backward, float32; the layouts are (B, C, T) "
            "contiguous, a permuted (B, T, C) tensor, and the sequence read column-major over "
            "a 256-row grid of the T axis; diff = largest |y| and |∂L/∂k| difference to the "
            "general PyTorch path, relative to the largest value.",
            "",
            "| B | T | C | PyTorch auto | Triton (B, C, T) | Triton (B, T, C) view "
            "| Triton column-major | diff y / ∂k |",
            "|---|---|---|---|---|---|---|---|",
            *triton_rows,
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
