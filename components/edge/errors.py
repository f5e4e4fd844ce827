"""The edge export's one error type, in its own module so that convert.py and selective.py can both raise it
without importing each other (the house test forbids import circles)."""

from __future__ import annotations


class EdgeExportError(ValueError):
    """A TFLite variant could not be built; the message names the variant and the cause."""
