"""Bi-WKV through a compiled backend, as ``torch.library`` custom ops.

``wkv(k, v, w, u, grid_h, tokens_out)`` sums one or two Bi-WKV branches over the same k and v
(B, C, T): branch 0 runs along T in order; branch 1 (when ``w`` has two rows) runs column-major
over the (grid_h, T / grid_h) grid that T holds row-major, which is Cross-Bi-WKV's vertical
branch read in place. The result is (B, T, C) tokens when ``tokens_out`` (the layout the model's
LayerNorm reads next), else (B, C, T). Backends: the C++ kernel on the CPU
(``_bi_wkv_cpp``), Triton on CUDA (``_bi_wkv_triton``), chosen by the tensors' device.

As custom ops with fake (meta) implementations and a registered autograd formula, the calls are
opaque nodes that ``torch.compile`` traces around. The backward applies the cancellation guard
of ``_bi_wkv_refine`` per branch: when float32 rounding may exceed its target for ∂L/∂k, every
gradient of the call is recomputed in float64 (with the same backend where it computes in
float64, else with the pure-PyTorch formulas).
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor

from resyn.ops._bi_wkv_refine import ROUNDING_UNITS, TARGET


def backend_for(device: torch.device) -> ModuleType | None:
    """The compiled backend module for tensors on ``device`` when it is usable, else None."""
    if device.type == "cpu":
        from resyn.ops import _bi_wkv_cpp

        return _bi_wkv_cpp if _bi_wkv_cpp.available()[0] else None
    if device.type == "cuda":
        try:
            from resyn.ops import _bi_wkv_triton
        except ImportError:
            return None
        return _bi_wkv_triton if _bi_wkv_triton.available()[0] else None
    return None


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """What every Bi-WKV path computes in: float64 for float64 inputs, float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def transpose_grid(x: Tensor, H: int, W: int) -> Tensor:
    """(B, C, H·W) row-major over an H x W grid -> column-major (row-major over W x H)."""
    B, C, T = x.shape
    return x.view(B, C, H, W).transpose(2, 3).reshape(B, C, T)


def _saved_specs(
    n: int, B: int, C: int, T: int, device: torch.device, dtype: torch.dtype
) -> list[tuple[tuple[int, ...], torch.dtype]]:
    """Shapes and dtypes of the three saved tensors (n branches stacked). CPU: y, top and den
    (16-channel blocks, accumulation dtype). CUDA (Triton): y (float32), log D (float64) and
    an unused empty third."""
    if device.type == "cpu":
        from resyn.ops._bi_wkv_cpp import saved_shape

        shape = (n, *saved_shape(B, C, T))
        return [(shape, accumulation_dtype(dtype))] * 3
    return [((n, B, C, T), torch.float32), ((n, B, C, T), torch.float64), ((0,), torch.float32)]


def _branch_forward(backend, k, v, w, u, grid, out, add, into) -> None:
    """One branch through ``backend``, its saved tensors written into ``into`` (or None)."""
    if _on_cpu(k):
        backend.forward(k, v, w, u, grid, out, add, into)
        return
    saved = backend.forward(k, v, w, u, grid, out, add, into is not None)
    if into is not None:
        into[0].copy_(saved[0])
        into[1].copy_(saved[1])


def _branch_saved(k: Tensor, saved: tuple[Tensor, Tensor, Tensor], i: int) -> tuple:
    ys, top, den = saved
    return (ys[i], top[i], den[i]) if _on_cpu(k) else (ys[i], top[i])


def _on_cpu(t: Tensor) -> bool:
    return t.device.type == "cpu"


def _grid(branch: int, grid_h: int) -> int:
    return 0 if branch == 0 else grid_h


def _out_view(y: Tensor, tokens_out: bool) -> Tensor:
    return y.transpose(1, 2) if tokens_out else y


