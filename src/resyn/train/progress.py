"""The progress bar of ``resyn train``: Lightning's rich bar, labelled with what it counts."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar


class TrainProgressBar(RichProgressBar):
    """Counts micro-batches when gradients are accumulated, else iterations, and says so in
    place of Lightning's "Epoch N" (one epoch is the whole schedule here)."""

    def __init__(self, accumulate: int) -> None:
        super().__init__(leave=True)
        self.description = "train (micro-batches)" if accumulate > 1 else "train (iterations)"

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        if self.progress is not None and self.train_progress_bar_id is not None:
            self.progress.update(self.train_progress_bar_id, description=self.description)
