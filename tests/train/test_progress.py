"""The training progress bar says what it counts, through Lightning's public hooks only."""

from __future__ import annotations

import types

from resyn.train.progress import TrainProgressBar


def test_label_says_what_is_counted() -> None:
    assert TrainProgressBar(1).description == "train (iterations)"
    assert TrainProgressBar(4).description == "train (micro-batches)"


def test_the_label_replaces_the_epoch_description(monkeypatch) -> None:
    bar = TrainProgressBar(2)
    updates: list[dict] = []
    from lightning.pytorch.callbacks import RichProgressBar

    def started(self, trainer, pl_module) -> None:  # what Lightning's hook leaves behind
        self.train_progress_bar_id = 7

    monkeypatch.setattr(RichProgressBar, "on_train_epoch_start", started)
    bar.progress = types.SimpleNamespace(  # type: ignore[assignment]
        update=lambda task, **kw: updates.append({"task": task, **kw})
    )
    bar.on_train_epoch_start(None, None)  # type: ignore[arg-type]
    assert updates == [{"task": 7, "description": "train (micro-batches)"}]
