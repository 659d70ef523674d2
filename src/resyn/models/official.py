"""Load the official SwinIR / MambaIR ``.pth`` checkpoints into the resyn baselines.

``load_official("swinir", "001_classicalSR_DF2K_s64w8_SwinIR-M_x2.pth")`` reads the file with
``torch.load(weights_only=True)`` (no arbitrary unpickling), unwraps ``params_ema`` / ``params``
/ ``state_dict`` / ``model`` and ``module.`` prefixes, infers the architecture from the tensor
names and shapes, builds the model and loads it strictly. What cannot be inferred (``img_range``,
except for the SwinIR JPEG models) is taken from ``config_overrides``.
"""

from __future__ import annotations

import math
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import Tensor, nn

from resyn.models.descriptor import attach, derive
from resyn.models.registry import build_config, build_from_config
from resyn.models.weights import build_on_meta

KINDS = ("swinir", "mambair")
WRAPPERS = ("params_ema", "params", "state_dict", "model", "net_g", "network")
_MARKERS = {
    "swinir": "attn.relative_position_bias_table",
    "mambair": "self_attention.A_logs",
}


def load_official(kind: str, path: str | os.PathLike[str], **config_overrides: Any) -> nn.Module:
    """Build a ``kind`` model ("swinir" or "mambair") from an official checkpoint (eval mode),
    with its ``ModelDescriptor`` attached (the checkpoint as its source)."""
    if kind not in KINDS:
        raise ValueError(f"unknown official checkpoint kind {kind!r}; expected one of {KINDS}")
    state = read_state_dict(path)
    found = [k for k, marker in _MARKERS.items() if any(marker in key for key in state)]
    if kind not in found:
        what = f"a {found[0]} checkpoint" if found else "neither a SwinIR nor a MambaIR checkpoint"
        raise ValueError(
            f"{path}: expected a {kind} checkpoint (tensors named '*.{_MARKERS[kind]}'), but it "
            f"looks like {what}; first keys: {', '.join(list(state)[:5])}"
        )
    values = infer_swinir_config(state) if kind == "swinir" else infer_mambair_config(state)
    values.update(config_overrides)
    config = build_config(kind, values)
    # The config is inferred from tensor names: a file naming block 99999 must not build it.
    build_on_meta(path, kind, config, len(state), what="the checkpoint's tensor names")
    model = build_from_config(kind, config)
    load_strict(model, state, source=str(path))
    return attach(model, derive(model).with_origin(source=str(path))).eval()


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """``torch.load`` safely, unwrap the usual containers, strip ``module.``."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
        SafetensorError,  # torch.load reads a file named .safetensors as one
    ) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"{p} is not a loadable PyTorch checkpoint (read with weights_only=True: {reason})"
        ) from None
    for _ in range(3):
        if isinstance(obj, dict):
            inner = next((obj[k] for k in WRAPPERS if isinstance(obj.get(k), dict)), None)
            if inner is not None:
                obj = inner
                continue
        break
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{p} holds no state dict (found {type(obj).__name__})")
    state = {}
    for key, value in obj.items():
        if not isinstance(value, Tensor):
            raise ValueError(f"{p}: entry {key!r} is a {type(value).__name__}, not a tensor")
        state[key[len("module.") :] if key.startswith("module.") else key] = value
    return state


def load_strict(model: nn.Module, state: dict[str, Tensor], source: str = "checkpoint") -> None:
    """Load strictly; on mismatch raise ValueError listing missing/unexpected/mis-shaped keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: expected {tuple(expected[k].shape)}, found {tuple(state[k].shape)}"
        for k in expected
        if k in state and expected[k].shape != state[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch", shapes),
        ):
            if items:
                more = f" (+{len(items) - 6} more)" if len(items) > 6 else ""
                parts.append(f"{label} ({len(items)}): " + "; ".join(items[:6]) + more)
        raise ValueError(
            f"{source} does not match {type(model).__name__}({_config_text(model)}): "
            + " | ".join(parts)
        )
    model.load_state_dict(state, strict=True)


def _config_text(model: nn.Module) -> str:
    cfg = getattr(model, "config", None)
    if cfg is None:
        return ""
    keys = ("upscale", "in_chans", "embed_dim", "depths", "upsampler", "window_size", "d_state")
    return ", ".join(f"{k}={getattr(cfg, k)!r}" for k in keys if hasattr(cfg, k))


def _require(state: dict[str, Tensor], key: str, kind: str) -> Tensor:
    if key not in state:
        raise ValueError(f"not a {kind} checkpoint: tensor {key!r} is missing")
    return state[key]


