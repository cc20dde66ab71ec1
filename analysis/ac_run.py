"""One ac run (``ac_frequency_sweep`` / ``ac_field_scan`` / ``ac_temperature_scan``) → spectra,
their fits, the τ table of the fast process, and what the run's shape allows: τ⁻¹(H) with the
optimal field for a field scan, Arrhenius and τ⁻¹(T) for a temperature scan.

Input: the start document and, per ac event stream, the columns as arrays (event data keys →
values). Streams of several instruments (``ac_mpms3`` 0.1–1000 Hz, ``ac_ppms`` 10 Hz–10 kHz)
are merged per measurement set: each event carries ``ac_set_index`` and the setpoints
``ac_temperature_setpoint_K`` / ``ac_field_setpoint_Oe`` written by the plan, so spectra are
grouped by set, never by clustering measured temperatures.

χ is converted to cm³ mol⁻¹ per formula unit with the sample metadata (mass, molar mass) and
corrected for the diamagnetic core contribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .ac_dataset import AcDatasetResult, fit_ac_dataset, spectra_from_arrays
from .arrhenius import ArrheniusResult, arrhenius_fit
from .relaxation import (RelaxationModel, RelaxationResult, fit_rate_vs_field,
                         fit_rate_vs_temperature)
from .results import json_safe

AC_PLANS = ("ac_frequency_sweep", "ac_field_scan", "ac_temperature_scan")
SET_KEY, T_SET_KEY, H_SET_KEY = "ac_set_index", "ac_temperature_setpoint_K", "ac_field_setpoint_Oe"
#: Fewest fitted sets before a mechanism or Arrhenius fit is tried.
MIN_SETS_FOR_RATE_FIT = 4
#: Fields below this (Oe) count as zero field (no slow relaxation expected there).
ZERO_FIELD_OE = 1.0


def detector_prefix(columns: Mapping[str, Any]) -> str:
    """The ac detector's name in a stream's data keys (the prefix of ``*_chi_real``)."""
    found = [k[: -len("_chi_real")] for k in columns if k.endswith("_chi_real")]
    if len(found) != 1:
        raise ValueError(f"stream columns hold {len(found)} ac detectors ({found}); allowed: 1")
    return found[0]


def merged_columns(streams: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Canonical columns of all ac streams, concatenated: set, t_set, h_set, frequency_hz,
    chi_real, chi_imag, chi_real_err, chi_imag_err (emu/Oe), temperature_K, field_Oe,
    drive_Oe and ``instrument`` (the stream's detector prefix)."""
    parts: dict[str, list] = {}
    for cols in streams.values():
        if not cols:
            continue
        p = detector_prefix(cols)
        n = len(np.atleast_1d(cols[f"{p}_chi_real"]))
        canon = {"set": cols[SET_KEY], "t_set": cols[T_SET_KEY], "h_set": cols[H_SET_KEY],
                 "frequency_hz": cols[f"{p}_frequency_hz"], "chi_real": cols[f"{p}_chi_real"],
                 "chi_imag": cols[f"{p}_chi_imag"], "chi_real_err": cols[f"{p}_chi_real_err"],
                 "chi_imag_err": cols[f"{p}_chi_imag_err"], "temperature_K": cols[f"{p}_temperature"],
                 "field_Oe": cols[f"{p}_field"], "drive_Oe": cols[f"{p}_amplitude_oe"],
                 "instrument": [p] * n}
        for k, v in canon.items():
            parts.setdefault(k, []).append(np.asarray(v, dtype=object if k == "instrument" else float))
    if not parts:
        raise ValueError("no ac events in the run; allowed: at least one ac stream with events")
    return {k: np.concatenate(v) for k, v in parts.items()}


def run_spectra(start: Mapping, cols: Mapping[str, np.ndarray]):
    """Molar spectra (cm³ mol⁻¹ per formula unit) per measurement set."""
    sample = start.get("sample") or {}
    return spectra_from_arrays(
        [int(s) for s in cols["set"]], cols["frequency_hz"], cols["chi_real"], cols["chi_imag"],
        temperature_K=cols["temperature_K"], field_Oe=cols["field_Oe"], setpoint_K=cols["t_set"],
        chi_real_err=cols["chi_real_err"], chi_imag_err=cols["chi_imag_err"], chi_unit="emu/Oe",
        mass_mg=sample.get("mass_mg"), molar_mass_g_per_mol=sample.get("molar_mass_g_per_mol"),
        diamagnetic_emu_per_mol_Oe=sample.get("diamagnetic_emu_per_mol_Oe", 0.0) or 0.0)


