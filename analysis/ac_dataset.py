"""ac data sets: spectra from measured columns, unit conversion, and the τ table of a data set.

Grouping is by an explicit measurement-set id given by the caller (a sequence setpoint label, a
measurement index, ``DatFile.measurement_sets()`` indices ...), never by clustering the measured
temperature: ccfit2's 0.1 K clustering merged the Er(COT) setpoints 10.5 … 11.1 K into one
210-point spectrum (fitting.md §1.5).

Units (cgs-emu): ``chi_unit="emu/Oe"`` (MPMS3 ``AC X'``) or ``"emu"`` (moment-type ``m'``/``M'``
columns, divided by the drive amplitude in Oe) or ``"cm3/mol"`` (already molar). With
``mass_mg`` and ``molar_mass_g_per_mol`` the result is molar, χ[cm³ mol⁻¹] = χ[emu Oe⁻¹]·MW /
(mass_mg/1000), optionally minus the diamagnetic χ_dia (emu mol⁻¹ Oe⁻¹, real part only); with
``mass_mg`` alone it is per gram (cm³ g⁻¹); with neither it stays in emu Oe⁻¹. Like ccfit2, rows
with χ' < 0, χ'' < 0 or T < 0 are dropped (with error columns a row is kept while χ + err > 0),
and so are rows with a non-finite value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _validate as check
from . import units
from .ac_fit import CHOICES, AcFitResult, fit_ac_spectrum
from .results import json_safe

CHI_UNITS = ("emu/Oe", "emu", "cm3/mol")
TABLE_COLUMNS = ("set_id", "process", "setpoint_K", "T_mean_K", "H_mean_Oe", "tau_s", "ln_tau",
                 "sigma_ln_tau", "alpha", "alpha_err", "tau_lower_s", "tau_upper_s",
                 "log10_rate_per_s", "log10_rate_err", "model", "n_points", "discarded",
                 "reason")


@dataclass
class AcSpectrum:
    """One χ'(f), χ''(f) spectrum at one setpoint (rows in measurement order)."""

    set_id: Any
    frequency_hz: np.ndarray
    chi_real: np.ndarray
    chi_imag: np.ndarray
    temperature_k: np.ndarray
    field_oe: np.ndarray
    setpoint_k: float
    chi_unit: str
    chi_real_err: np.ndarray | None = None
    chi_imag_err: np.ndarray | None = None
    n_dropped: int = 0

    @property
    def mean_temperature_k(self) -> float:
        return float(np.mean(self.temperature_k)) if self.temperature_k.size else math.nan

    @property
    def mean_field_oe(self) -> float:
        ok = np.isfinite(self.field_oe)
        return float(np.mean(self.field_oe[ok])) if ok.any() else math.nan

    def __len__(self) -> int:
        return int(self.frequency_hz.size)


def _column(name: str, value, n: int | None) -> np.ndarray:
    a = np.atleast_1d(np.asarray(value, dtype=float))
    if a.ndim != 1 or (n is not None and a.size != n):
        raise ValueError(f"{name} has shape {a.shape}; allowed: a 1-D array of {n} values "
                         "(the length of frequency_hz)")
    return a


def _to_unit(chi_unit: str, drive, mass_mg, molar_mass, dia) -> tuple[np.ndarray, float, str]:
    """Per-row factor to the output unit, the diamagnetic term and the output unit name."""
    factor = 1.0 / drive if chi_unit == "emu" else np.ones_like(drive)
    if chi_unit == "cm3/mol":
        return factor, dia, "cm3/mol"
    if mass_mg is None:
        if molar_mass is not None:
            raise ValueError("molar_mass_g_per_mol needs mass_mg; got mass_mg=None")
        return factor, 0.0, "emu/Oe"
    if molar_mass is None:
        return factor / (check.positive("mass_mg", mass_mg) * 1e-3), 0.0, "cm3/g"
    return factor / units.moles_of_formula_units(mass_mg, molar_mass), dia, "cm3/mol"


