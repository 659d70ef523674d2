"""Parts shared by the SwinIR and MambaIR baselines: reconstruction heads, stochastic depth,
symmetric padding. Module layouts (``nn.Sequential`` indices) follow the official code so that
state-dict keys such as ``upsample.0.weight`` / ``conv_before_upsample.0.weight`` match.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from resyn.models.common import register_mean

# DIV2K RGB mean subtracted by SwinIR/MambaIR (and RWKV-IR) before the network.
UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "nearest+conv", "")
NUM_FEAT = 64  # channels of the classic-SR reconstruction head


def check_upsampler(arch: str, upsampler: str, upscale: int, allowed=UPSAMPLERS) -> str:
    """Validate the head choice; ``"residual"`` is accepted as an alias of ``""``."""
    if upsampler == "residual":
        upsampler = ""
    if upsampler not in allowed:
        raise ValueError(
            f"{arch}: unknown upsampler {upsampler!r}; valid: "
            + ", ".join(repr(u) for u in allowed)
            + " ('' = restoration with a residual to the input, scale 1)"
        )
    if upsampler == "" and upscale != 1:
        raise ValueError(f"{arch}: upsampler '' (denoise/JPEG) needs upscale 1, not {upscale}")
    if upsampler != "" and upscale < 2:
        raise ValueError(f"{arch}: upsampler {upsampler!r} needs upscale >= 2, not {upscale}")
    if upsampler == "pixelshuffle" and not (_is_pow2(upscale) or upscale == 3):
        raise ValueError(f"{arch}: pixelshuffle supports scales 2^n and 3, not {upscale}")
    if upsampler == "nearest+conv" and upscale != 4:
        raise ValueError(f"{arch}: nearest+conv supports only upscale 4, not {upscale}")
    return upsampler


def _is_pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


class Upsample(nn.Sequential):
    """[conv 3x3 -> 4C, PixelShuffle(2)] x log2(s), or conv -> 9C, PixelShuffle(3)."""

    def __init__(self, scale: int, num_feat: int) -> None:
        layers: list[nn.Module] = []
        if _is_pow2(scale):
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"scale {scale} is not supported (2^n and 3)")
        super().__init__(*layers)


class UpsampleOneStep(nn.Sequential):
    """Lightweight head: one conv 3x3 to out_ch * s^2, then PixelShuffle(s)."""

    def __init__(self, scale: int, num_feat: int, out_ch: int) -> None:
        super().__init__(
            nn.Conv2d(num_feat, scale * scale * out_ch, 3, 1, 1), nn.PixelShuffle(scale)
        )


def residual_conv(dim: int, kind: str) -> nn.Module:
    """The conv closing a residual group / the body: ``1conv`` or the cheaper ``3conv``."""
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if kind == "3conv":
        return nn.Sequential(
            nn.Conv2d(dim, dim // 4, 3, 1, 1),
            nn.LeakyReLU(negative_slope=0.2, inplace=True),
            nn.Conv2d(dim // 4, dim // 4, 1, 1, 0),
            nn.LeakyReLU(negative_slope=0.2, inplace=True),
            nn.Conv2d(dim // 4, dim, 3, 1, 1),
        )
    raise ValueError(f"resi_connection must be '1conv' or '3conv', not {kind!r}")


class DropPath(nn.Module):
    """Stochastic depth per sample (identity in eval mode or with p = 0)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def drop_path_rates(rate: float, depths: tuple[int, ...]) -> list[list[float]]:
    """Linearly increasing stochastic-depth rates, split per group (the official rule)."""
    total = sum(depths)
    flat = [rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
    out, i = [], 0
    for d in depths:
        out.append(flat[i : i + d])
        i += d
    return out


def pad_symmetric(x: Tensor, multiple: int) -> Tensor:
    """Pad H and W at the bottom/right up to a multiple, mirroring the image (edge included).

    Works for any size, even smaller than the pad (the mirror is repeated), as the official
    SwinIR test script's ``cat([x, flip(x)])`` padding does for pads up to the image size.
    """
    h, w = x.shape[-2:]
    th, tw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    while x.shape[-2] < th:
        x = torch.cat([x, torch.flip(x, [-2])], dim=-2)
    while x.shape[-1] < tw:
        x = torch.cat([x, torch.flip(x, [-1])], dim=-1)
    return x[..., :th, :tw]


def make_head(model: nn.Module, upsampler: str, embed_dim: int, upscale: int, out_ch: int) -> None:
    """Attach the reconstruction head modules with the official attribute names."""
    if upsampler == "pixelshuffle":
        model.conv_before_upsample = nn.Sequential(
            nn.Conv2d(embed_dim, NUM_FEAT, 3, 1, 1), nn.LeakyReLU(inplace=True)
        )
        model.upsample = Upsample(upscale, NUM_FEAT)
        model.conv_last = nn.Conv2d(NUM_FEAT, out_ch, 3, 1, 1)
    elif upsampler == "pixelshuffledirect":
        model.upsample = UpsampleOneStep(upscale, embed_dim, out_ch)
    elif upsampler == "nearest+conv":
        model.conv_before_upsample = nn.Sequential(
            nn.Conv2d(embed_dim, NUM_FEAT, 3, 1, 1), nn.LeakyReLU(inplace=True)
        )
        model.conv_up1 = nn.Conv2d(NUM_FEAT, NUM_FEAT, 3, 1, 1)
        model.conv_up2 = nn.Conv2d(NUM_FEAT, NUM_FEAT, 3, 1, 1)
        model.conv_hr = nn.Conv2d(NUM_FEAT, NUM_FEAT, 3, 1, 1)
        model.conv_last = nn.Conv2d(NUM_FEAT, out_ch, 3, 1, 1)
        model.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
    else:
        model.conv_last = nn.Conv2d(embed_dim, out_ch, 3, 1, 1)


def run_head(model: nn.Module, upsampler: str, feats: Tensor, x: Tensor) -> Tensor:
    """Reconstruction from deep features ``feats`` (long skip added); ``x`` the normalised input."""
    if upsampler == "pixelshuffle":
        return model.conv_last(model.upsample(model.conv_before_upsample(feats)))
    if upsampler == "pixelshuffledirect":
        return model.upsample(feats)
    if upsampler == "nearest+conv":
        up = nn.functional.interpolate
        y = model.conv_before_upsample(feats)
        y = model.lrelu(model.conv_up1(up(y, scale_factor=2, mode="nearest")))
        y = model.lrelu(model.conv_up2(up(y, scale_factor=2, mode="nearest")))
        return model.conv_last(model.lrelu(model.conv_hr(y)))
    return x + model.conv_last(feats)


def init_linear_layernorm(module: nn.Module) -> None:
    """The official init: Linear weights trunc-normal(0.02), biases 0; LayerNorm (1, 0)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def build_stem(model: nn.Module, in_chans: int, dim: int, patch_norm: bool) -> None:
    """The shared opening of SwinIR and MambaIR, with the official parameter names: the mean
    buffer, ``conv_first`` and the patch-embedding norm."""
    register_mean(model, in_chans)
    model.conv_first = nn.Conv2d(in_chans, dim, 3, 1, 1)
    model.patch_embed = nn.Module()
    model.patch_embed.norm = nn.LayerNorm(dim) if patch_norm else nn.Identity()
