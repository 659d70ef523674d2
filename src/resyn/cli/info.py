"""``resyn info`` and ``resyn models``."""

from __future__ import annotations

import typer

from resyn.cli._common import console, fail


def register(app: typer.Typer) -> None:
    app.command("info")(info)
    app.command("models")(models)


def info() -> None:
    """Versions, the compute device and thread count resyn will use, and what
    ``--precision auto`` picks on this machine and why."""
    import platform

    import numpy as np
    import torch

    import resyn
    from resyn.ops import bi_wkv_backend_status
    from resyn.precision import auto_precision
    from resyn.runtime import allocator_state

    cuda = torch.cuda.is_available()
    rows = [
        ("resyn", resyn.__version__),
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("numpy", np.__version__),
        ("device", torch.cuda.get_device_name(0) if cuda else "cpu"),
        ("cuda", torch.version.cuda if cuda else "not available"),
        ("threads", str(torch.get_num_threads())),
        ("bi_wkv (cpu)", "{}: {}".format(*bi_wkv_backend_status("cpu"))),
        *([("bi_wkv (cuda)", "{}: {}".format(*bi_wkv_backend_status("cuda")))] if cuda else []),
        ("allocator", allocator_state()),
    ]
    for dev in ("cpu", "cuda") if cuda else ("cpu",):
        resolved, reason = auto_precision(dev)
        rows.append((f"precision auto ({dev})", f"{resolved}: {reason}"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        console.print(f"{key.ljust(width)}  {value}", highlight=False)


def models(
    names: list[str] = typer.Argument(
        None, help="Only these presets (e.g. rwkvir-light swinir-light) [default: all]."
    ),
    flops: bool = typer.Option(
        True, "--flops/--no-flops", help="Count GFLOPs at the paper's protocol (output 1280x720)."
    ),
) -> None:
    """List model presets with parameter counts and GFLOPs (output 1280x720)."""
    from rich.table import Table

    from resyn.models import build_model, list_presets
    from resyn.models.profile import count_flops, count_parameters

    presets = list_presets()
    if names:
        known = {p.name for p in presets}
        unknown = [n for n in names if n not in known]
        if unknown:
            fail(f"unknown preset(s) {', '.join(unknown)}; presets: {', '.join(sorted(known))}")
        presets = [p for p in presets if p.name in names]
    table = Table(title="resyn model presets")
    for col in ("preset", "scale", "params", "GFLOPs @1280x720 out", "description"):
        table.add_column(col)
    for preset in presets:
        for scale in preset.scales:
            model = build_model(preset.name, scale=scale)
            params = count_parameters(model)
            gflops = f"{count_flops(model, scale) / 1e9:.1f}" if flops else "-"
            table.add_row(preset.name, f"x{scale}", f"{params:,}", gflops, preset.description)
    console.print(table)