@torch.library.custom_op("resyn::wkv_forward", mutates_args=())
def wkv_forward(
    k: Tensor, v: Tensor, w: Tensor, u: Tensor, grid_h: int, tokens_out: bool, save: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """y (the sum of the branches) and, when ``save``, each branch's y, top and den."""
    B, C, T = k.shape
    n = w.shape[0]
    backend = backend_for(k.device)
    if backend is None:
        raise RuntimeError(f"resyn::wkv_forward: no compiled Bi-WKV backend for {k.device}")
    y = torch.empty((B, T, C) if tokens_out else (B, C, T), dtype=k.dtype, device=k.device)
    specs = _saved_specs(n, B, C, T, k.device, k.dtype)
    if not save:
        specs = [((0,), dt) for _, dt in specs]
    # The CPU layout pads channels to blocks of 16 that no task writes when C % 16 != 0:
    # zeros there keep the outputs deterministic.
    alloc = torch.zeros if save and C % 16 and _on_cpu(k) else torch.empty
    ys, top, den = (alloc(shape, dtype=dt, device=k.device) for shape, dt in specs)
    for i in range(n):
        into = _branch_saved(k, (ys, top, den), i) if save else None
        _branch_forward(
            backend,
            k,
            v,
            w[i].contiguous(),
            u[i].contiguous(),
            _grid(i, grid_h),
            _out_view(y, tokens_out),
            i > 0,
            into,
        )
    return y, ys, top, den


@wkv_forward.register_fake
def _(k, v, w, u, grid_h, tokens_out, save):
    B, C, T = k.shape
    y = k.new_empty((B, T, C) if tokens_out else (B, C, T))
    specs = _saved_specs(w.shape[0], B, C, T, k.device, k.dtype)
    saved = [k.new_empty(shape if save else (0,), dtype=dt) for shape, dt in specs]
    return y, *saved


@torch.library.custom_op("resyn::wkv_backward", mutates_args=())
def wkv_backward(
    k: Tensor,
    v: Tensor,
    w: Tensor,
    u: Tensor,
    grid_h: int,
    tokens_out: bool,
    grad: Tensor,
    ys: Tensor,
    top: Tensor,
    den: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """∂L/∂k, ∂L/∂v (B, C, T) and ∂L/∂w, ∂L/∂u (n, C) of ``wkv_forward``'s y."""
    backend = backend_for(k.device)
    if backend is None:
        raise RuntimeError(f"resyn::wkv_backward: no compiled Bi-WKV backend for {k.device}")
    grads = _backward(backend, k, v, w, u, grid_h, tokens_out, grad, (ys, top, den))
    if grads is None:  # cancellation: float64
        grads = _float64_backward(backend, k, v, w, u, grid_h, tokens_out, grad)
    gk, gv, gw, gu = grads
    return gk.to(k.dtype), gv.to(v.dtype), gw.to(w.dtype), gu.to(u.dtype)


@wkv_backward.register_fake
def _(k, v, w, u, grid_h, tokens_out, grad, ys, top, den):
    return torch.empty_like(k), torch.empty_like(v), torch.empty_like(w), torch.empty_like(u)


def _backward(backend, k, v, w, u, grid_h, tokens_out, grad, saved):
    """The backend's gradients, or None when the guard asks for float64."""
    B, C, T = k.shape
    n = w.shape[0]
    acc = accumulation_dtype(k.dtype)
    g = _out_view(grad.to(k.dtype), tokens_out)
    gk = torch.empty((B, C, T), dtype=acc, device=k.device)
    gv = torch.empty_like(gk)
    gw = torch.empty((n, C), dtype=torch.float64, device=k.device)
    gu = torch.empty_like(gw)
    eps = torch.finfo(acc).eps
    for i in range(n):
        gw_i, gu_i, term, gk_max = backend.backward(
            k,
            v,
            w[i].contiguous(),
            u[i].contiguous(),
            _grid(i, grid_h),
            g,
            _branch_saved(k, saved, i),
            gk,
            gv,
            i > 0,
        )
        if acc == torch.float32 and bool(ROUNDING_UNITS * eps * term > TARGET * gk_max):
            if bool(torch.isfinite(term)):
                return None
        gw[i], gu[i] = gw_i, gu_i
    return gk, gv, gw, gu


def _float64_backward(backend, k, v, w, u, grid_h, tokens_out, grad):
    """Every gradient of the call in float64 (the guard's fallback)."""
    k64, v64, w64, u64 = (t.to(torch.float64) for t in (k, v, w, u))
    if backend.FLOAT64:
        _, ys, top, den = wkv_forward(k64, v64, w64, u64, grid_h, tokens_out, True)
        out = _backward(backend, k64, v64, w64, u64, grid_h, tokens_out, grad, (ys, top, den))
        assert out is not None  # the guard never fires in float64
        return out
    return _torch_float64_backward(k64, v64, w64, u64, grid_h, tokens_out, grad)


def _torch_float64_backward(k, v, w, u, grid_h, tokens_out, grad):
    """The pure-PyTorch formulas (no autograd: safe inside a custom op), for backends without
    float64 kernels."""
    from resyn.ops._bi_wkv_torch import bi_wkv_backward, bi_wkv_forward, chunk_length

    T = k.shape[-1]
    g = _out_view(grad.to(torch.float64), tokens_out)
    gk, gv = torch.zeros_like(k), torch.zeros_like(v)
    gws, gus = [], []
    for i in range(w.shape[0]):
        H = _grid(i, grid_h)
        # branch 1 runs over the grid's columns: its sequence order is the transposed grid
        seq = [x if H == 0 else transpose_grid(x, H, T // H) for x in (k, v, g)]
        kt, vt, gt = (x.transpose(1, 2).contiguous() for x in seq)
        L = chunk_length(w[i], T)
        y, log_den = bi_wkv_forward(kt, vt, w[i], u[i], L)
        a, b, c, d = bi_wkv_backward(kt, vt, w[i], u[i], y, log_den, gt, L)
        a, b = a.transpose(1, 2), b.transpose(1, 2)
        gk += a if H == 0 else transpose_grid(a, T // H, H)
        gv += b if H == 0 else transpose_grid(b, T // H, H)
        gws.append(c)
        gus.append(d)
    return gk, gv, torch.stack(gws), torch.stack(gus)


def _setup_context(ctx, inputs, output) -> None:
    k, v, w, u, grid_h, tokens_out, _ = inputs
    _, ys, top, den = output
    ctx.save_for_backward(k, v, w, u, ys, top, den)
    ctx.grid_h = grid_h
    ctx.tokens_out = tokens_out
    ctx.mark_non_differentiable(ys, top, den)


def _backward_formula(ctx, gy, *_):
    k, v, w, u, ys, top, den = ctx.saved_tensors
    if ys.numel() == 0:
        raise RuntimeError("resyn::wkv_forward was called with save=False; no backward")
    gk, gv, gw, gu = wkv_backward(k, v, w, u, ctx.grid_h, ctx.tokens_out, gy, ys, top, den)
    return gk, gv, gw, gu, None, None, None


wkv_forward.register_autograd(_backward_formula, setup_context=_setup_context)


def wkv(k: Tensor, v: Tensor, w: Tensor, u: Tensor, grid_h: int, tokens_out: bool) -> Tensor:
    """Sum of the Bi-WKV branches of ``w``/``u`` (n, C) over k, v (B, C, T); see the module."""
    save = torch.is_grad_enabled() and any(t.requires_grad for t in (k, v, w, u))
    return wkv_forward(k, v, w, u, grid_h, tokens_out, save)[0]
