"""Model specs for evaluation: ``bicubic``, a resyn weights file, ``swinir:PATH``, ``mambair:PATH``.

A spec may carry a table label: ``RWKV-IR=runs/x2/best.safetensors``. Everything is loaded and
checked against the task before any image is processed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from torch import nn

from resyn.eval.data import EvalError
from resyn.models.descriptor import describe

if TYPE_CHECKING:
    from resyn.degrade.tasks import Task

OFFICIAL_KINDS = ("swinir", "mambair")
BASELINE_SPECS = ("bicubic", "input")


ModelKind = Literal["bicubic", "input", "weights", "swinir", "mambair"]


@dataclass
class EvalModel:
    label: str
    spec: str
    kind: ModelKind
    model: nn.Module | None = None

    def describe(self) -> str:
        if self.model is None:
            return self.kind
        return f"{self.kind} {type(self.model).__name__} x{describe(self.model).scale}"


def _split_label(spec: str) -> tuple[str | None, str]:
    if "=" in spec:
        label, _, rest = spec.partition("=")
        if label and "/" not in label and "\\" not in label and rest:
            return label, rest
    return None, spec


def load_eval_model(spec: str, task: Task, *, device: str = "cpu") -> EvalModel:
    """Resolve ``spec`` for ``task``; ``EvalError`` naming the problem otherwise."""
    label, body = _split_label(spec)
    if body.lower() in BASELINE_SPECS:
        kind = body.lower()
        if kind == "bicubic" and task.kind != "sr":
            kind = "input"  # no upscaling: the baseline is the degraded input itself
        default = {"bicubic": "Bicubic", "input": f"{task.kind} input"}[kind]
        return EvalModel(label or default, spec, kind)
    prefix, sep, rest = body.partition(":")
    if sep and prefix.lower() in OFFICIAL_KINDS and len(prefix) > 1:
        path = Path(rest)
        if not path.is_file():
            raise EvalError(f"--model {spec}: checkpoint not found: {path}")
        try:
            from resyn.models.official import load_official
        except ImportError as exc:
            raise EvalError(
                f"--model {spec}: official checkpoints need resyn.models.official ({exc})"
            ) from None
        try:
            model = load_official(prefix.lower(), path)
        except (ValueError, KeyError, RuntimeError, OSError) as exc:
            raise EvalError(f"--model {spec}: cannot load the {prefix} checkpoint: {exc}") from None
        _check_model(model, task, spec)
        return EvalModel(
            label or f"{prefix}:{path.stem}", spec, prefix.lower(), model.to(device).eval()
        )
    path = Path(body)
    if not path.exists():
        raise EvalError(
            f"--model {spec}: not found. Expected a resyn .safetensors weights file, 'bicubic', "
            f"or {' / '.join(k + ':PATH' for k in OFFICIAL_KINDS)} for official checkpoints"
        )
    if path.suffix.lower() in (".pth", ".pt", ".ckpt", ".bin"):
        raise EvalError(
            f"--model {spec}: {path.name} looks like a PyTorch checkpoint, not resyn weights; "
            f"for official releases write swinir:{path} or mambair:{path}"
        )
    from resyn.models import load_model, read_metadata
    from resyn.restore.weights import (
        WeightsError,
        check_weights_for_task,
        serves_gray_by_replication,
    )

    try:
        meta = read_metadata(path)
    except (ValueError, KeyError) as exc:
        raise EvalError(f"--model {spec}: unrecognised checkpoint: {exc}") from None
    try:
        check_weights_for_task(meta, task, str(path))
    except WeightsError as exc:
        raise EvalError(f"--model {spec}: {exc}") from None
    try:
        model = load_model(path, device=device)
    except (ValueError, RuntimeError, KeyError) as exc:
        raise EvalError(f"--model {spec}: cannot load {path}: {exc}") from None
    # a color blind model on a gray task runs on the gray input replicated (eval.runner)
    _check_model(model, task, spec, gray_ok=serves_gray_by_replication(meta, task))
    return EvalModel(label or path.stem, spec, "weights", model)


def _check_model(model: nn.Module, task: Task, spec: str, gray_ok: bool = False) -> None:
    descriptor = describe(model)
    scale, chans = descriptor.scale, descriptor.in_channels
    want = task.scale if task.kind == "sr" else 1
    if scale != want:
        raise EvalError(f"--model {spec}: a x{scale} model cannot be evaluated on {task.name}")
    if chans != task.channels and not (gray_ok and chans == 3):
        raise EvalError(
            f"--model {spec}: a {chans}-channel model cannot be evaluated on "
            f"{'gray' if task.gray else 'color'} task {task.name}"
        )


def run_baseline(kind: str, lq_u8: np.ndarray, task: Task) -> np.ndarray:
    """Bicubic (MATLAB ``imresize`` of the uint8 LR) or the degraded input itself, uint8 HWC."""
    if kind == "bicubic":
        from resyn.degrade import imresize

        out = imresize(lq_u8, float(task.scale))
        return out if out.ndim == 3 else out[:, :, None]
    return lq_u8
