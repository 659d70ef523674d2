"""A tiny SR/restoration architecture registered only for the trainer's tests, and tiny data."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn


@dataclass
class TinyConfig:
    upscale: int = 2
    in_chans: int = 3
    width: int = 8
    nan_after: int = 0  # > 0: forward returns NaN from this many training forwards on (tests)


class TinyNet(nn.Module):
    arch = "tinytest"
    config_class = TinyConfig

    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.config = config
        c, s = config.in_chans, config.upscale
        self.body = nn.Sequential(
            nn.Conv2d(c, config.width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(config.width, c * s * s, 3, padding=1),
        )
        self.shuffle = nn.PixelShuffle(s)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.config.upscale
        base = nn.functional.interpolate(x, scale_factor=s, mode="nearest") if s > 1 else x
        out = base + self.shuffle(self.body(x))
        if self.training:
            self.calls += 1
            if self.config.nan_after and self.calls > self.config.nan_after:
                out = out * float("nan")
        return out


@pytest.fixture
def tiny_model(monkeypatch):
    """Registers architecture ``tinytest`` and model presets ``tiny-sr`` / ``tiny-restore``."""
    from resyn.models import registry

    mod = types.ModuleType("resyn_tiny_test_arch")
    mod.TinyNet = TinyNet
    monkeypatch.setitem(sys.modules, "resyn_tiny_test_arch", mod)
    monkeypatch.setitem(registry.ARCHITECTURES, "tinytest", "resyn_tiny_test_arch:TinyNet")
    registry._load_builtin_presets()
    for preset in (
        registry.Preset("tiny-sr", "tinytest", {"width": 8}, (2, 3, 4), "test SR"),
        registry.Preset("tiny-restore", "tinytest", {"width": 8}, (1,), "test", default_scale=1),
    ):
        monkeypatch.setitem(registry.PRESETS, preset.name, preset)
    return "tiny-sr"


def _write(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth random color image (so that SR is learnable and bicubic is not perfect)."""
    small = rng.integers(0, 256, size=(h // 4 + 1, w // 4 + 1, 3)).astype(np.float32)
    import cv2

    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(big, 0, 255).astype(np.uint8)


@pytest.fixture
def sr_data(tmp_path) -> tuple[Path, Path]:
    """train/HR (4 images 32x32, no LR: made on the fly) and val/HR + val/LR_bicubic/X2 (2)."""
    from resyn.degrade import imresize

    rng = np.random.default_rng(7)
    train, val = tmp_path / "train", tmp_path / "val"
    for i in range(4):
        _write(train / "HR" / f"t{i}.png", smooth_image(rng, 32, 32))
    for i in range(2):
        hr = smooth_image(rng, 24, 28)
        _write(val / "HR" / f"v{i}.png", hr)
        _write(val / "LR_bicubic" / "X2" / f"v{i}x2.png", imresize(hr, 0.5))
    return train, val


@pytest.fixture
def tiny_set() -> list[str]:
    """--set overrides for an 8-iteration run: batch 4, patch 16, validation every 2."""
    return list(TINY_SET)


TINY_SET = [
    "iterations=8",
    "batch=4",
    "patch=16",
    "sched.milestones=[4, 6]",
    "val.every=2",
    "checkpoint_every=4",
    "log_every=1",
    "data.workers=0",
]


def _cli_args(train: Path, val: Path, out: Path) -> list[str]:
    return [
        "train",
        "light-sr-x2-50k",
        "--model",
        "tiny-sr",
        "--train",
        str(train),
        "--val",
        str(val),
        "--out",
        str(out),
        "--accelerator",
        "cpu",
        "--devices",
        "1",
    ]


@pytest.fixture
def train_cli():
    """``train_cli(train, val, out)``: the ``resyn train`` arguments the CLI tests share
    (tiny-sr, light-sr-x2-50k, one CPU process)."""
    return _cli_args


def _train_opts(train_dir, val_dir, out, overrides, **kw):
    from resyn.train.run import TrainOptions

    base = dict(
        preset="light-sr-x2-50k",
        model="tiny-sr",
        train=train_dir,
        val=val_dir,
        out=out,
        overrides=list(overrides),
        accelerator="cpu",
        devices=1,
        progress=False,
        seed=3,
    )
    base.update(kw)
    return TrainOptions(**base)


@pytest.fixture
def train_opts():
    """``train_opts(train, val, out, overrides, **kw)``: the TrainOptions the trainer tests
    share (tiny-sr, light-sr-x2-50k, one CPU process, seed 3); ``kw`` overrides any field."""
    return _train_opts


class Killed(Exception):
    """Raised by ``killed_at`` to stop a training run the way a kill would."""


@pytest.fixture
def killed_at(monkeypatch):
    """``killed_at(step, opts)``: run ``opts`` and stop it with ``Killed`` right after
    iteration ``step``; what it wrote so far (checkpoints, metrics) stays, as after a kill."""
    from resyn.train.loop import StandardLoop
    from resyn.train.run import train

    def run(step: int, opts) -> None:
        original = StandardLoop.on_train_batch_end

        def killing(self, trainer, *args):
            original(self, trainer, *args)
            if trainer.global_step == step:
                raise Killed

        monkeypatch.setattr(StandardLoop, "on_train_batch_end", killing)
        with pytest.raises(Killed):
            train(opts)
        monkeypatch.setattr(StandardLoop, "on_train_batch_end", original)

    return run
