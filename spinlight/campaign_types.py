"""Value types and fixed-key tables of campaign files (the part that knows no plan).

A *report* is any callable ``report(key_path, value, message)``; every check here reports and
carries on, so a campaign file gets all of its problems in one pass. Messages name the key, the
value and what is allowed (range, choices or form), like every bad-input error in spinlight.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import MISSING, dataclass, fields
from typing import Callable, Mapping

import numpy as np

from spinlight.instruments.errors import check_choice, check_range

Report = Callable[[str, object, str], None]

NUMBER, INT, BOOL, STR = "number", "integer", "boolean", "string"
NUMBERS = "list of numbers"
NUMBER_OR_NUMBERS = "number or list of numbers"
STR_OR_STRS = "string or list of strings"
STRS = "list of strings"
NUMBER_TABLE = "table of numbers"
TYPES = (NUMBER, INT, BOOL, STR, NUMBERS, NUMBER_OR_NUMBERS, STR_OR_STRS, STRS, NUMBER_TABLE)

#: Python annotation text -> campaign type (``from __future__ import annotations`` gives text).
ANNOTATIONS = {"float": NUMBER, "int": INT, "bool": BOOL, "str": STR, float: NUMBER, int: INT,
               bool: BOOL, str: STR}



class _Required:
    """The default of a key that must be given."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()
MAX_RANGE_POINTS = 100000


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def type_error(value, type_: str) -> str | None:
    """None if ``value`` (as parsed from TOML) is of campaign type ``type_``, else what it
    should have been."""
    ok = {
        NUMBER: lambda v: _is_number(v),
        INT: lambda v: isinstance(v, int) and not isinstance(v, bool),
        BOOL: lambda v: isinstance(v, bool),
        STR: lambda v: isinstance(v, str),
        NUMBERS: lambda v: isinstance(v, list) and all(_is_number(x) for x in v),
        NUMBER_OR_NUMBERS: lambda v: _is_number(v) or (isinstance(v, list) and v
                                                       and all(_is_number(x) for x in v)),
        STR_OR_STRS: lambda v: isinstance(v, str) or (isinstance(v, list) and v
                                                      and all(isinstance(x, str) for x in v)),
        STRS: lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        NUMBER_TABLE: lambda v: isinstance(v, dict) and all(_is_number(x) for x in v.values()),
    }[type_]
    if ok(value):
        return None
    article = "an" if type_[0] in "aeiou" else "a"
    extra = " (finite)" if type_ in (NUMBER, NUMBERS, NUMBER_OR_NUMBERS) else ""
    return f"must be {article} {type_}{extra}, got {type(value).__name__}"


