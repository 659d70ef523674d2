"""``resyn train`` on a CUDA device: the default precision there (bf16-mixed) runs and exports."""

from __future__ import annotations

import json
import math

import pytest

from resyn.models import read_metadata
from resyn.train.loop import read_metrics
from resyn.train.run import TrainOptions, train


@pytest.mark.gpu
def test_gpu_run_in_default_precision_completes(tiny_model, sr_data, tiny_set, tmp_path):
    train_dir, val_dir = sr_data
    out = tmp_path / "gpu"
    opts = TrainOptions(
        preset="light-sr-x2-50k",
        model="tiny-sr",
        train=train_dir,
        val=val_dir,
        out=out,
        overrides=list(tiny_set),
        accelerator="gpu",
        devices=1,
        progress=False,
        seed=3,
    )
    train(opts)
    rows = read_metrics(out / "metrics.csv")
    assert [r["step"] for r in rows] == list(range(1, 9))
    assert all(math.isfinite(r["loss"]) for r in rows)
    assert all(math.isfinite(r["val_psnr"]) for r in rows if r["val_psnr"] is not None)
    hardware = json.loads((out / "run.json").read_text())["hardware"]
    assert hardware["precision"] == "bf16-mixed" and hardware["accelerator"] == "gpu"
    assert read_metadata(out / "model.safetensors")["info"]["iterations"] == 8
