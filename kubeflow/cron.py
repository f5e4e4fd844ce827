"""Cron expressions for ``graft schedule``: parsed once, strictly, and written for each target.

Vertex AI takes the 5-field expression as it is, KFP's recurring runs a 6-field one (seconds first), the local
target a systemd ``OnCalendar=`` line. Its own module because it changes with the schedule formats, not with
how jobs are submitted. ``UsageError`` (a bad argument: exit code 2) lives here, the lowest module raising it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CRON_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    (
        "month",
        1,
        12,
        {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())},
    ),
    ("day of week", 0, 7, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}),
)
_DOW_SYSTEMD = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


class UsageError(ValueError):
    """Bad arguments (exit code 2)."""


# ---- cron ------------------------------------------------------------------------------------------------------
@dataclass
class Cron:
    expression: str  # as given (with an optional TZ= / CRON_TZ= prefix)
    tz: str
    fields: list[str]
    values: list[list[int]]  # expanded per field
    restricted: list[bool]  # field is not '*'

    @property
    def five_fields(self) -> str:
        return " ".join(self.fields)


def parse_cron(expression: str) -> Cron:
    """Validate a standard 5-field cron expression (optionally prefixed with ``TZ=Zone`` or ``CRON_TZ=Zone``)."""
    expr = (expression or "").strip()
    tz = ""
    m = re.match(r"^(?:CRON_)?TZ=(\S+)\s+(.*)$", expr)
    if m:
        tz, expr = m.group(1), m.group(2)
    parts = expr.split()
    if len(parts) != 5:
        raise UsageError(
            f"--cron {expression!r}: expected 5 fields 'minute hour day-of-month month day-of-week', e.g. "
            f"'0 3 * * *' (every day at 03:00); got {len(parts)}"
        )
    values, restricted = [], []
    for text, (name, lo, hi, names) in zip(parts, _CRON_FIELDS, strict=True):
        values.append(_expand(text, name, lo, hi, names, expression))
        restricted.append(text != "*")
    if values[4] and 7 in values[4]:
        values[4] = sorted({0 if v == 7 else v for v in values[4]})
    return Cron(expression=expression, tz=tz, fields=parts, values=values, restricted=restricted)


def _expand(text: str, name: str, lo: int, hi: int, names: dict, expression: str) -> list[int]:
    def bad(why: str) -> UsageError:
        return UsageError(f"--cron {expression!r}: {name} field {text!r}: {why}")

    def number(tok: str) -> int:
        tok_l = tok.lower()
        if tok_l in names:
            return names[tok_l]
        if not tok.isdigit():
            raise bad(f"{tok!r} is not a number" + (f" or a name ({', '.join(names)})" if names else ""))
        v = int(tok)
        if not lo <= v <= hi:
            raise bad(f"{v} is outside {lo}-{hi}")
        return v

    out: set[int] = set()
    for item in text.split(","):
        if not item:
            raise bad("empty list item")
        rng, _, step_s = item.partition("/")
        step = 1
        if step_s:
            if not step_s.isdigit() or int(step_s) == 0:
                raise bad(f"step {step_s!r} must be a positive number")
            step = int(step_s)
        if rng == "*":
            a, b = lo, hi
        elif "-" in rng:
            a_s, b_s = rng.split("-", 1)
            a, b = number(a_s), number(b_s)
            if a > b:
                raise bad(f"range {rng} runs backwards")
        else:
            a = number(rng)
            b = hi if step_s else a
        out.update(range(a, b + 1, step))
    return sorted(out)


def kfp_cron(cron: Cron) -> str:
    """KFP's recurring runs take 6 fields, seconds first."""
    if cron.tz:
        raise UsageError(
            f"--cron {cron.expression!r}: KFP recurring runs use the cluster's time zone; drop the TZ= prefix"
        )
    return "0 " + cron.five_fields


def systemd_on_calendar(cron: Cron) -> str:
    """The cron expression as a systemd ``OnCalendar=`` value (every field expanded to explicit values)."""
    minute, hour, dom, month, dow = cron.values
    if cron.restricted[2] and cron.restricted[4]:
        raise UsageError(
            f"--cron {cron.expression!r}: cron runs when EITHER the day of month OR the day of week matches; a "
            "systemd timer needs both. Use one of the two, or two schedules."
        )

    def join(vals: list[int], full: list[int], width: int) -> str:
        return "*" if vals == full else ",".join(f"{v:0{width}d}" for v in vals)

    date = f"*-{join(month, list(range(1, 13)), 2)}-{join(dom, list(range(1, 32)), 2)}"
    time_ = f"{join(hour, list(range(24)), 2)}:{join(minute, list(range(60)), 2)}:00"
    days = "" if not cron.restricted[4] else ",".join(_DOW_SYSTEMD[d] for d in dow) + " "
    return f"{days}{date} {time_}" + (f" {cron.tz}" if cron.tz else "")
