"""Which weights restore which task, and checks that a weights file fits the task.

Shipped weights live in the package folder ``resyn/weights/<task>.safetensors`` (for example
``sr-x4.safetensors``, ``denoise-25.safetensors``), written by ``resyn.models.save_model`` with
``info={"task": "<task>"}``. Any other file is passed with ``weights=PATH`` / ``--weights PATH``.

Blind models (``denoise.safetensors``: Gaussian noise sigma 0..50; ``jpeg.safetensors``: JPEG
quality 10..90) restore every level of their kind: ``denoise-15`` uses ``denoise-15.safetensors``
when it is shipped and the blind ``denoise.safetensors`` otherwise (the level is not needed).
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


#: The task names ``resyn restore --task`` documents (any other valid task name works too).
TASK_NAMES = (
    "sr-x2",
    "sr-x3",
    "sr-x4",
    "denoise",
    "denoise-15",
    "denoise-25",
    "denoise-50",
    "jpeg",
    "jpeg-q10",
    "jpeg-q20",
    "jpeg-q30",
    "jpeg-q40",
)


def weights_names(task_name: str) -> list[str]:
    """Shipped file stems that serve ``task_name``, in order of preference: the task's own,
    then for a fixed noise / JPEG level the blind model of its kind (``denoise-25`` ->
    ``denoise``; ``jpeg-gray-q10`` -> ``jpeg-gray``, then the color ``jpeg``, run on the gray
    image replicated to RGB)."""
    from resyn.degrade import parse_task

    try:
        task = parse_task(task_name)
    except ValueError:
        return [task_name]
    names = [task.name]
    if task.kind in ("denoise", "jpeg") and not task.blind:
        names += [f"{task.kind}-gray", task.kind] if task.gray else [task.kind]
    return names


def task_weights(names: tuple[str, ...] = TASK_NAMES) -> dict[str, Path | None]:
    """Each task name -> the shipped weights ``resyn restore --task NAME`` uses (None: none yet)."""
    out: dict[str, Path | None] = {}
    for name in names:
        paths = [WEIGHTS_DIR / f"{n}.safetensors" for n in weights_names(name)]
        out[name] = next((p for p in paths if p.is_file()), None)
    return out


def tasks_help() -> str:
    """For ``--help``: the documented tasks with shipped weights, then those without."""
    table = task_weights()
    have = [n for n, p in table.items() if p is not None]
    lack = [n for n, p in table.items() if p is None]
    text = f"with shipped weights: {', '.join(have) or 'none'}"
    return text + (f"; no shipped weights yet: {', '.join(lack)}" if lack else "")


def default_weights_path(task_name: str) -> Path:
    """The shipped weights for ``task_name`` (its own file, else the blind model of its kind);
    ``WeightsError`` naming the missing files if none."""
    names = weights_names(task_name)
    for name in names:
        path = WEIGHTS_DIR / f"{name}.safetensors"
        if path.is_file():
            return path
    available = ", ".join(shipped_weights()) or "none"
    looked = " nor ".join(f"{n}.safetensors" for n in names)
    what = (
        f"neither {looked} (the blind model) exists"
        if len(names) > 1
        else f"{looked} does not exist"
    )
    raise WeightsError(
        f"no shipped weights for task {task_name!r}: {what} in {WEIGHTS_DIR} "
        f"(shipped tasks: {available}); this task has no shipped weights yet. Pass weights "
        "with --weights PATH (Python: weights=PATH), for example a model trained with "
        "`resyn train`."
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


def _trained_task(meta: dict[str, Any]) -> Any:
    from resyn.degrade import parse_task

    recorded = weights_task(meta)
    try:
        return parse_task(recorded) if recorded else None
    except ValueError:
        return None


def serves_gray_by_replication(meta: dict[str, Any], task: Task) -> bool:
    """A color blind model (``denoise``, ``jpeg``) given a gray task of its kind: it runs on the
    gray image replicated to RGB and the output channels are averaged."""
    trained = _trained_task(meta)
    chans = int(meta["config"].get("in_chans", 3))
    return bool(
        task.gray
        and chans == 3
        and trained is not None
        and trained.blind
        and not trained.gray
        and trained.serves(task)
    )


def check_weights_for_task(meta: dict[str, Any], task: Task, source: str) -> None:
    """Raise ``WeightsError`` when the weights' scale, channels or recorded task disagree.

    A blind model serves every fixed level of its kind (``Task.serves``)."""
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
    trained = _trained_task(meta)
    if recorded and recorded != task.name and not (trained and trained.serves(task)):
        raise WeightsError(
            f"{source} was trained for task {recorded}, not {task.name}; use --task {recorded} "
            "or other weights"
        )
    if task.gray and chans != 1 and not serves_gray_by_replication(meta, task):
        raise WeightsError(f"{source} is a color (3-channel) model; task {task.name} is gray")
    if not task.gray and task.kind != "sr" and chans != 3:
        raise WeightsError(f"{source} is a gray (1-channel) model; task {task.name} is color")
