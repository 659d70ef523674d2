"""The Dask engine gives the same table as local processes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data

from resyn.complexity.runner import run_scoring
from resyn.io import find_images

pytest.importorskip("distributed")


def test_dask_local_cluster_matches_local_processes(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    img = data.coffee()[:64, :96]
    for i in range(3):
        Image.fromarray(np.roll(img, 9 * i, axis=1)).save(folder / f"im{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    files = find_images([folder])
    local, dask = tmp_path / "local.csv", tmp_path / "dask.csv"
    run_scoring(files, local, center=1.5, workers=1, with_bpp=True)
    summary = run_scoring(
        files, dask, center=1.5, workers=1, engine="dask", with_bpp=True, batch_size=1
    )
    assert summary.scored == 4 and summary.error_rows == 1
    pd.testing.assert_frame_equal(pd.read_csv(local), pd.read_csv(dask))


def test_unreachable_scheduler_is_a_clear_error(tmp_path):
    Image.fromarray(data.camera()[:32, :32]).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="cannot reach the Dask scheduler"):
        run_scoring(
            find_images([tmp_path]), tmp_path / "s.csv", center=0.0, engine="dask",
            scheduler="tcp://127.0.0.1:9", connect_timeout=2.0,
        )  # fmt: skip
