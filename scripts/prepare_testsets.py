"""Lay out the field's test sets as flat folders of HR images that every `resyn` command takes.

The sets come from two public git repositories (../shared/spec/DATA.md), never committed here:

- ``JingyunLiang/SwinIR``, folder ``testsets/``: Set5 (HR plus the MATLAB-made
  ``LR_bicubic/X2,X3,X4`` that papers use), Set12 (gray denoising), McMaster (color denoising),
  classic5 (gray JPEG);
- ``majedelhelou/denoising_datasets``: ``CSet14``, ``CBSD68``, ``CUrban100``, ``CManga109`` (color
  HR images) and ``BSD68`` (gray).

Pass each repository as a clone (a folder with a work tree) or as a bare git directory (what
`git clone --bare` or a mirror gives); files are read from its HEAD with ``git archive``. Writes
``OUT/<Set>/`` (Set5 keeps its ``HR/`` + ``LR_bicubic/`` layout; the others are flat folders of
HR images) and ``OUT/SOURCES.md``: repository, commit, folder and file count of each set. A set
whose folder already holds the expected number of files is left as it is.

    .venv/bin/python scripts/prepare_testsets.py --swinir PATH --denoising PATH [--out runs/testsets]
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg"}


@dataclass(frozen=True)
class TestSet:
    name: str  # folder written under OUT
    repo: str  # "swinir" or "denoising"
    folder: str  # folder inside the repository
    files: int  # expected image count (HR images)
    use: str


SETS = [
    TestSet("Set5", "swinir", "testsets/Set5", 5, "SR (HR + MATLAB LR_bicubic X2/X3/X4)"),
    TestSet("Set14", "denoising", "CSet14", 14, "SR"),
    TestSet(
        "CBSD68", "denoising", "CBSD68", 68, "SR (BSD100's 68-image test subset), color denoising"
    ),
    TestSet("Urban100", "denoising", "CUrban100", 100, "SR, color denoising"),
    TestSet("Manga109", "denoising", "CManga109", 109, "SR"),
    TestSet("BSD68", "denoising", "BSD68", 68, "gray denoising"),
    TestSet("Set12", "swinir", "testsets/Set12", 12, "gray denoising"),
    TestSet("McMaster", "swinir", "testsets/McMaster", 18, "color denoising"),
    TestSet("classic5", "swinir", "testsets/classic5", 5, "gray JPEG"),
]


def _git(repo: Path, *args: str, binary: bool = False) -> bytes | str:
    bare = not (repo / ".git").exists() and (repo / "HEAD").is_file()
    base = ["git", f"--git-dir={repo}"] if bare else ["git", "-C", str(repo)]
    done = subprocess.run([*base, *args], check=True, capture_output=True)
    return done.stdout if binary else done.stdout.decode().strip()


def _count_images(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def _hr_count(folder: Path) -> int:
    hr = folder / "HR"
    return _count_images(hr if hr.is_dir() else folder)


def extract(repo: Path, folder: str, dest: Path) -> None:
    """Copy ``folder`` of the repository's HEAD into ``dest`` (written whole, then renamed)."""
    data = _git(repo, "archive", "--format=tar", "HEAD", folder, binary=True)
    assert isinstance(data, bytes)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}.") as tmp:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(tmp, filter="data")
        if dest.exists():
            shutil.rmtree(dest)
        (Path(tmp) / folder).rename(dest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--swinir", type=Path, required=True, help="JingyunLiang/SwinIR clone")
    parser.add_argument(
        "--denoising", type=Path, required=True, help="majedelhelou/denoising_datasets clone"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/testsets"))
    parser.add_argument("--only", nargs="*", help="set names to prepare (default: all)")
    args = parser.parse_args(argv)
    repos = {"swinir": args.swinir, "denoising": args.denoising}
    for key, path in repos.items():
        if not path.is_dir():
            parser.error(f"--{key}: {path} is not a folder (a clone of the repository)")
    rows = []
    for s in SETS:
        if args.only and s.name not in args.only:
            continue
        repo = repos[s.repo]
        dest = args.out / s.name
        if dest.is_dir() and _hr_count(dest) == s.files:
            status = "kept"
        else:
            extract(repo, s.folder, dest)
            status = "written"
        found = _hr_count(dest)
        if found != s.files:
            print(f"error: {dest}: {found} HR images, expected {s.files}", file=sys.stderr)
            return 1
        commit = _git(repo, "rev-parse", "HEAD")
        origin = "JingyunLiang/SwinIR" if s.repo == "swinir" else "majedelhelou/denoising_datasets"
        rows.append(
            f"| {s.name} | {origin} | `{s.folder}` | {str(commit)[:12]} | {found} | {s.use} |"
        )
        print(f"{s.name}: {found} images ({status}) -> {dest}")
    table = [
        "# Test sets (not committed; written by scripts/prepare_testsets.py)",
        "",
        "| set | repository | folder | commit | HR images | used for |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "SOURCES.md").write_text("\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
