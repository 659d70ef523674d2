"""InferenceOptions: validated once, named in errors, shared by restore, the API and eval."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from resyn.errors import ResynError
from resyn.restore.options import MIN_TILE, InferenceOptions, OptionsError


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("precision", "fp16", "precision must be one of auto, fp32, bf16, not 'fp16'"),
        ("tile", MIN_TILE - 1, f"tile must be 0 (no tiling) or at least {MIN_TILE}"),
        ("overlap", -1, "overlap must be >= 0, not -1"),
        ("max_memory", 0, "max_memory must be a positive size"),
        ("device", "toaster", "device 'toaster' is not a device"),
    ],
)
def test_each_bad_option_is_named(field: str, value: object, words: str) -> None:
    with pytest.raises(OptionsError, match=re.escape(words)) as info:
        InferenceOptions(**{field: value})
    assert info.value.option == field
    assert isinstance(info.value, ValueError) and isinstance(info.value, ResynError)


def test_valid_options_and_replacement() -> None:
    base = InferenceOptions(tile=MIN_TILE, overlap=0, max_memory=None, precision="bf16")
    assert InferenceOptions(tile=0).tile == 0 and InferenceOptions().tile is None
    changed = InferenceOptions.of(base, tile=0, ensemble=True)
    assert (changed.tile, changed.ensemble, changed.precision) == (0, True, "bf16")
    assert InferenceOptions.of(base) is base
    assert InferenceOptions.of(None, seed=3) == InferenceOptions(seed=3)
    with pytest.raises(TypeError, match=r"unknown inference option.*tiles"):
        InferenceOptions.of(base, tiles=32)
    with pytest.raises(OptionsError, match="tile"):
        InferenceOptions.of(base, tile=2)  # replacing validates again
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.tile = 32  # type: ignore[misc]


def test_precision_policy() -> None:
    assert InferenceOptions(precision="fp32").precision_policy() == "fp32"
    resolved = InferenceOptions(precision="auto").resolved_precision()
    assert resolved in ("fp32", "bf16")
    assert InferenceOptions(precision="auto").precision_policy() == f"auto -> {resolved}"


def test_engine_takes_options_or_fields(make_tiny_conv) -> None:
    from resyn.restore.engine import run_model

    model = make_tiny_conv(2)
    img = np.random.default_rng(0).random((40, 36, 3), dtype=np.float32)
    a, info_a = run_model(model, img, InferenceOptions(tile=24, overlap=4))
    b, info_b = run_model(model, img, tile=24, overlap=4)
    c, _ = run_model(model, img, InferenceOptions(tile=0), tile=24, overlap=4)
    assert np.array_equal(a, b) and np.array_equal(a, c) and info_a == info_b
    assert info_a.tile == 24 and info_a.tiles > 1


def test_cli_tile_limit_is_the_engines(tmp_path, weights) -> None:
    from resyn.cli.main import app

    src = tmp_path / "in.png"
    from resyn.io import write_image

    write_image(src, np.zeros((20, 20, 3), np.uint8))
    for command in (
        ["restore", str(src), "-o", str(tmp_path / "o"), "-w", str(weights)],
        ["eval", "-m", "bicubic", "-d", str(tmp_path), "-t", "sr-x2", "-o", str(tmp_path / "e")],
    ):
        res = CliRunner().invoke(app, [*command, "--tile", str(MIN_TILE - 1)])
        assert res.exit_code == 2, res.output
        assert f"--tile must be 0 (no tiling) or at least {MIN_TILE}, not {MIN_TILE - 1}" in (
            res.output
        )
