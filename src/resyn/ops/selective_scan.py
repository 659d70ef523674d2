"""Mamba's selective scan (S6) in pure PyTorch: CPU-capable, differentiable, O(L).

Semantics are those of ``mamba_ssm``'s ``selective_scan_fn`` (without the ``z`` gate), for
``u, delta`` of shape (batch, D, L), ``A`` (D, N), ``B, C`` (batch, N, L) or grouped
(batch, G, N, L) with D divisible by G, ``D`` (D,) and ``delta_bias`` (D,)::

    delta  = softplus(delta + delta_bias)            (softplus only if delta_softplus)
    h_l    = exp(delta_l * A) * h_{l-1} + delta_l * B_l * u_l      (h: (D, N) per batch item)
    y_l    = sum_n C_l[n] * h_l[:, n] + D * u_l

Algorithm (no Python loop over tokens):

* The sequence is cut into chunks whose state tensor (batch, D, N, chunk) fits a fixed element
  budget; chunks run one after the other, each starting from the previous chunk's last state
  (folded into the chunk's first input as ``b_0 + a_0 * h_prev``), and each chunk is contracted
  with C before the next starts, so memory is bounded whatever L is.
* Inside a chunk the linear recurrence ``h_l = a_l h_{l-1} + b_l`` is solved by a work-efficient
  odd/even (Blelloch-style) parallel scan: pairs ``(a_2i, b_2i), (a_2i+1, b_2i+1)`` are composed
  into ``(a_2i+1 a_2i, a_2i+1 b_2i + b_2i+1)``, the half-length problem is solved recursively and
  the even states are recovered as ``a_2i h_2i-1 + b_2i``. Total work is about 2x a sequential
  scan (O(L)), depth O(log L). Every factor multiplied is a decay ``exp(delta * A)`` in (0, 1], so
  nothing overflows (no ``exp(-cumsum)`` rescaling that breaks for strong decays) and autograd
  gives the gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["linear_scan", "selective_scan", "selective_scan_ref"]

# Elements of one (batch, D, N, chunk) tensor; a handful of such tensors are alive at a time.
DEFAULT_CHUNK_ELEMENTS = 1 << 22


def linear_scan(a: Tensor, b: Tensor) -> Tensor:
    """Solve ``h_l = a_l * h_{l-1} + b_l`` (``h_{-1} = 0``) along the last dimension.

    ``a`` and ``b`` broadcast to a common shape; the result has that shape. Parallel odd/even
    recursion: O(L) work, O(log L) depth.
    """
    a, b = torch.broadcast_tensors(a, b)
    length = a.shape[-1]
    if length == 1:
        return b
    if length % 2:
        # pad with an identity step (a=1, b=0) so pairs line up, then drop it
        a = torch.cat([a, torch.ones_like(a[..., :1])], dim=-1)
        b = torch.cat([b, torch.zeros_like(b[..., :1])], dim=-1)
    a_even, a_odd = a[..., 0::2], a[..., 1::2]
    b_even, b_odd = b[..., 0::2], b[..., 1::2]
    h_odd = linear_scan(a_odd * a_even, a_odd * b_even + b_odd)
    h_before_even = torch.cat([torch.zeros_like(h_odd[..., :1]), h_odd[..., :-1]], dim=-1)
    h_even = a_even * h_before_even + b_even
    h = torch.stack([h_even, h_odd], dim=-1).flatten(-2)
    return h[..., :length]


def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    *,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> Tensor:
    """Selective scan, ``selective_scan_fn`` semantics (see the module docstring).

    Computes in float32 at least (float64 stays float64) and returns that dtype, as the CUDA
    kernel returns float32 for half inputs.
    """
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(
            f"u and delta must both be (batch, D, L); got {tuple(u.shape)}, {tuple(delta.shape)}"
        )
    batch, dim, length = u.shape
    if A.shape[0] != dim or A.dim() != 2:
        raise ValueError(f"A must be (D={dim}, N); got {tuple(A.shape)}")
    n_state = A.shape[1]
    B, groups = _grouped(B, "B", batch, n_state, length)
    C, c_groups = _grouped(C, "C", batch, n_state, length)
    if c_groups != groups:
        raise ValueError(f"B has {groups} group(s) but C has {c_groups}")
    if dim % groups:
        raise ValueError(f"D={dim} is not divisible by the {groups} groups of B/C")
    dtype = torch.promote_types(u.dtype, torch.float32)
    per_group = dim // groups
    if u.device.type == "meta":
        # Meta tensors carry shapes only (FLOP counting, shape inference). The scan is
        # element-wise work that FLOP counters do not count, and running its chunk loop on meta
        # tensors took minutes per model (hundreds of chunks of a recursive scan at 1280x720).
        return torch.empty(batch, dim, length, dtype=dtype, device=u.device)

    u = u.to(dtype)
    delta = delta.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[None, :, None]
    if delta_softplus:
        delta = F.softplus(delta)
    # (batch, G, Dg, ...) views so that B/C broadcast over the channels of their group
    delta_g = delta.reshape(batch, groups, per_group, 1, length)
    du_g = (delta * u).reshape(batch, groups, per_group, 1, length)
    A_g = A.to(dtype).reshape(1, groups, per_group, n_state, 1)
    B_g = B.to(dtype).unsqueeze(2)  # (batch, G, 1, N, L)
    C_g = C.to(dtype).unsqueeze(2)

    chunk = max(1, chunk_elements // max(1, batch * dim * n_state))
    outputs = []
    state: Tensor | None = None
    for start in range(0, length, chunk):
        stop = min(length, start + chunk)
        a = torch.exp(delta_g[..., start:stop] * A_g)  # (batch, G, Dg, N, T)
        b = du_g[..., start:stop] * B_g[..., start:stop]
        if state is not None:
            b = torch.cat([b[..., :1] + a[..., :1] * state.unsqueeze(-1), b[..., 1:]], dim=-1)
        h = linear_scan(a, b)
        state = h[..., -1]
        outputs.append((h * C_g[..., start:stop]).sum(dim=3))  # (batch, G, Dg, T)
    y = torch.cat(outputs, dim=-1).reshape(batch, dim, length)
    if D is not None:
        y = y + u * D.to(dtype)[None, :, None]
    return y


def _grouped(t: Tensor, name: str, batch: int, n_state: int, length: int) -> tuple[Tensor, int]:
    if t.dim() == 3:
        t = t.unsqueeze(1)
    if t.dim() != 4 or t.shape[0] != batch or t.shape[2] != n_state or t.shape[3] != length:
        raise ValueError(
            f"{name} must be (batch={batch}, N={n_state}, L={length}) or "
            f"(batch, G, N, L); got {tuple(t.shape)}"
        )
    return t, t.shape[1]


def selective_scan_ref(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
) -> Tensor:
    """Token-by-token reference (slow; for tests only)."""
    batch, dim, length = u.shape
    dtype = torch.promote_types(u.dtype, torch.float32)
    u, delta, A = u.to(dtype), delta.to(dtype), A.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[None, :, None]
    if delta_softplus:
        delta = F.softplus(delta)
    B = (B.unsqueeze(1) if B.dim() == 3 else B).to(dtype)
    C = (C.unsqueeze(1) if C.dim() == 3 else C).to(dtype)
    per_group = dim // B.shape[1]
    B = B.repeat_interleave(per_group, dim=1)  # (batch, D, N, L)
    C = C.repeat_interleave(per_group, dim=1)
    h = u.new_zeros(batch, dim, A.shape[1])
    ys = []
    for t in range(length):
        h = (
            torch.exp(delta[:, :, t, None] * A) * h
            + (delta[:, :, t] * u[:, :, t])[..., None] * B[..., t]
        )
        ys.append((h * C[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + u * D.to(dtype)[None, :, None]
    return y
