"""bi_wkv forward+backward time and peak memory against sequence length: the compiled CPU
kernel against the pure-PyTorch path, side by side in one run (RWKV-IR's forward is timed by
benchmarks/model_speed.py).

Each measurement runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is its
own; "extra memory" is that peak minus the resident size just before the first full-size call.

    .venv/bin/python benchmarks/bi_wkv_speed.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from _report import update_section

CHILD = r"""
import json, resource, sys, time, torch
from resyn.runtime import tune_cpu_allocator
tune_cpu_allocator()  # as the resyn command does; RESYN_ALLOCATOR=system leaves glibc's defaults
from resyn.ops import bi_wkv
kind, backend, inputs, T, C, repeats = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:7])
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
torch.manual_seed(0)
if inputs == "init":  # the model at initialisation: k ~ N(0, 1), w = U[-5, 3] / T, u = 0
    k = torch.randn(1, T, C).requires_grad_()
    w = ((torch.rand(C) * 8 - 5) / T).requires_grad_()
    u = torch.zeros(C).requires_grad_()
else:  # the benchmark's inputs since the first version: k ~ U[-1, 1], u = U[-0.5, 0.5] / T
    k = (torch.rand(1, T, C) * 2 - 1).requires_grad_()
    w = ((torch.rand(C) * 8 - 5) / T).requires_grad_()
    u = ((torch.rand(C) - 0.5) / T).requires_grad_()
v = torch.randn(1, T, C).requires_grad_()
if kind == "op":
    f = lambda: bi_wkv(k, v, w, u, backend=backend)
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
# The resident size before the first full-size call: the tuned allocator keeps freed memory, so
# a base taken after the warm-up would hide the working memory.
base = rss_mb()
step()  # warm-up (and, for the compiled backend, loading the kernel)
times = []
for _ in range(repeats):
    t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
times.sort()
print(json.dumps({"median": times[len(times) // 2], "min": times[0], "extra_mb": max(peak - base, 0.0),
                  "threads": torch.get_num_threads()}))
"""


def measure(kind: str, backend: str, inputs: str, T: int, C: int, repeats: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, kind, backend, inputs, str(T), str(C), str(repeats)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{kind}/{backend}/{inputs} T={T} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer lengths, one repeat")
    args = parser.parse_args()
    from resyn.ops import bi_wkv_backend_status

    backend, why = bi_wkv_backend_status("cpu")
    if backend != "compiled":
        raise SystemExit(f"the compiled Bi-WKV is not available here: {why}")
    C = 64
    lengths = [65536, 262144] if args.quick else [4096, 16384, 65536, 262144]
    repeats = 1 if args.quick else 5
    rows, results = [], {}
    for inputs in ("bench", "init"):
        for T in lengths:
            comp = measure("op", "compiled", inputs, T, C, repeats)
            pure = measure("op", "torch", inputs, T, C, max(1, repeats // 2))
            results[(inputs, T)] = (comp, pure)
            print(f"{inputs} T={T}: compiled {comp} torch {pure}", flush=True)
            rows.append(
                f"| {inputs} | {T:,} | {comp['median'] * 1e3:.1f} | {comp['extra_mb']:.0f} | "
                f"{pure['median'] * 1e3:.0f} | {pure['extra_mb']:.0f} | "
                f"**{pure['median'] / comp['median']:.1f}x** |"
            )
    naive = measure("naive", "torch", "bench", 1024, C, 1)
    scaling = {
        inputs: results[(inputs, 262144)][0]["median"] / results[(inputs, 65536)][0]["median"]
        for inputs in ("bench", "init")
    }
    body = "\n".join(
        [
            "`benchmarks/bi_wkv_speed.py`: `resyn.ops.bi_wkv` forward + backward, B=1, C=64, "
            f"float32, {results[('bench', 65536)][0]['threads']} threads, the compiled CPU "
            f"kernel ({why}) and the pure-PyTorch path (`backend='torch'`) side by side, each "
            "point in a fresh process with the `resyn` command's allocator settings. Inputs: "
            "'bench' k ~ U[-1, 1], w = U[-5, 3]/T, u = U[-0.5, 0.5]/T (this benchmark's inputs "
            "since its first version); 'init' the model at initialisation, k ~ N(0, 1), "
            "w = U[-5, 3]/T, u = 0. Targets (issue 13): compiled >= 8x the pure path at "
            "T = 65,536; time(262,144) / time(65,536) <= 4.5.",
            "",
            "| inputs | T | compiled ms | compiled extra MB | pure ms | pure extra MB | speed-up |",
            "|---|---|---|---|---|---|---|",
            *rows,
            "",
            "Scaling of the compiled kernel, 65,536 -> 262,144 tokens (4x): "
            + ", ".join(f"{k} x{v:.2f}" for k, v in scaling.items())
            + f". The naive T x T formula at T = 1,024: {naive['median']:.2f} s, "
            f"{naive['extra_mb']:.0f} MB.",
        ]
    )
    print(update_section("bi_wkv", "Bi-WKV operator (CPU)", body))


if __name__ == "__main__":
    main()
