"""Command-line interface (``resyn``)."""
