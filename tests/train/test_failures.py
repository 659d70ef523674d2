"""Failures of resyn train are clear `error:` lines: bad images, occupied folders, precision."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from resyn.cli.main import app
from resyn.degrade import parse_task
from resyn.train.data import DataError, TrainSet, decode_all, find_pairs
from resyn.train.loop import read_metrics

runner = CliRunner()


def _args(base, *sets):
    args = [*base, "--no-progress"]
    for item in ["patch=16", "log_every=1", "val.every=2", "sched.milestones=[2]", *sets]:
        args += ["--set", item]
    return args


def _flat(text):
    """The console wraps long lines (even inside a path): compare without any whitespace."""
    return "".join(str(text).split())


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header survives, the pixels do not


def test_truncated_training_image(tiny_model, sr_data, tmp_path, train_cli):
    train, val = sr_data
    task = parse_task("sr-x2")
    pairs = find_pairs(train, task)
    # Batch 1: iteration k+1 trains on sample k; make the image of iteration 3 truncated.
    ds = TrainSet(pairs, task, 16, seed=0)
    bad = pairs[ds.image_index(2)].hr
    assert pairs[ds.image_index(0)].hr != bad and pairs[ds.image_index(1)].hr != bad
    _truncate(bad)
    assert decode_all(pairs, what="--train", max_bytes=1) is False  # too large: skipped

    # By default the (small) training set is decoded once before training: caught up front.
    r = runner.invoke(app, _args(train_cli(train, val, tmp_path / "a"), "batch=1", "iterations=4"))
    assert r.exit_code == 2, r.output
    assert _flat(f"--train: cannot read {bad}") in _flat(r.output), r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "a").exists()

    # Without that check the image is met during training (in a worker process here): an
    # error line naming it, and the checkpoint of the last good iteration is kept.
    out = tmp_path / "b"
    sets = ["batch=1", "iterations=4", "checkpoint_every=1", "data.verify_mb=0", "data.workers=1"]
    r = runner.invoke(app, _args(train_cli(train, val, out), *sets))
    assert r.exit_code == 2, r.output
    assert isinstance(r.exception, SystemExit)
    msg = _flat(r.output)
    msg = msg[msg.index("error:") :]  # the last line(s): what follows the training log
    assert msg.startswith("error:--train:cannotread") and _flat(bad) in msg, r.output
    assert "Traceback" not in msg and "DataLoader" not in msg
    assert _flat("training stopped at iteration 2") in msg and "last.ckptiskept" in msg
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2
    assert not (out / "model.safetensors").exists()


def test_decode_all_names_the_file(sr_data):
    train, _ = sr_data
    task = parse_task("sr-x2")
    pairs = find_pairs(train, task)
    assert decode_all(pairs, what="--train") is True
    _truncate(pairs[1].hr)
    try:
        decode_all(pairs, what="--train", max_bytes=10 << 20)
    except DataError as exc:
        assert str(exc).startswith(f"--train: cannot read {pairs[1].hr}")
    else:
        raise AssertionError("a truncated image passed decode_all")


def test_precision_is_validated_before_anything_runs(tiny_model, sr_data, tmp_path, train_cli):
    from resyn.train.run import RunError, TrainOptions, prepare, resolve_precision

    assert resolve_precision(None, "cpu") == "32-true"
    assert resolve_precision(None, "gpu") == "bf16-mixed"
    assert resolve_precision("fp32", "cpu") == "32-true"
    assert resolve_precision("BF16", "gpu") == "bf16-mixed"
    assert resolve_precision("fp16", "gpu") == "16-mixed"
    with pytest.raises(RunError, match=r"needs a GPU"):
        resolve_precision("fp16", "cpu")  # Lightning would silently train in bf16 instead
    with pytest.raises(RunError, match=r"'bf16-true' .* float32"):
        resolve_precision("bf16-true", "gpu")

    train, val = sr_data

    def opts(precision, train_dir=train):
        return TrainOptions(
            preset="light-sr-x2-50k",
            model="tiny-sr",
            train=train_dir,
            val=val,
            out=tmp_path / "p",
            overrides=["patch=16", "batch=2"],
            accelerator="cpu",
            devices=1,
            precision=precision,
        )

    assert prepare(opts("fp32")).run["hardware"]["precision"] == "32-true"
    # Checked before the data (and so before the baseline is computed).
    with pytest.raises(RunError, match=r"--precision 'half' is not one of 32-true, bf16-mixed"):
        prepare(opts("half", train_dir=tmp_path / "missing"))
    r = runner.invoke(app, [*_args(train_cli(train, val, tmp_path / "c")), "--precision", "fp64"])
    assert r.exit_code == 2 and "'fp64' is not one of" in r.output, r.output
    assert not (tmp_path / "c").exists()


def test_bf16_mixed_trains_on_cpu(tiny_model, sr_data, tmp_path, train_cli):
    train, val = sr_data
    out = tmp_path / "bf16"
    sets = ["batch=2", "iterations=2", "sched.milestones=[1]", "data.workers=0"]
    r = runner.invoke(app, [*_args(train_cli(train, val, out), *sets), "--precision", "bf16"])
    assert r.exit_code == 0, r.output
    run = json.loads((out / "run.json").read_text())
    assert run["hardware"]["precision"] == "bf16-mixed"
    rows = read_metrics(out / "metrics.csv")
    assert [row["step"] for row in rows] == [1, 2] and rows[-1]["val_psnr"] > 10


def test_reschedule_without_resume_is_a_cli_error(tiny_model, sr_data, tmp_path, train_cli):
    train, val = sr_data
    r = runner.invoke(app, [*_args(train_cli(train, val, tmp_path / "r")), "--reschedule"])
    assert r.exit_code == 2 and "itneeds--resume" in _flat(r.output), r.output
    assert not (tmp_path / "r").exists()
