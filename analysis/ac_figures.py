"""Paper-style ac-susceptibility figures: χ'(f), χ''(f) and Cole–Cole families, τ⁻¹ vs H
and ln τ vs 1/T with the fitted mechanism terms, and :func:`write_ac_figures` for the demo.

Markers are data, lines are fits; spectra the fit discarded (and their τ points) are drawn with
alpha :data:`FADED_ALPHA`. Every function returns the Figure and writes a PNG when ``path`` is
given. Figures are ``matplotlib.figure.Figure`` objects on Agg, never registered with pyplot, so
there is nothing to close (freed with their last reference). Artists carry a ``gid``
(``data:<set>``, ``fit:<set>``, ``term:<name>``, ``arrhenius``) for callers and tests.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Mapping

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .ac_dataset import AcDatasetResult
from .arrhenius import ArrheniusResult
from .figures import _MARKERS, _save
from .relaxation import RelaxationResult, SequentialResult
from .relaxation_terms import OE_PER_T, TERMS

FADED_ALPHA = 0.3
COLOR_BY = ("temperature", "field", "auto")
#: Relative spread of the "fixed" coordinate above which a scan is not a scan at one T or H.
FIXED_SPREAD = 0.05
_CHI_UNITS = {"emu/Oe": r"emu Oe$^{-1}$", "cm3/mol": r"cm$^3$ mol$^{-1}$",
              "cm3/g": r"cm$^3$ g$^{-1}$"}
_TERM_STYLE = {"qtm": ("QTM", "C0", "--"), "direct_h4": (r"direct ($H^4T$)", "C2", "--"),
               "direct_h2": (r"direct ($H^2T$)", "C1", "--"), "raman": ("Raman", "C4", "-."),
               "orbach": ("Orbach", "C3", ":"), "total": ("total", "black", "-")}
# truncated maps: the light ends of plasma/viridis vanish on white paper
_CMAPS = {"temperature": ListedColormap(colormaps["plasma"](np.linspace(0.0, 0.85, 256))),
          "field": ListedColormap(colormaps["viridis"](np.linspace(0.0, 0.9, 256)))}


# ------------------------------------------------------------------------------ helpers
def _finish(ax: Axes, path, title: str | None) -> Figure:
    if title:
        ax.set_title(title)
    if path is not None:
        _save(ax.figure, path)
    return ax.figure


def _new_axes(ax, figsize=(6.0, 4.5)) -> Axes:
    if ax is None:
        return Figure(figsize=figsize, layout="constrained").add_subplot()
    if not isinstance(ax, Axes):
        raise TypeError(f"ax={ax!r}; allowed: a matplotlib Axes or None")
    return ax


def _chi_label(part: str, unit: str) -> str:
    return rf"$\chi{part}$ ({_CHI_UNITS.get(unit, unit)})" if unit else rf"$\chi{part}$"


def _spectrum_colors(dataset: AcDatasetResult, color_by: str):
    """Check the inputs; (colour per spectrum, ScalarMappable for the colorbar, its label).
    ``"auto"``: by field for a field scan (H varies by > 10 Oe, T by < 0.2 K), else by T."""
    if not isinstance(dataset, AcDatasetResult):
        raise TypeError(f"dataset={type(dataset).__name__}; allowed: an AcDatasetResult "
                        "(from fit_ac_dataset)")
    if not dataset.spectra:
        raise ValueError("dataset has 0 spectra; allowed: at least 1")
    if color_by not in COLOR_BY:
        raise ValueError(f"color_by={color_by!r} is not allowed; allowed: "
                         f"{', '.join(map(repr, COLOR_BY))}")
    t = np.array([s.mean_temperature_k for s in dataset.spectra])
    h = np.array([s.mean_field_oe for s in dataset.spectra])
    if color_by == "auto":
        scan = np.all(np.isfinite(h)) and np.ptp(h) > 10.0 and np.nanmax(t) - np.nanmin(t) < 0.2
        color_by = "field" if scan else "temperature"
    values, label = (t, "T (K)") if color_by == "temperature" else \
        (h / OE_PER_T, r"$\mu_0H$ (T)")
    ok = np.isfinite(values)      # a spectrum with every row dropped has no T: grey
    if not ok.any():
        raise ValueError(f"color_by={color_by!r}: no spectrum has a {color_by}; allowed: "
                         f"{', '.join(map(repr, COLOR_BY))} with a measured value")
    lo, hi = float(values[ok].min()), float(values[ok].max())
    if hi - lo < 1e-9 * max(abs(hi), 1.0):       # one value: a ±50 % bar around it
        lo, hi = lo - 0.5 * max(abs(lo), 1e-3), hi + 0.5 * max(abs(hi), 1e-3)
    mappable = ScalarMappable(Normalize(lo, hi), _CMAPS[color_by])
    return [mappable.to_rgba(v) if math.isfinite(v) else "gray" for v in values], mappable, label


def _style_legend(ax: Axes, *, faded: bool, loc="best") -> None:
    handles = [Line2D([], [], marker="o", ls="none", mfc="none", color="gray", label="data"),
               Line2D([], [], color="gray", label="fit")]
    if faded:
        handles.append(Line2D([], [], marker="o", ls="--", mfc="none", color="gray",
                              alpha=FADED_ALPHA, label="discarded"))
    ax.legend(handles=handles, fontsize=7, frameon=False, loc=loc)


def _draw_spectra(dataset, axes_parts, colors) -> bool:
    """Data markers and fitted lines of every spectrum; True if any was faded."""
    faded_any = False
    for spec, res, color in zip(dataset.spectra, dataset.results, colors):
        faded = res is None or res.discarded
        faded_any |= faded
        alpha = FADED_ALPHA if faded else 1.0
        for ax, part in axes_parts:
            if part == "cole_cole":
                x, y = spec.chi_real, spec.chi_imag
                fit = None if res is None else (res.curve.y_real, res.curve.y)
            else:
                x, y = spec.frequency_hz, spec.chi_real if part == "real" else spec.chi_imag
                fit = None if res is None else (
                    res.curve.x, res.curve.y_real if part == "real" else res.curve.y)
            ax.plot(x, y, "o", ms=3, mfc="none", mew=0.8, color=color, alpha=alpha,
                    gid=f"data:{spec.set_id}")
            if fit is not None:
                ax.plot(*fit, "--" if faded else "-", lw=1.0, color=color, alpha=alpha,
                        gid=f"fit:{spec.set_id}")
    return faded_any


# ------------------------------------------------------------------------------ spectra
def plot_ac_spectra(dataset: AcDatasetResult, *, path=None, color_by: str = "temperature",
                    ax=None, title: str | None = None) -> Figure:
    """χ'(f) (top) and χ''(f) (bottom) vs f (Hz, log axis) for every spectrum of ``dataset``,
    coloured by mean T (K) or mean μ0H (T) with a colorbar; fits as lines over the points.

    ``ax``: None (new two-panel figure), one Axes (χ'' only, as in the paper's panels) or a
    pair of Axes (χ', χ'').
    """
    colors, mappable, cbar_label = _spectrum_colors(dataset, color_by)
    if ax is None:
        ax = Figure(figsize=(6.0, 6.5), layout="constrained").subplots(2, 1, sharex=True)
    axes = [ax] if isinstance(ax, Axes) else list(np.ravel(np.asarray(ax, dtype=object)))
    if len(axes) not in (1, 2) or not all(isinstance(a, Axes) for a in axes):
        raise TypeError(f"ax={ax!r}; allowed: None, one Axes (χ'') or two Axes (χ', χ'')")
    parts = list(zip(axes, ["imag"] if len(axes) == 1 else ["real", "imag"]))
    faded = _draw_spectra(dataset, parts, colors)
    unit = dataset.spectra[0].chi_unit
    for a, part in parts:
        a.set_xscale("log")
        a.set_ylabel(_chi_label("'" if part == "real" else "''", unit))
        a.set_ylim(bottom=0)
    axes[-1].set_xlabel("f (Hz)")
    _style_legend(axes[0], faded=faded)
    axes[0].figure.colorbar(mappable, ax=axes, label=cbar_label)
    return _finish(axes[0], path, title)


def plot_cole_cole(dataset: AcDatasetResult, *, path=None, color_by: str = "temperature",
                   ax=None, title: str | None = None) -> Figure:
    """χ'' vs χ' (Cole–Cole / Argand plot, equal axes) with the fitted arcs."""
    colors, mappable, cbar_label = _spectrum_colors(dataset, color_by)
    own = ax is None
    ax = _new_axes(ax)
    faded = _draw_spectra(dataset, [(ax, "cole_cole")], colors)
    unit = dataset.spectra[0].chi_unit
    ax.set_xlabel(_chi_label("'", unit))
    ax.set_ylabel(_chi_label("''", unit))
    ax.set_ylim(bottom=0)
    ax.set_aspect("equal", adjustable="box")     # arcs look like arcs
    if own:     # figure height to the data's aspect: no empty bands around a flat box
        x0, x1 = ax.get_xlim()
        ratio = ax.get_ylim()[1] / (x1 - x0)
        ax.figure.set_size_inches(6.0, min(max(2.6, 4.4 * ratio + 1.3), 6.5))
    _style_legend(ax, faded=faded, loc="upper right")
    # colorbar as an inset: it follows the aspect-shrunk box instead of the whole slot
    ax.figure.colorbar(mappable, cax=ax.inset_axes([1.03, 0.0, 0.035, 1.0]), label=cbar_label)
    return _finish(ax, path, title)


# ------------------------------------------------------------------------------ τ data
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


# ------------------------------------------------------------------------------ demo helper
def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "sample"


def _relaxation_parts(name: str, value) -> dict:
    """{"field": …, "temperature": …, "arrhenius": …} from one relaxation_by_name value."""
    if isinstance(value, Mapping):
        if set(value) - {"field", "temperature", "sequential", "arrhenius"}:
            raise ValueError(f"relaxation_by_name[{name!r}] has keys {sorted(value)}; allowed: "
                             "field, temperature, sequential, arrhenius")
        out = _relaxation_parts(name, value.get("sequential"))
        return {**out, **{k: v for k, v in value.items() if k != "sequential" and v is not None}}
    if value is None:
        return {}
    if isinstance(value, SequentialResult):
        return {"field": value, "temperature": value}
    if isinstance(value, ArrheniusResult):
        return {"arrhenius": value}
    if isinstance(value, RelaxationResult):     # a global fit (H and T vary) has no scan
        scan = "field" if np.ptp(value.temperature_K) == 0 else \
            "temperature" if np.ptp(value.field_Oe) == 0 else None
        return {scan: value} if scan else {}
    raise TypeError(f"relaxation_by_name[{name!r}]={type(value).__name__}; allowed: "
                    "SequentialResult, RelaxationResult, ArrheniusResult or a mapping")


def write_ac_figures(dataset_by_name: Mapping, relaxation_by_name: Mapping, out_dir
                     ) -> list[Path]:
    """Write every figure that the inputs allow; return the PNG paths.

    ``dataset_by_name``: sample → :class:`AcDatasetResult` or {label → AcDatasetResult}
    (e.g. a field scan and a temperature scan): ``ac_spectra_<sample>[_<label>].png`` (coloured
    by H for a field scan, else by T) and ``cole_cole_…png``.
    ``relaxation_by_name``: sample → :class:`SequentialResult`, :class:`RelaxationResult`,
    :class:`ArrheniusResult` or a mapping with keys ``field``, ``temperature``,
    ``sequential``, ``arrhenius``: ``rate_vs_field_<sample>.png`` and
    ``ln_tau_vs_inv_T_<sample>.png``. Missing or None entries are skipped.
    """
    for arg, value in (("dataset_by_name", dataset_by_name),
                       ("relaxation_by_name", relaxation_by_name)):
        if not isinstance(value, Mapping):
            raise TypeError(f"{arg}={type(value).__name__}; allowed: a dict name → result")
    out = Path(out_dir)
    written: list[Path] = []
    for name, value in dataset_by_name.items():
        items = value.items() if isinstance(value, Mapping) else [("", value)]
        for label, ds in items:
            if ds is None or (isinstance(ds, AcDatasetResult) and not ds.spectra):
                continue
            tag = _safe(name) + (f"_{_safe(label)}" if label else "")
            head = f"{name} {label}".strip()
            for kind, plot in (("ac_spectra", plot_ac_spectra), ("cole_cole", plot_cole_cole)):
                written.append(_save(plot(ds, color_by="auto", title=head),
                                     out / f"{kind}_{tag}.png"))
    for name, value in relaxation_by_name.items():
        parts = _relaxation_parts(name, value)
        if parts.get("field") is not None:
            written.append(_save(plot_rate_vs_field(parts["field"], title=str(name)),
                                 out / f"rate_vs_field_{_safe(name)}.png"))
        if parts.get("temperature") is not None or parts.get("arrhenius") is not None:
            fig = plot_ln_tau_vs_inverse_t(parts.get("temperature"),
                                           arrhenius=parts.get("arrhenius"), title=str(name))
            written.append(_save(fig, out / f"ln_tau_vs_inv_T_{_safe(name)}.png"))
    return written