def spectra_from_arrays(set_id, frequency_hz, chi_real, chi_imag, *, temperature_K,
                        field_Oe=None, setpoint_K=None, chi_real_err=None, chi_imag_err=None,
                        chi_unit: str = "emu/Oe", drive_Oe=None, mass_mg: float | None = None,
                        molar_mass_g_per_mol: float | None = None,
                        diamagnetic_emu_per_mol_Oe: float = 0.0) -> list[AcSpectrum]:
    """Split measured rows into spectra by ``set_id`` (one hashable label per row, order of
    first appearance kept), convert χ to the output unit and drop rows as ccfit2 does.

    ``temperature_K`` / ``field_Oe`` are the measured values per row (K, Oe); ``setpoint_K``
    optional per-row setpoints (default: the median measured T of each set). ``drive_Oe`` (per
    row or scalar) is required for ``chi_unit="emu"``. Error columns that are not all > 0 in a
    set (MPMS-XL writes 0) are ignored for that set.
    """
    if chi_unit not in CHI_UNITS:
        raise ValueError(f"chi_unit={chi_unit!r} is not allowed; allowed: {', '.join(CHI_UNITS)}")
    f = _column("frequency_hz", frequency_hz, None)
    n = f.size
    ids = [v.item() if isinstance(v, np.generic) else v for v in set_id]   # tuples stay tuples
    if len(ids) != n:
        raise ValueError(f"set_id has {len(ids)} values; allowed: {n} (one per row)")
    re, im = _column("chi_real", chi_real, n), _column("chi_imag", chi_imag, n)
    t = _column("temperature_K", temperature_K, n)
    h = np.full(n, np.nan) if field_Oe is None else _column("field_Oe", field_Oe, n)
    sp = None if setpoint_K is None else _column("setpoint_K", setpoint_K, n)
    if (chi_real_err is None) != (chi_imag_err is None):
        raise ValueError("chi_real_err and chi_imag_err must be given together")
    er = None if chi_real_err is None else _column("chi_real_err", chi_real_err, n)
    ei = None if chi_imag_err is None else _column("chi_imag_err", chi_imag_err, n)
    if chi_unit == "emu":
        if drive_Oe is None:
            raise ValueError("drive_Oe=None; allowed: the ac drive amplitude (Oe, > 0) for "
                             "chi_unit='emu' (moment-type columns)")
        drive = np.broadcast_to(np.asarray(drive_Oe, dtype=float), (n,)).copy()
        if not np.all(np.isfinite(drive) & (drive > 0)):
            bad = drive[~(np.isfinite(drive) & (drive > 0))][0]
            raise ValueError(f"drive_Oe={bad!r} is out of range; allowed range: finite and > 0")
    else:
        drive = np.ones(n)
    dia = check.finite("diamagnetic_emu_per_mol_Oe", diamagnetic_emu_per_mol_Oe)
    factor, dia, out_unit = _to_unit(chi_unit, drive, mass_mg, molar_mass_g_per_mol, dia)
    if dia and out_unit != "cm3/mol":
        raise ValueError(f"diamagnetic_emu_per_mol_Oe={dia!r} needs molar output; give mass_mg "
                         "and molar_mass_g_per_mol")
    re, im = re * factor - dia, im * factor
    er = None if er is None else np.abs(er * factor)
    ei = None if ei is None else np.abs(ei * factor)
    keep = np.isfinite(f) & (f > 0) & np.isfinite(re) & np.isfinite(im) & (t >= 0)
    if er is None:
        keep &= (re >= 0) & (im >= 0)
    else:
        keep &= (re + np.nan_to_num(er) > 0) & (im + np.nan_to_num(ei) > 0)
    groups: dict[Any, list[int]] = {}
    for i, key in enumerate(ids):
        groups.setdefault(key, []).append(i)
    out = []
    for key, rows in groups.items():
        idx = np.array(rows)
        sel = idx[keep[idx]]
        errs = (None, None)
        if er is not None and np.all(np.isfinite(er[sel]) & (er[sel] > 0)
                                     & np.isfinite(ei[sel]) & (ei[sel] > 0)):
            errs = (er[sel], ei[sel])
        setpoint = float(np.nanmedian(sp[idx])) if sp is not None else \
            float(np.median(t[sel])) if sel.size else math.nan
        out.append(AcSpectrum(key, f[sel], re[sel], im[sel], t[sel], h[sel], setpoint,
                              out_unit, errs[0], errs[1], int(idx.size - sel.size)))
    return out


