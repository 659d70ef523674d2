"""Weights that carry their configuration: safetensors with the architecture in the metadata.

Metadata keys (all strings, as safetensors requires):

- ``resyn.format``: ``"1"``
- ``resyn.arch``: the architecture name (``rwkvir``, ``swinir``, ``mambair``)
- ``resyn.config``: the architecture config as JSON
- ``resyn.preset``: the preset the model was built from, when known
- ``resyn.info``: free-form JSON the caller adds (task, training run, metrics...)

Loading never unpickles anything.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from resyn.io.atomic import atomic_path
from resyn.models.registry import architecture_class, build_config, build_from_config

FORMAT_VERSION = "1"


def model_config_dict(model: nn.Module) -> dict[str, Any]:
    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        raise ValueError(
            f"{type(model).__name__} has no dataclass `config`; only resyn architectures can be "
            "saved with their configuration"
        )
    return _jsonable(dataclasses.asdict(config))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def save_model(
    model: nn.Module, path: str | os.PathLike[str], *, info: dict[str, Any] | None = None
) -> Path:
    """Write ``model``'s weights and configuration to a safetensors file (atomically)."""
    arch = getattr(type(model), "arch", None)
    if arch is None:
        raise ValueError(f"{type(model).__name__} is not a resyn architecture (no `arch`)")
    metadata = {
        "resyn.format": FORMAT_VERSION,
        "resyn.arch": arch,
        "resyn.config": json.dumps(model_config_dict(model), sort_keys=True),
        "resyn.info": json.dumps(info or {}, sort_keys=True),
    }
    preset = getattr(model, "preset_name", None)
    if preset:
        metadata["resyn.preset"] = preset
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    # Shared storage (tied weights) is not allowed by safetensors: clone each tensor.
    tensors = {k: v.clone() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The resyn metadata of a weights file, decoded: arch, config, preset, info."""
    meta = _raw_metadata(path)
    return {
        "arch": meta["resyn.arch"],
        "config": json.loads(meta["resyn.config"]),
        "preset": meta.get("resyn.preset"),
        "info": json.loads(meta.get("resyn.info", "{}")),
    }


def _raw_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"weights file not found: {p}")
    try:
        with safe_open(str(p), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{p} is not a readable safetensors file ({exc})") from None
    missing = [k for k in ("resyn.arch", "resyn.config") if k not in meta]
    if missing:
        raise ValueError(
            f"{p} has no resyn metadata ({', '.join(missing)} missing): it was not written by "
            "resyn.models.save_model. Official SwinIR/MambaIR .pth files load with "
            "resyn.models.load_official."
        )
    if meta.get("resyn.format", FORMAT_VERSION) != FORMAT_VERSION:
        raise ValueError(f"{p} uses resyn weights format {meta['resyn.format']}, expected 1")
    return meta


def load_model(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu", strict: bool = True
) -> nn.Module:
    """Rebuild the model stored by ``save_model`` and load its weights (eval mode)."""
    meta = read_metadata(path)
    arch = meta["arch"]
    architecture_class(arch)  # clear error for unknown architectures
    config_values = meta["config"]
    config = build_config(arch, _tuples(config_values))
    model = build_from_config(arch, config)
    from safetensors.torch import load_file

    state = load_file(str(path), device="cpu")
    model.load_state_dict(state, strict=strict)
    if meta.get("preset"):
        model.preset_name = meta["preset"]  # type: ignore[attr-defined]
    model.weights_info = meta["info"]  # type: ignore[attr-defined]
    return model.to(device).eval()


def _tuples(values: dict[str, Any]) -> dict[str, Any]:
    # JSON turns tuples into lists; configs use tuples for sequences.
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
