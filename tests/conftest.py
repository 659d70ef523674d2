"""Shared fixtures. Tests are correctness checks on small inputs; timings live in benchmarks/.

Also a tiny conv net with a known receptive field (radius 2 input pixels), registered as a
temporary architecture ``tinyconv`` so it can be saved and loaded (restore and eval tests).
"""

from __future__ import annotations

import os
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings
from torch import nn
from torch.nn import functional as F

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"

# Property tests draw the same examples on every run (derived from each test's source), so a
# green CI run is reproducible and a red one is a real regression, not a new draw. Widen the
# search locally with HYPOTHESIS_PROFILE=explore (new random draws on every run).
settings.register_profile("resyn", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "resyn"))


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002  (code under test may use the legacy global RNG)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@dataclass
class TinyConvConfig:
    upscale: int = 2
    in_chans: int = 3
    embed_dim: int = 8


class TinyConv(nn.Module):
    """Two 3x3 convs + pixel shuffle: receptive field radius 2 input pixels."""

    arch = "tinyconv"
    config_class = TinyConvConfig

    def __init__(self, config: TinyConvConfig) -> None:
        super().__init__()
        self.config = config
        s, c = config.upscale, config.in_chans
        self.body = nn.Conv2d(c, config.embed_dim, 3, padding=1)
        self.head = nn.Conv2d(config.embed_dim, c * s * s, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(F.gelu(self.body(x)))
        base = F.interpolate(x, scale_factor=self.config.upscale, mode="nearest")
        return base + 0.1 * F.pixel_shuffle(y, self.config.upscale)


@pytest.fixture
def tiny_arch(monkeypatch: pytest.MonkeyPatch) -> type[TinyConv]:
    """Register TinyConv as architecture ``tinyconv`` for the duration of a test."""
    from resyn.models.registry import ARCHITECTURES

    module = types.ModuleType("_resyn_test_models")
    module.TinyConv = TinyConv  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(ARCHITECTURES, "tinyconv", f"{module.__name__}:TinyConv")
    return TinyConv


def tiny_conv(scale: int = 2, in_chans: int = 3) -> TinyConv:
    torch.manual_seed(0)
    return TinyConv(TinyConvConfig(upscale=scale, in_chans=in_chans)).eval()


@pytest.fixture
def make_tiny_conv():
    return tiny_conv


@pytest.fixture
def weights(tmp_path, tiny_arch, make_tiny_conv):
    """A tiny x2 model saved as safetensors with task sr-x2 (the CLI and demo tests' weights)."""
    from resyn.models import save_model

    path = tmp_path / "w" / "x2.safetensors"
    save_model(make_tiny_conv(2), path, info={"task": "sr-x2"})
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` are skipped, with the reason, where torch sees no CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (marker gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