def fast_process_table(dataset: AcDatasetResult, field_setpoints: Mapping[int, float]) -> dict:
    """Per set, the fastest fitted process (the HF branch of the paper), kept only if that
    process itself passed the discard rules — a set whose HF peak left the window must not
    contribute its slow (LF) process instead. Arrays: set_id, T_set_K, T_mean_K, H_set_Oe,
    tau_s, log10_rate_err, alpha, n_processes."""
    fastest: dict[int, dict] = {}
    count: dict[int, int] = {}
    for row in dataset.rows:
        if not math.isfinite(row["tau_s"]):
            continue
        sid = row["set_id"]
        count[sid] = count.get(sid, 0) + 1
        if sid not in fastest or row["tau_s"] < fastest[sid]["tau_s"]:
            fastest[sid] = row
    best = {sid: row for sid, row in fastest.items() if not row["discarded"]}
    ids = sorted(best)
    return {
        "set_id": np.array(ids, dtype=int),
        "T_set_K": np.array([best[i]["setpoint_K"] for i in ids]),
        "T_mean_K": np.array([best[i]["T_mean_K"] for i in ids]),
        "H_set_Oe": np.array([field_setpoints.get(i, best[i]["H_mean_Oe"]) for i in ids]),
        "tau_s": np.array([best[i]["tau_s"] for i in ids]),
        "log10_rate_err": np.array([best[i]["log10_rate_err"] for i in ids]),
        "alpha": np.array([best[i]["alpha"] for i in ids]),
        "n_processes": np.array([count[i] for i in ids], dtype=int),
    }


@dataclass
class AcRunAnalysis:
    """Everything fitted from one ac run."""

    start: dict
    kind: str
    dataset: AcDatasetResult
    fast: dict
    rate_fit: RelaxationResult | None = None
    arrhenius: ArrheniusResult | None = None
    optimal_field_Oe: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def sample_name(self) -> str:
        return (self.start.get("sample") or {}).get("name", "")

    def to_dict(self) -> dict:
        """Scalar results (JSON-safe; keys carry units) plus the fast-process τ table."""
        n_sets = len(self.dataset.spectra)
        out: dict[str, Any] = {
            "kind": self.kind, "sample": self.sample_name, "n_sets": n_sets,
            "n_sets_fitted": int(self.fast["set_id"].size),
            "n_two_process_sets": int(np.sum(self.fast["n_processes"] >= 2)),
            "tau_min_s": float(np.min(self.fast["tau_s"])) if self.fast["tau_s"].size else None,
            "tau_max_s": float(np.max(self.fast["tau_s"])) if self.fast["tau_s"].size else None,
            "optimal_field_Oe": self.optimal_field_Oe,
        }
        if self.rate_fit is not None:
            for k, v in self.rate_fit.params.items():
                out[f"rate_{k}"] = v
                out[f"rate_{k}_err"] = self.rate_fit.stderr.get(k)
        if self.arrhenius is not None:
            out["arrhenius_U_K"] = self.arrhenius.U_K
            out["arrhenius_U_err_K"] = self.arrhenius.stderr.get("U")
            out["arrhenius_tau0_s"] = self.arrhenius.tau0_s
        out["tau_table"] = {k: v.tolist() for k, v in self.fast.items()}
        out["notes"] = list(self.notes)
        return json_safe(out)

    def report(self) -> str:
        parts = [self.dataset.report()]
        for r in (self.rate_fit, self.arrhenius):
            if r is not None:
                parts.append(r.report())
        if self.optimal_field_Oe is not None:
            parts.append(f"optimal field (slowest fast-process relaxation): {self.optimal_field_Oe:g} Oe")
        parts += [f"note: {n}" for n in self.notes]
        return "\n".join(parts)


def analyze_ac_run(start: Mapping, streams: Mapping[str, Mapping[str, Any]], *,
                   model: str = "auto") -> AcRunAnalysis:
    """Fit every spectrum of an ac run, then what its shape allows (see module doc)."""
    _check_kind(start)
    cols = merged_columns(streams)
    dataset = fit_ac_dataset(run_spectra(start, cols), model=model)
    return analysis_from_dataset(start, dataset, field_setpoints(cols))


def _check_kind(start: Mapping) -> str:
    kind = start.get("plan_name")
    if kind not in AC_PLANS:
        raise ValueError(f"plan_name={kind!r} is not an ac plan; allowed: {', '.join(AC_PLANS)}")
    return kind


def field_setpoints(cols: Mapping[str, np.ndarray]) -> dict[int, float]:
    """Set index → dc field setpoint (Oe) from merged columns."""
    return {int(s): float(h) for s, h in zip(cols["set"], cols["h_set"])}


