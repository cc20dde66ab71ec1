"""ac spectra figures: χ'(f) and χ''(f) families and the Cole–Cole (Argand) plot of an
:class:`~.ac_dataset.AcDatasetResult`, one colour per spectrum (by mean T or μ0H) with a
colorbar, data as markers and fits as lines (conventions: :mod:`.ac_figures`).
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .ac_dataset import AcDatasetResult
from .ac_figure_base import FADED_ALPHA, _finish, _new_axes
from .relaxation_terms import OE_PER_T

COLOR_BY = ("temperature", "field", "auto")
_CHI_UNITS = {"emu/Oe": r"emu Oe$^{-1}$", "cm3/mol": r"cm$^3$ mol$^{-1}$",
              "cm3/g": r"cm$^3$ g$^{-1}$"}
# truncated maps: the light ends of plasma/viridis vanish on white paper
_CMAPS = {"temperature": ListedColormap(colormaps["plasma"](np.linspace(0.0, 0.85, 256))),
          "field": ListedColormap(colormaps["viridis"](np.linspace(0.0, 0.9, 256)))}


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
