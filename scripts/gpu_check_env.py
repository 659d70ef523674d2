"""Pre-flight for scripts/gpu_train.sh on the device, in a few seconds: every module resyn train
needs imports (all missing ones named at once), and the Bi-WKV backend that will run is checked
against the pure-PyTorch path on a small forward and backward (``--cpu``: modules only). Prints ``RESYN_BI_WKV=torch``
on its last line when the compiled path fails or disagrees (the script then trains on the pure
path), else ``RESYN_BI_WKV=auto``. Exit code 1 when something training needs is missing."""

from __future__ import annotations

import importlib
import os
import sys

NEEDED = (
    "torch",
    "lightning",
    "numpy",
    "cv2",
    "PIL",
    "yaml",
    "pydantic",
    "safetensors",
    "typer",
    "rich",
    "skimage",
    "scipy",
)


def main() -> int:
    cpu = "--cpu" in sys.argv[1:]  # the CPU test of gpu_train.sh: modules only
    missing = []
    for name in NEEDED:
        try:
            importlib.import_module(name)
        except Exception as exc:
            missing.append(f"{name} ({type(exc).__name__}: {exc})")
    board = [m for m in ("tensorboardX", "tensorboard") if importlib.util.find_spec(m)]
    if not board:
        missing.append("tensorboardX or tensorboard (Lightning's TensorBoardLogger)")
    if missing:
        print("missing: " + "; ".join(missing))
        return 1
    import torch

    if cpu:
        print(f"torch {torch.__version__} (CPU test: no CUDA check)\nRESYN_BI_WKV=auto")
        return 0
    if not torch.cuda.is_available():
        print("no CUDA device visible to torch")
        return 1
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}; tensorboard: {board}")
    from resyn.models import build_model

    torch.manual_seed(0)
    model = build_model("rwkvir-light", scale=2, global_skip="bicubic").cuda()
    x = torch.rand(2, 3, 40, 48, device="cuda")
    grads = {}
    for backend in ("auto", "torch"):
        os.environ["RESYN_BI_WKV"] = backend
        model.zero_grad()
        try:
            y = model(x)
            y.square().mean().backward()
            grads[backend] = (
                y.detach(),
                [
                    torch.zeros_like(p) if p.grad is None else p.grad.clone()
                    for p in model.parameters()
                ],
            )
        except Exception as exc:
            print(f"Bi-WKV backend {backend} failed on CUDA: {type(exc).__name__}: {exc}")
    choice = "auto"
    if "auto" not in grads:
        choice = "torch"
    elif "torch" in grads:
        (ya, ga), (yt, gt) = grads["auto"], grads["torch"]
        dy = float((ya - yt).abs().max())
        dg = max(
            float((a - b).abs().max() / (b.abs().max() + 1e-12))
            for a, b in zip(ga, gt, strict=True)
        )
        print(f"compiled vs pure Bi-WKV on CUDA: output max diff {dy:.2e}, gradient rel {dg:.2e}")
        if not (dy < 1e-3 and dg < 1e-2):
            choice = "torch"
    print(f"RESYN_BI_WKV={choice}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
