"""``bi_wkv``: the bidirectional WKV attention of Vision-RWKV / RWKV-IR in O(T·C).

For every batch b, channel c and position t of a length-T sequence:

    y_t = ( Σ_{i≠t} exp(−(|t−i|−1)·w + k_i)·v_i + exp(u + k_t)·v_t )
        / ( Σ_{i≠t} exp(−(|t−i|−1)·w + k_i)     + exp(u + k_t) )

``w`` and ``u`` are per-channel (the model passes decay / T and first / T). The computation
never forms a T×T matrix: see ``resyn.ops._bi_wkv_torch`` for the algorithm, which runs on every
device PyTorch supports. Inputs in bf16/fp16 are computed in float32 and returned in their dtype.

Backends: on a CPU the compiled kernel of ``_bi_wkv_cpp`` (built on first use) and on CUDA the
Triton kernel of ``_bi_wkv_triton``, both through the custom ops of ``_bi_wkv_kernel``; the
pure-PyTorch path runs wherever they are not available, for graph capture by tracing (ONNX), and
when asked for (``backend="torch"`` or ``RESYN_BI_WKV=torch`` in the environment).
``bi_wkv_backend_status`` says which one runs and why.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from resyn.ops import _bi_wkv_kernel, _bi_wkv_scaled
from resyn.ops._bi_wkv_kernel import accumulation_dtype, transpose_grid
from resyn.ops._bi_wkv_torch import BiWKVFunction, chunk_length, traceable_forward

METHODS = ("auto", "scaled", "general")
BACKENDS = ("auto", "compiled", "torch")


def _env_backend() -> str:
    value = os.environ.get("RESYN_BI_WKV", "auto").strip().lower() or "auto"
    if value not in BACKENDS:
        raise ValueError(f"RESYN_BI_WKV must be one of {', '.join(BACKENDS)}, not {value!r}")
    return value


def bi_wkv_backend_status(device: str | torch.device = "cpu") -> tuple[str, str]:
    """(backend, reason) for tensors on ``device``: ``compiled`` when its kernel is usable
    (building it on the first call), else ``torch`` and why."""
    device = torch.device(device)
    if _env_backend() == "torch":
        return "torch", "RESYN_BI_WKV=torch forces the pure-PyTorch path"
    if device.type == "cpu":
        from resyn.ops import _bi_wkv_cpp

        ok, why = _bi_wkv_cpp.available()
        return ("compiled", f"C++ kernel, {why}") if ok else ("torch", why)
    if device.type == "cuda":
        try:
            from resyn.ops import _bi_wkv_triton
        except ImportError as exc:
            return "torch", f"Triton path not importable ({exc})"
        ok, why = _bi_wkv_triton.available()
        return ("compiled", f"Triton kernel, {why}") if ok else ("torch", why)
    return "torch", f"no compiled kernel for {device.type}"


def bi_wkv_backends() -> list[str]:
    """The implementations usable on this machine's CPU: ``torch`` always, ``compiled`` when the
    C++ kernel builds and loads."""
    return ["compiled", "torch"] if bi_wkv_backend_status("cpu")[0] == "compiled" else ["torch"]


def _use_kernel(t: Tensor, backend: str | None, generic: bool) -> bool:
    """Whether a call runs through the compiled kernel. ``generic``: the caller asked for no
    particular pure-PyTorch method or chunk length."""
    choice = _env_backend() if backend is None else backend
    if choice not in BACKENDS:
        raise ValueError(f"bi_wkv: backend must be one of {', '.join(BACKENDS)}, not {choice!r}")
    if choice == "torch" or torch.jit.is_tracing() or t.device.type == "meta":
        return False
    usable = _bi_wkv_kernel.backend_for(t.device) is not None
    if choice == "compiled" and not usable:
        raise ValueError(
            f"bi_wkv: backend='compiled' but no compiled kernel runs on {t.device}: "
            f"{bi_wkv_backend_status(t.device)[1]}"
        )
    return usable and (generic or choice == "compiled")


def bi_wkv(
    k: Tensor,
    v: Tensor,
    w: Tensor,
    u: Tensor,
    *,
    method: str = "auto",
    chunk: int | None = None,
    channels_first: bool = False,
    backend: str | None = None,
) -> Tensor:
    """Bi-WKV of ``k``, ``v`` (B, T, C) with per-channel decay ``w`` and bonus ``u`` (C,).

    Returns (B, T, C) in the dtype of ``v``. ``method``: ``"scaled"`` (one scale per batch and
    channel; about twice as fast, exact while |w|·T <= 20 and |u| <= 20 in float32, which covers
    the model), ``"general"`` (per-position offsets and chunking: exact for any input), or
    ``"auto"`` (scaled where it is exact, general elsewhere). ``chunk`` forces the general
    path's chunk length (tests, benchmarks). ``channels_first=True`` takes and returns
    (B, C, T) instead (no transposes on any path). ``backend``: ``"auto"`` (the compiled kernel
    where it runs, unless ``method`` or ``chunk`` asks for a pure-PyTorch path), ``"compiled"``
    (an error where it does not run), ``"torch"``; default: ``$RESYN_BI_WKV`` or ``"auto"``.
    """
    if method not in METHODS:
        raise ValueError(f"bi_wkv: method must be one of {', '.join(METHODS)}, not {method!r}")
    _validate(k, v, w, u, channels_first)
    out_dtype = v.dtype
    cdt = accumulation_dtype(v.dtype)
    T = v.shape[-1] if channels_first else v.shape[1]
    if v.numel() == 0 or v.device.type == "meta":
        # meta tensors carry shapes only (FLOP counting, shape inference): nothing to compute
        return torch.empty_like(v)
    if _use_kernel(v, backend, method == "auto" and chunk is None):
        kk, vv = (x.to(v.dtype) for x in (k, v))
        if not channels_first:
            kk, vv = kk.transpose(1, 2), vv.transpose(1, 2)
        return _bi_wkv_kernel.wkv(kk, vv, w.to(cdt)[None], u.to(cdt)[None], 0, not channels_first)
    k, v, w, u = k.to(cdt), v.to(cdt), w.to(cdt), u.to(cdt)
    tracing = torch.jit.is_tracing() or torch.compiler.is_compiling()
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (k, v, w, u))
    scaled = (
        not tracing
        and method != "general"
        and chunk is None
        and _bi_wkv_scaled.fits(w, u, T, backward=needs_grad)
    )
    if method == "scaled" and not scaled and not tracing:
        raise ValueError(
            "bi_wkv: method='scaled' needs |w|·T <= 20 and |u| <= 20 (float32) and, with "
            "gradients, T <= 2^18; use method='general' or 'auto'"
        )
    if scaled:
        y = _bi_wkv_scaled.ScaledBiWKVFunction.apply(k, v, w, u, channels_first)
        return y.to(out_dtype)
    kt = k.transpose(1, 2) if channels_first else k
    vt = v.transpose(1, 2) if channels_first else v
    kt, vt = kt.contiguous(), vt.contiguous()
    if tracing:
        # Graph capture (ONNX export, torch.compile): no autograd.Function, no branches on
        # values or lengths; exact in the model's range (|w|·T <= 30).
        y = traceable_forward(kt, vt, w, u)
    else:
        y = BiWKVFunction.apply(kt, vt, w, u, chunk_length(w, T, chunk))
    y = y.transpose(1, 2) if channels_first else y
    return y.to(out_dtype)


def _validate(k: Tensor, v: Tensor, w: Tensor, u: Tensor, channels_first: bool = False) -> None:
    """Check the inputs as given (before any transpose), naming the layout the caller used."""
    names = {"k": k, "v": v, "w": w, "u": u}
    for name, t in names.items():
        if not isinstance(t, Tensor):
            raise ValueError(f"bi_wkv: {name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise ValueError(f"bi_wkv: {name} must be a floating-point tensor, got {t.dtype}")
    layout = "(B, C, T)" if channels_first else "(B, T, C)"
    if k.dim() != 3 or v.dim() != 3:
        raise ValueError(
            f"bi_wkv: k and v must have shape {layout}"
            + (" (channels_first=True)" if channels_first else "")
            + f"; got k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if k.shape != v.shape:
        raise ValueError(
            f"bi_wkv: k {tuple(k.shape)} and v {tuple(v.shape)} differ in shape {layout}"
        )
    C = v.shape[1] if channels_first else v.shape[-1]
    for name, t in (("w", w), ("u", u)):
        if t.dim() != 1 or t.shape[0] != C:
            raise ValueError(
                f"bi_wkv: {name} must have shape ({C},) (C of {layout}), got {tuple(t.shape)}"
            )
    devices = {t.device for t in names.values()}
    if len(devices) > 1:
        found = ", ".join(f"{n} on {t.device}" for n, t in names.items())
        raise ValueError(f"bi_wkv: all inputs must be on one device; got {found}")
    # w and u are per-channel (C values): checking them costs nothing next to the scans. Meta
    # tensors have no values, and graph capture must not branch on data.
    if w.device.type != "meta" and not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
        for name, t in (("w", w), ("u", u)):
            if not bool(torch.isfinite(t.detach()).all()):
                raise ValueError(f"bi_wkv: {name} contains NaN or Inf")


def cross_bi_wkv(
    k: Tensor,
    v: Tensor,
    w: tuple[Tensor, Tensor],
    u: tuple[Tensor, Tensor],
    hw: tuple[int, int],
    *,
    backend: str | None = None,
) -> Tensor:
    """Cross-Bi-WKV: Bi-WKV over row-major tokens plus Bi-WKV over column-major tokens.

    ``k``, ``v``: (B, C, H·W) channels-first, row-major over the H x W grid ``hw``; ``w``, ``u``:
    (horizontal, vertical) per-channel decays and bonuses, each (C,). Returns the sum as (B, H·W, C)
    tokens. The compiled kernel reads both orders in place; the pure-PyTorch path transposes the
    grid for the vertical branch.
    """
    H, W = hw
    _validate(k, v, w[0], u[0], channels_first=True)
    _validate(k, v, w[1], u[1], channels_first=True)
    if k.shape[-1] != H * W:
        raise ValueError(f"cross_bi_wkv: T = {k.shape[-1]} is not H x W = {H} x {W}")
    if v.numel() == 0 or v.device.type == "meta":
        return torch.empty_like(v).transpose(1, 2)
    cdt = accumulation_dtype(v.dtype)
    if _use_kernel(v, backend, True):
        ws = torch.stack([x.to(cdt) for x in w])
        us = torch.stack([x.to(cdt) for x in u])
        return _bi_wkv_kernel.wkv(k.to(v.dtype), v, ws, us, H, True)
    pure = "torch"
    y = bi_wkv(k, v, w[0], u[0], channels_first=True, backend=pure)
    yv = bi_wkv(
        transpose_grid(k, H, W),
        transpose_grid(v, H, W),
        w[1],
        u[1],
        channels_first=True,
        backend=pure,
    )
    return (y + transpose_grid(yv, W, H)).transpose(1, 2)
