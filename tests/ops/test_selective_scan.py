"""The pure-PyTorch selective scan against a token-by-token reference: values and gradients."""

from __future__ import annotations

import pytest
import torch

from resyn.ops.selective_scan import linear_scan, selective_scan, selective_scan_ref


def _inputs(dtype, batch=2, dim=6, n_state=3, length=37, groups=2, strong_decay=False):
    g = torch.Generator().manual_seed(7)

    def r(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)

    u = r(batch, dim, length)
    delta = r(batch, dim, length, scale=0.5)
    a_scale = 40.0 if strong_decay else 1.0
    A = -(torch.rand(dim, n_state, generator=g, dtype=torch.float64) * a_scale + 0.1).to(dtype)
    B = r(batch, groups, n_state, length)
    C = r(batch, groups, n_state, length)
    D = r(dim)
    bias = r(dim, scale=0.3)
    return [u, delta, A, B, C, D, bias]


def test_linear_scan_matches_loop():
    a = torch.rand(3, 4, 29, dtype=torch.float64)
    b = torch.randn(3, 4, 29, dtype=torch.float64)
    h = torch.zeros(3, 4, dtype=torch.float64)
    expected = []
    for t in range(29):
        h = a[..., t] * h + b[..., t]
        expected.append(h)
    torch.testing.assert_close(linear_scan(a, b), torch.stack(expected, -1))


@pytest.mark.parametrize("length", [1, 2, 5, 37, 64])
@pytest.mark.parametrize("chunk_elements", [1, 300, 1 << 22])  # chunks of 1, 8, all
def test_values_float64(length, chunk_elements):
    args = _inputs(torch.float64, length=length)
    got = selective_scan(*args, delta_softplus=True, chunk_elements=chunk_elements)
    ref = selective_scan_ref(*args, delta_softplus=True)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


def test_ungrouped_b_c_and_no_optional_terms():
    u, delta, A, B, C, _, _ = _inputs(torch.float64, groups=1)
    B, C = B[:, 0], C[:, 0]  # (batch, N, L)
    delta = delta.abs()
    torch.testing.assert_close(
        selective_scan(u, delta, A, B, C), selective_scan_ref(u, delta, A, B, C)
    )


def test_strong_decay_is_stable_float32():
    # decays exp(delta*A) down to ~e^-100 per step: exp(-cumsum) tricks overflow here
    args = _inputs(torch.float32, length=200, strong_decay=True)
    got = selective_scan(*args, delta_softplus=True, chunk_elements=500)
    ref = selective_scan_ref(*[t.double() for t in args], delta_softplus=True)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-4)


def test_values_float32():
    args = _inputs(torch.float32, length=100)
    got = selective_scan(*args, delta_softplus=True, chunk_elements=300)
    ref = selective_scan_ref(*[t.double() for t in args], delta_softplus=True)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 2e-4)])
def test_gradients_match_reference(dtype, tol):
    args = [t.clone().requires_grad_(True) for t in _inputs(dtype, length=23)]
    out = selective_scan(*args, delta_softplus=True, chunk_elements=180)  # chunks of 5
    weight = torch.randn_like(out)
    grads = torch.autograd.grad((out * weight).sum(), args)

    ref_args = [t.detach().double().requires_grad_(True) for t in args]
    ref = selective_scan_ref(*ref_args, delta_softplus=True)
    ref_grads = torch.autograd.grad((ref * weight.double()).sum(), ref_args)
    for got, exp in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got.double(), exp, rtol=tol, atol=tol)


def test_gradcheck_small():
    args = [
        t.requires_grad_(True)
        for t in _inputs(torch.float64, batch=1, dim=2, n_state=2, length=6, groups=1)
    ]
    assert torch.autograd.gradcheck(
        lambda *a: selective_scan(*a, delta_softplus=True, chunk_elements=8), args
    )


def test_bad_shapes_are_named():
    u, delta, A, B, C, _, _ = _inputs(torch.float32)
    with pytest.raises(ValueError, match="A must be"):
        selective_scan(u, delta, A[:3], B, C)
    with pytest.raises(ValueError, match="B must be"):
        selective_scan(u, delta, A, B[..., :5], C)
    with pytest.raises(ValueError, match="divisible"):
        selective_scan(u[:, :5], delta[:, :5], A[:5], B, C)


def test_meta_tensors_give_shape_and_dtype_without_running_the_scan(monkeypatch):
    # FLOP counting (`resyn models`) runs MambaIR on the meta device at 1280x720 output; the
    # chunked scan loop used to take minutes there. Shapes only: (batch, D, L), float32.
    import resyn.ops.selective_scan as module

    def no_scan(a, b):
        raise AssertionError("the scan ran on meta tensors")

    monkeypatch.setattr(module, "linear_scan", no_scan)
    u, delta, A, B, C, D, bias = (
        t.to("meta") for t in _inputs(torch.bfloat16, batch=1, dim=8, n_state=16, length=1)
    )
    length = 230_400  # 640x360 tokens, the x2 input of the paper's protocol
    u = u.expand(1, 8, length)
    delta = delta.expand(1, 8, length)
    B, C = B.expand(1, 2, 16, length), C.expand(1, 2, 16, length)
    y = selective_scan(u, delta, A, B, C, D, bias, delta_softplus=True, chunk_elements=1)
    assert y.device.type == "meta" and y.shape == (1, 8, length) and y.dtype == torch.float32
