"""Fit one ac-susceptibility spectrum χ'(f), χ''(f): τ, α, σ_lnτ and ccfit2-style τ bounds.

:func:`fit_ac_spectrum` fits χ' and χ'' together (residual vector [Δχ', Δχ'']) with
``scipy.optimize.least_squares`` (TRF, bounds, ``x_scale='jac'``) and the analytic Jacobians of
:mod:`.ac_models`, starting from the χ'' peak(s). χ is scaled internally by max(|χ'|, |χ''|), so
emu Oe⁻¹ (1e-5) and cm³ mol⁻¹ (≈10) data behave alike; the parameters come back in the caller's
χ unit.

Uncertainties (fitting.md §1.2–1.3):

* parameter covariance from the Jacobian at the optimum, (JᵀJ)⁻¹ by SVD with singular values
  below eps·max(shape)·s₀ dropped; by default (``absolute_sigma=False``) it is scaled by the
  reduced χ², as ccfit2 and ``curve_fit`` do, so supplied χ errors act as relative weights (MPMS
  "Std. Err." columns are not reliable absolute errors). Without error arrays the fit is
  unweighted, exactly like ccfit2. ``absolute_sigma=True`` (only with error arrays) trusts them;
* per process: σ_lnτ of the τ distribution; τ bounds = exp(⟨lnτ⟩ ± σ_lnτ) combined elementwise
  (max of the uppers, min of the lowers) with the fit bounds τ ± sd_τ (sd_τ = τ·sd(ln τ));
  log10(rate) = −⟨lnτ⟩/ln 10 with error = the larger side of the bounds in log10, which is
  σ_lnτ/ln 10 when the distribution dominates — the error bars ccfit2 feeds to rate fits.

Discard rules (ccfit2's, flagged in ``flags`` and applied unless ``no_discard``): a process whose
χ'' peak lies outside the measured frequency window ("no peak measured"); χ'' flat (its
variation about/along a straight line in log f is below ``flat_threshold`` × the χ scale; our
own scale-free form, ccfit2's threshold is not in the stored references); NaN τ bounds
(τ − sd_τ ≤ 0: τ undetermined); a failed least-squares run.

``model="auto"`` fits one and two generalized-Debye processes and takes two only when all hold:
the F-test of the nested models gives p < 1e-3, BIC drops by > 10, both χ'' peaks lie within
half a decade of the window, and each Δχ_k is > 3 standard errors and > 5 % of ΣΔχ. The
two-process candidate gets one informed start and 60 evaluations; one that does not converge
counts as no evidence. ``selection`` on the result records the statistics and the reasons.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, NamedTuple

import numpy as np
from scipy import stats
from scipy.optimize import least_squares

from . import _validate as check
from . import ac_models as am
from .ac_models import AcCurve
from .ac_result import AcFitResult, AcProcess

MIN_POINTS = 5
LN_TAU_MARGIN = math.log(1e3)      # τ may leave the window by 3 decades during the fit
ALPHA_MAX, GAMMA_MIN = 0.99, 0.01
AUTO_P_VALUE, AUTO_DELTA_BIC, AUTO_WINDOW_DECADES, AUTO_MIN_FRACTION = 1e-3, 10.0, 0.5, 0.05
AUTO_MAX_NFEV = 60
CHOICES = ("auto", "debye", "generalized_debye", "double_generalized_debye", "havriliak_negami",
           "cole_davidson")


class _Data(NamedTuple):
    f: np.ndarray          # Hz, ascending
    re: np.ndarray         # χ' / scale
    im: np.ndarray         # χ'' / scale
    w_re: np.ndarray       # 1/σ' in scaled units (ones when unweighted)
    w_im: np.ndarray
    scale: float
    weighted: bool


class _Raw(NamedTuple):
    model: am.AcModel
    x: np.ndarray          # scaled parameters
    rss: float             # weighted residual sum of squares, scaled units
    jac: np.ndarray
    ok: bool
    message: str


def _prepare(frequency_hz, chi_real, chi_imag, err_re, err_im) -> _Data:
    f = check.array("frequency_hz", frequency_hz, min_length=MIN_POINTS, positive_values=True)
    re = check.array("chi_real", chi_real, length=f.size)
    im = check.array("chi_imag", chi_imag, length=f.size)
    if (err_re is None) != (err_im is None):
        raise ValueError("chi_real_err and chi_imag_err must be given together (one is None)")
    if np.ptp(f) == 0:
        raise ValueError(f"frequency_hz holds the single value {f[0]!r} Hz; allowed: at least "
                         "2 distinct frequencies")
    scale = float(max(np.abs(re).max(), np.abs(im).max()))
    if scale == 0:
        raise ValueError("chi_real and chi_imag are all 0.0; allowed: a non-zero spectrum")
    o = np.argsort(f, kind="stable")
    if err_re is None:
        return _Data(f[o], re[o] / scale, im[o] / scale, np.ones(f.size), np.ones(f.size), scale,
                     False)
    sr = check.array("chi_real_err", err_re, length=f.size, positive_values=True)
    si = check.array("chi_imag_err", err_im, length=f.size, positive_values=True)
    return _Data(f[o], re[o] / scale, im[o] / scale, scale / sr[o], scale / si[o], scale, True)


def _bounds(model: am.AcModel, d: _Data):
    lt_lo = -math.log(2 * math.pi * d.f[-1]) - LN_TAU_MARGIN
    lt_hi = -math.log(2 * math.pi * d.f[0]) + LN_TAU_MARGIN
    table = {"ln_tau": (lt_lo, lt_hi), "chi": (0.0, np.inf), "alpha": (0.0, ALPHA_MAX),
             "gamma": (GAMMA_MIN, 1.0)}
    lo, hi = zip(*(table[k] for k in model.kinds))
    return np.array(lo), np.array(hi)


def _least_squares(model: am.AcModel, d: _Data, x0, max_nfev: int | None = None) -> _Raw:
    lo, hi = _bounds(model, d)
    span = hi - lo
    x0 = np.clip(np.asarray(x0, float), lo + 1e-6 * np.where(np.isfinite(span), span, 1),
                 hi - 1e-6 * np.where(np.isfinite(span), span, 0))

    def fun(p):
        c = model.chi(d.f, p)
        return np.concatenate([(c.real - d.re) * d.w_re, (-c.imag - d.im) * d.w_im])

    def jac(p):
        j = model.jacobian(d.f, p)
        return np.vstack([j.real * d.w_re[:, None], -j.imag * d.w_im[:, None]])

    try:
        r = least_squares(fun, x0, jac=jac, bounds=(lo, hi), method="trf", x_scale="jac",
                          max_nfev=max_nfev or 50 * model.n_params)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        nan = np.full(model.n_params, np.nan)
        return _Raw(model, nan, math.inf, np.full((2 * d.f.size, model.n_params), np.nan),
                    False, f"failed fit: {exc}")
    ok = r.status > 0 and bool(np.all(np.isfinite(r.fun)))
    return _Raw(model, r.x, float(2 * r.cost), r.jac, ok,
                "" if ok else f"failed fit: least_squares status {r.status} ({r.message})")


def _smoothed_imag(d: _Data) -> np.ndarray:
    if d.f.size < 7:
        return d.im
    pad = np.concatenate([d.im[:1], d.im, d.im[-1:]])
    return (pad[:-2] + pad[1:-1] + pad[2:]) / 3.0


def _start_single(model: am.AcModel, d: _Data) -> np.ndarray:
    i = int(np.argmax(_smoothed_imag(d)))
    chi_s = max(float(d.re.min()), 0.0)
    chi_t = max(float(d.re.max()), chi_s + 2.0 * float(d.im[i]))
    guess = {"ln_tau": -math.log(2 * math.pi * d.f[i]), "chi_s": chi_s, "chi_t": chi_t,
             "alpha": 0.1, "gamma": 0.9}
    return np.array([guess[n] for n in model.param_names])


def _fit_single(name: str, d: _Data) -> _Raw:
    """Debye/GD from the χ'' peak; CD/HN refined from the Debye/GD optimum (γ = 0.9)."""
    if name in ("debye", "generalized_debye"):
        model = am.MODELS[name]
        return _least_squares(model, d, _start_single(model, d))
    base = _fit_single("debye" if name == "cole_davidson" else "generalized_debye", d)
    model = am.MODELS[name]
    x0 = _start_single(model, d) if not base.ok else np.append(base.x, 0.9)
    return _least_squares(model, d, x0)


def _local_maxima(y: np.ndarray) -> np.ndarray:
    inner = np.flatnonzero((y[1:-1] > y[:-2]) & (y[1:-1] >= y[2:])) + 1
    return inner[np.argsort(y[inner])[::-1]]


def _fit_double(d: _Data, single: _Raw, *, screen: bool = False) -> _Raw:
    """Two GD processes, started from the two highest χ'' maxima if there are two, else from
    the single-GD optimum plus a second process at the largest χ'' excess over it. Without
    ``screen`` two more starts (second τ 1.5 decades either side) get short runs and the best
    is refined. ``screen`` (model="auto") keeps only the informed start and at most
    ``AUTO_MAX_NFEV`` evaluations: a real second process converges in a few tens, while on a
    one-process spectrum the degenerate fit would wander for hundreds."""
    model = am.DOUBLE_GENERALIZED_DEBYE
    sm = _smoothed_imag(d)
    peaks = _local_maxima(sm)
    lt_main, chi_s, chi_t, alpha = (single.x if single.ok else _start_single(
        am.GENERALIZED_DEBYE, d))
    dchi = max(chi_t - chi_s, 1e-3)
    ln_f = -math.log(2 * math.pi)
    if peaks.size >= 2:
        h1, h2 = sm[peaks[0]], sm[peaks[1]]
        starts = [[chi_s, ln_f - math.log(d.f[peaks[0]]), 0.05, dchi * h1 / (h1 + h2),
                   ln_f - math.log(d.f[peaks[1]]), 0.05, dchi * h2 / (h1 + h2)]]
    else:
        excess = d.im - single.model.chi_parts(d.f, single.x)[1] if single.ok else d.im
        seconds = [ln_f - math.log(d.f[int(np.argmax(excess))])]
        if not screen:
            seconds += [lt_main - 1.5 * math.log(10), lt_main + 1.5 * math.log(10)]
        starts = [[chi_s, lt_main, 0.5 * alpha, 0.7 * dchi, lt2, 0.1, 0.3 * dchi]
                  for lt2 in seconds]
    if len(starts) > 1:
        best = min((_least_squares(model, d, x0, max_nfev=25) for x0 in starts),
                   key=lambda r: r.rss if math.isfinite(r.rss) else math.inf)
        starts = [best.x] if np.all(np.isfinite(best.x)) else starts
    return _least_squares(model, d, starts[0], max_nfev=AUTO_MAX_NFEV if screen else None)


def _covariance(jac: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(jac)):
        return np.full((jac.shape[1],) * 2, np.nan)
    _, s, vt = np.linalg.svd(jac, full_matrices=False)
    keep = s > np.finfo(float).eps * max(jac.shape) * s[0]
    vt, s = vt[keep], s[keep]
    return (vt.T / s ** 2) @ vt


def _is_flat(d: _Data, threshold: float) -> tuple[bool, float]:
    """Variation of χ''/scale along (slope × span) and about (residual range) a line in log f."""
    x = np.log10(d.f)
    coef = np.polyfit(x, d.im, 1)
    resid = d.im - np.polyval(coef, x)
    variation = max(abs(coef[0]) * np.ptp(x), float(np.ptp(resid)))
    return variation < threshold, variation


def _information(rss: float, n: int, k: int) -> tuple[float, float]:
    base = n * math.log(max(rss, 1e-300) / n)
    return base + 2 * k, base + k * math.log(n)


def _process(proc: am.Process, p, cov, stderr, d: _Data) -> AcProcess:
    nan = math.nan
    lt, a, g, dchi = proc.values(p)
    v = proc.delta_chi_vector(p.size)
    dchi_err = math.sqrt(max(float(v @ cov @ v), 0.0)) if np.all(np.isfinite(cov)) else nan
    lt_err = float(stderr[proc.ln_tau])
    ok = math.isfinite(lt + a + g)
    sig, mean = (am.sigma_ln_tau(a, g), am.ln_tau_mean(lt, a, g)) if ok else (nan, nan)
    peak = am.peak_frequency_hz(lt, a, g) if ok else nan
    # ccfit2: fit bounds ln(τ ± sd_τ) (undefined for τ − sd_τ ≤ 0) merged elementwise with the
    # distribution bounds exp(⟨lnτ⟩ ± σ_lnτ)
    tau_fit = math.exp(lt) if ok else nan
    sd = tau_fit * lt_err
    lower = min(math.exp(mean - sig), tau_fit - sd) if tau_fit - sd > 0 else nan
    upper = max(math.exp(mean + sig), tau_fit + sd)
    l10 = mean / math.log(10)
    err = max(math.log10(upper) - l10, l10 - math.log10(lower)) \
        if math.isfinite(lower + upper) else nan
    flags = []
    if not d.f[0] <= peak <= d.f[-1]:
        flags.append(f"no peak measured: chi'' peak at {peak:.4g} Hz outside the measured "
                     f"window {d.f[0]:.4g}–{d.f[-1]:.4g} Hz")
    if not math.isfinite(lower + upper):
        flags.append(f"NaN tau bounds: tau={tau_fit:.4g} s ± {sd:.4g} s")
    alpha_err = float(stderr[proc.alpha]) if proc.alpha is not None else 0.0
    return AcProcess(mean, lt, lt_err, a, alpha_err, g, dchi, dchi_err, sig, (lower, upper),
                     -l10, err, peak, tuple(flags))


def _result(raw: _Raw, d: _Data, *, absolute_sigma: bool, flat: tuple[bool, float],
            flat_threshold: float, no_discard: bool, chi_unit: str) -> AcFitResult:
    model, n, k = raw.model, 2 * d.f.size, raw.model.n_params
    to_data = np.array([d.scale if kd == "chi" else 1.0 for kd in model.kinds])
    p = raw.x * to_data
    rss = raw.rss if d.weighted else raw.rss * d.scale ** 2
    chi2_red = rss / (n - k)
    cov = _covariance(raw.jac) * np.outer(to_data, to_data)
    if not d.weighted:
        cov = cov * d.scale ** -2        # jac rows carry 1/scale when unweighted
    if not absolute_sigma:
        cov = cov * chi2_red
    stderr = np.sqrt(np.clip(np.diag(cov), 0, None))
    procs = sorted((_process(pr, p, cov, stderr, d) for pr in model.processes),
                   key=lambda q: -q.ln_tau if math.isfinite(q.ln_tau) else 0.0)
    flags = ([raw.message] if not raw.ok else []) + [f for q in procs for f in q.flags]
    if flat[0]:
        flags.insert(0, f"flat chi'': variation {flat[1]:.3g} of the chi scale < "
                        f"flat_threshold={flat_threshold:g}")
    aic, bic = _information(rss, n, k)
    grid = np.geomspace(d.f[0], d.f[-1], 200)
    with np.errstate(invalid="ignore", divide="ignore"):      # NaN curve of a failed fit
        re, im = model.chi_parts(grid, p)
    unit = chi_unit.replace("/", "_per_").replace(" ", "_")
    return AcFitResult(
        model=model.name, params=dict(zip(model.param_names, map(float, p))),
        stderr=dict(zip(model.param_names, map(float, stderr))), covariance=cov,
        chi2_red=float(chi2_red), n_points=int(d.f.size),
        curve=AcCurve(grid, im, "frequency_Hz", "chi_imag", re, model.name, tuple(p)),
        units={nm: unit for nm, kd in zip(model.param_names, model.kinds) if kd == "chi" and unit},
        processes=procs, aic=aic, bic=bic, flags=tuple(flags),
        discarded=bool(flags) and not no_discard, frequency_hz=d.f, chi_real=d.re * d.scale,
        chi_imag=d.im * d.scale, weighted=d.weighted,
        absolute_sigma=absolute_sigma)


def _select(d: _Data, single: _Raw, double: _Raw, one: AcFitResult,
            two: AcFitResult) -> AcFitResult:
    """model="auto": the two-process result only if every criterion of the module docstring
    holds; the chosen result carries the statistics in ``selection``."""
    info: dict[str, Any] = {"candidates": {r.model: {"chi2_red": r.chi2_red, "bic": r.bic,
                                                     "converged": raw.ok}
                                           for r, raw in ((one, single), (two, double))}}
    if not (single.ok and double.ok):     # an unconverged two-process fit is no evidence
        chosen = two if double.ok else one
        info.update(chosen=chosen.model, reasons=[
            f"{r.model}: {raw.message}" for r, raw in ((one, single), (two, double))
            if not raw.ok])
        chosen.selection = info
        return chosen
    n, k1, k2 = 2 * d.f.size, single.model.n_params, double.model.n_params
    f_stat = ((single.rss - double.rss) / (k2 - k1)) / (double.rss / (n - k2))
    p_value = float(stats.f.sf(f_stat, k2 - k1, n - k2)) if f_stat > 0 else 1.0
    delta_bic = one.bic - two.bic
    reasons = []
    if p_value >= AUTO_P_VALUE:
        reasons.append(f"F-test p={p_value:.3g} >= {AUTO_P_VALUE:g}")
    if delta_bic <= AUTO_DELTA_BIC:
        reasons.append(f"delta BIC={delta_bic:.3g} <= {AUTO_DELTA_BIC:g}")
    lo, hi = math.log10(d.f[0]) - AUTO_WINDOW_DECADES, math.log10(d.f[-1]) + AUTO_WINDOW_DECADES
    total = sum(q.delta_chi for q in two.processes)
    for k, q in enumerate(two.processes, 1):
        if not lo <= math.log10(q.peak_frequency_hz) <= hi:
            reasons.append(f"process {k} peak outside the window ± {AUTO_WINDOW_DECADES} decade")
        if not (q.delta_chi > 3 * q.delta_chi_err and q.delta_chi > AUTO_MIN_FRACTION * total):
            reasons.append(f"process {k} delta_chi not significant")
    chosen = one if reasons else two
    info.update({"f_statistic": float(f_stat), "p_value": p_value, "delta_bic": float(delta_bic),
                 "chosen": chosen.model, "reasons": reasons})
    chosen.selection = info
    return chosen


def fit_ac_spectrum(frequency_hz, chi_real, chi_imag, *, model: str = "auto",
                    chi_real_err=None, chi_imag_err=None, no_discard: bool = False,
                    absolute_sigma: bool = False, flat_threshold: float = 0.01,
                    chi_unit: str = "") -> AcFitResult:
    """Fit χ'(f) and χ''(f) of one spectrum (one T, one H) with a relaxation model.

    Parameters
    ----------
    frequency_hz : array (Hz), > 0, at least 5 points, any order.
    chi_real, chi_imag : arrays, χ' and χ'' (χ = χ' − iχ'') in one unit (``chi_unit`` names it
        for the report, e.g. ``"cm3/mol"``).
    model : ``"auto"`` (1 or 2 generalized-Debye processes, see module docstring), ``"debye"``,
        ``"generalized_debye"``, ``"double_generalized_debye"``, ``"havriliak_negami"``,
        ``"cole_davidson"``.
    chi_real_err, chi_imag_err : optional arrays (> 0) of standard deviations, given together.
    no_discard : keep spectra that break a discard rule (``flags`` still lists the rules).
    absolute_sigma : trust the error arrays as absolute (module docstring); default rescales.
    flat_threshold : χ'' variation (fraction of max(|χ'|, |χ''|)) below which χ'' is flat.
    """
    if model not in CHOICES:
        raise ValueError(f"model={model!r} is not allowed; allowed: {', '.join(CHOICES)}")
    thr = check.positive("flat_threshold", flat_threshold)
    d = _prepare(frequency_hz, chi_real, chi_imag, chi_real_err, chi_imag_err)
    if absolute_sigma and not d.weighted:
        raise ValueError("absolute_sigma=True needs chi_real_err and chi_imag_err; got None")
    result = partial(_result, d=d, absolute_sigma=absolute_sigma, flat=_is_flat(d, thr),
                     flat_threshold=thr, no_discard=no_discard, chi_unit=chi_unit)
    if model == "auto":
        single = _fit_single("generalized_debye", d)
        double = _fit_double(d, single, screen=True)
        return _select(d, single, double, result(single), result(double))
    if model == "double_generalized_debye":
        return result(_fit_double(d, _fit_single("generalized_debye", d)))
    return result(_fit_single(model, d))
