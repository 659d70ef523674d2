"""The standard as presets: every preset validates; bad keys and values are named."""

from __future__ import annotations

import pytest
import yaml

from resyn.train.standard import (
    ConfigError,
    dump_yaml,
    list_standard,
    load_config,
    parse_overrides,
)

EXPECTED = (
    [f"classic-sr-x{s}-{b}" for s in (2, 3, 4) for b in ("100k", "500k")]
    + [f"light-sr-x{s}-{b}" for s in (2, 3, 4) for b in ("50k", "500k")]
    + [f"denoise-{c}-s{n}" for c in ("color", "gray") for n in (15, 25, 50)]
    + [f"jpeg-{c}-q{q}" for c in ("gray", "color") for q in (10, 20, 30, 40)]
    + ["denoise-color-blind", "jpeg-color-blind"]
)


def test_every_preset_exists_and_validates():
    assert sorted(EXPECTED) == list_standard()
    for name in list_standard():
        c = load_config(name)
        assert c.name == name
        assert c.optim.betas == (0.9, 0.99) and c.optim.lr == 2e-4 and c.optim.weight_decay == 0
        assert c.sched.gamma == 0.5 and c.augment.hflip and c.augment.rot90
        assert all(m < c.iterations for m in c.sched.milestones)


def test_spec_numbers():
    c = load_config("classic-sr-x4-100k")
    assert (c.task, c.iterations, c.batch, c.patch, c.loss.type) == (
        "sr-x4",
        100_000,
        32,
        256,
        "l1",
    )
    assert c.sched.milestones == [50_000, 75_000, 90_000, 95_000]
    c = load_config("light-sr-x2-500k")
    assert (c.task, c.batch, c.patch) == ("sr-x2", 64, 128)
    assert c.sched.milestones == [250_000, 400_000, 450_000, 475_000]
    assert c.crop_border == 2 and c.val.y_channel
    c = load_config("denoise-gray-s50")
    assert (c.task, c.loss.type, c.loss.eps, c.crop_border) == (
        "denoise-gray-50",
        "charbonnier",
        1e-3,
        0,
    )
    assert load_config("jpeg-color-q40").task == "jpeg-q40"
    assert load_config("jpeg-gray-q10").patch == 126


def test_show_roundtrips_through_set():
    c = load_config("light-sr-x3-50k")
    data = yaml.safe_load(dump_yaml(c))
    overrides = [
        f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}"
        for k, v in data.items()
        if not isinstance(v, dict)
    ]
    assert load_config("light-sr-x3-50k", overrides) == c
    c2 = load_config(
        "light-sr-x3-50k", ["optim.lr=1e-4", "sched.milestones=[10, 20]", "ema_decay=0.999"]
    )
    assert c2.optim.lr == 1e-4 and c2.sched.milestones == [10, 20] and c2.ema_decay == 0.999


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("optim.lrr=1e-4", "optim.lrr: unknown key"),
        ("itertions=5", "itertions: unknown key"),
        ("optim.lr=-1", "optim.lr"),
        ("optim.lr=fast", "optim.lr"),
        ("batch=0", "batch"),
        ("sched.milestones=[10, 60000]", "sched.milestones"),
        ("sched.milestones=[30, 20]", "sched.milestones"),
        ("patch=127", "patch"),
        ("ema_decay=1.5", "ema_decay"),
        ("task=sr-x99", "task"),
        ("optim.betas=[0.9, 1.5]", "optim.betas"),
        ("loss.type=l2", "loss.type"),
        ("lr.x=1", "lr"),
    ],
)
def test_bad_values_name_the_key(override, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.").replace("[", r"\[")):
        load_config("light-sr-x2-50k", [override])


def test_unknown_preset_lists_presets():
    with pytest.raises(ConfigError) as info:
        load_config("light-sr-x5-50k")
    assert "light-sr-x2-50k" in str(info.value) and "jpeg-gray-q10" in str(info.value)


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["optim.lr"])


def test_budget_scales_schedule_only():
    full = load_config("light-sr-x2-50k")
    small = load_config("light-sr-x2-50k", budget=0.002)
    assert small.iterations == 100 and small.sched.milestones == [50, 75, 90, 95]
    assert small.val.every == 10 and small.checkpoint_every == 10 and small.budget == 0.002
    same = ("batch", "patch", "optim", "loss", "augment", "task")
    assert all(getattr(small, k) == getattr(full, k) for k in same)
    assert load_config("light-sr-x2-50k-smoke").iterations == 100
    tiny = load_config("classic-sr-x4-100k", budget=1e-9)
    assert tiny.iterations == 1 and tiny.sched.milestones == [] and tiny.val.every == 1
    with pytest.raises(ConfigError, match="budget"):
        load_config("light-sr-x2-50k", budget=2.0)
    # --set applies after scaling: explicit values are final.
    c = load_config("light-sr-x2-50k", ["val.every=25", "batch=8"], budget=0.002)
    assert (c.val.every, c.batch, c.iterations) == (25, 8, 100)
    assert load_config("light-sr-x2-50k", ["budget=0.01"]).iterations == 500
