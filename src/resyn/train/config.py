"""The training configuration: a typed, validated description of one standard preset.

Every field can be set from YAML (the shipped presets) and from the command line with dotted
keys (``--set optim.lr=1e-4``). Unknown keys, wrong types and impossible values are errors that
name the key (pydantic v2, ``extra="forbid"``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    # allow_inf_nan=False: `--set optim.lr=inf` (or 1e400, which YAML reads as inf) is an error
    # naming the key, not a run whose first step turns every weight into NaN.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class OptimConfig(_Strict):
    """Adam, as every anchor (BasicSR / SwinIR / MambaIR) trains."""

    type: Literal["adam"] = "adam"
    lr: float = Field(2e-4, gt=0, description="learning rate")
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = Field(0.0, ge=0)

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in v):
            raise ValueError(f"each beta must be in [0, 1), got {list(v)}")
        return v


class SchedConfig(_Strict):
    """MultiStepLR: the learning rate is multiplied by ``gamma`` at each milestone (iteration)."""

    type: Literal["multistep"] = "multistep"
    milestones: list[int] = Field(default_factory=list)
    gamma: float = Field(0.5, gt=0, le=1)

    @field_validator("milestones")
    @classmethod
    def _sorted_positive(cls, v: list[int]) -> list[int]:
        if any(m <= 0 for m in v):
            raise ValueError(f"milestones must be positive iterations, got {v}")
        if v != sorted(v):
            raise ValueError(f"milestones must be increasing, got {v}")
        return v


class LossConfig(_Strict):
    """Pixel loss: ``l1`` (SR) or ``charbonnier`` (sqrt(d^2 + eps^2), denoising / JPEG)."""

    type: Literal["l1", "charbonnier"] = "l1"
    eps: float = Field(1e-3, gt=0, description="Charbonnier epsilon (ignored by l1)")


class AugmentConfig(_Strict):
    hflip: bool = True
    rot90: bool = True


class DataConfig(_Strict):
    enlarge_ratio: int = Field(1, ge=1, description="repeat the training set this many times")
    workers: int = Field(2, ge=0, description="DataLoader worker processes per device")
    cache_mb: int = Field(
        1024, ge=0, description="decoded images (and on-the-fly LR) kept in memory per process"
    )
    verify_mb: int = Field(
        512,
        ge=0,
        description="decode every training image once before training when the training files "
        "total at most this many MB (0: never; image headers are always checked)",
    )


class ValConfig(_Strict):
    every: int = Field(5000, ge=1, description="validate every this many iterations")
    y_channel: bool = True
    crop_border: int | None = Field(None, ge=0, description="None: the task's scale")
    test_sets: list[str] = Field(default_factory=list)
    task: str | None = Field(
        None,
        description="the fixed-level task validation runs (denoise-25 for a blind denoise "
        "model); null: the training task. Required for blind tasks",
    )


class TrainConfig(_Strict):
    """One training recipe of the unified standard (see docs/training.md)."""

    name: str
    description: str = ""
    task: str = Field(description="a resyn.degrade task: sr-x4, denoise-25, jpeg-gray-q10...")
    iterations: int = Field(ge=1)
    batch: int = Field(ge=1, description="TOTAL batch over all devices and accumulation")
    patch: int = Field(ge=1, description="ground-truth (HR) patch size")
    optim: OptimConfig = Field(default_factory=OptimConfig)
    sched: SchedConfig = Field(default_factory=SchedConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    val: ValConfig = Field(default_factory=ValConfig)
    ema_decay: float | None = Field(None, ge=0, lt=1, description="EMA of weights; null = off")
    checkpoint_every: int = Field(5000, ge=1)
    log_every: int = Field(100, ge=1)
    seed: int = Field(0, ge=0)
    budget: float = Field(1.0, gt=0, le=1, description="fraction of the standard's schedule")

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        from resyn.degrade import parse_task

        parse_task(v)  # ValueError listing the valid forms
        return v

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        from resyn.degrade import parse_task

        task = parse_task(self.task)
        scale = task.scale
        if task.kind != "sr":
            example = f"{task.kind}-{'gray-' if task.gray else ''}"
            example += "25" if task.kind == "denoise" else "q10"
        if self.val.task is not None:
            try:
                val = parse_task(self.val.task)
            except ValueError as exc:
                raise ValueError(f"val.task: {exc}") from None
            if val.blind or not task.serves(val) or val.gray != task.gray:
                raise ValueError(
                    f"val.task: {self.val.task} is not a fixed level that a model for {self.task} "
                    "restores"
                    + (
                        f" (a {task.kind} task of the same color, e.g. {example})"
                        if task.blind
                        else f" (null or {self.task})"
                    )
                )
        elif task.blind:
            raise ValueError(
                f"val.task: a blind task ({self.task}) validates at a fixed level; set one, "
                f"e.g. val.task={example}"
            )
        if self.patch % scale:
            raise ValueError(f"patch: {self.patch} is not divisible by the task's scale {scale}")
        late = [m for m in self.sched.milestones if m >= self.iterations]
        if late:
            raise ValueError(f"sched.milestones: {late} not below iterations={self.iterations}")
        return self

    @property
    def scale(self) -> int:
        from resyn.degrade import parse_task

        return parse_task(self.task).scale

    @property
    def val_task(self) -> str:
        """The task validation runs: ``val.task``, else the training task."""
        return self.val.task or self.task

    @property
    def crop_border(self) -> int:
        return self.scale if self.val.crop_border is None else self.val.crop_border
