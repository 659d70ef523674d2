"""The unified training standard as data: the shipped YAML presets, ``--set`` overrides and the
budget scale.

Presets live in ``resyn/standard/presets/<name>.yaml`` (package data). Each file holds exactly
the keys of :class:`resyn.train.config.TrainConfig`; ``resyn standard show NAME`` prints it, and
``--set a.b=value`` changes any key (the value is parsed as YAML: ``1e-4``, ``[1, 2]``, ``null``).
"""

from __future__ import annotations

import copy
import math
from importlib import resources
from typing import Any

import yaml
from pydantic import ValidationError

from resyn.errors import ResynError
from resyn.train.config import TrainConfig

SMOKE_SUFFIX = "-smoke"
SMOKE_BUDGET = 0.002


class ConfigError(ResynError, ValueError):
    """A preset or override that does not validate; the message names the offending key."""


def _preset_dir() -> Any:
    return resources.files("resyn").joinpath("standard", "presets")


def list_standard() -> list[str]:
    """Names of the shipped presets, sorted."""
    return sorted(
        p.name[: -len(".yaml")] for p in _preset_dir().iterdir() if p.name.endswith(".yaml")
    )


def preset_dict(name: str) -> dict[str, Any]:
    """The raw YAML mapping of a preset (``-smoke`` suffix: the preset at budget 0.002)."""
    base = name[: -len(SMOKE_SUFFIX)] if name.endswith(SMOKE_SUFFIX) else name
    names = list_standard()
    if base not in names:
        raise ConfigError(
            f"unknown training preset {name!r}; available: {', '.join(names)} "
            f"(each also as NAME{SMOKE_SUFFIX}, budget {SMOKE_BUDGET})"
        )
    data = yaml.safe_load(_preset_dir().joinpath(f"{base}.yaml").read_text())
    if not isinstance(data, dict):
        raise ConfigError(f"preset {base!r} is not a YAML mapping")
    if base != name:
        data["name"] = name
        data["budget"] = SMOKE_BUDGET
    return data


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["optim.lr=1e-4", "batch=16"]`` -> ``{"optim.lr": 1e-4, "batch": 16}`` (YAML values)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE (e.g. optim.lr=1e-4), got {item!r}")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: cannot parse value {raw!r} ({exc})") from None
    return out


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys in a nested mapping; an unknown section is reported by validation."""
    out = copy.deepcopy(data)
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {dotted}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def validate(data: dict[str, Any]) -> TrainConfig:
    """Build a :class:`TrainConfig`, turning pydantic's report into one message naming keys."""
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (misspelled?)"
            lines.append(f"{loc}: {msg}" if loc else msg)
        name = data.get("name", "?")
        raise ConfigError(f"invalid training config {name!r}: " + "; ".join(lines)) from None


def scale_budget(config: TrainConfig, budget: float) -> TrainConfig:
    """Shrink the schedule to ``budget`` of the standard: iterations, LR milestones, validation,
    checkpoint and log cadence scale proportionally (at least 1); everything else is unchanged.
    """
    if not (0 < budget <= 1):
        raise ConfigError(f"budget must be in (0, 1], got {budget}")
    if budget == 1:
        return config

    def s(n: int) -> int:
        return max(1, math.ceil(n * budget))

    iterations = s(config.iterations)
    milestones = sorted({s(m) for m in config.sched.milestones if s(m) < iterations})
    data = config.model_dump()
    data.update(
        iterations=iterations,
        checkpoint_every=min(s(config.checkpoint_every), iterations),
        log_every=s(config.log_every),
        budget=config.budget * budget,
    )
    data["sched"]["milestones"] = milestones
    data["val"]["every"] = min(s(config.val.every), iterations)
    return validate(data)


def load_config(
    name: str, overrides: list[str] | dict[str, Any] | None = None, budget: float | None = None
) -> TrainConfig:
    """Preset ``name``, scaled by the budget, then the ``--set`` overrides.

    The budget is the ``budget`` argument, else a ``budget`` override, else the ``-smoke``
    suffix's 0.002, else 1. Overrides are applied after scaling, so an explicit value is final
    (``--budget 0.002 --set val.every=25`` validates every 25 iterations).
    """
    data = preset_dict(name)
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    overrides = dict(overrides or {})
    want = data.pop("budget", 1.0)
    if "budget" in overrides:
        want = overrides.pop("budget")
    if budget is not None:
        want = budget
    try:
        want = float(want)
    except (TypeError, ValueError):
        raise ConfigError(f"budget: expected a number in (0, 1], got {want!r}") from None
    config = scale_budget(validate(data), want)
    if not overrides:
        return config
    return validate(apply_overrides(config.model_dump(mode="json"), overrides))


def dump_yaml(config: TrainConfig) -> str:
    """The config as YAML with the same keys ``--set`` takes."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
