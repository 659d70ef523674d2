"""The compiled CPU Bi-WKV (``csrc/bi_wkv_cpu.cpp``): built on first use, cached per machine.

The source is compiled with ``torch.utils.cpp_extension`` (a C++ compiler and ninja are needed)
for this CPU's instruction set (``-march=native``) into a cache folder keyed on the source, the
torch version, the compiler and the CPU's flags, so machines with other CPUs sharing a home
folder build their own copy. Nothing is built at import: ``available()`` builds or loads on its
first call and remembers the outcome (and the reason, when it fails) for the process.

The cache folder is ``$RESYN_CACHE_DIR``, else ``$XDG_CACHE_HOME/resyn``, else ``~/.cache/resyn``.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
from torch import Tensor

from resyn.ops._bi_wkv_kernel import accumulation_dtype

CSRC = Path(__file__).with_name("csrc")
SOURCE = CSRC / "bi_wkv_cpu.cpp"  # includes the headers next to it
NAME = "resyn_bi_wkv_cpu"
# -fopenmp: at::parallel_for's OpenMP region is compiled here; -fno-math-errno and
# -fno-trapping-math let the lane loops vectorise without -ffast-math (which would assume no inf).
FLAGS = ["-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
FALLBACK_FLAGS = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
# The kernel runs float64 inputs in float64 (the cancellation guard's recomputation uses it).
FLOAT64 = True

_lock = threading.Lock()
_state: tuple[bool, str] | None = None
build_seconds: float | None = None  # set when this process compiled the kernel


def cache_root() -> Path:
    env = os.environ.get("RESYN_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "resyn"


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "c++"))


def _compiler_version(cxx: str) -> str:
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=20)
        return out.stdout.splitlines()[0] if out.stdout else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def build_dir(flags: list[str], cxx: str) -> Path:
    key = hashlib.sha256()
    sources = [f.read_bytes() for f in sorted(CSRC.iterdir()) if f.suffix in (".cpp", ".h")]
    for part in (
        *sources,
        torch.__version__.encode(),
        sys.version.encode(),
        " ".join(flags).encode(),
        _compiler_version(cxx).encode(),
        _cpu_flags().encode(),
    ):
        key.update(part)
        key.update(b"\0")
    return cache_root() / f"bi_wkv_cpu-{key.hexdigest()[:16]}"


def _load(flags: list[str], cxx: str) -> None:
    from torch.utils import cpp_extension

    global build_seconds
    folder = build_dir(flags, cxx)
    folder.mkdir(parents=True, exist_ok=True)
    built = (folder / f"{NAME}.so").exists()
    if not built:
        print(
            f"[resyn] compiling the CPU Bi-WKV kernel into {folder} (once per machine)",
            file=sys.stderr,
            flush=True,
        )
    start = time.perf_counter()
    cpp_extension.load(
        name=NAME,
        sources=[str(SOURCE)],
        extra_cflags=flags,
        # at::parallel_for is OpenMP in the header; libgomp resolves to the copy torch loaded
        extra_ldflags=["-fopenmp"],
        build_directory=str(folder),
        is_python_module=False,
        verbose=False,
    )
    if not built:
        build_seconds = time.perf_counter() - start


def available() -> tuple[bool, str]:
    """Whether the compiled kernel is loaded (building it on the first call), and why not."""
    global _state
    if _state is not None:
        return _state
    with _lock:
        if _state is not None:
            return _state
        _state = _try_load()
        return _state


def _try_load() -> tuple[bool, str]:
    if os.environ.get("RESYN_BI_WKV", "").strip().lower() == "torch":
        return False, "RESYN_BI_WKV=torch forces the pure-PyTorch path"
    cxx = _compiler()
    if cxx is None:
        return False, f"no C++ compiler ({os.environ.get('CXX', 'c++')} not on PATH)"
    if shutil.which("ninja") is None:
        return False, "ninja is not on PATH (torch.utils.cpp_extension needs it)"
    errors = []
    for flags in (FLAGS, FALLBACK_FLAGS):
        try:
            _load(flags, cxx)
            return True, f"built with {' '.join(flags)}"
        except Exception as exc:  # a failed build must leave the pure path running
            errors.append(str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc))
    return False, "build failed: " + "; ".join(errors)


def saved_shape(B: int, C: int, T: int) -> tuple[int, int, int, int]:
    """The layout of the saved y, top and den: 16 channels contiguous per position."""
    return (B, -(-C // 16), T, 16)


def forward(
    k: Tensor,
    v: Tensor,
    w: Tensor,
    u: Tensor,
    grid_h: int,
    out: Tensor,
    accumulate: bool,
    into: tuple[Tensor, Tensor, Tensor] | None,
) -> None:
    """y of one branch into ``out`` (added when ``accumulate``), and, when ``into`` is given,
    the y, top and den the backward needs into its three tensors (``saved_shape``, float32, or
    float64 for float64 inputs).

    k, v, out: (B, C, T) logical tensors with any strides (one dtype); w, u: (C,).
    """
    if into is None:
        empty = torch.empty(0, dtype=accumulation_dtype(k.dtype))
        into = (empty, empty, empty)
    torch.ops.resyn_cpu.bi_wkv_forward(k, v, w, u, grid_h, out, accumulate, *into)


def backward(
    k: Tensor,
    v: Tensor,
    w: Tensor,
    u: Tensor,
    grid_h: int,
    grad: Tensor,
    saved: tuple[Tensor, Tensor, Tensor],
    gk: Tensor,
    gv: Tensor,
    accumulate: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """∂L/∂k, ∂L/∂v into ``gk``, ``gv``; returns ∂L/∂w, ∂L/∂u and the guard's two maxima."""
    B, C, _ = k.shape
    stats = torch.empty((4, B, C), dtype=torch.float64)
    torch.ops.resyn_cpu.bi_wkv_backward(k, v, w, u, grid_h, grad, *saved, gk, gv, accumulate, stats)
    gw, gu = stats[0].sum(0), stats[1].sum(0)
    return gw, gu, stats[2].max(), stats[3].max()


if __name__ == "__main__":  # scripts/setup-venv.sh: build (or load) once, say the outcome
    ok, why = available()
    took = f" in {build_seconds:.0f} s" if build_seconds is not None else ""
    print(
        f"[resyn] CPU Bi-WKV: {'compiled' if ok else 'pure PyTorch'}{took} ({why})", file=sys.stderr
    )
