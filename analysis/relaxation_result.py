"""Result object of a relaxation-rate fit (lmfit ``ModelResult`` style).

:class:`RelaxationResult` is a :class:`~spinlight.analysis.results.FitResult` whose ``params``
are physical values (B1 s⁻¹, B2 T⁻², D1 s⁻¹K⁻¹T⁻⁴, D2 s⁻¹K⁻¹T⁻², C s⁻¹K⁻ⁿ, n, τ0 s, U K) and
whose ``curve`` is a :class:`ModelCurve`: on the fitted domain it unpacks as ``x, y`` like any
``Curve``, and *calling* it evaluates the model elsewhere, e.g.
``result.curve(field_Oe=np.linspace(0, 1e4, 101), temperature_K=2.0)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .relaxation_terms import K_PER_CM1, OE_PER_T, PARAMS, RelaxationModel
from .results import Curve, FitResult, format_table, format_value, json_safe

#: Parameter pairs with |correlation| above this are listed in ``report()``.
STRONG_CORRELATION = 0.95


def format_param(value: float, err: float | None = None) -> str:
    """:func:`format_value`, in ``(8.70 ± 0.14)e-08`` form for very small or large values."""
    v = float(value)
    if not math.isfinite(v) or v == 0 or 1e-3 <= abs(v) < 1e6:
        return format_value(v, err)
    exp = math.floor(math.log10(abs(v)))
    scale = 10.0 ** exp
    e = None if err is None or not math.isfinite(err) else err / scale
    text = format_value(v / scale, e)
    return f"({text})e{exp:+03d}" if "±" in text else f"{text}e{exp:+03d}"


@dataclass(frozen=True)
class ModelCurve(Curve):
    """A curve that can also be re-evaluated: ``curve(field_Oe=..., temperature_K=...)``."""

    evaluate: Callable | None = field(default=None, repr=False, compare=False)

    def __call__(self, field_Oe=None, temperature_K=None, *, n: int = 200,
                 quantity: str = "rate") -> Curve:
        return self.evaluate(field_Oe, temperature_K, n=n, quantity=quantity)


@dataclass
class RelaxationResult(FitResult):
    """Fit of τ⁻¹(H, T). Beyond :class:`FitResult`:

    ``covariance`` is over ``params`` in their order and physical units (first-order
    propagation from the internal log10 coordinates): rows of fixed parameters are 0, those of
    parameters at a bound or along an undetermined direction NaN (their ``stderr`` is NaN too).
    ``relaxation_model`` (terms, fixed, bounds), the data (``field_Oe``, ``temperature_K``,
    ``tau_s``, ``log10_rate_err``; the error bars are ``None`` when none were given),
    ``free_names``, ``stderr_log10`` (σ of log10 X for the log-carried parameters, σ of n and U
    otherwise), ``correlation`` (free × free, in ``free_names`` order), ``chi2``, ``aic``,
    ``bic`` (lmfit definitions: n·ln(χ²/n) + 2k and + ln(n)·k), ``at_bounds``, ``success``,
    ``message``, ``nfev``, ``fit_time_s``, ``start_chi2`` (final χ² from every start).
    """

    relaxation_model: RelaxationModel | None = None
    field_Oe: np.ndarray | None = None
    temperature_K: np.ndarray | None = None
    tau_s: np.ndarray | None = None
    log10_rate_err: np.ndarray | None = None
    free_names: tuple[str, ...] = ()
    stderr_log10: dict[str, float] = field(default_factory=dict)
    correlation: np.ndarray | None = None
    chi2: float = math.nan
    aic: float = math.nan
    bic: float = math.nan
    at_bounds: tuple[str, ...] = ()
    success: bool = False
    message: str = ""
    nfev: int = 0
    fit_time_s: float = math.nan
    start_chi2: tuple[float, ...] = ()
    covariance_scaled: bool = True

    # -- model evaluation ----------------------------------------------------------------------
    def term_rates(self, field_Oe, temperature_K) -> dict[str, np.ndarray]:
        """Rate (s⁻¹) of each term in :data:`TERMS` at (H in Oe, T in K); off terms give 0."""
        return self.relaxation_model.term_rates(np.asarray(field_Oe, float) / OE_PER_T,
                                                temperature_K, self.params)

    def rate(self, field_Oe, temperature_K) -> np.ndarray:
        """Total model rate τ⁻¹ (s⁻¹)."""
        return sum(self.term_rates(field_Oe, temperature_K).values())

    def tau(self, field_Oe, temperature_K) -> np.ndarray:
        """Model τ (s)."""
        return 1.0 / self.rate(field_Oe, temperature_K)

    @property
    def residuals(self) -> np.ndarray:
        """(model − data) in log10(rate), divided by the error bars when they were given."""
        r = np.log10(self.rate(self.field_Oe, self.temperature_K)) + np.log10(self.tau_s)
        return r if self.log10_rate_err is None else r / self.log10_rate_err

    # -- reporting ---------------------------------------------------------------------------
    @property
    def U_cm1(self) -> float:
        """Orbach barrier in cm⁻¹ (NaN without the Orbach term)."""
        return self.params.get("U", math.nan) / K_PER_CM1

    def correlations(self, threshold: float = 0.0) -> dict[str, float]:
        """{"a:b": ρ} for the free pairs with |ρ| ≥ threshold."""
        out = {}
        names = self.free_names
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                rho = float(self.correlation[i, j])
                if math.isfinite(rho) and abs(rho) >= threshold:
                    out[f"{names[i]}:{names[j]}"] = rho
        return out

    def status(self, name: str) -> str:
        """``"fixed"``, ``"at bound"``, ``"undetermined"`` (error > ×/÷ 10 for log10-carried
        parameters, > |value| for n and U) or ``""``."""
        if name in self.relaxation_model.fixed:
            return "fixed"
        if name in self.at_bounds:
            return "at bound"
        sd = self.stderr_log10.get(name, math.nan)
        limit = 1.0 if PARAMS[name].log else abs(self.params[name])
        return "undetermined" if not sd <= limit else ""

    def report(self) -> str:
        fixed = self.relaxation_model.fixed
        rows = []
        for name, value in self.params.items():
            tag = f" ({self.status(name)})" if self.status(name) else ""
            text = format_param(value, self.stderr.get(name))
            sd_log = self.stderr_log10.get(name, math.nan)
            if PARAMS[name].log and name not in fixed and math.isfinite(sd_log):
                text += f"  [×/÷ {10 ** min(sd_log, 99.0):.3g}]"
            rows.append((self._key(name), text + tag))
        if "U" in self.params:
            rows.append(("U_cm-1", format_value(self.U_cm1, self.stderr["U"] / K_PER_CM1)))
        rows += [(k, format_value(v) if isinstance(v, (int, float)) else str(v))
                 for k, v in self.extras.items()]
        rows += [("terms", self.relaxation_model.describe()),
                 ("n_points", str(self.n_points)), ("chi2_red", format_value(self.chi2_red)),
                 ("aic", format_value(self.aic)), ("bic", format_value(self.bic)),
                 ("covariance", "scaled by chi2_red" if self.covariance_scaled
                  else "absolute (error bars trusted)"),
                 ("starts (final chi2)", ", ".join(f"{c:.4g}" for c in self.start_chi2)),
                 ("fit_time_s", f"{self.fit_time_s:.3g}"), ("success", str(self.success))]
        strong = self.correlations(STRONG_CORRELATION)
        if strong:
            rows.append(("strong correlations", ", ".join(f"{k} {v:+.3f}"
                                                          for k, v in strong.items())))
        return format_table(f"Fit: {self.model}", rows)

    def to_dict(self, *, include_curve: bool = False, include_data: bool = False) -> dict:
        out: dict[str, Any] = super().to_dict(include_curve=include_curve)
        out["terms"] = list(self.relaxation_model.terms)
        out["fixed"] = sorted(self.relaxation_model.fixed)
        out["at_bounds"] = list(self.at_bounds)
        out["undetermined"] = [n for n in self.params if self.status(n) == "undetermined"]
        if "U" in self.params:
            out["U_cm1"] = self.U_cm1
            out["U_err_cm1"] = self.stderr["U"] / K_PER_CM1
        for name, v in self.stderr_log10.items():
            out[f"log10_{name}_err" if PARAMS[name].log else f"{name}_err_internal"] = v
        out.update(chi2=self.chi2, aic=self.aic, bic=self.bic, success=self.success,
                   nfev=self.nfev, fit_time_s=self.fit_time_s,
                   covariance_scaled=self.covariance_scaled,
                   correlation=self.correlations())
        if include_data:
            out.update(field_Oe=self.field_Oe, temperature_K=self.temperature_K,
                       tau_s=self.tau_s, log10_rate_err=self.log10_rate_err)
        return json_safe(out)


def model_curve(result: RelaxationResult, field_Oe=None, temperature_K=None, *, n: int = 200,
                quantity: str = "rate") -> Curve:
    """Model rate (s⁻¹) or τ (s) vs the varying coordinate.

    With neither argument: a smooth curve over the fitted domain: vs field (n points, 0 to the
    largest measured field) when the data share one temperature, vs temperature when they share
    one field, else the model at the measured (H, T) points with x = T. A scalar argument is
    held fixed; an array argument becomes x (x = T when both vary).
    """
    if quantity not in ("rate", "tau"):
        raise ValueError(f"quantity={quantity!r}; allowed: 'rate' or 'tau'")
    h, t = result.field_Oe, result.temperature_K
    if field_Oe is None and temperature_K is None:
        if np.ptp(t) == 0:
            field_Oe, temperature_K = np.linspace(0.0, h.max(), n), float(t[0])
        elif np.ptp(h) == 0:
            field_Oe, temperature_K = float(h[0]), np.linspace(t.min(), t.max(), n)
        else:
            field_Oe, temperature_K = h, t
    elif field_Oe is None:
        field_Oe = float(h[0]) if np.ptp(h) == 0 else None
    elif temperature_K is None:
        temperature_K = float(t[0]) if np.ptp(t) == 0 else None
    if field_Oe is None or temperature_K is None:
        raise ValueError("curve(): the fitted data span several fields and temperatures; "
                         "allowed: give both field_Oe and temperature_K")
    hh, tt = np.broadcast_arrays(np.asarray(field_Oe, float), np.asarray(temperature_K, float))
    y = result.rate(hh, tt)
    y, y_name = (y, "rate_per_s") if quantity == "rate" else (1.0 / y, "tau_s")
    if np.ndim(temperature_K) == 0 and np.ndim(field_Oe) > 0:
        return Curve(hh.ravel(), y.ravel(), "field_Oe", y_name)
    return Curve(tt.ravel(), y.ravel(), "temperature_K", y_name)


__all__ = ["ModelCurve", "RelaxationResult", "format_param", "model_curve"]
