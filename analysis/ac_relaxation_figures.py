"""ac relaxation-time figures: τ⁻¹ vs μ0H at one temperature and ln τ vs 1/T at one field,
the τ points with their error bars (per relaxation process, discarded ones faded) and the fitted
mechanism terms (QTM, direct, Raman, Orbach, total) or an Arrhenius line (conventions:
:mod:`.ac_figures`).
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from .ac_dataset import AcDatasetResult
from .ac_figure_base import FADED_ALPHA, _finish, _new_axes
from .arrhenius import ArrheniusResult
from .figures import _MARKERS
from .relaxation import RelaxationResult, SequentialResult
from .relaxation_terms import OE_PER_T, TERMS

#: Relative spread of the "fixed" coordinate above which a scan is not a scan at one T or H.
FIXED_SPREAD = 0.05
_TERM_STYLE = {"qtm": ("QTM", "C0", "--"), "direct_h4": (r"direct ($H^4T$)", "C2", "--"),
               "direct_h2": (r"direct ($H^2T$)", "C1", "--"), "raman": ("Raman", "C4", "-."),
               "orbach": ("Orbach", "C3", ":"), "total": ("total", "black", "-")}


def _rate_data(obj, scan: str, fit):
    """(H Oe, T K, τ s, log10-rate error or None, discarded, process, fit or None), only the
    rows with finite τ > 0 and a finite scan coordinate."""
    if isinstance(fit, SequentialResult):
        fit = fit.field_result if scan == "field" else fit.temperature_result
    if fit is not None and not isinstance(fit, RelaxationResult):
        raise TypeError(f"fit={type(fit).__name__}; allowed: RelaxationResult, "
                        "SequentialResult or None")
    if isinstance(obj, SequentialResult):
        obj = obj.field_result if scan == "field" else obj.temperature_result
    if isinstance(obj, RelaxationResult):
        fit = obj if fit is None else fit
        obj = {"field_Oe": obj.field_Oe, "temperature_K": obj.temperature_K,
               "tau_s": obj.tau_s, "log10_rate_err": obj.log10_rate_err}
    elif isinstance(obj, AcDatasetResult):
        obj = obj.as_arrays()
    if not isinstance(obj, Mapping) or "tau_s" not in obj:
        raise TypeError(f"result_or_arrays={type(obj).__name__}; allowed: RelaxationResult, "
                        "SequentialResult, AcDatasetResult or a mapping with tau_s and "
                        "H_mean_Oe/field_Oe or T_mean_K/temperature_K")
    tau = np.asarray(obj["tau_s"], float)
    n = tau.size

    def col(names, default, kind=float):
        value = next((obj[k] for k in names if obj.get(k) is not None), default)
        a = np.broadcast_to(np.asarray(value, kind), (n,)) if np.ndim(value) == 0 else \
            np.asarray(value, kind)
        if a.shape != (n,):
            raise ValueError(f"result_or_arrays[{names[0]!r}] has shape {a.shape}; allowed: "
                             f"({n},) like tau_s")
        return a

    h = col(("H_mean_Oe", "field_Oe"), np.nan)
    t = col(("T_mean_K", "temperature_K"), np.nan)
    err = col(("log10_rate_err",), np.nan)
    disc, proc = col(("discarded",), False, bool), col(("process",), 1, int)
    ok = np.isfinite(tau) & (tau > 0) & np.isfinite(h if scan == "field" else t)
    if not ok.any():
        raise ValueError(f"result_or_arrays has no row with finite tau_s > 0 and "
                         f"{'field' if scan == 'field' else 'temperature'}; allowed: at least 1")
    return (h[ok], t[ok], tau[ok], None if np.all(np.isnan(err[ok])) else err[ok], disc[ok],
            proc[ok], fit)


def _fixed_value(name: str, values: np.ndarray, unit: str) -> float:
    """The fixed coordinate of a scan (median), refused when it varies by > FIXED_SPREAD."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return math.nan
    mid = float(np.median(v))
    if np.ptp(v) > FIXED_SPREAD * abs(mid) + (1.0 if unit == "Oe" else 0.0):
        raise ValueError(f"result_or_arrays spans {name} {v.min():.4g}–{v.max():.4g} {unit}; "
                         f"allowed: a scan at one {name} (spread ≤ {FIXED_SPREAD:.0%})")
    return mid


