"""Result objects shared by the analysis functions (in the spirit of lmfit's ``ModelResult``).

A fit never returns a bare tuple: it returns a :class:`FitResult` with the parameters, their
standard errors, the covariance, the reduced chi-square, the number of points, the model curve, a
human-readable ``report()`` and a JSON-safe ``to_dict()`` whose keys carry their units
(``theta_K``, ``theta_err_K``, ``curie_constant_emu_K_per_mol`` ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np


def json_safe(value: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and non-finite floats into JSON-safe values.

    NaN and ±inf become ``None`` (JSON has no NaN); arrays become lists.
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def format_value(value: float | None, err: float | None = None) -> str:
    """``1.2345 ± 0.0012`` style formatting with a precision suited to the error."""
    if value is None or not math.isfinite(float(value)):
        return "n/a"
    if err is None or not math.isfinite(float(err)) or err <= 0:
        return f"{value:.6g}"
    digits = min(max(0, 1 - int(math.floor(math.log10(err)))), 12)
    return f"{value:.{digits}f} ± {err:.{digits}f}"


def format_table(title: str, rows: list[tuple[str, str]]) -> str:
    """Two-column plain-text table used by every ``report()``."""
    width = max([len(k) for k, _ in rows] + [8])
    lines = [f"[[{title}]]"]
    lines += [f"    {k:<{width}} = {v}" for k, v in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class Curve:
    """A model or derived curve. Unpacks as ``x, y = curve``."""

    x: np.ndarray
    y: np.ndarray
    x_name: str = "x"
    y_name: str = "y"

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.x, self.y))

    def to_dict(self) -> dict:
        return {self.x_name: json_safe(self.x), self.y_name: json_safe(self.y)}


@dataclass
class FitResult:
    """Base class of every fit result.

    Attributes
    ----------
    model : str
        Model name (e.g. ``"curie_weiss"``).
    params, stderr : dict
        Parameter name -> best value / one-standard-deviation error.
    covariance : ndarray
        Covariance matrix of the parameters, in the order of ``params``.
    chi2_red : float
        Reduced chi-square (chi-square / degrees of freedom).
    n_points : int
        Number of data points in the fit.
    curve : Curve
        The model evaluated on the fitted domain.
    units : dict
        Parameter name -> unit suffix used in ``to_dict`` keys (``"K"`` gives ``theta_K`` and
        ``theta_err_K``).
    extras : dict
        Further scalars whose keys already carry units (``mu_eff_muB``, ``cw_t_min_K`` ...).
    """

    model: str
    params: dict[str, float]
    stderr: dict[str, float]
    covariance: np.ndarray
    chi2_red: float
    n_points: int
    curve: Curve
    units: dict[str, str] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def _key(self, name: str, err: bool = False) -> str:
        unit = self.units.get(name, "")
        base = f"{name}_err" if err else name
        return f"{base}_{unit}" if unit else base

    def report(self) -> str:
        rows = [(self._key(n), format_value(v, self.stderr.get(n))) for n, v in self.params.items()]
        rows += [(k, format_value(v) if isinstance(v, (int, float)) else str(v))
                 for k, v in self.extras.items()]
        rows += [("n_points", str(self.n_points)), ("chi2_red", format_value(self.chi2_red))]
        return format_table(f"Fit: {self.model}", rows)

    def to_dict(self, *, include_curve: bool = False) -> dict:
        out: dict[str, Any] = {"model": self.model}
        for name, value in self.params.items():
            out[self._key(name)] = value
            out[self._key(name, err=True)] = self.stderr.get(name)
        out.update(self.extras)
        out["n_points"] = self.n_points
        out["chi2_red"] = self.chi2_red
        if include_curve:
            out["curve"] = self.curve.to_dict()
        return json_safe(out)

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.report()
