"""Graft's curated schemas, one folder per task (``image_classification/schema.pbtxt``).

A package (not a loose folder) so the schema is found with ``importlib.resources`` wherever Graft is installed: an
editable checkout, a wheel in site-packages, or the pipeline image. The files are data; this module holds the one
function that finds them.
"""

from __future__ import annotations

from importlib import resources

SCHEMA_FILE = "schema.pbtxt"


def schema_path(task: str = "image_classification") -> str:
    """Filesystem path of the committed schema for ``task`` (a folder of this package)."""
    ref = resources.files(__name__).joinpath(task, SCHEMA_FILE)
    if not ref.is_file():
        raise FileNotFoundError(f"Graft has no curated schema for task '{task}' ({ref})")
    return str(ref)
