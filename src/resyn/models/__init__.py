"""Restoration networks: RWKV-IR and the SwinIR / MambaIR baselines, built from named presets."""

from resyn.models.registry import (
    ARCHITECTURES,
    PRESETS,
    Preset,
    build_model,
    get_preset,
    list_presets,
)
from resyn.models.weights import load_model, read_metadata, save_model

__all__ = [
    "ARCHITECTURES",
    "PRESETS",
    "Preset",
    "build_model",
    "get_preset",
    "list_presets",
    "load_model",
    "read_metadata",
    "save_model",
]


def __getattr__(name: str):
    # Network classes and their parts load on first use (no heavy import at package import).
    import importlib

    lazy = {
        "RWKVIR": "resyn.models.rwkvir",
        "RWKVIRConfig": "resyn.models.rwkvir",
        "DCShift": "resyn.models.rwkvir",
        "CrossBiWKV": "resyn.models.rwkvir",
        "SpatialMix": "resyn.models.rwkvir",
        "ChannelMix": "resyn.models.rwkvir",
        "GLLB": "resyn.models.rwkvir",
        "GLLL": "resyn.models.rwkvir",
        "SwinIR": "resyn.models.swinir",
        "SwinIRConfig": "resyn.models.swinir",
        "MambaIR": "resyn.models.mambair",
        "MambaIRConfig": "resyn.models.mambair",
        "load_official": "resyn.models.official",
    }
    if name in lazy:
        return getattr(importlib.import_module(lazy[name]), name)
    raise AttributeError(f"module 'resyn.models' has no attribute {name!r}")
