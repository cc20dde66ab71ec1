"""TCSPC photoluminescence lifetimes: reconvolution fits with a measured IRF, tail fits, η_ET.

``fit_decay`` fits 1–3 exponentials convolved with the measured IRF (``decay_models``), with a
sub-channel IRF shift, a constant background and, for lasers whose period is comparable to τ, the
tails of earlier pulses. The default objective is the Poisson deviance (maximum likelihood);
``method="neyman"`` gives FluoFit-style weighted least squares (``count_fit``). Practice follows
``reference/fitting.md`` §3: MLE is unbiased and reaches F ≈ 1 from ~100 photons, Neyman χ² is
biased low below ~10⁴ counts.

Uncertainties: ``stderr`` from the expected Fisher information at the optimum (``count_fit``);
``tauN_profile_low_ns``/``_high_ns`` from the profile likelihood (``lifetime_uncertainty``).
``chi2_red`` holds the minimised statistic per degree of freedom (deviance/ν for the MLE,
Neyman χ²/ν otherwise); ``extras`` carries all three (deviance, Neyman, Pearson).

Units: time in ns, counts per channel. Parameter keys in ``to_dict``: ``tau1_ns``,
``amp1_counts`` (decay height right after a δ pulse), ``background_counts``, ``shift_ns``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq, nnls

from . import _validate as check
from .count_fit import METHODS, CountFit, fit_counts, objective, residuals
from .decay_models import ReconvolutionModel, TailModel, fwhm_channels, normalised_irf
from .lifetime_uncertainty import (average_lifetimes, delta_objective,
                                   energy_transfer_efficiency, profile_interval)
from .results import Curve, FitResult

__all__ = ["DecayCurve", "DecayFitResult", "energy_transfer_efficiency", "fit_decay",
           "tail_fit"]

MIN_CHANNELS = 8
UNITS = {"tau": "ns", "amp": "counts", "background": "counts", "shift": "ns"}
#: Relative start values of the extra components tried for 2 and 3 exponentials (× τ of a
#: one-exponential pre-fit); the start with the lowest objective wins.
MULTI_STARTS = {2: ((0.25, 1.3), (1 / 12, 1.1)), 3: ((0.05, 0.25, 1.3), (0.125, 0.5, 1.5))}
#: Default tail-fit start: this many IRF FWHM after the IRF maximum (fitting.md: ≥ ~5).
TAIL_START_FWHM = 10.0


@dataclass(frozen=True)
class DecayCurve(Curve):
    """Model counts on the fit range; call it (``curve(full_range=True)``) for the whole axis."""

    full_x: np.ndarray | None = None
    full_y: np.ndarray | None = None

    def __call__(self, full_range: bool = False) -> Curve:
        if full_range:
            return Curve(self.full_x, self.full_y, self.x_name, self.y_name)
        return Curve(self.x, self.y, self.x_name, self.y_name)


@dataclass
class DecayFitResult(FitResult):
    """Lifetime fit. ``params``: ``tau1..n`` (ns, ascending), ``amp1..n``, ``background``
    (counts per channel) and, for reconvolution, ``shift`` (ns). ``residuals`` are deviance
    residuals (MLE) or Neyman-weighted residuals on ``curve.x``."""

    time_ns: np.ndarray | None = None
    counts: np.ndarray | None = None
    best_fit: np.ndarray | None = None
    residuals: np.ndarray | None = None
    method: str = "mle"

    @property
    def n_exp(self) -> int:
        return int(self.extras["n_exp"])

    @property
    def taus_ns(self) -> np.ndarray:
        return np.array([self.params[f"tau{i + 1}"] for i in range(self.n_exp)])

    @property
    def tau_errs_ns(self) -> np.ndarray:
        return np.array([self.stderr[f"tau{i + 1}"] for i in range(self.n_exp)])

    @property
    def amplitudes(self) -> np.ndarray:
        return np.array([self.params[f"amp{i + 1}"] for i in range(self.n_exp)])

    @property
    def tau_amp_ns(self) -> float:
        return self.extras["tau_amp_ns"]

    @property
    def tau_int_ns(self) -> float:
        return self.extras["tau_int_ns"]

    @property
    def profile_intervals_ns(self) -> dict[str, tuple[float, float]]:
        """``{"tau1": (low, high)}`` profile-likelihood limits (empty if not computed)."""
        out = {}
        for i in range(self.n_exp):
            key = f"tau{i + 1}_profile_low_ns"
            if key in self.extras:
                out[f"tau{i + 1}"] = (self.extras[key], self.extras[f"tau{i + 1}_profile_high_ns"])
        return out


# -- input checks ----------------------------------------------------------------------------
def _axis(time_ns) -> tuple[np.ndarray, float]:
    t = check.array("time_ns", time_ns, min_length=MIN_CHANNELS)
    d = np.diff(t)
    width = float(np.median(d))
    if not width > 0 or np.max(np.abs(d - width)) > 1e-3 * width:
        raise ValueError(f"time_ns steps range {d.min()!r}..{d.max()!r} ns; allowed: one constant "
                         "step > 0 (a TCSPC histogram axis)")
    return t, width


def _counts(name: str, value, n: int) -> np.ndarray:
    a = check.array(name, value, length=n)
    if (a < 0).any():
        i = int(np.flatnonzero(a < 0)[0])
        raise ValueError(f"{name}[{i}]={float(a[i])!r} is out of range; allowed range: >= 0 "
                         "(photon counts per channel)")
    return a


def _options(n_exp, method) -> None:
    if isinstance(n_exp, bool) or not isinstance(n_exp, (int, np.integer)) or not 1 <= n_exp <= 3:
        raise ValueError(f"n_exp={n_exp!r} is out of range; allowed: 1, 2 or 3")
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not allowed; choose one of {list(METHODS)}")


def _fixed_or_free(name: str, value) -> tuple[bool, float]:
    """``True`` = fitted (start 0), ``False`` = fixed at 0, a number = fixed at that value."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value), 0.0
    return False, check.finite(name, value)


