"""Failures of resyn train are clear `error:` lines: bad images, occupied folders, precision."""

from __future__ import annotations

import torch
from typer.testing import CliRunner

from resyn.cli.main import app
from resyn.degrade import parse_task
from resyn.train.data import DataError, TrainSet, decode_all, find_pairs

runner = CliRunner()


def _args(train, val, out, *sets):
    args = [
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
        "--no-progress",
    ]
    for item in ["patch=16", "log_every=1", "val.every=2", "sched.milestones=[2]", *sets]:
        args += ["--set", item]
    return args


def _flat(text):
    """The console wraps long lines (even inside a path): compare without any whitespace."""
    return "".join(str(text).split())


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header survives, the pixels do not


def test_truncated_training_image(tiny_model, sr_data, tmp_path):
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
    r = runner.invoke(app, _args(train, val, tmp_path / "a", "batch=1", "iterations=4"))
    assert r.exit_code == 2, r.output
    assert _flat(f"--train: cannot read {bad}") in _flat(r.output), r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "a").exists()

    # Without that check the image is met during training (in a worker process here): an
    # error line naming it, and the checkpoint of the last good iteration is kept.
    out = tmp_path / "b"
    sets = ["batch=1", "iterations=4", "checkpoint_every=1", "data.verify_mb=0", "data.workers=1"]
    r = runner.invoke(app, _args(train, val, out, *sets))
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
