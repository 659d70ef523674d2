"""``resyn train`` on a CUDA device: the default precision there (bf16-mixed) runs and exports."""

from __future__ import annotations

import json
import math

import pytest

from resyn.models import read_metadata
from resyn.train.loop import read_metrics
from resyn.train.run import train


@pytest.mark.gpu
def test_gpu_run_in_default_precision_completes(
    tiny_model, sr_data, tiny_set, tmp_path, train_opts
):
    train_dir, val_dir = sr_data
    out = tmp_path / "gpu"
    opts = train_opts(train_dir, val_dir, out, tiny_set, accelerator="gpu")
    train(opts)
    rows = read_metrics(out / "metrics.csv")
    assert [r["step"] for r in rows] == list(range(1, 9))
    assert all(math.isfinite(r["loss"]) for r in rows)
    assert all(math.isfinite(r["val_psnr"]) for r in rows if r["val_psnr"] is not None)
    hardware = json.loads((out / "run.json").read_text())["hardware"]
    assert hardware["precision"] == "bf16-mixed" and hardware["accelerator"] == "gpu"
    assert read_metadata(out / "model.safetensors")["info"]["iterations"] == 8
