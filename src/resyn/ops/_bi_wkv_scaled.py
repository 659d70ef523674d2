"""The fast path of Bi-WKV for the range the model uses: one scale per (batch, channel).

When |w|·T and |u| are moderate (``fits``), every term of the formula can be written as

    e^{k_i − (|t−i|−1)·w} = e^{m} · P_i · e^{±i·w} · e^{∓t·w} · e^{w}     with P_i = e^{k_i − m} <= 1,

where m = max_i k_i. The factors e^{±i·w} and e^{∓t·w} stay within e^{±20}, so the scans need
no per-position offsets: y = num / den with the common e^{m} cancelled. This is about half the
element-wise work of the general path (``_bi_wkv_torch``), which handles every other input.
Formulas and the adjoint for ∂L/∂w are the same as there, in these units.

Range argument (float32): every scan value is at most T·e^{W} (W = max|w|·T) and every
denominator at least e^{−W} (the largest k reaches every position with weight >= e^{−W}), so the
largest intermediate, a product of two scans in ∂L/∂w, is below T²·e^{3W}; with W <= 20 and
T <= 2^18 that is below e^{86} < float32's e^{88.7}. Terms that underflow in P (k more than 87
below the maximum) weigh at most e^{−87+W} of the result.
"""

from __future__ import annotations

import torch
from torch import Tensor

from resyn.ops._bi_wkv_refine import Guard, float64_grads

MAX_W_T = {torch.float32: 20.0, torch.float64: 200.0}
MAX_U = {torch.float32: 20.0, torch.float64: 200.0}
MAX_T = {torch.float32: 2**18, torch.float64: 2**40}


def fits(w: Tensor, u: Tensor, T: int, backward: bool = True) -> bool:
    """Whether the single-scale path is exact for these decays and bonuses.

    The length limit only concerns the backward pass (its ∂L/∂w products grow with T²); the
    forward pass alone is exact at any length.
    """
    dtype = w.dtype if w.dtype in MAX_W_T else torch.float32
    if backward and T > MAX_T[dtype]:
        return False
    wmax = float(w.detach().abs().max()) if w.numel() else 0.0
    umax = float(u.detach().abs().max()) if u.numel() else 0.0
    return wmax * T <= MAX_W_T[dtype] and umax <= MAX_U[dtype]


# Cumulative sums run as one GEMM against a triangular block matrix (16 wide: measured faster
# than 32 or 64 at the model's shapes, 0.16 s vs 0.23 s per forward+backward): rows are (batch, channel,
# block) with the positions of a block contiguous, so BLAS sees a single large product.
_BLOCK = 16


def _tri(b: int, reverse: bool, like: Tensor) -> Tensor:
    """M with (P @ M)_j = Σ_{j'<j} P_j' (forward) or Σ_{j'>j} P_j' (reverse)."""
    ones = torch.ones(b, b, dtype=like.dtype, device=like.device)
    return torch.tril(ones, diagonal=-1) if reverse else torch.triu(ones, diagonal=1)


