"""Bi-WKV in pure PyTorch: O(T·C) time and memory, exact up to floating-point rounding.

Notation (per batch b and channel c, sequence positions 0..T-1, r = exp(-w)):

    y_t = (F_{t-1}[v] + G_{t+1}[v] + e^{u+k_t} v_t) / (F_{t-1}[1] + G_{t+1}[1] + e^{u+k_t})

    F_t[x] = Σ_{i<=t} e^{k_i} r^{t-i} x_i      (forward scan, inclusive)
    G_t[x] = Σ_{i>=t} e^{k_i} r^{i-t} x_i      (backward scan, inclusive)

which is the Vision-RWKV formula with the distance weight exp(-(|t-i|-1)·w) split into the two
directions. Each scan is a cumulative sum of ``exp(k_i + i·w)·x_i`` rescaled by ``exp(-t·w)``.

Range: the terms can span hundreds of orders of magnitude (|w·T| up to 50, k in ±20, and
beyond), so every scan returns a *mantissa* and a log *offset* (value = mantissa · e^offset),
with offsets taken from running maxima; nothing is exponentiated until the three parts of a
ratio are put on a common offset. The sequence is cut into chunks short enough that
|w|·chunk <= ``_MAX_CHUNK_EXPONENT`` (30 in float32); a single chunk covers the whole sequence
whenever that holds (as it does in the model at initialisation, where w = decay / T with
|decay| <= 5), and a carry in (mantissa, offset) form links chunks otherwise, one small step per
chunk.

Gradients are written by hand (``BiWKVFunction.backward``) so that memory stays O(T·C): the
backward pass re-runs the scans and adds scans of α_t = g_t / D_t, using

    ∂L/∂v_i = e^{k_i} (Zα_i + e^u α_i)             Zα_i = F_{i-1}[α] + G_{i+1}[α] (k -> -log D)
    ∂L/∂k_i = e^{k_i} (v_i Zα_i − Z(αy)_i) + e^{u+k_i} α_i (v_i − y_i)
    ∂L/∂u   = Σ_t e^{u+k_t} α_t (v_t − y_t)
    ∂L/∂w   = −r Σ_t [G_{t+1}[α] F_{t-1}[v] − G_{t+1}[αy] F_{t-1}[1]
                      + F_{t-1}[α] G_{t+1}[v] − F_{t-1}[αy] G_{t+1}[1]]

(the last from the adjoint of the recurrences F_t = r F_{t-1} + e^{k_t} x_t and its mirror).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from resyn.ops._bi_wkv_refine import Guard, float64_grads

# Largest |w|·(chunk length), by compute dtype. A term whose scaled weight e^{k_i + j·w − max}
# underflows (below e^-87 in float32, e^-708 in float64) weighs at most e^{2·|w|·L} times that
# in any denominator, so these bounds keep every flushed term below ~e^-27 (float32) and
# e^-108 (float64) of the result.
_MAX_CHUNK_EXPONENT = {torch.float32: 30.0, torch.float64: 300.0}


def chunk_length(w: Tensor, T: int, requested: int | None = None) -> int:
    """The scan's chunk length: the whole sequence unless |w| is large (or one is requested)."""
    if requested is not None:
        return max(1, min(int(requested), T))
    wmax = float(w.detach().abs().max()) if w.numel() else 0.0
    if not math.isfinite(wmax):
        raise ValueError("bi_wkv: w contains NaN or Inf")
    bound = _MAX_CHUNK_EXPONENT.get(w.dtype, _MAX_CHUNK_EXPONENT[torch.float32])
    if wmax * T <= bound:
        return T
    return max(1, min(T, int(bound / wmax)))


# Cumulative sums run as small triangular matmuls over blocks of this many positions (BLAS is
# far faster than a scalar scan), plus a cumulative sum over the block totals.
_BLOCK = 64


def _triangle(b: int, reverse: bool, like: Tensor) -> Tensor:
    ones = torch.ones(b, b, dtype=like.dtype, device=like.device)
    # forward: S_j = Σ_{j'<j} P_j'  (strictly lower);  reverse: S_j = Σ_{j'>j} P_j'
    return torch.triu(ones, diagonal=1) if reverse else torch.tril(ones, diagonal=-1)


