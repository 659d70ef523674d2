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
    """Compare without any whitespace (written when the console wrapped long lines)."""
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


def test_model_arg_of_the_wrong_type_is_named(tiny_model, sr_data, tmp_path, train_cli):
    """Issue 15: ``--model-arg width=abc`` is an error line naming the option, not a TypeError
    from inside the network."""
    train, val = sr_data
    args = _args(train_cli(train, val, tmp_path / "a"), "iterations=4")
    r = runner.invoke(app, [*args, "--model-arg", "width=abc"])
    assert r.exit_code == 2, r.output
    assert "--model tiny-sr: option width must be an integer, not 'abc'" in r.output, r.output
    assert "Traceback" not in r.output and not (tmp_path / "a").exists()


class _Payload:
    """Unpickling this would create ``path``: a checkpoint must never run it."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("damage", ["junk", "truncated", "pickle-payload", "not-a-dict"])
def test_resume_with_a_damaged_checkpoint_is_an_error_line(
    tiny_model, sr_data, tmp_path, train_cli, damage
):
    """Issue 15: ``--resume`` over a corrupt or malicious ``last.ckpt`` names the file; the
    payload does not run (weights_only) and there is no traceback."""
    import pickle

    train, val = sr_data
    args = _args(
        train_cli(train, val, tmp_path / "run"),
        "iterations=4",
        "checkpoint_every=2",
        "data.workers=0",
    )
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    marker = tmp_path / "payload-ran"
    if damage == "junk":
        ckpt.write_bytes(b"\x00not a checkpoint")
    elif damage == "truncated":
        _truncate(ckpt)
    elif damage == "pickle-payload":
        ckpt.write_bytes(pickle.dumps({"global_step": _Payload(marker)}, protocol=2))
    else:
        torch.save([1, 2, 3], ckpt)
    r = runner.invoke(app, [*args, "--resume"])
    assert r.exit_code == 2, f"{r.output}\n{r.exception!r}"
    assert r.output.startswith(f"error: --resume: cannot read the checkpoint {ckpt} ("), r.output
    assert "start again without --resume" in r.output and "Traceback" not in r.output
    assert not marker.exists()


@pytest.mark.parametrize("value", ["inf", "1e400", "nan", "-inf"])
def test_a_non_finite_learning_rate_is_refused(value, tiny_model, sr_data, tmp_path, train_cli):
    """Issue 15: ``--set optim.lr=inf`` was accepted; it is an error naming the key."""
    r = runner.invoke(
        app, _args(train_cli(*sr_data, tmp_path / "a"), "iterations=4", f"optim.lr={value}")
    )
    assert r.exit_code == 2, r.output
    assert "optim.lr" in r.output and "finite" in r.output, r.output
    assert not (tmp_path / "a").exists()


def test_a_non_finite_validation_output_stops_training(tiny_model, sr_data, tmp_path, train_cli):
    """A huge (finite) learning rate makes the weights overflow after one step: validation
    meets an Inf/NaN output and stops the run with the documented line, like a NaN loss
    (quantising that output used to log a meaningless PSNR of about 7 dB)."""
    sets = ["iterations=4", "val.every=1", "data.workers=0", "optim.lr=1e30"]
    r = runner.invoke(app, _args(train_cli(*sr_data, tmp_path / "a"), *sets))
    assert r.exit_code == 2, r.output
    msg = " ".join(r.output.split())
    assert "error: the validation output is NaN or Inf at iteration 1; training stopped" in msg
    assert "val PSNR" not in msg and "Traceback" not in msg
