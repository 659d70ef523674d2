"""The compiled CPU Bi-WKV against the float64 literal formula and the pure-PyTorch path.

The kernel is built on first use; on a machine with a C++ compiler (CI included) it must build,
so these tests fail rather than skip when it does not. ``RESYN_BI_WKV=torch`` skips them.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from resyn.ops import _bi_wkv_cpp, _bi_wkv_kernel, bi_wkv, bi_wkv_backend_status, cross_bi_wkv

_spec = importlib.util.spec_from_file_location(
    "bi_wkv_oracle", Path(__file__).with_name("bi_wkv_oracle.py")
)
oracle = importlib.util.module_from_spec(_spec)
sys.modules["bi_wkv_oracle"] = oracle
_spec.loader.exec_module(oracle)

TOL, GRAD_TOL = 1e-4, 1e-3

pytestmark = pytest.mark.skipif(
    os.environ.get("RESYN_BI_WKV", "").lower() == "torch", reason="RESYN_BI_WKV=torch"
)


@pytest.fixture(scope="module", autouse=True)
def kernel():
    ok, why = _bi_wkv_cpp.available()
    assert ok, f"the compiled Bi-WKV did not build: {why}"


def rel_err(a, b):
    scale = max(b.double().abs().max().item(), 1e-300)
    return ((a.double() - b.double()).abs().max() / scale).item()


def inputs(B, T, C, seed, k_scale=1.0, wT=(-5.0, 3.0), uT=(0.0, 0.0), dtype=torch.float32):
    """k ~ N(0, k_scale²), w·T ~ U[wT], u·T ~ U[uT], v ~ N(0, 1); leaf tensors."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(B, T, C, generator=g) * k_scale
    v = torch.randn(B, T, C, generator=g)
    w = (wT[0] + (wT[1] - wT[0]) * torch.rand(C, generator=g)) / T
    u = (uT[0] + (uT[1] - uT[0]) * torch.rand(C, generator=g)) / T
    return [x.to(dtype).requires_grad_() for x in (k, v, w, u)]


def check(k, v, w, u, tol=TOL, grad_tol=GRAD_TOL, seed=0):
    """Compiled values and all four gradients against the T x T formula in float64."""
    y = bi_wkv(k, v, w, u, backend="compiled")
    ref = oracle.naive_bi_wkv(k, v, w, u)
    assert y.dtype == v.dtype and y.shape == v.shape
    assert rel_err(y, ref) <= tol
    g = torch.randn(v.shape, generator=torch.Generator().manual_seed(seed + 1))
    got = torch.autograd.grad(y, (k, v, w, u), g.to(v.dtype))
    want = torch.autograd.grad(ref, (k, v, w, u), g.double())
    for name, a, b in zip("kvwu", got, want):
        assert a.dtype == b.dtype or a.dtype == v.dtype
        assert rel_err(a, b) <= grad_tol, f"gradient of {name}"


