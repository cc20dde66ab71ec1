"""Relaxation-rate model τ⁻¹(H, T) as a sum of named mechanism terms.

    τ⁻¹ = B1/(1 + B2·H²) + D1·H⁴·T + D2·H²·T + C·Tⁿ + τ0⁻¹·exp(−U/T)
          └── qtm ───────┘ └ direct_h4 ┘ └ direct_h2 ┘ └ raman ┘ └─── orbach ───┘

Units: H in tesla inside the model (public functions take ``field_Oe``; 1 T = 10⁴ Oe), T in K,
U in K (U/k_B; 1 cm⁻¹ = 1.4388 K), B1 s⁻¹, B2 T⁻², D1 s⁻¹K⁻¹T⁻⁴, D2 s⁻¹K⁻¹T⁻², C s⁻¹K⁻ⁿ, τ0 s.

Internally every positive scale parameter is carried as log10 (log10 B1, log10 τ0, ...) and
``n``, ``U`` are linear, all bounded; the model is evaluated as log10(rate) with an analytic
Jacobian with respect to those internal coordinates (as ccfit2 parametrises its rate models).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from . import _validate as check

LN10 = math.log(10.0)
#: K per cm⁻¹ (hc/k_B).
K_PER_CM1 = 1.4388
#: Oe per tesla.
OE_PER_T = 1.0e4

#: Every mechanism term, in the order of the model formula.
TERMS = ("qtm", "direct_h4", "direct_h2", "raman", "orbach")
#: Terms used when none are named: the paper's model with D1 = 0.
DEFAULT_TERMS = ("qtm", "direct_h2", "raman", "orbach")
#: Terms that depend on the field (fitted in the field scan of the sequential workflow).
FIELD_TERMS = ("qtm", "direct_h4", "direct_h2")
#: Terms that depend on temperature only (constant in a field scan at fixed T).
TEMPERATURE_TERMS = ("raman", "orbach")


@dataclass(frozen=True)
class ParamSpec:
    """One model parameter: owning term, unit suffix, log10 carriage and default bounds."""

    name: str
    term: str
    unit: str          # suffix for result keys (``U`` → ``U_K``)
    log: bool          # carried internally as log10(value)
    lower: float       # physical bounds
    upper: float
    amplitude: bool    # multiplies its term linearly (used by the starting-value search)
    description: str


PARAMS: dict[str, ParamSpec] = {p.name: p for p in (
    ParamSpec("B1", "qtm", "per_s", True, 1e-6, 1e12, True, "QTM rate at zero field"),
    ParamSpec("B2", "qtm", "per_T2", True, 1e-4, 1e8, False, "QTM field suppression"),
    ParamSpec("D1", "direct_h4", "per_s_K_T4", True, 1e-6, 1e12, True, "direct H⁴T"),
    ParamSpec("D2", "direct_h2", "per_s_K_T2", True, 1e-6, 1e12, True, "direct H²T (hyperfine)"),
    ParamSpec("C", "raman", "per_s_K_n", True, 1e-12, 1e10, True, "Raman prefactor"),
    ParamSpec("n", "raman", "", False, 1.0, 12.0, False, "Raman exponent"),
    ParamSpec("tau0", "orbach", "s", True, 1e-16, 1e-2, True, "Orbach attempt time"),
    ParamSpec("U", "orbach", "K", False, 0.1, 5000.0, False, "Orbach barrier U/k_B"),
)}
PARAM_ORDER = tuple(PARAMS)
#: Amplitude parameter of each term (the term is linear in it; for Orbach in 1/τ0).
AMPLITUDE_OF = {"qtm": "B1", "direct_h4": "D1", "direct_h2": "D2", "raman": "C",
                "orbach": "tau0"}


def to_internal(name: str, value: float) -> float:
    return math.log10(value) if PARAMS[name].log else float(value)


def to_physical(name: str, value: float) -> float:
    return 10.0 ** value if PARAMS[name].log else float(value)


def amplitude_value(name: str, value: float) -> float:
    """The factor that multiplies the term (1/τ0 for the Orbach term)."""
    return 1.0 / value if name == "tau0" else value


def _check_param_map(arg: str, mapping, terms: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in dict(mapping or {}).items():
        if name not in PARAMS:
            raise ValueError(f"{arg} names unknown parameter {name!r}; allowed: "
                             f"{', '.join(PARAM_ORDER)}")
        spec = PARAMS[name]
        if spec.term not in terms:
            raise ValueError(f"{arg}[{name!r}]={value!r}: parameter {name!r} belongs to term "
                             f"{spec.term!r}, which is switched off (terms={terms}); allowed: "
                             "parameters of the switched-on terms")
        v = check.finite(f"{arg}[{name!r}]", value)
        if not spec.lower <= v <= spec.upper:
            raise ValueError(f"{arg}[{name!r}]={v!r} is out of range; allowed range: "
                             f"{spec.lower:g} to {spec.upper:g}")
        out[name] = v
    return out


class RelaxationModel:
    """Which terms are on, which parameters are fixed, starting values and bounds.

    ``RelaxationModel(terms=("qtm", "direct_h2", "orbach"), fixed={"B2": 23.0},
    initial={"U": 20.0}, bounds={"n": (1, 9)})`` — values in physical units. A switched-off
    term contributes exactly 0; a fixed parameter keeps its value through every fit.
    """

    def __init__(self, terms: Iterable[str] = DEFAULT_TERMS, *, fixed: Mapping | None = None,
                 initial: Mapping | None = None, bounds: Mapping | None = None):
        if isinstance(terms, str):
            terms = (terms,)
        terms = tuple(terms)
        for t in terms:
            check_term(t)
        if len(set(terms)) != len(terms) or not terms:
            raise ValueError(f"terms={terms!r}: allowed: one or more distinct names of {TERMS}")
        self.terms = tuple(t for t in TERMS if t in terms)
        self.bounds = {n: (s.lower, s.upper) for n, s in PARAMS.items()}
        for name, lo_hi in dict(bounds or {}).items():
            _check_param_map("bounds", {name: lo_hi[0]}, self.terms)
            _check_param_map("bounds", {name: lo_hi[1]}, self.terms)
            if not lo_hi[0] < lo_hi[1]:
                raise ValueError(f"bounds[{name!r}]={tuple(lo_hi)!r}: allowed: lower < upper")
            self.bounds[name] = (float(lo_hi[0]), float(lo_hi[1]))
        self.fixed = _check_param_map("fixed", fixed, self.terms)
        self.initial = _check_param_map("initial", initial, self.terms)
        for name in self.initial:
            if name in self.fixed:
                raise ValueError(f"initial[{name!r}]={self.initial[name]!r}: {name} is also "
                                 "fixed; allowed: a parameter is either fixed or given a start")
        # settled once: use replace() for a model with other settings
        self._param_names = tuple(n for n in PARAM_ORDER if PARAMS[n].term in self.terms)
        self._free_names = tuple(n for n in self._param_names if n not in self.fixed)
        for arg, mp in (("fixed", self.fixed), ("initial", self.initial)):
            for name, v in mp.items():
                lo, hi = self.bounds[name]
                if not lo <= v <= hi:
                    raise ValueError(f"{arg}[{name!r}]={v!r} is out of range; allowed range: "
                                     f"{lo:g} to {hi:g} (bounds)")

    # -- bookkeeping -------------------------------------------------------------------------
    @property
    def param_names(self) -> tuple[str, ...]:
        """Parameters of the switched-on terms, in model order."""
        return self._param_names

    @property
    def free_names(self) -> tuple[str, ...]:
        """Parameters that are fitted (not fixed)."""
        return self._free_names

    def internal_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = [to_internal(n, self.bounds[n][0]) for n in self.free_names]
        hi = [to_internal(n, self.bounds[n][1]) for n in self.free_names]
        return np.array(lo), np.array(hi)

    def full_params(self, free_internal) -> dict[str, float]:
        """Physical values of all parameters from the internal free vector."""
        out = dict(self.fixed)
        out.update({n: to_physical(n, v) for n, v in zip(self.free_names, free_internal)})
        return {n: out[n] for n in self.param_names}

    def replace(self, *, terms=None, fixed=None, initial=None) -> "RelaxationModel":
        """A copy with some settings replaced (bounds are kept)."""
        terms = self.terms if terms is None else terms
        keep = {n: b for n, b in self.bounds.items()
                if PARAMS[n].term in terms and b != (PARAMS[n].lower, PARAMS[n].upper)}
        return RelaxationModel(terms, fixed=self.fixed if fixed is None else fixed,
                               initial=self.initial if initial is None else initial, bounds=keep)

    def describe(self) -> str:
        return "+".join(self.terms)

    def __repr__(self) -> str:
        return (f"RelaxationModel(terms={self.terms!r}, fixed={self.fixed!r}, "
                f"initial={self.initial!r})")

    # -- evaluation --------------------------------------------------------------------------
    def term_rates(self, field_T, temperature_K, params: Mapping[str, float]) -> dict:
        """Rate (s⁻¹) of every term in :data:`TERMS`; switched-off terms are arrays of 0."""
        rates = _evaluate(self.terms, params, field_T, temperature_K, with_jac=False)[0]
        shape = np.broadcast_shapes(np.shape(field_T), np.shape(temperature_K))
        return {t: rates[t] if t in rates else np.zeros(shape) for t in TERMS}

    def rate(self, field_T, temperature_K, params: Mapping[str, float]) -> np.ndarray:
        """Total rate τ⁻¹ (s⁻¹)."""
        return sum(self.term_rates(field_T, temperature_K, params).values())

    def log10_rate_and_jac(self, free_internal, field_T, temperature_K):
        """log10(rate) and its Jacobian with respect to the internal free parameters."""
        params = self.full_params(free_internal)
        rates, d_rate = _evaluate(self.terms, params, field_T, temperature_K, with_jac=True)
        total = sum(rates.values())
        y = np.log10(total)
        jac = np.empty((total.size, len(self.free_names)))
        for j, name in enumerate(self.free_names):
            jac[:, j] = d_rate[name] / (total * LN10)
        return y, jac


def check_term(term) -> str:
    if term not in TERMS:
        raise ValueError(f"term={term!r} is unknown; allowed: {', '.join(TERMS)}")
    return term


def _evaluate(terms, p, h, t, *, with_jac: bool):
    """Rates of the switched-on terms and ∂rate/∂(internal parameter) (log10-carried ones carry
    the factor ln10·X)."""
    h, t = np.broadcast_arrays(np.asarray(h, dtype=float), np.asarray(t, dtype=float))
    h2 = h * h
    rates: dict[str, np.ndarray] = {}
    d: dict[str, np.ndarray] = {}
    if "qtm" in terms:
        den = 1.0 + p["B2"] * h2
        r = rates["qtm"] = p["B1"] / den
        if with_jac:
            d["B1"] = LN10 * r
            d["B2"] = -LN10 * r * p["B2"] * h2 / den
    if "direct_h4" in terms:
        r = rates["direct_h4"] = p["D1"] * h2 * h2 * t
        d["D1"] = LN10 * r        # cheap: computed even when only rates are wanted
    if "direct_h2" in terms:
        r = rates["direct_h2"] = p["D2"] * h2 * t
        d["D2"] = LN10 * r
    if "raman" in terms:
        r = rates["raman"] = p["C"] * t ** p["n"]
        if with_jac:
            d["C"] = LN10 * r
            d["n"] = r * np.log(t)
    if "orbach" in terms:
        r = rates["orbach"] = np.exp(-p["U"] / t) / p["tau0"]
        if with_jac:
            d["tau0"] = -LN10 * r
            d["U"] = -r / t
    return rates, d


def term_basis(term: str, field_T, temperature_K, params: Mapping[str, float]) -> np.ndarray:
    """Rate of ``term`` per unit amplitude (B1, D1, D2, C or 1/τ0 set to 1): its shape only."""
    unit = dict(params)
    unit[AMPLITUDE_OF[term]] = 1.0
    return _evaluate((term,), unit, field_T, temperature_K, with_jac=False)[0][term]
