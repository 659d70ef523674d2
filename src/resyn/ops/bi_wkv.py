"""``bi_wkv``: the bidirectional WKV attention of Vision-RWKV / RWKV-IR in O(T·C).

For every batch b, channel c and position t of a length-T sequence:

    y_t = ( Σ_{i≠t} exp(−(|t−i|−1)·w + k_i)·v_i + exp(u + k_t)·v_t )
        / ( Σ_{i≠t} exp(−(|t−i|−1)·w + k_i)     + exp(u + k_t) )

``w`` and ``u`` are per-channel (the model passes decay / T and first / T). The computation
never forms a T×T matrix: see ``resyn.ops._bi_wkv_torch`` for the algorithm, which runs on every
device PyTorch supports. Inputs in bf16/fp16 are computed in float32 and returned in their dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

from resyn.ops import _bi_wkv_scaled
from resyn.ops._bi_wkv_torch import BiWKVFunction, chunk_length, traceable_forward

METHODS = ("auto", "scaled", "general")

_BACKENDS = ("torch",)


def bi_wkv_backends() -> list[str]:
    """The implementations available on this machine (``torch`` always)."""
    return list(_BACKENDS)


def _compute_dtype(v: Tensor) -> torch.dtype:
    if v.dtype == torch.float64:
        return torch.float64
    return torch.float32


def bi_wkv(
    k: Tensor,
    v: Tensor,
    w: Tensor,
    u: Tensor,
    *,
    method: str = "auto",
    chunk: int | None = None,
    channels_first: bool = False,
) -> Tensor:
    """Bi-WKV of ``k``, ``v`` (B, T, C) with per-channel decay ``w`` and bonus ``u`` (C,).

    Returns (B, T, C) in the dtype of ``v``. ``method``: ``"scaled"`` (one scale per batch and
    channel; about twice as fast, exact while |w|·T <= 20 and |u| <= 20 in float32, which covers
    the model), ``"general"`` (per-position offsets and chunking: exact for any input), or
    ``"auto"`` (scaled where it is exact, general elsewhere). ``chunk`` forces the general
    path's chunk length (tests, benchmarks). ``channels_first=True`` takes and returns
    (B, C, T) instead, the layout the scaled path works in (no transposes).
    """
    if method not in METHODS:
        raise ValueError(f"bi_wkv: method must be one of {', '.join(METHODS)}, not {method!r}")
    _validate(k, v, w, u, channels_first)
    out_dtype = v.dtype
    cdt = _compute_dtype(v)
    T = v.shape[-1] if channels_first else v.shape[1]
    if v.numel() == 0 or v.device.type == "meta":
        # meta tensors carry shapes only (FLOP counting, shape inference): nothing to compute
        return torch.empty_like(v)
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
