"""What defines a dataset build (sources and options), and the guard on the output folder.

The definition is recorded in ``DIR/resyn_dataset.json`` before any work. Running again with the
same definition resumes (or, after completion, does nothing). A different definition is refused
with the differing keys named, unless ``overwrite=True``, which deletes exactly the entries the
builder manages (``layout.MANAGED``) and starts over. A non-empty folder with no
``resyn_dataset.json`` is never touched, with or without ``overwrite``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from resyn.data import layout
from resyn.data.filters import DEFAULT_BLUR_THRESHOLD, DEFAULT_FLAT_THRESHOLD, FLAT_GRADIENT
from resyn.errors import ResynError
from resyn.io import DEFAULT_MAX_PIXELS, atomic_write_text

FORMAT = "resyn-dataset/1"
KINDS = ("real", "synthetic")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
#: What a mistyped kind looks like (``:Real``, ``:synth``), as opposed to the end of a path.
_KIND_LIKE = re.compile(r"^[A-Za-z][A-Za-z_-]*$")


class BuildError(ResynError, ValueError):
    """A user error found before or during a build (message says what to change)."""


@dataclass(frozen=True)
class Source:
    """One pool of input images: ``name`` prefixes output names, ``kind`` is real/synthetic."""

    name: str
    path: Path
    kind: str = "real"


def parse_source(text: str) -> Source:
    """Parse ``NAME=PATH[:real|:synthetic]`` (kind defaults to real). A path may hold colons,
    but a word after the last one that is not a kind (``:Real``) is an error unless the whole
    path exists."""
    if "=" not in text:
        raise BuildError(f"--source {text!r}: expected NAME=PATH[:real|:synthetic]")
    name, rest = text.split("=", 1)
    kind = "real"
    for k in KINDS:
        if rest.endswith(":" + k):
            rest, kind = rest[: -len(k) - 1], k
            break
    head, sep, tail = rest.rpartition(":")
    if sep and head and _KIND_LIKE.match(tail) and not Path(rest).exists():
        raise BuildError(
            f"--source {text!r}: unknown kind {tail!r} (real|synthetic), and no folder {rest} "
            "exists"
        )
    if not _NAME.match(name):
        raise BuildError(
            f"--source {text!r}: name {name!r} must be letters, digits, '_' or '-' "
            "(it prefixes output file names)"
        )
    if not rest:
        raise BuildError(f"--source {text!r}: empty path")
    return Source(name=name, path=Path(rest), kind=kind)


@dataclass(frozen=True)
class BuildOptions:
    """Filtering, balancing and output options (all of them define the dataset)."""

    min_size: int = 800
    blur_threshold: float = DEFAULT_BLUR_THRESHOLD
    flat_threshold: float = DEFAULT_FLAT_THRESHOLD
    per_source: int | None = None
    seed: int = 0
    scales: tuple[int, ...] = (2, 3, 4)
    crop: int | None = None
    step: int | None = None
    thresh_size: int = 0
    flat_gradient: float = field(default=FLAT_GRADIENT)
    #: complexity center; None = the active one of ``resyn.complexity``, resolved (and recorded)
    #: when the build starts so that a resumed build scores like the first run.
    center: float | None = None
    #: images with more pixels are ``unreadable`` (decompression-bomb guard of read_image)
    max_pixels: int = DEFAULT_MAX_PIXELS
    #: share of the kept images at/below the center: 0.5 balances (the ReSyn rule); less or
    #: more skews the set toward complex or simple images at the balanced set's size (for
    #: studies such as the paper's DF2K-like low-complexity case, docs/findings.md)
    low_share: float = 0.5

    def validate(self) -> None:
        if self.min_size < 1:
            raise BuildError("--min-size must be at least 1")
        if self.max_pixels < 1:
            raise BuildError("--max-pixels must be positive")
        if self.blur_threshold < 0:
            raise BuildError("--blur-threshold must be >= 0")
        if not 0 <= self.flat_threshold <= 1:
            raise BuildError("--flat-threshold is a share of pixels, between 0 and 1")
        if not 0 < self.low_share < 1:
            raise BuildError(
                f"--low-share is the share of images at/below the center, strictly between 0 "
                f"and 1 (0.5 balances), got {self.low_share:g}"
            )
        if self.per_source is not None and self.per_source < 2:
            raise BuildError("--per-source must be at least 2 (half above, half at/below zero)")
        if (
            not self.scales
            or any(s < 2 for s in self.scales)
            or len(set(self.scales)) != len(self.scales)
        ):
            raise BuildError(f"--scales must be distinct integers >= 2, got {list(self.scales)}")
        if self.crop is None:
            if self.step is not None:
                raise BuildError("--step needs --crop")
            return
        step = self.step if self.step is not None else self.crop
        if self.crop < 1 or step < 1 or self.thresh_size < 0:
            raise BuildError("--crop and --step must be >= 1 and --thresh-size >= 0")
        bad = [s for s in self.scales if self.crop % s or step % s]
        if bad:
            raise BuildError(
                f"--crop {self.crop} and --step {step} must be multiples of every scale so LR "
                f"crops align with HR crops (not of {bad})"
            )

    @property
    def crop_step(self) -> int | None:
        if self.crop is None:
            return None
        return self.step if self.step is not None else self.crop


def resolve_center(options: BuildOptions) -> BuildOptions:
    """Fill ``center`` with the active complexity center (through the public API only)."""
    if options.center is not None:
        return options
    import numpy as np

    from resyn.complexity import complexity

    probe = complexity(np.zeros((8, 8, 3), np.uint8))
    return replace(options, center=float(probe.raw - probe.score))


def config_dict(sources: list[Source], options: BuildOptions, out: Path) -> dict[str, Any]:
    """The JSON-able definition; source paths are stored relative to ``out`` (no absolute
    paths), which is how two definitions are compared."""
    opts = asdict(options)
    opts["scales"] = list(options.scales)
    opts["step"] = options.crop_step
    if options.low_share == 0.5:  # balanced: the definition balanced builds always had
        del opts["low_share"]
    return {
        "format": FORMAT,
        "sources": [
            {
                "name": s.name,
                "kind": s.kind,
                "path": Path(os.path.relpath(s.path.resolve(), out.resolve())).as_posix(),
            }
            for s in sources
        ],
        "options": opts,
    }


#: Options added after the first format: a definition written without them was built with
#: these values, so it still matches a build that uses them.
_ADDED_OPTIONS = {"max_pixels": DEFAULT_MAX_PIXELS}


def _with_new_defaults(old: Any) -> Any:
    opts = old.get("options") if isinstance(old, dict) else None
    if isinstance(opts, dict):
        old = {**old, "options": {**opts}}
        for key, value in _ADDED_OPTIONS.items():
            old["options"].setdefault(key, value)
    return old


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    diffs = []
    if old.get("sources") != new["sources"]:
        diffs.append(f"sources {old.get('sources')} -> {new['sources']}")
    old_opts = old.get("options", {})
    for key, value in new["options"].items():
        if old_opts.get(key) != value:
            diffs.append(f"{key} {old_opts.get(key)!r} -> {value!r}")
    return diffs


def check_output_folder(out: Path) -> None:
    """Refuse an ``out`` that is a file, or a non-empty folder that is not a resyn dataset
    (checked before anything, even the lock file, is created in it)."""
    if out.exists() and not out.is_dir():
        raise BuildError(f"--out {out} exists and is not a folder")
    if (
        out.is_dir()
        and not (out / layout.CONFIG).exists()
        and any(p.name != layout.LOCK for p in out.iterdir())
    ):
        raise BuildError(
            f"{out} is not empty and holds no {layout.CONFIG}: it is not a resyn dataset, and "
            "resyn never deletes files it did not write. Choose an empty or new folder"
        )


def prepare_output(out: Path, definition: dict[str, Any], overwrite: bool) -> bool:
    """Check ``out`` against ``definition``; create it and record the definition. The caller
    holds the build lock (``overwrite`` deletes files another build would be using).

    Returns True when ``out`` already holds this very build (a resume or a no-op).
    """
    check_output_folder(out)
    config_file = out / layout.CONFIG
    if config_file.exists():
        try:
            recorded = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BuildError(
                f"{config_file} is unreadable ({exc}); remove it or the folder"
            ) from None
        old = _with_new_defaults(recorded)
        if old == definition:
            if recorded != definition:  # written before an option was added: record it now
                atomic_write_text(config_file, json.dumps(definition, indent=2) + "\n")
            return True
        if not overwrite:
            raise BuildError(
                f"{out} already holds another dataset ({'; '.join(_differences(old, definition))})."
                " Choose another --out, or pass --overwrite to delete it and build this one"
            )
        # The old definition goes last (replaced by the new one below), so a run killed while
        # deleting is still recognised as a resyn dataset and can be overwritten again.
        for entry in layout.MANAGED:
            if entry == layout.CONFIG:
                continue
            target = out / entry
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(config_file, json.dumps(definition, indent=2) + "\n")
    return False
