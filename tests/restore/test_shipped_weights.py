"""The weights that ship in ``src/resyn/weights/`` and the README's main job.

These tests read whatever files are in the weights folder (they are retrained and replaced from
time to time), so they check properties every shipped file must have, never its recorded
metrics: it loads, it is for the task its name says, it has a model card, the set stays small,
and on held-out photos it restores better than the baseline it replaces.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from resyn.degrade import imresize, parse_task
from resyn.io import read_image, write_image
from resyn.metrics import psnr
from resyn.models import load_model, read_metadata
from resyn.restore import load_restorer, restore_array
from resyn.restore.weights import WEIGHTS_DIR, check_weights_for_task, shipped_weights

SHIPPED = shipped_weights()
SR_TASKS = sorted(t for t in SHIPPED if parse_task(t).kind == "sr")
REQUIRED = {"sr-x2", "sr-x4", "denoise-25"}  # issue 7: weights in the box for these tasks


def test_required_tasks_are_shipped_and_small() -> None:
    assert set(SHIPPED) >= REQUIRED, sorted(SHIPPED)
    total = sum(p.stat().st_size for p in SHIPPED.values())
    assert total < 20 * 1024 * 1024, f"shipped weights take {total / 2**20:.1f} MiB (limit 20)"


@pytest.mark.parametrize("task", sorted(SHIPPED))
def test_shipped_file_loads_and_fits_the_task_in_its_name(task: str) -> None:
    path = SHIPPED[task]
    meta = read_metadata(path)
    assert (meta.get("info") or {}).get("task") == task, meta.get("info")
    parsed = parse_task(task)  # the file name is a task name
    check_weights_for_task(meta, parsed, str(path))
    model = load_model(path)
    assert int(model.config.upscale) == (parsed.scale if parsed.kind == "sr" else 1)
    assert int(model.config.in_chans) == parsed.channels
    assert sum(p.numel() for p in model.parameters()) > 0
    assert all(bool(p.isfinite().all()) for p in model.parameters()), "non-finite weights"


@pytest.mark.parametrize("task", sorted(SHIPPED))
def test_shipped_file_has_a_listed_model_card(task: str) -> None:
    card = WEIGHTS_DIR / f"{task}.md"
    assert card.is_file(), f"{card.name} (model card) is missing"
    text = card.read_text(encoding="utf-8")
    assert f"{task}.safetensors" in text and "PSNR" in text
    index = (WEIGHTS_DIR / "README.md").read_text(encoding="utf-8")
    assert re.search(rf"\]\({re.escape(task)}\.md\)", index), f"README.md does not list {task}.md"


# A textured 192x160 region of a held-out photo (the dog's fur); its LR crops are 96x80 at x2
# and 48x40 at x4. Both inputs see the same crop (same missing context at the borders).
HR_BOX = (64, 64, 160, 192)  # y, x, height, width (multiples of 4)
MIN_GAIN_DB = 0.1


@pytest.mark.parametrize("task", SR_TASKS)
def test_shipped_sr_beats_matlab_bicubic_on_a_held_out_crop(task: str, repo_root) -> None:
    s = parse_task(task).scale
    demo = repo_root / "data" / "test" / "ReSynDemo"
    lr_file = demo / "LR_bicubic" / f"X{s}" / f"dogx{s}.png"
    if not lr_file.is_file():
        pytest.skip(f"no x{s} LR images in {demo}")
    y, x, h, w = HR_BOX
    hr = read_image(demo / "HR" / "dog.png")[y : y + h, x : x + w]
    lr = read_image(lr_file)[y // s : (y + h) // s, x // s : (x + w) // s]
    out, info = restore_array(load_restorer(task), lr)  # what `resyn restore` runs per file
    assert out.shape == hr.shape and out.dtype == np.uint8
    assert info.tile is None  # a crop this small runs whole
    model_db = psnr(out, hr, crop_border=s, y_channel=True)
    bicubic_db = psnr(imresize(lr, s), hr, crop_border=s, y_channel=True)
    assert model_db >= bicubic_db + MIN_GAIN_DB, (task, model_db, bicubic_db)


@pytest.mark.parametrize("task", sorted(t for t in SHIPPED if parse_task(t).kind == "denoise"))
def test_shipped_denoiser_beats_the_noisy_input_on_a_held_out_crop(task: str, repo_root) -> None:
    parsed = parse_task(task)
    y, x, h, w = HR_BOX
    clean = parsed.target(read_image(repo_root / "data/test/ReSynDemo/HR/dog.png"))
    clean = clean[y : y + h // 2, x : x + w // 2]
    noisy_f = parsed.degrade(clean, seed=0)
    noisy = np.rint(np.clip(noisy_f, 0, 1) * 65535).astype(np.uint16)  # keep the noise exact
    if parsed.gray:
        noisy = noisy[:, :, 0]
    out, _ = restore_array(load_restorer(task), noisy)
    assert out.shape == noisy.shape and out.dtype == np.uint16
    to8 = lambda a: np.rint(a.astype(np.float64) / 257.0).astype(np.uint8)  # noqa: E731
    restored_db = psnr(to8(out), clean.squeeze())
    noisy_db = psnr(to8(noisy), clean.squeeze())
    assert restored_db >= noisy_db + 3.0, (task, restored_db, noisy_db)


@pytest.mark.parametrize("task", SR_TASKS)
def test_shipped_sr_restores_a_crop_of_the_bundled_example(task: str, repo_root) -> None:
    s = parse_task(task).scale
    cat = read_image(repo_root / "data" / "examples" / "cat_256x192.png")
    crop = np.ascontiguousarray(cat[70:110, 100:148])  # 48x40
    out, _ = restore_array(load_restorer(task), crop)
    assert out.shape == (40 * s, 48 * s, 3) and out.dtype == np.uint8
    # the output brought back to the input size must match the input (a broken model would
    # not); bicubic up and down again gives 46-47 dB on this crop, a flat gray 16 dB
    assert psnr(imresize(out, 1 / s), crop, crop_border=s, y_channel=True) > 35.0


def test_restore_command_with_shipped_weights_on_a_crop(tmp_path, repo_root) -> None:
    # The README's main job (scripts/main.sh: `resyn restore data/examples/cat_256x192.png -o
    # out/ --task sr-x4`) on a 48x40 crop of the example, for every shipped SR task: the whole
    # 256x192 file takes about 10 s on one loaded core, the crop well under one.
    from resyn.cli.main import app

    cat = read_image(repo_root / "data" / "examples" / "cat_256x192.png")
    src = tmp_path / "cat_crop.png"
    write_image(src, np.ascontiguousarray(cat[70:110, 100:148]))
    for task in SR_TASKS:
        s = parse_task(task).scale
        out = tmp_path / task
        res = CliRunner().invoke(app, ["restore", str(src), "-o", str(out), "--task", task])
        assert res.exit_code == 0, res.output
        restored = read_image(out / f"cat_crop_{task}.png")
        assert restored.shape == (40 * s, 48 * s, 3)
        assert Image.open(out / f"cat_crop_{task}.png").text["resyn:task"] == task
