"""A Dask worker that dies on a file costs that file an error row, not the run."""

from __future__ import annotations

import pandas as pd
import pytest
from PIL import Image
from skimage import data

from resyn.complexity.runner import run_scoring
from resyn.io import find_images

pytest.importorskip("distributed")


def _crash_on_marked_files(paths, with_bpp=False, max_pixels=None):
    import os

    from resyn.complexity.table import score_paths

    if any("crash" in p for p in paths):
        os._exit(3)  # a decoder segfault or the OOM killer
    return score_paths(paths, with_bpp, max_pixels)


@pytest.mark.slow  # the nanny restarts the worker: about 10 s
def test_a_dying_dask_worker_costs_one_error_row(tmp_path, monkeypatch):
    import sys

    import cloudpickle
    import dask

    import resyn.complexity.runner as runner

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    monkeypatch.setattr(runner, "score_paths", _crash_on_marked_files)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("a", "b", "crash", "c"):
        Image.fromarray(data.camera()[:16, :16]).save(folder / f"{name}.png")
    out = tmp_path / "s.csv"
    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            summary = run_scoring(
                find_images([folder]), out, center=0.0, workers=1, engine="dask", batch_size=2
            )
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    df = pd.read_csv(out, keep_default_na=False).set_index("path")
    assert len(df) == 4 and summary.error_rows == 1
    assert "worker died on this file (Dask" in df.loc[str(folder / "crash.png"), "error"]
    assert (df.drop(str(folder / "crash.png"))["error"] == "").all()
