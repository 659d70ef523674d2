"""What happens after every training iteration: logging, validation, checkpoints (a Callback).

Everything is keyed on the global step (optimizer steps), never on epochs or batch counters, so a
resumed run does exactly what an uninterrupted one does.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from resyn.io.atomic import atomic_path, atomic_write_text
from resyn.train.config import TrainConfig
from resyn.train.data import ValImage
from resyn.train.module import RestorationModule

METRIC_COLUMNS = ["step", "loss", "lr", "val_psnr", "val_ssim", "wall_time"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to a temporary file, fsynced and renamed: never half-written."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None):
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            rows.append({k: (float(v) if v not in ("", None) else None) for k, v in row.items()})
            rows[-1]["step"] = int(rows[-1]["step"])
    return rows


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in METRIC_COLUMNS})
    atomic_write_text(path, buf.getvalue())


def quantize(x: torch.Tensor) -> np.ndarray:
    """1CHW float -> uint8 HWC, as the field evaluates."""
    return (x[0].float().clamp(0, 1) * 255.0).round().byte().permute(1, 2, 0).cpu().numpy()


def _hw(img: np.ndarray) -> np.ndarray:
    return img[:, :, 0] if img.ndim == 3 and img.shape[2] == 1 else img


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    images: list[ValImage],
    crop_border: int,
    y_channel: bool,
    device: torch.device | str = "cpu",
) -> tuple[float, float]:
    """Mean PSNR / SSIM over full validation images (float32, outputs quantised to uint8).

    ``(nan, nan)`` when an output holds NaN or Inf: quantising would turn it into a plausible
    but meaningless PSNR; the caller stops training instead (:func:`check_finite_metrics`)."""
    from resyn.metrics import psnr, ssim

    was_training = model.training
    model.eval()
    ps, ss = [], []
    try:
        for im in images:
            y = model(im.lq.to(device))
            if not bool(torch.isfinite(y).all()):
                return math.nan, math.nan
            out = quantize(y)
            ps.append(psnr(_hw(out), _hw(im.gt), crop_border=crop_border, y_channel=y_channel))
            ss.append(ssim(_hw(out), _hw(im.gt), crop_border=crop_border, y_channel=y_channel))
    finally:
        model.train(was_training)
    return float(np.mean(ps)), float(np.mean(ss))


def check_finite_metrics(metrics: tuple[float, float], step: int) -> None:
    """Stop training, as a non-finite loss does, when validation met a NaN / Inf output."""
    from resyn.train.module import NonFiniteLossError

    if math.isnan(metrics[0]):
        raise NonFiniteLossError(
            f"the validation output is NaN or Inf at iteration {step}; training stopped (the "
            "last good checkpoint is kept). Try a lower optim.lr or precision 32."
        )


def baseline_metrics(images: list[ValImage], crop_border: int, y_channel: bool) -> dict:
    """PSNR / SSIM of bicubic upscaling (SR) or of the degraded input (denoise / JPEG)."""
    from resyn.metrics import psnr, ssim

    ps = [
        psnr(_hw(i.baseline), _hw(i.gt), crop_border=crop_border, y_channel=y_channel)
        for i in images
    ]
    ss = [
        ssim(_hw(i.baseline), _hw(i.gt), crop_border=crop_border, y_channel=y_channel)
        for i in images
    ]
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss))}


class StandardLoop(L.Callback):
    """Per-iteration logging, scheduled validation, last/best checkpoints, metrics.csv."""

    def __init__(
        self,
        *,
        run_dir: Path,
        config: TrainConfig,
        val_images: list[ValImage],
        y_channel: bool,
        echo: Callable[[str], None] | None = None,
        max_seconds: float | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.config = config
        self.val_images = val_images
        self.y_channel = y_channel
        self.echo = echo
        self.max_seconds = max_seconds  # this session's time limit (resyn train --max-minutes)
        self.stopped_at: int | None = None  # the step the time limit stopped training at
        self.ckpt_dir = run_dir / "checkpoints"
        self.metrics_path = run_dir / "metrics.csv"
        self.best = -math.inf
        self.best_step = 0
        self.wall = 0.0  # training wall time accumulated over all sessions of the run
        self._last_step = -1
        self._t0 = 0.0
        self._rows: list[dict[str, Any]] = []

    # --- checkpointed state -------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step, "wall": self.wall}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.best_step = int(state["best_step"])
        self.wall = float(state["wall"])

    # --- hooks --------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_step = trainer.global_step
        self._t0 = self._session_t0 = time.perf_counter()
        if trainer.is_global_zero:
            # Rows written after the checkpoint we resumed from belong to the lost future.
            self._rows = [
                r for r in read_metrics(self.metrics_path) if r["step"] <= trainer.global_step
            ]
            write_metrics(self.metrics_path, self._rows)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # Any randomness inside the model (dropout, drop-path) depends only on (seed, step, rank).
        seed = self.config.seed * 1_000_003 + trainer.global_step * 7919 + trainer.global_rank
        torch.manual_seed(seed % (2**63))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any
    ) -> None:
        if not isinstance(pl_module, RestorationModule):
            raise TypeError(
                f"StandardLoop trains a RestorationModule, not {type(pl_module).__name__}"
            )
        step = trainer.global_step
        if step == self._last_step:  # inside a gradient-accumulation window
            return
        self._last_step = step
        cfg = self.config
        losses = pl_module.take_step_losses()
        loss = float(np.mean(losses)) if losses else None
        final = step >= cfg.iterations
        if self.max_seconds is not None and not final:
            # rank 0's clock decides, so that every process stops at the same step
            late = time.perf_counter() - self._session_t0 >= self.max_seconds
            if trainer.strategy.broadcast(late, src=0):
                # the time limit ends this session as the schedule's end would: validation,
                # last.ckpt (--resume continues from it) and the final weights
                final, self.stopped_at = True, step
                trainer.should_stop = True
        row: dict[str, Any] = {}
        if step % cfg.log_every == 0 or final or step % cfg.val.every == 0:
            row.update(loss=loss, lr=pl_module.step_lr)
        if step % cfg.val.every == 0 or final:
            metrics = None
            if trainer.is_global_zero:
                metrics = evaluate(
                    pl_module.eval_model,
                    self.val_images,
                    cfg.crop_border,
                    self.y_channel,
                    pl_module.device,
                )
            metrics = trainer.strategy.broadcast(metrics, src=0)
            check_finite_metrics(metrics, step)  # every process stops, not only rank 0
            row.update(val_psnr=metrics[0], val_ssim=metrics[1])
        wall = self.wall + time.perf_counter() - self._t0
        if row and trainer.is_global_zero:
            row.update(step=step, wall_time=round(wall, 3))
            self._rows.append(row)
            write_metrics(self.metrics_path, self._rows)
            if trainer.logger is not None:
                trainer.logger.log_metrics({k: v for k, v in row.items() if v is not None}, step)
            if self.echo is not None and "val_psnr" in row:
                self.echo(
                    f"iter {step}/{cfg.iterations}  loss {row['loss']:.5f}  "
                    f"val PSNR {row['val_psnr']:.3f} dB  SSIM {row['val_ssim']:.4f}"
                )
        improved = "val_psnr" in row and row["val_psnr"] > self.best
        if improved:
            self.best, self.best_step = row["val_psnr"], step
        if step % cfg.checkpoint_every == 0 or final:
            self.wall = wall
            self._t0 = time.perf_counter()
            trainer.save_checkpoint(self.ckpt_dir / "last.ckpt", weights_only=False)
        if improved:
            trainer.save_checkpoint(self.ckpt_dir / "best.ckpt", weights_only=False)
            if trainer.is_global_zero:
                self._export_best(pl_module, step, row)

    def _export_best(self, pl_module: RestorationModule, step: int, row: dict[str, Any]) -> None:
        """RUN_DIR/best.safetensors: the validated weights (EMA when enabled) of the best
        validation PSNR so far, for resyn restore / eval (atomic, like every checkpoint)."""
        from resyn.models import save_model

        cfg = self.config
        info = {
            "best": True,
            "step": step,
            "iterations": step,
            "val_psnr": row["val_psnr"],
            "val_ssim": row["val_ssim"],
            "preset": cfg.name,
            "task": cfg.task,
            "total_batch": cfg.batch,
            "ema": cfg.ema_decay is not None,
            "seed": cfg.seed,
        }
        save_model(pl_module.eval_model, self.run_dir / "best.safetensors", info=info)
