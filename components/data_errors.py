"""Errors that stop a run because of the data (the CLI maps every one of them to exit code 3).

Kept free of TensorFlow / TFX imports: the CLI and tests can import them cheaply. The CLI recognises them by
class name along the exception chain (``DataValidationError``, ``TooManyBadFilesError``, ``NoImagesFoundError``),
so the names are part of the contract.
"""

from __future__ import annotations


class DataValidationError(RuntimeError):
    """The data failed validation. The message lists every problem in plain words, with the fix."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = list(problems or [])


class TooManyBadFilesError(DataValidationError):
    """More than ``data.max_bad_fraction`` of the input files are not usable images."""


class NoImagesFoundError(DataValidationError):
    """The data location holds no usable image in the expected layout."""
