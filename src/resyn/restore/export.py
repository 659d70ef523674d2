"""ONNX export of resyn models, verified with ONNX Runtime.

``export_onnx`` traces the model with the TorchScript-based exporter (``dynamo=False``), marks
height and width as dynamic axes, and then checks the exported graph with ONNX Runtime at the
tracing size and at a second, different size: if the graph baked a shape-dependent constant in
(RWKV-IR's decay is divided by the token count T = H*W), the second check fails and the export
is rejected (use ``dynamic=False`` for a fixed-size model).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from resyn.errors import ResynError
from resyn.io.atomic import atomic_path
from resyn.models.descriptor import describe

TOLERANCE = 1e-4


class ExportError(ResynError, RuntimeError):
    """Export failed or the exported graph does not reproduce PyTorch."""


@dataclass(frozen=True)
class ExportReport:
    path: Path
    opset: int
    dynamic: bool
    checked_sizes: tuple[tuple[int, int], ...]
    max_abs_error: float

    def describe(self) -> str:
        sizes = ", ".join(f"{w}x{h}" for h, w in self.checked_sizes)
        axes = "dynamic height/width" if self.dynamic else "fixed input size"
        return (
            f"wrote {self.path} (opset {self.opset}, {axes}); ONNX Runtime matches PyTorch at "
            f"{sizes}: max |difference| {self.max_abs_error:.2e} (tolerance {TOLERANCE:g})"
        )


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    opset: int = 17,
    size: int = 64,
    dynamic: bool = True,
    check: bool = True,
) -> ExportReport:
    """Write ``model`` as ONNX (input ``lq`` (N, C, H, W) in [0, 1] -> output ``hq``)."""
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        raise ExportError(
            f"ONNX export needs the onnx package: pip install 'resyn[onnx]' ({exc})"
        ) from None
    if size < 1:
        raise ExportError(f"the tracing size must be a positive number of pixels, not {size}")
    model = model.cpu().eval()
    chans = describe(model).in_channels
    gen = torch.Generator().manual_seed(0)
    example = torch.rand(1, chans, size, size, generator=gen)
    dynamic_axes = (
        {
            "lq": {0: "batch", 2: "height", 3: "width"},
            "hq": {0: "batch", 2: "out_height", 3: "out_width"},
        }
        if dynamic
        else None
    )
    target = Path(path)
    try:
        with atomic_path(target) as tmp:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    torch.onnx.export(
                        model,
                        (example,),
                        str(tmp),
                        input_names=["lq"],
                        output_names=["hq"],
                        dynamic_axes=dynamic_axes,
                        opset_version=opset,
                        do_constant_folding=True,
                        dynamo=False,
                    )
            except Exception as exc:  # the exporter raises many types; name the failing op
                raise ExportError(f"ONNX export failed: {type(exc).__name__}: {exc}") from None
            sizes: list[tuple[int, int]] = [(size, size)]
            if dynamic:
                # odd sizes: a graph that baked T = H*W (or its remainder modulo a block) fails
                sizes.append((size + 7, size - 5 if size > 20 else size + 3))
            max_err = verify_onnx(model, tmp, sizes) if check else float("nan")
    except OSError as exc:  # a missing, unwritable or occupied place for the file
        raise ExportError(f"cannot write {target}: {exc.strerror or exc}") from None
    return ExportReport(target, opset, dynamic, tuple(sizes), max_err)


def verify_onnx(
    model: nn.Module, onnx_path: str | os.PathLike[str], sizes: list[tuple[int, int]]
) -> float:
    """Max |ONNX Runtime - PyTorch| over random inputs of ``sizes``; ExportError above 1e-4."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ExportError(
            f"checking the export needs onnxruntime: pip install 'resyn[onnx]' ({exc})"
        ) from None
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    descriptor = describe(model)
    chans, scale = descriptor.in_channels, descriptor.scale
    gen = torch.Generator().manual_seed(1)
    worst = 0.0
    for h, w in sizes:
        x = torch.rand(1, chans, h, w, generator=gen)
        with torch.inference_mode():
            ref = model(x).numpy()
        try:
            (got,) = session.run(["hq"], {"lq": x.numpy()})
        except Exception as exc:
            raise ExportError(
                f"ONNX Runtime could not run the exported graph at {w}x{h}: {exc}"
            ) from None
        if got.shape != (1, chans, h * scale, w * scale):
            raise ExportError(f"ONNX output has shape {got.shape} at input {w}x{h}")
        err = float(np.max(np.abs(got - ref)))
        if not err <= TOLERANCE:
            raise ExportError(
                f"ONNX Runtime differs from PyTorch by {err:.3g} (> {TOLERANCE:g}) at input "
                f"{w}x{h}; if this is not the tracing size the graph is not size-independent: "
                "export with --static"
            )
        worst = max(worst, err)
    return worst
