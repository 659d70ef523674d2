"""Parameter and FLOP counts at the paper's protocol (output 1280x720)."""

from __future__ import annotations

import torch
from torch import nn

PAPER_OUTPUT = (720, 1280)  # H, W of the output image in the paper's FLOPs protocol


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, scale: int, output_hw: tuple[int, int] = PAPER_OUTPUT) -> int:
    """FLOPs of one forward pass producing ``output_hw`` (input = output / scale), as counted by
    ``torch.utils.flop_counter`` (matmuls and convolutions; 1 MAC = 2 FLOPs). Runs on the
    ``meta`` device, so nothing is computed and no memory is used."""
    from torch.utils.flop_counter import FlopCounterMode

    h, w = output_hw[0] // scale, output_hw[1] // scale
    in_chans = getattr(getattr(model, "config", None), "in_chans", 3)
    meta_model = _to_meta(model)
    x = torch.zeros(1, in_chans, h, w, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta_model(x)
    return int(counter.get_total_flops())


def _to_meta(model: nn.Module) -> nn.Module:
    import copy

    clone = (
        copy.deepcopy(model) if any(p.device.type != "meta" for p in model.parameters()) else model
    )
    return clone.to("meta").eval()
