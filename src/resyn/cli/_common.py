"""Helpers shared by the command modules: consistent errors and consoles.

Two rules hold for everything the CLI prints (docs/security.md):

- **Text is never read as rich markup or emoji codes.** File names and other user strings reach
  almost every message (``d[/red].png``, ``[bold]x.png``, ``a:smile:.png``); the consoles are
  created with ``markup=False, emoji=False``, so a message prints exactly as written. The few
  styled words (``error:``, ``failed``) are styled with :class:`rich.text.Text`, never markup.
  Progress columns that show user strings use ``TextColumn(..., markup=False)``.
- **Nothing is wrapped when the output is not a terminal.** In a pipe, a log file or a test
  runner, rich would wrap at 80 columns wherever a path's length puts the break; there the
  consoles are :data:`UNWRAPPED_WIDTH` columns wide, so each message and table row stays on one
  line. In a terminal they keep the terminal's width.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console, ConsoleDimensions
from rich.text import Text

if TYPE_CHECKING:
    from resyn.restore.options import InferenceOptions

# Wider than any message or table row resyn prints (a path is at most 4,096 bytes on Linux).
UNWRAPPED_WIDTH = 100_000


class CliConsole(Console):
    """A rich console that prints text literally and does not wrap lines outside a terminal."""

    def __init__(self, *, stderr: bool = False, file: IO[str] | None = None) -> None:
        super().__init__(stderr=stderr, file=file, markup=False, emoji=False)

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self.writes_to_a_tty:
            return size
        return ConsoleDimensions(UNWRAPPED_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size

    @property
    def writes_to_a_tty(self) -> bool:
        """Whether the output is a real terminal (``is_terminal`` is also true for FORCE_COLOR
        in a pipe: colors are fine there, wrapping is not)."""
        isatty = getattr(self.file, "isatty", None)
        try:
            return bool(isatty and isatty())
        except ValueError:  # closed file
            return False


console = CliConsole()
err_console = CliConsole(stderr=True)


def styled(label: str, style: str, rest: str) -> Text:
    """``label`` in ``style`` followed by ``rest`` as plain text (never parsed as markup)."""
    return Text.assemble((label, style), rest)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code`` (no traceback)."""
    err_console.print(styled("error:", "bold red", f" {message}"), highlight=False)
    raise typer.Exit(code)


def inference_options(**fields: Any) -> InferenceOptions:
    """``InferenceOptions(**fields)``; an invalid one stops with ``error: --OPTION problem``."""
    from resyn.restore.options import InferenceOptions, OptionsError

    try:
        return InferenceOptions(**fields)
    except OptionsError as exc:
        fail(f"--{exc.option.replace('_', '-')} {exc.problem}")
