"""Write one benchmark's results into its own section of docs/benchmarks.md.

Each script owns the block between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` and
rewrites only that block (atomically), so scripts can be re-run independently. Every section
starts with the machine, the date and the load average at the time of the run.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
from pathlib import Path

from resyn.io.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]

DOC = ROOT / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Measured by the scripts in `benchmarks/`; each section is rewritten by its script "
    "(`.venv/bin/python benchmarks/NAME.py`). Numbers are wall-clock medians unless a section "
    "says otherwise.\n"
)


def machine_line() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"Machine: {cpu}, {os.cpu_count()} logical cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {device}. Date: "
        f"{_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}. Load average before the run: {load}."
    )


def update_section(name: str, title: str, body: str) -> Path:
    """Replace (or append) the section ``name`` of docs/benchmarks.md."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n## {title}\n\n{machine_line()}\n\n{body.strip()}\n{end}"
    text = DOC.read_text() if DOC.exists() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    atomic_write_text(DOC, text)
    return DOC
