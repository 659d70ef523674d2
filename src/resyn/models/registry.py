"""Architectures and presets, as data.

An *architecture* is a module exposing a config dataclass and an ``nn.Module`` built from it.
A *preset* is a named set of hyper-parameters for one architecture (``rwkvir-light``...).
``build_model`` turns a preset name into a model; unknown names and unknown keys raise
``ValueError`` listing what exists, never a bare ``KeyError``.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from resyn.models.descriptor import attach, derive

# architecture name -> "module:ModelClass"; the config class is ModelClass.config_class.
ARCHITECTURES: dict[str, str] = {
    "rwkvir": "resyn.models.rwkvir:RWKVIR",
    "swinir": "resyn.models.swinir:SwinIR",
    "mambair": "resyn.models.mambair:MambaIR",
}


@dataclass(frozen=True)
class Preset:
    """A named model: architecture, hyper-parameters, the scales it supports, what it is for."""

    name: str
    arch: str
    params: dict[str, Any]
    scales: tuple[int, ...]
    description: str
    tasks: tuple[str, ...] = ("sr",)
    default_scale: int = 2
    extra: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {}


def register_preset(preset: Preset) -> Preset:
    if preset.name in PRESETS:
        raise ValueError(f"preset {preset.name!r} is already registered")
    if preset.arch not in ARCHITECTURES:
        raise ValueError(f"preset {preset.name!r} names unknown architecture {preset.arch!r}")
    PRESETS[preset.name] = preset
    return preset


def architecture_class(arch: str) -> type[nn.Module]:
    try:
        target = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(
            f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}"
        ) from None
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def get_preset(name: str) -> Preset:
    _load_builtin_presets()
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; available presets: {', '.join(sorted(PRESETS))}"
        ) from None


def list_presets() -> list[Preset]:
    _load_builtin_presets()
    return [PRESETS[k] for k in sorted(PRESETS)]


def build_config(arch: str, values: dict[str, Any]) -> Any:
    """Instantiate ``arch``'s config dataclass, naming any unknown key or mistyped value."""
    check_config_values(arch, values)
    return architecture_class(arch).config_class(**values)


def check_config_values(arch: str, values: dict[str, Any]) -> None:
    """``ValueError`` naming the first unknown key of ``values`` or the first value whose type
    is not its field's (``embed_dim`` must be an integer, ``depths`` a list of integers, floats
    finite...). Values come from files and command lines: nothing else may be assumed."""
    config_class = architecture_class(arch).config_class
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - known, key=str)
    if unknown:
        raise ValueError(
            f"unknown option(s) for {arch}: {', '.join(map(str, unknown))}; "
            f"valid options: {', '.join(sorted(known))}"
        )
    hints = typing.get_type_hints(config_class)
    for key, value in values.items():
        expected = _expected_type(value, hints.get(key, Any))
        if expected is not None:
            raise ValueError(f"option {key} must be {expected}, not {_short_repr(value)}")


def _expected_type(value: Any, hint: Any) -> str | None:
    """``None`` when ``value`` fits the type ``hint``, else what it should be, in words."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        wanted = [_expected_type(value, a) for a in args]
        return None if None in wanted else " or ".join(w for w in wanted if w)
    if origin is tuple:  # configs use tuple[X, ...]; JSON and YAML give lists
        item = args[0] if args else Any
        fits = isinstance(value, (list, tuple)) and all(
            _expected_type(v, item) is None for v in value
        )
        return None if fits else f"a list of {_plural(item)}"
    check = _SCALAR_CHECKS.get(hint)
    if check is None:
        return None  # a type resyn configs do not use: left to the config class
    ok, words = check
    return None if ok(value) else words


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


_SCALAR_CHECKS: dict[Any, tuple[Callable[[Any], bool], str]] = {
    int: (_is_int, "an integer"),
    float: (_is_finite_number, "a finite number"),
    bool: (lambda v: isinstance(v, bool), "true or false"),
    str: (lambda v: isinstance(v, str), "a string"),
    type(None): (lambda v: v is None, "null"),
}


def _plural(hint: Any) -> str:
    return {int: "integers", float: "finite numbers", str: "strings"}.get(hint, "values")


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def build_from_config(arch: str, config: Any) -> nn.Module:
    return architecture_class(arch)(config)


def build_model(
    name: str, scale: int | None = None, in_channels: int = 3, **overrides: Any
) -> nn.Module:
    """Build a preset: ``build_model("rwkvir-light", scale=4)``, its ``ModelDescriptor``
    attached (``resyn.models.describe``, with the preset's name).

    ``scale`` defaults to the preset's default (1 for restoration presets); ``in_channels`` is 1
    (gray) or 3 (color); ``overrides`` replace any hyper-parameter of the architecture's config.
    """
    preset = get_preset(name)
    if scale is None:
        scale = preset.default_scale
    if scale not in preset.scales:
        raise ValueError(f"{name} supports scale {', '.join(map(str, preset.scales))}, not {scale}")
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 (gray) or 3 (color), not {in_channels}")
    values = dict(preset.params)
    values.update(preset.extra.get("scale_params", {}).get(scale, {}))
    values.update({"upscale": scale, "in_chans": in_channels})
    values.update(overrides)
    model = build_from_config(preset.arch, build_config(preset.arch, values))
    return attach(model, derive(model).with_origin(preset=name))


_loaded = False


def _load_builtin_presets() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        importlib.import_module("resyn.models.presets")