@settings(max_examples=60, deadline=None)
@given(
    B=st.integers(1, 3),
    T=st.integers(1, 70),
    C=st.integers(1, 20),
    # k ~ N(0, 10²) reaches ±40: wider spreads make a token dominate its whole sequence so
    # strongly (e^35) that its own ∂L/∂k is below float64's resolution of v − y, for the
    # reference as much as for the kernel (test_huge_k_and_decays covers huge k with decay).
    k_scale=st.sampled_from([0.1, 1.0, 5.0, 10.0]),
    wT=st.floats(-60, 60),
    uT=st.floats(-60, 60),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_matches_formula(B, T, C, k_scale, wT, uT, seed):
    # |w·T| and |u| on both sides of the single-scale tasks' limit (30): both kernels run.
    check(*inputs(B, T, C, seed, k_scale, (wT, wT / 2), (uT, -uT)), seed=seed)


@pytest.mark.parametrize("T", [1, 2, 3, 7, 31, 64, 65, 129])
@pytest.mark.parametrize("C", [1, 8, 16, 17, 48])
def test_model_initialisation_range(T, C):
    # k ~ N(0, 1), w = U[-5, 3] / T, u = 0: the model at initialisation; odd T, T = 1, lanes
    # that fill 8- and 16-wide blocks or leave a remainder.
    check(*inputs(2, T, C, seed=T * 100 + C), seed=T)


@pytest.mark.parametrize(
    "k_scale,wT",
    [
        (60.0, (-5.0, 3.0)),
        (60.0, (-200.0, 200.0)),
        (300.0, (-200.0, 200.0)),
        (300.0, (-3000.0, -2000.0)),
        (300.0, (5000.0, 9000.0)),
    ],
)
def test_huge_k_and_decays(k_scale, wT):
    # k far beyond float32's exp range and |w·T| in the thousands (growth and decay). Without
    # decay, k ~ N(0, 300²) makes single tokens hold whole sequences by factors beyond e^100,
    # where ∂L/∂k is below float64's resolution for the reference too.
    check(*inputs(1, 90, 5, seed=int(k_scale), k_scale=k_scale, wT=wT, uT=(-400.0, 400.0)))


@pytest.mark.parametrize("T", [65_536, 262_144])
@pytest.mark.parametrize("wT,uT", [((-5.0, 3.0), (0.0, 0.0)), ((40.0, 60.0), (-50.0, 50.0))])
def test_long_sequences_at_sampled_rows(T, wT, uT):
    B, C = 1, 3
    k, v, w, u = inputs(B, T, C, seed=T, wT=wT, uT=uT)
    rows = torch.tensor([0, 1, 2, T // 3, T // 2, T - 2, T - 1])
    y = bi_wkv(k, v, w, u, backend="compiled")
    ref = oracle.naive_bi_wkv_rows(k, v, w, u, rows)
    assert rel_err(y[:, rows], ref) <= TOL
    g = torch.randn(B, len(rows), C, generator=torch.Generator().manual_seed(3))
    got = torch.autograd.grad((y[:, rows] * g).sum(), (k, v, w, u))
    want = torch.autograd.grad((ref * g.double()).sum(), (k, v, w, u))
    for name, a, b in zip("kvwu", got, want):
        assert rel_err(a, b) <= GRAD_TOL, f"gradient of {name}"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_in_and_out(dtype):
    k, v, w, u = (x.detach() for x in inputs(2, 50, 20, seed=1))
    k16, v16 = k.to(dtype).requires_grad_(), v.to(dtype).requires_grad_()
    y = bi_wkv(k16, v16, w, u, backend="compiled")
    assert y.dtype == dtype
    y32 = bi_wkv(k16.detach().float(), v16.detach().float(), w, u, backend="torch")
    eps = torch.finfo(dtype).eps
    assert (y.float() - y32).abs().max() <= 2 * eps * y32.abs().max()
    gk, gv = torch.autograd.grad(y.float().sum(), (k16, v16))
    assert gk.dtype == dtype and gv.dtype == dtype and torch.isfinite(gk.float()).all()


def test_float64_inputs_are_computed_in_float64():
    check(*inputs(2, 40, 5, seed=5, wT=(-50.0, 50.0), uT=(-50, 50), dtype=torch.float64),
          tol=1e-10, grad_tol=1e-8)


def test_strided_views_are_read_in_place():
    # k, v as column blocks of one (B, T, 3C) product, passed as (B, C, T) views; the result
    # in either layout equals the contiguous computation.
    B, T, C = 2, 37, 9
    kvr = torch.randn(B, T, 3 * C, requires_grad=True)
    k, v, _ = kvr.split(C, dim=-1)
    w, u = torch.rand(C) / T, torch.rand(C) / T
    y_cf = bi_wkv(k.transpose(1, 2), v.transpose(1, 2), w, u, channels_first=True,
                  backend="compiled")
    y_tok = bi_wkv(k, v, w, u, backend="compiled")
    ref = bi_wkv(k.detach().contiguous(), v.detach().contiguous(), w, u, backend="torch")
    assert torch.allclose(y_cf.transpose(1, 2), ref, atol=1e-5)
    assert torch.allclose(y_tok, ref, atol=1e-5)
    (g,) = torch.autograd.grad(y_tok.sum(), kvr)
    kc, vc = (x.detach().contiguous().requires_grad_() for x in (k, v))
    gk, gv = torch.autograd.grad(bi_wkv(kc, vc, w, u, backend="torch").sum(), (kc, vc))
    assert torch.allclose(g[..., :C], gk, atol=1e-4) and torch.allclose(g[..., C : 2 * C], gv, atol=1e-4)
    assert (g[..., 2 * C :] == 0).all()


def _grid_t(x, H, W):
    B, C, _ = x.shape
    return x.view(B, C, H, W).transpose(2, 3).reshape(B, C, H * W)


@pytest.mark.parametrize("hw", [(1, 1), (1, 7), (7, 1), (3, 5), (16, 9)])
def test_cross_bi_wkv_matches_two_pure_branches(hw):
    H, W = hw
    B, C = 2, 19
    g = torch.Generator().manual_seed(H * 10 + W)
    kvr = torch.randn(B, H * W, 3 * C, generator=g, requires_grad=True)
    k, v, _ = (x.transpose(1, 2) for x in kvr.split(C, dim=-1))
    params = [torch.randn(C, generator=g).div(H * W).requires_grad_() for _ in range(4)]
    wh, uh, wv, uv = params
    y = cross_bi_wkv(k, v, (wh, wv), (uh, uv), hw, backend="compiled")
    assert y.shape == (B, H * W, C)
    kc, vc = (x.detach().clone().requires_grad_() for x in (k, v))
    p2 = [p.detach().clone().requires_grad_() for p in params]
    yh = bi_wkv(kc, vc, p2[0], p2[1], channels_first=True, backend="torch")
    yv = bi_wkv(_grid_t(kc, H, W), _grid_t(vc, H, W), p2[2], p2[3], channels_first=True,
                backend="torch")
    ref = (yh + _grid_t(yv, W, H)).transpose(1, 2)
    assert torch.allclose(y, ref, atol=1e-5)
    gy = torch.randn(y.shape, generator=g)
    got = torch.autograd.grad(y, [kvr, *params], gy)
    want = torch.autograd.grad(ref, [kc, vc, *p2], gy)
    assert torch.allclose(got[0][..., :C].transpose(1, 2), want[0], atol=1e-4)
    assert torch.allclose(got[0][..., C : 2 * C].transpose(1, 2), want[1], atol=1e-4)
    for a, b in zip(got[1:], want[2:]):
        assert rel_err(a, b) <= GRAD_TOL


def test_cancellation_guard_recomputes_in_float64(monkeypatch):
    # w = 0 and one dominant token (k = 19.9) holding every row: ∂L/∂k is ~1e-5 of its terms,
    # so the guard must fire and the float64 gradients be returned.
    calls = []
    real = _bi_wkv_kernel._float64_backward

    def spy(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(_bi_wkv_kernel, "_float64_backward", spy)
    g = torch.Generator().manual_seed(4768)
    k = ((torch.rand(1, 6, 1, generator=g) * 2 - 1) * 20).requires_grad_()
    v = torch.randn(1, 6, 1, generator=g).requires_grad_()
    w = torch.zeros(1, requires_grad=True)
    u = torch.full((1,), -6.5, requires_grad=True)
    check(k, v, w, u)
    assert calls == [1]
    calls.clear()
    check(*inputs(2, 64, 8, seed=1))  # the model's range: float32 suffices
    assert calls == []


def test_custom_ops_pass_torch_library_opcheck():
    k, v, w, u = (x.detach() for x in inputs(2, 12, 5, seed=3))
    kk, vv = k.transpose(1, 2), v.transpose(1, 2)
    ws, us = torch.stack([w, w * 2]).requires_grad_(), torch.stack([u, u]).requires_grad_()
    kk, vv = kk.requires_grad_(), vv.requires_grad_()
    torch.library.opcheck(_bi_wkv_kernel.wkv_forward, (kk, vv, ws, us, 3, True, True))
    plain = [x.detach() for x in (kk, vv, ws[:1], us[:1])]  # save=False: inference only
    torch.library.opcheck(_bi_wkv_kernel.wkv_forward, (*plain, 0, False, False))


def test_backend_selection_and_the_pure_path(monkeypatch):
    assert bi_wkv_backend_status("cpu")[0] == "compiled"
    monkeypatch.setenv("RESYN_BI_WKV", "torch")
    backend, why = bi_wkv_backend_status("cpu")
    assert backend == "torch" and "RESYN_BI_WKV=torch" in why
    with pytest.raises(ValueError, match="RESYN_BI_WKV must be one of"):
        monkeypatch.setenv("RESYN_BI_WKV", "fast")
        bi_wkv_backend_status("cpu")


def test_failed_build_falls_back_with_the_reason(monkeypatch):
    monkeypatch.setattr(_bi_wkv_cpp, "_state", None)
    monkeypatch.setattr(_bi_wkv_cpp, "_compiler", lambda: None)
    backend, why = bi_wkv_backend_status("cpu")
    assert backend == "torch" and "no C++ compiler" in why
    k, v, w, u = inputs(1, 20, 3, seed=0)
    y = bi_wkv(k, v, w, u)  # runs on the pure path
    assert rel_err(y, oracle.naive_bi_wkv(k, v, w, u)) <= TOL
    with pytest.raises(ValueError, match="no compiled kernel runs"):
        bi_wkv(k, v, w, u, backend="compiled")


@pytest.mark.parametrize("hw", [(3, 5), (4, 4)])
def test_pure_float64_fallback_matches_the_kernel_in_float64(hw):
    # The guard's recomputation for backends without float64 kernels (Triton) uses the
    # pure-PyTorch formulas; on the CPU both it and the kernel's float64 path can run.
    H, W = hw
    g = torch.Generator().manual_seed(H * W)
    B, C, T = 2, 5, H * W
    k, v = (torch.randn(B, C, T, generator=g, dtype=torch.float64) for _ in range(2))
    w, u = (torch.randn(2, C, generator=g, dtype=torch.float64) / T for _ in range(2))
    grad = torch.randn(B, T, C, generator=g, dtype=torch.float64)
    _, ys, top, den = _bi_wkv_kernel.wkv_forward(k, v, w, u, H, True, True)
    want = _bi_wkv_kernel._backward(_bi_wkv_cpp, k, v, w, u, H, True, grad, (ys, top, den))
    got = _bi_wkv_kernel._torch_float64_backward(k, v, w, u, H, True, grad)
    for name, a, b in zip(("k", "v", "w", "u"), got, want):
        assert rel_err(a, b) <= 1e-10, f"gradient of {name}"
