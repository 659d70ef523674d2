"""Restore images: tiled inference (``engine``), the one-call API (``api``), weights lookup.

``resyn.restore(image, task="sr-x4")`` and ``resyn.restore.restore(...)`` are the same function:
this package module is callable so that the short form works after ``import resyn.restore``.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from resyn.restore.api import Restorer, load_restorer, restore, restore_array
from resyn.restore.engine import TilingInfo, estimate_memory, run_model
from resyn.restore.options import DEFAULT_MAX_MEMORY, InferenceOptions, OptionsError
from resyn.restore.weights import (
    TASK_NAMES,
    WeightsError,
    default_weights_path,
    shipped_weights,
    task_weights,
)

__all__ = [
    "DEFAULT_MAX_MEMORY",
    "TASK_NAMES",
    "InferenceOptions",
    "OptionsError",
    "Restorer",
    "TilingInfo",
    "WeightsError",
    "default_weights_path",
    "estimate_memory",
    "load_restorer",
    "restore",
    "restore_array",
    "run_model",
    "shipped_weights",
    "task_weights",
]


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return restore(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
