"""Which weights restore which task, and checks that a weights file fits the task.

Shipped weights live in the package folder ``resyn/weights/<task>.safetensors`` (for example
``sr-x4.safetensors``, ``denoise-25.safetensors``), written by ``resyn.models.save_model`` with
``info={"task": "<task>"}``. Any other file is passed with ``weights=PATH`` / ``--weights PATH``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resyn.errors import ResynError

if TYPE_CHECKING:
    from resyn.degrade.tasks import Task

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"


class WeightsError(ResynError, ValueError):
    """Weights are missing or do not fit the requested task."""


def shipped_weights() -> dict[str, Path]:
    """Task name -> shipped weights file, for every file in the package's weights folder."""
    if not WEIGHTS_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(WEIGHTS_DIR.glob("*.safetensors"))}


def default_weights_path(task_name: str) -> Path:
    """The shipped weights for ``task_name``; ``WeightsError`` naming the missing file if none."""
    path = WEIGHTS_DIR / f"{task_name}.safetensors"
    if path.is_file():
        return path
    available = ", ".join(shipped_weights()) or "none"
    raise WeightsError(
        f"no shipped weights for task {task_name!r}: {path} does not exist "
        f"(shipped tasks: {available}). Pass weights with --weights PATH (Python: weights=PATH), "
        "for example a model trained with `resyn train`."
    )


def resolve_weights(task_name: str, weights: str | os.PathLike[str] | None) -> Path:
    if weights is None:
        return default_weights_path(task_name)
    path = Path(weights)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.safetensors"))[:5]
        hint = f" (it holds {', '.join(found)})" if found else ""
        raise WeightsError(
            f"weights {path} is a folder, not a weights file{hint}; "
            "pass one .safetensors file, for example runs/x2/best.safetensors"
        )
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    return path


def weights_task(meta: dict[str, Any]) -> str | None:
    """The task a weights file was trained for (``info.task``), if recorded."""
    task = (meta.get("info") or {}).get("task")
    return str(task) if task else None


def infer_task_name(meta: dict[str, Any]) -> str:
    """Task of a weights file: ``info.task`` if recorded, else ``sr-x{upscale}`` for SR models."""
    recorded = weights_task(meta)
    if recorded:
        return recorded
    scale = int(meta["config"].get("upscale", 1))
    if scale > 1:
        return f"sr-x{scale}"
    raise WeightsError(
        "the weights do not record their task (info.task) and are not an SR model; "
        "pass the task explicitly (--task denoise-25, jpeg-q10, ...)"
    )


def check_weights_for_task(meta: dict[str, Any], task: Task, source: str) -> None:
    """Raise ``WeightsError`` when the weights' scale, channels or recorded task disagree."""
    config = meta["config"]
    scale = int(config.get("upscale", 1))
    chans = int(config.get("in_chans", 3))
    want_scale = int(task.scale) if task.kind == "sr" else 1
    if scale != want_scale:
        raise WeightsError(
            f"{source} is a x{scale} model but task {task.name} needs x{want_scale}"
            + (
                f" (these weights were trained for {weights_task(meta)})"
                if weights_task(meta)
                else ""
            )
        )
    recorded = weights_task(meta)
    if recorded and recorded != task.name:
        raise WeightsError(
            f"{source} was trained for task {recorded}, not {task.name}; use --task {recorded} "
            "or other weights"
        )
    if task.gray and chans != 1:
        raise WeightsError(f"{source} is a color (3-channel) model; task {task.name} is gray")
    if not task.gray and task.kind != "sr" and chans != 3:
        raise WeightsError(f"{source} is a gray (1-channel) model; task {task.name} is color")
