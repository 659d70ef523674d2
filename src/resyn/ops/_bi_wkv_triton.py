"""Bi-WKV as fused Triton kernels (CUDA): forward and backward, exact for any finite input.

Per sequence (batch b, channel c; positions t = 0..T−1) the operator is a ratio of two-sided
decayed sums (see ``resyn.ops.bi_wkv``). Every sum here is a log-sum-exp in a *global position
frame*: the element at position i carries the log weight

    forward frame:  ℓ_i = k_i + i·w        reverse frame:  ℓ_i = k_i − i·w

so that Σ_{i<t} e^{−(t−1−i)·w + k_i}·x_i = e^{−(t−1)·w} · Σ_{i<t} e^{ℓ_i}·x_i (and the mirror
with e^{(t+1)·w} for i > t). A partial sum is held as mantissas and one offset,
(x, y)·e^{p}, with p the largest ℓ of the terms it holds; two partial sums combine as

    p = max(p₁, p₂);   (x, y) = (x₁, y₁)·e^{p₁−p} + (x₂, y₂)·e^{p₂−p}

which is associative and commutative, so a sequence is scanned in parallel: the positions are
cut into blocks of ``BLOCK``; pass 1 forms each block's total in both frames, pass 2 scans
the block totals of a sequence (exclusive, ``CARRY_BLOCK`` at a time), pass 3 scans each block
with ``tl.associative_scan`` (exclusive: lane j takes position j−1 or j+1), adds the carry of
the blocks before (after) it and forms the results. The grid is (sequences × blocks), so one
image (B=1, C=48) still fills the GPU.

Offsets are float64 (i·w is exact in float64 and k_i + i·w rounds once): an offset can reach
|w|·T + |k| (tens of thousands for strong decay or growth) and the result depends on
differences of two such offsets, which float32 would carry with an error of |offset|·6e-8.
Only differences of offsets (each <= 0, or bounded by a ratio of sums) are rounded to
float32 and exponentiated, so nothing overflows for any |w·T|, |u| or |k|; mantissas are
float32. A term whose e^{ℓ−p} underflows is below e^{−87} of the largest term of the same
sum, and the sums only ever meet through their offsets, so no chunk length bound is needed.

Forward (per position): p, q the offsets of the exclusive forward / reverse sums ((a, b) and
(c, d) the mantissas of Σ K·v and Σ K), top = max(p, q, u + k_t):

    y_t = (a·e^{p−top} + c·e^{q−top} + v_t·e^{u+k_t−top}) / (b·e^{p−top} + d·e^{q−top} + e^{u+k_t−top})

and log D_t = top + log(den) (D_t the true denominator) is saved in float64 with y_t.

Backward (g = ∂L/∂y, α_t = g_t / D_t): the value sums are formed again, and the sums of α
and α·y use the log weights −log D_t ± t·w with mantissas (g_t, g_t·y_t):

    ∂L/∂v_i = e^{k_i}·Zα_i + e^{u+k_i−log D_i}·g_i        (Zα: both exclusive α sums)
    ∂L/∂k_i = v_i·e^{k_i}·Zα_i − e^{k_i}·Z(αy)_i + e^{u+k_i−log D_i}·g_i·(v_i − y_i)
    ∂L/∂u   = Σ e^{u+k_t−log D_t}·g_t·(v_t − y_t)
    ∂L/∂w   = −Σ_t e^{−w}·[Gα_t·Fv_t − Gαy_t·F1_t + Fα_t·Gv_t − Fαy_t·G1_t]

(F forward, G reverse exclusive sums at t; the last line is the adjoint of both recurrences,
as in ``resyn.ops._bi_wkv_torch``: each pair i < t < j is counted j−i−1 times). v − y is
formed from the off-diagonal sums, (v·(b·e^{p} + d·e^{q}) − (a·e^{p} + c·e^{q})) / D, which
keeps its precision when y ≈ v. Every exponent is a log-ratio <= 0 (or <= log T), formed in
float64 from the offsets, e.g. k_i + offset(Fα)_i = max_{t<i} log(K_ti / D_t) (K_ti: the weight
of token i in row t).

The kernels are defined as plain functions and turned into Triton kernels on first use
(``_kernels``), so importing this module never imports Triton; with ``TRITON_INTERPRET=1`` in
the environment at first use they run in Triton's interpreter on CPU tensors (tests).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import re
import types
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

# Positions per program of passes 1 and 3 (a power of two). Shorter sequences use the next
# power of two >= T, but at least ``_MIN_BLOCK`` (fewer kernel variants to compile).
BLOCK = 1024
# The kernels compute in float32 only: the dispatch's float64 fallback uses the torch formulas.
FLOAT64 = False
_MIN_BLOCK = 128
# Block totals per step of the carry pass (a power of two).
CARRY_BLOCK = 1024
_MIN_TRITON = (3, 0)  # tl.associative_scan(..., reverse=True)

tl: Any = None  # triton.language, bound in the kernels' own globals by ``_build``


def available() -> tuple[bool, str]:
    """(whether the Triton kernels can run here, the reason when they cannot)."""
    if not torch.cuda.is_available():
        return False, "no CUDA device"
    if importlib.util.find_spec("triton") is None:
        return False, "triton is not installed (pip install 'resyn[gpu]')"
    try:
        import triton
    except Exception as exc:  # a broken install must not break the dispatch
        return False, f"triton failed to import: {exc}"
    version = tuple(int(part) for part in re.findall(r"\d+", triton.__version__)[:2])
    if version < _MIN_TRITON:
        return False, f"triton {triton.__version__} is older than 3.0"
    return True, ""


# --------------------------------------------------------------------------------------------
# Kernel sources (plain functions; ``_build`` makes them Triton functions)
# --------------------------------------------------------------------------------------------


def _lse_combine(xa, ya, pa, xb, yb, pb):
    """(xa, ya)·e^{pa} + (xb, yb)·e^{pb} as mantissas on the larger offset (−inf: empty)."""
    p = tl.maximum(pa, pb)
    ref = tl.where(p == float("-inf"), 0.0, p)
    sa = tl.exp((pa - ref).to(tl.float32))
    sb = tl.exp((pb - ref).to(tl.float32))
    return xa * sa + xb * sb, ya * sa + yb * sb, p


def _add(a, b):
    return a + b


def _max(a, b):
    return tl.maximum(a, b)


def _lse_total(x, y, p):
    """The sum of a block of (x, y)·e^{p} terms as scalars (mantissas, offset)."""
    n = tl.reduce(p, 0, _max)
    ref = tl.where(n == float("-inf"), 0.0, n)
    s = tl.exp((p - ref).to(tl.float32))
    return tl.reduce(x * s, 0, _add), tl.reduce(y * s, 0, _add), n


def _exp_where(mask, x):
    """e^x in float32 where ``mask`` (x float64, a log-ratio <= log T there), else 0.

    Past the sequence's end the bounds on x do not hold (the lanes are never stored)."""
    return tl.exp(tl.where(mask, x, float("-inf")).to(tl.float32))


