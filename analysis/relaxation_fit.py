"""Relaxation-mechanism fits of τ⁻¹(H, T): vs field, vs temperature, or all points at once.

Fitting practice (``reference/fitting.md`` §1.3–1.4, §6), compatible with ccfit2:

* the data are fitted as y = log10(τ⁻¹/s⁻¹) with residuals (model − y)/σ, where σ is the error
  bar on log10(rate): σ = σ_lnτ/ln10 (ccfit2's ``lograte_pm`` for distribution errors; see
  :func:`log10_rate_err_from_sigma_ln_tau`). Without error bars all points weigh the same;
* parameters are carried as log10 for B1, B2, D1, D2, C, τ0 and linearly for n and U, inside
  bounds (``RelaxationModel.bounds``), with an analytic Jacobian; solver
  ``scipy.optimize.least_squares`` (TRF, ``x_scale='jac'``) from several starting points
  (:mod:`.relaxation_start`), keeping the lowest χ²;
* uncertainty: covariance = (JᵀJ)⁻¹ from the SVD of the weighted Jacobian at the optimum
  (singular directions dropped: the parameters involved get NaN), **scaled by χ²_red by
  default** (ccfit2 and ``curve_fit(absolute_sigma=False)``: the error bars act as relative
  weights — ccfit2's are distribution widths, not measurement errors). ``absolute_sigma=True``
  trusts the error bars. Parameters that end on a bound get NaN errors and are listed in
  ``at_bounds``. Physical errors are first order: σ_X = X·ln10·σ(log10 X).
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy.optimize import least_squares

from . import _validate as check
from .relaxation_result import ModelCurve, RelaxationResult, model_curve
from .relaxation_start import starting_points
from .relaxation_terms import LN10, OE_PER_T, PARAMS, RelaxationModel

#: Default model of a field scan at one temperature (the paper's step 1, D1 = 0).
FIELD_SCAN_TERMS = ("qtm", "direct_h2")
#: Fields (T) and temperatures (K) closer than this count as the same setpoint.
SAME_FIELD_T = 1e-4
SAME_TEMPERATURE_K = 1e-3


def log10_rate_err_from_sigma_ln_tau(sigma_ln_tau) -> np.ndarray:
    """ccfit2's error bar on log10(rate) from σ of ln τ: σ_lnτ / ln 10."""
    return check.array("sigma_ln_tau", sigma_ln_tau, positive_values=True) / LN10


def _data(field_Oe, temperature_K, tau_s, log10_rate_err):
    tau = check.array("tau_s", tau_s, positive_values=True)
    h = np.broadcast_to(np.asarray(field_Oe, float), tau.shape) if np.ndim(field_Oe) == 0 \
        else field_Oe
    t = np.broadcast_to(np.asarray(temperature_K, float), tau.shape) \
        if np.ndim(temperature_K) == 0 else temperature_K
    h = check.array("field_Oe", h, length=tau.size)
    t = check.array("temperature_K", t, length=tau.size, positive_values=True)
    err = None if log10_rate_err is None else check.array(
        "log10_rate_err", np.broadcast_to(np.asarray(log10_rate_err, float), tau.shape)
        if np.ndim(log10_rate_err) == 0 else log10_rate_err, length=tau.size,
        positive_values=True)
    return h, t, tau, err


def _check_identifiable(model: RelaxationModel, field_T, temperature_K, n_points: int) -> None:
    free = model.free_names
    if n_points <= len(free):
        raise ValueError(f"tau_s has {n_points} points; allowed: at least {len(free) + 1} for "
                         f"the {len(free)} free parameters ({', '.join(free)}); fix some "
                         "parameters or switch terms off")
    one_field = np.ptp(np.abs(field_T)) <= SAME_FIELD_T
    one_temp = np.ptp(temperature_K) <= SAME_TEMPERATURE_K
    groups = []
    if one_field:
        h = float(abs(field_T[0])) * OE_PER_T
        groups += [(("B1", "B2"), f"a single field ({h:g} Oe) fixes only B1/(1+B2·H²)"),
                   (("D1", "D2"), f"a single field ({h:g} Oe) makes D1·H⁴T and D2·H²T both ∝ T")]
        if h == 0:
            groups += [((n,), "all fields are 0 Oe") for n in ("B2", "D1", "D2")]
    if one_temp:
        groups.append((("C", "n", "tau0", "U"), f"a single temperature "
                       f"({temperature_K[0]:g} K) makes C·Tⁿ + exp(−U/T)/τ0 one constant"))
    for names, why in groups:
        bad = [n for n in names if n in free]
        allowed = 1 if len(names) > 1 else 0
        if len(bad) > allowed:
            raise ValueError(f"free parameter(s) {', '.join(bad)} cannot be determined: {why}; "
                             f"allowed: at most {allowed} of {', '.join(names)} free — fix them "
                             f"(e.g. fixed={{{bad[-1]!r}: ...}}) or switch their term off")


