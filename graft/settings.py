"""Typed settings from plain data: the helpers every config section uses, whoever owns the section.

Each component owns the dataclass of the settings it reads (``graft.components.trainer_config.TrainConfig``, ...);
the pipeline assembles them into ``GraftConfig``. Both build dataclasses from YAML / JSON with these helpers, so
unknown keys, wrong types and out-of-range values fail the same way everywhere: a :class:`ConfigError` that names
the key and says what is allowed. No TensorFlow here: the CLI's ``--help`` imports it.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import difflib
import json
import math
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from graft.errors import ConfigError

T = TypeVar("T")


# While a whole config is validated (:func:`collecting`), problems are gathered here instead of raised one by one,
# so that the user sees every problem of a config in one run.
_PROBLEMS: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "graft_config_problems", default=None
)


@contextlib.contextmanager
def collecting() -> Iterator[list[str]]:
    """Gather the problems :func:`check` finds (instead of raising at the first); see :func:`raise_collected`."""
    problems: list[str] = []
    token = _PROBLEMS.set(problems)
    try:
        yield problems
    finally:
        _PROBLEMS.reset(token)


def report(message: str) -> None:
    """Raise ``message`` as a ConfigError, or record it when a whole config is being validated."""
    problems = _PROBLEMS.get()
    if problems is None:
        raise ConfigError(message)
    if message not in problems:
        problems.append(message)


def raise_collected(problems: list[str]) -> None:
    """One ConfigError listing every problem (one problem: its sentence as is)."""
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(
            f"{len(problems)} problems in the config:\n" + "\n".join(f"  - {p}" for p in problems)
        )


def check(ok: bool, key: str, msg: str) -> None:
    if not ok:
        report(f"config key '{key}': {msg}")


def _require(ok: bool, key: str, msg: str) -> None:
    """Like :func:`check`, but always raises: a value that failed its type cannot be checked further."""
    if not ok:
        raise ConfigError(f"config key '{key}': {msg}")


def unknown_key_message(prefix: str, key: Any, names: list[str]) -> str:
    """'unknown config key ...; did you mean ...?' with the allowed keys."""
    close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
    hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
    where = f" in {prefix.rstrip('.')}" if prefix else ""
    return f"unknown config key '{prefix}{key}'{hint} (allowed keys{where}: {', '.join(names)})"


# Names that end up as directory names (model name, pipeline name, class names): no path tricks.
SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# A number such as 1e-4 or 2E+3: YAML 1.1 resolves it to a string when the mantissa has no dot.
_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def check_safe_name(value: str, key: str) -> None:
    check(
        bool(SAFE_NAME_RE.match(value)) and ".." not in value,
        key,
        f"{value!r} is not a safe name: use 1-128 letters, digits, '_', '.', '-', starting with a letter or digit, "
        "and no '..'",
    )


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin in (list, dict):
        return str(tp).replace("typing.", "")
    return getattr(tp, "__name__", str(tp))


def coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        _require(isinstance(value, dict), key, f"expected a mapping of {tp.__name__} keys, got {value!r}")
        return build(tp, value, key + ".")
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(a, value, key)
            except ConfigError:
                continue
        raise ConfigError(f"config key '{key}': {value!r} is not a valid {type_name(tp)}")
    if origin is Literal:
        _require(
            value in args, key, f"{value!r} is not allowed; allowed values: {', '.join(map(repr, args))}"
        )
        return value
    if origin is list:
        if isinstance(value, str):  # --set data.classes=a,b,c
            value = [v.strip() for v in value.split(",") if v.strip()]
        _require(isinstance(value, list), key, f"expected a list, got {value!r}")
        return [coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _require(isinstance(value, dict), key, f"expected a mapping, got {value!r}")
        return {coerce(args[0], k, key): coerce(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        _require(isinstance(value, bool), key, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        _require(
            isinstance(value, int) and not isinstance(value, bool), key, f"expected an integer, got {value!r}"
        )
        return value
    if tp is float:
        if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 (PyYAML) reads 1e-4 without a dot as the string '1e-4'
        _require(
            isinstance(value, (int, float)) and not isinstance(value, bool),
            key,
            f"expected a number, got {value!r}",
        )
        _require(math.isfinite(float(value)), key, f"expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        _require(isinstance(value, str), key, f"expected a string, got {value!r}")
        return value
    raise ConfigError(f"config key '{key}': unsupported type {tp}")  # pragma: no cover


def build(cls: type[T], data: dict[str, Any], prefix: str) -> T:
    """``cls(**data)`` with every value checked against its annotation; keys are reported as ``prefix + key``."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in data.items():
        if k not in names:
            report(unknown_key_message(prefix, k, names))
            continue
        try:
            kwargs[k] = coerce(hints[k], v, prefix + k)
        except ConfigError as e:  # collected (the default stays), or raised when not collecting
            report(str(e))
    return cls(**kwargs)


def section_from_json(cls: type[T], config_json: str, section: str) -> T:
    """One validated section of the whole-config JSON a component receives in ``custom_config``.

    The DAG passes the whole effective config (its JSON is part of the cache key of existing runs); a component
    reads only the section it owns, so it never needs the assembled config class of the pipeline layer.
    """
    tree = json.loads(config_json)
    data = tree.get(section, {}) if isinstance(tree, dict) else {}
    _require(isinstance(data, dict), section, f"expected a mapping of {cls.__name__} keys, got {data!r}")
    out = build(cls, data, section + ".")
    out.validate()
    return out


def yaml_problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else str(problem)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML config file holds; every way a file can be wrong is a ConfigError naming it."""
    p = Path(path).expanduser()
    where = f"config file {str(path)!r}"
    if p.is_dir():
        raise ConfigError(f"{where} is a directory; pass a YAML file to --config")
    if not p.is_file():
        raise ConfigError(f"{where} does not exist (pass an existing YAML file to --config)")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"{where} cannot be read ({e.strerror or e}); check its permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{where} is not UTF-8 text (byte {e.start}: {raw[e.start : e.start + 1]!r}); a config is a YAML "
            "text file such as `graft config show > graft.yaml` writes"
        ) from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where} is not valid YAML: {yaml_problem(e)}") from None
    if loaded is None:
        raise ConfigError(
            f"{where} is empty (no settings); write sections such as `data: {{path: ...}}`, or leave out --config"
        )
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"{where} must hold a mapping of sections (data:, backbone:, train:, ...), got a "
            f"{type(loaded).__name__}: {str(loaded)[:60]!r}"
        )
    bad = [k for k in loaded if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"{where}: keys must be names, got {', '.join(map(repr, bad))}")
    return loaded
