"""The LightningModule of the standard: loss, Adam + MultiStepLR per step, optional EMA."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import lightning as L
import torch
from torch import nn

from resyn.errors import ResynError
from resyn.train.config import TrainConfig


class NonFiniteLossError(ResynError, RuntimeError):
    """The training loss became NaN or Inf."""


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


class RestorationModule(L.LightningModule):
    """Wraps any resyn model; ``model`` is trained, ``ema`` (if enabled) is validated/exported."""

    def __init__(self, model: nn.Module, config: TrainConfig) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.ema: nn.Module | None = None
        if config.ema_decay is not None:
            self.ema = copy.deepcopy(model).requires_grad_(False)
        self.step_losses: list[float] = []
        self.step_lr = config.optim.lr

    def take_step_losses(self) -> list[float]:
        """The losses of the micro-batches since the last call (the iteration just done)."""
        losses, self.step_losses = self.step_losses, []
        return losses

    @property
    def eval_model(self) -> nn.Module:
        return self.ema if self.ema is not None else self.model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        lq, gt = batch
        pred = self.model(lq)
        if self.config.loss.type == "l1":
            loss = nn.functional.l1_loss(pred.float(), gt)
        else:
            loss = charbonnier(pred.float(), gt, self.config.loss.eps)
        value = self.trainer.strategy.reduce(loss.detach(), reduce_op="mean")
        if not torch.isfinite(value):
            raise NonFiniteLossError(
                f"loss is {value.item()} at iteration {self.global_step + 1}; training stopped "
                "(the last good checkpoint is kept). Try a lower optim.lr or precision 32."
            )
        self.step_losses.append(float(value))
        self.step_lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        return loss

    def configure_optimizers(self) -> Any:
        o, s = self.config.optim, self.config.sched
        opt = torch.optim.Adam(
            self.model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay
        )
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=s.milestones, gamma=s.gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Re-target the saved learning-rate schedule at this run's ``sched`` (before Lightning
        restores the optimizer and scheduler from ``checkpoint``).

        MultiStepLR saves its milestones and gamma, and restoring them would silently keep the
        old schedule after a ``--reschedule``. The rate of the next step is set from the config:
        ``lr * gamma ** (milestones passed)``. An unchanged schedule is restored as saved."""
        s = self.config.sched
        for state in checkpoint.get("lr_schedulers", []):
            if state.get("milestones") == Counter(s.milestones) and state.get("gamma") == s.gamma:
                continue
            passed = sum(m <= state["last_epoch"] for m in s.milestones)
            lrs = [base * s.gamma**passed for base in state["base_lrs"]]
            state.update(milestones=Counter(s.milestones), gamma=s.gamma, _last_lr=lrs)
            for opt in checkpoint.get("optimizer_states", []):
                for group, lr in zip(opt["param_groups"], lrs, strict=True):
                    group["lr"] = lr

    @torch.no_grad()
    def update_ema(self) -> None:
        if self.ema is None:
            return
        d = float(self.config.ema_decay)
        for pe, pm in zip(self.ema.parameters(), self.model.parameters(), strict=True):
            pe.mul_(d).add_(pm.detach(), alpha=1 - d)
        for be, bm in zip(self.ema.buffers(), self.model.buffers(), strict=True):
            be.copy_(bm)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)  # once per (accumulated) iteration
        self.update_ema()
