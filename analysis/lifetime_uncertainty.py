"""Lifetime uncertainties: profile-likelihood intervals, average lifetimes with propagated errors,
the Cramér–Rao photon-economy factor F and the energy-transfer efficiency η_ET.

* Profile likelihood (``reference/fitting.md`` §3.1 "support plane", §3.3): fix ln τ_i, refit
  every other free parameter and find where the objective (deviance or Neyman χ²) rises by
  Δ = χ²₁(confidence) above its minimum (Δ = 1 for 68.27 %). Unlike the Fisher error it follows
  the asymmetric likelihood at low photon numbers.
* Average lifetimes (FluoFit conventions): amplitude-weighted τ_amp = ΣA_iτ_i/ΣA_i (the usual
  choice for η_ET) and intensity-weighted τ_int = ΣA_iτ_i²/ΣA_iτ_i, errors by first-order
  propagation of the full covariance of (τ_i, A_i).
* F = (σ_τ/τ)·√N (Köllner & Wolfrum 1992): F = 1 is the Poisson limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2

from . import _validate as check
from .count_fit import CountFit, fisher_covariance, fit_counts
from .results import format_table, format_value, json_safe

#: Maximum number of step doublings when bracketing a profile-likelihood limit.
MAX_EXPANSIONS = 12
#: Accuracy of a profile limit, in units of √(objective rise): 0.01 ≈ 1 % of σ.
ROOT_TOL = 0.01


def delta_objective(confidence: float) -> float:
    """Rise of the deviance/χ² that bounds a one-parameter interval at ``confidence``."""
    c = check.finite("confidence", confidence)
    if not 0.0 < c < 1.0:
        raise ValueError(f"confidence={c!r} is out of range; allowed range: 0 < confidence < 1")
    return float(chi2.ppf(c, 1))


def profile_interval(model, y, mask, best: CountFit, index: int, lower, upper, method: str,
                     delta: float = 1.0) -> tuple[float, float]:
    """Profile-likelihood limits of internal parameter ``index`` (e.g. ln τ_i).

    ``lower``/``upper`` are the fit bounds; a side that stays below the threshold up to its bound
    returns the bound. Returns (low, high) in internal units.
    """
    free = best.free.copy()
    free[index] = False
    pos = int(best.free[:index].sum()) if best.free[index] else None
    sigma = math.sqrt(best.cov_free[pos, pos]) if pos is not None else float("nan")
    step0 = sigma * math.sqrt(delta) if math.isfinite(sigma) and sigma > 0 else 0.05
    warm = {"theta": best.theta}

    def excess_root(psi):
        """√(objective rise) with the sign of the step: close to linear in ψ, fast for brentq."""
        theta = warm["theta"].copy()
        theta[index] = psi
        sub = fit_counts(model, y, mask, theta, free, lower, upper, method, tol=1e-8,
                         covariance=False)
        warm["theta"] = sub.theta
        rise = math.sqrt(max(sub.objective - best.objective, 0.0))
        return math.copysign(rise, psi - best.theta[index]) - target

    limits = []
    for direction in (-1.0, 1.0):
        target = direction * math.sqrt(delta)
        warm["theta"] = best.theta
        bound = lower[index] if direction < 0 else upper[index]
        a, fa, step = best.theta[index], -target, 1.5 * step0
        found = False
        for _ in range(MAX_EXPANSIONS):
            b = best.theta[index] + direction * step
            if (b - bound) * direction >= 0:
                b = bound
            fb = excess_root(b)
            if fb * direction >= 0:
                found = True
                break
            if b == bound:
                break
            a, fa, step = b, fb, 2.0 * step
        limits.append(float(_illinois(excess_root, a, fa, b, fb) if found else bound))
    return limits[0], limits[1]


def _illinois(f, a, fa, b, fb, ftol: float = ROOT_TOL, max_iter: int = 30) -> float:
    """Root of f in the bracket [a, b] by regula falsi with the Illinois modification.

    f is nearly linear here (signed root of the objective rise), so one or two steps usually
    meet ``ftol``; brentq would spend further calls shrinking the bracket.
    """
    for _ in range(max_iter):
        c = b - fb * (b - a) / (fb - fa)
        fc = f(c)
        if abs(fc) < ftol:
            return c
        if fc * fb < 0:
            a, fa = b, fb
        else:
            fa *= 0.5          # Illinois: the retained end would otherwise stall the iteration
        b, fb = c, fc
    return b


def average_lifetimes(taus_ns, amps, cov) -> dict[str, float]:
    """τ_amp, τ_int (ns) and their errors; ``cov`` is the covariance of (τ_1..n, A_1..n)."""
    t, a = np.asarray(taus_ns, float), np.asarray(amps, float)
    s0, s1, s2 = a.sum(), (a * t).sum(), (a * t * t).sum()
    tau_amp, tau_int = s1 / s0, s2 / s1
    g_amp = np.concatenate([a / s0, (t - tau_amp) / s0])
    g_int = np.concatenate([a * (2.0 * t - tau_int) / s1, t * (t - tau_int) / s1])

    def err(g):
        v = float(g @ cov @ g)
        return math.sqrt(v) if v >= 0 else float("nan")

    return {"tau_amp_ns": float(tau_amp), "tau_amp_err_ns": err(g_amp),
            "tau_int_ns": float(tau_int), "tau_int_err_ns": err(g_int)}


def cramer_rao_factor(model, theta, free, n_photons: float, mask=None) -> float:
    """F = √(N·var(ln τ₁)) from the expected Fisher information of ``model`` at ``theta``.

    The amplitudes in ``theta`` are rescaled so that the decay (μ − background) holds
    ``n_photons`` counts in ``mask``; with the amplitude free, this Poisson bound on τ equals the
    multinomial one for N photons. Channels with μ = 0 carry no information and are dropped.
    """
    n = model.n_exp
    theta = np.array(theta, dtype=float)
    mask = np.ones(model.evaluate(theta)[0].size, bool) if mask is None else np.asarray(mask)
    signal = model.evaluate(theta)[0][mask] - theta[2 * n]
    theta[n:2 * n] *= check.positive("n_photons", n_photons) / signal.sum()
    mu, jac = model.evaluate(theta)
    keep = mask & (mu > 0)
    cov = fisher_covariance(jac[keep][:, np.asarray(free, bool)], mu[keep], None, "mle")
    return math.sqrt(n_photons * cov[0, 0])


@dataclass
class EnergyTransferResult:
    """η_ET = 1 − τ_DA/τ_D with first-order error (independent τ_DA and τ_D)."""

    efficiency: float
    efficiency_err: float
    tau_da_ns: float
    tau_da_err_ns: float
    tau_d_ns: float
    tau_d_err_ns: float

    @property
    def percent(self) -> float:
        return 100.0 * self.efficiency

    def report(self) -> str:
        rows = [("eta_ET", format_value(self.efficiency, self.efficiency_err)),
                ("eta_ET_percent", format_value(self.percent, 100.0 * self.efficiency_err)),
                ("tau_DA_ns", format_value(self.tau_da_ns, self.tau_da_err_ns)),
                ("tau_D_ns", format_value(self.tau_d_ns, self.tau_d_err_ns))]
        return format_table("Energy transfer efficiency 1 - tau_DA/tau_D", rows)

    def to_dict(self) -> dict:
        return json_safe({"eta_et": self.efficiency, "eta_et_err": self.efficiency_err,
                          "tau_da_ns": self.tau_da_ns, "tau_da_err_ns": self.tau_da_err_ns,
                          "tau_d_ns": self.tau_d_ns, "tau_d_err_ns": self.tau_d_err_ns})

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.report()


def energy_transfer_efficiency(tau_da, tau_da_err, tau_d, tau_d_err) -> EnergyTransferResult:
    """η_ET = 1 − τ_DA/τ_D (donor with / without acceptor; lifetimes in ns).

    σ_η = (τ_DA/τ_D)·√((σ_DA/τ_DA)² + (σ_D/τ_D)²), the two fits being independent. For
    multi-exponential donors pass the amplitude-weighted average (``tau_amp_ns``) and say so.
    """
    da, d = check.positive("tau_da", tau_da), check.positive("tau_d", tau_d)
    da_err, d_err = (check.finite(n, v) for n, v in (("tau_da_err", tau_da_err),
                                                        ("tau_d_err", tau_d_err)))
    for name, v in (("tau_da_err", da_err), ("tau_d_err", d_err)):
        if v < 0:
            raise ValueError(f"{name}={v!r} is out of range; allowed range: >= 0")
    ratio = da / d
    err = ratio * math.hypot(da_err / da, d_err / d)
    return EnergyTransferResult(1.0 - ratio, err, da, da_err, d, d_err)
