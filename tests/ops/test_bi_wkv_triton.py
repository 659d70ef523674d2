"""The Triton Bi-WKV kernels (resyn.ops._bi_wkv_triton) against the literal formula in float64.

Two backends run the same checks: ``cuda`` (compiled kernels; marked ``gpu``) and
``interpreter`` (Triton's interpreter on CPU tensors, TRITON_INTERPRET=1, with 16-position
blocks so that sequences span several blocks, and the carry pass several steps). The
interpreter runs each kernel program in Python, so its cases are small; it checks the
kernels' logic where no GPU is present and skips when triton is not installed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from resyn.ops import _bi_wkv_triton as bt
from resyn.ops._bi_wkv_refine import ROUNDING_UNITS, TARGET

_spec = importlib.util.spec_from_file_location(
    "bi_wkv_oracle", Path(__file__).with_name("bi_wkv_oracle.py")
)
oracle = importlib.util.module_from_spec(_spec)
sys.modules["bi_wkv_oracle"] = oracle
_spec.loader.exec_module(oracle)

TOL = 1e-4  # max |y − y_ref| / max |y_ref|, float32 (as tests/ops/test_bi_wkv.py)
GRAD_TOL = 1e-3  # per gradient, relative to max |reference|
# Float32 results cannot hold less than this: where a reference gradient lies below it (u = −150
# makes ∂L/∂u ~ e^{−150}), an absolute error under it is no error.
TINY = torch.finfo(torch.float32).tiny


# ------------------------------------------------------------------------------------------
# backends
# ------------------------------------------------------------------------------------------


@pytest.fixture
def interpreter(monkeypatch) -> str:
    """Triton's interpreter on CPU tensors, 16-position blocks, 16 totals per carry step."""
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed (pip install 'resyn[gpu]')")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the gpu tests run the compiled kernels")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(bt, "BLOCK", 16)
    monkeypatch.setattr(bt, "CARRY_BLOCK", 16)
    return "cpu"


@pytest.fixture
def cuda(monkeypatch) -> str:
    ok, why = bt.available()
    if not ok:
        pytest.skip(f"Triton kernels unavailable: {why}")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    return "cuda"


