"""The ac part of the paper campaign for ``spinlight demo``.

Per compound, on one simulated lab (MPMS3 with AC option + PPMS with ACMS on one virtual
clock): an ac field scan at 2 K from 0.1 Hz to 10 kHz (MPMS3 below 1 kHz, PPMS above), the
optimal field chosen by the streaming analysis (slowest fast-process relaxation), then an ac
temperature scan at that field; the streaming callbacks fit every set as it completes and the
relaxation campaign runs the paper's sequential τ⁻¹ fit once both scans exist.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

#: mCB-Nd needs different D2 for the field and the temperature dependence (Nd–Nd interactions).
REFIT_D2 = ("mCB-Nd",)

#: (label, key of the sequential fit params, key of the preset's published values, format)
AC_TABLE_ROWS = (
    ("optimal field (Oe)", "optimal_field_Oe", "temperature_scan_H_Oe", "{:.0f}"),
    ("B1 (1/s)", "B1", "B1_per_s", "{:.0f}"),
    ("B2 (1/T^2)", "B2", "B2_per_T2", "{:.1f}"),
    ("D2 (1/s/K/T^2), H scan", "D2", "D2_field_scan_per_s_K_T2", "{:.0f}"),
    ("tau0 (s)", "tau0", "tau0_s", "{:.2e}"),
    ("U/k_B (K)", "U", "U_K", "{:.1f}"),
)


def ac_campaign(quick: bool) -> dict:
    """Plan arguments of the ac part (or a short version for tests)."""
    if quick:
        return {"fields_Oe": [0, 1000, 2000, 3000, 5000],
                "frequencies_Hz": [1.0, 10.0, 100.0, 300.0, 1000.0, 2000.0, 5000.0, 10000.0],
                "temperatures_K": [1.9, 2.1, 2.3, 2.5, 2.7, 2.9], "field_scan_T_K": 2.0}
    return {"fields_Oe": [0, 500, 1000, 1500, 2000, 2500, 3000, 4000, 5000, 7500, 10000],
            "frequencies_Hz": [float(f) for f in np.geomspace(0.1, 10000.0, 16)],
            "temperatures_K": [1.9, 2.0, 2.2, 2.4, 2.6, 2.8, 3.0, 3.2, 3.4],
            "field_scan_T_K": 2.0}


def measure_ac(RE, lab, sample, campaign: dict, analyses: dict) -> tuple[dict, dict]:
    """Run the field scan and the temperature scan on ``lab``'s MPMS3 and PPMS; ``analyses``
    is filled by the streaming callbacks (plan_name → AcRunAnalysis). Returns run uids and
    instrument hours per run."""
    from spinlight.instruments.mpms3_device import connect_mpms3, mpms3_ac_detector
    from spinlight.instruments.ppms_device import connect_ppms, ppms_ac_detector
    from spinlight.plans.ac import (ac_field_scan, ac_temperature_scan, mpms3_ac_station,
                                    ppms_ac_station)

    ep = lab.endpoints
    mpms3, _vsm = connect_mpms3(ep["mpms3"]["host"], ep["mpms3"]["port"], mode="request")
    mpms3_ac = mpms3_ac_detector(mpms3, name="mpms3_ac")
    ppms = connect_ppms(ep["ppms"]["resource"])
    ppms_ac = ppms_ac_detector(ppms, name="ppms_ac")
    stations = [mpms3_ac_station(mpms3, mpms3_ac), ppms_ac_station(ppms, ppms_ac)]
    uids, hours = {}, {}
    try:
        t0 = lab.clock.now()
        uids["ac_field_scan"] = RE(ac_field_scan(
            stations, sample, temperature_K=campaign["field_scan_T_K"],
            fields_Oe=campaign["fields_Oe"], frequencies_Hz=campaign["frequencies_Hz"]))[0]
        hours["ac_field_scan"] = (lab.clock.now() - t0) / 3600.0
        scan = analyses.get("ac_field_scan")
        h_opt = scan.optimal_field_Oe if scan is not None else None
        if h_opt is None or not math.isfinite(h_opt):
            raise RuntimeError(f"{sample.name}: the field scan gave no optimal field")
        t0 = lab.clock.now()
        uids["ac_temperature_scan"] = RE(ac_temperature_scan(
            stations, sample, temperatures_K=campaign["temperatures_K"], field_Oe=h_opt,
            frequencies_Hz=campaign["frequencies_Hz"]))[0]
        hours["ac_temperature_scan"] = (lab.clock.now() - t0) / 3600.0
    finally:
        mpms3.close()
        ppms.close()
    return uids, hours


def ac_table(fits: dict, analyses: dict, published: dict) -> tuple[str, dict]:
    """Sequential-fit parameters next to the paper's Table 1."""
    names = list(fits)
    width = max(len(r[0]) for r in AC_TABLE_ROWS) + 2
    head = "ac / relaxation".ljust(width) + "".join(f"{n + ' (sim | paper)':>28}" for n in names)
    lines, summary = [head, "-" * len(head)], {}
    for label, key, pub_key, fmt in AC_TABLE_ROWS:
        cells = []
        for n in names:
            fit = fits.get(n)
            if key == "optimal_field_Oe":
                scan = analyses.get(n, {}).get("ac_field_scan")
                got = None if scan is None else scan.optimal_field_Oe
            else:
                got = None if fit is None else fit.params.get(key)
            ref = published.get(n, {}).get(pub_key)
            summary.setdefault(n, {})[key] = {"simulated_measured_fitted": got, "published": ref}
            cells.append(f"{_fmt(fmt, got):>12} | {_fmt(fmt, ref):<13}")
        lines.append(label.ljust(width) + "".join(f"{c:>28}" for c in cells))
    return "\n".join(lines), summary


def _fmt(fmt: str, value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return fmt.format(float(value))


def write_ac_demo_figures(analyses: dict, fits: dict, outdir: pathlib.Path) -> list:
    from spinlight.analysis.ac_figures import write_ac_figures

    datasets = {n: {kind.replace("ac_", ""): a.dataset for kind, a in per.items()}
                for n, per in analyses.items()}
    relax = {}
    for n, per in analyses.items():
        entry = {}
        if fits.get(n) is not None:
            entry["sequential"] = fits[n]
        t_run = per.get("ac_temperature_scan")
        if t_run is not None and t_run.arrhenius is not None:
            entry["arrhenius"] = t_run.arrhenius
        relax[n] = entry or None
    return write_ac_figures(datasets, relax, outdir)
