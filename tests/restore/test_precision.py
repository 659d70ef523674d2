"""``--precision auto | fp32 | bf16``: how ``auto`` resolves, and what runs and is recorded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from resyn import precision as prec
from resyn.restore.engine import psnr_float, run_model

AVX512_BF16 = frozenset({"fpu", "avx2", "avx512f", "avx512_bf16"})
AMX = frozenset({"fpu", "avx2", "avx512f", "amx_tile", "amx_bf16"})
AVX2_ONLY = frozenset({"fpu", "sse4_2", "avx2", "fma"})


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = 0.5 + 0.3 * np.sin(6 * xx + 3 * yy)[:, :, None]
    return np.clip(base + 0.05 * rng.standard_normal((h, w, 3)), 0, 1).astype(np.float32)


@pytest.mark.parametrize(
    ("flags", "expected", "named"),
    [(AVX512_BF16, "bf16", "avx512_bf16"), (AMX, "bf16", "amx_bf16"), (AVX2_ONLY, "fp32", None)],
)
def test_auto_resolves_from_the_cpu_flags(flags, expected, named) -> None:
    native, reason = prec.cpu_bf16_native(lambda: flags)
    assert native == (expected == "bf16")
    if named:
        assert named in reason
    else:
        assert "avx512_bf16" in reason and "amx_bf16" in reason and "emulated" in reason
    assert prec.resolve_precision("auto", "cpu", read_flags=lambda: flags) == expected
    resolved, why = prec.auto_precision("cpu", read_flags=lambda: flags)
    assert (resolved, why) == (expected, reason)


def test_explicit_precisions_are_kept_and_bad_ones_refused() -> None:
    never = lambda: pytest.fail("explicit precisions must not look at the CPU")  # noqa: E731
    assert prec.resolve_precision("fp32", "cpu", read_flags=never) == "fp32"
    assert prec.resolve_precision("bf16", "cpu", read_flags=never) == "bf16"
    with pytest.raises(ValueError, match=r"auto, fp32, bf16, not 'fp16'"):
        prec.resolve_precision("fp16", "cpu")


def test_unknown_flags_fall_back_to_torch_then_to_fp32(monkeypatch) -> None:
    monkeypatch.setattr(prec, "_torch_cpu_bf16", lambda: (True, "CPU has AMX (torch.cpu)"))
    assert prec.cpu_bf16_native(lambda: None) == (True, "CPU has AMX (torch.cpu)")
    monkeypatch.setattr(prec, "_torch_cpu_bf16", lambda: None)
    native, reason = prec.cpu_bf16_native(lambda: None)
    assert not native and "unknown" in reason
    assert prec.resolve_precision("auto", "cpu", read_flags=lambda: None) == "fp32"


def test_read_cpu_flags_parses_proc_cpuinfo(tmp_path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 avx512_bf16\n\n"
        "processor\t: 1\nflags\t\t: fpu\n"
    )
    assert prec.read_cpu_flags(info) == {"fpu", "avx2", "avx512_bf16"}
    (tmp_path / "arm").write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert prec.read_cpu_flags(tmp_path / "arm") is None
    assert prec.read_cpu_flags(tmp_path / "missing") is None


def test_auto_on_cuda_without_a_gpu_is_fp32(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert prec.auto_precision("cuda")[0] == "fp32"


def test_describe_precision() -> None:
    assert prec.describe_precision("fp32", "fp32") == "fp32"
    assert prec.describe_precision("auto", "bf16") == "auto -> bf16"
    line = prec.precision_line("auto", "cpu")
    assert line.startswith(("auto -> bf16: ", "auto -> fp32: "))


@pytest.mark.parametrize("flags", [AVX512_BF16, AVX2_ONLY])
def test_run_model_resolves_auto_and_reports_it(make_tiny_conv, monkeypatch, flags) -> None:
    monkeypatch.setattr(prec, "read_cpu_flags", lambda: flags)
    expected = "bf16" if "avx512_bf16" in flags else "fp32"
    model = make_tiny_conv(2)
    img = _image(24, 20)
    out, info = run_model(model, img, tile=0, precision="auto")
    assert info.precision == expected
    same, _ = run_model(model, img, tile=0, precision=expected)
    np.testing.assert_array_equal(out, same)
    _, info32 = run_model(model, img, tile=0)
    assert info32.precision == "fp32"


def test_bf16_on_cpu_runs_and_stays_close_to_fp32_on_a_tiny_rwkvir() -> None:
    """bf16 autocast through the whole RWKV-IR stack (DC-Shift, Bi-WKV, LayerNorms, head):
    finite, no fp32 fallback, and close to the fp32 output (a random init, so the bound is
    loose; the shipped weights are compared in docs/restore.md)."""
    from resyn.models import build_model

    model = build_model("rwkvir-light", scale=2, embed_dim=16, depths=(2, 2)).eval()
    img = _image(40, 36)
    ref, info32 = run_model(model, img, tile=0, precision="fp32")
    out, info16 = run_model(model, img, tile=0, precision="bf16")
    assert info16.precision == "bf16" and info16.fp32_fallbacks == 0
    assert np.isfinite(out).all()
    assert psnr_float(np.clip(out, 0, 1), np.clip(ref, 0, 1)) > 40
    assert not np.array_equal(out, ref)  # bf16 really ran


def test_restore_api_accepts_auto(make_tiny_conv, monkeypatch) -> None:
    from resyn.restore import Restorer, restore_array

    monkeypatch.setattr(prec, "read_cpu_flags", lambda: AVX512_BF16)
    restorer = Restorer.from_model(make_tiny_conv(2), "sr-x2")
    img = (np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)
    out, info = restore_array(restorer, img, tile=0, precision="auto")
    assert out.shape == (40, 48, 3) and info.precision == "bf16"
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16"):
        restore_array(restorer, img, precision="half")


def test_bf16_policy_keeps_conv_first_and_the_residual_stream_in_float32() -> None:
    """Under bf16 the engine runs ``conv_first`` in float32 (so ``x + f(x)`` sums stay float32)
    while the other convolutions run in bf16, and it leaves the model as it found it."""
    from resyn.models import build_model

    model = build_model("rwkvir-light", scale=2, embed_dim=16, depths=(1,)).eval()
    seen: dict[str, torch.dtype] = {}

    def record(name: str):
        def hook(_module, _inputs, out) -> None:  # returns None: the output is kept
            seen.setdefault(name, out.dtype)

        return hook

    for name in ("conv_first", "conv_after_body"):
        getattr(model, name).register_forward_hook(record(name))
    _, info = run_model(model, _image(24, 24), tile=0, precision="bf16")
    assert info.precision == "bf16"
    assert seen == {"conv_first": torch.float32, "conv_after_body": torch.bfloat16}
    assert "forward" not in vars(model.conv_first)  # the class's forward again
    with torch.inference_mode():
        assert model(torch.rand(1, 3, 16, 16)).dtype == torch.float32