def analysis_from_dataset(start: Mapping, dataset: AcDatasetResult,
                          setpoints: Mapping[int, float]) -> AcRunAnalysis:
    """The run-level analysis of already fitted spectra (used by the streaming callback,
    which fits each set once as it completes)."""
    kind = _check_kind(start)
    fast = fast_process_table(dataset, setpoints)
    out = AcRunAnalysis(dict(start), kind, dataset, fast)
    in_field = np.abs(fast["H_set_Oe"]) >= ZERO_FIELD_OE
    if kind == "ac_field_scan":
        _field_scan(out, in_field)
    elif kind == "ac_temperature_scan":
        _temperature_scan(out)
    return out


def _field_scan(out: AcRunAnalysis, in_field: np.ndarray) -> None:
    fast = out.fast
    if not in_field.any():
        out.notes.append("no slow relaxation measured in field: optimal field not determined")
        return
    i = int(np.argmax(np.where(in_field, fast["tau_s"], -np.inf)))
    out.optimal_field_Oe = float(fast["H_set_Oe"][i])
    if in_field.sum() < MIN_SETS_FOR_RATE_FIT:
        out.notes.append(f"{int(in_field.sum())} fitted sets in field; τ⁻¹(H) needs "
                         f"{MIN_SETS_FOR_RATE_FIT}")
        return
    t = float(np.median(fast["T_set_K"][in_field]))
    try:   # the T-dependent terms are a constant at one temperature: fitted as Raman, n fixed
        out.rate_fit = fit_rate_vs_field(
            fast["H_set_Oe"][in_field], fast["tau_s"][in_field], t,
            log10_rate_err=fast["log10_rate_err"][in_field],
            model=RelaxationModel(("qtm", "direct_h2", "raman"), fixed={"n": 5.0}))
    except ValueError as exc:
        out.notes.append(f"τ⁻¹(H) fit not possible: {exc}")


def _temperature_scan(out: AcRunAnalysis) -> None:
    fast = out.fast
    if fast["set_id"].size < MIN_SETS_FOR_RATE_FIT:
        out.notes.append(f"{fast['set_id'].size} fitted sets; Arrhenius needs {MIN_SETS_FOR_RATE_FIT}")
        return
    t, tau, err = fast["T_set_K"], fast["tau_s"], fast["log10_rate_err"]
    try:
        out.arrhenius = arrhenius_fit(t, tau, log10_rate_err=err)
    except ValueError as exc:
        out.notes.append(f"Arrhenius fit not possible: {exc}")
    h = float(np.median(fast["H_set_Oe"]))
    try:   # at one field QTM and direct are a constant and a term linear in T
        out.rate_fit = fit_rate_vs_temperature(
            t, tau, h, log10_rate_err=err,
            model=RelaxationModel(("qtm", "direct_h2", "raman", "orbach"), fixed={"B2": 1e-4}))
    except ValueError as exc:
        out.notes.append(f"τ⁻¹(T) fit not possible: {exc}")


def relaxation_from_runs(field_run: AcRunAnalysis, temperature_run: AcRunAnalysis, *,
                         terms=None, refit_D2: bool = False, cycles: int = 2):
    """The paper's sequential τ⁻¹ fit from a field scan (at fixed T) and a temperature scan
    (at fixed H) of the same sample: :func:`spinlight.analysis.relaxation.sequential_fit` on
    the fast-process τ of each run, with the α-derived log10-rate error bars."""
    from .relaxation import sequential_fit
    from .relaxation_terms import DEFAULT_TERMS

    if field_run.kind != "ac_field_scan":
        raise ValueError(f"field_run is a {field_run.kind!r} run; allowed: ac_field_scan")
    if temperature_run.kind != "ac_temperature_scan":
        raise ValueError(f"temperature_run is a {temperature_run.kind!r} run; allowed: "
                         "ac_temperature_scan")
    f, t = field_run.fast, temperature_run.fast
    keep = np.abs(f["H_set_Oe"]) >= ZERO_FIELD_OE
    t_fixed = float(np.median(f["T_set_K"][keep])) if keep.any() else math.nan
    h_fixed = float(np.median(t["H_set_Oe"])) if t["H_set_Oe"].size else math.nan
    return sequential_fit((f["H_set_Oe"][keep], f["tau_s"][keep], f["log10_rate_err"][keep], t_fixed),
                          (t["T_set_K"], t["tau_s"], t["log10_rate_err"], h_fixed),
                          terms=DEFAULT_TERMS if terms is None else terms, refit_D2=refit_D2,
                          cycles=cycles)
