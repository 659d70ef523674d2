"""Restoration networks: RWKV-IR and the SwinIR / MambaIR baselines, built from named presets."""

from __future__ import annotations

import importlib
from typing import Any

from resyn.models.descriptor import (
    ArchitectureTraits,
    ModelDescriptor,
    SizeRequirements,
    describe,
)
from resyn.models.registry import (
    ARCHITECTURES,
    PRESETS,
    Preset,
    build_model,
    get_preset,
    list_presets,
)
from resyn.models.weights import load_model, read_metadata, save_model

# Network classes and their parts: loaded on first use (no heavy import at package import).
_LAZY: dict[str, str] = {
    "RWKVIR": "resyn.models.rwkvir",
    "RWKVIRConfig": "resyn.models.rwkvir",
    "DCShift": "resyn.models.rwkvir_blocks",
    "CrossBiWKV": "resyn.models.rwkvir_blocks",
    "SpatialMix": "resyn.models.rwkvir_blocks",
    "ChannelMix": "resyn.models.rwkvir_blocks",
    "GLLB": "resyn.models.rwkvir_blocks",
    "GLLL": "resyn.models.rwkvir_blocks",
    "SwinIR": "resyn.models.swinir",
    "SwinIRConfig": "resyn.models.swinir",
    "MambaIR": "resyn.models.mambair",
    "MambaIRConfig": "resyn.models.mambair",
    "load_official": "resyn.models.official",
}

__all__ = [
    "ARCHITECTURES",
    "ArchitectureTraits",
    "ModelDescriptor",
    "SizeRequirements",
    "describe",
    "PRESETS",
    "Preset",
    "build_model",
    "get_preset",
    "list_presets",
    "load_model",
    "read_metadata",
    "save_model",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'resyn.models' has no attribute {name!r}")
