"""Every error class resyn defines derives from ResynError and keeps its built-in base."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

import resyn
from resyn.errors import ResynError

# Modules that need an optional extra (Triton; Gradio for the demo) when imported.
OPTIONAL = {"resyn.ops._bi_wkv_triton", "resyn.restore.demo"}


def _error_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    root = Path(resyn.__file__).parent
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        try:
            module = importlib.import_module(name)
        except ImportError:
            if name in OPTIONAL:
                continue
            raise
        for cls_name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, Exception)
                and obj.__module__ == name
                and not cls_name.startswith("_")
            ):
                found[f"{module.__name__}.{cls_name}"] = obj
    return found


ERRORS = _error_classes()


def test_the_project_errors_are_found() -> None:
    names = {n.rsplit(".", 1)[1] for n in ERRORS}
    assert {"WeightsError", "WeightsFileError", "ImageReadError", "RunError", "EvalError"} <= names
    assert len(ERRORS) >= 13


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_derives_from_resyn_error(name: str) -> None:
    cls = ERRORS[name]
    if cls is ResynError:
        return
    assert issubclass(cls, ResynError), name
    # the built-in base it always had stays, so existing `except ValueError` still catch it
    assert issubclass(cls, (ValueError, RuntimeError)), name