def did_you_mean(word: str, allowed) -> str:
    close = difflib.get_close_matches(str(word), [str(a) for a in allowed], n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def unknown_key(report: Report, key_path: str, key: str, value, allowed, where: str) -> None:
    report(key_path, value, f"unknown key {key!r} in {where}; {did_you_mean(key, allowed)}"
                            f"allowed: {', '.join(sorted(allowed))}")


# ------------------------------------------------------------------ list ranges
RANGE_KEYS = ("start", "stop", "step", "num", "spacing")


def expand_range(spec: Mapping, key_path: str, report: Report) -> list[float] | None:
    """A list of numbers from an inline table ``{start, stop, step}`` (step > 0; direction
    from start to stop; stop included when it falls on the grid) or ``{start, stop, num,
    spacing = "linear"|"log"}``; None (and a report) when the table is wrong."""
    before = CountingReport(report)
    for k in spec:
        if k not in RANGE_KEYS:
            unknown_key(before, f"{key_path}.{k}", k, spec[k], RANGE_KEYS, "a range table")
    for k in ("start", "stop"):
        if k not in spec:
            before(f"{key_path}.{k}", None, f"a range table needs {k!r} (and step or num)")
        elif (msg := type_error(spec[k], NUMBER)) is not None:
            before(f"{key_path}.{k}", spec[k], f"{k}={spec[k]!r} {msg}")
    spacing = spec.get("spacing", "linear")
    if spacing not in ("linear", "log"):
        before(f"{key_path}.spacing", spacing, f"spacing={spacing!r} is not allowed; choose one "
                                               "of ['linear', 'log']")
    has_step, has_num = "step" in spec, "num" in spec
    if has_step == has_num:
        before(key_path, spec, "a range table needs exactly one of 'step' or 'num'")
    elif has_step:
        step = spec["step"]
        if not _is_number(step) or step <= 0:
            before(f"{key_path}.step", step, f"step={step!r} must be a number > 0 (the direction "
                                             "comes from start and stop)")
        elif spacing == "log":
            before(f"{key_path}.spacing", spacing, "spacing='log' needs 'num', not 'step'")
    else:
        _check(before, f"{key_path}.num", "num", spec["num"], INT, (2, MAX_RANGE_POINTS), "")
    if before.count:
        return None
    a, b = float(spec["start"]), float(spec["stop"])
    if spacing == "log" and not (a > 0 and b > 0):
        report(key_path, spec, f"spacing='log' needs start and stop > 0, got {a:g} and {b:g}")
        return None
    if has_num:
        grid = np.geomspace(a, b, spec["num"]) if spacing == "log" else np.linspace(a, b, spec["num"])
        return [float(x) for x in grid]
    step = float(spec["step"])
    n = int(math.floor(abs(b - a) / step + 1e-9)) + 1
    if n > MAX_RANGE_POINTS:
        report(f"{key_path}.step", step, f"step={step:g} gives {n} points from {a:g} to {b:g}; "
                                         f"allowed at most {MAX_RANGE_POINTS}")
        return None
    sign = 1.0 if b >= a else -1.0
    return [round(a + sign * i * step, 9) for i in range(n)]


class CountingReport:
    """A report that counts what passes through it."""

    def __init__(self, report: Report):
        self.report, self.count = report, 0

    def __call__(self, key, value, message):
        self.count += 1
        self.report(key, value, message)


# ------------------------------------------------------------------ fixed-key tables
@dataclass(frozen=True)
class Field:
    """One key of a fixed table: type, default (``REQUIRED``), allowed range or choices, or a
    regular expression the text must match (``example`` shows the form)."""

    type: str
    default: object = REQUIRED
    range: tuple | None = None
    unit: str = ""
    choices: tuple | None = None
    pattern: str | None = None
    example: str = ""


def _check(report: Report, key_path: str, name: str, value, type_: str, range_=None, unit="",
           choices=None, pattern=None, example="") -> bool:
    """Type, then range / choices / pattern; report and return False on the first failure."""
    msg = type_error(value, type_)
    if msg is not None:
        report(key_path, value, f"{name}={value!r} {msg}")
        return False
    try:
        if range_ is not None:
            for i, v in enumerate(value if isinstance(value, list) else [value]):
                label = f"{name}[{i}]" if isinstance(value, list) else name
                check_range(label, v, range_[0], range_[1], unit)
        if choices is not None:
            check_choice(name, value, set(choices))
    except ValueError as e:
        report(key_path, value, str(e))
        return False
    if pattern is not None and not re.fullmatch(pattern, value, flags=re.IGNORECASE):
        report(key_path, value, f"{name}={value!r} is not of the expected form"
                                + (f", e.g. {example}" if example else ""))
        return False
    return True


def check_table(table, spec: Mapping[str, Field], key_path: str, report: Report,
                where: str) -> dict | None:
    """Values of a fixed table (defaults filled in) or None when anything was reported."""
    if not isinstance(table, dict):
        report(key_path, table, f"{where} must be a table, got {type(table).__name__} {table!r}")
        return None
    count = CountingReport(report)
    for k, v in table.items():
        if k not in spec:
            unknown_key(count, f"{key_path}.{k}", k, v, spec, where)
    out = {}
    for name, f in spec.items():
        if name not in table:
            if f.default is REQUIRED:
                count(f"{key_path}.{name}" if key_path else name, None,
                      f"{name} is missing from {where} (required, {f.type})")
            else:
                out[name] = f.default
            continue
        if _check(count, f"{key_path}.{name}", name, table[name], f.type, f.range, f.unit,
                  f.choices, f.pattern, f.example):
            out[name] = table[name]
    return None if count.count else out


def dataclass_fields(cls, ranges: Mapping[str, tuple], skip=()) -> dict[str, Field]:
    """A fixed-table spec from a dataclass: types from the annotations, defaults from the
    dataclass, ``ranges[name] = (low, high, unit)`` (so defaults live in one place); the
    fields in ``skip`` are checked elsewhere (e.g. an array of tables)."""
    out = {}
    for f in fields(cls):
        if f.name in skip:
            continue
        low, high, unit = ranges.get(f.name, (None, None, ""))
        out[f.name] = Field(ANNOTATIONS[f.type], REQUIRED if f.default is MISSING else f.default,
                            None if low is None else (low, high), unit)
    return out