@dataclass
class AcDatasetResult:
    """Fits of every spectrum of a data set and the τ table (one row per relaxation process)."""

    spectra: list[AcSpectrum]
    results: list[AcFitResult | None]
    errors: list[str]                 # why a spectrum could not be fitted at all ("" if fitted)
    model: str
    rows: list[dict] = field(default_factory=list)

    def as_arrays(self, *, include_discarded: bool = True) -> dict[str, np.ndarray]:
        """Column name -> array over the table rows (``set_id``/``model``/``reason``: object)."""
        rows = [r for r in self.rows if include_discarded or not r["discarded"]]
        out = {}
        for col in TABLE_COLUMNS:
            values = [r[col] for r in rows]
            kind = object if col in ("set_id", "model", "reason") else \
                bool if col == "discarded" else int if col in ("process", "n_points") else float
            out[col] = np.array(values, dtype=kind)
        return out

    def to_dict(self, *, include_fits: bool = False) -> dict:
        out: dict[str, Any] = {"model": self.model, "columns": list(TABLE_COLUMNS),
                               "rows": self.rows}
        if include_fits:
            out["fits"] = [None if r is None else r.to_dict() for r in self.results]
        return json_safe(out)

    def report(self) -> str:
        lines = [f"[[ac data set: {len(self.spectra)} spectra, model={self.model}]]",
                 f"{'set':>6} {'T_sp/K':>7} {'T/K':>8} {'H/Oe':>8} {'tau/s':>11} {'alpha':>6} "
                 f"{'log10 rate':>15} model"]
        for r in self.rows:
            mark = "  DISCARDED: " + r["reason"] if r["discarded"] else ""
            lines.append(f"{str(r['set_id']):>6} {r['setpoint_K']:7.3f} {r['T_mean_K']:8.4f} "
                         f"{r['H_mean_Oe']:8.1f} {r['tau_s']:11.4e} {r['alpha']:6.3f} "
                         f"{r['log10_rate_per_s']:7.3f}±{r['log10_rate_err']:<6.3f} "
                         f"{r['model']}{mark}")
        return "\n".join(lines)


def _rows(spec: AcSpectrum, res: AcFitResult | None, error: str) -> list[dict]:
    base = {"set_id": spec.set_id, "setpoint_K": spec.setpoint_k,
            "T_mean_K": spec.mean_temperature_k, "H_mean_Oe": spec.mean_field_oe,
            "n_points": len(spec)}
    if res is None:
        nan = {c: math.nan for c in TABLE_COLUMNS}
        return [{**nan, **base, "process": 1, "model": "", "discarded": True, "reason": error}]
    rows = []
    for i, p in enumerate(res.processes, 1):
        own = [f for f in res.flags if f not in
               {g for q in res.processes if q is not p for g in q.flags}]
        discarded = bool(own) and res.discarded
        rows.append({**base, "process": i, "tau_s": p.tau_s, "ln_tau": p.ln_tau,
                     "sigma_ln_tau": p.sigma_ln_tau, "alpha": p.alpha, "alpha_err": p.alpha_err,
                     "tau_lower_s": p.tau_bounds_s[0], "tau_upper_s": p.tau_bounds_s[1],
                     "log10_rate_per_s": p.log10_rate, "log10_rate_err": p.log10_rate_err,
                     "model": res.model, "discarded": discarded,
                     "reason": "; ".join(own) if discarded else ""})
    return rows


def fit_ac_dataset(spectra: list[AcSpectrum], model: str = "auto", *, weighted: bool = False,
                   no_discard: bool = False, **fit_kwargs) -> AcDatasetResult:
    """Fit every spectrum with :func:`fit_ac_spectrum` and build the τ table.

    ``weighted=False`` (default) fits unweighted like ccfit2; ``True`` uses the error columns
    where a spectrum has them. A spectrum that cannot be fitted (e.g. < 5 points left after
    dropping) gets a discarded row with the reason instead of stopping the data set.
    """
    if model not in CHOICES:
        raise ValueError(f"model={model!r} is not allowed; allowed: {', '.join(CHOICES)}")
    results, errors, rows = [], [], []
    for spec in spectra:
        errs = {}
        if weighted and spec.chi_real_err is not None:
            errs = {"chi_real_err": spec.chi_real_err, "chi_imag_err": spec.chi_imag_err}
        try:
            res = fit_ac_spectrum(spec.frequency_hz, spec.chi_real, spec.chi_imag, model=model,
                                  no_discard=no_discard, chi_unit=spec.chi_unit, **errs,
                                  **fit_kwargs)
            err = ""
        except ValueError as exc:
            res, err = None, f"not fitted: {exc}"
        results.append(res)
        errors.append(err)
        rows += _rows(spec, res, err)
    return AcDatasetResult(list(spectra), results, errors, model, rows)