def _window(t, width, lo, hi, name: str, n_free: int) -> np.ndarray:
    a, b = t[0] - 0.5 * width, t[-1] + 0.5 * width
    if not lo < hi or lo < a or hi > b:
        raise ValueError(f"{name}=({lo!r}, {hi!r}) ns is out of range; allowed: "
                         f"{t[0]:g} <= low < high <= {t[-1]:g} ns (the time axis)")
    mask = (t >= lo) & (t <= hi)
    if mask.sum() < n_free + 2:
        raise ValueError(f"{name}=({lo!r}, {hi!r}) ns holds {int(mask.sum())} channels; allowed: "
                         f"at least {n_free + 2} for {n_free} free parameters")
    return mask


def _range(t, width, fit_range, n_free) -> np.ndarray:
    if fit_range is None:
        return _window(t, width, t[0], t[-1], "fit_range", n_free)
    pair = list(fit_range) if isinstance(fit_range, (tuple, list, np.ndarray)) else []
    if len(pair) != 2:
        raise ValueError(f"fit_range={fit_range!r} is not allowed; allowed: a (low, high) pair "
                         "in ns")
    lo, hi = (check.finite("fit_range", v) for v in pair)
    return _window(t, width, lo, hi, "fit_range", n_free)


# -- start values ----------------------------------------------------------------------------
def _moment_tau(t, y, b0, t_ref, t_end) -> float:
    """τ from the mean delay of a truncated exponential: m = τ − L/(e^(L/τ) − 1)."""
    sel = (t >= t_ref) & (t <= t_end)
    w = np.clip(y[sel] - b0, 0.0, None)
    span = max(t_end - t_ref, 1e-9)
    if w.sum() <= 0:
        return span / 5.0
    m = max(float((w * (t[sel] - t_ref)).sum() / w.sum()), 1e-5 * span)
    if m >= 0.499 * span:
        return 10.0 * span
    with np.errstate(over="ignore"):
        return float(brentq(lambda tau: tau - span / np.expm1(span / tau) - m,
                            1e-6 * span, 1e3 * span))


