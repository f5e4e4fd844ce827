"""The errors every layer shares, and the ONE table from an error to the CLI's exit code.

``ConfigError`` lives here, at the root, because every layer raises it (a component's settings, the assembled
config, the compile) and no layer may import upward to reach it.

The exit-code table is keyed by class *name*, matched against every class in an exception's MRO along its
``__cause__`` / ``__context__`` chain, for two reasons: the classes live in higher layers (components, kubeflow)
that the root must not import, and a task of a compiled spec runs in another process, so its error reaches the
parent only as log text, where the same names are searched. The names are therefore part of the contract.
"""

from __future__ import annotations

from collections.abc import Iterator

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DATA_VALIDATION = 3


class ConfigError(ValueError):
    """A bad config value or key. The message names the key and the fix."""


# error class name -> exit code. Anything not listed (and not a subclass of a listed class) exits EXIT_FAILED.
EXIT_CODES: dict[str, int] = {
    # stopped by data validation (graft.components.data_errors): nothing was trained or pushed
    "DataValidationError": EXIT_DATA_VALIDATION,
    "TooManyBadFilesError": EXIT_DATA_VALIDATION,
    "NoImagesFoundError": EXIT_DATA_VALIDATION,
    # the user's input is wrong: config, backbone handle, compiled spec, command-line use
    "ConfigError": EXIT_USAGE,
    "BackboneError": EXIT_USAGE,
    "SpecError": EXIT_USAGE,
    "UsageError": EXIT_USAGE,
    # more specific than BackboneError (the MRO is read most specific first): the handle is right, this machine
    # lacks the offline weights -- an environment failure, not a usage error
    "WeightsMissingError": EXIT_FAILED,
}
DATA_ERROR_NAMES = frozenset(n for n, c in EXIT_CODES.items() if c == EXIT_DATA_VALIDATION)


def chain(exc: BaseException | None) -> Iterator[BaseException]:
    """The exception, then its causes / contexts (each once)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _code_of(exc: BaseException) -> int | None:
    if getattr(exc, "data_validation", False):  # an error that carries a data stop of another process
        return EXIT_DATA_VALIDATION
    codes = [EXIT_CODES[c.__name__] for c in type(exc).__mro__ if c.__name__ in EXIT_CODES]
    return codes[0] if codes else None


def classify(exc: BaseException) -> tuple[int, BaseException]:
    """(exit code, the most telling exception of the chain): a data stop wins over usage, usage over failure."""
    found = [(code, x) for x in chain(exc) if (code := _code_of(x)) is not None]
    for wanted in (EXIT_DATA_VALIDATION, EXIT_USAGE):
        hit = next((x for code, x in found if code == wanted), None)
        if hit is not None:
            return wanted, hit
    return EXIT_FAILED, exc


def exit_code(exc: BaseException) -> int:
    return classify(exc)[0]


def is_data_error(exc: BaseException) -> bool:
    return exit_code(exc) == EXIT_DATA_VALIDATION


def mentions_data_error(text: str) -> bool:
    """Whether a log (another process's traceback) shows a data stop."""
    return any(n in text for n in DATA_ERROR_NAMES)
