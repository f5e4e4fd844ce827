"""Typed settings from plain data: the helpers every config section uses, whoever owns the section.

Each component owns the dataclass of the settings it reads (``graft.components.trainer_config.TrainConfig``, ...);
the pipeline assembles them into ``GraftConfig``. Both build dataclasses from YAML / JSON with these helpers, so
unknown keys, wrong types and out-of-range values fail the same way everywhere: a :class:`ConfigError` that names
the key and says what is allowed. No TensorFlow here: the CLI's ``--help`` imports it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from typing import Any, Literal, TypeVar, Union

from graft.errors import ConfigError

T = TypeVar("T")


def check(ok: bool, key: str, msg: str) -> None:
    if not ok:
        raise ConfigError(f"config key '{key}': {msg}")


# Names that end up as directory names (model name, pipeline name, class names): no path tricks.
SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


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
        check(isinstance(value, dict), key, f"expected a mapping of {tp.__name__} keys, got {value!r}")
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
        check(value in args, key, f"{value!r} is not allowed; allowed values: {', '.join(map(repr, args))}")
        return value
    if origin is list:
        if isinstance(value, str):  # --set data.classes=a,b,c
            value = [v.strip() for v in value.split(",") if v.strip()]
        check(isinstance(value, list), key, f"expected a list, got {value!r}")
        return [coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        check(isinstance(value, dict), key, f"expected a mapping, got {value!r}")
        return {coerce(args[0], k, key): coerce(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        check(isinstance(value, bool), key, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        check(
            isinstance(value, int) and not isinstance(value, bool), key, f"expected an integer, got {value!r}"
        )
        return value
    if tp is float:
        check(
            isinstance(value, (int, float)) and not isinstance(value, bool),
            key,
            f"expected a number, got {value!r}",
        )
        check(math.isfinite(float(value)), key, f"expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        check(isinstance(value, str), key, f"expected a string, got {value!r}")
        return value
    raise ConfigError(f"config key '{key}': unsupported type {tp}")  # pragma: no cover


def build(cls: type[T], data: dict[str, Any], prefix: str) -> T:
    """``cls(**data)`` with every value checked against its annotation; keys are reported as ``prefix + key``."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for k in data:
        if k not in names:
            raise ConfigError(
                f"unknown config key '{prefix}{k}'; allowed keys{' in ' + prefix.rstrip('.') if prefix else ''}: "
                f"{', '.join(names)}"
            )
    kwargs = {k: coerce(hints[k], v, prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def section_from_json(cls: type[T], config_json: str, section: str) -> T:
    """One validated section of the whole-config JSON a component receives in ``custom_config``.

    The DAG passes the whole effective config (its JSON is part of the cache key of existing runs); a component
    reads only the section it owns, so it never needs the assembled config class of the pipeline layer.
    """
    tree = json.loads(config_json)
    data = tree.get(section, {}) if isinstance(tree, dict) else {}
    check(isinstance(data, dict), section, f"expected a mapping of {cls.__name__} keys, got {data!r}")
    out = build(cls, data, section + ".")
    out.validate()
    return out
