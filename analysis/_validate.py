"""Input checks shared by the analysis modules.

Every error names the parameter, the offending value and the allowed range, so that a bad
argument is understood without reading the code.
"""

from __future__ import annotations

import math

import numpy as np


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"array(shape={value.shape})"
    return repr(value)


def positive(name: str, value) -> float:
    """Return ``value`` as float; raise unless it is finite and > 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={_describe(value)} is not a number; allowed range: > 0") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name}={v!r} is out of range; allowed range: finite and > 0")
    return v


def finite(name: str, value) -> float:
    """Return ``value`` as float; raise unless it is finite."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={_describe(value)} is not a number; "
                         "allowed range: finite") from None
    if not math.isfinite(v):
        raise ValueError(f"{name}={v!r} is out of range; allowed range: finite real number")
    return v


def array(name: str, value, *, length: int | None = None, min_length: int = 1,
          positive_values: bool = False, nonzero: bool = False) -> np.ndarray:
    """Return a 1-D float array; check length, finiteness and (optionally) sign."""
    a = np.atleast_1d(np.asarray(value, dtype=float))
    if a.ndim != 1:
        raise ValueError(f"{name} has shape {a.shape}; allowed: a 1-D array")
    if length is not None and a.size != length:
        raise ValueError(f"{name} has {a.size} values; allowed: exactly {length} "
                         "(the same length as the other input arrays)")
    if a.size < min_length:
        raise ValueError(f"{name} has {a.size} values; allowed: at least {min_length}")
    bad = ~np.isfinite(a)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{i}]={float(a[i])!r} is not finite; allowed range: finite "
                         f"numbers ({int(bad.sum())} non-finite values)")
    if positive_values and (a <= 0).any():
        i = int(np.flatnonzero(a <= 0)[0])
        raise ValueError(f"{name}[{i}]={float(a[i])!r} is out of range; allowed range: > 0")
    if nonzero and (a == 0).any():
        i = int(np.flatnonzero(a == 0)[0])
        raise ValueError(f"{name}[{i}]=0.0 is out of range; allowed range: non-zero")
    return a
