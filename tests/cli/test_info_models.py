"""`resyn info` and `resyn models` through the real command line."""

from __future__ import annotations

from typer.testing import CliRunner

from resyn.cli.main import app

runner = CliRunner()


def test_info_reports_versions_and_device():
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    for key in ("resyn", "torch", "device", "threads", "bi_wkv backends"):
        assert key in result.output


def test_models_lists_presets_with_sizes():
    result = runner.invoke(app, ["models", "--no-flops"])
    assert result.exit_code == 0, result.output
    assert "rwkvir-light" in result.output and "859,356" in result.output
    assert "rwkvir-restore" in result.output
