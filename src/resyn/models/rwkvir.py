"""RWKV-IR: shallow features, deep features (GLLLs of GLLBs) and a reconstruction head.

Presets live in ``resyn.models.presets``; ``build_model("rwkvir-light", scale=4)`` builds one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from resyn.models.common import register_mean
from resyn.models.descriptor import ArchitectureTraits
from resyn.models.rwkvir_blocks import GLLB, GLLL, to_image, to_tokens

UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "residual")


@dataclass(frozen=True)
class RWKVIRConfig:
    """Hyper-parameters of RWKV-IR (every field can be overridden in ``build_model``)."""

    upscale: int = 2
    in_chans: int = 3
    embed_dim: int = 48
    depths: tuple[int, ...] = (6, 6, 6, 6)
    hidden_rate: float = 3.0
    upsampler: str = "pixelshuffledirect"
    img_range: float = 1.0
    num_feat: int = 64  # width of the ``pixelshuffle`` head
    shift_kernel: int = 3
    shift_norm: str = "batch"  # paper: BatchNorm; pre-release code: instance
    shift_residual: bool = False  # pre-release code: True
    key_norm: bool = True  # LayerNorm on the WKV output, as in Vision-RWKV
    # Not in the paper: add an interpolated copy of the input to the SR head's output
    # ("none" | "bilinear" | "bicubic"); the head then starts at zero and learns the residual.
    global_skip: str = "none"

    def __post_init__(self) -> None:
        if self.upsampler not in UPSAMPLERS:
            raise ValueError(
                f"upsampler must be one of {', '.join(UPSAMPLERS)}, not {self.upsampler!r}"
            )
        if self.upsampler == "residual" and self.upscale != 1:
            raise ValueError("the 'residual' head (denoising / JPEG) needs upscale=1")
        if self.upsampler != "residual" and self.upscale < 1:
            raise ValueError(f"upscale must be >= 1, not {self.upscale}")
        if self.upsampler == "pixelshuffle" and not (
            self.upscale == 3 or (self.upscale & (self.upscale - 1)) == 0
        ):
            raise ValueError(f"the 'pixelshuffle' head supports 2^n and 3, not {self.upscale}")
        if self.in_chans < 1 or self.embed_dim < 1:
            raise ValueError("in_chans and embed_dim must be positive")
        if not self.depths or any(d < 1 for d in self.depths):
            raise ValueError(
                f"depths must be a non-empty list of positive counts, not {self.depths}"
            )
        if self.hidden_rate <= 0:
            raise ValueError(f"hidden_rate must be positive, not {self.hidden_rate}")
        if self.global_skip not in ("none", "bilinear", "bicubic"):
            raise ValueError(
                f"global_skip must be 'none', 'bilinear' or 'bicubic', not {self.global_skip!r}"
            )
        if self.global_skip != "none" and self.upsampler == "residual":
            raise ValueError(
                "global_skip is for SR heads; the 'residual' head already adds the input"
            )


class RWKVIR(nn.Module):
    """RWKV-IR for super-resolution (``pixelshuffle``/``pixelshuffledirect`` heads) and for
    denoising / JPEG artifact removal (``residual`` head, scale 1). Input (B, in_chans, H, W) in
    [0, 1], any H and W; output (B, in_chans, H·s, W·s), not clamped."""

    arch = "rwkvir"
    config_class = RWKVIRConfig
    # Bi-WKV attention is global; 25 live feature tensors: the calibration in docs/restore.md.
    traits: ClassVar[ArchitectureTraits] = ArchitectureTraits(live_feature_tensors=25)

    def __init__(self, config: RWKVIRConfig) -> None:
        super().__init__()
        self.config = config
        c, dim = config.in_chans, config.embed_dim
        register_mean(self, c)

        # 1. shallow features
        self.conv_first = nn.Conv2d(c, dim, 3, padding=1)
        # 2. deep features
        n_blocks = sum(config.depths)
        layers, index = [], 0
        for depth in config.depths:
            blocks = []
            for _ in range(depth):
                blocks.append(
                    GLLB(
                        dim,
                        config.hidden_rate,
                        layer=index,
                        n_layers=n_blocks,
                        shift_kernel=config.shift_kernel,
                        shift_norm=config.shift_norm,
                        shift_residual=config.shift_residual,
                        key_norm=config.key_norm,
                    )
                )
                index += 1
            layers.append(GLLL(dim, blocks))
        self.layers = nn.ModuleList(layers)
        self.norm = nn.LayerNorm(dim)
        self.conv_after_body = nn.Conv2d(dim, dim, 3, padding=1)
        # 3. reconstruction
        self.head = _make_head(config)
        if config.global_skip != "none" or config.upsampler == "residual":
            # The untrained network starts at its skip path (the input for the residual
            # head, the interpolated input for SR with a global skip): a short budget then
            # improves on that instead of first unlearning a random head.
            last = [m for m in self.head.modules() if isinstance(m, nn.Conv2d)][-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        hw = (x.shape[-2], x.shape[-1])
        t = to_tokens(x).contiguous()  # tokens contiguous from here on (see rwkvir_blocks)
        for layer in self.layers:
            t = layer(t, hw)
        return to_image(self.norm(t), hw)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.config.in_chans:
            raise ValueError(
                f"RWKV-IR expects (B, {self.config.in_chans}, H, W) input, got {tuple(x.shape)}"
            )
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.config.img_range
        shallow = self.conv_first(x)
        deep = self.conv_after_body(self.forward_features(shallow)) + shallow
        if self.config.upsampler == "residual":
            out = x + self.head(deep)
        elif self.config.global_skip != "none":
            skip = nn.functional.interpolate(
                x,
                scale_factor=self.config.upscale,
                mode=self.config.global_skip,
                align_corners=False,
            )
            out = self.head(deep) + skip
        else:
            out = self.head(deep)
        return out / self.config.img_range + mean


def _make_head(config: RWKVIRConfig) -> nn.Module:
    dim, c, s = config.embed_dim, config.in_chans, config.upscale
    if config.upsampler == "pixelshuffledirect":
        return nn.Sequential(nn.Conv2d(dim, c * s * s, 3, padding=1), nn.PixelShuffle(s))
    if config.upsampler == "residual":
        return nn.Conv2d(dim, c, 3, padding=1)
    f = config.num_feat
    stages: list[nn.Module] = [nn.Conv2d(dim, f, 3, padding=1), nn.LeakyReLU(inplace=True)]
    if s == 3:
        stages += [nn.Conv2d(f, 9 * f, 3, padding=1), nn.PixelShuffle(3)]
    else:
        for _ in range(int(math.log2(s))):
            stages += [nn.Conv2d(f, 4 * f, 3, padding=1), nn.PixelShuffle(2)]
    stages.append(nn.Conv2d(f, c, 3, padding=1))
    return nn.Sequential(*stages)
