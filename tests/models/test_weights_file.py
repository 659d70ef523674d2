"""Weights files are untrusted input (issue 15): tampered metadata is a ``WeightsFileError``
naming the file and the key, and a config that asks for more than the file holds is refused
before any model is built."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from resyn.cli.main import app
from resyn.models import build_model, load_model, read_metadata, save_model
from resyn.models.weights import WeightsFileError

runner = CliRunner()


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A small real RWKV-IR x2 (one block of depth 1, width 8), saved by save_model."""
    model = build_model("rwkvir-light", scale=2, embed_dim=8, depths=(1,))
    path = tmp_path_factory.mktemp("w") / "good.safetensors"
    return save_model(model, path, info={"task": "sr-x2"})


def _tampered(good: Path, out: Path, **changes: str | None) -> Path:
    """``good`` with metadata keys replaced (``None`` removes the key); tensors unchanged."""
    with safe_open(str(good), framework="pt") as fh:
        meta = dict(fh.metadata())
    for key, value in changes.items():
        key = key.replace("_", ".")
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    save_file(load_file(str(good)), str(out), metadata=meta)
    return out


def _config(good: Path, **values: object) -> str:
    with safe_open(str(good), framework="pt") as fh:
        config = json.loads(fh.metadata()["resyn.config"])
    config.update(values)
    return json.dumps(config)


def _import_meta_kernels() -> None:
    """PyTorch imports its meta-device kernels (tens of MB, once per process) on first use:
    done before measuring, so that the measure is what refusing a file costs."""
    import torch

    with torch.device("meta"):
        torch.arange(3, dtype=torch.float64)


# (metadata changes, what the message must say besides the file's name)
TAMPERED = {
    "config-list": ({"resyn_config": "[1, 2]"}, "resyn.config must be a JSON object, not list"),
    "config-null": ({"resyn_config": "null"}, "resyn.config must be a JSON object"),
    "config-string": ({"resyn_config": '"big"'}, "resyn.config must be a JSON object, not str"),
    "config-not-json": ({"resyn_config": "{embed_dim: 8"}, "resyn.config is not valid JSON"),
    "info-list": ({"resyn_info": "[]"}, "resyn.info must be a JSON object, not list"),
    "info-not-json": ({"resyn_info": "nope"}, "resyn.info is not valid JSON"),
    "arch-unknown": ({"resyn_arch": "resnet"}, "resyn.arch: unknown architecture 'resnet'"),
    "format": ({"resyn_format": "9"}, "resyn.format is '9', expected 1"),
}
BAD_VALUES = {
    "embed_dim-string": ({"embed_dim": "big"}, "embed_dim must be an integer, not 'big'"),
    "depths-string": ({"depths": "abc"}, "depths must be a list of integers, not 'abc'"),
    "depths-items": ({"depths": [1, None]}, "depths must be a list of integers"),
    "hidden_rate-nan": ({"hidden_rate": float("nan")}, "hidden_rate must be a finite number"),
    "key_norm-int": ({"key_norm": 1}, "key_norm must be true or false, not 1"),
    "unknown-key": ({"window": 8}, "unknown option(s) for rwkvir: window"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED), ids=str)
def test_tampered_metadata_is_named(good, tmp_path, case) -> None:
    changes, message = TAMPERED[case]
    bad = _tampered(good, tmp_path / "bad.safetensors", **changes)
    for call in (read_metadata, load_model):
        with pytest.raises(WeightsFileError) as info:
            call(bad)
        assert str(bad) in str(info.value) and message in str(info.value)


@pytest.mark.parametrize("case", sorted(BAD_VALUES), ids=str)
def test_mistyped_config_values_are_named(good, tmp_path, case) -> None:
    values, message = BAD_VALUES[case]
    bad = _tampered(good, tmp_path / "bad.safetensors", resyn_config=_config(good, **values))
    for call in (read_metadata, load_model):
        with pytest.raises(WeightsFileError) as info:
            call(bad)
        text = str(info.value)
        assert text.startswith(f"{bad}: resyn.config: ") and message in text, text


def test_a_config_larger_than_the_file_is_refused_before_building(good, tmp_path) -> None:
    bad = _tampered(good, tmp_path / "bad.safetensors", resyn_config=_config(good, depths=[100000]))
    _import_meta_kernels()
    tracemalloc.start()
    try:
        with pytest.raises(WeightsFileError, match=r"more than .* tensors; the file holds"):
            load_model(bad)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, f"{peak / 2**20:.0f} MiB traced while refusing the file"


def test_a_config_that_disagrees_with_the_tensor_shapes_is_refused(good, tmp_path) -> None:
    wide = _tampered(good, tmp_path / "wide.safetensors", resyn_config=_config(good, embed_dim=16))
    with pytest.raises(WeightsFileError, match=r"does not match the file's tensors: .* has shape"):
        load_model(wide)
    deep = _tampered(good, tmp_path / "deep.safetensors", resyn_config=_config(good, depths=[2]))
    with pytest.raises(WeightsFileError, match=r"not in the file: layers\.0\."):
        load_model(deep)