def _linear_start(model, theta, y, mask, free) -> np.ndarray:
    """Amplitudes (and background if free) by weighted least squares (non-negative for one
    exponential; signed for several, so a rise can be started)."""
    n = model.n_exp
    cols = model.evaluate(theta)[1][mask][:, n:2 * n]          # ∂μ/∂A_i: unit-height shapes
    bfree = free[2 * n]
    design = np.column_stack([cols, np.ones(mask.sum())]) if bfree else cols
    target = y[mask] - (0.0 if bfree else theta[2 * n])
    w = 1.0 / np.sqrt(np.maximum(y[mask], 1.0))
    if n > 1:       # signed amplitudes: a rise term starts negative
        coef = np.linalg.lstsq(design * w[:, None], target * w, rcond=None)[0]
    else:
        coef, _ = nnls(design * w[:, None], target * w)
    out = theta.copy()
    out[n:2 * n] = np.where(coef[:n] != 0, coef[:n], 1e-3 * max(y[mask].max(), 1.0))
    if bfree:
        out[2 * n] = max(coef[n], 0.0)
    return out


def _apply_p0(theta, names, free, p0, n) -> np.ndarray:
    for key, value in (p0 or {}).items():
        if key not in names:
            raise ValueError(f"p0 key {key!r} is not a parameter; allowed: {names}")
        idx = names.index(key)
        if not free[idx]:
            raise ValueError(f"p0 key {key!r} names a fixed parameter (its value is set by the "
                             f"{key}= argument); allowed: the free parameters "
                             f"{[nm for nm, f in zip(names, free) if f]}")
        v = check.finite(f"p0[{key!r}]", value)
        theta[idx] = math.log(check.positive(f"p0[{key!r}]", v)) if idx < n else v
    return theta


# -- the common fit pipeline -----------------------------------------------------------------
def _run(make_model, n_exp, y, mask, t, free_tail, fixed_tail, tau0, method, p0,
         span_ns, width, profile, confidence):
    """Fit with multi-start for n_exp ≥ 2, then profile each τ. Returns (model, fit, limits)."""
    starts = [(tau0,)] if n_exp == 1 else None
    if n_exp > 1:   # a one-exponential pre-fit sets the scale of the starting lifetimes
        _, pre, _ = _run(make_model, 1, y, mask, t, free_tail, fixed_tail, tau0, method, None,
                         span_ns, width, False, confidence)
        tau1 = math.exp(pre.theta[0])
        starts = [tuple(f * tau1 for f in fs) for fs in MULTI_STARTS[n_exp]]
    model = make_model(n_exp)
    free = np.array([True] * (2 * n_exp) + list(free_tail))
    # with 2-3 exponentials an amplitude may be negative: a rise (acceptor fed by a donor)
    lower = np.array([math.log(width / 20.0)] * n_exp + [-np.inf if n_exp > 1 else 0.0] * n_exp
                     + [0.0]
                     + [-0.1 * span_ns] * (len(free_tail) - 1))
    upper = np.array([math.log(1e3 * span_ns)] * n_exp + [np.inf] * (n_exp + 1)
                     + [0.1 * span_ns] * (len(free_tail) - 1))
    best = None
    for taus in starts:
        theta = np.concatenate([np.log(taus), np.zeros(n_exp), fixed_tail])
        theta = _apply_p0(theta, model.names, free, p0, n_exp)
        theta = _linear_start(model, theta, y, mask, free)
        theta = _apply_p0(theta, model.names, free, p0, n_exp)   # explicit starts win
        fit = fit_counts(model, y, mask, theta, free, lower, upper, method)
        if best is None or fit.objective < best.objective:
            best = fit
    limits = []
    if profile:
        delta = delta_objective(confidence)
        limits = [profile_interval(model, y, mask, best, i, lower, upper, method, delta)
                  for i in range(n_exp)]
    return model, best, limits


