"""Curie–Weiss fits: 1/χ = (T − θ)/C on a high-temperature window.

The fit is a weighted linear regression of y = 1/χ = a + b·T (b = 1/C, a = −θ/C), solved in
closed form; the covariance of (a, b) is propagated to (C, θ) with the exact Jacobian.

Uncertainty convention: like ``scipy.optimize.curve_fit(absolute_sigma=False)`` and ccfit2, the
covariance is scaled by the reduced χ² by default, so magnetometer error bars act as *relative*
weights (MPMS "Std. Err." columns are often dominated by systematic fit errors). Pass
``absolute_sigma=True`` to trust ``sigma`` as absolute standard deviations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _validate as check
from .results import Curve, FitResult, format_table, format_value, json_safe

#: μ_eff = sqrt(8·C): the customary form (exact: sqrt(3k_B C / N_A μ_B²) = 2.8279·sqrt(C)).
MU_EFF_FACTOR = 8.0
#: Lower bounds (K) of the window-sensitivity ladder (as cryosweep reports it).
DEFAULT_LADDER_K = (50.0, 75.0, 100.0, 125.0, 150.0, 175.0, 200.0, 225.0)


@dataclass
class CurieWeissResult(FitResult):
    """Curie–Weiss fit. ``params``: ``curie_constant`` (emu K mol⁻¹), ``theta`` (K)."""

    @property
    def curie_constant_emu_K_per_mol(self) -> float:
        return self.params["curie_constant"]

    @property
    def theta_K(self) -> float:
        return self.params["theta"]

    @property
    def mu_eff_muB(self) -> float:
        return self.extras["mu_eff_muB"]

    def chi(self, t_k) -> np.ndarray:
        """Model χ(T) = C/(T − θ), emu mol⁻¹ Oe⁻¹."""
        return self.curie_constant_emu_K_per_mol / (np.asarray(t_k, float) - self.theta_K)


def _inputs(t_k, chi, sigma):
    t = check.array("T_K", t_k)
    c = check.array("chi_emu_per_mol_Oe", chi, length=t.size)
    s = None if sigma is None else check.array("sigma", sigma, length=t.size, positive_values=True)
    return t, c, s


def weighted_linear_fit(t, y, w, absolute_sigma):
    """Weighted least squares y = a + b t. Returns (a, b, cov_ab, chi2_red)."""
    x = np.column_stack([np.ones_like(t), t])
    xtw = x.T * w
    cov = np.linalg.inv(xtw @ x)
    a, b = cov @ (xtw @ y)
    resid = y - (a + b * t)
    dof = t.size - 2
    chi2_red = float(np.sum(w * resid ** 2) / dof)
    if not absolute_sigma:
        cov = cov * chi2_red
    return float(a), float(b), cov, chi2_red


def fit_curie_weiss(T_K, chi_emu_per_mol_Oe, *, t_min_K: float = 150.0, t_max_K: float = 300.0,
                    sigma=None, absolute_sigma: bool = False) -> CurieWeissResult:
    """Fit 1/χ = (T − θ)/C to the points with ``t_min_K <= T <= t_max_K``.

    Parameters
    ----------
    T_K : array, K
    chi_emu_per_mol_Oe : array, molar susceptibility (emu mol⁻¹ Oe⁻¹ = cm³ mol⁻¹), diamagnetism
        already subtracted.
    t_min_K, t_max_K : fit window, K (inclusive).
    sigma : optional array, standard deviation of χ (same units); σ(1/χ) = σ/χ².
    absolute_sigma : see module docstring.

    Returns
    -------
    CurieWeissResult with C (emu K mol⁻¹), θ (K), their errors and covariance, μ_eff = √(8C) (μ_B),
    the window and the number of points.
    """
    t, chi, s = _inputs(T_K, chi_emu_per_mol_Oe, sigma)
    lo = check.finite("t_min_K", t_min_K)
    hi = check.finite("t_max_K", t_max_K)
    if lo >= hi:
        raise ValueError(f"t_min_K={lo!r} must be < t_max_K={hi!r}; allowed: t_min_K < t_max_K")
    sel = (t >= lo) & (t <= hi)
    n = int(sel.sum())
    if n < 3:
        raise ValueError(f"Curie–Weiss window t_min_K={lo!r}..t_max_K={hi!r} holds {n} points "
                         f"(data span {t.min():.4g}–{t.max():.4g} K); allowed: at least 3 points")
    t, chi = t[sel], chi[sel]
    if (chi <= 0).any():
        i = int(np.flatnonzero(chi <= 0)[0])
        raise ValueError(f"chi_emu_per_mol_Oe={chi[i]!r} at T={t[i]:.4g} K is out of range; "
                         "allowed range: > 0 in the Curie–Weiss window (paramagnet)")
    y = 1.0 / chi
    w = np.ones_like(y) if s is None else (chi ** 2 / s[sel]) ** 2
    a, b, cov_ab, chi2_red = weighted_linear_fit(t, y, w, absolute_sigma)
    if b <= 0:
        raise ValueError(f"fitted slope of 1/χ vs T is {b!r} (≤ 0) on {lo}–{hi} K; allowed: a "
                         "positive slope (Curie–Weiss behaviour)")
    curie, theta = 1.0 / b, -a / b
    jac = np.array([[0.0, -1.0 / b ** 2], [-1.0 / b, a / b ** 2]])  # d(C, θ)/d(a, b)
    cov = jac @ cov_ab @ jac.T
    err_c, err_t = (float(math.sqrt(max(v, 0.0))) for v in np.diag(cov))
    mu = math.sqrt(MU_EFF_FACTOR * curie)
    grid = np.linspace(t.min(), t.max(), 60)
    return CurieWeissResult(
        model="curie_weiss",
        params={"curie_constant": curie, "theta": theta},
        stderr={"curie_constant": err_c, "theta": err_t},
        covariance=cov,
        chi2_red=chi2_red,
        n_points=n,
        curve=Curve(grid, (grid - theta) / curie, "T_K", "inv_chi_mol_Oe_per_emu"),
        units={"curie_constant": "emu_K_per_mol", "theta": "K"},
        extras={"mu_eff_muB": mu, "mu_eff_err_muB": MU_EFF_FACTOR * err_c / (2 * mu),
                "cw_t_min_K": lo, "cw_t_max_K": hi,
                "cw_t_span_K": [float(t.min()), float(t.max())]},
    )


@dataclass
class WindowSensitivity:
    """θ and C for a ladder of lower window bounds at fixed upper bound."""

    t_min_K: np.ndarray
    t_max_K: float
    theta_K: np.ndarray
    theta_err_K: np.ndarray
    curie_constant_emu_K_per_mol: np.ndarray
    n_points: np.ndarray

    @property
    def theta_spread_K(self) -> float:
        """max − min of θ over the rungs that could be fitted (NaN if none)."""
        ok = np.isfinite(self.theta_K)
        return float(np.ptp(self.theta_K[ok])) if ok.any() else float("nan")

    def report(self) -> str:
        rows = [(f"T >= {lo:g} K (n={n})", f"θ = {format_value(th, e)} K, C = {format_value(c)}")
                for lo, th, e, c, n in zip(self.t_min_K, self.theta_K, self.theta_err_K,
                                           self.curie_constant_emu_K_per_mol, self.n_points)]
        rows.append(("theta spread", f"{format_value(self.theta_spread_K)} K"))
        title = f"Curie–Weiss window sensitivity (upper bound {self.t_max_K:g} K)"
        return format_table(title, rows)

    def to_dict(self) -> dict:
        return json_safe({"window_t_min_K": self.t_min_K, "window_t_max_K": self.t_max_K,
                          "window_theta_K": self.theta_K, "window_theta_err_K": self.theta_err_K,
                          "window_curie_constant_emu_K_per_mol": self.curie_constant_emu_K_per_mol,
                          "window_n_points": self.n_points,
                          "window_theta_spread_K": self.theta_spread_K})


def window_sensitivity(T_K, chi_emu_per_mol_Oe, *, lower_bounds_K=DEFAULT_LADDER_K,
                       t_max_K: float = 300.0, sigma=None) -> WindowSensitivity:
    """Refit with each lower bound in ``lower_bounds_K``; rungs with < 3 points give NaN."""
    t, chi, s = _inputs(T_K, chi_emu_per_mol_Oe, sigma)
    bounds = check.array("lower_bounds_K", lower_bounds_K)
    out = np.full((3, bounds.size), np.nan)
    counts = np.zeros(bounds.size, dtype=int)
    for i, lo in enumerate(bounds):
        counts[i] = int(((t >= lo) & (t <= t_max_K)).sum())
        if counts[i] < 3 or lo >= t_max_K:
            continue
        try:
            r = fit_curie_weiss(t, chi, t_min_K=lo, t_max_K=t_max_K, sigma=s)
        except ValueError:
            continue
        out[:, i] = r.theta_K, r.stderr["theta"], r.curie_constant_emu_K_per_mol
    return WindowSensitivity(bounds, float(t_max_K), out[0], out[1], out[2], counts)
