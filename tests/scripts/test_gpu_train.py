"""scripts/gpu_train.sh end to end on the CPU: every task, a tiny RWKV-IR, seconds per task.

The script's GPU-only parts (carried wheels, nvidia-smi, the CUDA Bi-WKV check) are skipped by
``--accelerator cpu``; everything else (the pre-flight's module check, the shipped-weights
starts with sr-x3 from sr-x2 and the blind models from denoise-25 by --init-partial, the
concurrent runs stopped by --max-minutes, summary.json) is what runs on the device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from resyn.models import build_model, read_metadata, save_model

ROOT = Path(__file__).resolve().parents[2]
TINY = {"depths": (1,), "embed_dim": 8, "num_feat": 8}
TINY_ARGS = ["depths=[1]", "embed_dim=8", "num_feat=8"]


def _images(folder: Path, n: int, h: int, w: int, seed: int) -> None:
    import cv2

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        small = rng.integers(0, 256, (h // 4, w // 4, 3)).astype(np.float32)
        img = np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255)
        cv2.imwrite(str(folder / f"i{i}.png"), img.astype(np.uint8))


@pytest.mark.slow  # about 2 min on 2 loaded cores: five short training runs
def test_gpu_train_script_on_cpu(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    for task, scale in (("sr-x2", 2), ("sr-x4", 4)):
        model = build_model("rwkvir-light", scale=scale, global_skip="bicubic", **TINY)
        save_model(model, weights / f"{task}.safetensors", info={"task": task})
    save_model(
        build_model("rwkvir-restore", **TINY),
        weights / "denoise-25.safetensors",
        info={"task": "denoise-25"},
    )
    _images(tmp_path / "train" / "HR", 3, 48, 48, 1)
    _images(tmp_path / "val" / "HR", 1, 24, 36, 2)
    out = tmp_path / "out"
    # `python3` of the script is this interpreter (the device's own python3 there)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "python3"  # a wrapper, not a link: a venv is found from the path
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    env = dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        OUT=str(out),
        RESYN_GPU_DATA=str(tmp_path / "train"),
        OMP_NUM_THREADS="1",
    )
    cmd = [
        "bash",
        str(ROOT / "scripts" / "gpu_train.sh"),
        "0.04",
        "--accelerator",
        "cpu",
        "--val",
        str(tmp_path / "val"),
        "--weights-dir",
        str(weights),
        "--every",
        "2",
        "--workers",
        "0",
        "--jobs",
        "2",
        "--set",
        "batch=2",
        "--set",
        "patch=24",
        "--set",
        "data.verify_mb=0",
    ]
    cmd += [a for arg in TINY_ARGS for a in ("--model-arg", arg)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "RESYN_BI_WKV=auto" in (out / "preflight.log").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary) == ["denoise", "jpeg", "sr-x2", "sr-x3", "sr-x4"]
    starts = {
        "sr-x2": "sr-x2",
        "sr-x3": "sr-x2",
        "sr-x4": "sr-x4",
        "denoise": "denoise-25",
        "jpeg": "denoise-25",
    }
    for task, facts in summary.items():
        run = out / "runs" / task
        assert facts["exit_code"] == 0 and facts["stopped_by"] == "max_minutes", facts
        assert facts["iterations"] >= 1 and facts["last_val_psnr"] is not None
        assert Path(facts["init"]).name == f"{starts[task]}.safetensors"
        assert facts["init_partial"] == (task in ("sr-x3", "denoise", "jpeg"))
        meta = read_metadata(run / "model.safetensors")
        assert meta["info"]["task"] == task and meta["info"]["iterations"] == facts["iterations"]
        assert (run / "checkpoints" / "last.ckpt").is_file()
        assert not (run / "checkpoints" / "best.ckpt").exists()
        assert (out / "logs" / f"{task}.log").read_text().startswith("$ ")
        config = json.loads((run / "run.json").read_text())["config"]
        assert config["ema_decay"] == 0.999 and config["val"]["every"] == 2
    skipped = json.loads((out / "runs" / "sr-x3" / "run.json").read_text())["model"]["init"]
    assert [s.split(":")[0] for s in skipped["skipped"]] == ["head.0.weight", "head.0.bias"]
    assert (
        json.loads((out / "runs" / "jpeg" / "run.json").read_text())["model"]["init"]["skipped"]
        == []
    )  # the denoiser and the JPEG model share every tensor
