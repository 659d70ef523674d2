"""SwinIR (Liang et al., ICCVW 2021) in pure PyTorch, state-dict compatible with the official
release (JingyunLiang/SwinIR, ``models/network_swinir.py``; written from its published
definition, not copied).

Differences from the official module that do not touch the weights: any input size is accepted
(the input is mirror-padded to a multiple of the window and the output cropped), attention uses
``F.scaled_dot_product_attention``, and the shifted-window mask is computed for the padded size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from resyn.models.baseline_parts import (
    build_stem,
    check_upsampler,
    drop_path_rates,
    init_linear_layernorm,
    make_head,
    pad_symmetric,
    residual_conv,
    run_head,
)
from resyn.models.descriptor import ArchitectureTraits
from resyn.models.swinir_blocks import RSTB, shifted_window_mask


@dataclass
class SwinIRConfig:
    """SwinIR hyper-parameters (names as in the official constructor).

    ``upsampler``: ``pixelshuffle`` (classic SR), ``pixelshuffledirect`` (lightweight SR),
    ``nearest+conv`` (real-world SR, x4), or ``""`` (denoising / JPEG: output = input +
    residual, upscale 1; ``"residual"`` is accepted as an alias). ``img_size`` is the training
    patch size: it only fixes the shape of the stored ``attn_mask`` buffers (official checkpoints
    have 64 or 48, 128 for denoising, 126 for JPEG). ``img_range`` 255 for the official JPEG models.
    """

    upscale: int = 2
    in_chans: int = 3
    img_size: int = 64
    window_size: int = 8
    embed_dim: int = 180
    depths: tuple[int, ...] = (6, 6, 6, 6, 6, 6)
    num_heads: tuple[int, ...] = (6, 6, 6, 6, 6, 6)
    mlp_ratio: float = 2.0
    qkv_bias: bool = True
    qk_scale: float | None = None
    drop_path_rate: float = 0.1
    patch_norm: bool = True
    img_range: float = 1.0
    upsampler: str = "pixelshuffle"
    resi_connection: str = "1conv"

    def __post_init__(self) -> None:
        self.depths = tuple(int(d) for d in self.depths)
        self.num_heads = tuple(int(h) for h in self.num_heads)
        self.upsampler = check_upsampler("swinir", self.upsampler, self.upscale)
        if self.in_chans < 1:
            raise ValueError(f"swinir: in_chans must be >= 1, not {self.in_chans}")
        if len(self.depths) != len(self.num_heads) or not self.depths:
            raise ValueError(
                f"swinir: depths {self.depths} and num_heads {self.num_heads} must be non-empty "
                "and have the same length"
            )
        for h in self.num_heads:
            if self.embed_dim % h:
                raise ValueError(f"swinir: embed_dim {self.embed_dim} not divisible by {h} heads")
        if self.window_size < 1 or self.img_size < 1:
            raise ValueError("swinir: window_size and img_size must be >= 1")
        if self.img_size > self.window_size and self.img_size % self.window_size:
            raise ValueError(
                f"swinir: img_size {self.img_size} must be a multiple of window_size "
                f"{self.window_size}"
            )
        if self.resi_connection not in ("1conv", "3conv"):
            raise ValueError("swinir: resi_connection must be '1conv' or '3conv'")

    @property
    def effective_window(self) -> int:
        return min(self.window_size, self.img_size)


class SwinIR(nn.Module):
    """SwinIR: (B, C, H, W) in [0, 1] -> (B, C, H*s, W*s); any H, W."""

    arch = "swinir"
    config_class = SwinIRConfig
    # Any input size (pads internally); shifted windows reach across the image, so tiles change the output.
    traits: ClassVar[ArchitectureTraits] = ArchitectureTraits()

    def __init__(self, config: SwinIRConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        dim = c.embed_dim
        build_stem(self, c.in_chans, dim, c.patch_norm)
        rates = drop_path_rates(c.drop_path_rate, c.depths)
        self.layers = nn.ModuleList(
            RSTB(
                dim,
                c.img_size,
                depth,
                heads,
                c.window_size,
                c.mlp_ratio,
                c.qkv_bias,
                c.qk_scale,
                rates[i],
                c.resi_connection,
            )
            for i, (depth, heads) in enumerate(zip(c.depths, c.num_heads, strict=True))
        )
        self.norm = nn.LayerNorm(dim)
        self.conv_after_body = residual_conv(dim, c.resi_connection)
        make_head(self, c.upsampler, dim, c.upscale, c.in_chans)
        self.apply(init_linear_layernorm)

    def _mask(self, h: int, w: int, device: torch.device) -> Tensor | None:
        ws = self.config.effective_window
        if ws < self.config.window_size or max(self.config.depths) < 2:
            return None  # no shifted blocks
        return shifted_window_mask(h, w, ws, ws // 2, device=device)

    def forward_features(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        tokens = self.patch_embed.norm(x.flatten(2).transpose(1, 2))
        mask = self._mask(h, w, x.device)
        for layer in self.layers:
            tokens = layer(tokens, (h, w), mask)
        tokens = self.norm(tokens)
        return tokens.transpose(1, 2).reshape(b, c, h, w)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x = pad_symmetric(x, self.config.effective_window)
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.config.img_range
        shallow = self.conv_first(x)
        feats = self.conv_after_body(self.forward_features(shallow)) + shallow
        out = run_head(self, self.config.upsampler, feats, x)
        out = out / self.config.img_range + mean
        s = self.config.upscale
        return out[..., : h * s, : w * s]
