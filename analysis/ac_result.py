"""Result objects of the ac-spectrum fits (:func:`spinlight.analysis.ac_fit.fit_ac_spectrum`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .results import FitResult, format_table, format_value, json_safe

__all__ = ["AcProcess", "AcFitResult"]

@dataclass
class AcProcess:
    """One relaxation process. τ in s; ``tau_s`` = exp(⟨lnτ⟩) (the fitted τ for Debye/GD)."""

    ln_tau: float                 # ⟨ln τ⟩, τ in s
    ln_tau_param: float           # the model's ln τ parameter
    ln_tau_err: float             # fit s.d. of the ln τ parameter
    alpha: float
    alpha_err: float
    gamma: float
    delta_chi: float
    delta_chi_err: float
    sigma_ln_tau: float
    tau_bounds_s: tuple[float, float]
    log10_rate: float             # log10(1/τ / s⁻¹)
    log10_rate_err: float
    peak_frequency_hz: float
    flags: tuple[str, ...] = ()

    @property
    def tau_s(self) -> float:
        return math.exp(self.ln_tau)

    def to_dict(self) -> dict:
        return json_safe({"tau_s": self.tau_s, **asdict(self)})


@dataclass
class AcFitResult(FitResult):
    """Fit of one spectrum. ``processes`` are sorted slow → fast (descending τ); the scalar
    properties (``tau_s``, ``alpha`` ...) are those of ``processes[0]``."""

    processes: list[AcProcess] = field(default_factory=list)
    aic: float = math.nan
    bic: float = math.nan
    flags: tuple[str, ...] = ()          # every discard rule that fired
    discarded: bool = False              # flags present and no_discard=False
    frequency_hz: np.ndarray | None = None
    chi_real: np.ndarray | None = None
    chi_imag: np.ndarray | None = None
    selection: dict | None = None        # model="auto": statistics of the 1- vs 2-process choice
    weighted: bool = False               # error arrays were given
    absolute_sigma: bool = False

    def _first(self, name: str) -> float:
        return getattr(self.processes[0], name) if self.processes else math.nan

    ln_tau = property(lambda self: self._first("ln_tau"))
    tau_s = property(lambda self: self._first("tau_s"))
    sigma_ln_tau = property(lambda self: self._first("sigma_ln_tau"))
    alpha = property(lambda self: self._first("alpha"))
    log10_rate = property(lambda self: self._first("log10_rate"))
    log10_rate_err = property(lambda self: self._first("log10_rate_err"))
    tau_bounds_s = property(lambda self: self._first("tau_bounds_s"))

    @property
    def discard_reason(self) -> str:
        return "; ".join(self.flags) if self.discarded else ""

    def report(self) -> str:
        out = [super().report()]
        for k, p in enumerate(self.processes, 1):
            lo, hi = p.tau_bounds_s
            out.append(format_table(f"process {k}", [
                ("tau_s", f"{p.tau_s:.5g} (bounds {lo:.4g} … {hi:.4g})"),
                ("alpha", format_value(p.alpha, p.alpha_err)),
                ("delta_chi", format_value(p.delta_chi, p.delta_chi_err)),
                ("sigma_ln_tau", format_value(p.sigma_ln_tau)),
                ("log10_rate_per_s", format_value(p.log10_rate, p.log10_rate_err)),
                ("peak_frequency_Hz", format_value(p.peak_frequency_hz))]))
        rows = [("aic", format_value(self.aic)), ("bic", format_value(self.bic)),
                ("weighted", str(self.weighted)), ("absolute_sigma", str(self.absolute_sigma)),
                ("discarded", str(self.discarded))] + [("flag", f) for f in self.flags]
        if self.selection:
            rows += [(k, str(v)) for k, v in self.selection.items() if k != "candidates"]
        out.append(format_table("status", rows))
        return "\n".join(out)

    def to_dict(self, *, include_curve: bool = False) -> dict:
        out = super().to_dict(include_curve=include_curve)
        out.update(json_safe({"processes": [p.to_dict() for p in self.processes],
                              "aic": self.aic, "bic": self.bic, "flags": self.flags,
                              "discarded": self.discarded, "selection": self.selection,
                              "weighted": self.weighted, "absolute_sigma": self.absolute_sigma}))
        return out
