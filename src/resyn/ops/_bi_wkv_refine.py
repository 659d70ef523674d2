"""Cancellation guard for the Bi-WKV backward pass: float64 where float32 cannot hold ∂L/∂k.

∂L/∂k_i = Σ_t α_t·K_ti·(v_i − y_t) is formed in O(T) as v_i·(PZα)_i − (PZ(αy))_i: two scans
subtracted. When one token holds whole rows (y_t ≈ v_i for every t that weighs on i), the
difference can be 1e-5 of the terms, and float32's rounding of y and of the scans (a few units
of 2^-24 of the terms) is then a visible part of the result; the literal T x T formula does not
suffer because each row's own term cancels exactly.

The guard measures, while the float32 backward runs, the largest subtracted term and the
largest |∂L/∂k|. Rounding is bounded by ``ROUNDING_UNITS`` · eps · (largest term); if that bound
exceeds ``TARGET`` · max|∂L/∂k|, the call's gradients are recomputed in float64 (forward and
backward, from the same float32 inputs). The check costs two reductions per pass; the float64
rerun, about four times a float32 backward and twice its memory, runs only on such inputs
(the model's layers sum gradients over many positions and channels, so their largest ∂L/∂k is
not a cancelled one).
"""

from __future__ import annotations

import torch
from torch import Tensor

# Target relative error of ∂L/∂k (max error / max |∂L/∂k| of the call); the tests ask 1e-3.
TARGET = 1e-4
# Rounding of the subtracted terms, in units of the compute dtype's eps: y (1 rounding in the
# ratio, 2 in num and den), the scans' sums and products (~4); generous on purpose.
ROUNDING_UNITS = 16.0


def abs_max(x: Tensor) -> Tensor:
    """max |x| as a 0-dim tensor, in one pass and without a temporary (no sync)."""
    if x.numel() == 0:
        return torch.zeros((), dtype=x.dtype, device=x.device)
    lo, hi = torch.aminmax(x)
    return torch.maximum(-lo, hi)


class Guard:
    """Accumulates (largest subtracted term, largest |∂L/∂k|) over a call's segments."""

    def __init__(self) -> None:
        self.terms: list[Tensor] = []
        self.result: list[Tensor] = []

    def add(self, v_times_pza: Tensor, pzay: Tensor) -> None:
        """Record the two subtracted scans (call before they are combined in place)."""
        self.terms.append(torch.maximum(abs_max(v_times_pza), abs_max(pzay)))

    def add_result(self, grad_k: Tensor) -> None:
        self.result.append(abs_max(grad_k))

    def cancelled(self, dtype: torch.dtype) -> bool:
        """Whether float32 rounding may exceed ``TARGET`` of the largest ∂L/∂k."""
        if dtype == torch.float64 or not self.terms:
            return False
        eps = torch.finfo(dtype).eps
        terms = torch.stack(self.terms).max().double()
        result = torch.stack(self.result).max().double()
        bound = ROUNDING_UNITS * eps * terms
        # one sync per backward call (the forward's range check already syncs)
        return bool(bound > TARGET * result) and bool(torch.isfinite(terms))


def float64_grads(
    k: Tensor, v: Tensor, w: Tensor, u: Tensor, grad: Tensor, channels_first: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """All four gradients recomputed in float64 from the same inputs, cast back (both paths'
    fallback: ``bi_wkv`` picks the float64 path; any exact path gives the same gradients)."""
    from resyn.ops.bi_wkv import bi_wkv  # the public entry picks the path for float64

    dtype = k.dtype
    with torch.enable_grad():
        inputs = [t.detach().to(torch.float64).requires_grad_() for t in (k, v, w, u)]
        y = bi_wkv(*inputs, channels_first=channels_first)
        grads = torch.autograd.grad(y, inputs, grad.to(torch.float64))
    return tuple(g.to(dtype) for g in grads)  # type: ignore[return-value]
