"""MambaIR building blocks: SS2D (4-direction selective scan), CAB, VSSBlock, residual groups.

Attribute names and shapes follow the published MambaIR definition
(csguoh/MambaIR ``basicsr/archs/mambair_arch.py``), e.g.
``layers.N.residual_group.blocks.M.self_attention.x_proj_weight`` (4, dt_rank + 2 d_state,
d_inner). The scan is ``resyn.ops.selective_scan`` (pure PyTorch), not the CUDA kernel.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from resyn.models.baseline_parts import DropPath, residual_conv
from resyn.ops.selective_scan import DEFAULT_CHUNK_ELEMENTS, selective_scan

K_DIRECTIONS = 4


class ChannelAttention(nn.Module):
    """RCAN channel attention (``attention.1`` / ``attention.3`` are the 1x1 convs)."""

    def __init__(self, num_feat: int, squeeze_factor: int) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(num_feat, num_feat // squeeze_factor, 1, padding=0),
            nn.ReLU(inplace=True),
            nn.Conv2d(num_feat // squeeze_factor, num_feat, 1, padding=0),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.attention(x)


class CAB(nn.Module):
    """Channel-attention conv block.

    ``kind="conv3"``: conv3x3 (C -> C/r), GELU, conv3x3 (C/r -> C), CA (classic; light v1 used
    r = 6). ``kind="light"``: conv1x1 (C -> C/2), depth-wise 3x3, GELU, conv1x1 (-> C),
    depth-wise 3x3 dilation 2, CA (the lightweight block of the Oct-2024 release).
    """

    def __init__(self, num_feat: int, kind: str, compress_ratio: int, squeeze_factor: int) -> None:
        super().__init__()
        if kind == "light":
            mid = num_feat // 2
            self.cab = nn.Sequential(
                nn.Conv2d(num_feat, mid, 1, 1, 0),
                nn.Conv2d(mid, mid, 3, 1, 1, groups=mid),
                nn.GELU(),
                nn.Conv2d(mid, num_feat, 1, 1, 0),
                nn.Conv2d(num_feat, num_feat, 3, 1, padding=2, groups=num_feat, dilation=2),
                ChannelAttention(num_feat, squeeze_factor),
            )
        elif kind == "conv3":
            mid = num_feat // compress_ratio
            self.cab = nn.Sequential(
                nn.Conv2d(num_feat, mid, 3, 1, 1),
                nn.GELU(),
                nn.Conv2d(mid, num_feat, 3, 1, 1),
                ChannelAttention(num_feat, squeeze_factor),
            )
        else:
            raise ValueError(f"CAB kind must be 'conv3' or 'light', not {kind!r}")

    def forward(self, x: Tensor) -> Tensor:
        return self.cab(x)


class SS2D(nn.Module):
    """2D selective scan: in_proj -> depth-wise conv + SiLU -> 4-direction S6 -> LN -> gate."""

    def __init__(
        self,
        d_model: int,
        d_state: int,
        expand: float,
        d_conv: int,
        dt_rank: int,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    ) -> None:
        super().__init__()
        d_inner = int(expand * d_model + 1e-6)
        self.d_model, self.d_state, self.d_inner, self.dt_rank = d_model, d_state, d_inner, dt_rank
        self.chunk_elements = chunk_elements
        k = K_DIRECTIONS
        self.in_proj = nn.Linear(d_model, d_inner * 2, bias=False)
        self.conv2d = nn.Conv2d(
            d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2, groups=d_inner, bias=True
        )
        self.act = nn.SiLU()
        self.x_proj_weight = nn.Parameter(torch.empty(k, dt_rank + 2 * d_state, d_inner))
        self.dt_projs_weight = nn.Parameter(torch.empty(k, d_inner, dt_rank))
        self.dt_projs_bias = nn.Parameter(torch.empty(k, d_inner))
        self.A_logs = nn.Parameter(torch.empty(k * d_inner, d_state))
        self.Ds = nn.Parameter(torch.empty(k * d_inner))
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        self._init_ssm(dt_min, dt_max, dt_init_floor)

    @torch.no_grad()
    def _init_ssm(self, dt_min: float, dt_max: float, floor: float) -> None:
        # Mamba init: x_proj like nn.Linear, dt weights U(+-rank^-0.5), dt bias = softplus^-1 of
        # a log-uniform dt in [dt_min, dt_max], A = -(1..N) (S4D-real), D = 1.
        bound = self.d_inner**-0.5
        nn.init.uniform_(self.x_proj_weight, -bound, bound)
        std = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_projs_weight, -std, std)
        dt = torch.exp(
            torch.rand(K_DIRECTIONS, self.d_inner) * (math.log(dt_max) - math.log(dt_min))
            + math.log(dt_min)
        ).clamp(min=floor)
        self.dt_projs_bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.dt_projs_bias._no_reinit = True  # type: ignore[attr-defined]
        a = torch.arange(1, self.d_state + 1, dtype=torch.float32)
        self.A_logs.copy_(torch.log(a).expand(K_DIRECTIONS * self.d_inner, -1))
        self.Ds.fill_(1.0)

    def forward_core(self, x: Tensor) -> Tensor:
        """x: (B, d_inner, H, W) -> summed outputs of the 4 scans, (B, d_inner, L) float."""
        b, d, h, w = x.shape
        length = h * w
        k = K_DIRECTIONS
        rows = x.reshape(b, d, length)
        cols = x.transpose(2, 3).reshape(b, d, length)
        xs = torch.stack([rows, cols], dim=1)
        xs = torch.cat([xs, xs.flip(-1)], dim=1)  # (B, 4, d, L)
        x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, self.x_proj_weight)
        dts, Bs, Cs = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_projs_weight)
        y = selective_scan(
            xs.reshape(b, k * d, length),
            dts.reshape(b, k * d, length),
            -torch.exp(self.A_logs.float()),
            Bs,
            Cs,
            self.Ds.float(),
            delta_bias=self.dt_projs_bias.float().reshape(-1),
            delta_softplus=True,
            chunk_elements=self.chunk_elements,
        ).view(b, k, d, length)
        back = y[:, 2:4].flip(-1)  # undo the reversed scans
        y_rows = y[:, 0] + back[:, 0]
        y_cols = y[:, 1] + back[:, 1]
        y_cols = y_cols.view(b, d, w, h).transpose(2, 3).reshape(b, d, length)
        return y_rows + y_cols

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, H, W, C) -> (B, H, W, C)."""
        b, h, w, _ = x.shape
        x, z = self.in_proj(x).chunk(2, dim=-1)
        x = self.act(self.conv2d(x.permute(0, 3, 1, 2).contiguous()))
        y = self.forward_core(x).transpose(1, 2).reshape(b, h, w, -1)
        y = self.out_norm(y.to(z.dtype)) * F.silu(z)
        return self.out_proj(y)