def exclusive_cumsum_last(P: Tensor, reverse: bool) -> Tensor:
    """Exclusive cumulative sum along the last dim of a contiguous (..., T) tensor."""
    shape = P.shape
    T = shape[-1]
    rows = P.reshape(-1, T)
    b = min(_BLOCK, T)
    nb = -(-T // b)
    if nb * b != T:
        rows = torch.nn.functional.pad(rows, (0, nb * b - T))
    R = rows.shape[0]
    blocks = rows.view(R * nb, b)
    out = (blocks @ _tri(b, reverse, P)).view(R, nb, b)
    if nb > 1:
        tot = blocks.sum(dim=1).view(R, nb)
        if reverse:
            run = torch.cumsum(tot.flip(1), dim=1).flip(1)
            before = torch.nn.functional.pad(run[:, 1:], (0, 1))
        else:
            run = torch.cumsum(tot, dim=1)
            before = torch.nn.functional.pad(run[:, :-1], (1, 0))
        out += before.unsqueeze(2)
    return out.view(R, nb * b)[:, :T].reshape(shape)


class PositionFactors:
    """e^{i·w} and e^{−i·w} for the positions of a segment, shape (C, L).

    A table for i = 0..L−1 is made once per call (i·w formed in float64, exact, and rounded
    once); a segment starting at s multiplies it by e^{±s·w} (also from float64), which costs
    one product per element instead of an exponential and adds at most one rounding
    (|i·w| <= 20 here, so a weight moves by at most ~2e-7 relative in float32).
    """

    def __init__(self, w: Tensor, length: int, dtype: torch.dtype):
        self.w64 = w.detach().to(torch.float64)
        i = torch.arange(length, device=w.device, dtype=torch.float64)
        self.ef = torch.exp((self.w64[:, None] * i).to(dtype))
        self.eb = torch.reciprocal(self.ef)
        self.dtype = dtype

    def at(self, start: int, length: int) -> tuple[Tensor, Tensor]:
        ef, eb = self.ef[:, :length], self.eb[:, :length]
        if start == 0:
            return ef, eb
        shift = self.w64 * start
        return (
            ef * torch.exp(shift).to(self.dtype)[:, None],
            eb * torch.exp(-shift).to(self.dtype)[:, None],
        )


# Internally everything is channels-first, (B, C, L), so that scans run along contiguous rows.
# The sequence is cut into segments of about _SEGMENT_BYTES per (B, C, L) array (never shorter
# than _MIN_SEGMENT): each segment's dozen work arrays stay in the CPU caches and are reused by
# the allocator, and a (B, T, C) input is read in contiguous (B, L, C) blocks instead of being
# transposed whole. The single scale m (per batch and channel, over the whole sequence) makes
# the carry between segments a plain sum. Forward: a left-to-right sweep carries the forward
# scan and parks its part of the result in the outputs, a right-to-left sweep adds the reverse
# scan (``_forward_sweeps``). Backward: a first pass sums each segment's terms, and the prefix
# and suffix sums of those totals are the carries the second pass adds to each segment's scans.
# When one batch element's whole sequence fits a segment, the batch is cut instead
# (``batch_groups``): groups of whole sequences need no carries and no first pass.
_SEGMENT_BYTES = 1 << 20
_MIN_SEGMENT = 256


def segment_length(B: int, C: int, T: int, itemsize: int) -> int:
    size = _SEGMENT_BYTES // max(1, B * C * itemsize)
    size = max(_MIN_SEGMENT, size // _BLOCK * _BLOCK)
    return T if size >= T else size


class _Layout:
    """Reads and writes (B, C, L) segments of a (B, T, C) or (B, C, T) tensor."""

    def __init__(self, channels_first: bool):
        self.cf = channels_first

    def view(self, x: Tensor, s: int, e: int) -> Tensor:
        """The segment as a (B, C, L) view (strided; written to with ``out=``)."""
        return x[:, :, s:e] if self.cf else x[:, s:e, :].transpose(1, 2)

    def get(self, x: Tensor, s: int, e: int) -> Tensor:
        """The segment for reading: channels-first rows are used in place (element-wise ops
        take strided rows at full speed); (B, T, C) blocks are transposed into a copy."""
        return self.view(x, s, e) if self.cf else self.view(x, s, e).contiguous()

    def put(self, out: Tensor, s: int, e: int, value: Tensor) -> None:
        self.view(out, s, e).copy_(value)

    def scale(self, k: Tensor) -> Tensor:
        """m = max over positions of k, shape (B, C, 1)."""
        return (k.amax(dim=-1) if self.cf else k.amax(dim=1)).unsqueeze(-1)


def _carries(totals: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
    """Per segment, the sum of the forward terms of the segments before it and of the reverse
    terms of the segments after it. ``totals[j]`` is (2, n, B, C): [forward, reverse] sums."""
    t = torch.stack(totals)  # (S, 2, n, B, C)
    fwd = torch.cumsum(t[:, 0], dim=0) - t[:, 0]
    rev = torch.flip(torch.cumsum(torch.flip(t[:, 1], (0,)), dim=0), (0,)) - t[:, 1]
    return list(fwd.unbind(0)), list(rev.unbind(0))


def _weighted_pair(P: Tensor, factor: Tensor, v: Tensor) -> Tensor:
    """[P·factor·v, P·factor] as one (2, B, C, L) buffer, written in place."""
    buf = torch.empty((2, *P.shape), dtype=P.dtype, device=P.device)
    torch.mul(P, factor, out=buf[1])
    torch.mul(buf[1], v, out=buf[0])
    return buf


def _weighted_four(P: Tensor, factor: Tensor, v: Tensor, a: Tensor, ay: Tensor) -> Tensor:
    """[P·f·v, P·f, f·a, f·ay] (f the position factor) as one (4, B, C, L) buffer."""
    buf = torch.empty((4, *P.shape), dtype=P.dtype, device=P.device)
    torch.mul(P, factor, out=buf[1])
    torch.mul(buf[1], v, out=buf[0])
    torch.mul(a, factor, out=buf[2])
    torch.mul(ay, factor, out=buf[3])
    return buf


def _forward_terms(k: Tensor, v: Tensor, pf: PositionFactors, m: Tensor, start: int):
    P = (k - m).exp_()
    ef, eb = pf.at(start, k.shape[-1])
    return P, ef, eb, _weighted_pair(P, ef, v), _weighted_pair(P, eb, v)


def forward(
    k: Tensor,
    v: Tensor,
    w: Tensor,
    u: Tensor,
    m: Tensor,
    start: int = 0,
    pf: PositionFactors | None = None,
) -> tuple[Tensor, Tensor]:
    """y and the scaled denominator den = D·e^{−m} of one segment, all (B, C, L).

    ``start`` is the segment's first position (a whole sequence when 0 and L = T; longer
    sequences go through ``_forward_sweeps``). Written with in-place updates of its own buffers
    (nothing here is recorded by autograd).
    """
    pf = pf or PositionFactors(w, k.shape[-1], k.dtype)
    P, ef, eb, fa, ga = _forward_terms(k, v, pf, m, start)
    f = exclusive_cumsum_last(fa, reverse=False)
    g = exclusive_cumsum_last(ga, reverse=True)
    del fa, ga
    # num = e^w (e^{−t·w} F[v] + e^{t·w} G[v]) + e^u P v;  den likewise with 1 for v
    f.mul_(eb).add_(g.mul_(ef)).mul_(torch.exp(w)[:, None])
    del g
    diag = P.mul_(torch.exp(u)[:, None])
    num, den = f[0].addcmul_(diag, v), f[1].add_(diag)
    return num.div_(den), den


def _backward_terms(k, v, pf, m, y, den, grad, start):
    P = (k - m).exp_()
    ef, eb = pf.at(start, k.shape[-1])
    a = grad / den  # α·e^{m}
    ay = a * y
    return P, ef, eb, _weighted_four(P, ef, v, a, ay), _weighted_four(P, eb, v, a, ay)


def backward(
    k: Tensor,
    v: Tensor,
    w: Tensor,
    u: Tensor,
    m: Tensor,
    y: Tensor,
    den: Tensor,
    grad: Tensor,
    start: int = 0,
    carry: tuple[Tensor, Tensor] | None = None,
    pf: PositionFactors | None = None,
    guard: Guard | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients of one segment (∂L/∂w and ∂L/∂u as its share of the sums), with in-place
    updates of its own buffers; ``carry`` as in ``forward``, for the four scanned quantities.
    ``guard`` records the size of the ∂L/∂k subtraction (``_bi_wkv_refine``)."""
    pf = pf or PositionFactors(w, k.shape[-1], k.dtype)
    P, ef, eb, fa, ga = _backward_terms(k, v, pf, m, y, den, grad, start)
    # [F v, F 1, F α, F αy] forward and the same reversed, one scan each way.
    f = exclusive_cumsum_last(fa, reverse=False)
    g = exclusive_cumsum_last(ga, reverse=True)
    del fa, ga
    if carry is not None:
        f += carry[0][..., None]
        g += carry[1][..., None]
    ew = torch.exp(w)
    # ∂L/∂w from the raw scans (before they are rescaled in place below).
    s = torch.mul(f[0], g[2]).sub_(f[1] * g[3]).add_(f[2] * g[0]).sub_(f[3] * g[1])
    grad_w = -ew * s.sum(dim=(0, 2))
    del s
    # Off-diagonal sums at each position: Σ_{i≠t} K_ti·x_i in the e^{m} units of den.
    off = f.mul_(eb).add_(g.mul_(ef)).mul_(ew[:, None])
    del g
    v_minus_y = torch.mul(v, off[1]).sub_(off[0]).div_(den)  # accurate where y ≈ v
    p_za, p_zay = off[2].mul_(P), off[3].mul_(P)  # P·Zα, P·Z(αy)
    diag = P.mul_(torch.exp(u)[:, None]).mul_(grad).div_(den)  # e^u P α e^m
    grad_u = torch.mul(diag, v_minus_y).sum(dim=(0, 2))
    grad_k = torch.mul(v, p_za)
    if guard is not None:
        guard.add(grad_k, p_zay)
    grad_k.sub_(p_zay).addcmul_(diag, v_minus_y)
    if guard is not None:
        guard.add_result(grad_k)
    grad_v = p_za.add_(diag)
    return grad_k, grad_v, grad_w, grad_u


def _spans(B: int, C: int, T: int, itemsize: int) -> list[tuple[int, int]]:
    size = segment_length(B, C, T, itemsize)
    return [(s, min(s + size, T)) for s in range(0, T, size)]


def batch_groups(B: int, C: int, T: int, itemsize: int) -> list[tuple[int, int]]:
    """Batch ranges that each fit one segment, when a whole sequence of one batch element
    does; else the whole batch (then the sequence is cut into segments, ``_spans``).

    Cutting along the batch needs no carries: each group is one single-segment pass, where
    segments along T make the backward sum every segment's terms once more for its carries
    (at B=8, T=1024, C=48, the model's training shape, forward+backward took 27.7 ms in 1 MiB
    segments along T and 21.0 ms in groups of 4, one thread, measured 2026-12-01).
    """
    row = C * T * itemsize
    if B <= 1 or segment_length(1, C, T, itemsize) < T:
        return [(0, B)]
    per = max(1, min(B, _SEGMENT_BYTES // max(1, row)))
    return [(b, min(b + per, B)) for b in range(0, B, per)]


def _forward_sweeps(k, v, w, u, m, lay, spans, pf, y, den) -> None:
    """The forward pass over several segments, into ``y`` and ``den``, with no work repeated.

    Left to right, each segment's forward scan (plus the running carry) is rescaled by e^{−t·w}
    and parked in ``y`` (v part) and ``den`` (1 part); right to left, the reverse scan is added
    and the ratio taken. Each segment is read twice, but each term is formed once per direction.
    """
    B, C = den.shape[0], den.shape[1]
    carry = torch.zeros((2, B, C), dtype=den.dtype, device=den.device)
    for s, e in spans:
        vv = lay.get(v, s, e)
        P = (lay.get(k, s, e) - m).exp_()
        ef, eb = pf.at(s, e - s)
        fa = _weighted_pair(P, ef, vv)
        total = fa.sum(-1)
        f = exclusive_cumsum_last(fa, reverse=False)
        f += carry[..., None]
        carry += total
        torch.mul(f[0], eb, out=lay.view(y, s, e))
        torch.mul(f[1], eb, out=den[:, :, s:e])
    carry.zero_()
    ew, eu = torch.exp(w)[:, None], torch.exp(u)[:, None]
    for s, e in reversed(spans):
        vv = lay.get(v, s, e)
        P = (lay.get(k, s, e) - m).exp_()
        ef, eb = pf.at(s, e - s)
        ga = _weighted_pair(P, eb, vv)
        total = ga.sum(-1)
        g = exclusive_cumsum_last(ga, reverse=True)
        g += carry[..., None]
        carry += total
        g.mul_(ef)
        g[0] += lay.view(y, s, e)
        g[1] += den[:, :, s:e]
        g.mul_(ew)
        diag = P.mul_(eu)
        num, d = g[0].addcmul_(diag, vv), g[1].add_(diag)
        torch.div(num, d, out=lay.view(y, s, e))
        den[:, :, s:e] = d


class ScaledBiWKVFunction(torch.autograd.Function):
    """k and v (B, T, C), or (B, C, T) with ``channels_first``; returns y in the same layout."""

    @staticmethod
    def forward(ctx, k: Tensor, v: Tensor, w: Tensor, u: Tensor, channels_first: bool) -> Tensor:  # type: ignore[override]
        lay = _Layout(channels_first)
        B, C, T = k.shape if channels_first else (k.shape[0], k.shape[2], k.shape[1])
        m = lay.scale(k)
        y = torch.empty(k.shape, dtype=k.dtype, device=k.device)
        den = torch.empty((B, C, T), dtype=k.dtype, device=k.device)
        groups = batch_groups(B, C, T, k.element_size())
        spans = [(0, T)] if len(groups) > 1 else _spans(B, C, T, k.element_size())
        pf = PositionFactors(w, spans[0][1], k.dtype)
        if len(spans) == 1:
            for b0, b1 in groups:
                kb, vb, yb = k[b0:b1], v[b0:b1], y[b0:b1]
                y_s, den_s = forward(lay.get(kb, 0, T), lay.get(vb, 0, T), w, u, m[b0:b1], 0, pf)
                lay.put(yb, 0, T, y_s)
                den[b0:b1].copy_(den_s)
        else:
            _forward_sweeps(k, v, w, u, m, lay, spans, pf, y, den)
        ctx.save_for_backward(k, v, w, u, m, y, den)
        ctx.channels_first = channels_first
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        k, v, w, u, m, y, den = ctx.saved_tensors
        lay = _Layout(ctx.channels_first)
        B, C, T = den.shape
        groups = batch_groups(B, C, T, k.element_size())
        spans = [(0, T)] if len(groups) > 1 else _spans(B, C, T, k.element_size())
        pf = PositionFactors(w, spans[0][1], k.dtype)
        gk, gv = torch.empty_like(k), torch.empty_like(v)
        gw, gu = torch.zeros_like(w), torch.zeros_like(u)
        guard = Guard()
        for b0, b1 in groups:
            tensors = [t[b0:b1] for t in (k, v, y, grad, gk, gv)]
            _backward_group(lay, spans, pf, w, u, m[b0:b1], den[b0:b1], *tensors, gw, gu, guard)
        if guard.cancelled(k.dtype):
            return (*float64_grads(k, v, w, u, grad, ctx.channels_first), None)
        return gk, gv, gw, gu, None


def _backward_group(lay, spans, pf, w, u, m, den, k, v, y, grad, gk, gv, gw, gu, guard) -> None:
    """The backward pass of one batch group (views of the whole batch's tensors): the input
    gradients into ``gk`` / ``gv``, the shares of ∂L/∂w and ∂L/∂u added to ``gw`` / ``gu``."""

    def inputs(s: int, e: int) -> list:
        kv = [lay.get(t, s, e) for t in (k, v)]
        return [*kv, pf, m, lay.get(y, s, e), den[:, :, s:e], lay.get(grad, s, e)]

    carries: tuple[list, list] | None = None
    if len(spans) > 1:
        totals = []
        for s, e in spans:
            *_, fa, ga = _backward_terms(*inputs(s, e), s)
            totals.append(torch.stack((fa.sum(-1), ga.sum(-1))))
        carries = _carries(totals)
    for j, (s, e) in enumerate(spans):
        carry = (carries[0][j], carries[1][j]) if carries else None
        kk, vv, _, _, yy, dd, gg = inputs(s, e)
        gk_s, gv_s, gw_s, gu_s = backward(kk, vv, w, u, m, yy, dd, gg, s, carry, pf, guard)
        lay.put(gk, s, e, gk_s)
        lay.put(gv, s, e, gv_s)
        gw += gw_s
        gu += gu_s
