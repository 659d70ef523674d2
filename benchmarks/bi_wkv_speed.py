"""bi_wkv forward+backward time and peak memory against sequence length; RWKV-IR light forward
time and memory per megapixel.

Each measurement runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is its
own; "extra memory" is that peak minus the resident size just before the first full-size call.

    .venv/bin/python benchmarks/bi_wkv_speed.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import update_section

CHILD = r"""
import json, resource, sys, time, torch
sys.path.insert(0, {src!r})
from resyn.runtime import tune_cpu_allocator
tune_cpu_allocator()  # as the resyn command does; RESYN_ALLOCATOR=system leaves glibc's defaults
from resyn.ops import bi_wkv
kind, T, C, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
torch.manual_seed(0)
if kind in ("op", "naive"):
    k = (torch.rand(1, T, C) * 2 - 1).requires_grad_()
    v = torch.randn(1, T, C).requires_grad_()
    w = ((torch.rand(C) * 8 - 5) / T).requires_grad_()
    u = ((torch.rand(C) - 0.5) / T).requires_grad_()
    if kind == "op":
        f = lambda: bi_wkv(k, v, w, u)
    else:
        def f():
            t = torch.arange(T, dtype=torch.float32)
            d = (t[:, None] - t[None, :]).abs()
            e = -(d - 1)[None, :, :, None] * w + k[:, None, :, :]
            eye = torch.eye(T, dtype=torch.bool)[None, :, :, None]
            e = torch.where(eye, (u + k)[:, :, None, :].expand_as(e), e)
            e = torch.exp(e - e.amax(2, keepdim=True).detach())
            return (e * v[:, None]).sum(2) / e.sum(2)
    def step():
        y = f(); y.sum().backward()
else:  # model forward, T = side of a square input
    from resyn.models import build_model
    model = build_model("rwkvir-light", scale=int(C)).eval()
    x = torch.rand(1, 3, T, T)
    def step():
        with torch.inference_mode():
            model(x)
# The resident size before the first full-size call: the tuned allocator keeps freed memory, so
# a base taken after the warm-up would hide the working memory.
base = rss_mb()
step()  # warm-up
times = []
for _ in range(repeats):
    t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
times.sort()
print(json.dumps({{"median": times[len(times) // 2], "min": times[0], "extra_mb": max(peak - base, 0.0)}}))
"""


def measure(kind: str, T: int, C: int, repeats: int, allocator: str = "tuned") -> dict | None:
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = dict(os.environ, RESYN_ALLOCATOR=allocator)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.format(src=src), kind, str(T), str(C), str(repeats)],
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
    )
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer lengths, one repeat")
    args = parser.parse_args()
    C = 64
    lengths = [1024, 4096, 16384, 65536, 262144]
    naive_limit = 2048  # T x T x C float32 with autograd: ~1 GiB at 2048
    repeats = 1 if args.quick else 5
    rows = []
    results = {}
    for T in lengths:
        op = measure("op", T, C, repeats)
        sys_op = measure("op", T, C, repeats, allocator="system")
        naive = measure("naive", T, C, repeats) if T <= naive_limit else None
        results[T] = op
        results[("system", T)] = sys_op
        print(f"T={T}: op {op} naive {naive}", flush=True)
        naive_txt = (
            f"{naive['median']:.3f} s / {naive['extra_mb']:.0f} MB" if naive else "does not fit"
        )
        rows.append(
            f"| {T:,} | {op['median']:.3f} | {op['min']:.3f} | {op['extra_mb']:.0f} | "
            f"{op['extra_mb'] / T * 1024:.2f} | {sys_op['median']:.3f} | {naive_txt} |"
        )
    ratio = results[262144]["median"] / results[65536]["median"]
    sys_ratio = results[("system", 262144)]["median"] / results[("system", 65536)]["median"]
    mem_ratio = results[262144]["extra_mb"] / max(results[65536]["extra_mb"], 1e-9)
    model_rows = []
    for scale in (2, 4):
        for side in (128, 256, 512):
            r = measure("model", side, scale, 1 if args.quick else 2)
            mp = side * side / 1e6
            model_rows.append(
                f"| x{scale} | {side}x{side} | {r['median']:.2f} | {r['median'] / mp:.1f} | "
                f"{r['extra_mb']:.0f} | {r['extra_mb'] / mp:.0f} |"
            )
            print(f"model x{scale} {side}: {r}", flush=True)
    body = "\n".join(
        [
            "`benchmarks/bi_wkv_speed.py`: `resyn.ops.bi_wkv` forward + backward, B=1, C=64, "
            "float32, pure-PyTorch path on the CPU; the naive T x T formula (float32, autograd) "
            "where it fits. Targets (issue 2): T=65,536 <= 1 s; time(262,144)/time(65,536) <= 4.5. "
            "Each point runs in a fresh process with the allocator settings the `resyn` command "
            "uses (`resyn.runtime`); the 'glibc defaults' column reruns it with "
            "`RESYN_ALLOCATOR=system`.",
            "",
            "| T | median s | min s | extra memory MB | KB per 1K tokens | median s, glibc defaults "
            "| naive formula |",
            "|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Scaling 65,536 -> 262,144 tokens (4x): time x{ratio:.2f} (glibc defaults "
            f"x{sys_ratio:.2f}), memory x{mem_ratio:.2f}.",
            "",
            "RWKV-IR light (random weights), forward in `torch.inference_mode`, float32, input "
            "side as listed:",
            "",
            "| scale | input | seconds | s per input MP | extra memory MB | MB per input MP |",
            "|---|---|---|---|---|---|",
            *model_rows,
        ]
    )
    print(update_section("bi_wkv", "Bi-WKV operator and RWKV-IR forward (CPU)", body))


if __name__ == "__main__":
    main()
