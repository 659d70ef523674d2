"""``resyn eval``: bicubic against an independent PSNR/SSIM computation, inputs, bad input."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from PIL import Image
from scipy.signal import convolve2d
from typer.testing import CliRunner

from resyn.cli.main import app
from resyn.degrade import imresize

runner = CliRunner()


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = 128 + 60 * np.sin(xx / (3 + seed)) * np.cos(yy / 5) + 20 * np.sin((xx + yy) / 2)
    img = base[:, :, None] + rng.normal(0, 12 + 6 * seed, (h, w, 3)) + np.array([10, -5, 0])
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _save(path, arr) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _benchmark(root, scale: int = 4, n: int = 3, lr: bool = True):
    for i in range(n):
        hr = _photo(50 + 3 * i, 46 + 5 * i, i)  # not multiples of the scale: mod-crop matters
        _save(root / "HR" / f"img{i}.png", hr)
        if lr:
            h, w = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
            _save(
                root / "LR_bicubic" / f"X{scale}" / f"img{i}x{scale}.png",
                imresize(hr[:h, :w], 1 / scale),
            )
    return root


# ----- an independent implementation of the BasicSR/MATLAB metric conventions -----------------
def _y(img: np.ndarray) -> np.ndarray:
    f = img.astype(np.float64) / 255.0
    return 16.0 + 65.481 * f[..., 0] + 128.553 * f[..., 1] + 24.966 * f[..., 2]


def _ref_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(255.0**2 / np.mean((a - b) ** 2))


def _ref_ssim(a: np.ndarray, b: np.ndarray) -> float:
    x = np.arange(11) - 5
    g = np.exp(-(x**2) / (2 * 1.5**2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def filt(z):
        return convolve2d(z, win[::-1, ::-1], mode="valid")

    mu1, mu2 = filt(a), filt(b)
    s11, s22, s12 = filt(a * a) - mu1**2, filt(b * b) - mu2**2, filt(a * b) - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return float(m.mean())


def _rows(path) -> dict[str, dict[str, str]]:
    with open(path) as fh:
        return {r["name"]: r for r in csv.DictReader(fh)}


def test_bicubic_matches_independent_reference(tmp_path) -> None:
    data = _benchmark(tmp_path / "Set")
    hr_only = _benchmark(tmp_path / "HROnly", lr=False)
    out = tmp_path / "out"
    res = runner.invoke(
        app,
        [
            "eval",
            "--model",
            "bicubic",
            "--data",
            f"Set={data}",
            "--data",
            f"Gen={hr_only}",
            "--task",
            "sr-x4",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = _rows(out / "per_image" / "Set" / "Bicubic.csv")
    gen = _rows(out / "per_image" / "Gen" / "Bicubic.csv")
    assert set(rows) == {"img0.png", "img1.png", "img2.png"}
    psnrs, ssims = [], []
    for name, row in rows.items():
        hr = np.asarray(Image.open(data / "HR" / name))
        hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
        lr = np.asarray(Image.open(data / "LR_bicubic" / "X4" / name.replace(".png", "x4.png")))
        sr = imresize(lr, 4.0)
        ya, yb = _y(sr)[4:-4, 4:-4], _y(hr)[4:-4, 4:-4]
        p, s = _ref_psnr(ya, yb), _ref_ssim(ya, yb)
        assert abs(float(row["psnr_y"]) - p) < 1e-4
        assert abs(float(row["ssim_y"]) - s) < 1e-6
        rgb_a, rgb_b = sr[4:-4, 4:-4].astype(np.float64), hr[4:-4, 4:-4].astype(np.float64)
        assert abs(float(row["psnr"]) - _ref_psnr(rgb_a, rgb_b)) < 1e-4
        # HR-only folder: LR made by the same imresize gives the same numbers
        assert abs(float(gen[name]["psnr_y"]) - p) < 1e-4
        assert float(row["bpp"]) > 0 and math.isfinite(float(row["complexity"]))
        psnrs.append(p)
        ssims.append(s)
    summary = (out / "summary.md").read_text()
    assert f"{np.mean(psnrs):.2f} / {np.mean(ssims):.4f}" in summary
    assert "| Bicubic |" in summary and "PSNR-Y / SSIM-Y" in summary
    protocol = (out / "protocol.md").read_text()
    assert "Crop border: 4" in protocol and "imresize" in protocol and "tiling" in protocol
    with open(out / "summary.csv") as fh:
        summ = list(csv.DictReader(fh))
    assert {r["dataset"] for r in summ} == {"Set", "Gen"} and all(r["n"] == "3" for r in summ)


def test_weights_model_and_tiling_recorded(tmp_path, tiny_arch, make_tiny_conv) -> None:
    from resyn.models import save_model

    data = _benchmark(tmp_path / "Set", scale=2, n=2)
    w = tmp_path / "x2.safetensors"
    save_model(make_tiny_conv(2), w, info={"task": "sr-x2"})
    out = tmp_path / "out"
    res = runner.invoke(
        app,
        [
            "eval",
            "-m",
            "bicubic",
            "-m",
            f"Tiny={w}",
            "-d",
            str(data),
            "-t",
            "sr-x2",
            "-o",
            str(out),
            "--tile",
            "16",
            "--overlap",
            "4",
            "--save-images",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = _rows(out / "per_image" / "Set" / "Tiny.csv")
    assert len(rows) == 2 and all(math.isfinite(float(r["psnr_y"])) for r in rows.values())
    assert "tile=16 overlap=4" in (out / "protocol.md").read_text()
    assert "Self-ensemble: none" in (out / "protocol.md").read_text()
    assert (out / "images" / "Set" / "Tiny" / "img0.png").exists()
    # --ensemble: the '+' protocol, recorded
    plus = tmp_path / "plus"
    args = ["eval", "-m", f"Tiny+={w}", "-d", str(data), "-t", "sr-x2", "-o", str(plus)]
    res = runner.invoke(app, [*args, "--ensemble"])
    assert res.exit_code == 0, res.output
    protocol = (plus / "protocol.md").read_text()
    assert "Self-ensemble: x8" in protocol and "x8 self-ensemble" in protocol


def test_denoise_inputs_are_seeded(tmp_path) -> None:
    data = tmp_path / "Noise"
    for i in range(2):
        _save(data / f"c{i}.png", _photo(40, 40, i))
    outs = []
    for k in range(2):
        out = tmp_path / f"o{k}"
        res = runner.invoke(
            app, ["eval", "-m", "bicubic", "-d", str(data), "-t", "denoise-25", "-o", str(out)]
        )
        assert res.exit_code == 0, res.output
        outs.append(_rows(out / "per_image" / "Noise" / "denoise_input.csv"))
    for name in outs[0]:  # same seed, same noisy inputs
        assert outs[0][name]["psnr"] == outs[1][name]["psnr"]
        assert outs[0][name]["ssim"] == outs[1][name]["ssim"]
    p = float(outs[0]["c0.png"]["psnr"])
    assert 20.0 < p < 21.5  # sigma 25 noise, clipped to [0, 255]: about 20.2-20.6 dB


def test_broken_image_reported_and_skipped(tmp_path) -> None:
    data = _benchmark(tmp_path / "Set", n=2)
    (data / "HR" / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (data / "LR_bicubic" / "X4" / "zz_brokenx4.png").write_bytes(b"junk")
    out = tmp_path / "out"
    res = runner.invoke(
        app, ["eval", "-m", "bicubic", "-d", str(data), "-t", "sr-x4", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    summary = (out / "summary.md").read_text()
    assert "| Set | 3 | 2 | 1 |" in summary and "zz_broken.png" in summary
    assert len(_rows(out / "per_image" / "Set" / "Bicubic.csv")) == 2


class _Res:
    """A CLI result with the output's line wrapping (rich) undone."""

    def __init__(self, res) -> None:
        self.exit_code = res.exit_code
        self.output = " ".join(res.output.split())