def fit_relaxation(field_Oe, temperature_K, tau_s, *, log10_rate_err=None,
                   model: RelaxationModel | None = None, fixed=None, initial=None,
                   n_starts: int = 4, absolute_sigma: bool = False,
                   name: str = "relaxation") -> RelaxationResult:
    """Fit τ⁻¹(H, T) to any set of (H, T, τ) points. See the module docstring."""
    start_clock = time.perf_counter()
    h_oe, t, tau, err = _data(field_Oe, temperature_K, tau_s, log10_rate_err)
    model = RelaxationModel() if model is None else model
    if not isinstance(model, RelaxationModel):
        raise ValueError(f"model={model!r}; allowed: a RelaxationModel")
    if fixed or initial:
        fixed, initial = dict(fixed or {}), dict(initial or {})
        model = model.replace(fixed={**model.fixed, **fixed},
                              initial={**{k: v for k, v in model.initial.items()
                                          if k not in fixed}, **initial})
    n_starts = int(check.positive("n_starts", n_starts))
    h = h_oe / OE_PER_T
    _check_identifiable(model, h, t, tau.size)
    y = -np.log10(tau)
    sigma = np.ones_like(y) if err is None else err
    lo, hi = model.internal_bounds()

    last: dict = {}

    def evaluate(x):  # least_squares asks for fun and jac at the same x: compute both once
        key = x.tobytes()
        if last.get("key") != key:
            model_y, model_jac = model.log10_rate_and_jac(x, h, t)
            last.update(key=key, fun=(model_y - y) / sigma, jac=model_jac / sigma[:, None])
        return last

    def fun(x):
        return evaluate(x)["fun"]

    def jac(x):
        return evaluate(x)["jac"]

    best, finals, nfev = None, [], 0
    for x0 in starting_points(model, h, t, y, sigma, n_starts):
        with np.errstate(over="ignore", under="ignore"):
            res = least_squares(fun, x0, jac=jac, bounds=(lo, hi), method="trf",
                                x_scale="jac", ftol=1e-9, xtol=1e-9, gtol=1e-9,
                                max_nfev=2000)
        finals.append(2.0 * float(res.cost))
        nfev += int(res.nfev)
        if best is None or res.cost < best.cost:
            best = res
    params = model.full_params(best.x)
    chi2 = 2.0 * float(best.cost)
    dof = tau.size - len(model.free_names)
    chi2_red = chi2 / dof
    scaled = (err is None) or not absolute_sigma
    cov_int, at_bounds = _covariance(model, best, chi2_red if scaled else 1.0)
    dphys = np.array([params[n] * LN10 if PARAMS[n].log else 1.0 for n in model.free_names])
    sd_int = np.sqrt(np.diag(cov_int))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov_int / np.outer(sd_int, sd_int)
    stderr = {n: math.nan for n in model.param_names}
    stderr.update({n: float(s * d) for n, s, d in zip(model.free_names, sd_int, dphys)})
    cov_full = np.zeros((len(model.param_names),) * 2)
    idx = [model.param_names.index(n) for n in model.free_names]
    cov_full[np.ix_(idx, idx)] = cov_int * np.outer(dphys, dphys)
    n_pts, k = tau.size, len(model.free_names)
    result = RelaxationResult(
        model=f"{name}[{model.describe()}]", params=params, stderr=stderr,
        covariance=cov_full, chi2_red=chi2_red, n_points=n_pts,
        curve=ModelCurve(np.empty(0), np.empty(0)),
        units={n: PARAMS[n].unit for n in model.param_names},
        relaxation_model=model, field_Oe=h_oe, temperature_K=t, tau_s=tau,
        log10_rate_err=err, free_names=model.free_names,
        stderr_log10={n: float(s) for n, s in zip(model.free_names, sd_int)},
        correlation=corr, chi2=chi2,
        aic=n_pts * math.log(max(chi2, 1e-300) / n_pts) + 2 * k,
        bic=n_pts * math.log(max(chi2, 1e-300) / n_pts) + math.log(n_pts) * k,
        at_bounds=at_bounds, success=bool(best.success), message=str(best.message),
        nfev=nfev, start_chi2=tuple(finals),
        covariance_scaled=scaled)
    base = model_curve(result)  # the curve needs the finished result to evaluate the model
    result.curve = ModelCurve(base.x, base.y, base.x_name, base.y_name,
                              evaluate=lambda *a, **kw: model_curve(result, *a, **kw))
    result.fit_time_s = time.perf_counter() - start_clock
    return result


