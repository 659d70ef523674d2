"""Blind training data, --max-minutes (a clean, resumable stop) and --init-partial."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from resyn.degrade import parse_task
from resyn.train.data import TrainSet, find_pairs
from resyn.train.loop import read_metrics
from resyn.train.run import RunError, train

BLIND_SET = [
    "iterations=6",
    "batch=4",
    "patch=16",
    "val.every=2",
    "checkpoint_every=2",
    "log_every=1",
    "data.workers=0",
    "sched.milestones=[4]",
]


def _losses(run) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_metrics(run / "metrics.csv")]


@pytest.mark.parametrize("name", ["denoise", "jpeg"])
def test_blind_samples_draw_their_level_from_the_sample_seed(sr_data, name):
    task = parse_task(name)
    pairs = find_pairs(sr_data[0], task)
    ds = TrainSet(pairs, task, 16, seed=3)
    again = TrainSet(pairs, task, 16, seed=3)
    errors = []
    for k in (0, 1, 2, 3, 17, 400):
        lq, gt = ds[k]
        lq2, gt2 = again[k]
        assert torch.equal(lq, lq2) and torch.equal(gt, gt2)  # a pure function of (seed, k)
        errors.append(float((lq - gt).abs().mean()))
    assert len({round(e, 6) for e in errors}) == len(errors)  # levels differ between samples
    other = TrainSet(pairs, task, 16, seed=4)
    assert not torch.equal(other[0][0], ds[0][0])


def test_blind_run_validates_at_the_fixed_level_and_resumes_exactly(
    killed_at, tiny_model, sr_data, tmp_path, monkeypatch, train_opts
):
    from resyn.models.weights import read_metadata
    from resyn.restore.weights import check_weights_for_task

    train_dir, val_dir = sr_data
    kw = dict(preset="denoise-color-blind", model="tiny-restore")
    full = tmp_path / "full"
    train(train_opts(train_dir, val_dir, full, BLIND_SET, **kw))
    run = json.loads((full / "run.json").read_text())
    assert run["config"]["task"] == "denoise" and run["config"]["val"]["task"] == "denoise-25"
    assert 15 < run["baseline"]["psnr"] < 25  # the sigma-25 input, seed 0
    meta = read_metadata(full / "model.safetensors")
    assert meta["info"]["task"] == "denoise"
    check_weights_for_task(meta, parse_task("denoise-50"), "model.safetensors")

    part = tmp_path / "part"
    killed_at(3, train_opts(train_dir, val_dir, part, BLIND_SET, **kw))
    train(train_opts(train_dir, val_dir, part, BLIND_SET, resume=True, **kw))
    assert _losses(part) == _losses(full)


def test_max_minutes_stops_cleanly_and_resume_continues(
    tiny_model, sr_data, tiny_set, tmp_path, train_opts
):
    train_dir, val_dir = sr_data
    full, cut = tmp_path / "full", tmp_path / "cut"
    train(train_opts(train_dir, val_dir, full, tiny_set))
    # a limit that any iteration exceeds: the session stops after its first iteration
    path = train(train_opts(train_dir, val_dir, cut, tiny_set, max_minutes=1e-9))
    assert path == cut / "model.safetensors" and path.is_file()
    run = json.loads((cut / "run.json").read_text())
    assert run["final"]["step"] == 1 and run["final"]["stopped_by"] == "max_minutes"
    assert run["final"]["max_minutes"] == 1e-9
    ckpt = torch.load(cut / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 1
    rows = read_metrics(cut / "metrics.csv")
    assert rows[-1]["step"] == 1 and rows[-1]["val_psnr"] is not None  # validated at the stop
    train(train_opts(train_dir, val_dir, cut, tiny_set, resume=True))
    run = json.loads((cut / "run.json").read_text())
    assert run["final"]["step"] == 8 and run["final"]["stopped_by"] == "iterations"
    assert _losses(cut) == _losses(full)  # the same samples and updates as one session
    with pytest.raises(RunError, match="--max-minutes must be a positive number"):
        train(train_opts(train_dir, val_dir, tmp_path / "x", tiny_set, max_minutes=0))


def test_init_partial_loads_matching_tensors(tiny_model, sr_data, tiny_set, tmp_path, train_opts):
    from resyn.models import build_model, save_model

    train_dir, val_dir = sr_data
    torch.manual_seed(1)
    x2 = build_model("tiny-sr", scale=2)
    init = save_model(x2, tmp_path / "x2.safetensors", info={"task": "sr-x2"})
    x3_set = [*tiny_set, "patch=18", "iterations=1", "sched.milestones=[]"]
    kw = dict(preset="light-sr-x3-50k", init=init)
    with pytest.raises(RunError, match=r"upscale.*add --init-partial"):
        train(train_opts(train_dir, val_dir, tmp_path / "strict", x3_set, **kw))
    with pytest.raises(RunError, match="--init-partial says how to load --init weights"):
        train(train_opts(train_dir, val_dir, tmp_path / "p", x3_set, init_partial=True))
    out = tmp_path / "partial"
    train(train_opts(train_dir, val_dir, out, x3_set, init_partial=True, **kw))
    start = json.loads((out / "run.json").read_text())["model"]["init"]
    assert start["partial"] and start["loaded"] == 2
    assert [s.split(":")[0] for s in start["skipped"]] == ["body.2.weight", "body.2.bias"]
    assert "shape [12, 8, 3, 3] in the file, [27, 8, 3, 3] in the model" in start["skipped"][0]
    assert any("upscale" in d for d in start["config_differences"])
    # the matching tensors started from the file (one Adam step moves them by about lr)
    from resyn.models.weights import load_model

    x3 = load_model(out / "model.safetensors")
    moved = (x3.state_dict()["body.0.weight"] - x2.state_dict()["body.0.weight"]).abs().max()
    assert float(moved) < 1e-3
    assert np.isfinite(float(moved))
