"""The ReSyn dataset builder: filter, balance and lay out pools of real and synthetic images."""

from resyn.data.build import BuildResult, build_dataset, list_inputs
from resyn.data.config import BuildError, BuildOptions, Source, parse_source
from resyn.data.manifest import ManifestRow, read_manifest, write_manifest
from resyn.data.report import DatasetStats, compute_stats, save_report
from resyn.data.select import decide

__all__ = [
    "BuildError",
    "BuildOptions",
    "BuildResult",
    "DatasetStats",
    "ManifestRow",
    "Source",
    "build_dataset",
    "compute_stats",
    "decide",
    "list_inputs",
    "parse_source",
    "read_manifest",
    "save_report",
    "write_manifest",
]
