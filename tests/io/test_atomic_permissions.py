"""Atomic writes give files normal permissions, not mkstemp's private 0600."""

from __future__ import annotations

import os
import stat

from resyn.io import atomic_write_text


def test_new_files_follow_the_umask_and_existing_files_keep_their_mode(tmp_path):
    old = os.umask(0o022)
    try:
        p = atomic_write_text(tmp_path / "a.csv", "x\n")
        assert stat.S_IMODE(p.stat().st_mode) == 0o644
        os.chmod(p, 0o640)
        atomic_write_text(p, "y\n")
        assert stat.S_IMODE(p.stat().st_mode) == 0o640 and p.read_text() == "y\n"
    finally:
        os.umask(old)
