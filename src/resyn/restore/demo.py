"""``resyn demo``: a local Gradio page to restore one image and compare before/after.

Needs the optional extra ``resyn[demo]`` (Gradio). The page has a file upload (the original
bytes are kept, so 16-bit, alpha and EXIF orientation are handled as by ``resyn restore``), a
task/model selector, a before/after slider and a download of the restored PNG.

Limits: uploads larger than ``max_upload_bytes`` or with more than ``max_pixels`` pixels are
refused with a message, and only files inside Gradio's upload folder are read (a request that
names any other path on the server is refused).

Results are written to one temporary folder per app (``resyn-demo-*``); only the latest
``keep_results`` are kept (Gradio copies each into its own cache when it serves it) and the
folder is removed when the process exits, so a long-running demo does not fill the disk.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resyn.errors import ResynError
from resyn.restore.api import Restorer, load_restorer, restore_array
from resyn.restore.weights import WeightsError, shipped_weights

DEFAULT_TASK = "sr-x4"  # what the demo opens on when no --task or --weights is given


class DemoError(ResynError, ValueError):
    """A problem with an upload, shown to the user."""


def upload_root() -> Path:
    """Gradio's upload cache (``GRADIO_TEMP_DIR`` or ``<tmp>/gradio``)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR", Path(tempfile.gettempdir()) / "gradio")).resolve()


@dataclass
class DemoBackend:
    """Everything the page does, without Gradio (unit-testable)."""

    choices: dict[str, tuple[str, Path]]  # label -> (task, weights)
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 4_000_000
    allowed_root: Path | None = None  # None: any path (tests); the app passes upload_root()
    results_dir: Path | None = None  # None: a fresh temporary folder, removed by close()
    keep_results: int = 20  # result files kept on disk; older ones are deleted
    _cache: dict[str, Restorer] = field(default_factory=dict)
    _owned_dir: Path | None = None
    _count: int = 0

    def _result_folder(self) -> Path:
        """A new folder for one result (so two uploads of ``photo.png`` never collide); the
        oldest are removed beyond ``keep_results``."""
        if self.results_dir is None:
            self.results_dir = self._owned_dir = Path(tempfile.mkdtemp(prefix="resyn-demo-"))
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self._count += 1
        folder = self.results_dir / f"{self._count:06d}"
        folder.mkdir()
        old = sorted(p for p in self.results_dir.iterdir() if p.is_dir() and p.name.isdigit())
        for stale in old[: max(0, len(old) - max(1, self.keep_results))]:
            shutil.rmtree(stale, ignore_errors=True)
        return folder

    def close(self) -> None:
        """Remove the temporary results folder this backend created (not a given one)."""
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = self.results_dir = None

    def restorer(self, label: str) -> Restorer:
        if label not in self.choices:
            raise DemoError(f"unknown choice {label!r}; pick one of: {', '.join(self.choices)}")
        if label not in self._cache:
            task, weights = self.choices[label]
            self._cache[label] = load_restorer(task, weights)
        return self._cache[label]

    def process(self, upload: Any, label: str) -> tuple[np.ndarray, np.ndarray, Path, str]:
        """Restore an uploaded file: (before for display, after for display, PNG path, note)."""
        from resyn.io import ImageReadError, read_image, to_rgb8, write_image

        if upload is None:
            raise DemoError("upload an image first")
        path = Path(getattr(upload, "name", None) or getattr(upload, "path", None) or str(upload))
        resolved = path.resolve()
        if self.allowed_root is not None and not resolved.is_relative_to(self.allowed_root):
            raise DemoError("refusing to read a file that was not uploaded through this page")
        if not resolved.is_file():
            raise DemoError("the uploaded file is missing")
        size = resolved.stat().st_size
        if size > self.max_upload_bytes:
            raise DemoError(
                f"the upload is {_human(size)}; the limit is {_human(self.max_upload_bytes)}"
            )
        try:
            image = read_image(resolved, max_pixels=self.max_pixels)
        except ImageReadError as exc:
            raise DemoError(f"cannot read the upload: {exc.reason}") from None
        restorer = self.restorer(label)
        try:
            out, info = restore_array(restorer, image)
        except ValueError as exc:
            raise DemoError(str(exc)) from None
        target = self._result_folder() / f"{Path(path.name).stem}_{restorer.task.name}.png"
        write_image(
            target,
            out,
            metadata={"resyn:task": restorer.task.name, "resyn:tiling": info.describe()},
        )
        after = to_rgb8(out)
        before = to_rgb8(image)
        if before.shape[:2] != after.shape[:2]:
            import cv2

            before = cv2.resize(
                before, (after.shape[1], after.shape[0]), interpolation=cv2.INTER_NEAREST
            )
        h, w = image.shape[:2]
        note = (
            f"{w}x{h} -> {out.shape[1]}x{out.shape[0]} with {restorer.describe()} "
            f"({info.describe()})"
        )
        return before, after, target, note


