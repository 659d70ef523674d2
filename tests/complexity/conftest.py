"""Keep every complexity test away from the user's calibrated center."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_center(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RESYN_COMPLEXITY_CENTER_FILE", str(tmp_path / "no-center.json"))
