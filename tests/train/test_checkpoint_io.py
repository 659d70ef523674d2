"""Checkpoints are written atomically: a crash mid-write keeps the previous checkpoint."""

from __future__ import annotations

import pytest
import torch

from resyn.train.loop import AtomicCheckpointIO


def test_interrupted_save_keeps_previous(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 4}, path)
    real_save = torch.save

    def dying_save(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"half a checkpo")
        raise KeyboardInterrupt  # the job is killed while writing

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"global_step": 8}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(path, weights_only=False)["global_step"] == 4
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