def test_errors_before_work(tmp_path, tiny_arch, make_tiny_conv) -> None:
    from resyn.models import save_model

    data = _benchmark(tmp_path / "Set", n=2)
    out = tmp_path / "out"

    def run(*args):
        return _Res(runner.invoke(app, ["eval", *args, "-o", str(out)]))

    # HR/LR size disagreement
    _save(data / "LR_bicubic" / "X4" / "img1x4.png", np.zeros((5, 5, 3), np.uint8))
    res = run("-m", "bicubic", "-d", str(data), "-t", "sr-x4")
    assert res.exit_code == 2 and "sizes disagree" in res.output and "img1.png" in res.output
    # missing LR file
    (data / "LR_bicubic" / "X4" / "img1x4.png").unlink()
    res = run("-m", "bicubic", "-d", str(data), "-t", "sr-x4")
    assert res.exit_code == 2 and "no LR file" in res.output
    # no LR folder for the scale
    res = run("-m", "bicubic", "-d", str(data), "-t", "sr-x3")
    assert res.exit_code == 2 and "no X3 folder" in res.output
    # missing dataset folder
    res = run("-m", "bicubic", "-d", str(tmp_path / "nothing"), "-t", "sr-x4")
    assert res.exit_code == 2 and "folder not found" in res.output
    # model / task mismatch (on a good folder)
    data = _benchmark(tmp_path / "Good", n=2)
    w2 = tmp_path / "x2.safetensors"
    save_model(make_tiny_conv(2), w2, info={"task": "sr-x2"})
    res = run("-m", str(w2), "-d", str(data), "-t", "sr-x4")
    assert res.exit_code == 2 and "x2 model" in res.output
    w1 = tmp_path / "dn.safetensors"
    save_model(make_tiny_conv(1, in_chans=3), w1, info={"task": "denoise-gray-25"})
    res = run("-m", str(w1), "-d", str(data / "HR"), "-t", "denoise-gray-25")
    assert res.exit_code == 2 and "color" in res.output
    # unrecognised checkpoints
    pth = tmp_path / "model.pth"
    pth.write_bytes(b"pickle")
    res = run("-m", str(pth), "-d", str(data), "-t", "sr-x4")
    assert res.exit_code == 2 and "swinir:" in res.output
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"junk")
    res = run("-m", str(junk), "-d", str(data), "-t", "sr-x4")
    assert res.exit_code == 2 and "unrecognised checkpoint" in res.output
    res = run("-m", "nosuchmodel", "-d", str(data), "-t", "sr-x4")
    assert res.exit_code == 2 and "bicubic" in res.output
    res = run("-m", "bicubic", "-d", str(data), "-t", "sr-huge")
    assert res.exit_code == 2 and "unknown task" in res.output
    assert not out.exists()


