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
import threading
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from resyn.errors import ResynError
from resyn.io.atomic import atomic_path
from resyn.models.descriptor import attach, derive, describe
from resyn.models.registry import (
    architecture_class,
    build_config,
    build_from_config,
    check_config_values,
)

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
    preset = describe(model).preset
    if preset:
        metadata["resyn.preset"] = preset
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    # Shared storage (tied weights) is not allowed by safetensors: clone each tensor.
    tensors = {k: v.clone() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


class WeightsFileError(ResynError, ValueError):
    """A weights file resyn cannot use: unreadable, without resyn metadata, with metadata that is
    not what ``save_model`` writes, or with a config that disagrees with the file's tensors. The
    message names the file and, where one is at fault, the metadata key."""


# No resyn model has more than a few thousand tensors; a header listing more is refused before
# anything is built from it.
MAX_TENSORS = 100_000
# Buffers a model computes from its config without storing them (not in the file): bounded,
# since only the config (a few bytes of JSON) would pay for them.
MAX_DERIVED_BUFFER_BYTES = 256 << 20


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The resyn metadata of a weights file, decoded and checked: arch, config, preset, info.

    ``config`` is the JSON object as stored (lists, not tuples), with every key a field of the
    architecture's config and every value of that field's type. Raises ``FileNotFoundError``
    for a missing file and :class:`WeightsFileError` (a ``ValueError``) naming the file and the
    key for anything else.
    """
    p = Path(path)
    meta = _raw_metadata(p)
    arch = meta["resyn.arch"]
    try:
        architecture_class(arch)
    except ValueError as exc:
        raise WeightsFileError(f"{p}: resyn.arch: {exc}") from None
    config = _json_object(p, meta, "resyn.config")
    try:
        check_config_values(arch, _tuples(config))
    except ValueError as exc:
        raise WeightsFileError(f"{p}: resyn.config: {exc}") from None
    return {
        "arch": arch,
        "config": config,
        "preset": meta.get("resyn.preset"),
        "info": _json_object(p, meta, "resyn.info", default="{}"),
    }


def _json_object(
    path: Path, meta: dict[str, str], key: str, default: str | None = None
) -> dict[str, Any]:
    text = meta.get(key, default)
    try:
        value = json.loads(text)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise WeightsFileError(f"{path}: {key} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise WeightsFileError(
            f"{path}: {key} must be a JSON object, not {type(value).__name__} "
            f"({_short(text or '')})"
        )
    return value


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _raw_metadata(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsFileError(f"{path} is not a readable safetensors file ({exc})") from None
    missing = [k for k in ("resyn.arch", "resyn.config") if k not in meta]
    if missing:
        raise WeightsFileError(
            f"{path} has no resyn metadata ({', '.join(missing)} missing): it was not written "
            "by resyn.models.save_model. Official SwinIR/MambaIR .pth files load with "
            "resyn.models.load_official."
        )
    if meta.get("resyn.format", FORMAT_VERSION) != FORMAT_VERSION:
        raise WeightsFileError(
            f"{path}: resyn.format is {_short(meta['resyn.format'])!r}, expected 1"
        )
    return meta


def tensor_shapes(path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a safetensors file, from its header (no data read)."""
    p = Path(path)
    try:
        with safe_open(str(p), framework="pt") as fh:
            names = list(fh.keys())
            if len(names) > MAX_TENSORS:
                raise WeightsFileError(
                    f"{p} lists {len(names)} tensors; resyn models have at most {MAX_TENSORS}"
                )
            return {k: tuple(fh.get_slice(k).get_shape()) for k in names}
    except (SafetensorError, OSError) as exc:
        raise WeightsFileError(f"{p} is not a readable safetensors file ({exc})") from None


def load_model(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    strict: bool = True,
    trusted: bool = False,
) -> nn.Module:
    """Rebuild the model stored by ``save_model`` and load its weights (eval mode), with its
    ``ModelDescriptor`` attached (preset, recorded task, the file and its ``info``).

    The file is untrusted: its config is first built on the meta device (no memory) and
    compared with the tensor shapes in the file's header, so a config that names sizes the file
    does not hold (``depths=[100000]``) is refused before a model is built for real. Raises
    :class:`WeightsFileError` naming the file (and key) for any inconsistency. ``trusted=True``
    (the weights shipped inside the package) skips that check, whose first use in a process
    costs a second or more (PyTorch imports its meta-device kernels).
    """
    p = Path(path)
    meta = read_metadata(p)
    arch = meta["arch"]
    try:
        config = build_config(arch, _tuples(meta["config"]))
    except (ValueError, TypeError) as exc:
        raise WeightsFileError(f"{p}: resyn.config: {exc}") from None
    if not trusted:
        _check_against_header(p, arch, config, tensor_shapes(p), strict=strict)
    model = build_from_config(arch, config)
    from safetensors.torch import load_file

    state = load_file(str(p), device="cpu")
    model.load_state_dict(state, strict=strict)
    info = meta["info"]
    task = info.get("task")
    descriptor = derive(model).with_origin(
        preset=meta.get("preset") or None,
        task=task if isinstance(task, str) and task else None,
        source=str(p),
        info=info,
    )
    return attach(model, descriptor).to(device).eval()


def _check_against_header(
    path: Path, arch: str, config: Any, shapes: dict[str, tuple[int, ...]], *, strict: bool
) -> None:
    """Build ``config`` on the meta device and compare its state with the file's tensors."""
    model = build_on_meta(path, arch, config, len(shapes) if strict else MAX_TENSORS)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    _compare_shapes(path, expected, shapes, strict=strict)
    derived = sum(
        b.numel() * b.element_size() for name, b in model.named_buffers() if name not in expected
    )
    if derived > MAX_DERIVED_BUFFER_BYTES:
        raise WeightsFileError(
            f"{path}: resyn.config asks for {derived / 2**20:.0f} MiB of computed buffers "
            f"(limit {MAX_DERIVED_BUFFER_BYTES >> 20} MiB)"
        )


def _compare_shapes(
    path: Path,
    expected: dict[str, tuple[int, ...]],
    shapes: dict[str, tuple[int, ...]],
    *,
    strict: bool,
) -> None:
    if strict and expected.keys() != shapes.keys():
        missing = sorted(expected.keys() - shapes.keys())
        extra = sorted(shapes.keys() - expected.keys())
        details = [
            f"{label} {_names(names)}"
            for label, names in (("not in the file:", missing), ("not in the config:", extra))
            if names
        ]
        raise WeightsFileError(
            f"{path}: resyn.config does not match the file's tensors: the config gives "
            f"{len(expected)} tensors, the file holds {len(shapes)} ({'; '.join(details)})"
        )
    for name in sorted(expected.keys() & shapes.keys()):
        if expected[name] != shapes[name]:
            raise WeightsFileError(
                f"{path}: resyn.config does not match the file's tensors: {name} has shape "
                f"{list(shapes[name])} in the file, {list(expected[name])} for the config"
            )


def _names(names: list[str], limit: int = 3) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def build_on_meta(
    source: str | os.PathLike[str],
    arch: str,
    config: Any,
    n_tensors: int,
    *,
    what: str = "resyn.config",
) -> nn.Module:
    """``config``'s model on the meta device (no memory), for a file holding ``n_tensors``.

    Each tensor of a file is one parameter or buffer: a config asking for many more (say
    ``depths=[100000]``) is stopped while it is being built, before its modules pile up.
    Raises :class:`WeightsFileError` naming ``source`` and ``what`` (the part of the file the
    config comes from) for that and for any error the architecture raises.
    """
    budget = 2 * n_tensors + 64
    try:
        return _build_on_meta(arch, config, budget)
    except _TooLarge:
        raise WeightsFileError(
            f"{source}: {what} describes a model with more than {budget} tensors; the file "
            f"holds {n_tensors}"
        ) from None
    except Exception as exc:  # an untrusted config may fail in any way: say so, no traceback
        raise WeightsFileError(
            f"{source}: {what} does not describe a {arch} model ({type(exc).__name__}: {exc})"
        ) from None


class _TooLarge(Exception):
    pass


def _build_on_meta(arch: str, config: Any, budget: int) -> nn.Module:
    """Build on the meta device, stopping once more than ``budget`` tensors were registered."""
    from torch.nn.modules import module as torch_module

    owner = threading.get_ident()
    count = 0

    def on_tensor(*_: Any) -> None:
        nonlocal count
        if threading.get_ident() == owner:
            count += 1
            if count > budget:
                raise _TooLarge

    hooks = [
        torch_module.register_module_parameter_registration_hook(on_tensor),
        torch_module.register_module_buffer_registration_hook(on_tensor),
    ]
    try:
        with torch.device("meta"):
            return build_from_config(arch, config)
    finally:
        for hook in hooks:
            hook.remove()


def _tuples(values: dict[str, Any]) -> dict[str, Any]:
    # JSON turns tuples into lists; configs use tuples for sequences.
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
