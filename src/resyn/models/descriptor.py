"""What a model is, as one typed value: :class:`ModelDescriptor`.

``build_model``, ``load_model`` and ``load_official`` attach a descriptor to the model they
return; :func:`describe` returns it (or derives one from the model's architecture and config for
a model built another way). Code that runs models (the restore engine, the API, evaluation,
export, the demo) reads the descriptor, never the model's config or attributes.

An architecture class states what holds for all its configs in a ``traits`` class attribute
(:class:`ArchitectureTraits`); the descriptor adds what depends on the config (scale,
channels, the memory estimate) and where the model came from (preset, weights file, task).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

Precision = Literal["fp32", "bf16"]
Purpose = Literal["sr", "restoration"]

#: The attribute of an ``nn.Module`` that holds its descriptor.
ATTRIBUTE = "descriptor"


@dataclass(frozen=True)
class SizeRequirements:
    """Input sizes a model accepts as they are: each side at least ``minimum`` pixels and a
    multiple of ``multiple_of``. Models that pad internally (SwinIR to its window) state 1."""

    minimum: int = 1
    multiple_of: int = 1

    def __post_init__(self) -> None:
        if self.minimum < 1 or self.multiple_of < 1:
            raise ValueError(
                f"size requirements must be positive, not minimum={self.minimum}, "
                f"multiple_of={self.multiple_of}"
            )

    def fits(self, height: int, width: int) -> bool:
        return all(
            side >= self.minimum and side % self.multiple_of == 0 for side in (height, width)
        )

    def padded(self, side: int, at_least: int = 1) -> int:
        """The smallest side >= ``side`` and >= ``at_least`` that fits."""
        target = max(side, self.minimum, at_least)
        return -(-target // self.multiple_of) * self.multiple_of


@dataclass(frozen=True)
class ArchitectureTraits:
    """What holds for every config of an architecture (a class attribute ``traits``).

    ``live_feature_tensors``: feature-sized (``embed_dim`` per pixel) float32 tensors alive at
    the peak of a forward pass, the basis of the memory estimate; RWKV-IR's 25 is calibrated on
    measured peaks (docs/restore.md), the default 64 is a conservative guess.
    ``tiling_changes_output``: whether a tile's output depends on pixels outside it beyond a
    small receptive field (global attention or scans), so tiled and whole-image outputs differ.
    """

    size: SizeRequirements = SizeRequirements()
    tiling_changes_output: bool = True
    precisions: tuple[Precision, ...] = ("fp32", "bf16")
    live_feature_tensors: int = 64


DEFAULT_TRAITS = ArchitectureTraits()


@dataclass(frozen=True)
class ModelDescriptor:
    """One model: its architecture, what it does, what it accepts and what running it costs."""

    architecture: str
    purpose: Purpose
    scale: int
    in_channels: int
    out_channels: int
    size: SizeRequirements
    tiling_changes_output: bool
    precisions: tuple[Precision, ...]
    #: estimated peak bytes per output pixel of a float32 forward pass, beyond the parameters
    bytes_per_output_pixel: float
    parameter_bytes: int
    preset: str | None = None  # the preset it was built from, when known
    task: str | None = None  # the task its weights were trained for (``info.task``), if recorded
    source: str | None = None  # the file its weights came from
    info: Mapping[str, Any] = field(default_factory=lambda: Info({}), compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.scale < 1 or self.in_channels < 1 or self.out_channels < 1:
            raise ValueError(
                f"scale and channels must be positive: scale={self.scale}, "
                f"in_channels={self.in_channels}, out_channels={self.out_channels}"
            )
        if not self.precisions:
            raise ValueError("a model supports at least one precision")
        object.__setattr__(self, "info", Info(self.info))

    def memory_bytes(self, height: int, width: int) -> int:
        """Estimated peak bytes of one float32 forward pass on a ``height x width`` input."""
        per_input_pixel = round(self.bytes_per_output_pixel * self.scale * self.scale)
        return int(self.parameter_bytes + per_input_pixel * height * width)

    def with_origin(
        self,
        *,
        preset: str | None = None,
        task: str | None = None,
        source: str | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> ModelDescriptor:
        """A copy with the given provenance fields replaced (``None`` keeps the current one)."""
        return dataclasses.replace(
            self,
            preset=self.preset if preset is None else preset,
            task=self.task if task is None else task,
            source=self.source if source is None else source,
            info=self.info if info is None else info,
        )


class Info(Mapping[str, Any]):
    """A read-only copy of a weights file's ``info`` (picklable, so models stay copyable)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any]) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Info({self._items!r})"


def describe(model: nn.Module) -> ModelDescriptor:
    """The descriptor attached to ``model``, else one derived from its architecture and config."""
    attached = model.__dict__.get(ATTRIBUTE)
    if isinstance(attached, ModelDescriptor):
        return attached
    return derive(model)


def attach(model: nn.Module, descriptor: ModelDescriptor) -> nn.Module:
    """Store ``descriptor`` on ``model`` (it survives ``.to()``, ``.eval()`` and deep copies)."""
    model.__dict__[ATTRIBUTE] = descriptor
    return model


def derive(model: nn.Module) -> ModelDescriptor:
    """A descriptor from ``model``'s class ``traits`` and its config's ``upscale``,
    ``in_chans``, ``embed_dim`` and ``upsampler`` (registry architectures all have a config;
    other modules are taken as x1, 3 channels, 64 features)."""
    traits = getattr(type(model), "traits", DEFAULT_TRAITS)
    if not isinstance(traits, ArchitectureTraits):
        raise TypeError(
            f"{type(model).__name__}.traits must be an ArchitectureTraits, not "
            f"{type(traits).__name__}"
        )
    config = getattr(model, "config", None)
    scale = int(getattr(config, "upscale", 1))
    chans = int(getattr(config, "in_chans", 3))
    return ModelDescriptor(
        architecture=str(getattr(type(model), "arch", type(model).__name__)),
        purpose="sr" if scale > 1 else "restoration",
        scale=scale,
        in_channels=chans,
        out_channels=chans,
        size=traits.size,
        tiling_changes_output=traits.tiling_changes_output,
        precisions=traits.precisions,
        bytes_per_output_pixel=_bytes_per_input_pixel(config, traits, scale, chans)
        / (scale * scale),
        parameter_bytes=sum(p.numel() * p.element_size() for p in model.parameters()),
    )


def _bytes_per_input_pixel(
    config: object, traits: ArchitectureTraits, scale: int, chans: int
) -> int:
    """Feature width x live tensors, the ``pixelshuffle`` head's 64-channel maps, and the
    output, its crop and the blend buffer of the restore engine (float32)."""
    dim = int(getattr(config, "embed_dim", 64))
    per_pixel = dim * traits.live_feature_tensors * 4
    if str(getattr(config, "upsampler", "")) == "pixelshuffle":
        per_pixel += 64 * 4 * 4 * scale * scale // 2
    return per_pixel + chans * scale * scale * 4 * 3
