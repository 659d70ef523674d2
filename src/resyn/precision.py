"""Which floating-point precision inference runs in: ``auto``, ``fp32`` or ``bf16``.

``bf16`` runs the model under ``torch.autocast`` (matrix products and convolutions in bfloat16).
It only pays where the hardware multiplies bf16 natively: on CUDA GPUs that report
``torch.cuda.is_bf16_supported()``, and on CPUs with AVX512-BF16 or AMX-BF16 instructions.
Elsewhere (AVX2-only CPUs, AVX512 CPUs without the BF16 extension, other architectures) oneDNN
emulates bf16 matrix products and a forward pass is much slower than in fp32, so ``auto``
picks fp32 there.

On Linux the CPU's capability is read from the ``flags`` line of ``/proc/cpuinfo``
(``avx512_bf16``, ``amx_bf16``); where there is no such line (other systems, ARM) from torch's
cpuinfo-based checks
(``torch.cpu._is_avx512_bf16_supported`` / ``_is_amx_tile_supported``) when this torch has
them. ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` is not used as a sign of native
support: it is also true on AVX512 CPUs that only emulate bf16.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

#: The values of ``--precision`` and of the API's ``precision`` argument.
PRECISIONS = ("auto", "fp32", "bf16")
#: The ``/proc/cpuinfo`` flags of CPUs that multiply bf16 natively.
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")


def read_cpu_flags(path: Path = CPUINFO) -> frozenset[str] | None:
    """The flags of the first processor listed in ``path`` (``/proc/cpuinfo``).

    None when the file cannot be read or has no ``flags`` line (not Linux, not x86).
    """
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        return None
    return None


def _torch_cpu_bf16() -> tuple[bool, str] | None:
    """torch's own (cpuinfo-based) check, or None when this torch does not offer one."""
    cpu = getattr(torch, "cpu", None)
    avx512_bf16 = getattr(cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(cpu, "_is_amx_tile_supported", None)
    if avx512_bf16 is None and amx is None:
        return None
    found = []
    if avx512_bf16 is not None and avx512_bf16():
        found.append("AVX512-BF16")
    if amx is not None and amx():
        found.append("AMX")
    if found:
        return True, f"CPU has {' and '.join(found)} (torch.cpu)"
    return False, "CPU has neither AVX512-BF16 nor AMX (torch.cpu); bf16 would be emulated"


def cpu_bf16_native(
    read_flags: Callable[[], frozenset[str] | None] | None = None,
) -> tuple[bool, str]:
    """Whether this CPU runs bf16 matrix products natively, and the reason in words.

    ``read_flags`` returns the CPU flags (default: ``read_cpu_flags`` on ``/proc/cpuinfo``) or
    None when they are unknown; then torch's own checks decide, and without them the answer
    is False.
    """
    flags = (read_flags or read_cpu_flags)()
    if flags is not None:
        found = [f for f in CPU_BF16_FLAGS if f in flags]
        if not found:
            return False, (
                f"CPU flags have neither {' nor '.join(CPU_BF16_FLAGS)}; bf16 matrix products "
                "would be emulated (slower than fp32)"
            )
        if not torch.backends.mkldnn.is_available():
            return False, f"CPU has {', '.join(found)} but this torch was built without oneDNN"
        return True, f"CPU has {' and '.join(found)}"
    checked = _torch_cpu_bf16()
    if checked is not None:
        return checked
    return False, "the CPU's bf16 support is unknown (no /proc/cpuinfo flags, no torch check)"


def resolve_precision(
    precision: str,
    device: str | torch.device = "cpu",
    *,
    read_flags: Callable[[], frozenset[str] | None] | None = None,
) -> str:
    """The precision a run uses: ``fp32`` / ``bf16`` as given; ``auto`` -> ``bf16`` where
    bf16 is native and fast on ``device`` (see ``auto_precision``), else ``fp32``.

    Raises ValueError for a value not in ``PRECISIONS``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return precision
    return auto_precision(device, read_flags=read_flags)[0]


def auto_precision(
    device: str | torch.device = "cpu",
    *,
    read_flags: Callable[[], frozenset[str] | None] | None = None,
) -> tuple[str, str]:
    """What ``auto`` resolves to on ``device`` and why: ``("bf16" | "fp32", reason)``."""
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return "fp32", "no CUDA device is available"
        if torch.cuda.is_bf16_supported():
            return "bf16", f"{torch.cuda.get_device_name(dev)} supports bf16"
        return "fp32", f"{torch.cuda.get_device_name(dev)} does not support bf16"
    if dev.type == "cpu":
        native, reason = cpu_bf16_native(read_flags)
        return ("bf16" if native else "fp32"), reason
    return "fp32", f"bf16 is only chosen automatically on CPU and CUDA, not on {dev.type}"


def describe_precision(requested: str, resolved: str) -> str:
    """``"fp32"`` when nothing was resolved, else ``"auto -> bf16"``; for metadata and reports."""
    return resolved if requested == resolved else f"{requested} -> {resolved}"


def precision_line(precision: str, device: str | torch.device = "cpu") -> str:
    """What a run on ``device`` uses, for a command's first line: ``"fp32"``, or
    ``"auto -> bf16: CPU has avx512_bf16"`` with the reason when ``auto`` was resolved."""
    if precision != "auto":
        return resolve_precision(precision, device)
    resolved, reason = auto_precision(device)
    return f"{describe_precision(precision, resolved)}: {reason}"