def _human(n: int) -> str:
    for unit, factor in (("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} bytes"


def default_choices(weights: list[Path]) -> dict[str, tuple[str, Path]]:
    """Shipped weights per task plus any extra weights files (labelled by file and task)."""
    from resyn.models import read_metadata
    from resyn.restore.weights import infer_task_name

    choices: dict[str, tuple[str, Path]] = {}
    for w in weights:
        try:
            task = infer_task_name(read_metadata(w))
        except (ValueError, FileNotFoundError, WeightsError) as exc:
            raise ValueError(f"--weights {w}: {exc}") from None
        choices[f"{task} ({Path(w).name})"] = (task, Path(w))
    # the user's own weights come first (and are the default); then the shipped ones
    choices.update({task: (task, path) for task, path in shipped_weights().items()})
    if not choices:
        raise ValueError(
            "no weights to serve: the package ships none yet and no --weights was given"
        )
    return choices


def default_choice(
    choices: dict[str, tuple[str, Path]], task: str | None, user_weights: bool = False
) -> str:
    """The label the page opens on: the first choice for ``task`` (``--task``), else the user's
    own weights, else ``DEFAULT_TASK``. A ``task`` no choice serves is a ``ValueError`` naming
    the tasks that are served."""
    from resyn.restore.weights import weights_names

    labels = list(choices)
    if task is not None:
        # the task's own weights, else the blind model of its kind (denoise-50 -> denoise)
        match = next(
            (k for name in weights_names(task) for k in labels if choices[k][0] == name), None
        )
        if match is None:
            known = ", ".join(dict.fromkeys(t for t, _ in choices.values()))
            raise ValueError(
                f"--task {task}: the demo has no weights for it; known tasks: {known} "
                "(add weights for another task with --weights FILE)"
            )
        return match
    if user_weights:
        return labels[0]
    return next((k for k in labels if choices[k][0] == DEFAULT_TASK), labels[0])


def build_demo(
    weights: list[Path] | None = None,
    default_task: str | None = None,
    max_upload_bytes: int = 20 * 1024 * 1024,
    max_pixels: int = 4_000_000,
    allowed_root: Path | None = None,
) -> Any:
    """The Gradio Blocks app (``.launch()`` it)."""
    import gradio as gr

    choices = default_choices(list(weights or []))
    first = default_choice(choices, default_task, bool(weights))
    backend = DemoBackend(choices, max_upload_bytes, max_pixels, allowed_root or upload_root())
    atexit.register(backend.close)
    labels = list(choices)

    def run(upload: Any, label: str):
        try:
            before, after, target, note = backend.process(upload, label)
        except DemoError as exc:
            raise gr.Error(str(exc)) from None
        return (before, after), str(target), note

    with gr.Blocks(title="resyn restore") as app:
        gr.Markdown(
            "# resyn: restore an image\nUpload a photo, pick the task, compare before/after "
            f"and download the PNG. Limits: {max_upload_bytes / 2**20:.0f} MB, "
            f"{max_pixels / 1e6:.1f} megapixels."
        )
        with gr.Row():
            upload = gr.File(label="image", file_types=["image"], type="filepath", elem_id="upload")
            task = gr.Dropdown(labels, value=first, label="task / model", elem_id="task")
        button = gr.Button("Restore", variant="primary", elem_id="restore")
        slider = gr.ImageSlider(label="before / after", type="numpy", elem_id="compare")
        download = gr.File(label="restored PNG", elem_id="download")
        note = gr.Textbox(label="details", interactive=False, elem_id="details")
        button.click(run, inputs=[upload, task], outputs=[slider, download, note])
    return app
