"""The ``resyn`` command line. Each concern lives in its own ``resyn.cli.<name>`` module that
exposes ``register(app)``; heavy imports happen inside the commands, so ``resyn --help`` is fast.
"""

from __future__ import annotations

import importlib

import typer

# Order is the order of `resyn --help`.
COMMAND_MODULES = [
    "resyn.cli.info",
    "resyn.cli.complexity",
    "resyn.cli.restore",
    "resyn.cli.dataset",
    "resyn.cli.eval",
    "resyn.cli.train",
]

app = typer.Typer(
    name="resyn",
    help="Image restoration: GLCM complexity, the ReSyn dataset builder, the unified training "
    "standard and RWKV-IR.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    # Before any tensor exists: reuse freed memory instead of faulting it in again
    # (resyn.runtime; RESYN_ALLOCATOR=system turns it off).
    from resyn.runtime import tune_cpu_allocator

    tune_cpu_allocator()
    app()


if __name__ == "__main__":
    main()
