"""MambaIR (Guo et al., ECCV 2024) in pure PyTorch, state-dict compatible with the official
release (csguoh/MambaIR ``basicsr/archs/mambair_arch.py``; written from its published
definition, not copied). Runs on CPU: the selective scan is ``resyn.ops.selective_scan``.

Any input size works without padding (the four scans run over the actual H x W).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from resyn.models.baseline_parts import (
    build_stem,
    check_upsampler,
    drop_path_rates,
    init_linear_layernorm,
    make_head,
    residual_conv,
    run_head,
)
from resyn.models.descriptor import ArchitectureTraits
from resyn.models.mambair_blocks import ResidualGroup
from resyn.ops.selective_scan import DEFAULT_CHUNK_ELEMENTS


@dataclass
class MambaIRConfig:
    """MambaIR hyper-parameters (names as in the official constructor).

    ``mlp_ratio`` is the SS2D expansion (d_inner = int(mlp_ratio * embed_dim)). ``cab``:
    ``"auto"`` (the official rule: ``"light"`` block when upsampler is ``pixelshuffledirect``,
    else ``"conv3"``), ``"conv3"`` or ``"light"``; ``compress_ratio`` applies to ``conv3`` (3;
    the March-2024 light release used 6). ``img_size`` has no effect (kept so official option
    files map one to one). ``scan_chunk_elements`` bounds the scan's memory (not a weight).
    """

    upscale: int = 2
    in_chans: int = 3
    img_size: int = 64
    embed_dim: int = 180
    depths: tuple[int, ...] = (6, 6, 6, 6, 6, 6)
    d_state: int = 16
    mlp_ratio: float = 2.0
    d_conv: int = 3
    dt_rank: int | None = None  # None: ceil(embed_dim / 16)
    cab: str = "auto"
    compress_ratio: int = 3
    squeeze_factor: int = 30
    drop_path_rate: float = 0.1
    patch_norm: bool = True
    img_range: float = 1.0
    upsampler: str = "pixelshuffle"
    resi_connection: str = "1conv"
    scan_chunk_elements: int = DEFAULT_CHUNK_ELEMENTS

    def __post_init__(self) -> None:
        self.depths = tuple(int(d) for d in self.depths)
        self.upsampler = check_upsampler(
            "mambair", self.upsampler, self.upscale, ("pixelshuffle", "pixelshuffledirect", "")
        )
        if not self.depths or min(self.depths) < 1:
            raise ValueError(f"mambair: depths must be positive, got {self.depths}")
        if self.cab not in ("auto", "conv3", "light"):
            raise ValueError(f"mambair: cab must be 'auto', 'conv3' or 'light', not {self.cab!r}")
        if self.resi_connection not in ("1conv", "3conv"):
            raise ValueError("mambair: resi_connection must be '1conv' or '3conv'")
        if self.embed_dim < self.squeeze_factor or self.embed_dim < 2:
            raise ValueError(
                f"mambair: embed_dim {self.embed_dim} is smaller than squeeze_factor "
                f"{self.squeeze_factor}"
            )

    @property
    def cab_kind(self) -> str:
        if self.cab != "auto":
            return self.cab
        return "light" if self.upsampler == "pixelshuffledirect" else "conv3"

    @property
    def rank(self) -> int:
        return self.dt_rank if self.dt_rank is not None else math.ceil(self.embed_dim / 16)


class MambaIR(nn.Module):
    """MambaIR: (B, C, H, W) in [0, 1] -> (B, C, H*s, W*s); any H, W."""

    arch = "mambair"
    config_class = MambaIRConfig
    # Any input size (pads internally); the four scans run over the whole image, so tiles change the output.
    traits: ClassVar[ArchitectureTraits] = ArchitectureTraits()

    def __init__(self, config: MambaIRConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        dim = c.embed_dim
        build_stem(self, c.in_chans, dim, c.patch_norm)
        rates = drop_path_rates(c.drop_path_rate, c.depths)
        block = dict(
            d_state=c.d_state,
            expand=c.mlp_ratio,
            d_conv=c.d_conv,
            dt_rank=c.rank,
            cab_kind=c.cab_kind,
            compress_ratio=c.compress_ratio,
            squeeze_factor=c.squeeze_factor,
            chunk_elements=c.scan_chunk_elements,
        )
        self.layers = nn.ModuleList(
            ResidualGroup(dim, depth, rates[i], c.resi_connection, **block)
            for i, depth in enumerate(c.depths)
        )
        self.norm = nn.LayerNorm(dim)
        self.conv_after_body = residual_conv(dim, c.resi_connection)
        make_head(self, c.upsampler, dim, c.upscale, c.in_chans)
        self.apply(init_linear_layernorm)

    def forward_features(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        tokens = self.patch_embed.norm(x.flatten(2).transpose(1, 2))
        for layer in self.layers:
            tokens = layer(tokens, (h, w))
        tokens = self.norm(tokens)
        return tokens.transpose(1, 2).reshape(b, c, h, w)

    def forward(self, x: Tensor) -> Tensor:
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.config.img_range
        shallow = self.conv_first(x)
        feats = self.conv_after_body(self.forward_features(shallow)) + shallow
        out = run_head(self, self.config.upsampler, feats, x)
        return out / self.config.img_range + mean