def _points(result_or_arrays, scan: str, fit, ax):
    """Draw the τ points of a field or temperature scan on ``ax`` (new if None): error-bar
    series per process, discarded rows faded and open. Returns (ax, fit, y, y errors, H, T,
    fixed coordinate: K for a field scan, Oe for a temperature scan)."""
    h, t, tau, err, disc, proc, fit = _rate_data(result_or_arrays, scan, fit)
    fixed = _fixed_value("temperature", t, "K") if scan == "field" else \
        _fixed_value("field", h, "Oe")
    ax = _new_axes(ax)
    if scan == "field":     # τ⁻¹ on a log axis: bars ×/÷ 10^err
        x, y = h / OE_PER_T, 1.0 / tau
        yerr = None if err is None else np.array([y * (1 - 10.0 ** -err), y * (10.0 ** err - 1)])
    else:                   # ln τ: σ(ln τ) = ln10 · σ(log10 rate)
        x, y = 1.0 / t, np.log(tau)
        yerr = None if err is None else np.array([math.log(10) * err] * 2)
    yerr = None if yerr is None else np.nan_to_num(yerr)      # a row without a bar: none drawn
    labels = {False: "data", True: "discarded"}
    for k in np.unique(proc):
        c = f"C{(k - 1) % 10}"
        for faded in (False, True):
            sel = (proc == k) & (disc == faded)
            if sel.any():
                label = f"process {k}" if not faded and np.unique(proc).size > 1 else \
                    labels.pop(faded, None)
                ax.errorbar(x[sel], y[sel], yerr=None if yerr is None else yerr[:, sel],
                            fmt=_MARKERS[(k - 1) % 10], ms=4, mfc="none" if faded else c,
                            mec=c, ecolor=c, elinewidth=0.8, capsize=0, label=label,
                            alpha=FADED_ALPHA if faded else 1.0, gid=f"data:process{k}")
    return ax, fit, y, yerr, h, t, fixed


def _draw_terms(ax, fit: RelaxationResult, h_oe, t_k, x, to_y) -> None:
    """Each switched-on term and the total (zero rates → NaN, gaps on log axes)."""
    rates = fit.term_rates(h_oe, t_k)
    curves = {name: rates[name] for name in TERMS if name in fit.relaxation_model.terms}
    curves["total"] = sum(rates.values())
    for name, rate in curves.items():
        label, color, ls = _TERM_STYLE[name]
        ax.plot(x, to_y(np.where(rate > 0, rate, np.nan)), ls=ls, color=color,
                lw=1.6 if name == "total" else 1.1, label=label, gid=f"term:{name}")


def _finish_tau_axes(ax, y, yerr, *, log: bool, legend_title, title, path) -> Figure:
    """y-limits from the data ± bars (terms far below must not squash the data; more room
    below, where the minor terms run), data first in the legend, title, save."""
    lo, hi = (y - yerr[0], y + yerr[1]) if yerr is not None else (y, y)
    if log:
        lo = lo[lo > 0] if np.any(lo > 0) else y
        ax.set_ylim(float(np.min(lo)) / 10 ** 1.5, float(np.max(hi)) * 10 ** 0.5)
    else:
        ax.set_ylim(float(np.min(lo)) - 1.5, float(np.max(hi)) + 1.0)
    pairs = sorted(zip(*ax.get_legend_handles_labels()),      # data first, then the lines
                   key=lambda hl: not isinstance(hl[0], ErrorbarContainer))
    ax.legend(*zip(*pairs), fontsize=7, frameon=False, title=legend_title, title_fontsize=7)
    return _finish(ax, path, title)


