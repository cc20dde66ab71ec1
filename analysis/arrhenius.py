"""Arrhenius fit of the Orbach regime: ln τ = ln τ0 + U_eff/T on the high-temperature linear part.

U_eff is U/k_B in K (also reported in cm⁻¹, 1 cm⁻¹ = 1.4388 K), τ0 in s. The fit is a weighted
linear regression of y = ln τ on x = 1/T; weights are 1/σ² with σ(ln τ) = ln10 · σ(log10 rate)
(ccfit2's error bar, see :mod:`.relaxation_fit`). As for Curie–Weiss, the covariance is scaled
by χ²_red unless ``absolute_sigma=True``.

Automatic window (``auto_window=True`` and no ``t_min_K``): below the Orbach regime the other
mechanisms (QTM, Raman, direct) *add* rate, so ln τ vs 1/T bends *down* from the straight
line at low T. The points are sorted by decreasing T; each window "the m hottest points"
(m ≥ ``min_points``) is tested twice at level ``alpha`` (default 0.05), and the chosen window
is the *largest* one that passes both tests (so a spurious failure of a small, noisy window
does not truncate the window, while the growing curvature of the QTM/Raman region keeps
failing):

1. prediction test: the added (colder) point is compared with the line through the hotter
   points, t = (ln τ − prediction)/σ_pred with the scatter of those points as noise scale,
   one-sided (only a point *below* the line — faster relaxation — fails), Student t, m − 3 dof;
2. curvature test: a quadratic in 1/T against the line over the whole window, F-test of the
   extra term, F = (χ²_line − χ²_quad)/(χ²_quad/(m − 3)).

Both use the scatter of the data as the noise scale, so they work whether the error bars are
measurement errors or, as ccfit2's, distribution widths. If no window passes, the
``min_points`` hottest points are used. Every rung is reported in :class:`ArrheniusWindowTable`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import f as f_dist
from scipy.stats import t as t_dist

from . import _validate as check
from .curie_weiss import weighted_linear_fit
from .relaxation_result import format_param
from .relaxation_terms import K_PER_CM1, LN10
from .results import Curve, FitResult, format_table, format_value, json_safe

#: Smallest number of points in an automatic window (a quadratic needs 4 for one dof).
MIN_POINTS = 4
#: Significance level of the curvature F-test.
ALPHA = 0.05


@dataclass
class ArrheniusWindowTable:
    """U_eff and τ0 for every candidate window "T ≥ t_min" (hottest points first)."""

    t_min_K: np.ndarray
    n_points: np.ndarray
    U_K: np.ndarray
    U_err_K: np.ndarray
    tau0_s: np.ndarray
    chi2_red: np.ndarray
    curvature_p: np.ndarray   # p-value of the quadratic term (NaN with < 4 points)
    prediction_p: np.ndarray  # one-sided p-value of the coldest point vs the hotter ones' line
    chosen_t_min_K: float

    @property
    def U_spread_K(self) -> float:
        ok = np.isfinite(self.U_K)
        return float(np.ptp(self.U_K[ok])) if ok.any() else math.nan

    def report(self) -> str:
        rows = [(f"T >= {lo:.4g} K (n={n}){' *' if lo == self.chosen_t_min_K else ''}",
                 f"U = {format_value(u, e)} K, τ0 = {t0:.3g} s, p_pred = {pp:.2g}, "
                 f"p_curv = {pc:.2g}")
                for lo, n, u, e, t0, pp, pc in zip(self.t_min_K, self.n_points, self.U_K,
                                                   self.U_err_K, self.tau0_s, self.prediction_p,
                                                   self.curvature_p)]
        rows.append(("U spread", f"{format_value(self.U_spread_K)} K"))
        return format_table("Arrhenius window sensitivity (* = chosen)", rows)

    def to_dict(self) -> dict:
        return json_safe({"window_t_min_K": self.t_min_K, "window_n_points": self.n_points,
                          "window_U_K": self.U_K, "window_U_err_K": self.U_err_K,
                          "window_tau0_s": self.tau0_s, "window_chi2_red": self.chi2_red,
                          "window_curvature_p": self.curvature_p,
                          "window_prediction_p": self.prediction_p,
                          "window_chosen_t_min_K": self.chosen_t_min_K,
                          "window_U_spread_K": self.U_spread_K})


@dataclass
class ArrheniusResult(FitResult):
    """``params``: ``U`` (K), ``tau0`` (s). ``curve``: ln τ vs 1/T over the window.

    ``used`` is the boolean mask of the input points (``temperature_K``, ``tau_s``) inside the
    window; ``window`` the :class:`ArrheniusWindowTable`; ``window_mode`` is ``"auto"``,
    ``"t_min_K"`` or ``"all"``.
    """

    temperature_K: np.ndarray | None = None
    tau_s: np.ndarray | None = None
    used: np.ndarray | None = None
    window: ArrheniusWindowTable | None = None
    window_mode: str = "auto"
    ln_tau0_err: float = math.nan

    @property
    def U_K(self) -> float:
        return self.params["U"]

    @property
    def U_cm1(self) -> float:
        return self.params["U"] / K_PER_CM1

    @property
    def tau0_s(self) -> float:
        return self.params["tau0"]

    @property
    def used_temperature_K(self) -> np.ndarray:
        """Temperatures (K) of the points in the fit window."""
        return self.temperature_K[self.used]

    def tau(self, temperature_K) -> np.ndarray:
        """Model τ (s) = τ0·exp(U/T)."""
        return self.tau0_s * np.exp(self.U_K / np.asarray(temperature_K, float))

    def report(self) -> str:
        rows = [("U_K", format_value(self.U_K, self.stderr["U"])),
                ("U_cm-1", format_value(self.U_cm1, self.stderr["U"] / K_PER_CM1)),
                ("tau0_s", format_param(self.tau0_s, self.stderr["tau0"])),
                ("window", f"{self.extras['fit_t_min_K']:.4g}–{self.extras['fit_t_max_K']:.4g}"
                           f" K ({self.window_mode})"),
                ("n_points", str(self.n_points)), ("chi2_red", format_value(self.chi2_red))]
        return "\n".join([format_table("Fit: arrhenius", rows), self.window.report()])

    def to_dict(self, *, include_curve: bool = False) -> dict:
        out = super().to_dict(include_curve=include_curve)
        out["ln_tau0_err"] = self.ln_tau0_err
        out["window_mode"] = self.window_mode
        out["used_temperature_K"] = self.used_temperature_K
        out.update(self.window.to_dict())
        return json_safe(out)


def _poly_chi2(x, y, w, degree: int) -> float:
    a = np.vander(x, degree + 1) * np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(a, y * np.sqrt(w), rcond=None)
    return float(np.sum((a @ coef - y * np.sqrt(w)) ** 2))


def _curvature_p(x, y, w) -> float:
    """p-value of the quadratic term in 1/T (NaN with fewer than 4 points)."""
    if x.size < 4:
        return math.nan
    chi_lin, chi_quad = _poly_chi2(x, y, w, 1), _poly_chi2(x, y, w, 2)
    dof = x.size - 3
    if chi_quad <= 1e-300 * max(chi_lin, 1.0):
        return 0.0 if chi_lin > 1e-24 else 1.0
    return float(f_dist.sf((chi_lin - chi_quad) / (chi_quad / dof), 1, dof))


def _prediction_p(x, y, w) -> float:
    """One-sided p that the last point lies this far *below* the line through the others."""
    if x.size < 4:
        return math.nan
    a, b, cov, chi2_red = weighted_linear_fit(x[:-1], y[:-1], w[:-1], False)
    var = chi2_red / w[-1] + cov[0, 0] + 2 * x[-1] * cov[0, 1] + x[-1] ** 2 * cov[1, 1]
    if var <= 0:
        return 0.0 if y[-1] < a + b * x[-1] else 1.0
    return float(t_dist.cdf((y[-1] - a - b * x[-1]) / math.sqrt(var), x.size - 3))


def arrhenius_fit(temperature_K, tau_s, *, log10_rate_err=None, t_min_K: float | None = None,
                  auto_window: bool = True, min_points: int = MIN_POINTS, alpha: float = ALPHA,
                  absolute_sigma: bool = False) -> ArrheniusResult:
    """Fit ln τ = ln τ0 + U/T on the high-T linear part (window rule in the module docstring).

    temperature_K : array, K (> 0). tau_s : array, s (> 0).
    log10_rate_err : optional σ of log10(1/τ) per point (σ(ln τ) = ln10 × this).
    t_min_K : explicit lower bound of the window (K); overrides ``auto_window``.
    auto_window : choose the window automatically; False with no ``t_min_K`` uses all points.
    """
    t = check.array("temperature_K", temperature_K, min_length=3, positive_values=True)
    tau = check.array("tau_s", tau_s, length=t.size, positive_values=True)
    err = None if log10_rate_err is None else check.array(
        "log10_rate_err", log10_rate_err, length=t.size, positive_values=True)
    min_points = int(min_points)
    if not 3 <= min_points <= t.size:
        raise ValueError(f"min_points={min_points!r} is out of range; allowed range: 3 to "
                         f"{t.size} (the number of points)")
    if not 0 < float(alpha) < 1:
        raise ValueError(f"alpha={alpha!r} is out of range; allowed range: 0 < alpha < 1")
    x, y = 1.0 / t, np.log(tau)
    w = np.ones_like(y) if err is None else 1.0 / (LN10 * err) ** 2
    order = np.argsort(-t, kind="stable")
    rungs = list(range(min(3, t.size), t.size + 1))
    table = np.full((6, len(rungs)), np.nan)
    for i, m in enumerate(rungs):
        sel = order[:m]
        a, b, cov, chi2_red = weighted_linear_fit(x[sel], y[sel], w[sel], absolute_sigma)
        table[:, i] = (b, math.sqrt(max(cov[1, 1], 0.0)), math.exp(a), chi2_red,
                       _curvature_p(x[sel], y[sel], w[sel]),
                       _prediction_p(x[sel], y[sel], w[sel]))
    if t_min_K is not None:
        lo = check.positive("t_min_K", t_min_K)
        mode, used = "t_min_K", t >= lo
        if used.sum() < 3:
            raise ValueError(f"t_min_K={lo!r} leaves {int(used.sum())} points (data span "
                             f"{t.min():.4g}–{t.max():.4g} K); allowed: a bound with at least 3 "
                             "points at or above it")
    else:
        mode, m = ("auto", min_points) if auto_window else ("all", t.size)
        if mode == "auto":
            passing = [size for i, size in enumerate(rungs) if size >= min_points and
                       table[4, i] >= alpha and table[5, i] >= alpha]
            m = max(passing, default=min_points)
        used = np.zeros(t.size, dtype=bool)
        used[order[:m]] = True
    a, b, cov, chi2_red = weighted_linear_fit(x[used], y[used], w[used], absolute_sigma)
    if b <= 0:
        raise ValueError(f"fitted slope of ln τ vs 1/T is {b!r} K (≤ 0) on T ≥ "
                         f"{t[used].min():.4g} K; allowed: τ growing on cooling (U > 0)")
    tau0, err_u, err_a = math.exp(a), math.sqrt(max(cov[1, 1], 0.0)), math.sqrt(
        max(cov[0, 0], 0.0))
    chosen = float(t[used].min())
    window = ArrheniusWindowTable(t[order[np.array(rungs) - 1]], np.array(rungs), table[0],
                                  table[1], table[2], table[3], table[4], table[5], chosen)
    grid = np.linspace(x[used].min(), x[used].max(), 50)
    cov_phys = np.array([[cov[1, 1], cov[1, 0] * tau0], [cov[0, 1] * tau0, cov[0, 0] * tau0 ** 2]])
    return ArrheniusResult(
        model="arrhenius", params={"U": b, "tau0": tau0},
        stderr={"U": err_u, "tau0": tau0 * err_a}, covariance=cov_phys, chi2_red=chi2_red,
        n_points=int(used.sum()), curve=Curve(grid, a + b * grid, "inv_temperature_per_K",
                                              "ln_tau_s"),
        units={"U": "K", "tau0": "s"},
        extras={"U_cm1": b / K_PER_CM1, "U_err_cm1": err_u / K_PER_CM1,
                "fit_t_min_K": chosen, "fit_t_max_K": float(t[used].max())},
        temperature_K=t, tau_s=tau, used=used, window=window, window_mode=mode,
        ln_tau0_err=err_a)