def _memory_index(t, H, W, GRID: tl.constexpr):
    """Index along the T axis of sequence position t (column-major over an H x W grid)."""
    if GRID:
        return ((t % H) * W + t // H).to(tl.int64)
    return t.to(tl.int64)


def _load_seq(ptr, base, stride, t, mask, H, W, GRID: tl.constexpr):
    """Values at sequence positions t of one (b, c) row, as float32 (0 where masked)."""
    idx = _memory_index(t, H, W, GRID)
    return tl.load(ptr + base + idx * stride, mask=mask, other=0.0).to(tl.float32)


def _store_seq(
    ptr, base, stride, t, mask, value, H, W, GRID: tl.constexpr, ACCUMULATE: tl.constexpr
):
    """Write (or add) float32 values at sequence positions t, in the pointer's dtype."""
    addr = ptr + base + _memory_index(t, H, W, GRID) * stride
    if ACCUMULATE:
        value = value + tl.load(addr, mask=mask, other=0.0).to(tl.float32)
    tl.store(addr, value.to(ptr.dtype.element_ty), mask=mask)


def _fwd_totals_kernel(
    k_ptr, v_ptr, w_ptr, tx_ptr, ty_ptr, tp_ptr,
    skb, skc, skt, svb, svc, svt,
    C, T, H, W, NCH, PLANE,
    BLOCK: tl.constexpr, GRID: tl.constexpr,
):  # fmt: skip
    """Pass 1 of the forward: each block's Σ e^{ℓ}·(v, 1) in the forward and reverse frames."""
    pid = tl.program_id(0)
    row = pid // NCH
    t = (pid % NCH) * BLOCK + tl.arange(0, BLOCK)
    mask = t < T
    b = (row // C).to(tl.int64)
    c = (row % C).to(tl.int64)
    k = _load_seq(k_ptr, b * skb + c * skc, skt, t, mask, H, W, GRID)
    v = _load_seq(v_ptr, b * svb + c * svc, svt, t, mask, H, W, GRID)
    tw = t.to(tl.float64) * tl.load(w_ptr + c).to(tl.float64)
    one = mask.to(tl.float32)
    kd = k.to(tl.float64)
    x, y, p = _lse_total(v, one, tl.where(mask, kd + tw, float("-inf")))
    tl.store(tx_ptr + pid, x)
    tl.store(ty_ptr + pid, y)
    tl.store(tp_ptr + pid, p)
    x, y, p = _lse_total(v, one, tl.where(mask, kd - tw, float("-inf")))
    tl.store(tx_ptr + PLANE + pid, x)
    tl.store(ty_ptr + PLANE + pid, y)
    tl.store(tp_ptr + PLANE + pid, p)


def _carry_kernel(
    tx_ptr, ty_ptr, tp_ptr, cx_ptr, cy_ptr, cp_ptr, NCH,
    CB: tl.constexpr, REVERSE: tl.constexpr,
):  # fmt: skip
    """Pass 2: the exclusive scan of one sequence's block totals (from the end if REVERSE)."""
    base = tl.program_id(0).to(tl.int64) * NCH
    lane = tl.arange(0, CB)
    cx = tl.full((1,), 0.0, dtype=tl.float32)
    cy = tl.full((1,), 0.0, dtype=tl.float32)
    cp = tl.full((1,), float("-inf"), dtype=tl.float64)
    for start in range(0, NCH, CB):
        rank = start + lane  # position in scan order
        valid = rank < NCH
        if REVERSE:
            j = NCH - 1 - rank
            prev = j + 1
        else:
            j = rank
            prev = j - 1
        has_prev = valid & (lane > 0)
        px = tl.load(tx_ptr + base + prev, mask=has_prev, other=0.0)
        py = tl.load(ty_ptr + base + prev, mask=has_prev, other=0.0)
        pp = tl.load(tp_ptr + base + prev, mask=has_prev, other=float("-inf"))
        sx, sy, sp = tl.associative_scan((px, py, pp), 0, _lse_combine)
        ox, oy, op = _lse_combine(sx, sy, sp, cx, cy, cp)
        tl.store(cx_ptr + base + j, ox, mask=valid)
        tl.store(cy_ptr + base + j, oy, mask=valid)
        tl.store(cp_ptr + base + j, op, mask=valid)
        ax = tl.load(tx_ptr + base + j, mask=valid, other=0.0)
        ay = tl.load(ty_ptr + base + j, mask=valid, other=0.0)
        ap = tl.load(tp_ptr + base + j, mask=valid, other=float("-inf"))
        bx, by, bp = _lse_total(ax, ay, ap)
        cx, cy, cp = _lse_combine(cx, cy, cp, bx, by, bp)


def _scan_block(x, y, p, cx_ptr, cy_ptr, cp_ptr, at, REVERSE: tl.constexpr):
    """Inclusive scan of a block's (x, y)·e^{p} terms plus the carry stored at ``at``."""
    if REVERSE:
        sx, sy, sp = tl.associative_scan((x, y, p), 0, _lse_combine, reverse=True)
    else:
        sx, sy, sp = tl.associative_scan((x, y, p), 0, _lse_combine)
    return _lse_combine(
        sx, sy, sp, tl.load(cx_ptr + at), tl.load(cy_ptr + at), tl.load(cp_ptr + at)
    )


def _fwd_out_kernel(
    k_ptr, v_ptr, w_ptr, u_ptr, cx_ptr, cy_ptr, cp_ptr, out_ptr, ys_ptr, ld_ptr,
    skb, skc, skt, svb, svc, svt, sob, soc, sot,
    C, T, H, W, NCH, PLANE,
    BLOCK: tl.constexpr, GRID: tl.constexpr, ACCUMULATE: tl.constexpr, SAVE: tl.constexpr,
):  # fmt: skip
    """Pass 3 of the forward: y (written or added to ``out``), and y, log D when SAVE."""
    pid = tl.program_id(0)
    row = pid // NCH
    lane = tl.arange(0, BLOCK)
    t = (pid % NCH) * BLOCK + lane
    mask = t < T
    b = (row // C).to(tl.int64)
    c = (row % C).to(tl.int64)
    kb = b * skb + c * skc
    vb = b * svb + c * svc
    w = tl.load(w_ptr + c).to(tl.float64)
    u = tl.load(u_ptr + c).to(tl.float64)
    k = _load_seq(k_ptr, kb, skt, t, mask, H, W, GRID)
    v = _load_seq(v_ptr, vb, svt, t, mask, H, W, GRID)
    # exclusive sums: lane j scans the position before (after) its own, within the block
    tw_f = (t - 1).to(tl.float64) * w
    tw_r = (t + 1).to(tl.float64) * w
    m_f = (lane > 0) & (t - 1 < T)
    m_r = (lane < BLOCK - 1) & (t + 1 < T)
    k_f = _load_seq(k_ptr, kb, skt, t - 1, m_f, H, W, GRID)
    v_f = _load_seq(v_ptr, vb, svt, t - 1, m_f, H, W, GRID)
    k_r = _load_seq(k_ptr, kb, skt, t + 1, m_r, H, W, GRID)
    v_r = _load_seq(v_ptr, vb, svt, t + 1, m_r, H, W, GRID)
    l_f = tl.where(m_f, k_f.to(tl.float64) + tw_f, float("-inf"))
    l_r = tl.where(m_r, k_r.to(tl.float64) - tw_r, float("-inf"))
    a, bb, p = _scan_block(v_f, m_f.to(tl.float32), l_f, cx_ptr, cy_ptr, cp_ptr, pid, False)
    cc, d, q = _scan_block(v_r, m_r.to(tl.float32), l_r, cx_ptr, cy_ptr, cp_ptr, PLANE + pid, True)
    p = p - tw_f  # offsets of Σ_{i<t} e^{−(t−1−i)w+k_i}(v_i, 1) and the mirror
    q = q + tw_r
    diag = u + k.to(tl.float64)
    top = tl.maximum(tl.maximum(p, q), diag)
    sp = tl.exp((p - top).to(tl.float32))
    sq = tl.exp((q - top).to(tl.float32))
    sd = tl.exp((diag - top).to(tl.float32))
    num = a * sp + cc * sq + v * sd
    den = bb * sp + d * sq + sd
    y = num / den
    _store_seq(out_ptr, b * sob + c * soc, sot, t, mask, y, H, W, GRID, ACCUMULATE)
    if SAVE:
        at = row.to(tl.int64) * T + t
        tl.store(ys_ptr + at, y, mask=mask)
        tl.store(ld_ptr + at, top + tl.log(den).to(tl.float64), mask=mask)


def _bwd_totals_kernel(
    k_ptr, v_ptr, g_ptr, ys_ptr, ld_ptr, w_ptr, tx_ptr, ty_ptr, tp_ptr,
    skb, skc, skt, svb, svc, svt, sgb, sgc, sgt,
    C, T, H, W, NCH, PLANE, FAM,
    BLOCK: tl.constexpr, GRID: tl.constexpr,
):  # fmt: skip
    """Pass 1 of the backward: block totals of e^{k±tw}·(v, 1) and e^{−log D±tw}·(g, g·y)."""
    pid = tl.program_id(0)
    row = pid // NCH
    t = (pid % NCH) * BLOCK + tl.arange(0, BLOCK)
    mask = t < T
    b = (row // C).to(tl.int64)
    c = (row % C).to(tl.int64)
    k = _load_seq(k_ptr, b * skb + c * skc, skt, t, mask, H, W, GRID)
    v = _load_seq(v_ptr, b * svb + c * svc, svt, t, mask, H, W, GRID)
    g = _load_seq(g_ptr, b * sgb + c * sgc, sgt, t, mask, H, W, GRID)
    at = row.to(tl.int64) * T + t
    ys = tl.load(ys_ptr + at, mask=mask, other=0.0)
    ld = tl.load(ld_ptr + at, mask=mask, other=0.0)
    tw = t.to(tl.float64) * tl.load(w_ptr + c).to(tl.float64)
    one = mask.to(tl.float32)
    kd = k.to(tl.float64)
    gy = g * ys
    x, y, p = _lse_total(v, one, tl.where(mask, kd + tw, float("-inf")))
    tl.store(tx_ptr + pid, x)
    tl.store(ty_ptr + pid, y)
    tl.store(tp_ptr + pid, p)
    x, y, p = _lse_total(v, one, tl.where(mask, kd - tw, float("-inf")))
    tl.store(tx_ptr + PLANE + pid, x)
    tl.store(ty_ptr + PLANE + pid, y)
    tl.store(tp_ptr + PLANE + pid, p)
    x, y, p = _lse_total(g, gy, tl.where(mask, tw - ld, float("-inf")))
    tl.store(tx_ptr + FAM + pid, x)
    tl.store(ty_ptr + FAM + pid, y)
    tl.store(tp_ptr + FAM + pid, p)
    x, y, p = _lse_total(g, gy, tl.where(mask, -tw - ld, float("-inf")))
    tl.store(tx_ptr + PLANE + FAM + pid, x)
    tl.store(ty_ptr + PLANE + FAM + pid, y)
    tl.store(tp_ptr + PLANE + FAM + pid, p)


def _bwd_out_kernel(
    k_ptr, v_ptr, g_ptr, ys_ptr, ld_ptr, w_ptr, u_ptr, cx_ptr, cy_ptr, cp_ptr,
    gk_ptr, gv_ptr, part_ptr,
    skb, skc, skt, svb, svc, svt, sgb, sgc, sgt, sab, sac, sat,
    C, T, H, W, NCH, PLANE, FAM, NPROG,
    BLOCK: tl.constexpr, GRID: tl.constexpr, ACCUMULATE: tl.constexpr,
):  # fmt: skip
    """Pass 3 of the backward: ∂L/∂k, ∂L/∂v per position; per block Σ for ∂L/∂w, ∂L/∂u and
    the maxima of the subtracted terms and of |∂L/∂k| (the cancellation guard)."""
    pid = tl.program_id(0)
    row = pid // NCH
    lane = tl.arange(0, BLOCK)
    t = (pid % NCH) * BLOCK + lane
    mask = t < T
    b = (row // C).to(tl.int64)
    c = (row % C).to(tl.int64)
    kb = b * skb + c * skc
    vb = b * svb + c * svc
    gb = b * sgb + c * sgc
    sb = row.to(tl.int64) * T
    w = tl.load(w_ptr + c).to(tl.float64)
    u = tl.load(u_ptr + c).to(tl.float64)
    k = _load_seq(k_ptr, kb, skt, t, mask, H, W, GRID)
    v = _load_seq(v_ptr, vb, svt, t, mask, H, W, GRID)
    g = _load_seq(g_ptr, gb, sgt, t, mask, H, W, GRID)
    ld = tl.load(ld_ptr + sb + t, mask=mask, other=0.0)
    tw_f = (t - 1).to(tl.float64) * w
    tw_r = (t + 1).to(tl.float64) * w
    # the forward neighbour (position t−1) and the reverse one (t+1), as in the forward
    m_f = (lane > 0) & (t - 1 < T)
    m_r = (lane < BLOCK - 1) & (t + 1 < T)
    k_f = _load_seq(k_ptr, kb, skt, t - 1, m_f, H, W, GRID)
    v_f = _load_seq(v_ptr, vb, svt, t - 1, m_f, H, W, GRID)
    g_f = _load_seq(g_ptr, gb, sgt, t - 1, m_f, H, W, GRID)
    y_f = tl.load(ys_ptr + sb + t - 1, mask=m_f, other=0.0)
    ld_f = tl.load(ld_ptr + sb + t - 1, mask=m_f, other=0.0)
    k_r = _load_seq(k_ptr, kb, skt, t + 1, m_r, H, W, GRID)
    v_r = _load_seq(v_ptr, vb, svt, t + 1, m_r, H, W, GRID)
    g_r = _load_seq(g_ptr, gb, sgt, t + 1, m_r, H, W, GRID)
    y_r = tl.load(ys_ptr + sb + t + 1, mask=m_r, other=0.0)
    ld_r = tl.load(ld_ptr + sb + t + 1, mask=m_r, other=0.0)
    one_f = m_f.to(tl.float32)
    one_r = m_r.to(tl.float32)
    ninf = float("-inf")
    # log weights: values e^{k_i ± i·w}, α e^{−log D_i ± i·w} (forward / reverse frame)
    lv_f = tl.where(m_f, k_f.to(tl.float64) + tw_f, ninf)
    lv_r = tl.where(m_r, k_r.to(tl.float64) - tw_r, ninf)
    la_f = tl.where(m_f, tw_f - ld_f, ninf)
    la_r = tl.where(m_r, -tw_r - ld_r, ninf)
    # value sums (a, b)·e^{p}: Σ_{i<t} K·(v, 1), (c, d)·e^{q}: Σ_{i>t}; α sums of (g, g·y)
    a, bb, nf = _scan_block(v_f, one_f, lv_f, cx_ptr, cy_ptr, cp_ptr, pid, False)
    cc, d, nr = _scan_block(v_r, one_r, lv_r, cx_ptr, cy_ptr, cp_ptr, PLANE + pid, True)
    fa, fay, naf = _scan_block(g_f, g_f * y_f, la_f, cx_ptr, cy_ptr, cp_ptr, FAM + pid, False)
    ra, ray, nar = _scan_block(
        g_r, g_r * y_r, la_r, cx_ptr, cy_ptr, cp_ptr, PLANE + FAM + pid, True
    )
    kd = k.to(tl.float64)
    p = nf - tw_f
    q = nr + tw_r
    # e^{k_t}·(exclusive α sums): exponents max_j log(K_jt / D_j) <= 0 (token t in row j)
    e_f = _exp_where(mask, kd + naf - tw_f)
    e_r = _exp_where(mask, kd + nar + tw_r)
    za = fa * e_f + ra * e_r
    zay = fay * e_f + ray * e_r
    diag = _exp_where(mask, u + kd - ld)  # e^{u+k_t} / D_t
    ef = _exp_where(mask, p - ld)
    er = _exp_where(mask, q - ld)
    v_minus_y = v * (bb * ef + d * er) - (a * ef + cc * er)
    dg = diag * g
    vza = v * za
    grad_k = vza - zay + dg * v_minus_y
    grad_v = za + dg
    _store_seq(gk_ptr, b * sab + c * sac, sat, t, mask, grad_k, H, W, GRID, ACCUMULATE)
    _store_seq(gv_ptr, b * sab + c * sac, sat, t, mask, grad_v, H, W, GRID, ACCUMULATE)
    # ∂L/∂w: e^{−w}·Gα·Fv has offset (nar + (t+1)w) + (nf − (t−1)w) − w = nar + nf + w
    w_f = _exp_where(mask, nar + nf + w)
    w_r = _exp_where(mask, naf + nr + w)
    s = (ra * a - ray * bb) * w_f + (fa * cc - fay * d) * w_r
    tl.store(part_ptr + pid, -tl.reduce(tl.where(mask, s, 0.0), 0, _add))
    tl.store(part_ptr + NPROG + pid, tl.reduce(tl.where(mask, dg * v_minus_y, 0.0), 0, _add))
    term = tl.maximum(tl.abs(vza), tl.abs(zay))
    tl.store(part_ptr + 2 * NPROG + pid, tl.reduce(tl.where(mask, term, 0.0), 0, _max))
    tl.store(part_ptr + 3 * NPROG + pid, tl.reduce(tl.where(mask, tl.abs(grad_k), 0.0), 0, _max))


_SOURCES: tuple[Callable[..., Any], ...] = (
    _add,
    _max,
    _lse_combine,
    _lse_total,
    _exp_where,
    _memory_index,
    _load_seq,
    _store_seq,
    _scan_block,
    _fwd_totals_kernel,
    _carry_kernel,
    _fwd_out_kernel,
    _bwd_totals_kernel,
    _bwd_out_kernel,
)


@functools.cache
def _build(interpret: bool) -> dict[str, Any]:
    """The Triton functions, each a copy of its source bound to a namespace of its own.

    ``interpret`` (Triton reads TRITON_INTERPRET when a function is decorated) keys the cache,
    so the interpreter and compiled kernels can both be built in one process. Sizes and
    strides are not specialised on (Triton would compile a variant per stride == 1 and per
    multiple of 16): the kernels compile once per block size, layout flag and dtype.
    """
    import triton
    import triton.language as language

    scope: dict[str, Any] = {"__builtins__": __builtins__, "__name__": __name__, "tl": language}
    for fn in _SOURCES:
        copy = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)
        copy.__annotations__ = dict(fn.__annotations__)
        copy.__doc__ = fn.__doc__
        copy.__module__ = fn.__module__
        copy.__qualname__ = fn.__qualname__
        if fn.__name__.endswith("_kernel"):
            scope[fn.__name__] = triton.jit(copy, do_not_specialize=_integer_args(fn))
        else:
            scope[fn.__name__] = triton.jit(copy)
    return scope


def _integer_args(fn: Callable[..., Any]) -> list[str]:
    """A kernel's size and stride arguments: neither pointers (``*_ptr``) nor constexpr."""
    code = fn.__code__
    names = code.co_varnames[: code.co_argcount]
    return [
        n
        for n in names
        if not n.endswith("_ptr") and "constexpr" not in str(fn.__annotations__.get(n, ""))
    ]


def _kernels() -> dict[str, Any]:
    return _build(os.environ.get("TRITON_INTERPRET", "0") == "1")


# --------------------------------------------------------------------------------------------
# Launchers
# --------------------------------------------------------------------------------------------


def _next_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def _block(T: int) -> int:
    return min(BLOCK, max(_MIN_BLOCK, _next_pow2(T)))


def _options(block: int) -> dict[str, Any]:
    """Launch options: 4 positions per thread (at most 8 warps), and multiply-adds fused (FMA,
    Triton's default until 3.10, stated so that every version rounds alike)."""
    return {"num_warps": max(1, min(8, block // 128)), "enable_fp_fusion": True}


def _grid_shape(grid_h: int, T: int) -> tuple[int, int]:
    """(H, W) of the grid the T axis holds; (1, T) for a plain sequence."""
    if grid_h <= 0:
        return 1, T
    if T % grid_h:
        raise ValueError(f"bi_wkv (triton): grid_h={grid_h} does not divide T={T}")
    return grid_h, T // grid_h


def _device(t: Tensor) -> contextlib.AbstractContextManager[Any]:
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


def _check(k: Tensor, v: Tensor, w: Tensor, u: Tensor, *others: Tensor) -> tuple[int, int, int]:
    """(B, C, T), after checking that the tensors agree (the kernels index them blindly)."""
    if k.dim() != 3 or k.shape != v.shape or any(o.shape != v.shape for o in others):
        shapes = ", ".join(str(tuple(t.shape)) for t in (k, v, *others))
        raise ValueError(
            f"bi_wkv (triton): k, v and outputs must share one (B, C, T); got {shapes}"
        )
    B, C, T = v.shape
    if w.shape != (C,) or u.shape != (C,) or not (w.is_contiguous() and u.is_contiguous()):
        raise ValueError(f"bi_wkv (triton): w and u must be contiguous, of shape ({C},)")
    return B, C, T


def _carries(
    kern: dict[str, Any], tx: Tensor, ty: Tensor, tp: Tensor, nch: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Pass 2: exclusive scans of block totals (2, F, rows·nch), forward plane then reverse."""
    cx, cy, cp = torch.empty_like(tx), torch.empty_like(ty), torch.empty_like(tp)
    seqs = tx[0].numel() // nch
    cb = min(CARRY_BLOCK, max(16, _next_pow2(nch)))
    for plane, reverse in ((0, False), (1, True)):
        kern["_carry_kernel"][(seqs,)](
            tx[plane], ty[plane], tp[plane], cx[plane], cy[plane], cp[plane], nch,
            CB=cb, REVERSE=reverse, **_options(cb),
        )  # fmt: skip
    return cx, cy, cp


def _totals(F: int, rows: int, nch: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    shape = (2, F, rows * nch)
    return (
        torch.empty(shape, dtype=torch.float32, device=device),
        torch.empty(shape, dtype=torch.float32, device=device),
        torch.empty(shape, dtype=torch.float64, device=device),
    )


def forward(
    k: Tensor,
    v: Tensor,
    w: Tensor,
    u: Tensor,
    grid_h: int,
    out: Tensor,
    accumulate: bool,
    save: bool,
) -> tuple[Tensor, Tensor] | None:
    """y of (B, C, T) ``k``, ``v`` (any strides, float32/bf16/fp16) into ``out`` (written, or
    added to when ``accumulate``). ``grid_h`` > 0: the T axis holds an H x W grid (row-major)
    and the sequence runs column-major over it. Returns (y, log D) in sequence order (float32,
    float64; (B, C, T)) for ``backward`` when ``save``, else None."""
    B, C, T = _check(k, v, w, u, out)
    H, W = _grid_shape(grid_h, T)
    rows = B * C
    ys = ld = None
    if save:
        ys = torch.empty((B, C, T), dtype=torch.float32, device=v.device)
        ld = torch.empty((B, C, T), dtype=torch.float64, device=v.device)
    if rows * T == 0:
        return (ys, ld) if save else None
    kern = _kernels()
    block = _block(T)
    nch = -(-T // block)
    nprog = rows * nch
    tx, ty, tp = _totals(1, rows, nch, v.device)
    grid_on = grid_h > 0
    with _device(v):
        kern["_fwd_totals_kernel"][(nprog,)](
            k, v, w, tx, ty, tp, *k.stride(), *v.stride(), C, T, H, W, nch, nprog,
            BLOCK=block, GRID=grid_on, **_options(block),
        )  # fmt: skip
        cx, cy, cp = _carries(kern, tx, ty, tp, nch)
        kern["_fwd_out_kernel"][(nprog,)](
            k, v, w, u, cx, cy, cp, out, ys if save else out, ld if save else out,
            *k.stride(), *v.stride(), *out.stride(), C, T, H, W, nch, nprog,
            BLOCK=block, GRID=grid_on, ACCUMULATE=bool(accumulate), SAVE=bool(save),
            **_options(block),
        )  # fmt: skip
    return (ys, ld) if save else None


def backward(
    k: Tensor,
    v: Tensor,
    w: Tensor,
    u: Tensor,
    grid_h: int,
    grad: Tensor,
    saved: tuple[Tensor, Tensor],
    gk: Tensor,
    gv: Tensor,
    accumulate: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """∂L/∂k and ∂L/∂v into ``gk``, ``gv`` (float32, (B, C, T); written, or added to when
    ``accumulate``) from ∂L/∂y ``grad`` (any strides) and ``saved`` (``forward``'s result).

    Returns (∂L/∂w, ∂L/∂u) summed over the batch, and, for the cancellation guard of
    ``resyn.ops._bi_wkv_refine``, the largest subtracted term max(|v·e^{k}Zα|, |e^{k}Z(αy)|)
    and the largest |∂L/∂k| of this call (float32, 0-dim)."""
    B, C, T = _check(k, v, w, u, grad, gk, gv)
    if gk.stride() != gv.stride():
        raise ValueError("bi_wkv (triton): gk and gv must have the same strides")
    H, W = _grid_shape(grid_h, T)
    ys, ld = saved
    rows = B * C
    device = v.device
    if rows * T == 0:
        zero = torch.zeros((), dtype=torch.float32, device=device)
        gw = torch.zeros(C, dtype=torch.float32, device=device)
        return gw, gw.clone(), zero, zero.clone()
    kern = _kernels()
    block = _block(T)
    nch = -(-T // block)
    nprog = rows * nch
    tx, ty, tp = _totals(2, rows, nch, device)
    part = torch.empty((4, nprog), dtype=torch.float32, device=device)
    grid_on = grid_h > 0
    with _device(v):
        kern["_bwd_totals_kernel"][(nprog,)](
            k, v, grad, ys, ld, w, tx, ty, tp, *k.stride(), *v.stride(), *grad.stride(),
            C, T, H, W, nch, 2 * nprog, nprog,
            BLOCK=block, GRID=grid_on, **_options(block),
        )  # fmt: skip
        cx, cy, cp = _carries(kern, tx, ty, tp, nch)
        kern["_bwd_out_kernel"][(nprog,)](
            k, v, grad, ys, ld, w, u, cx, cy, cp, gk, gv, part,
            *k.stride(), *v.stride(), *grad.stride(), *gk.stride(),
            C, T, H, W, nch, 2 * nprog, nprog, nprog,
            BLOCK=block, GRID=grid_on, ACCUMULATE=bool(accumulate), **_options(block),
        )  # fmt: skip
    sums = part[:2].view(2, B, C, nch).to(torch.float64).sum(dim=(1, 3)).to(torch.float32)
    return sums[0], sums[1], part[2].max(), part[3].max()
