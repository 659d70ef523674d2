"""The parts of RWKV-IR, named as in the paper (Fig. 4).

Tokens are pixels: a feature map (B, C, H, W) becomes a sequence (B, T, C) with T = H·W in
row-major order. Every part accepts any H and W (no windows, no padding).

Memory layout: tokens are contiguous (B, T, C) and feature maps are channels-last, which is
the same memory, so ``to_image`` and ``to_tokens`` are free views between the two; the
convolutions (DC-Shift, the layer conv) run in channels-last (oneDNN on a CPU) and the
projections, the Bi-WKV kernel and the norms read tokens in place.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from resyn.ops import bi_wkv, cross_bi_wkv
from resyn.ops._bi_wkv_kernel import transpose_grid


def to_tokens(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H·W, C), row-major: a view of a channels-last map, else a copy."""
    B, C, H, W = x.shape
    return x.permute(0, 2, 3, 1).reshape(B, H * W, C)


def to_image(x: Tensor, hw: tuple[int, int]) -> Tensor:
    """(B, H·W, C) -> (B, C, H, W) in channels-last memory: a view of contiguous tokens."""
    B, _, C = x.shape
    return x.reshape(B, hw[0], hw[1], C).permute(0, 3, 1, 2)


class ShiftBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (same parameters and state) that names the cause when it cannot train.

    In training, batch statistics need more than one value per channel (batch x H x W > 1);
    torch's own error ("Expected more than 1 value per channel") does not say which part of
    the model or what to change. In eval mode the running statistics are used, so any size,
    1x1 included, works as before.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.dim() == 4 and x.shape[0] * x.shape[2] * x.shape[3] == 1:
            raise ValueError(
                f"DC-Shift BatchNorm (shift_norm='batch') cannot train on input {tuple(x.shape)}: "
                "batch statistics need more than one value per channel (batch x height x width "
                "> 1). Train on a larger batch or image, use .eval() for inference, or build "
                "the model with shift_norm='none'"
            )
        return super().forward(x)


