"""Every command's ``--help`` renders (help texts are rich markup: a stray ``[/...]`` crashes it)."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from resyn.cli.main import app

runner = CliRunner()


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [path]
    for name, sub in sorted(getattr(group, "commands", {}).items()):  # groups have commands
        out += _commands(sub, (*path, name))
    return out


COMMANDS = _commands(typer.main.get_command(app))


def test_every_command_is_listed():
    names = {" ".join(c) for c in COMMANDS}
    for expected in ("restore", "train", "eval", "complexity score", "dataset build", "report"):
        assert expected in names


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "resyn")
def test_help_renders(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert "Usage" in result.output