BACKENDS = ["interpreter", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.fixture(params=BACKENDS)
def device(request) -> str:
    return request.getfixturevalue(request.param)


# ------------------------------------------------------------------------------------------
# inputs, reference and the check
# ------------------------------------------------------------------------------------------

# name: (w·T low, w·T high, u low, u high, k) with k a uniform ±range or "normal" (N(0, 1))
RANGES = {
    "zero": (0.0, 0.0, 0.0, 0.0, 1.0),
    "model": (-5.0, 3.0, 0.0, 0.0, "normal"),  # the model at initialisation
    "moderate": (-3.0, 3.0, -1.0, 1.0, 20.0),
    "strong": (-50.0, 50.0, -5.0, 5.0, 20.0),
    "growth_extreme": (-200.0, -100.0, 100.0, 200.0, 60.0),  # |w·T| and |u| up to 200
    "decay_extreme": (100.0, 200.0, -200.0, -100.0, 60.0),
    "growth_penalty": (-200.0, -100.0, -200.0, -100.0, 60.0),
    "decay_bonus": (100.0, 200.0, 100.0, 200.0, 60.0),
}


def make_inputs(B, C, T, name, seed):
    """k, v (B, C, T) and w, u (C,), float32 on the CPU, for a named range."""
    w_lo, w_hi, u_lo, u_hi, k_range = RANGES[name]
    g = torch.Generator().manual_seed(seed)
    if k_range == "normal":
        k = torch.randn(B, C, T, generator=g)
    else:
        k = (torch.rand(B, C, T, generator=g) * 2 - 1) * k_range
    v = torch.randn(B, C, T, generator=g)
    w = (w_lo + (w_hi - w_lo) * torch.rand(C, generator=g)) / T
    u = u_lo + (u_hi - u_lo) * torch.rand(C, generator=g)
    return k, v, w, u


def sequence_positions(T, grid_h):
    """Memory index along T of each sequence position (column-major over an H x W grid)."""
    t = torch.arange(T)
    if grid_h == 0:
        return t
    return (t % grid_h) * (T // grid_h) + t // grid_h


def reference(k, v, w, u, grid_h, rows=None):
    """The formula in float64: y (B, C, T) in memory order, or at sequence ``rows`` (B, C, R)."""
    perm = sequence_positions(k.shape[-1], grid_h)
    ks = k[..., perm].transpose(1, 2)
    vs = v[..., perm].transpose(1, 2)
    if rows is not None:
        return oracle.naive_bi_wkv_rows(ks, vs, w, u, rows).transpose(1, 2)
    ys = oracle.naive_bi_wkv(ks, vs, w, u).transpose(1, 2)
    return ys[..., torch.argsort(perm)]


def rel_err(a, b):
    """max |a − b| / max |b|, with absolute errors below float32's smallest normal ignored."""
    diff = (a.double().cpu() - b.double().cpu()).abs().max().item()
    return max(diff - TINY, 0.0) / max(b.double().abs().max().item(), TINY)


def guard_fires(term_max, gk_max):
    """The dispatch's cancellation test (resyn.ops._bi_wkv_refine): float64 for this call."""
    return rounding_bound(term_max) > TARGET * float(gk_max)


def rounding_bound(term_max):
    """The guard's bound on the float32 rounding of ∂L/∂k: ROUNDING_UNITS·eps·term_max."""
    return ROUNDING_UNITS * torch.finfo(torch.float32).eps * float(term_max)


def place(x, layout, device, dtype=torch.float32):
    """``x`` (B, C, T) on ``device`` as the view ``layout`` names: "contiguous", "chunk" (the
    middle third of a (B, 3C, T) tensor) or "channels_last" (a permuted (B, T, C) tensor)."""
    B, C, T = x.shape
    if layout == "contiguous":
        return x.to(device=device, dtype=dtype, copy=True)
    if layout == "chunk":
        big = torch.zeros(B, 3 * C, T, device=device, dtype=dtype)
        big[:, C : 2 * C] = x.to(device=device, dtype=dtype)
        return big[:, C : 2 * C]
    if layout == "channels_last":
        return x.transpose(1, 2).contiguous().to(device=device, dtype=dtype).transpose(1, 2)
    raise ValueError(layout)


def run(k, v, w, u, g, device, *, grid_h=0, layout="contiguous", dtype=torch.float32,
        out_dtype=torch.float32, out_layout="contiguous", accumulate=False, seed=0):  # fmt: skip
    """Forward and backward through the kernels; returns y, gk, gv, gw, gu, term_max, gk_max
    (float32 results of this call: a pre-filled ``out``/``gk``/``gv`` is subtracted)."""
    kd, vd = place(k, layout, device, dtype), place(v, layout, device, dtype)
    wd, ud = w.to(device), u.to(device)
    gen = torch.Generator().manual_seed(seed + 99)
    base = torch.randn(k.shape, generator=gen) if accumulate else torch.zeros(k.shape)
    out = place(base, out_layout, device, out_dtype)
    saved = bt.forward(kd, vd, wd, ud, grid_h, out, accumulate, True)
    y = out.float().cpu() - base.to(out_dtype).float()
    gbase = torch.randn((2, *k.shape), generator=gen) if accumulate else torch.zeros(2, *k.shape)
    gk, gv = (x.to(device, copy=True) for x in gbase)
    gw, gu, term_max, gk_max = bt.backward(
        kd, vd, wd, ud, grid_h, g.to(device), saved, gk, gv, accumulate
    )
    assert gw.shape == gu.shape == w.shape and gw.dtype == gu.dtype == torch.float32
    return (y, gk.cpu() - gbase[0], gv.cpu() - gbase[1], gw.cpu(), gu.cpu(),
            term_max.cpu(), gk_max.cpu())  # fmt: skip


def check_gradients(got, want, term_max, gk_max, guard=None, grad_tol=GRAD_TOL):
    """∂L/∂(k, v, w, u) against the reference, as the dispatch would use them (see ``check``)."""
    fires = guard_fires(term_max, gk_max)
    if guard is not None:
        assert fires == guard, f"cancellation guard {'fired' if fires else 'did not fire'}"
    bound = rounding_bound(term_max) + TINY
    k_abs = (got[0].double() - want[0].double()).abs().max().item()
    assert k_abs <= bound, f"∂L/∂k off by {k_abs:.2e}, beyond the guard's bound {bound:.2e}"
    for gname, a, b in zip("kvwu", got, want):
        if fires and gname != "v":
            continue
        err = rel_err(a, b)
        assert err <= grad_tol, f"gradient of {gname}: {err:.2e}"


def check(B, C, T, name, seed, device, *, grid_h=0, tol=TOL, grad_tol=GRAD_TOL, guard=None,
          **kwargs):  # fmt: skip
    """Values and all four gradients against the formula (float64 autograd).

    ∂L/∂k is always held to the rounding bound the cancellation guard assumes (16·eps·term_max
    absolute). Where the guard fires, the dispatch recomputes the call's gradients in float64,
    so only ∂L/∂v (which has no cancellation) is then held to ``grad_tol``; elsewhere all four
    are. ``guard``: whether it must fire (True), must not (False) or may (None)."""
    k, v, w, u = make_inputs(B, C, T, name, seed)
    g = torch.randn(B, C, T, generator=torch.Generator().manual_seed(seed + 1))
    y, gk, gv, gw, gu, term_max, gk_max = run(
        k, v, w, u, g, device, grid_h=grid_h, seed=seed, **kwargs
    )
    dtype = kwargs.get("dtype", torch.float32)
    # half-precision inputs: the kernels see the rounded values (computed in float32)
    inputs = [x.to(dtype).double().requires_grad_() for x in (k, v)]
    inputs += [x.double().requires_grad_() for x in (w, u)]
    ref = reference(*inputs, grid_h)
    assert y.shape == (B, C, T)
    assert rel_err(y, ref) <= tol, f"y: {rel_err(y, ref):.2e}"
    want = torch.autograd.grad(ref, inputs, g.double())
    check_gradients((gk, gv, gw, gu), want, term_max, gk_max, guard, grad_tol)
    if not kwargs.get("accumulate"):
        assert torch.equal(gk_max, gk.abs().max())


# ------------------------------------------------------------------------------------------
# both backends (the interpreter's cases are small)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "T,name",
    [
        (1, "moderate"),
        (2, "strong"),
        (5, "zero"),
        (37, "model"),
        (37, "strong"),
        (33, "growth_extreme"),
        (33, "decay_extreme"),
    ],
)
def test_matches_formula(device, T, name):
    # the model's range must never need the float64 recomputation
    check(2, 2, T, name, seed=T, device=device, guard=False if name in ("zero", "model") else None)


@pytest.mark.parametrize("wT", [20000.0, -20000.0])
def test_decay_far_outside_the_model_range(device, wT):
    # |w·T| = 20000: offsets in the tens of thousands, exact only as float64. With such growth
    # (wT < 0) each y_t is its farthest token's v, ∂L/∂k ~ 1e-208 cancels entirely and the
    # guard must send the call to float64.
    T = 40
    k, v, _, u = make_inputs(1, 2, T, "moderate", seed=3)
    w = torch.tensor([wT / T, wT / T * 0.3])
    g = torch.randn(1, 2, T, generator=torch.Generator().manual_seed(4))
    y, gk, gv, gw, gu, term_max, gk_max = run(k, v, w, u, g, device)
    inputs = [x.double().requires_grad_() for x in (k, v, w, u)]
    ref = reference(*inputs, 0)
    assert rel_err(y, ref) <= TOL
    want = torch.autograd.grad(ref, inputs, g.double())
    check_gradients((gk, gv, gw, gu), want, term_max, gk_max, guard=wT < 0)


def test_grid_order_chunk_views_and_accumulate(device):
    # a 5 x 7 grid read column-major, k and v as chunks of a (B, 3C, T) tensor, out and the
    # gradients added to what they held
    check(2, 2, 35, "strong", seed=5, device=device, grid_h=5, layout="chunk", accumulate=True)


def test_channels_last_views_half_inputs_and_outputs(device):
    # (B, T, C) tensors permuted to (B, C, T), bf16 inputs and fp16 output
    check(
        1, 3, 30, "moderate", seed=6, device=device, grid_h=6, layout="channels_last",
        dtype=torch.bfloat16, out_dtype=torch.float16, out_layout="channels_last",
        tol=2 * torch.finfo(torch.float16).eps,
    )  # fmt: skip


def test_carry_pass_over_many_blocks(device, monkeypatch):
    # 16-position blocks and 4 totals per carry step on a 150-position sequence (10 blocks)
    monkeypatch.setattr(bt, "BLOCK", 16)
    monkeypatch.setattr(bt, "_MIN_BLOCK", 16)
    monkeypatch.setattr(bt, "CARRY_BLOCK", 4)
    check(1, 1, 150, "strong", seed=7, device=device)


def test_expanded_gradient_and_empty_inputs(device):
    # ∂L/∂y of y.sum() arrives as an expanded tensor (stride 0 along T)
    B, C, T = 1, 2, 20
    k, v, w, u = make_inputs(B, C, T, "moderate", seed=8)
    g = torch.ones(1, 1, 1).expand(B, C, T)
    _, gk, gv, gw, gu, term_max, gk_max = run(k, v, w, u, g, device)
    inputs = [x.double().requires_grad_() for x in (k, v, w, u)]
    want = torch.autograd.grad(reference(*inputs, 0).sum(), inputs)
    check_gradients((gk, gv, gw, gu), want, term_max, gk_max)
    # nothing to compute: no launch, zero reductions
    z = torch.zeros(0, C, T, device=device)
    assert bt.forward(z, z, w.to(device), u.to(device), 0, z, False, False) is None
    saved = bt.forward(z, z, w.to(device), u.to(device), 0, z, False, True)
    gw, gu, term_max, gk_max = bt.backward(
        z, z, w.to(device), u.to(device), 0, z, saved, z.clone(), z.clone(), False
    )
    assert gw.abs().sum() == 0 and gu.abs().sum() == 0 and term_max == 0 and gk_max == 0


def naive_guard_terms(k, v, w, u, g):
    """max(|v_i·e^{k_i}Zα_i|, |e^{k_i}Z(αy)_i|) from the T x T weights (float64, (B, C, T))."""
    k, v, g = (x.double().transpose(1, 2) for x in (k, v, g))
    w, u = w.double(), u.double()
    T = k.shape[1]
    t = torch.arange(T, dtype=torch.float64)
    dist = (t[:, None] - t[None, :]).abs()
    diag = torch.eye(T, dtype=torch.bool)[None, :, :, None]
    log_k = -(dist - 1)[None, :, :, None] * w + k[:, None, :, :]  # (B, t, i, C): log K_ti
    log_k = torch.where(diag, (u + k)[:, None, :, :].expand_as(log_k), log_k)
    weight = torch.exp(log_k - torch.logsumexp(log_k, dim=2, keepdim=True))  # K_ti / D_t
    y = (weight * v[:, None]).sum(dim=2)  # (B, t, C)
    off = weight * g[:, :, None, :] * (~diag)  # K_ti α_t, t ≠ i
    za = off.sum(dim=1)  # e^{k_i} Zα_i
    zay = (off * y[:, :, None, :]).sum(dim=1)
    return max((v * za).abs().max().item(), zay.abs().max().item())


@pytest.mark.parametrize(
    "case", ["dominant_token", "model_range"], ids=["dominant_token", "model_range"]
)
def test_cancellation_guard_measures(device, case):
    # The dispatch recomputes in float64 where 16·eps·term_max > 1e-4·max|∂L/∂k|: the
    # dominant token of test_bi_wkv.py (k_2 holds every row, ∂L/∂k_2 ~ 1e-5 of its terms)
    # must trip it, the model's range must not.
    if case == "dominant_token":
        gen = torch.Generator().manual_seed(4768)
        k = ((torch.rand(1, 6, 1, generator=gen) * 2 - 1) * 20.0).transpose(1, 2)
        v = torch.randn(1, 6, 1, generator=gen).transpose(1, 2)
        w = (torch.rand(1, generator=gen) * 2 - 1) * 0.0
        u = (torch.rand(1, generator=gen) * 2 - 1) * -39.0 / 6
        g = torch.randn(1, 6, 1, generator=torch.Generator().manual_seed(4769)).transpose(1, 2)
    else:
        k, v, w, u = make_inputs(2, 2, 24, "model", seed=1)
        g = torch.randn(2, 2, 24, generator=torch.Generator().manual_seed(2))
    _, gk, _, _, _, term_max, gk_max = run(k, v, w, u, g, device)
    want = naive_guard_terms(k, v, w, u, g)
    assert abs(term_max.item() - want) <= 1e-3 * want
    assert gk_max.item() == gk.abs().max().item()
    assert guard_fires(term_max, gk_max) == (case == "dominant_token")


_CONSTEXPRS = {
    "BLOCK": 1024,
    "CB": 1024,
    "GRID": True,
    "ACCUMULATE": True,
    "SAVE": True,
    "REVERSE": True,
}
_FLOAT64_PTRS = ("tp_ptr", "cp_ptr", "ld_ptr")
_INPUT_PTRS = ("k_ptr", "v_ptr", "g_ptr", "out_ptr")


@pytest.mark.slow
def test_kernels_compile_for_a_gpu_without_one(monkeypatch):
    """Every kernel lowers to machine code for sm_90 (Triton's bundled ptxas; no GPU needed):
    type errors the interpreter lets through fail here. bf16 inputs, the grid order and the
    accumulating, saving variants, i.e. the most code."""
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed (pip install 'resyn[gpu]')")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    import triton

    try:
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
    except ImportError as exc:
        pytest.skip(f"this triton ({triton.__version__}) has another compile API: {exc}")
    kernels = bt._kernels()
    for name, fn in kernels.items():
        if not name.endswith("_kernel"):
            continue
        signature, constexprs = {}, {}
        for arg in fn.arg_names:
            if arg in _CONSTEXPRS:
                signature[arg] = "constexpr"
                constexprs[arg] = _CONSTEXPRS[arg]
            elif arg.endswith("_ptr"):
                bf16 = "*bf16" if arg in _INPUT_PTRS else "*fp32"
                signature[arg] = "*fp64" if arg in _FLOAT64_PTRS else bf16
            else:
                signature[arg] = "i32"
        try:
            source = ASTSource(fn, signature, constexprs)
        except TypeError as exc:
            pytest.skip(f"this triton ({triton.__version__}) has another compile API: {exc}")
        compiled = triton.compile(
            source,
            target=GPUTarget("cuda", 90, 32),
            options={"num_warps": 8, "enable_fp_fusion": True},
        )
        assert compiled.asm["cubin"], name


def test_bad_arguments_are_clear_errors():
    # checked before any kernel is built (no triton needed)
    z, w = torch.zeros(1, 2, 12), torch.zeros(2)
    with pytest.raises(ValueError, match="grid_h=5 does not divide T=12"):
        bt.forward(z, z, w, w, 5, z.clone(), False, False)
    with pytest.raises(ValueError, match="share one"):
        bt.forward(z, z, w, w, 0, torch.zeros(1, 2, 11), False, False)
    with pytest.raises(ValueError, match=r"w and u must be contiguous, of shape \(2,\)"):
        bt.forward(z, z, torch.zeros(3), w, 0, z.clone(), False, False)


def test_importing_the_module_does_not_import_triton():
    code = (
        "import sys, resyn.ops, resyn.ops._bi_wkv_triton as m; "
        "assert 'triton' not in sys.modules, 'triton imported'; "
        "ok, why = m.available(); assert isinstance(ok, bool) and isinstance(why, str); "
        "assert ok or why"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ------------------------------------------------------------------------------------------
# CUDA only: lengths and ranges the interpreter would take minutes over
# ------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("T", [3, 17, 64, 333, 1024, 1100])
@pytest.mark.parametrize("name", list(RANGES))
def test_cuda_matches_formula(cuda, T, name):
    check(2, 3, T, name, seed=T, device=cuda, guard=False if name in ("zero", "model") else None)


@pytest.mark.gpu
@pytest.mark.parametrize("grid_h", [1, 7, 32])
@pytest.mark.parametrize("layout", ["contiguous", "chunk", "channels_last"])
def test_cuda_grid_order_and_layouts(cuda, grid_h, layout):
    T = grid_h * 45
    check(2, 4, T, "strong", seed=grid_h, device=cuda, grid_h=grid_h, layout=layout,
          out_layout=layout, accumulate=grid_h == 7)  # fmt: skip


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("out_half", [False, True])
def test_cuda_half_precision_inputs(cuda, dtype, out_half):
    # computed in float32 on the rounded inputs; a half-precision output adds its rounding
    tol = 2 * torch.finfo(dtype).eps if out_half else TOL
    check(2, 8, 500, "moderate", seed=13, device=cuda, dtype=dtype,
          out_dtype=dtype if out_half else torch.float32, tol=tol)  # fmt: skip


@pytest.mark.gpu
@pytest.mark.parametrize(
    "T,grid_h,name",
    [
        (65_536, 0, "model"),
        (65_536, 256, "strong"),
        (262_144, 0, "growth_extreme"),
        (262_144, 512, "decay_extreme"),
    ],
)
def test_cuda_long_sequences_at_sampled_positions(cuda, T, grid_h, name):
    """Values and gradients against the formula at some rows (the loss looks only at them)."""
    B, C = 1, 3
    k, v, w, u = make_inputs(B, C, T, name, seed=T)
    gen = torch.Generator().manual_seed(7)
    rows = torch.cat(
        [torch.tensor([0, 1, T // 2, T - 2, T - 1]), torch.randint(0, T, (7,), generator=gen)]
    ).unique()
    g_rows = torch.randn(B, C, len(rows), generator=gen)
    g = torch.zeros(B, C, T)
    g[..., sequence_positions(T, grid_h)[rows]] = g_rows
    y, gk, gv, gw, gu, term_max, gk_max = run(k, v, w, u, g, cuda, grid_h=grid_h)
    inputs = [x.double().requires_grad_() for x in (k, v, w, u)]
    ref = reference(*inputs, grid_h, rows=rows)
    assert rel_err(y[..., sequence_positions(T, grid_h)[rows]], ref) <= TOL
    want = torch.autograd.grad((ref * g_rows.double()).sum(), inputs)
    check_gradients(
        (gk, gv, gw, gu), want, term_max, gk_max, guard=False if name == "model" else None
    )


@pytest.mark.gpu
@settings(max_examples=30, deadline=None)
@given(
    B=st.integers(1, 3),
    T=st.integers(1, 90),
    C=st.integers(1, 5),
    name=st.sampled_from(sorted(RANGES)),
    grid=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_cuda_property_random_shapes_and_ranges(B, T, C, name, grid, seed):
    ok, why = bt.available()
    if not ok:
        pytest.skip(f"Triton kernels unavailable: {why}")
    divisors = [h for h in range(2, T + 1) if T % h == 0]
    grid_h = divisors[seed % len(divisors)] if grid and divisors else 0
    check(B, C, T, name, seed, device="cuda", grid_h=grid_h)
