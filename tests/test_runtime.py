"""resyn.runtime: the allocator settings take effect, only when asked, and can be turned off."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

CHILD = """
import json, resource, torch
from resyn.runtime import allocator_state, tune_cpu_allocator
applied = tune_cpu_allocator()
faults = []
for _ in range(10):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.empty(16 << 20)  # 64 MiB, above glibc's largest default mmap threshold
    x.fill_(1.0)
    y = x * 2
    del x, y
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
print(json.dumps({"applied": applied, "again": tune_cpu_allocator(), "faults": faults,
                  "state": allocator_state()}))
"""


def _run(env_value: str | None) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("RESYN_ALLOCATOR", None)
    if env_value is not None:
        env["RESYN_ALLOCATOR"] = env_value
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="the allocator settings are for glibc",
)
def test_tuned_allocator_reuses_memory_instead_of_faulting_it_in():
    tuned = _run(None)
    assert tuned["applied"] and tuned["again"] and tuned["state"].startswith("glibc tuned")
    system = _run("system")
    assert not system["applied"] and system["state"] == "system default"
    # 2 x 64 MiB per round is 32,768 pages; with the defaults every round faults them all in,
    # tuned the heap settles and most rounds reuse it (small allocations placed between the
    # big ones can still make a round grow the heap).
    assert min(system["faults"][-6:]) > 30_000
    assert sum(tuned["faults"][-6:]) < 0.5 * sum(system["faults"][-6:])


def test_importing_resyn_changes_nothing():
    out = subprocess.run(
        [sys.executable, "-c", "import resyn, resyn.runtime as r; print(r._applied)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "None"
