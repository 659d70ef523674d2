"""Kill-and-resume equals an uninterrupted run; NaN stops; resume mismatches are refused."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from resyn.train.loop import StandardLoop, read_metrics
from resyn.train.module import NonFiniteLossError
from resyn.train.run import RunError, train


class Killed(Exception):
    pass


def _logged(path):
    return [
        (r["step"], r["loss"], r["lr"], r["val_psnr"], r["val_ssim"]) for r in read_metrics(path)
    ]


def test_kill_and_resume_is_exact(
    killed_at, tiny_model, sr_data, tiny_set, tmp_path, monkeypatch, train_opts
):
    train_dir, val_dir = sr_data
    full = tmp_path / "full"
    ema = [*tiny_set, "ema_decay=0.5"]  # validation on EMA weights: EMA must resume too
    train(train_opts(train_dir, val_dir, full, overrides=ema))
    rows = _logged(full / "metrics.csv")
    assert [r[0] for r in rows] == list(range(1, 9))
    assert all(r[1] is not None for r in rows)
    assert [r[0] for r in rows if r[3] is not None] == [2, 4, 6, 8]
    assert rows[-1][2] == pytest.approx(2e-4 * 0.25)  # milestones 4 and 6 passed
    assert (full / "model.safetensors").is_file()

    # A run killed at iteration 6: the checkpoint is from 4, the log already has 5 and 6.
    part = tmp_path / "part"
    killed_at(6, train_opts(train_dir, val_dir, part, overrides=ema))
    ckpt = torch.load(part / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 4
    assert [r[0] for r in _logged(part / "metrics.csv")][-1] == 6

    # Resuming may change the worker count; a worker process yields the very same samples.
    train(train_opts(train_dir, val_dir, part, overrides=[*ema, "data.workers=1"], resume=True))
    assert _logged(part / "metrics.csv") == rows
    # best.safetensors: the EMA weights at the best validation PSNR, the same after the resume.
    from safetensors.torch import load_file

    from resyn.models import read_metadata

    best_step, best_psnr = max(((r[0], r[3]) for r in rows if r[3] is not None), key=lambda x: x[1])
    for run in (full, part):
        info = read_metadata(run / "best.safetensors")["info"]
        assert (info["step"], info["val_psnr"], info["ema"]) == (best_step, best_psnr, True)
    best = torch.load(full / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert best["global_step"] == best_step
    exported = load_file(full / "best.safetensors")
    assert exported.keys() == {k[len("ema.") :] for k in best["state_dict"] if k.startswith("ema.")}
    for name, value in exported.items():
        assert torch.equal(value, best["state_dict"][f"ema.{name}"]), name
        assert torch.equal(value, load_file(part / "best.safetensors")[name]), name


@pytest.mark.parametrize("device_batch", [None, 2])
def test_mid_epoch_resume_is_exact_and_quiet(
    killed_at, tiny_model, sr_data, tiny_set, tmp_path, monkeypatch, device_batch, train_opts
):
    # Killed at 3 with a checkpoint at 2: Lightning sees a resume 2 steps into a 3-step
    # "epoch" and warns that it "can cause unreliable results". The step-indexed sampler makes
    # it exact, so the warning is silenced (resyn.train.run.LIGHTNING_NOISE). With a device
    # batch of 2, each step accumulates 2 micro-batches.
    train_dir, val_dir = sr_data
    kw = {"max_device_batch": device_batch}
    short = [*tiny_set, "iterations=5", "checkpoint_every=2", "sched.milestones=[]"]
    full = tmp_path / "full"
    train(train_opts(train_dir, val_dir, full, overrides=short, **kw))
    part = tmp_path / "part"
    killed_at(3, train_opts(train_dir, val_dir, part, overrides=short, **kw))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(train_opts(train_dir, val_dir, part, overrides=short, resume=True, **kw))
    assert not [w for w in caught if "resuming from a checkpoint" in str(w.message)]
    assert _logged(part / "metrics.csv") == _logged(full / "metrics.csv")


def test_resume_compares_as_json():
    from resyn.train.run import _comparable, _diff

    run = {
        "preset": "p",
        "model": {"name": "m", "args": {"depths": (1, 2)}},
        "config": {"data": {"workers": 4}, "batch": 8},
    }
    stored = {
        "preset": "p",
        "model": {"name": "m", "args": {"depths": [1, 2]}},
        "config": {"data": {"workers": 0}, "batch": 8},
    }
    assert _diff(_comparable(stored), _comparable(run)) == []
    stored["config"]["batch"] = 16
    assert _diff(_comparable(stored), _comparable(run)) == ["config.batch (16 in the run, 8 now)"]


def test_resume_mismatch_and_occupied_folder(tiny_model, sr_data, tiny_set, tmp_path, train_opts):
    train_dir, val_dir = sr_data
    out = tmp_path / "run"
    train(
        train_opts(
            train_dir, val_dir, out, overrides=[*tiny_set, "iterations=4", "sched.milestones=[2]"]
        )
    )
    with pytest.raises(RunError, match="already holds a run"):
        train(
            train_opts(
                train_dir,
                val_dir,
                out,
                overrides=[*tiny_set, "iterations=4", "sched.milestones=[2]"],
            )
        )
    with pytest.raises(RunError, match=r"optim\.lr"):
        train(
            train_opts(
                train_dir,
                val_dir,
                out,
                resume=True,
                overrides=[*tiny_set, "iterations=4", "sched.milestones=[2]", "optim.lr=1e-3"],
            )
        )
    with pytest.raises(RunError, match="preset"):
        train(
            train_opts(
                train_dir,
                val_dir,
                out,
                resume=True,
                preset="light-sr-x2-500k",
                overrides=[*tiny_set, "iterations=4", "sched.milestones=[2]"],
            )
        )
    with pytest.raises(RunError, match="nothing to resume"):
        train(train_opts(train_dir, val_dir, tmp_path / "none", tiny_set, resume=True))


def test_nan_loss_stops_and_keeps_checkpoint(tiny_model, sr_data, tiny_set, tmp_path, train_opts):
    train_dir, val_dir = sr_data
    out = tmp_path / "nan"
    # One forward per iteration (batch 4 in one micro-batch); NaN from iteration 6 on.
    with pytest.raises(NonFiniteLossError, match="iteration 6"):
        train(train_opts(train_dir, val_dir, out, tiny_set, model_args={"nan_after": 5}))
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 4
    assert all(
        torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point()
    )
    assert not (out / "model.safetensors").exists()


@pytest.mark.parametrize("preset", ["denoise-gray-s25", "jpeg-color-q40"])
def test_restoration_presets_train(tiny_model, sr_data, tmp_path, preset, train_opts):
    train_dir, val_dir = sr_data  # HR only is used: noise / JPEG made on the fly
    out = tmp_path / preset
    sets = ["batch=2", "patch=16", "data.workers=0", "val.every=2", "log_every=1"]
    train(
        train_opts(
            train_dir,
            val_dir,
            out,
            preset=preset,
            model="tiny-restore",
            overrides=sets,
            budget=2e-6,
        )
    )
    rows = read_metrics(out / "metrics.csv")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["val_psnr"] is not None
    from resyn.models import load_model

    model = load_model(out / "model.safetensors")
    assert model.config.in_chans == (1 if "gray" in preset else 3)
    assert model.config.upscale == 1


def test_init_starts_from_weights_and_checks_them(
    tiny_model, sr_data, tiny_set, tmp_path, train_opts
):
    from resyn.models import build_model, save_model
    from resyn.train.run import prepare

    train_dir, val_dir = sr_data
    torch.manual_seed(11)
    start = build_model("tiny-sr", scale=2)
    for p in start.parameters():
        p.data.normal_()
    weights = save_model(start, tmp_path / "start.safetensors", info={"iterations": 7})

    prep = prepare(train_opts(train_dir, val_dir, tmp_path / "ft", tiny_set, init=weights))
    for name, value in start.state_dict().items():
        assert torch.equal(prep.model.state_dict()[name], value), name
    init = prep.run["model"]["init"]
    assert init["info"] == {"iterations": 7} and len(init["sha256"]) == 64

    # A run without --init starts elsewhere (the seed's initial weights).
    plain = prepare(train_opts(train_dir, val_dir, tmp_path / "plain", tiny_set))
    assert not torch.equal(plain.model.body[0].weight, start.body[0].weight)

    with pytest.raises(RunError, match=r"--init: .*width \(8 in the file, 4 now\)"):
        prepare(
            train_opts(
                train_dir, val_dir, tmp_path / "w", tiny_set, init=weights, model_args={"width": 4}
            )
        )
    (tmp_path / "junk.safetensors").write_bytes(b"not weights")
    with pytest.raises(RunError, match=r"--init: .*not a readable safetensors"):
        prepare(
            train_opts(
                train_dir, val_dir, tmp_path / "j", tiny_set, init=tmp_path / "junk.safetensors"
            )
        )
    with pytest.raises(RunError, match="--init: weights file not found"):
        prepare(train_opts(train_dir, val_dir, tmp_path / "m", tiny_set, init=tmp_path / "none"))

    # The start is part of the run: resuming with other starting weights is refused.
    out = tmp_path / "run"
    train(
        train_opts(
            train_dir,
            val_dir,
            out,
            [*tiny_set, "iterations=4", "sched.milestones=[2]"],
            init=weights,
        )
    )
    other = save_model(build_model("tiny-sr", scale=2), tmp_path / "other.safetensors")
    with pytest.raises(RunError, match="init"):
        prepare(
            train_opts(
                train_dir,
                val_dir,
                out,
                [*tiny_set, "iterations=4", "sched.milestones=[2]"],
                init=other,
                resume=True,
            )
        )


def test_run_stopped_before_first_checkpoint_starts_again(
    tiny_model, sr_data, tiny_set, tmp_path, monkeypatch, train_opts
):
    train_dir, val_dir = sr_data
    out = tmp_path / "early"
    original = StandardLoop.on_train_batch_end

    def killing(self, trainer, *args):
        original(self, trainer, *args)
        if trainer.global_step == 3:  # validated at 2 (best.ckpt), first checkpoint due at 4
            raise Killed

    monkeypatch.setattr(StandardLoop, "on_train_batch_end", killing)
    with pytest.raises(Killed):
        train(train_opts(train_dir, val_dir, out, tiny_set))
    monkeypatch.setattr(StandardLoop, "on_train_batch_end", original)
    assert (out / "run.json").is_file() and not (out / "checkpoints" / "last.ckpt").exists()
    stale = torch.load(out / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert stale["global_step"] == 2

    # Nothing to resume, and the message says what to do; doing it works.
    with pytest.raises(RunError, match="start again without --resume"):
        train(train_opts(train_dir, val_dir, out, tiny_set, resume=True))
    from resyn.train.run import prepare

    assert prepare(train_opts(train_dir, val_dir, out, tiny_set)).restart
    # The restarted run must not keep the stopped run's best checkpoint: stop it again before
    # its first validation.

    def killing_at_1(self, trainer, *args):
        original(self, trainer, *args)
        if trainer.global_step == 1:
            raise Killed

    monkeypatch.setattr(StandardLoop, "on_train_batch_end", killing_at_1)
    with pytest.raises(Killed):
        train(train_opts(train_dir, val_dir, out, tiny_set))
    monkeypatch.setattr(StandardLoop, "on_train_batch_end", original)
    assert not (out / "checkpoints" / "best.ckpt").exists()
    assert [r[0] for r in _logged(out / "metrics.csv")] == [1]

    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1

    train(train_opts(train_dir, val_dir, out, tiny_set))
    rows = _logged(out / "metrics.csv")
    assert [r[0] for r in rows] == list(range(1, 9))
    # Only the finished run's TensorBoard events: the stopped runs' ones were removed.
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert (out / "model.safetensors").is_file()
    # A run with a checkpoint is still protected.
    with pytest.raises(RunError, match="already holds a run"):
        prepare(train_opts(train_dir, val_dir, out, tiny_set))


def test_reschedule_equals_a_run_planned_that_way(
    killed_at, tiny_model, sr_data, tiny_set, tmp_path, monkeypatch, train_opts
):
    # `--resume --reschedule`: a run continued under a new schedule trains exactly what a run
    # started with that schedule trains (samples are step-indexed; the scheduler is re-targeted).
    from safetensors.torch import load_file

    train_dir, val_dir = sr_data
    planned = [*tiny_set, "ema_decay=0.5"]  # 8 iterations, lr halved at 4 and 6
    full = tmp_path / "full"
    train(train_opts(train_dir, val_dir, full, overrides=planned))
    rows = _logged(full / "metrics.csv")
    assert [r[2] for r in rows][4:] == [1e-4, 1e-4, 5e-5, 5e-5]

    # Planned as 12 iterations with one late drop, killed at 6: the checkpoint is from 4, and
    # iterations 5 and 6 ran at the old rate.
    first = [*planned, "iterations=12", "sched.milestones=[9]"]
    part = tmp_path / "part"
    killed_at(6, train_opts(train_dir, val_dir, part, overrides=first))
    assert [r[2] for r in _logged(part / "metrics.csv")][4:] == [2e-4, 2e-4]

    with pytest.raises(RunError, match=r"iterations \(12 in the run, 8 now\).*--reschedule"):
        train(train_opts(train_dir, val_dir, part, overrides=planned, resume=True))
    train(train_opts(train_dir, val_dir, part, overrides=planned, resume=True, reschedule=True))
    assert _logged(part / "metrics.csv") == rows
    for name in ("model.safetensors", "best.safetensors"):
        a, b = load_file(full / name), load_file(part / name)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name

    run = json.loads((part / "run.json").read_text())
    assert (run["config"]["iterations"], run["config"]["sched"]["milestones"]) == (8, [4, 6])
    (change,) = run["reschedules"]
    assert change["step"] == 4
    assert "config.iterations (12 in the run, 8 now)" in change["changes"]
    assert "config.sched.milestones ([9] in the run, [4, 6] now)" in change["changes"]


def test_reschedule_refuses_other_changes_and_nothing_left(
    tiny_model, sr_data, tiny_set, tmp_path, train_opts
):
    train_dir, val_dir = sr_data
    short = [*tiny_set, "iterations=4", "sched.milestones=[2]"]
    out = tmp_path / "run"
    train(train_opts(train_dir, val_dir, out, overrides=short))

    def again(overrides, **kw):
        train(train_opts(train_dir, val_dir, out, overrides=overrides, resume=True, **kw))

    with pytest.raises(RunError, match=r"optim\.lr"):
        again([*short, "iterations=6", "optim.lr=1e-3"], reschedule=True)
    with pytest.raises(RunError, match="not above the checkpoint's 4 iterations"):
        again([*short, "sched.milestones=[3]"], reschedule=True)
    with pytest.raises(RunError, match="needs --resume"):
        train(train_opts(train_dir, val_dir, tmp_path / "new", overrides=short, reschedule=True))
    assert "reschedules" not in json.loads((out / "run.json").read_text())
