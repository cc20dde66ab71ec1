"""Analysis of one dc magnetometry run: start document + primary-stream columns → results.

Column names are those of ``docs/architecture.md``: ``vsm_moment`` (emu), ``vsm_moment_err``
(emu), ``vsm_temperature`` (K, mean during the measurement; falls back to
``mpms3_temperature``), ``vsm_field`` (Oe; falls back to ``mpms3_field``) and
``mpms3_temperature_setpoint`` (K, the isotherm key). Sample metadata come from
``start["sample"]``: ``mass_mg``, ``molar_mass_g_per_mol``, ``diamagnetic_emu_per_mol_Oe``,
``ions``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from . import units
from .chi_t import ChiTSummary, chi_t_summary
from .curie_weiss import WindowSensitivity, window_sensitivity
from .free_ion import low_temperature_entropy_ceiling_R
from .mce import MceResult, MhSummary, isotherm_keys_from_setpoints, magnetic_entropy_change, \
    mh_summary
from .results import format_table, json_safe

DC_PLANS = ("chi_t", "m_h", "mce_isotherms")
#: Without a setpoint column, an M(H) run is one isotherm only if its T spread is below this (K).
SINGLE_ISOTHERM_SPREAD_K = 0.5
_FIT_GENERIC_KEYS = ("model", "n_points", "chi2_red")


@dataclass
class DcRunAnalysis:
    """Everything derived from one dc run; ``to_dict()`` is flat JSON with unit-suffixed keys."""

    kind: str
    raw_uid: str | None
    sample_name: str | None
    n_points: int
    n_duplicates_dropped: int = 0
    chi_t: ChiTSummary | None = None
    window: WindowSensitivity | None = None
    mh: MhSummary | None = None
    mce: MceResult | None = None
    notes: list[str] = field(default_factory=list)
    #: the raw run's start document (provenance; not part of ``to_dict``)
    start: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"analysis": self.kind, "raw_uid": self.raw_uid,
                               "sample_name": self.sample_name}
        if self.chi_t is not None:
            out.update(self.chi_t.values)
            if self.chi_t.curie_weiss is not None:
                for k, v in self.chi_t.curie_weiss.to_dict().items():
                    out[f"cw_{k}" if k in _FIT_GENERIC_KEYS else k] = v
        if self.window is not None:
            out.update(self.window.to_dict())
        if self.mh is not None:
            out.update(self.mh.values)
        if self.mce is not None:
            out.update(self.mce.values)
        out["n_points"] = self.n_points
        out["n_duplicates_dropped"] = self.n_duplicates_dropped
        notes = list(self.notes)
        for part in (self.chi_t, self.mce):
            notes += getattr(part, "notes", [])
        out["notes"] = notes
        return json_safe(out)

    def report(self) -> str:
        head = format_table(f"dc analysis: {self.kind}", [
            ("raw run", str(self.raw_uid)), ("sample", str(self.sample_name)),
            ("points", f"{self.n_points} ({self.n_duplicates_dropped} duplicates dropped)")]
            + [("note", n) for n in self.notes])
        parts = [p.report() for p in (self.chi_t, self.window, self.mh, self.mce) if p is not None]
        return "\n".join([head, *parts])


def _sample_value(sample: Mapping, key: str, default: Any = ...) -> Any:
    if key in sample and sample[key] is not None:
        return sample[key]
    if default is ...:
        raise ValueError(f"start['sample'][{key!r}] is missing; allowed: a number "
                         f"(sample keys present: {sorted(sample)})")
    return default


def _column(data: Mapping[str, Any], *names: str, required: bool = True) -> np.ndarray | None:
    for name in names:
        if name in data and data[name] is not None:
            return np.asarray(data[name], dtype=float)
    if required:
        raise ValueError(f"data has no column {' or '.join(map(repr, names))}; "
                         f"columns present: {sorted(data)}")
    return None


def deduplicate(data: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], int]:
    """Keep only the last row of every ``seq_num`` (a suspended point re-measured).

    Returns (columns, number of rows dropped). Without ``seq_num`` nothing is dropped.
    """
    cols = {k: np.asarray(v) for k, v in data.items()}
    if "seq_num" not in cols:
        return cols, 0
    seq = cols["seq_num"]
    _, first_in_reversed = np.unique(seq[::-1], return_index=True)
    keep = np.sort(seq.size - 1 - first_in_reversed)
    return {k: v[keep] if v.shape[:1] == seq.shape else v for k, v in cols.items()}, \
        int(seq.size - keep.size)


def _isotherm_groups(cols, t, analysis: DcRunAnalysis):
    sp = _column(cols, "mpms3_temperature_setpoint", required=False)
    if sp is not None and np.all(np.isfinite(sp)):
        return isotherm_keys_from_setpoints(sp)
    if np.ptp(t) < SINGLE_ISOTHERM_SPREAD_K:
        analysis.notes.append("no temperature setpoint column: all points taken as one isotherm")
        return None
    raise ValueError(f"data has no column 'mpms3_temperature_setpoint' and T spans "
                     f"{t.min():.4g}–{t.max():.4g} K; allowed: a setpoint column to group "
                     f"isotherms (measured T is never clustered), or a single isotherm with a T "
                     f"spread < {SINGLE_ISOTHERM_SPREAD_K} K")


def analyze_dc_run(start: Mapping[str, Any], data: Mapping[str, Any], *, delta_b_T: float = 2.0,
                   cw_t_min_K: float = 150.0, cw_t_max_K: float = 300.0) -> DcRunAnalysis:
    """Dispatch on ``start["plan_name"]``: ``chi_t`` → χT summary, Curie–Weiss fit and window
    sensitivity; ``m_h`` / ``mce_isotherms`` → M(H) summary and (≥ 2 isotherms) the MCE.

    ``data`` maps primary-stream column names to arrays (see module docstring); ``seq_num`` is
    used to drop superseded duplicates; rows with a non-finite T, field or moment are dropped.
    """
    kind = start.get("plan_name")
    if kind not in DC_PLANS:
        raise ValueError(f"start['plan_name']={kind!r} is not a dc plan; allowed: {DC_PLANS}")
    sample = start.get("sample") or {}
    mass = _sample_value(sample, "mass_mg")
    mw = _sample_value(sample, "molar_mass_g_per_mol")
    chi_dia = _sample_value(sample, "diamagnetic_emu_per_mol_Oe", 0.0)
    ions = _sample_value(sample, "ions", None)
    cols, n_dup = deduplicate(data)
    t = _column(cols, "vsm_temperature", "mpms3_temperature")
    h = _column(cols, "vsm_field", "mpms3_field")
    m = _column(cols, "vsm_moment")
    err = _column(cols, "vsm_moment_err", required=False)
    ok = np.isfinite(t) & np.isfinite(h) & np.isfinite(m)
    analysis = DcRunAnalysis(kind, start.get("uid"), sample.get("name"), int(ok.sum()), n_dup,
                             start=start)
    if not ok.all():
        analysis.notes.append(f"{int((~ok).sum())} rows with non-finite T, field or moment dropped")
        cols = {k: v[ok] if v.shape[:1] == ok.shape else v for k, v in cols.items()}
        t, h, m = t[ok], h[ok], m[ok]
        err = None if err is None else err[ok]
    if err is not None and not np.all(np.isfinite(err)):
        err = None
    if kind == "chi_t":
        analysis.chi_t = chi_t_summary(t, h, m, mass_mg=mass, molar_mass_g_per_mol=mw,
                                       diamagnetic_emu_per_mol_Oe=chi_dia, moment_err_emu=err,
                                       ions=ions, cw_t_min_K=cw_t_min_K, cw_t_max_K=cw_t_max_K)
        c = analysis.chi_t
        analysis.window = window_sensitivity(c.t_K, c.chi_emu_per_mol_Oe, t_max_K=cw_t_max_K)
        return analysis
    m_mol = units.subtract_diamagnetic(
        units.molar_magnetization(m, mass_mg=mass, molar_mass_g_per_mol=mw), h, chi_dia)
    groups = _isotherm_groups(cols, t, analysis)
    analysis.mh = mh_summary(t, h, m_mol, groups, ions=ions)
    if analysis.mh.values["n_isotherms"] < 2:
        analysis.notes.append("one isotherm only: no magnetocaloric analysis")
        return analysis
    ceiling = low_temperature_entropy_ceiling_R(ions) if ions else None
    analysis.mce = magnetic_entropy_change(t, h, m_mol, groups, molar_mass_g_per_mol=mw,
                                           delta_b_T=delta_b_T, ceiling_R=ceiling)
    return analysis