# ------------------------------------------------------------------------------ τ⁻¹ vs H
def plot_rate_vs_field(result_or_arrays, *, fit=None, path=None, ax=None,
                       title: str | None = None) -> Figure:
    """τ⁻¹ (s⁻¹, log axis) vs μ0H (T, linear) at one temperature.

    ``result_or_arrays``: a :class:`RelaxationResult` of a field scan or a
    :class:`SequentialResult` (its field step: data and terms), an :class:`AcDatasetResult`
    or a mapping of arrays (``H_mean_Oe``/``field_Oe``, ``tau_s``, optional
    ``log10_rate_err``, ``discarded``, ``process``, ``T_mean_K``; points only unless ``fit``).
    Error bars: rate ×/÷ 10^log10_rate_err. Lines: each switched-on term and the total of the
    fit at the scan's temperature, from H = 0 to 1.05 × the largest field.
    """
    ax, fit, y, yerr, h, _, t_fixed = _points(result_or_arrays, "field", fit, ax)
    if fit is not None:
        grid = np.linspace(0.0, 1.05 * h.max(), 300)
        t_model = t_fixed if math.isfinite(t_fixed) else float(np.median(fit.temperature_K))
        _draw_terms(ax, fit, grid, t_model, grid / OE_PER_T, lambda r: r)
    ax.set_yscale("log")
    ax.set_xlim(left=0)
    ax.set(xlabel=r"$\mu_0H$ (T)", ylabel=r"$\tau^{-1}$ (s$^{-1}$)")
    return _finish_tau_axes(ax, y, yerr, log=True, title=title, path=path,
                            legend_title=f"T = {t_fixed:.3g} K" if math.isfinite(t_fixed)
                            else None)


# ------------------------------------------------------------------------------ ln τ vs 1/T
def plot_ln_tau_vs_inverse_t(result_or_arrays=None, *, arrhenius: ArrheniusResult | None = None,
                             fit=None, path=None, ax=None, title: str | None = None) -> Figure:
    """ln τ (τ in s) vs 1/T (K⁻¹) at one field.

    ``result_or_arrays``: a :class:`RelaxationResult` of a temperature scan or a
    :class:`SequentialResult` (its temperature step), an :class:`AcDatasetResult` or a mapping
    of arrays (``T_mean_K``/``temperature_K``, ``tau_s``, ...), or None to plot the points of
    ``arrhenius``. Error bars: σ(ln τ) = ln10 × log10_rate_err. Mechanism terms are drawn as
    ln(1/rate_term) and the total as −ln Σ rates over the measured T range; the Arrhenius line
    ln τ0 + U/T over its fit window, labelled with U_eff (K and cm⁻¹) and τ0.
    """
    if arrhenius is not None and not isinstance(arrhenius, ArrheniusResult):
        raise TypeError(f"arrhenius={type(arrhenius).__name__}; allowed: ArrheniusResult/None")
    if result_or_arrays is None:
        if arrhenius is None:
            raise ValueError("result_or_arrays=None and arrhenius=None; allowed: at least one")
        result_or_arrays = {"temperature_K": arrhenius.temperature_K, "tau_s": arrhenius.tau_s}
    ax, fit, y, yerr, _, t, h_fixed = _points(result_or_arrays, "temperature", fit, ax)
    if fit is not None:
        grid = np.linspace(t.min() * 0.97, t.max() * 1.03, 300)
        h_model = h_fixed if math.isfinite(h_fixed) else float(np.median(fit.field_Oe))
        _draw_terms(ax, fit, h_model, grid, 1.0 / grid, lambda r: -np.log(r))
    if arrhenius is not None:
        a = arrhenius
        ax.plot(*a.curve, "-", color="gray", lw=2.5, alpha=0.6, gid="arrhenius",
                label=rf"Arrhenius: $U_{{eff}}$ = {a.U_K:.3g} ± {a.stderr['U']:.2g} K "
                      rf"({a.U_cm1:.3g} cm$^{{-1}}$), $\tau_0$ = {a.tau0_s:.2g} s")
    ax.set(xlabel=r"$1/T$ (K$^{-1}$)", ylabel=r"$\ln(\tau$ / s$)$")
    return _finish_tau_axes(ax, y, yerr, log=False, title=title, path=path,
                            legend_title=rf"$\mu_0H$ = {h_fixed / OE_PER_T:.3g} T"
                            if math.isfinite(h_fixed) else None)