def _depths(state: dict[str, Tensor]) -> tuple[int, ...]:
    blocks: dict[int, int] = {}
    for key in state:
        m = re.match(r"layers\.(\d+)\.residual_group\.blocks\.(\d+)\.", key)
        if m:
            i, j = int(m.group(1)), int(m.group(2))
            blocks[i] = max(blocks.get(i, 0), j + 1)
    if not blocks or sorted(blocks) != list(range(len(blocks))):
        raise ValueError("cannot infer depths: no contiguous layers.N.residual_group.blocks.M keys")
    return tuple(blocks[i] for i in range(len(blocks)))


def _head(state: dict[str, Tensor], in_chans: int) -> tuple[str, int]:
    """(upsampler, upscale) from the reconstruction-head tensors."""
    if "conv_up1.weight" in state:
        return "nearest+conv", 4
    if "conv_before_upsample.0.weight" in state:
        convs = sorted(
            int(m.group(1)) for k in state if (m := re.fullmatch(r"upsample\.(\d+)\.weight", k))
        )
        if len(convs) == 1 and state[f"upsample.{convs[0]}.weight"].shape[0] == 9 * 64:
            return "pixelshuffle", 3
        return "pixelshuffle", 2 ** len(convs)
    if "upsample.0.weight" in state:
        out = state["upsample.0.weight"].shape[0]
        scale = math.isqrt(out // in_chans)
        if scale * scale * in_chans != out:
            raise ValueError(f"upsample.0.weight has {out} outputs: not in_chans * s^2")
        return "pixelshuffledirect", scale
    if "conv_last.weight" in state:
        return "", 1
    raise ValueError("cannot infer the reconstruction head: no upsample / conv_last tensors")


def _common(state: dict[str, Tensor], kind: str) -> dict[str, Any]:
    first = _require(state, "conv_first.weight", kind)
    in_chans, embed_dim = int(first.shape[1]), int(first.shape[0])
    upsampler, upscale = _head(state, in_chans)
    resi = "3conv" if "conv_after_body.0.weight" in state else "1conv"
    return dict(
        in_chans=in_chans,
        embed_dim=embed_dim,
        depths=_depths(state),
        upsampler=upsampler,
        upscale=upscale,
        resi_connection=resi,
        patch_norm="patch_embed.norm.weight" in state,
    )


def infer_swinir_config(state: dict[str, Tensor]) -> dict[str, Any]:
    """SwinIRConfig values read off an official SwinIR state dict."""
    values = _common(state, "swinir")
    depths = values["depths"]
    heads, window = [], None
    for i in range(len(depths)):
        table = _require(
            state, f"layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table", "swinir"
        )
        heads.append(int(table.shape[1]))
        side = math.isqrt(int(table.shape[0]))
        window = (side + 1) // 2
    fc1 = _require(state, "layers.0.residual_group.blocks.0.mlp.fc1.weight", "swinir")
    mask = state.get("layers.0.residual_group.blocks.1.attn_mask")
    if mask is not None:
        img_size = math.isqrt(int(mask.shape[0])) * window
    else:  # no shifted block stored: either depth 1 or image <= window (then window = image)
        img_size = window if max(depths) > 1 else 64
    values.update(
        num_heads=tuple(heads),
        window_size=window,
        img_size=img_size,
        mlp_ratio=fc1.shape[0] / values["embed_dim"],
        qkv_bias="layers.0.residual_group.blocks.0.attn.qkv.bias" in state,
    )
    # The official JPEG artifact-removal models (window 7, no upsampler) use img_range 255.
    if window == 7 and values["upsampler"] == "":
        values["img_range"] = 255.0
    return values


def infer_mambair_config(state: dict[str, Tensor]) -> dict[str, Any]:
    """MambaIRConfig values read off an official MambaIR state dict."""
    values = _common(state, "mambair")
    dim = values["embed_dim"]
    pre = "layers.0.residual_group.blocks.0."
    in_proj = _require(state, pre + "self_attention.in_proj.weight", "mambair")
    a_logs = _require(state, pre + "self_attention.A_logs", "mambair")
    dt_w = _require(state, pre + "self_attention.dt_projs_weight", "mambair")
    conv = _require(state, pre + "self_attention.conv2d.weight", "mambair")
    d_inner = int(in_proj.shape[0]) // 2
    light = pre + "conv_blk.cab.4.weight" in state
    ca = pre + (
        "conv_blk.cab.5.attention.1.weight" if light else "conv_blk.cab.3.attention.1.weight"
    )
    squeeze = dim // int(_require(state, ca, "mambair").shape[0])
    values.update(
        d_state=int(a_logs.shape[1]),
        mlp_ratio=d_inner / dim,
        dt_rank=int(dt_w.shape[2]),
        d_conv=int(conv.shape[-1]),
        cab="light" if light else "conv3",
        squeeze_factor=squeeze,
    )
    if not light:
        mid = int(_require(state, pre + "conv_blk.cab.0.weight", "mambair").shape[0])
        values["compress_ratio"] = dim // mid
    return values
