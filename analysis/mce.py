"""M(H) isotherms and the magnetocaloric entropy change −ΔS_m(T, ΔB) by the Maxwell relation.

Numerics follow ``reference/fitting.md`` §4 (validated on an analytic S = 7/2 paramagnet):

1. isotherms are grouped by the caller's key (the temperature *setpoint* or measurement index);
   measured temperatures are never clustered, so two setpoints 0.1 K apart stay separate;
2. each isotherm's temperature is the *measured* mean T of its points;
3. each isotherm (non-negative field branch, points at the same field averaged) is PCHIP-
   interpolated onto one common field grid spanning only the range every isotherm measured
   (no extrapolation);
4. ∂M/∂T is the difference between adjacent isotherms, assigned to T_mid = (T_i + T_i+1)/2;
5. ``scipy.integrate.cumulative_trapezoid`` in B gives ΔS for every ΔB = B − B_start at once.

Units: M in emu mol⁻¹ per formula unit (diamagnetism subtracted), H in Oe, B in T (10⁴ Oe);
ΔS in J mol⁻¹ K⁻¹ (= 10⁻³ ∫(∂M/∂T) dB), J kg⁻¹ K⁻¹ (× 1000/MW) and units of R.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.integrate import cumulative_trapezoid
from scipy.interpolate import PchipInterpolator

from . import _validate as check
from . import units
from .free_ion import saturation_moment_sum_muB
from .results import Curve, format_table, format_value, json_safe

#: Fields closer than this (T) within one isotherm are treated as the same field and averaged.
FIELD_TOLERANCE_T = 5e-4
#: A requested ΔB may exceed the measured span by this much (T); it is then clamped to the span
#: (a nominal "7 T" sweep reads 6.998 T, and starts at a few mT rather than at exactly 0).
DELTA_B_TOLERANCE_T = 0.05


@dataclass
class Isotherm:
    """One M(H) isotherm: the raw points in measurement order, with its group key."""

    key: Any
    t_mean_K: float
    t_std_K: float
    b_T: np.ndarray
    m_emu_per_mol: np.ndarray

    def positive_branch(self, field_tol_T: float = FIELD_TOLERANCE_T):
        """(B, M) for B >= 0, sorted, with points at the same field (within tolerance) averaged."""
        keep = self.b_T >= -field_tol_T
        b, m = np.abs(self.b_T[keep]), self.m_emu_per_mol[keep]
        order = np.argsort(b, kind="stable")
        b, m = b[order], m[order]
        if b.size == 0:
            return b, m
        ids = np.concatenate([[0], np.cumsum(np.diff(b) > field_tol_T)])
        counts = np.bincount(ids)
        return np.bincount(ids, b) / counts, np.bincount(ids, m) / counts


def _ordered_keys(keys: list) -> list:
    try:
        return sorted(keys)
    except TypeError:
        return keys


def group_isotherms(T_K, H_Oe, M_emu_per_mol, group=None) -> list[Isotherm]:
    """Split points into isotherms by ``group`` (one key per point, e.g. the T setpoint).

    ``group=None`` means all points form one isotherm. Isotherms are returned in key order
    (numeric setpoints ascending), falling back to first-appearance order for unorderable keys.
    """
    t = check.array("T_K", T_K, positive_values=True)
    b = units.oe_to_tesla(check.array("H_Oe", H_Oe, length=t.size))
    m = check.array("M_emu_per_mol", M_emu_per_mol, length=t.size)
    keys = np.zeros(t.size) if group is None else np.asarray(group)
    if keys.shape != t.shape:
        raise ValueError(f"group has shape {keys.shape}; allowed: one key per point, "
                         f"shape {t.shape}")
    first_seen = list(dict.fromkeys(keys.tolist()))
    out = []
    for k in _ordered_keys(first_seen):
        sel = keys == k
        out.append(Isotherm(k, float(t[sel].mean()), float(t[sel].std()), b[sel], m[sel]))
    return out


@dataclass
class MhSummary:
    """M(H) isotherms in μ_B per formula unit and M at the highest field and lowest T."""

    isotherms: list[Isotherm]
    values: dict[str, Any]

    def curves(self) -> list[Curve]:
        """One curve per isotherm: B (T) → M (μ_B per formula unit), measurement order."""
        return [Curve(i.b_T, units.bohr_magnetons_per_formula_unit(i.m_emu_per_mol), "B_T",
                      f"M_muB_per_fu_{i.t_mean_K:.3g}K") for i in self.isotherms]

    def report(self) -> str:
        return format_table("M(H) summary", [(k, format_value(v) if isinstance(v, float)
                                              else str(v)) for k, v in self.values.items()])

    def to_dict(self) -> dict:
        return json_safe(dict(self.values))


def mh_summary(T_K, H_Oe, M_emu_per_mol, group=None, *, ions: Mapping[str, float] | None = None,
               field_tol_T: float = FIELD_TOLERANCE_T) -> MhSummary:
    """M in μ_B per formula unit at the highest |field| of the lowest-temperature isotherm.

    All points at the top field (e.g. the start and the return of a hysteresis loop) are
    averaged, each taken with the sign of its field. Values: ``m_max_muB_per_fu``,
    ``m_max_emu_per_mol``, ``b_at_m_max_T``, ``t_at_m_max_K``, ``n_isotherms``,
    ``isotherm_t_K`` and, with ``ions``, ``m_sat_free_ion_muB_per_fu`` (Σ g_J·J).
    """
    isos = group_isotherms(T_K, H_Oe, M_emu_per_mol, group)
    coldest = min(isos, key=lambda i: i.t_mean_K)
    babs = np.abs(coldest.b_T)
    top = babs >= babs.max() - field_tol_T
    m_top = float(np.mean(coldest.m_emu_per_mol[top] * np.sign(coldest.b_T[top])))
    values: dict[str, Any] = {
        "m_max_muB_per_fu": float(units.bohr_magnetons_per_formula_unit(m_top)),
        "m_max_emu_per_mol": m_top,
        "b_at_m_max_T": float(babs[top].mean()),
        "t_at_m_max_K": coldest.t_mean_K,
        "n_isotherms": len(isos),
        "isotherm_t_K": [i.t_mean_K for i in isos],
    }
    if ions:
        values["m_sat_free_ion_muB_per_fu"] = saturation_moment_sum_muB(ions)
    return MhSummary(isos, values)


@dataclass
class MceResult:
    """−ΔS_m on the grid (T_mid × B). ``minus_ds_J_per_mol_K[k, j]`` is −ΔS at T_mid[k] for
    ΔB = b_grid_T[j] − b_grid_T[0]."""

    isotherms: list[Isotherm]
    t_mid_K: np.ndarray
    b_grid_T: np.ndarray
    minus_ds_J_per_mol_K: np.ndarray
    molar_mass_g_per_mol: float | None
    values: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def at(self, delta_b_T: float, unit: str = "J_per_mol_K") -> Curve:
        """−ΔS(T_mid) for one ΔB (linear in B between grid nodes); unit ``J_per_mol_K``,
        ``J_per_kg_K`` or ``R``."""
        db = self.b_grid_T - self.b_grid_T[0]
        d = _clamp_delta_b(check.finite("delta_b_T", delta_b_T), float(db[-1]))
        y = np.array([np.interp(d, db, row) for row in self.minus_ds_J_per_mol_K])
        if unit == "R":
            y = units.entropy_in_units_of_R(y)
        elif unit == "J_per_kg_K":
            if self.molar_mass_g_per_mol is None:
                raise ValueError("unit='J_per_kg_K' needs molar_mass_g_per_mol; it was None")
            y = units.entropy_J_per_mol_K_to_J_per_kg_K(y, self.molar_mass_g_per_mol)
        elif unit != "J_per_mol_K":
            raise ValueError(f"unit={unit!r} is unknown; allowed: 'J_per_mol_K', 'J_per_kg_K', 'R'")
        return Curve(self.t_mid_K.copy(), y, "T_mid_K", f"minus_delta_s_{unit}")

    @property
    def curve(self) -> Curve:
        return self.at(self.values["delta_b_T"])

    def report(self) -> str:
        rows = [(k, format_value(v) if isinstance(v, float) else str(v))
                for k, v in self.values.items()] + [("note", n) for n in self.notes]
        return format_table("Magnetocaloric effect (Maxwell relation)", rows)

    def to_dict(self, *, include_curve: bool = False) -> dict:
        out = dict(self.values, notes=list(self.notes))
        if include_curve:
            out["curve"] = self.curve.to_dict()
        return json_safe(out)


def _clamp_delta_b(delta_b_T: float, span_T: float) -> float:
    if not 0 < delta_b_T <= span_T + DELTA_B_TOLERANCE_T:
        raise ValueError(f"delta_b_T={delta_b_T!r} is out of range; allowed range: 0 < ΔB <= "
                         f"{span_T:.6g} T (+{DELTA_B_TOLERANCE_T} T tolerance), the field range "
                         "common to the isotherms")
    return min(delta_b_T, span_T)


def _complete_isotherms(isos, branches, delta_b_T: float, notes: list[str]):
    """Drop isotherms that stop before B_start + ΔB (e.g. the last one of an aborted run)."""
    lo = max(b[0] for b, _ in branches)
    short = [k for k, (b, _) in enumerate(branches) if b[-1] < lo + delta_b_T - DELTA_B_TOLERANCE_T]
    if len(isos) - len(short) < 2:
        return isos, branches  # nothing sensible to drop: the range check below reports it
    for k in short:
        notes.append(f"isotherm {isos[k].key!r} ({isos[k].t_mean_K:.4g} K) reaches only "
                     f"{branches[k][0][-1]:.4g} T < ΔB: left out")
    keep = [k for k in range(len(isos)) if k not in short]
    return [isos[k] for k in keep], [branches[k] for k in keep]


def _common_grid(branches, n_field: int, delta_b_T: float):
    lo = max(b[0] for b, _ in branches)
    hi = min(b[-1] for b, _ in branches)
    if not hi > lo:
        raise ValueError(f"isotherms share no field range: common range {lo:.4g}..{hi:.4g} T; "
                         "allowed: every isotherm must cover a common interval")
    step = lo + _clamp_delta_b(delta_b_T, hi - lo)
    return np.union1d(np.linspace(lo, hi, int(n_field)), [step])


def magnetic_entropy_change(T_K, H_Oe, M_emu_per_mol, group, *,
                            molar_mass_g_per_mol: float | None = None, delta_b_T: float = 2.0,
                            ceiling_R: float | None = None, n_field: int = 281,
                            field_tol_T: float = FIELD_TOLERANCE_T) -> MceResult:
    """−ΔS_m(T, ΔB) from M(H) isotherms by the Maxwell relation (see module docstring).

    Parameters
    ----------
    T_K, H_Oe, M_emu_per_mol : one value per point (measured T in K, field in Oe, molar
        magnetisation per formula unit in emu mol⁻¹ with diamagnetism subtracted).
    group : one key per point identifying its isotherm (the temperature setpoint).
    molar_mass_g_per_mol : enables the J kg⁻¹ K⁻¹ outputs.
    delta_b_T : ΔB (T) of the reported maximum.
    ceiling_R : theoretical ceiling n·ln(2S+1) in units of R (see ``free_ion``), optional.
    n_field : number of points of the common field grid.

    ``values`` keys: ``delta_b_T``, ``minus_delta_s_max_J_per_mol_K``, ``minus_delta_s_max_R``,
    ``minus_delta_s_max_J_per_kg_K``, ``delta_b_actual_T``, ``t_at_max_K``, ``b_start_T``,
    ``b_end_T``, ``mce_n_isotherms``, ``mce_isotherm_t_K`` (the isotherms used) and, with
    ``ceiling_R``, ``minus_delta_s_ceiling_R``, ``minus_delta_s_ceiling_J_per_kg_K``,
    ``fraction_of_ceiling``. Isotherms that stop before B_start + ΔB (an aborted run's last one)
    are left out, with a note.
    """
    if group is None:
        raise ValueError("group=None is invalid; allowed: one isotherm key (T setpoint) per point")
    isos = group_isotherms(T_K, H_Oe, M_emu_per_mol, group)
    if len(isos) < 2:
        raise ValueError(f"group holds {len(isos)} isotherm(s) (keys {[i.key for i in isos]}); "
                         "allowed: at least 2 isotherms")
    temps = np.array([i.t_mean_K for i in isos])
    if np.any(np.diff(temps) <= 0):
        k = int(np.flatnonzero(np.diff(temps) <= 0)[0])
        raise ValueError(
            f"isotherm temperatures are non-monotonic in setpoint order: key {isos[k].key!r} "
            f"has mean T {temps[k]:.5g} K, key {isos[k + 1].key!r} has {temps[k + 1]:.5g} K; "
            "allowed: measured mean T strictly increasing with the setpoint")
    branches = [i.positive_branch(field_tol_T) for i in isos]
    for iso, (b, _) in zip(isos, branches):
        if b.size < 2:
            raise ValueError(f"isotherm {iso.key!r} has {b.size} distinct field(s) >= 0; "
                             "allowed: at least 2")
    mw = None if molar_mass_g_per_mol is None else check.positive("molar_mass_g_per_mol",
                                                                  molar_mass_g_per_mol)
    db = check.positive("delta_b_T", delta_b_T)
    notes: list[str] = []
    isos, branches = _complete_isotherms(isos, branches, db, notes)
    temps = np.array([i.t_mean_K for i in isos])
    grid = _common_grid(branches, check.positive("n_field", n_field), db)
    m_grid = np.array([PchipInterpolator(b, m, extrapolate=False)(grid) for b, m in branches])
    dm_dt = np.diff(m_grid, axis=0) / np.diff(temps)[:, None]
    ds = units.maxwell_integral_to_J_per_mol_K(
        cumulative_trapezoid(dm_dt, grid, axis=1, initial=0.0))
    t_mid = 0.5 * (temps[1:] + temps[:-1])
    result = MceResult(isos, t_mid, grid, -ds, mw, {"delta_b_T": db}, notes)
    y = result.at(db).y
    k = int(np.argmax(y))
    v = result.values
    v["minus_delta_s_max_J_per_mol_K"] = float(y[k])
    v["minus_delta_s_max_R"] = float(units.entropy_in_units_of_R(y[k]))
    v["minus_delta_s_max_J_per_kg_K"] = (None if mw is None else
                                         float(units.entropy_J_per_mol_K_to_J_per_kg_K(y[k], mw)))
    v.update(delta_b_actual_T=min(db, float(grid[-1] - grid[0])), t_at_max_K=float(t_mid[k]),
             b_start_T=float(grid[0]), b_end_T=float(grid[-1]),
             mce_n_isotherms=len(isos), mce_isotherm_t_K=temps.tolist())
    if ceiling_R is not None:
        c = check.positive("ceiling_R", ceiling_R)
        v["minus_delta_s_ceiling_R"] = c
        v["minus_delta_s_ceiling_J_per_kg_K"] = (None if mw is None else float(
            units.entropy_J_per_mol_K_to_J_per_kg_K(c * units.R_J_PER_MOL_K, mw)))
        v["fraction_of_ceiling"] = v["minus_delta_s_max_R"] / c
    if grid[0] > 0.05:
        result.notes.append(f"lowest common field is {grid[0]:.3g} T: ΔB counted from there")
    if k in (0, t_mid.size - 1):
        result.notes.append("maximum at the edge of the temperature range")
    return result


def isotherm_keys_from_setpoints(setpoints: Sequence[float], decimals: int = 6) -> np.ndarray:
    """Group keys from setpoint values: exact setpoints rounded to ``decimals`` (no clustering)."""
    return np.round(check.array("setpoints", setpoints), decimals)