class VSSBlock(nn.Module):
    """x = s1*x + SS2D(LN(x)); x = s2*x + CAB(LN(x)) (s1, s2 learned per channel)."""

    def __init__(
        self,
        dim: int,
        d_state: int,
        expand: float,
        d_conv: int,
        dt_rank: int,
        cab_kind: str,
        compress_ratio: int,
        squeeze_factor: int,
        drop_path: float,
        chunk_elements: int,
    ) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.self_attention = SS2D(
            dim, d_state, expand, d_conv, dt_rank, chunk_elements=chunk_elements
        )
        self.drop_path = DropPath(drop_path)
        self.skip_scale = nn.Parameter(torch.ones(dim))
        self.conv_blk = CAB(dim, cab_kind, compress_ratio, squeeze_factor)
        self.ln_2 = nn.LayerNorm(dim)
        self.skip_scale2 = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        b, n, c = x.shape
        x = x.view(b, *size, c)
        x = x * self.skip_scale + self.drop_path(self.self_attention(self.ln_1(x)))
        conv = self.conv_blk(self.ln_2(x).permute(0, 3, 1, 2).contiguous()).permute(0, 2, 3, 1)
        x = x * self.skip_scale2 + conv
        return x.reshape(b, n, c)


class BasicLayer(nn.Module):
    def __init__(self, depth: int, drop_path: list[float], **block_kwargs) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            VSSBlock(drop_path=drop_path[i], **block_kwargs) for i in range(depth)
        )

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        for blk in self.blocks:
            x = blk(x, size)
        return x


class ResidualGroup(nn.Module):
    """Residual State Space Group: VSS blocks, conv, plus a residual around the group."""

    def __init__(
        self, dim: int, depth: int, drop_path: list[float], resi_connection: str, **block_kwargs
    ) -> None:
        super().__init__()
        self.residual_group = BasicLayer(depth, drop_path, dim=dim, **block_kwargs)
        self.conv = residual_conv(dim, resi_connection)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        b, _, c = x.shape
        y = self.residual_group(x, size)
        y = self.conv(y.transpose(1, 2).reshape(b, c, *size))
        return y.flatten(2).transpose(1, 2) + x
