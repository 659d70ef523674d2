"""Process-wide settings that make the CPU paths fast: glibc's allocator thresholds.

glibc serves every allocation above its mmap threshold (at most 32 MiB by default) with a fresh
``mmap``, and returns it to the system on ``free``. PyTorch allocates a new tensor for almost
every operation, so on a large image each intermediate is faulted in page by page and zeroed by
the kernel, again and again: RWKV-IR light on a 384x384 input (x4) spends about 6 million page
faults and 20 s in a forward pass that takes 11 s when the memory is reused
(``benchmarks/model_speed.py``, docs/benchmarks.md). ``tune_cpu_allocator`` raises the
thresholds so that freed memory stays in the heap and is reused; the cost is that a process
keeps its peak heap until it exits (glibc never trims it). A 1 GiB trim threshold was
not enough: RWKV-IR x4 at 512x512 works through more than that and still faulted in about a
million pages per forward (24.7 s against 19.9 s with no trimming).

The ``resyn`` command calls it at start-up; Python API users call it once themselves (it is
never done on import). ``RESYN_ALLOCATOR=system`` in the environment turns it off. Other C
libraries (musl, macOS, Windows) are left alone.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

# mallopt parameters from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 1 << 30  # allocations above this still get their own mapping
TRIM_THRESHOLD = -1  # never return the top of the heap (glibc reads -1 as SIZE_MAX)
TOP_PAD = 64 << 20  # extra heap requested per growth, fewer brk calls

_applied: bool | None = None


def tune_cpu_allocator() -> bool:
    """Apply the thresholds once per process; True when they are in effect."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("RESYN_ALLOCATOR", "").lower() == "system":
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    ok = all(
        libc.mallopt(param, value) == 1
        for param, value in (
            (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (_M_TOP_PAD, TOP_PAD),
        )
    )
    _applied = ok
    return ok


def allocator_state() -> str:
    """One line for reports and ``resyn info``."""
    if _applied:
        return f"glibc tuned (mmap threshold {MMAP_THRESHOLD >> 20} MiB, heap never trimmed)"
    return "system default"
