"""The total batch is the contract: 2 DDP processes log what 1 process with accumulation logs.

Lightning starts the second process itself (``ddp`` on CPU, gloo) by running the same script
again, as it does for ``resyn train --devices 2``; so the 2-process run is a script of its own
that registers the tiny test model (tests/train/conftest.py) and calls ``resyn.train.run.train``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from resyn.train.loop import read_metrics
from resyn.train.run import TrainOptions, launched_rank, train

DRIVER = textwrap.dedent(
    """
    import importlib.util, json, sys

    spec = importlib.util.spec_from_file_location("resyn_tiny_test_arch", sys.argv[1])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    from resyn.models import registry

    registry.ARCHITECTURES["tinytest"] = "resyn_tiny_test_arch:TinyNet"
    registry._load_builtin_presets()
    registry.PRESETS["tiny-sr"] = registry.Preset(
        "tiny-sr", "tinytest", {"width": 8}, (2, 3, 4), "test SR"
    )
    from resyn.train.run import TrainOptions, train

    train(TrainOptions(**json.loads(sys.argv[2])))
    """
)

LAUNCH_VARS = ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "SLURM_NTASKS", "SLURM_PROCID")


def _opts(train_dir, val_dir, out, tiny_set, **kw) -> dict:
    return dict(
        preset="light-sr-x2-50k",
        model="tiny-sr",
        train=str(train_dir),
        val=str(val_dir),
        out=str(out),
        overrides=list(tiny_set),
        accelerator="cpu",
        progress=False,
        seed=3,
        **kw,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["lightning", "torchrun"])
def test_two_ddp_processes_equal_one_process_with_accumulation(
    tiny_model, sr_data, tiny_set, tmp_path, launcher
):
    # "lightning": Lightning starts the second process (resyn train --devices 2);
    # "torchrun": torchrun starts both and Lightning reads the launch from the environment.
    train_dir, val_dir = sr_data
    one, two = tmp_path / "one", tmp_path / "two"
    train(TrainOptions(**_opts(train_dir, val_dir, one, tiny_set, devices=1, max_device_batch=2)))

    driver = tmp_path / "ddp_driver.py"
    driver.write_text(DRIVER)
    conftest = Path(__file__).with_name("conftest.py")
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env["OMP_NUM_THREADS"] = "1"
    launch = [sys.executable]
    if launcher == "torchrun":
        launch += ["-m", "torch.distributed.run", "--nproc_per_node", "2"]
        launch += ["--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    proc = subprocess.run(
        [
            *launch,
            str(driver),
            str(conftest),
            json.dumps(_opts(train_dir, val_dir, two, tiny_set, devices=2)),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    runs = [json.loads((d / "run.json").read_text()) for d in (one, two)]
    assert runs[0]["batch"] == {"total": 4, "per_device": 2, "accumulate": 2, "world_size": 1}
    assert runs[1]["batch"] == {"total": 4, "per_device": 2, "accumulate": 1, "world_size": 2}
    assert runs[1]["hardware"]["world_size"] == 2
    a, b = (read_metrics(d / "metrics.csv") for d in (one, two))
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 9))
    for ra, rb in zip(a, b):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=0, abs=1e-7), (ra, rb)
        assert rb["lr"] == ra["lr"]
        if ra["val_psnr"] is not None:
            assert rb["val_psnr"] == pytest.approx(ra["val_psnr"], rel=0, abs=1e-6), (ra, rb)
            assert rb["val_ssim"] == pytest.approx(ra["val_ssim"], rel=0, abs=1e-6), (ra, rb)
    assert (two / "model.safetensors").is_file()


def test_launched_rank(monkeypatch):
    for var in LAUNCH_VARS:
        monkeypatch.delenv(var, raising=False)
    assert launched_rank() == 0  # not launched
    monkeypatch.setenv("RANK", "3")  # torchrun
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert launched_rank() == 3
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("LOCAL_RANK")
    monkeypatch.setenv("SLURM_NTASKS", "4")  # srun with 4 tasks
    monkeypatch.setenv("SLURM_PROCID", "2")
    assert launched_rank() == 2
    monkeypatch.setenv("SLURM_NTASKS", "1")  # a one-task allocation: not a launch
    monkeypatch.setenv("SLURM_PROCID", "0")
    assert launched_rank() == 0
    monkeypatch.setenv("LOCAL_RANK", "1")  # a process Lightning started itself
    assert launched_rank() > 0
