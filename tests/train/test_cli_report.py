"""The CLI (standard list/show, train, report) end to end on a tiny model."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from resyn.cli.main import app
from resyn.train.loop import read_metrics

runner = CliRunner()
SET = ["batch=4", "patch=16", "data.workers=0", "log_every=1"]


def _sets(items):
    return [x for item in items for x in ("--set", item)]


def _scalars(run_dir):
    """{tag: {step: value}} from the TensorBoard event files of a run (TFRecord framing)."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    files = sorted((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert files, f"no TensorBoard event file in {run_dir / 'tensorboard'}"
    out: dict = {}
    for path in files:
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (n,) = struct.unpack("<Q", data[pos : pos + 8])
            event = Event.FromString(data[pos + 12 : pos + 12 + n])
            pos += 12 + n + 4
            for v in event.summary.value:
                out.setdefault(v.tag, {})[event.step] = v.simple_value
    return out


def test_standard_list_and_show():
    r = runner.invoke(app, ["standard", "list"])
    assert r.exit_code == 0 and "classic-sr-x4-100k" in r.output and "jpeg-color-q40" in r.output
    r = runner.invoke(app, ["standard", "show", "light-sr-x2-50k", "--set", "optim.lr=1e-4"])
    assert r.exit_code == 0
    data = yaml.safe_load(r.output)
    assert data["optim"]["lr"] == 1e-4 and data["batch"] == 64 and data["task"] == "sr-x2"
    r = runner.invoke(app, ["standard", "show", "nope"])
    assert (
        r.exit_code == 2 and "unknown training preset" in r.output and "light-sr-x2-50k" in r.output
    )
    r = runner.invoke(app, ["standard", "show", "light-sr-x2-50k", "--set", "optim.lrr=1"])
    assert r.exit_code == 2 and "optim.lrr" in r.output


def test_train_two_runs_and_report(tiny_model, sr_data, tmp_path, monkeypatch, train_cli):
    train, val = sr_data
    outs = []
    for i, extra in enumerate([[], ["ema_decay=0.9"]]):
        out = tmp_path / f"run{i}"
        args = [
            *train_cli(train, val, out),
            "--budget",
            "0.0001",
            "--progress" if i == 0 else "--no-progress",
            "--max-device-batch",
            "2",
            *_sets([*SET, *extra]),
        ]
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
        assert "2 per device x 1 processes x 2 accumulation" in r.output
        outs.append(out)
    run = json.loads((outs[1] / "run.json").read_text())
    assert run["batch"] == {"total": 4, "per_device": 2, "accumulate": 2, "world_size": 1}
    assert run["config"]["iterations"] == 5 and run["config"]["ema_decay"] == 0.9
    assert run["hardware"]["precision"] == "32-true" and run["baseline"]["psnr"] > 10
    from resyn.models import read_metadata

    meta = read_metadata(outs[1] / "model.safetensors")
    assert meta["info"]["preset"] == "light-sr-x2-50k" and meta["info"]["iterations"] == 5
    # The metrics also go to TensorBoard, step for step.
    rows = read_metrics(outs[0] / "metrics.csv")
    tb = _scalars(outs[0])
    assert tb["loss"] == pytest.approx({r["step"]: r["loss"] for r in rows})
    val = {r["step"]: r["val_psnr"] for r in rows if r["val_psnr"] is not None}
    assert val and tb["val_psnr"] == pytest.approx(val)
    # The report draws both runs' curves: inspect the very figure the command saves.
    from resyn.train import report as report_mod

    drawn = []

    def spy(summaries):
        drawn.append(fig := real_figure(summaries))
        return fig

    real_figure = report_mod.figure
    monkeypatch.setattr(report_mod, "figure", spy)
    r = runner.invoke(app, ["report", *map(str, outs), "-o", str(tmp_path / "rep.md")])
    assert r.exit_code == 0, r.output
    assert len(drawn) == 1
    lines = drawn[0].axes[0].get_lines()
    curves = {ln.get_label(): ln for ln in lines if not ln.get_label().startswith("_")}
    assert sorted(curves) == ["run0 (tiny-sr)", "run1 (tiny-sr)"]
    tables = []
    for i, out in enumerate(outs):
        val = [row for row in read_metrics(out / "metrics.csv") if row["val_psnr"] is not None]
        assert len(val) >= 2
        curve = curves[f"run{i} (tiny-sr)"]
        assert list(curve.get_xdata()) == [row["step"] for row in val]
        assert list(curve.get_ydata()) == pytest.approx([row["val_psnr"] for row in val])
        baseline = json.loads((out / "run.json").read_text())["baseline"]["psnr"]
        (base_line,) = [ln for ln in lines if ln.get_label() == f"_baseline run{i}"]
        assert list(base_line.get_ydata()) == pytest.approx([baseline, baseline])
        tables.append((f"run{i}", f"{val[-1]['val_psnr']:.3f}", f"{baseline:.3f}"))
    md = (tmp_path / "rep.md").read_text().splitlines()
    sep = next(i for i, line in enumerate(md) if line.startswith("|---"))
    rows = [line.split("|")[1:-1] for line in md[sep + 1 :] if line.startswith("|")]
    assert [(c[0].strip(), c[3].strip(), c[4].strip()) for c in rows] == tables
    png = (tmp_path / "rep.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    assert Image.open(tmp_path / "rep.png").size == (840, 504)  # 7 x 4.2 in at 120 dpi

    # -o naming a PNG would have the Markdown overwrite the plot: refused, nothing written.
    for name in ("rep2.png", "rep2.PNG"):
        r = runner.invoke(app, ["report", *map(str, outs), "-o", str(tmp_path / name)])
        flat = " ".join(r.output.split())  # the console wraps long lines
        assert r.exit_code == 2 and "give the Markdown report's path" in flat, r.output
    assert not list(tmp_path.glob("rep2*"))


def test_train_bad_input_is_clear(tiny_model, sr_data, tmp_path):
    train, val = sr_data
    base = [
        "train",
        "light-sr-x2-50k",
        "--model",
        "tiny-sr",
        "--val",
        str(val),
        "--out",
        str(tmp_path / "o"),
        "--accelerator",
        "cpu",
        "--no-progress",
    ]
    r = runner.invoke(app, [*base, "--train", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "--train folder does not exist" in r.output
    r = runner.invoke(app, [*base, "--train", str(train)])  # 32x32 images < patch 128
    assert r.exit_code == 2 and "smaller than the training patch" in r.output
    r = runner.invoke(
        app, [*base, "--train", str(train), "--set", "patch=16", "--model-arg", "nosuch=1"]
    )
    assert r.exit_code == 2 and "nosuch" in r.output
    # A corrupt LR file of the training set: an error line naming it, before anything runs.
    (train / "LR_bicubic" / "X2").mkdir(parents=True)
    for i in range(4):
        (train / "LR_bicubic" / "X2" / f"t{i}x2.png").write_bytes(b"corrupt")
    r = runner.invoke(app, [*base, "--train", str(train), "--set", "patch=16"])
    assert r.exit_code == 2 and "cannot read" in r.output and "t0x2.png" in r.output, r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "o").exists()
