"""Fitting engine for histogram counts: Poisson maximum likelihood or Neyman least squares.

Objectives (``reference/fitting.md`` §3.3), summed over the channels of the fit range:

* ``"mle"`` — the Poisson deviance D = 2 Σ [μ − y + y ln(y/μ)]. Minimising D is maximising the
  Poisson likelihood; D is also the goodness-of-fit statistic (≈ χ² with ν degrees of freedom
  when counts are large). It is written as a sum of squared *deviance residuals*
  r = sign(y − μ)·√d, so ``scipy.optimize.least_squares`` (trust region, bounds) minimises the
  exact deviance; its Gauss–Newton step uses ∂r/∂μ = (1 − y/μ)/r (→ −1/√μ as y → μ).
* ``"neyman"`` — χ² = Σ (y − μ)²/max(y, 1), FluoFit-compatible; biased low at low counts.

Covariance: the inverse of the *expected* Fisher information at the optimum, Jᵀ diag(1/μ̂) J for
the MLE (the Cramér–Rao covariance; it does not depend on the noise of y, so it is stable at low
counts where the observed Hessian can be indefinite), and (Jᵀ diag(1/max(y,1)) J)⁻¹ for Neyman
weights. Neither is scaled by the reduced statistic: Poisson variances are known.

A model is any object with ``evaluate(theta) -> (mu, jac)`` on the whole axis (see
``decay_models``); ``free`` selects the parameters that vary, the others stay at ``theta``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

METHODS = ("mle", "neyman")
#: Floor on the model (counts per channel): a zero model under a non-zero count is a huge, finite
#: residual rather than an infinite one.
MU_FLOOR = 1e-12


def deviance_residuals(y, mu):
    """Signed deviance residuals r (Σr² = Poisson deviance) and ∂r/∂μ."""
    y = np.asarray(y, dtype=float)
    mu = np.maximum(np.asarray(mu, dtype=float), MU_FLOOR)
    r, dr = np.empty_like(mu), np.empty_like(mu)
    zero = y <= 0
    root = np.sqrt(2.0 * mu[zero])                      # y = 0: d = 2μ
    r[zero], dr[zero] = -root, -1.0 / root
    pos = ~zero
    yp, mp = y[pos], mu[pos]
    z = (mp - yp) / yp
    half = z - np.log1p(z)                              # d = 2y·(z − ln(1 + z))
    small = np.abs(z) < 1e-3                            # series where the difference cancels
    zs = z[small]
    half[small] = zs * zs * (0.5 - zs / 3.0 + zs * zs / 4.0 - zs ** 3 / 5.0)
    rp = np.sign(yp - mp) * np.sqrt(2.0 * yp * half)
    with np.errstate(divide="ignore", invalid="ignore"):
        drp = (1.0 - yp / mp) / rp
    tiny = np.abs(rp) <= 1e-8 * np.sqrt(mp)             # limit y → μ: ∂r/∂μ = −1/√μ
    drp[tiny] = -1.0 / np.sqrt(mp[tiny])
    r[pos], dr[pos] = rp, drp
    return r, dr


def residuals(y, mu, method: str):
    """Residual vector whose sum of squares is the objective, and its derivative ∂r/∂μ."""
    if method == "mle":
        return deviance_residuals(y, mu)
    sigma = np.sqrt(np.maximum(np.asarray(y, dtype=float), 1.0))
    return (np.asarray(y, dtype=float) - mu) / sigma, -1.0 / sigma


def objective(y, mu, method: str) -> float:
    """Deviance (``"mle"``) or Neyman χ² (``"neyman"``)."""
    r, _ = residuals(y, mu, method)
    return float(np.sum(r * r))


def fisher_covariance(jac, mu, y, method: str) -> np.ndarray:
    """Inverse expected Fisher information (see module docstring); NaN if singular."""
    w = 1.0 / np.maximum(mu, MU_FLOOR) if method == "mle" else 1.0 / np.maximum(y, 1.0)
    info = (jac * w[:, None]).T @ jac
    scale = np.sqrt(np.diag(info))
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        return np.full(info.shape, np.nan)
    try:
        inv = np.linalg.inv(info / np.outer(scale, scale))   # equilibrated: scales differ by 1e8
    except np.linalg.LinAlgError:
        return np.full(info.shape, np.nan)
    return inv / np.outer(scale, scale)


@dataclass
class CountFit:
    """Outcome of ``fit_counts``: internal parameters, objective, covariance of the free ones."""

    theta: np.ndarray
    free: np.ndarray
    objective: float
    cov_free: np.ndarray
    mu: np.ndarray
    n_points: int
    success: bool
    message: str
    nfev: int

    @property
    def dof(self) -> int:
        return self.n_points - int(self.free.sum())


def _transform(lower, upper):
    """lmfit-style maps from an unbounded p to θ within [lower, upper], for MINPACK.

    Returns (to_theta, dtheta_dp, to_p): θ = p (no bounds), θ = lo + p² (lower bound only) or
    θ = lo + (hi − lo)(1 + sin p)/2 (both bounds).
    """
    lo, hi = np.asarray(lower, float), np.asarray(upper, float)
    half = np.where(np.isfinite(hi - lo), 0.5 * (hi - lo), 1.0)
    one = np.isfinite(lo) & ~np.isfinite(hi)
    two = np.isfinite(lo) & np.isfinite(hi)
    base = np.where(np.isfinite(lo), lo, 0.0)

    def to_theta(p):
        return np.where(one, base + p * p, np.where(two, base + half * (1.0 + np.sin(p)), p))

    def dtheta(p):
        return np.where(one, 2.0 * p, np.where(two, half * np.cos(p), 1.0))

    def to_p(theta, floor):
        th = np.clip(theta, lo, hi)
        with np.errstate(invalid="ignore"):
            # a start exactly on a bound has zero gradient in p, so begin slightly inside
            p_one = np.sqrt(np.maximum(th - base, floor))
            p_two = np.arcsin(np.clip((th - base) / half - 1.0, -0.999, 0.999))
        return np.where(one, p_one, np.where(two, p_two, th))

    return to_theta, dtheta, to_p


def fit_counts(model, y, mask, theta0, free, lower, upper, method: str, *,
               tol: float = 1e-10, max_nfev: int = 400, covariance: bool = True) -> CountFit:
    """Minimise the objective over the free parameters, each within [lower, upper].

    Bounds enter through ``_transform`` so that the problem goes to MINPACK's unconstrained
    Levenberg–Marquardt, several times faster than a bounded trust-region solver for these
    small problems (which matters in profile likelihoods and Monte Carlo studies).
    """
    y_fit = np.asarray(y, dtype=float)[mask]
    free = np.asarray(free, dtype=bool)
    theta = np.array(theta0, dtype=float)
    to_theta, dtheta, to_p = _transform(np.asarray(lower, float)[free],
                                        np.asarray(upper, float)[free])
    start = to_p(theta[free], 1e-6 * max(float(y_fit.max()), 1.0))

    def full(p):
        t = theta.copy()
        t[free] = to_theta(p)
        return t

    def fun(p):
        mu, _ = model.evaluate(full(p))
        return residuals(y_fit, mu[mask], method)[0]

    def jac(p):
        mu, j = model.evaluate(full(p))
        return residuals(y_fit, mu[mask], method)[1][:, None] * j[mask][:, free] * dtheta(p)

    sol = least_squares(fun, start, jac=jac, method="lm", x_scale="jac", ftol=tol, xtol=tol,
                        gtol=tol, max_nfev=max_nfev)
    theta = full(sol.x)
    mu, j = model.evaluate(theta)
    cov = (fisher_covariance(j[mask][:, free], mu[mask], y_fit, method) if covariance
           else np.full((free.sum(), free.sum()), np.nan))
    return CountFit(theta, free, objective(y_fit, mu[mask], method), cov, mu.copy(),
                    int(mask.sum()), bool(sol.success), str(sol.message), int(sol.nfev))
