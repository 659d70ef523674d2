"""The base of every error resyn raises on purpose (bad input, options, files or weights).

Each error class keeps the built-in class it always had (``ValueError``, ``RuntimeError``...),
so ``except ValueError`` still catches it; ``except ResynError`` catches all of them.
"""

from __future__ import annotations


class ResynError(Exception):
    """An error resyn reports with a message naming its cause (never a bug)."""
