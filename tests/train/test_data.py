"""Paired data: aligned crops, per-sample determinism, hardware-independent sampling, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from resyn.degrade import imresize, parse_task
from resyn.train.data import DataError, StepSampler, TrainSet, check_pairs, find_pairs, load_val
from resyn.train.run import RunError, plan_batch


def test_sr_patches_are_aligned_and_deterministic(sr_data):
    train, _ = sr_data
    task = parse_task("sr-x2")
    pairs = find_pairs(train, task)
    assert len(pairs) == 4 and all(p.lr is None for p in pairs)
    ds = TrainSet(pairs, task, 16, seed=1, hflip=False, rot90=False)
    lq, gt = ds[5]
    assert lq.shape == (3, 8, 8) and gt.shape == (3, 16, 16)
    # The LR patch is the bicubic LR of the whole image, cropped where the GT patch is.
    hr = np.asarray(Image.open(pairs[ds.image_index(5)].hr))
    lr = imresize(hr, 0.5)
    gt8 = (gt.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    lq8 = (lq.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    found = [
        (y, x)
        for y in range(0, 17, 2)
        for x in range(0, 17, 2)
        if np.array_equal(hr[y : y + 16, x : x + 16], gt8)
    ]
    assert found, "GT patch is not an even-aligned HR crop"
    y, x = found[0]
    assert np.array_equal(lr[y // 2 : y // 2 + 8, x // 2 : x // 2 + 8], lq8)
    # Same k, same sample (another dataset object, e.g. in another worker or after resume).
    ds2 = TrainSet(pairs, task, 16, seed=1, hflip=False, rot90=False)
    assert torch.equal(ds2[5][1], gt) and not torch.equal(ds2[6][1], gt)
    # Every image appears once per epoch.
    assert sorted(ds.image_index(k) for k in range(4)) == [0, 1, 2, 3]


def test_denoise_samples_are_noisy_and_seeded(sr_data):
    train, _ = sr_data
    task = parse_task("denoise-gray-25")
    ds = TrainSet(find_pairs(train, task), task, 16, seed=0)
    lq, gt = ds[3]
    assert lq.shape == gt.shape == (1, 16, 16)
    sigma = float((lq - gt).std()) * 255
    assert 15 < sigma < 35
    assert torch.equal(ds[3][0], lq) and not torch.equal(ds[4][0], lq)


def test_sampler_does_not_depend_on_hardware():
    single = list(
        StepSampler(
            total=8, per_device=8, accumulate=1, rank=0, world=1, start_step=0, iterations=3
        )
    )
    assert single == list(range(24))
    split = []
    for r in range(2):
        split += list(
            StepSampler(
                total=8, per_device=2, accumulate=2, rank=r, world=2, start_step=0, iterations=3
            )
        )
    assert sorted(split) == single
    resumed = list(
        StepSampler(
            total=8, per_device=8, accumulate=1, rank=0, world=1, start_step=2, iterations=3
        )
    )
    assert resumed == single[16:]
    # the length is the schedule's (Lightning counts the resumed epoch's batches from 2·8)
    assert len(
        StepSampler(
            total=8, per_device=8, accumulate=1, rank=0, world=1, start_step=2, iterations=3
        )
    ) == len(single)


def test_batch_plan():
    assert plan_batch(64, 1, None) == (64, 1)
    assert plan_batch(64, 4, 8) == (8, 2)
    assert plan_batch(32, 2, 5) == (4, 4)
    with pytest.raises(RunError, match="not divisible"):
        plan_batch(32, 3, None)


def test_bad_folders(tmp_path, sr_data):
    task = parse_task("sr-x2")
    with pytest.raises(DataError, match="does not exist"):
        find_pairs(tmp_path / "missing", task, what="--train")
    (tmp_path / "empty" / "HR").mkdir(parents=True)
    with pytest.raises(DataError, match="contains no images"):
        find_pairs(tmp_path / "empty", task)
    _, val = sr_data
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(val / "LR_bicubic" / "X2" / "v0x2.png")
    with pytest.raises(DataError, match="should be"):
        check_pairs(find_pairs(val, task), 2)
    (val / "LR_bicubic" / "X2" / "v1x2.png").unlink()
    with pytest.raises(DataError, match="no LR image"):
        find_pairs(val, task)
    train, _ = sr_data
    with pytest.raises(DataError, match="smaller than the training patch"):
        check_pairs(find_pairs(train, task), 2, min_hr=64)


def test_val_accepts_lr_named_like_hr(sr_data):
    _, val = sr_data
    task = parse_task("sr-x2")
    for p in (val / "LR_bicubic" / "X2").iterdir():
        p.rename(p.with_name(p.name.replace("x2.png", ".png")))
    images = load_val(find_pairs(val, task), task)
    assert [im.lq.shape for im in images] == [(1, 3, 12, 14)] * 2
    assert images[0].gt.shape == (24, 28, 3) and images[0].baseline.shape == (24, 28, 3)


def test_training_prefers_sub_images(sr_data):
    from resyn.degrade import imresize

    train, _ = sr_data
    task = parse_task("sr-x2")
    hr = np.asarray(Image.open(train / "HR" / "t0.png"))
    (train / "HR_sub").mkdir()
    (train / "LR_bicubic_sub" / "X2").mkdir(parents=True)
    Image.fromarray(hr[:16, :16]).save(train / "HR_sub" / "t0_s001.png")
    Image.fromarray(imresize(hr[:16, :16], 0.5)).save(
        train / "LR_bicubic_sub" / "X2" / "t0_s001.png"
    )
    pairs = find_pairs(train, task, prefer_sub=True)
    assert [(p.name, p.lr.name) for p in pairs] == [("t0_s001", "t0_s001.png")]
    assert len(find_pairs(train, task)) == 4  # validation reads the full images


def test_unreadable_lr_is_a_data_error(sr_data):
    _, val = sr_data
    task = parse_task("sr-x2")
    bad = val / "LR_bicubic" / "X2" / "v1x2.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a PNG")
    with pytest.raises(DataError, match=r"--train: cannot read .*v1x2\.png"):
        check_pairs(find_pairs(val, task), 2, what="--train")