def _result(name, model, fit: CountFit, limits, t, y, mask, method, extras) -> DecayFitResult:
    n = model.n_exp
    order = np.argsort(fit.theta[:n])                 # report components with ascending τ
    perm = np.concatenate([order, n + order, np.arange(2 * n, fit.theta.size)])
    theta, free = fit.theta[perm], fit.free[perm]
    cov = np.zeros((theta.size, theta.size))
    cov[np.ix_(fit.free, fit.free)] = fit.cov_free
    scale = np.concatenate([np.exp(theta[:n]), np.ones(theta.size - n)])   # d τ / d ln τ
    cov = cov[np.ix_(perm, perm)] * np.outer(scale, scale)
    values = np.concatenate([np.exp(theta[:n]), theta[n:]])
    err = np.where(free, np.sqrt(np.clip(np.diag(cov), 0.0, None)), np.nan)
    mu, yf, muf = fit.mu, y[mask], fit.mu[mask]
    dof = max(fit.dof, 1)
    ex = {"method": method, "n_exp": n, **extras, "n_counts": float(yf.sum()),
          "n_signal": float(np.sum(muf - values[2 * n])), "dof": fit.dof,
          "deviance": objective(yf, muf, "mle"),
          "deviance_red": objective(yf, muf, "mle") / dof,
          "chi2_neyman_red": objective(yf, muf, "neyman") / dof,
          "chi2_pearson_red": float(np.sum((yf - muf) ** 2 / np.maximum(muf, 1e-12))) / dof}
    ex.update(average_lifetimes(values[:n], values[n:2 * n], cov[:2 * n, :2 * n]))
    s1 = float(np.sum(values[:n] * values[n:2 * n]))
    for i in range(n):
        ex[f"fraction_int_{i + 1}"] = float(values[i] * values[n + i] / s1) if s1 > 0 else None
    for i, k in enumerate(order if limits else []):
        ex[f"tau{i + 1}_profile_low_ns"] = math.exp(limits[k][0])
        ex[f"tau{i + 1}_profile_high_ns"] = math.exp(limits[k][1])
    ex.update({"fixed": ",".join(nm for nm, f in zip(model.names, free) if not f) or "none",
               "uncertainty": "expected Fisher information; profile likelihood for tau",
               "converged": fit.success, "nfev": fit.nfev})
    names = model.names
    curve = DecayCurve(t[mask], muf, "time_ns", "counts", full_x=t, full_y=mu)
    return DecayFitResult(
        model=name, params=dict(zip(names, map(float, values))),
        stderr=dict(zip(names, map(float, err))), covariance=cov,
        chi2_red=fit.objective / dof, n_points=int(mask.sum()), curve=curve,
        units={nm: UNITS[nm.rstrip("0123456789")] for nm in names}, extras=ex,
        time_ns=t, counts=y, best_fit=mu, residuals=residuals(yf, muf, method)[0], method=method)


