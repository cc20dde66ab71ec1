"""Photoluminescence figures: excitation and emission spectra with their peaks and bands, and
TCSPC decays on a log scale with the fit, the IRF and the residuals.

Same conventions as ``ac_figures``: matplotlib ``Figure`` objects on Agg (no pyplot state),
each function returns the Figure and writes a PNG when ``path`` is given; artists carry a
``gid`` (``spectrum:<label>``, ``uncorrected:<label>``, ``peak:<label>``, ``band:<label>``,
``data``, ``fit``, ``irf``, ``residuals``) for callers and tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from . import _validate as check
from .ac_figure_base import _finish
from .ac_figures import _safe
from .figures import _save
from .lifetime_fit import DecayFitResult
from .pl_run import LifetimeRunAnalysis, SpectrumRunAnalysis
from .pl_spectra import SCANS, SpectrumResult
from .results import format_value

_XLABEL = {"excitation": r"excitation wavelength $\lambda_{ex}$ (nm)",
           "emission": r"emission wavelength $\lambda_{em}$ (nm)"}
_FIXED = {"excitation": r"$\lambda_{em}$", "emission": r"$\lambda_{ex}$"}
_RESIDUAL_LABEL = {"mle": "deviance\nresidual", "neyman": "weighted\nresidual"}
#: Peaks lower than this fraction of a spectrum's highest peak are marked but not labelled.
LABEL_FRACTION = 0.1


# ------------------------------------------------------------------------------ spectra
def _spectrum_items(spectra, labels):
    """[(SpectrumResult, label, fixed_nm)] from one or several results or run analyses."""
    items = list(spectra) if isinstance(spectra, (list, tuple)) else [spectra]
    if not items:
        raise ValueError("spectra is empty; allowed: at least one SpectrumResult")
    if labels is not None and len(labels) != len(items):
        raise ValueError(f"labels has {len(labels)} entries; allowed: exactly {len(items)} "
                         "(one per spectrum)")
    out = []
    for k, item in enumerate(items):
        fixed, name = None, None
        if isinstance(item, SpectrumRunAnalysis):
            fixed, name, item = item.data.fixed_nm, item.data.sample_name or None, item.result
        if not isinstance(item, SpectrumResult):
            raise TypeError(f"spectra[{k}]={type(item).__name__}; allowed: SpectrumResult or "
                            "SpectrumRunAnalysis")
        label = labels[k] if labels is not None else name or f"{item.scan} {k + 1}"
        out.append((item, str(label), fixed))
    return out


def plot_spectra(spectra, *, labels: Sequence[str] | None = None, normalise: bool = False,
                 path=None, ax=None, title: str | None = None) -> Figure:
    """Net count rate (cps, dark subtracted) vs wavelength (nm); excitation spectra on the left
    and emission spectra on the right when both are given.

    ``spectra``: a :class:`SpectrumResult` or :class:`~.pl_run.SpectrumRunAnalysis`, or a list.
    Peaks are marked (▼, labelled with their position when ≥ :data:`LABEL_FRACTION` of the
    spectrum's highest peak), bands shaded. A corrected spectrum (``result.correction``) is
    drawn with its uncorrected scan as a thin dotted line (scaled to the same highest point). ``normalise``: each spectrum divided by its highest
    peak (or maximum). ``ax``: None, or one Axes per scan kind present.
    """
    items = _spectrum_items(spectra, labels)
    scans = [s for s in SCANS[::-1] if any(r.scan == s for r, _, _ in items)]
    if ax is None:
        fig = Figure(figsize=(5.0 * len(scans) + 1.0, 4.2), layout="constrained")
        axes = list(np.atleast_1d(fig.subplots(1, len(scans), squeeze=False)[0]))
    else:
        axes = [ax] if isinstance(ax, Axes) else list(np.ravel(np.asarray(ax, dtype=object)))
        if len(axes) != len(scans) or not all(isinstance(a, Axes) for a in axes):
            raise TypeError(f"ax={ax!r}; allowed: None or {len(scans)} Axes (one per scan kind: "
                            f"{', '.join(scans)})")
    panel = dict(zip(scans, axes))
    for k, (res, label, fixed) in enumerate(items):
        a, color = panel[res.scan], f"C{k % 10}"
        top = res.main_peak.height_cps if res.peaks else float(np.max(res.net_cps))
        scale = 1.0 / top if normalise and top > 0 else 1.0
        tag = label + (f" ({_FIXED[res.scan]} = {fixed:g} nm)" if fixed is not None else "")
        if res.uncorrected is not None:
            tag += f" [{res.correction['kind'].replace('_', ' ')} corrected]"
            raw = res.uncorrected
            raw_top = float(np.max(raw.net_cps))
            if raw_top > 0:
                a.plot(raw.wavelength_nm, raw.net_cps * (float(np.max(res.net_cps)) * scale / raw_top),
                       ":", lw=0.8, color=color, alpha=0.7, label=f"{label} uncorrected (scaled)",
                       gid=f"uncorrected:{label}")
        a.plot(res.wavelength_nm, res.net_cps * scale, "-", lw=1.0, color=color, label=tag,
               gid=f"spectrum:{label}")
        for band in res.bands:
            a.axvspan(band.lo_nm, band.hi_nm, color=color, alpha=0.08, lw=0,
                      gid=f"band:{label}")
        for p in res.peaks:
            y = p.height_cps * scale
            a.plot([p.position_nm], [y], "v", ms=5, color=color, gid=f"peak:{label}")
            if p.height_cps >= LABEL_FRACTION * top:
                a.annotate(f"{p.position_nm:.0f}", (p.position_nm, y), textcoords="offset points",
                           xytext=(0, 6), ha="center", fontsize=7, color=color)
    for scan, a in panel.items():
        a.set_xlabel(_XLABEL[scan])
        a.set_ylabel("normalised intensity" if normalise else "net count rate (cps)")
        # headroom above the highest peak for the peak labels and the legend
        a.set_ylim(bottom=min(0.0, a.get_ylim()[0]), top=a.get_ylim()[1] * 1.35)
        a.legend(fontsize=7, frameon=False)
    if title and len(axes) > 1:
        axes[0].figure.suptitle(title)
        title = None
    return _finish(axes[0], path, title)


# ------------------------------------------------------------------------------ decays
def _decay_inputs(time_ns, counts, fit, irf):
    t = check.array("time_ns", time_ns, min_length=2)
    y = check.array("counts", counts, length=t.size)
    if fit is not None and not isinstance(fit, DecayFitResult):
        raise TypeError(f"fit={type(fit).__name__}; allowed: DecayFitResult (fit_decay, "
                        "tail_fit) or None")
    if fit is not None and (fit.time_ns is None or fit.time_ns.size != t.size):
        raise ValueError(f"fit has {0 if fit.time_ns is None else fit.time_ns.size} channels; "
                         f"allowed: {t.size} (a fit of these counts)")
    irf_a = None if irf is None else check.array("irf", irf, length=t.size)
    return t, y, irf_a


def _fit_label(fit: DecayFitResult) -> str:
    taus = ", ".join(rf"$\tau_{i + 1}$ = {format_value(tau, err)} ns"
                     for i, (tau, err) in enumerate(zip(fit.taus_ns, fit.tau_errs_ns)))
    return rf"fit ({fit.method}): {taus}; $\chi^2_{{red}}$ = {fit.chi2_red:.3g}"


def plot_decay(time_ns, counts, fit: DecayFitResult | None = None, irf=None, *, path=None,
               title: str | None = None, label: str = "data") -> Figure:
    """Counts per channel vs t (ns) on a log axis with the fitted model (whole axis), the IRF
    (scaled to the decay's maximum) and, below, the fit's residuals (deviance residuals for
    the MLE, weighted for Neyman) on its fit range.

    ``irf``: IRF counts on the same channels (e.g. ``LifetimeRunAnalysis.irf_counts``) or None.
    """
    t, y, irf_a = _decay_inputs(time_ns, counts, fit, irf)
    fig = Figure(figsize=(6.5, 5.0), layout="constrained")
    if fit is None:
        top, bottom = fig.add_subplot(), None
    else:
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    positive = y[y > 0]
    floor = 0.5 * float(positive.min()) if positive.size else 0.5
    top.plot(t, np.where(y > 0, y, np.nan), ".", ms=2, color="0.45", label=label, gid="data")
    if irf_a is not None and irf_a.max() > 0:
        scaled = irf_a * (y.max() / irf_a.max())
        top.plot(t, np.where(scaled >= floor, scaled, np.nan), "--", lw=0.9, color="C0",
                 label="IRF (scaled)", gid="irf")
    if fit is not None:
        full = fit.curve(full_range=True) if callable(fit.curve) else fit.curve
        top.plot(full.x, full.y, "-", lw=1.3, color="C3", label=_fit_label(fit), gid="fit")
        bottom.plot(fit.curve.x, fit.residuals, "-", lw=0.6, color="C3", gid="residuals")
        bottom.axhline(0.0, color="black", lw=0.7)
        bottom.set_ylabel(_RESIDUAL_LABEL.get(fit.method, "residual"))
        bottom.set_xlabel("t (ns)")
    else:
        top.set_xlabel("t (ns)")
    top.set_yscale("log")
    top.set_ylim(bottom=floor, top=2.0 * max(float(y.max()), 1.0))
    top.set_ylabel("counts per channel")
    top.legend(fontsize=7, frameon=False, loc="upper right")
    return _finish(top, path, title)


# ------------------------------------------------------------------------------ demo helper
def _decay_args(name, value):
    if isinstance(value, LifetimeRunAnalysis):
        return value.fit.time_ns, value.fit.counts, value.fit, value.irf_counts   # fitted part
    if isinstance(value, (tuple, list)) and len(value) in (3, 4):
        return tuple(value) + (None,) * (4 - len(value))
    raise TypeError(f"decays[{name!r}]={type(value).__name__}; allowed: LifetimeRunAnalysis or "
                    "(time_ns, counts, fit[, irf])")


def write_pl_figures(out_dir, *, spectra: Mapping | None = None, decays: Mapping | None = None
                     ) -> list[Path]:
    """Write the PL figures the inputs allow; return the PNG paths.

    ``spectra``: name → spectrum result(s) (:func:`plot_spectra` input) →
    ``pl_spectra_<name>.png``. ``decays``: name → :class:`~.pl_run.LifetimeRunAnalysis` or
    ``(time_ns, counts, fit[, irf])`` → ``decay_<name>.png``. None entries are skipped.
    """
    out, written = Path(out_dir), []
    for arg, value in (("spectra", spectra), ("decays", decays)):
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"{arg}={type(value).__name__}; allowed: a dict name → result(s)")
    for name, value in (spectra or {}).items():
        if value is not None:
            written.append(_save(plot_spectra(value, title=str(name)),
                                 out / f"pl_spectra_{_safe(name)}.png"))
    for name, value in (decays or {}).items():
        if value is not None:
            t, y, fit, irf = _decay_args(name, value)
            written.append(_save(plot_decay(t, y, fit, irf, title=str(name)),
                                 out / f"decay_{_safe(name)}.png"))
    return written