class ShiftInstanceNorm2d(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d(affine=True)`` that also accepts one pixel outside training.

    With one pixel per image x - mean is exactly 0, so the normalised map is the bias; torch
    refuses such inputs even in eval mode (its check says "when training"), which would break
    the model on 1x1 images. In training a single pixel is refused with a clear message.
    """

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4 and x.shape[2] * x.shape[3] == 1:
            if self.training:
                raise ValueError(
                    f"DC-Shift InstanceNorm (shift_norm='instance') cannot train on input "
                    f"{tuple(x.shape)}: instance statistics need more than one pixel. Train "
                    "on larger images or build the model with shift_norm='none'"
                )
            return torch.zeros_like(x) + self.bias.view(1, -1, 1, 1).to(x.dtype)
        return super().forward(x)


def _norm2d(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return ShiftBatchNorm2d(channels)
    if kind == "instance":
        return ShiftInstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"shift_norm must be 'batch', 'instance' or 'none', not {kind!r}")


class DCShift(nn.Module):
    """Depth-wise-convolution token shift (paper Fig. 4c / Fig. 5).

    Conv1x1-Norm -> GELU -> depth-wise Conv kxk -> GELU -> Conv1x1-Norm: each token is mixed with
    its k x k neighbourhood before the r, k, v projections (Vision-RWKV's Q-Shift uses only four
    neighbours and fixed channel groups). ``residual=True`` is the pre-release variant: the
    input plus the conv branch scaled by a learnable per-channel factor.
    """

    def __init__(
        self, dim: int, kernel_size: int = 3, norm: str = "batch", residual: bool = False
    ) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"DC-Shift kernel size must be odd and positive, not {kernel_size}")
        self.pw_in = nn.Conv2d(dim, dim, 1)
        self.norm_in = _norm2d(norm, dim)
        self.dw = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.pw_out = nn.Conv2d(dim, dim, 1)
        self.norm_out = _norm2d(norm, dim)
        self.act = nn.GELU()
        self.scale = nn.Parameter(torch.ones(dim, 1, 1)) if residual else None

    def forward(self, x: Tensor) -> Tensor:  # x: (B, C, H, W), best channels-last
        y = self.act(self.norm_in(_pointwise(self.pw_in, x)))
        y = self.act(self.dw(y))
        y = self.norm_out(_pointwise(self.pw_out, y))
        if self.scale is not None:
            return x + self.scale * y
        return y


def _pointwise(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """A 1x1 convolution as one matrix product over the pixels, in channels-last memory (the
    same parameters as ``conv``; CPU convolution would copy the map and run im2col)."""
    y = nn.functional.linear(to_tokens(x), conv.weight.flatten(1), conv.bias)
    return to_image(y, (x.shape[2], x.shape[3]))


def fancy_init(dim: int, layer: int, n_layers: int) -> tuple[Tensor, Tensor]:
    """RWKV's "fancy" initial decay and bonus for block ``layer`` of ``n_layers``.

    decay_c = -5 + 8 (c / (C-1))^(0.7 + 1.3 l / (n-1));  first_c = ln 0.3 + 0.5 ((c+1) mod 3 - 1)
    """
    c = torch.arange(dim, dtype=torch.float64)
    ratio = c / (dim - 1) if dim > 1 else torch.zeros(dim, dtype=torch.float64)
    power = 0.7 + 1.3 * (layer / (n_layers - 1) if n_layers > 1 else 0.0)
    decay = -5 + 8 * ratio**power
    first = math.log(0.3) + 0.5 * (((c + 1) % 3) - 1)
    return decay.float(), first.float()


class CrossBiWKV(nn.Module):
    """Sum of a Bi-WKV over row-major tokens (horizontal) and one over column-major tokens
    (vertical, transposed back), each with its own learned decay and bonus.

    The per-position parameters passed to ``bi_wkv`` are w = decay / T and u = first / T.
    """

    def __init__(self, dim: int, layer: int = 0, n_layers: int = 1) -> None:
        super().__init__()
        decay, first = fancy_init(dim, layer, n_layers)
        self.decay_h = nn.Parameter(decay.clone())
        self.first_h = nn.Parameter(first.clone())
        self.decay_v = nn.Parameter(decay.clone())
        self.first_v = nn.Parameter(first.clone())

    def forward(self, k: Tensor, v: Tensor, hw: tuple[int, int]) -> Tensor:
        """k, v channels-first (B, C, T) with T = H·W row-major; returns (B, T, C) tokens.

        Both branches read k and v in place (the compiled kernel walks the grid column-major
        for the vertical one) and their sum is written once, in the token layout the key
        LayerNorm reads next.
        """
        w, u = self.params(k.shape[-1], k.dtype)
        return cross_bi_wkv(k, v, w, u, hw)

    def params(self, T: int, dtype: torch.dtype) -> tuple[tuple[Tensor, Tensor], ...]:
        """((w_h, w_v), (u_h, u_v)): the per-position decays and bonuses for length T."""
        w = ((self.decay_h / T).to(dtype), (self.decay_v / T).to(dtype))
        u = ((self.first_h / T).to(dtype), (self.first_v / T).to(dtype))
        return w, u

    def branch(self, k: Tensor, v: Tensor, hw: tuple[int, int], vertical: bool) -> Tensor:
        """One branch alone, channels-first in and out (tests, analysis)."""
        (w_h, w_v), (u_h, u_v) = self.params(k.shape[-1], k.dtype)
        w, u = (w_v, u_v) if vertical else (w_h, u_h)
        if not vertical:
            return bi_wkv(k, v, w, u, channels_first=True)
        H, W = hw
        y = bi_wkv(transpose_grid(k, H, W), transpose_grid(v, H, W), w, u, channels_first=True)
        return transpose_grid(y, W, H)


class SpatialMix(nn.Module):
    """G&L Spatial Mix: DC-Shift, then out = W_o(sigmoid(r) * CrossBiWKV(k, v))."""

    def __init__(
        self,
        dim: int,
        layer: int = 0,
        n_layers: int = 1,
        shift_kernel: int = 3,
        shift_norm: str = "batch",
        shift_residual: bool = False,
        key_norm: bool = True,
    ) -> None:
        super().__init__()
        self.shift = DCShift(dim, shift_kernel, shift_norm, shift_residual)
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=False)
        self.receptance = nn.Linear(dim, dim, bias=False)
        self.output = nn.Linear(dim, dim, bias=False)
        self.wkv = CrossBiWKV(dim, layer, n_layers)
        self.key_norm = nn.LayerNorm(dim) if key_norm else None

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:  # x: (B, T, C)
        # Tokens from the DC-Shift (channels-last) to the output: no layout copies. The three
        # projections run as one product (one read of xs); k, v, r are column blocks of its
        # (B, T, 3C) result, which the Bi-WKV kernel reads in place as (B, C, T) views.
        xs = to_tokens(self.shift(to_image(x, hw)))  # (B, T, C)
        kvr = torch.cat((self.key.weight, self.value.weight, self.receptance.weight))
        k, v, r = torch.matmul(xs, kvr.t()).split(x.shape[-1], dim=-1)
        y = self.wkv(k.transpose(1, 2), v.transpose(1, 2), hw)  # (B, T, C)
        if self.key_norm is not None:
            y = self.key_norm(y)
        return self.output(_gate(r) * y)


def _gate(r: Tensor) -> Tensor:
    """sigmoid(r) of a column block of a product: copied to contiguous memory first, which is
    several times faster on a CPU than the element-wise op on the strided view (4.7 against
    21.7 ms for 65,536 x 48, one thread)."""
    return torch.sigmoid(r.contiguous())


class ChannelMix(nn.Module):
    """RWKV channel mix: sigmoid(W_r x) * W_v(ReLU(W_k x)^2), hidden = hidden_rate * C."""

    def __init__(self, dim: int, hidden_rate: float = 4) -> None:
        super().__init__()
        hidden = round(hidden_rate * dim)
        self.key = nn.Linear(dim, hidden, bias=False)
        self.value = nn.Linear(hidden, dim, bias=False)
        self.receptance = nn.Linear(dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        # W_k and W_r as one product (x read once); k and r are column blocks of its result.
        kr = torch.matmul(x, torch.cat((self.key.weight, self.receptance.weight)).t())
        k, r = kr.split((self.key.out_features, x.shape[-1]), dim=-1)
        if torch.is_grad_enabled() and k.requires_grad:
            k = torch.relu(k)
            k = k * k  # ReLU²; a product is several times faster than torch.square on a CPU
        else:  # inference: the hidden array is the largest in the block, reuse it in place
            k = k.relu_().mul_(k)
        return _gate(r) * self.value(k)


class GLLB(nn.Module):
    """Global & Local Linear-attention Block: x += SpatialMix(LN(x)); x += ChannelMix(LN(x))."""

    def __init__(
        self,
        dim: int,
        hidden_rate: float,
        layer: int = 0,
        n_layers: int = 1,
        shift_kernel: int = 3,
        shift_norm: str = "batch",
        shift_residual: bool = False,
        key_norm: bool = True,
    ) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.spatial_mix = SpatialMix(
            dim, layer, n_layers, shift_kernel, shift_norm, shift_residual, key_norm
        )
        self.ln2 = nn.LayerNorm(dim)
        self.channel_mix = ChannelMix(dim, hidden_rate)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        x = x + self.spatial_mix(self.ln1(x), hw)
        return x + self.channel_mix(self.ln2(x))


class GLLL(nn.Module):
    """Global & Local Linear-attention Layer: M GLLBs, a 3x3 conv, and a residual around it."""

    def __init__(self, dim: int, blocks: list[GLLB]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:  # x: (B, T, C)
        y = x
        for block in self.blocks:
            y = block(y, hw)
        return x + to_tokens(self.conv(to_image(y, hw)))
