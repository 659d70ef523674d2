"""The training data of a run as a ``LightningDataModule``: the patch dataset, and a sampler
that starts at the trainer's step (so a resumed run continues the exact sample sequence)."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from resyn.train.config import TrainConfig
from resyn.train.data import StepSampler, TrainSet


class StandardDataModule(L.LightningDataModule):
    """``per_device`` samples per micro-batch, ``accumulate`` micro-batches per iteration on
    each of the trainer's ranks; ``config.batch`` is their product over the world."""

    def __init__(
        self,
        dataset: TrainSet,
        config: TrainConfig,
        *,
        per_device: int,
        accumulate: int,
        pin_memory: bool,
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.config = config
        self.per_device = per_device
        self.accumulate = accumulate
        self.pin_memory = pin_memory

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        if trainer is None:
            raise RuntimeError("StandardDataModule.train_dataloader needs a Trainer (fit)")
        sampler = StepSampler(
            total=self.config.batch,
            per_device=self.per_device,
            accumulate=self.accumulate,
            rank=trainer.global_rank,
            world=trainer.world_size,
            start_step=trainer.global_step,
            iterations=self.config.iterations,
        )
        return DataLoader(
            self.dataset,
            batch_size=self.per_device,
            sampler=sampler,
            num_workers=self.config.data.workers,
            persistent_workers=False,
            pin_memory=self.pin_memory,
            drop_last=False,
        )
