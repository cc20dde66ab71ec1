"""χT(T) summary of a dc susceptibility run (cgs-emu, per mol of formula units)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from . import _validate as check
from . import units
from .curie_weiss import CurieWeissResult, fit_curie_weiss
from .free_ion import free_ion_chi_t_sum
from .results import Curve, format_table, format_value, json_safe

#: χT "at 300 K" may come from the nearest point when 300 K is just outside the data (K).
NEAREST_TOLERANCE_K = 5.0


@dataclass
class ChiTSummary:
    """χT(T) curve, χT at 300 K and at the lowest temperature, and the nested Curie–Weiss fit.

    Arrays are sorted by temperature: ``t_K`` (K), ``h_oe`` (Oe), ``chi_emu_per_mol_Oe``
    (paramagnetic molar χ, diamagnetism subtracted), ``chi_err_emu_per_mol_Oe`` (or None),
    ``chi_t_emu_K_per_mol``.
    """

    t_K: np.ndarray
    h_oe: np.ndarray
    chi_emu_per_mol_Oe: np.ndarray
    chi_err_emu_per_mol_Oe: np.ndarray | None
    chi_t_emu_K_per_mol: np.ndarray
    values: dict[str, float | None]
    curie_weiss: CurieWeissResult | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def curve(self) -> Curve:
        return Curve(self.t_K, self.chi_t_emu_K_per_mol, "T_K", "chi_t_emu_K_per_mol")

    def report(self) -> str:
        rows = [(k, format_value(v) if isinstance(v, float) else str(v))
                for k, v in self.values.items()]
        rows += [("note", n) for n in self.notes]
        text = format_table("χT(T) summary", rows)
        return text + ("\n" + self.curie_weiss.report() if self.curie_weiss else "")

    def to_dict(self, *, include_curve: bool = False) -> dict:
        out = dict(self.values)
        if self.curie_weiss is not None:
            out["curie_weiss"] = self.curie_weiss.to_dict()
        out["notes"] = list(self.notes)
        if include_curve:
            out["curve"] = self.curve.to_dict()
        return json_safe(out)


def _value_at_300K(t: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(χT at 300 K, temperature actually used): linear interpolation inside the data,
    nearest point within NEAREST_TOLERANCE_K outside it, NaN otherwise."""
    if t[0] <= 300.0 <= t[-1]:
        return float(np.interp(300.0, t, y)), 300.0
    i = int(np.argmin(np.abs(t - 300.0)))
    if abs(t[i] - 300.0) <= NEAREST_TOLERANCE_K:
        return float(y[i]), float(t[i])
    return float("nan"), float("nan")


def chi_t_summary(T_K, H_Oe, moment_emu, *, mass_mg: float, molar_mass_g_per_mol: float,
                  diamagnetic_emu_per_mol_Oe: float = 0.0, moment_err_emu=None,
                  ions: Mapping[str, float] | None = None, cw_t_min_K: float = 150.0,
                  cw_t_max_K: float = 300.0) -> ChiTSummary:
    """Summarise a χ(T) measurement.

    Parameters
    ----------
    T_K, H_Oe, moment_emu : arrays (K, Oe, emu), one value per measured point.
    mass_mg, molar_mass_g_per_mol : sample mass (mg) and molar mass per formula unit (g mol⁻¹).
    diamagnetic_emu_per_mol_Oe : diamagnetic molar susceptibility subtracted as χ_dia·H.
    moment_err_emu : optional standard errors of the moment (emu); weights of the Curie–Weiss fit.
    ions : optional composition per formula unit (``{"Er": 1}``) for the free-ion comparison.
    cw_t_min_K, cw_t_max_K : Curie–Weiss window. If it cannot be fitted the summary still
        returns, with ``curie_weiss=None`` and the reason in ``notes``.

    ``values`` keys: ``chi_t_300K_emu_K_per_mol``, ``t_ref_300K_K`` (temperature actually used),
    ``chi_t_min_T_emu_K_per_mol``, ``t_min_K``, ``t_max_K``, ``field_Oe`` (median field),
    ``n_points`` and, with ``ions``, ``chi_t_free_ion_emu_K_per_mol`` and
    ``chi_t_300K_over_free_ion``.
    """
    t = check.array("T_K", T_K, positive_values=True)
    h = check.array("H_Oe", H_Oe, length=t.size, nonzero=True)
    m = check.array("moment_emu", moment_emu, length=t.size)
    err = None if moment_err_emu is None else check.array("moment_err_emu", moment_err_emu,
                                                          length=t.size)
    order = np.argsort(t, kind="stable")
    t, h, m = t[order], h[order], m[order]
    chi = units.moment_to_chi_molar(m, h, mass_mg=mass_mg,
                                    molar_mass_g_per_mol=molar_mass_g_per_mol,
                                    diamagnetic_emu_per_mol_oe=diamagnetic_emu_per_mol_Oe)
    chi_err = None
    if err is not None:
        n_mol = units.moles_of_formula_units(mass_mg, molar_mass_g_per_mol)
        chi_err = np.abs(err[order] / (n_mol * h))
    chit = units.chi_t(chi, t)
    v300, t300 = _value_at_300K(t, chit)
    values: dict[str, float | None] = {
        "chi_t_300K_emu_K_per_mol": v300,
        "t_ref_300K_K": t300,
        "chi_t_min_T_emu_K_per_mol": float(chit[0]),
        "t_min_K": float(t[0]),
        "t_max_K": float(t[-1]),
        "field_Oe": float(np.median(h)),
        "n_points": int(t.size),
    }
    if ions:
        free = free_ion_chi_t_sum(ions)
        values["chi_t_free_ion_emu_K_per_mol"] = free
        values["chi_t_300K_over_free_ion"] = v300 / free if free > 0 else float("nan")
    summary = ChiTSummary(t, h, chi, chi_err, chit, values)
    use_sigma = chi_err is not None and bool(np.all(chi_err > 0))
    try:
        summary.curie_weiss = fit_curie_weiss(t, chi, t_min_K=cw_t_min_K, t_max_K=cw_t_max_K,
                                              sigma=chi_err if use_sigma else None)
    except ValueError as exc:
        summary.notes.append(f"Curie–Weiss fit not done: {exc}")
    if chi_err is not None and not use_sigma:
        summary.notes.append("moment errors contain zeros: Curie–Weiss fit unweighted")
    if not np.isfinite(v300):
        summary.notes.append(f"no data within {NEAREST_TOLERANCE_K} K of 300 K")
    return summary
