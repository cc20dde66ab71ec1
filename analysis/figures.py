"""Paper-style figures (matplotlib, Agg; no pyplot global state, safe in threads and CI).

Every function takes one result or a list of results (multi-compound overlay, with ``labels``)
and an output path, writes a PNG and returns the path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .chi_t import ChiTSummary
from .dc import DcRunAnalysis
from .mce import DELTA_B_TOLERANCE_T, MceResult, MhSummary
from .units import R_J_PER_MOL_K, bohr_magnetons_per_formula_unit

_MARKERS = "osD^v<>ph*"
_ENTROPY_LABELS = {"J_per_kg_K": r"$-\Delta S_m$ (J kg$^{-1}$ K$^{-1}$)",
                   "J_per_mol_K": r"$-\Delta S_m$ (J mol$^{-1}$ K$^{-1}$)",
                   "R": r"$-\Delta S_m$ ($R$)"}


def _as_list(obj, attr: str) -> list:
    items = list(obj) if isinstance(obj, (list, tuple)) else [obj]
    out = [getattr(i, attr) if isinstance(i, DcRunAnalysis) else i for i in items]
    if not out or any(i is None for i in out):
        raise ValueError(f"nothing to plot: expected {attr} results, got {obj!r}")
    return out


def _labels(labels: Sequence[str] | None, n: int) -> list[str | None]:
    if labels is None:
        return [None] * n
    if len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries; allowed: exactly {n} (one per result)")
    return list(labels)


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=150, format="png")
    return path


def plot_chi_t(summaries: ChiTSummary | Sequence[ChiTSummary], path, *,
               labels: Sequence[str] | None = None, title: str | None = None,
               inset: bool = True) -> Path:
    """χT vs T (emu K mol⁻¹); inset: 1/χ vs T with the Curie–Weiss line extended to 0 K."""
    items = _as_list(summaries, "chi_t")
    names = _labels(labels, len(items))
    fig = Figure(figsize=(6.0, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ins = ax.inset_axes([0.55, 0.1, 0.4, 0.4]) if inset else None
    for k, (s, name) in enumerate(zip(items, names)):
        line, = ax.plot(s.t_K, s.chi_t_emu_K_per_mol, _MARKERS[k % 10], ms=3, mfc="none",
                        label=name)
        if ins is None:
            continue
        ins.plot(s.t_K, 1.0 / s.chi_emu_per_mol_Oe, _MARKERS[k % 10], ms=2, color=line.get_color())
        cw = s.curie_weiss
        if cw is not None:
            grid = np.linspace(0.0, s.t_K.max(), 50)
            ins.plot(grid, (grid - cw.theta_K) / cw.curie_constant_emu_K_per_mol, "--", lw=1,
                     color="black" if len(items) == 1 else line.get_color())
    ax.set_xlabel("T (K)")
    ax.set_ylabel(r"$\chi T$ (emu K mol$^{-1}$)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    if ins is not None:
        ins.set_xlabel("T (K)", fontsize=7)
        ins.set_ylabel(r"$1/\chi$ (mol emu$^{-1}$)", fontsize=7)
        ins.tick_params(labelsize=6)
        ins.set_xlim(left=0)
        ins.set_ylim(bottom=0)
    if any(names):
        ax.legend(loc="upper left", bbox_to_anchor=(0.08, 0.85), frameon=False)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_m_h(summaries: MhSummary | Sequence[MhSummary], path, *,
             labels: Sequence[str] | None = None, title: str | None = None) -> Path:
    """M (μ_B per formula unit) vs B (T), one curve per isotherm (and per compound)."""
    items = _as_list(summaries, "mh")
    names = _labels(labels, len(items))
    fig = Figure(figsize=(6.0, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for k, (s, name) in enumerate(zip(items, names)):
        for iso in s.isotherms:
            tag = f"{iso.t_mean_K:.3g} K" + (f" {name}" if name else "")
            order = np.argsort(iso.b_T, kind="stable") if len(s.isotherms) > 1 else slice(None)
            ax.plot(iso.b_T[order], bohr_magnetons_per_formula_unit(iso.m_emu_per_mol[order]),
                    _MARKERS[k % 10] + "-", ms=2.5, lw=0.7, mfc="none", label=tag)
    ax.set_xlabel("B (T)")
    ax.set_ylabel(r"M ($\mu_B$ per f.u.)")
    ax.legend(fontsize=7, frameon=False, ncol=2)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_mce(results: MceResult | Sequence[MceResult], path, *,
             delta_b_T: Sequence[float] | None = None, unit: str = "J_per_kg_K",
             labels: Sequence[str] | None = None, title: str | None = None,
             show_ceiling: bool = True) -> Path:
    """−ΔS_m vs T for several ΔB (default 1, 2, 3, 5, 7 T within the measured range).

    ``unit``: ``J_per_kg_K`` (needs the molar mass), ``J_per_mol_K`` or ``R``. The ceiling
    n·R·ln(2S+1) is drawn as a dashed line when known.
    """
    items = _as_list(results, "mce")
    names = _labels(labels, len(items))
    fig = Figure(figsize=(6.0, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for k, (r, name) in enumerate(zip(items, names)):
        span = r.b_grid_T[-1] - r.b_grid_T[0]
        wanted = delta_b_T if delta_b_T is not None else [1, 2, 3, 5, 7]
        steps = [d for d in wanted if 0 < d <= span + DELTA_B_TOLERANCE_T] or [span]
        for j, d in enumerate(steps):
            c = r.at(d, unit)
            tag = f"ΔB = {d:g} T" + (f" {name}" if name else "")
            ax.plot(c.x, c.y, _MARKERS[k % 10] + "-", ms=3, lw=0.8, mfc="none",
                    color=f"C{j % 10}", label=tag)
        ceiling = r.values.get("minus_delta_s_ceiling_R")
        if show_ceiling and ceiling:
            level = {"R": ceiling, "J_per_mol_K": ceiling * R_J_PER_MOL_K,
                     "J_per_kg_K": r.values.get("minus_delta_s_ceiling_J_per_kg_K")}[unit]
            if level:
                ax.axhline(level, ls="--", lw=0.8, color="gray")
    ax.set_xlabel("T (K)")
    ax.set_ylabel(_ENTROPY_LABELS.get(unit, unit))
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, frameon=False)
    if title:
        ax.set_title(title)
    return _save(fig, path)