def fit_decay(time_ns, counts, irf_counts, *, n_exp: int = 1, method: str = "mle",
              fit_range=None, shift=True, background=True, repetition_period_ns=None,
              irf_background: float = 0.0, irf_model: str = "delta", p0: dict | None = None,
              profile: bool = True, confidence: float = 0.6827) -> DecayFitResult:
    """Reconvolution fit of a TCSPC decay histogram with its measured IRF.

    Parameters
    ----------
    time_ns : channel times (ns), uniform step. counts, irf_counts : counts per channel (≥ 0).
    n_exp : 1, 2 or 3 exponentials. method : ``"mle"`` (Poisson deviance) or ``"neyman"``.
    fit_range : (low, high) ns; residuals only there (the convolution uses the whole axis).
    shift, background : True = fitted, False = fixed at 0, a number = fixed at that value
        (ns; counts per channel, e.g. the mean pre-pulse counts).
    repetition_period_ns : laser period; adds the tails of earlier pulses. Must be ≥ the window.
    irf_background : counts per channel subtracted from the IRF before normalisation.
    irf_model : ``"delta"`` (each IRF channel's photons at its centre; default, exact for an IRF
        narrower than a channel) or ``"box"`` (uniform within the channel). The IRF is known only
        as a histogram: an IRF narrower than ~3 channels leaves rising-edge residuals of a few %
        of the peak at ≥ 10⁴ counts with either (τ is unaffected); exclude the rise with
        ``fit_range`` or compare with ``tail_fit`` if χ² matters.
    p0 : optional start values by name (``{"tau1": 130.0, "shift": 0.1}``), natural units.
    profile : compute profile-likelihood intervals for each τ at ``confidence``.
    """
    _options(n_exp, method)
    t, width = _axis(time_ns)
    y = _counts("counts", counts, t.size)
    irf = normalised_irf(_counts("irf_counts", irf_counts, t.size),
                         check.finite("irf_background", irf_background))
    s_free, s_val = _fixed_or_free("shift", shift)
    b_free, b_val = _fixed_or_free("background", background)
    span = t[-1] - t[0] + width
    period = None
    if repetition_period_ns is not None:
        period = check.positive("repetition_period_ns", repetition_period_ns)
        if period < span * (1 - 1e-9):
            raise ValueError(f"repetition_period_ns={period!r} is out of range; allowed range: "
                             f">= the histogram window {span:g} ns")
    mask = _range(t, width, fit_range, 2 * n_exp + b_free + s_free)
    if y[mask].sum() <= 0:
        raise ValueError("counts are all zero in fit_range; allowed: at least one photon")
    fwhm = fwhm_channels(irf) * width
    t_irf = float(np.sum(irf * t))
    pre = mask & (t < t_irf - 3.0 * fwhm)
    b0 = float(y[pre].mean()) if pre.sum() >= 3 and b_free else b_val
    tau0 = _moment_tau(t, y, b0, max(t_irf, t[mask][0]), t[mask][-1])
    model, fit, limits = _run(
        lambda n: ReconvolutionModel(t.size, width, irf, n, period, irf_model), n_exp, y, mask, t,
        (b_free, s_free), [b_val, s_val], tau0, method, p0, span, width, profile, confidence)
    extras = {"fit_range_ns": [float(t[mask][0]), float(t[mask][-1])],
              "repetition_period_ns": period, "irf_fwhm_ns": fwhm}
    return _result(f"reconvolution_{n_exp}exp", model, fit, limits, t, y, mask, method, extras)


def tail_fit(time_ns, counts, *, n_exp: int = 1, start_ns=None, stop_ns=None, irf_counts=None,
             method: str = "mle", background=True, p0: dict | None = None, profile: bool = True,
             confidence: float = 0.6827) -> DecayFitResult:
    """Fit Σ A_i e^(−(t − start)/τ_i) + b after the IRF has died away (no reconvolution).

    The cross-check of ``fit_decay`` for τ ≫ IRF (fitting.md §3.3). ``start_ns`` defaults to
    the IRF maximum + 10 IRF FWHM when ``irf_counts`` is given, else the decay maximum + 10
    channels; ``stop_ns`` to the end of the axis. Earlier laser pulses add the same exponentials,
    so no repetition period is needed; ``amp`` is the height at ``start_ns``.
    """
    _options(n_exp, method)
    t, width = _axis(time_ns)
    y = _counts("counts", counts, t.size)
    b_free, b_val = _fixed_or_free("background", background)
    if start_ns is None:
        if irf_counts is not None:
            irf = normalised_irf(_counts("irf_counts", irf_counts, t.size))
            start_ns = t[int(np.argmax(irf))] + TAIL_START_FWHM * fwhm_channels(irf) * width
        else:
            start_ns = t[min(int(np.argmax(y)) + 10, t.size - 1)]
    lo = check.finite("start_ns", start_ns)
    hi = float(t[-1]) if stop_ns is None else check.finite("stop_ns", stop_ns)
    mask = _window(t, width, lo, hi, "(start_ns, stop_ns)", 2 * n_exp + b_free)
    if y[mask].sum() <= 0:
        raise ValueError("counts are all zero after start_ns; allowed: at least one photon")
    b0 = b_val if not b_free else float(np.percentile(y[mask], 5))
    t0 = float(t[mask][0])
    tau0 = _moment_tau(t, y, b0, t0, t[mask][-1])
    model, fit, limits = _run(lambda n: TailModel(t, t0, n), n_exp, y, mask, t, (b_free,),
                              [b_val], tau0, method, p0, t[-1] - t[0] + width, width, profile,
                              confidence)
    extras = {"fit_range_ns": [t0, float(t[mask][-1])], "tail_start_ns": t0}
    return _result(f"tail_{n_exp}exp", model, fit, limits, t, y, mask, method, extras)