def exclusive_cumsum(P: Tensor, reverse: bool) -> Tensor:
    """Exclusive cumulative sum along dim 1 of a (R, L, K) tensor (from the end if reverse)."""
    R, L, K = P.shape
    b = min(_BLOCK, L)
    nb = -(-L // b)
    if nb * b != L:
        P = torch.nn.functional.pad(P, (0, 0, 0, nb * b - L))
    Pb = P.view(R, nb, b, K)
    out = torch.matmul(_triangle(b, reverse, P), Pb)
    if nb > 1:
        tot = Pb.sum(dim=2)  # (R, nb, K)
        if reverse:
            run = torch.cumsum(tot.flip(1), dim=1).flip(1)
            before = torch.nn.functional.pad(run[:, 1:], (0, 0, 0, 1))
        else:
            run = torch.cumsum(tot, dim=1)
            before = torch.nn.functional.pad(run[:, :-1], (0, 0, 1, 0))
        out += before.unsqueeze(2)
    return out.view(R, nb * b, K)[:, :L]


def scan(logw: Tensor, xs: Tensor, w: Tensor, L: int, reverse: bool) -> tuple[Tensor, Tensor]:
    """Exclusive decayed scan along dim 1, as (mantissa, offset).

    ``logw``: (B, T, C) log weights ℓ_i; ``xs``: (B, T, C, X) values (X scans share ℓ);
    ``w``: (C,). Returns ``mant`` (B, T, C, X) and ``off`` (B, T, C) with

        forward: Σ_{i<t} e^{ℓ_i − (t−1−i)·w} xs_i = mant_t · e^{off_t}   (F_{t−1})
        reverse: Σ_{i>t} e^{ℓ_i − (i−t−1)·w} xs_i = mant_t · e^{off_t}   (G_{t+1})
    """
    B, T, C = logw.shape
    X = xs.shape[-1]
    n_chunks = -(-T // L)
    pad = n_chunks * L - T
    if pad:
        logw = torch.nn.functional.pad(logw, (0, 0, 0, pad), value=-math.inf)
        xs = torch.nn.functional.pad(xs, (0, 0, 0, 0, 0, pad))
    sign = -1.0 if reverse else 1.0
    jw = torch.arange(L, device=w.device, dtype=torch.float64)[:, None] * w.to(torch.float64)
    jw = jw.to(logw.dtype)  # (L, C): products rounded once
    E = logw.view(B, n_chunks, L, C) + sign * jw
    m = E.amax(dim=2, keepdim=True)  # (B, N, 1, C)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # chunks of padding only
    P = torch.exp(E - m).unsqueeze(-1) * xs.view(B, n_chunks, L, C, X)
    mant = exclusive_cumsum(P.view(B * n_chunks, L, C * X), reverse).view(P.shape)
    if n_chunks > 1:
        totals = P.sum(dim=2)  # (B, N, C, X)
        mant, m = _link_chunks(mant, m, totals, w, L, reverse)
    # forward: e^{m − (j−1)·w};  reverse: e^{m + (j+1)·w}
    off = m - sign * (jw - sign * w.to(logw.dtype))
    mant = mant.view(B, n_chunks * L, C, X)[:, :T]
    off = off.reshape(B, n_chunks * L, C)[:, :T]
    # An empty sum (the first position, or everything before it underflowed) has no scale:
    # offset −inf, so that 0·e^{offset} can never become 0·inf.
    off = torch.where((mant == 0).all(dim=-1), -math.inf, off)
    return mant, off


def _link_chunks(
    mant: Tensor, m: Tensor, totals: Tensor, w: Tensor, L: int, reverse: bool
) -> tuple[Tensor, Tensor]:
    """Add the carry from the chunks before (after, if reverse) to each chunk's local sums.

    Forward: the carry entering chunk n is H_n = Σ_{i < start_n} e^{ℓ_i − (start_n − i)·w} x_i,
    held as h·e^{c}, with H_{n+1} = e^{−L·w} (H_n + e^{m_n} total_n); it reaches local position
    j with weight e^{−(j−1)·w}, like the local sums rescaled by e^{m_n}. Reverse mirrors it.
    """
    B, N, _, C, X = mant.shape
    Lw = (w.to(torch.float64) * L).to(mant.dtype)  # (C,)
    h = torch.zeros(B, C, X, dtype=mant.dtype, device=mant.device)
    c = torch.full((B, C), -math.inf, dtype=mant.dtype, device=mant.device)
    carries_h: list[Tensor] = [h] * N
    carries_c: list[Tensor] = [c] * N
    order = range(N - 1, -1, -1) if reverse else range(N)
    for n in order:
        # The carry's scale as seen from chunk n: the reverse carry H'_n (sum from the end of
        # chunk n) reaches it through one more chunk of decay.
        eff = c - Lw if reverse else c
        carries_h[n], carries_c[n] = h, eff
        mn = m[:, n, 0]  # (B, C)
        top = torch.maximum(eff, mn)
        h = h * torch.exp(eff - top).unsqueeze(-1) + totals[:, n] * torch.exp(mn - top).unsqueeze(
            -1
        )
        # forward: H_{n+1} = e^{−L·w}(H_n + e^{m_n} total_n); reverse: H'_{n−1} = e^{m_n} total_n + e^{−L·w} H'_n
        c = top if reverse else top - Lw
    H = torch.stack(carries_h, dim=1)  # (B, N, C, X)
    Cc = torch.stack(carries_c, dim=1)  # (B, N, C)
    m0 = m[:, :, 0]
    top = torch.maximum(Cc, m0)
    mant = (
        mant * torch.exp(m0 - top)[:, :, None, :, None]
        + H[:, :, None] * torch.exp(Cc - top)[:, :, None, :, None]
    )
    return mant, top[:, :, None, :]


def two_sided(logw: Tensor, xs: Tensor, w: Tensor, L: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """F_{t-1}[xs] and G_{t+1}[xs] as (mantissa, offset) pairs."""
    fm, fo = scan(logw, xs, w, L, reverse=False)
    gm, go = scan(logw, xs, w, L, reverse=True)
    return fm, fo, gm, go


def _scales(
    fm: Tensor, fo: Tensor, gm: Tensor, go: Tensor, do: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Put the two scans and the diagonal term on a common offset.

    The offset is the log of the largest of the three denominator parts (mantissa included), so
    the denominator ends up in [1, 3] and no part under- or overflows when it matters.
    ``fm``/``gm`` hold the value scans in [..., 0] and the weight (denominator) scans in [..., 1].
    Returns the scale factors e^{offset − top} of the three parts and ``top``.
    """
    lf = fo + torch.log(fm[..., 1])
    lg = go + torch.log(gm[..., 1])
    top = torch.maximum(torch.maximum(lf, lg), do)
    sf = torch.exp(fo - top)
    sg = torch.exp(go - top)
    sd = torch.exp(do - top)
    return sf, sg, sd, top


def bi_wkv_forward(k: Tensor, v: Tensor, w: Tensor, u: Tensor, L: int) -> tuple[Tensor, Tensor]:
    """y and log D (the log of the denominator), both in the dtype of ``k``."""
    fm, fo, gm, go = two_sided(k, torch.stack([v, torch.ones_like(v)], dim=-1), w, L)
    sf, sg, sd, top = _scales(fm, fo, gm, go, u + k)
    num = fm[..., 0] * sf + gm[..., 0] * sg + v * sd
    den = fm[..., 1] * sf + gm[..., 1] * sg + sd
    return num / den, top + torch.log(den)


def bi_wkv_backward(
    k: Tensor,
    v: Tensor,
    w: Tensor,
    u: Tensor,
    y: Tensor,
    log_den: Tensor,
    g: Tensor,
    L: int,
    guard: Guard | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    B = k.shape[0]
    reduce_dims = (0, 1)
    # One stacked scan: the values' scans (recomputed rather than stored, so memory stays
    # O(T·C)) and the scans of α = g / D and α·y (log weights −log D, values g and g·y).
    fm, fo, gm, go = two_sided(
        torch.cat([k, -log_den], dim=0),
        torch.cat(
            [torch.stack([v, torch.ones_like(v)], dim=-1), torch.stack([g, g * y], dim=-1)],
            dim=0,
        ),
        w,
        L,
    )
    vf, vfo, vg, vgo = fm[:B], fo[:B], gm[:B], go[:B]
    af, afo, ag, ago = fm[B:], fo[B:], gm[B:], go[B:]

    diag = torch.exp(u + k - log_den)  # e^{u+k_t} / D_t  (<= 1)
    # v − y from the off-diagonal parts, (v·Σ_{i≠t}K_ti − Σ_{i≠t}K_ti v_i) / D_t, which keeps its
    # relative precision when the diagonal dominates and y ≈ v (plain v − y would cancel).
    ef = torch.exp(vfo - log_den)
    eg = torch.exp(vgo - log_den)
    v_minus_y = v * (vf[..., 1] * ef + vg[..., 1] * eg) - (vf[..., 0] * ef + vg[..., 0] * eg)
    # e^{k_i}·Zα_i and e^{k_i}·Z(αy)_i: exponents k + offset stay bounded (ratios to D).
    z = af * torch.exp(k + afo).unsqueeze(-1) + ag * torch.exp(k + ago).unsqueeze(-1)
    grad_v = z[..., 0] + diag * g
    v_za = v * z[..., 0]
    if guard is not None:
        guard.add(v_za, z[..., 1])
    grad_k = v_za - z[..., 1] + diag * g * v_minus_y
    if guard is not None:
        guard.add_result(grad_k)
    grad_u = (diag * g * v_minus_y).sum(dim=reduce_dims)

    # ∂L/∂w from the adjoint of both recurrences; products of two bounded-ratio scans.
    s = (ag[..., 0] * vf[..., 0] - ag[..., 1] * vf[..., 1]) * torch.exp(ago + vfo)
    s = s + (af[..., 0] * vg[..., 0] - af[..., 1] * vg[..., 1]) * torch.exp(afo + vgo)
    grad_w = -torch.exp(-w) * s.sum(dim=reduce_dims)
    return grad_k, grad_v, grad_w, grad_u


def traceable_forward(k: Tensor, v: Tensor, w: Tensor, u: Tensor) -> Tensor:
    """The forward pass as a straight-line graph for tracers (ONNX export, torch.compile).

    One chunk (exact while |w|·T <= 30 in float32, the model's range) and ``torch.cumsum``
    (ONNX ``CumSum``) instead of the blocked matmuls, whose block count depends on T.
    """
    T = k.shape[1]
    jw = torch.arange(T, device=k.device, dtype=k.dtype)[:, None] * w  # (T, C)

    def scan(sign: float) -> tuple[Tensor, Tensor, Tensor]:
        E = k + sign * jw
        m = E.amax(dim=1, keepdim=True)
        P = torch.exp(E - m)
        pv = P * v
        if sign > 0:  # exclusive: shift the inclusive sums right by one
            cs = torch.nn.functional.pad(
                torch.cumsum(torch.stack([pv, P], -1), 1), (0, 0, 0, 0, 1, 0)
            )[:, :-1]
        else:
            rev = torch.cumsum(torch.stack([pv, P], -1).flip(1), 1).flip(1)
            cs = torch.nn.functional.pad(rev, (0, 0, 0, 0, 0, 1))[:, 1:]
        off = m - sign * (jw - sign * w)
        return cs[..., 0], cs[..., 1], off

    fv, f1, fo = scan(1.0)
    gv, g1, go = scan(-1.0)
    fm, gm = torch.stack([fv, f1], -1), torch.stack([gv, g1], -1)
    sf, sg, sd, _ = _scales(fm, fo, gm, go, u + k)
    return (fv * sf + gv * sg + v * sd) / (f1 * sf + g1 * sg + sd)


class BiWKVFunction(torch.autograd.Function):
    """Autograd wrapper; inputs already validated and cast to the compute dtype."""

    @staticmethod
    def forward(ctx, k: Tensor, v: Tensor, w: Tensor, u: Tensor, L: int) -> Tensor:  # type: ignore[override]
        y, log_den = bi_wkv_forward(k, v, w, u, L)
        ctx.save_for_backward(k, v, w, u, y, log_den)
        ctx.chunk = L
        return y

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        k, v, w, u, y, log_den = ctx.saved_tensors
        guard = Guard()
        g = g.contiguous()
        gk, gv, gw, gu = bi_wkv_backward(k, v, w, u, y, log_den, g, ctx.chunk, guard)
        if guard.cancelled(k.dtype):
            return (*float64_grads(k, v, w, u, g, channels_first=False), None)
        return gk, gv, gw, gu, None