def _covariance(model: RelaxationModel, res, scale: float):
    """Covariance of the internal free parameters; NaN for bound-stuck or singular ones."""
    k = len(model.free_names)
    active = np.asarray(res.active_mask) != 0
    at_bounds = tuple(n for n, a in zip(model.free_names, active) if a)
    cov = np.full((k, k), np.nan)
    keep = ~active
    j = np.asarray(res.jac)[:, keep]
    if j.shape[1] == 0:
        return cov, at_bounds
    _, s, vt = np.linalg.svd(j, full_matrices=False)
    ok = s > np.finfo(float).eps * max(j.shape) * s[0]
    sub = (vt[ok].T / s[ok] ** 2) @ vt[ok] * scale
    if not ok.all():  # parameters along unresolved directions have no finite error
        null = np.abs(vt[~ok]).max(axis=0) > 1e-3
        sub[null, :] = np.nan
        sub[:, null] = np.nan
    cov[np.ix_(keep, keep)] = sub
    return cov, at_bounds


def fit_rate_vs_field(field_Oe, tau_s, temperature_K, *, log10_rate_err=None,
                      model: RelaxationModel | None = None, fixed=None, initial=None,
                      n_starts: int = 4, absolute_sigma: bool = False) -> RelaxationResult:
    """Fit τ⁻¹(H) at one temperature (the paper's step 1: B1, B2, D2; D1 = 0).

    field_Oe : array, Oe (converted to T: 1 T = 10⁴ Oe). tau_s : array, s (> 0).
    temperature_K : scalar or array, K. log10_rate_err : σ of log10(τ⁻¹) per point or scalar.
    model : default ``RelaxationModel(("qtm", "direct_h2"))``; Raman/Orbach terms may be added
    only with at most one of their parameters free (at one T they are a constant).
    fixed, initial : {name: value} (physical units) merged into the model's fixed parameters /
    starting values (``initial`` adds one start; the grid still supplies the others).
    """
    model = RelaxationModel(FIELD_SCAN_TERMS) if model is None else model
    return fit_relaxation(field_Oe, temperature_K, tau_s, log10_rate_err=log10_rate_err,
                          model=model, fixed=fixed, initial=initial, n_starts=n_starts,
                          absolute_sigma=absolute_sigma, name="rate_vs_field")


def fit_rate_vs_temperature(temperature_K, tau_s, field_Oe, *, log10_rate_err=None,
                            model: RelaxationModel | None = None, fixed=None,
                            initial=None, n_starts: int = 4, absolute_sigma: bool = False
                            ) -> RelaxationResult:
    """Fit τ⁻¹(T) at one field (the paper's step 2: C, n, τ0, U with B1, B2, D2 fixed).

    temperature_K : array, K. tau_s : array, s. field_Oe : scalar or array, Oe.
    model : default all terms but ``direct_h4``. At one field B1 and B2 cannot both be free:
    pass them in ``fixed`` (e.g. from :func:`fit_rate_vs_field`).
    """
    return fit_relaxation(field_Oe, temperature_K, tau_s, log10_rate_err=log10_rate_err,
                          model=model, fixed=fixed, initial=initial, n_starts=n_starts,
                          absolute_sigma=absolute_sigma, name="rate_vs_temperature")


def fit_rate_global(field_Oe, temperature_K, tau_s, *, log10_rate_err=None,
                    model: RelaxationModel | None = None, fixed=None, initial=None,
                    n_starts: int = 4, absolute_sigma: bool = False) -> RelaxationResult:
    """Fit all (H, T) points at once with one parameter set (field scans and T scans mixed)."""
    return fit_relaxation(field_Oe, temperature_K, tau_s, log10_rate_err=log10_rate_err,
                          model=model, fixed=fixed, initial=initial, n_starts=n_starts,
                          absolute_sigma=absolute_sigma, name="rate_global")