@pytest.mark.parametrize("spec", ["swinir", "mambair"])
def test_official_checkpoint_missing_file(tmp_path, spec) -> None:
    data = _benchmark(tmp_path / "Set", n=1)
    res = runner.invoke(
        app,
        [
            "eval",
            "-m",
            f"{spec}:{tmp_path / 'none.pth'}",
            "-d",
            str(data),
            "-o",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 2 and "checkpoint not found" in res.output


def test_official_swinir_checkpoint(tmp_path) -> None:
    """``swinir:PATH`` loads a (tiny) checkpoint in the official layout and is evaluated."""
    import torch

    from resyn.models import build_model

    model = build_model(
        "swinir-light",
        scale=2,
        embed_dim=12,
        depths=(1,),
        num_heads=(2,),
        window_size=4,
        img_size=16,
    ).eval()
    ckpt = tmp_path / "swinir_tiny_x2.pth"
    torch.save({"params": model.state_dict()}, ckpt)
    data = _benchmark(tmp_path / "Set", scale=2, n=1)
    out = tmp_path / "out"
    res = runner.invoke(
        app, ["eval", "-m", f"swinir:{ckpt}", "-d", str(data), "-t", "sr-x2", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    rows = _rows(out / "per_image" / "Set" / "swinir_swinir_tiny_x2.csv")
    assert math.isfinite(float(rows["img0.png"]["psnr_y"]))
    res = runner.invoke(
        app, ["eval", "-m", f"mambair:{ckpt}", "-d", str(data), "-t", "sr-x2", "-o", str(out)]
    )
    assert res.exit_code == 2 and "swinir" in " ".join(res.output.split()).lower()
    res = runner.invoke(
        app, ["eval", "-m", f"swinir:{ckpt}", "-d", str(data / "HR"), "-t", "sr-x4", "-o", str(out)]
    )
    assert res.exit_code == 2 and "x2 model cannot be evaluated on sr-x4" in " ".join(
        res.output.split()
    )


def test_gray_and_jpeg_tasks(tmp_path, tiny_arch, make_tiny_conv) -> None:
    from resyn.models import save_model

    data = tmp_path / "Gray"
    for i in range(2):
        _save(data / f"c{i}.png", _photo(36, 36, i))
    w = tmp_path / "gray_dn.safetensors"
    save_model(make_tiny_conv(1, in_chans=1), w, info={"task": "denoise-gray-25"})
    out = tmp_path / "o"
    res = runner.invoke(
        app,
        [
            "eval",
            "-m",
            "bicubic",
            "-m",
            f"G={w}",
            "-d",
            str(data),
            "-t",
            "denoise-gray-25",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = _rows(out / "per_image" / "Gray" / "G.csv")
    assert all(r["psnr"] == r["psnr_y"] for r in rows.values())  # one channel: Y is the image
    res = runner.invoke(
        app, ["eval", "-m", "bicubic", "-d", str(data), "-t", "jpeg-q10", "-o", str(out / "j")]
    )
    assert res.exit_code == 0, res.output
    rows = _rows(out / "j" / "per_image" / "Gray" / "jpeg_input.csv")
    assert all(20 < float(r["psnr"]) < 40 for r in rows.values())
    assert "PSNR / SSIM" in (out / "j" / "summary.md").read_text()


def test_precision_choices_and_the_resolved_precision_in_the_protocol(
    tmp_path, tiny_arch, make_tiny_conv, monkeypatch
) -> None:
    from resyn import precision
    from resyn.models import save_model

    data = _benchmark(tmp_path / "Set", scale=2, n=1)
    w = tmp_path / "x2.safetensors"
    save_model(make_tiny_conv(2), w, info={"task": "sr-x2"})
    args = ["eval", "-m", f"Tiny={w}", "-d", str(data), "-t", "sr-x2"]
    res = runner.invoke(app, [*args, "-o", str(tmp_path / "bad"), "--precision", "half"])
    assert res.exit_code == 2
    assert "error: --precision must be one of auto, fp32, bf16, not 'half'" in res.output
    res = runner.invoke(app, [*args, "-o", str(tmp_path / "default")])
    assert res.exit_code == 0, res.output
    assert "precision fp32." in (tmp_path / "default" / "protocol.md").read_text()
    monkeypatch.setattr(precision, "read_cpu_flags", lambda: frozenset({"amx_bf16"}))
    res = runner.invoke(app, [*args, "-o", str(tmp_path / "auto"), "--precision", "auto"])
    assert res.exit_code == 0, res.output
    assert "precision auto -> bf16." in (tmp_path / "auto" / "protocol.md").read_text()
