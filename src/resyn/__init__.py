"""resyn: image restoration with GLCM image complexity, the ReSyn dataset builder, a unified
training standard and RWKV-IR.

Importing ``resyn`` is cheap and has no side effects; sub-packages load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "restore"]


def __getattr__(name: str) -> Any:
    if name == "restore":
        # resyn.restore(image, task=...) is the one-call API; the sub-package of the same name
        # holds its parts.
        return importlib.import_module("resyn.restore").restore
    raise AttributeError(f"module 'resyn' has no attribute {name!r}")
