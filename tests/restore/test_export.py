"""``resyn export --format onnx``: ONNX Runtime reproduces PyTorch within 1e-4."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from resyn.cli.main import app

pytest.importorskip("onnx", reason="the onnx extra is not installed (pip install 'resyn[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

runner = CliRunner()


def _ort_run(path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"lq": x})[0]


def test_export_tiny_conv_dynamic(tmp_path, tiny_arch, make_tiny_conv) -> None:
    from resyn.models import save_model

    model = make_tiny_conv(2)
    w = tmp_path / "m.safetensors"
    save_model(model, w, info={"task": "sr-x2"})
    out = tmp_path / "m.onnx"
    res = runner.invoke(
        app, ["export", "--format", "onnx", "-w", str(w), "-o", str(out), "--size", "32"]
    )
    assert res.exit_code == 0, res.output
    assert "ONNX Runtime matches PyTorch" in " ".join(res.output.split())
    x = np.random.default_rng(0).random((1, 3, 21, 35), dtype=np.float32)  # a third size
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    got = _ort_run(out, x)
    assert got.shape == (1, 3, 42, 70)
    assert np.abs(got - ref).max() < 1e-4
    res = runner.invoke(app, ["export", "-w", str(w), "-o", str(out)])
    assert res.exit_code == 2 and "exists" in res.output


def test_export_refuses_bad_arguments(tmp_path) -> None:
    res = runner.invoke(app, ["export", "--format", "tflite", "-w", "x", "-o", str(tmp_path / "a")])
    assert res.exit_code == 2 and "onnx" in res.output
    res = runner.invoke(
        app, ["export", "-w", str(tmp_path / "nope.safetensors"), "-o", str(tmp_path / "a.onnx")]
    )
    assert res.exit_code == 2 and "not found" in res.output


class _ShapeConstant(torch.nn.Module):
    """Depends on H*W through Python ints, the way a traced graph can bake a size in."""

    def __init__(self) -> None:
        super().__init__()
        from types import SimpleNamespace

        self.config = SimpleNamespace(upscale=1, in_chans=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = int(x.shape[2]) * int(x.shape[3])
        return x * (1.0 / t) * 100


def test_size_dependent_graph_is_detected(tmp_path) -> None:
    from resyn.restore.export import ExportError, export_onnx

    with pytest.raises(ExportError, match=r"not size-independent|differs"):
        export_onnx(_ShapeConstant(), tmp_path / "bad.onnx", size=32)
    assert not (tmp_path / "bad.onnx").exists()
    report = export_onnx(_ShapeConstant(), tmp_path / "fixed.onnx", size=32, dynamic=False)
    assert report.max_abs_error < 1e-4 and (tmp_path / "fixed.onnx").exists()


def test_export_rwkvir_dynamic(tmp_path) -> None:
    """RWKV-IR (Bi-WKV in pure torch ops) exports with dynamic H/W and matches at 3 sizes."""
    pytest.importorskip("resyn.models.rwkvir", reason="rwkvir is not available")
    from resyn.models import build_model
    from resyn.restore.export import export_onnx

    torch.manual_seed(0)
    model = build_model("rwkvir-light", scale=2, embed_dim=8, depths=(1,)).eval()
    out = tmp_path / "rwkvir.onnx"
    report = export_onnx(model, out, size=32)
    assert report.dynamic and report.max_abs_error < 1e-4 and len(report.checked_sizes) == 2
    x = np.random.default_rng(2).random((1, 3, 20, 28), dtype=np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(_ort_run(out, x) - ref).max() < 1e-4
    # the model still trains afterwards: the autograd Function was put back
    y = model.train()(torch.rand(1, 3, 16, 16, requires_grad=True))
    y.mean().backward()
