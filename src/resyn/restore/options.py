"""How to run a model on images: :class:`InferenceOptions`, validated once when it is made.

``resyn restore`` and ``resyn eval`` build one from their command-line options, the Python API
from its keyword arguments; the restore engine and the evaluation runner take it as it is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch

from resyn.errors import ResynError
from resyn.precision import PRECISIONS, describe_precision, resolve_precision

#: The smallest side (in pixels) an input may have.
MIN_INPUT_SIDE = 4
#: Inputs (and tiles) smaller than this are padded up to it before the forward pass.
MIN_TILE = 16
#: Default memory budget for one forward pass (bytes): 1.5 GiB, so that with the input, the
#: output and the accumulator a 4000x3000 photo at x4 stays under 4 GB resident.
DEFAULT_MAX_MEMORY = 3 * 1024**3 // 2

PrecisionChoice = Literal["auto", "fp32", "bf16"]
assert get_args(PrecisionChoice) == PRECISIONS


class OptionsError(ResynError, ValueError):
    """An inference option out of range; ``option`` names the field, ``problem`` says why."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option} {problem}")
        self.option = option
        self.problem = problem


@dataclass(frozen=True)
class InferenceOptions:
    """``tile``: None = automatic (whole image unless the memory estimate of a pass exceeds
    ``max_memory``; with ``max_memory=None`` never tile), 0 = never tile, N >= ``MIN_TILE`` =
    tiles of N x N input pixels. ``overlap``: input pixels shared by neighbouring tiles.
    ``precision``: ``fp32``, ``bf16`` (autocast) or ``auto`` (bf16 where native on ``device``,
    see ``resyn.precision``). ``ensemble``: average the model over the eight flips and
    rotations of each tile. ``seed``: the noise of synthetic degradations (evaluation)."""

    tile: int | None = None
    overlap: int = 32
    max_memory: int | None = DEFAULT_MAX_MEMORY
    device: str = "cpu"
    precision: PrecisionChoice = "fp32"
    ensemble: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise OptionsError(
                "precision", f"must be one of {', '.join(PRECISIONS)}, not {self.precision!r}"
            )
        if self.tile is not None and self.tile != 0 and self.tile < MIN_TILE:
            raise OptionsError(
                "tile", f"must be 0 (no tiling) or at least {MIN_TILE}, not {self.tile}"
            )
        if self.overlap < 0:
            raise OptionsError("overlap", f"must be >= 0, not {self.overlap}")
        if self.max_memory is not None and self.max_memory <= 0:
            raise OptionsError("max_memory", f"must be a positive size, not {self.max_memory}")
        self._check_device()

    def _check_device(self) -> None:
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError):
            raise OptionsError(
                "device", f"{self.device!r} is not a device (cpu, cuda or cuda:N)"
            ) from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise OptionsError(
                "device", f"{self.device}: no CUDA device is available (use --device cpu)"
            )

    @classmethod
    def of(cls, options: InferenceOptions | None = None, **fields: Any) -> InferenceOptions:
        """``options`` with ``fields`` replaced (the defaults when ``options`` is None); an
        unknown field is a ``TypeError`` naming it."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise TypeError(
                f"unknown inference option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        base = cls() if options is None else options
        return dataclasses.replace(base, **fields) if fields else base

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    def resolved_precision(self) -> str:
        """The precision the model runs in: ``fp32`` or ``bf16`` (``auto`` resolved)."""
        return resolve_precision(self.precision, self.device)

    def precision_policy(self) -> str:
        """``fp32``, ``bf16`` or ``auto -> bf16``: requested and resolved, for reports."""
        return describe_precision(self.precision, self.resolved_precision())