@pytest.mark.parametrize(
    "values",
    [{"shift_kernel": 0}, {"upsampler": "pixelshuffle", "num_feat": -1}],
    ids=["ValueError", "RuntimeError"],
)
def test_a_config_the_architecture_rejects_is_named(good, tmp_path, values) -> None:
    bad = _tampered(good, tmp_path / "bad.safetensors", resyn_config=_config(good, **values))
    with pytest.raises(WeightsFileError, match=r"resyn\.config does not describe a rwkvir model"):
        load_model(bad)


def test_model_overrides_are_checked_by_name() -> None:
    with pytest.raises(ValueError, match="option embed_dim must be an integer, not 'abc'"):
        build_model("rwkvir-light", embed_dim="abc")
    with pytest.raises(ValueError, match="option depths must be a list of integers"):
        build_model("rwkvir-light", depths="abc")


@pytest.mark.parametrize("command", ["restore", "export"])
@pytest.mark.parametrize("case", ["config-list", "embed_dim-string", "depths-huge"])
def test_cli_reports_tampered_weights_in_one_line(good, tmp_path, command, case) -> None:
    from resyn.io import write_image

    if case == "depths-huge":
        config = _config(good, depths=[100000])
    elif case in TAMPERED:
        config = TAMPERED[case][0]["resyn_config"]
    else:
        config = _config(good, **BAD_VALUES[case][0])
    bad = _tampered(good, tmp_path / "bad.safetensors", resyn_config=config)
    if command == "restore":
        import numpy as np

        write_image(tmp_path / "x.png", np.zeros((8, 8, 3), np.uint8))
        args = ["restore", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "-w", str(bad)]
    else:
        args = ["export", "-w", str(bad), "-o", str(tmp_path / "m.onnx")]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, f"{res.output}\n{res.exception!r}"
    assert "Traceback" not in res.output
    line = next(x for x in res.output.splitlines() if x.startswith("error:"))
    assert str(bad) in line and "resyn.config" in line, res.output


def test_an_official_kind_with_a_file_that_is_not_a_checkpoint(tmp_path) -> None:
    from resyn.models.official import load_official

    fake = tmp_path / "fake.safetensors"  # torch.load reads a .safetensors name as safetensors
    fake.write_bytes(b"garbage")
    for kind in ("swinir", "mambair"):
        with pytest.raises(ValueError, match=r"fake\.safetensors is not a loadable PyTorch"):
            load_official(kind, fake)


def test_an_official_checkpoint_naming_a_huge_block_is_refused_before_building(tmp_path) -> None:
    import torch

    from resyn.models.official import load_official

    small = build_model("swinir-light", scale=2, embed_dim=12, depths=(2,), num_heads=(2,))
    state = dict(small.state_dict())
    state["layers.0.residual_group.blocks.99999.norm1.weight"] = torch.ones(12)
    torch.save({"params": state}, tmp_path / "bomb.pth")
    _import_meta_kernels()
    tracemalloc.start()
    try:
        with pytest.raises(WeightsFileError, match="checkpoint's tensor names describes a model"):
            load_official("swinir", tmp_path / "bomb.pth")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, f"{peak / 2**20:.0f} MiB traced while refusing the file"


# --- fuzz: any metadata is a loaded model or a WeightsFileError naming the file -------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**7), 10**7)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
_CONFIG_KEYS = [
    "upscale",
    "in_chans",
    "embed_dim",
    "depths",
    "hidden_rate",
    "upsampler",
    "num_feat",
    "shift_kernel",
    "shift_norm",
    "key_norm",
    "global_skip",
    "img_range",
    "not_a_key",
]


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _loads_or_names_the_file(path: Path) -> None:
    try:
        load_model(path)
    except WeightsFileError as exc:
        assert str(path) in str(exc)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.dictionaries(st.sampled_from(_CONFIG_KEYS), _JSON, min_size=1, max_size=3))
def test_fuzz_config_values(good, fuzz_dir, values) -> None:
    _import_meta_kernels()
    path = _tampered(good, fuzz_dir / "f.safetensors", resyn_config=_config(good, **values))
    tracemalloc.start()
    try:
        _loads_or_names_the_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, f"{peak / 2**20:.0f} MiB traced for {values!r}"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    key=st.sampled_from(["resyn_config", "resyn_info", "resyn_arch", "resyn_preset"]),
    text=st.text(max_size=40) | _JSON.map(json.dumps),
)
def test_fuzz_metadata_text(good, fuzz_dir, key, text) -> None:
    path = _tampered(good, fuzz_dir / "g.safetensors", **{key: text})
    _loads_or_names_the_file(path)
