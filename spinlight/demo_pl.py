"""The photoluminescence part of the paper campaign for ``spinlight demo``.

Per compound, on the PL bench of the simulated lab (``lab.endpoints["pl"]``: excitation and
emission monochromators, the FluoTime-300-like housing, HydraHarp and 375 nm laser, one virtual
clock): the emission correction (the standard lamp scanned over the emission range, once per
bench, before the spectra), the emission spectrum under lamp excitation in the ligand band, the
excitation spectrum monitored at each emission of interest, and the luminescence decays at the
paper's wavelengths, each with its own measured IRF. The streaming analysis
(``make_pl_analysis_router``) corrects each emission spectrum by the response measured just
before (and normalises each excitation spectrum by its reference photodiode), fits every decay
by reconvolution when its run stops; an ``EnergyTransferTracker`` turns the Nd decays of
mCB-Nd and mCB-NdYb into η_ET. This module runs the plans and turns the results into the
measured-vs-published table and the figures.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

#: Decays per compound: (emission nm, expected lifetimes ns, n_exp, table rows). The expected
#: lifetimes only choose the laser period and the binning; the fit starts from the data. Rows:
#: (label, component = index into the fitted lifetimes sorted ascending, published key).
DECAYS = {
    "mCB-Nd": [(1060.0, [134.0], 1, [("tau Nd, 1060 nm (ns)", 0, "lifetime_1060nm_ns")])],
    "mCB-Yb": [(1000.0, [608.0], 1, [("tau Yb, 1000 nm (ns)", 0, "lifetime_1000nm_ns")])],
    "mCB-NdYb": [(1060.0, [122.0], 1, [("tau Nd, 1060 nm (ns)", 0, "lifetime_1060nm_ns")]),
                 # the Yb emission rises with the quenched Nd donor's lifetime (Nd -> Yb transfer)
                 (980.0, [122.0, 607.0], 2, [("Nd-fed rise, 980 nm (ns)", 0, "lifetime_1060nm_ns"),
                                             ("tau Yb, 980 nm (ns)", 1, "lifetime_1000nm_ns")])],
}
#: Excitation spectra are monitored at these emission wavelengths (nm): the emission maximum,
#: and for mCB-NdYb also the Yb emission, which shows the Nd lines (Nd -> Yb transfer).
EXCITATION_MONITOR_NM = {"mCB-Nd": [1060.0], "mCB-Yb": [1000.0], "mCB-NdYb": [1060.0, 980.0]}
#: Gate multiplier per monitor (nm). At 980 nm (blue side of the Yb band) the Nd lines are only
#: η_ET-fed: ~10 % of the ligand band, ~1e3 cps on the NIR-PMT's 5e3 cps dark, so 5× the gate
#: lifts them from ~6σ to ~13σ (peaks need 5σ).
EXCITATION_GATE_FACTOR = {980.0: 5.0}
#: Yb-lifetime decays (608 ns, ~329 kHz): 16384 channels of 0.25 ns resolve the 0.41 ns IRF
#: edge (4096 channels of 1 ns under-sample it: reconvolution χ² ≈ 1.2-1.27). The peak target
#: per channel drops by 4096/16384 so the same photons (and instrument time) are collected.
LONG_DECAY_NS, LONG_DECAY_CHANNELS, DEFAULT_CHANNELS = 500.0, 16384, 4096
#: Acquisition cap (instrument s) per (sample, emission nm) in full mode: the Nd-fed Yb decay of
#: mCB-NdYb at 980 nm is weak and needs ~3 h to reach its peak (plan default cap 3600 s).
FULL_MAX_ACQUISITION_S = {("mCB-NdYb", 980.0): 1.2e4}
#: η_ET = 1 − τ_DA/τ_D: donor-only sample, donor + acceptor sample, donor emission (nm).
ENERGY_TRANSFER = ("mCB-Nd", "mCB-NdYb", 1060.0)
#: Wall seconds of HydraHarp rate-counter settling and monochromator polling on the simulators
#: (their counters are current at once; the real HydraHarp needs ~0.4 s).
SIM_RATE_SETTLE_S = 0.01
SIM_MONO_POLL_S = 0.01


def pl_campaign(quick: bool) -> dict:
    """Plan arguments of the PL part (or a coarser version for tests)."""
    step, gate, peak = (5.0, 0.2, 1.0e4) if quick else (2.0, 0.5, 3.0e4)
    # the response is smooth (lamp, slit-smoothed QE): a coarser grid, interpolated, is enough
    response_step = 10.0 if quick else 5.0
    return {"correction": dict(start_nm=850.0, stop_nm=1400.0, step_nm=response_step,
                               gate_s=gate),
            "emission": dict(excitation_nm=330.0, start_nm=850.0, stop_nm=1400.0, step_nm=step,
                             gate_s=gate),
            "excitation": dict(start_nm=250.0, stop_nm=900.0, step_nm=step, gate_s=gate),
            "decay": dict(peak_counts=peak),
            "decay_max_acquisition_s": {} if quick else dict(FULL_MAX_ACQUISITION_S)}


def decay_arguments(campaign: dict, name: str, emission_nm: float, taus_ns) -> dict:
    """``lifetime_decay`` keyword arguments of one decay: the campaign's; for a Yb lifetime
    16384 channels with the peak target (counts) scaled to the same photons; the per-decay
    acquisition cap (s) if the campaign sets one."""
    args = dict(campaign["decay"])
    if max(taus_ns) > LONG_DECAY_NS:
        args["channels"] = LONG_DECAY_CHANNELS
        args["peak_counts"] = args["peak_counts"] * DEFAULT_CHANNELS / LONG_DECAY_CHANNELS
    cap = campaign.get("decay_max_acquisition_s", {}).get((name, float(emission_nm)))
    if cap is not None:
        args["max_acquisition_s"] = cap
    return args


def excitation_arguments(campaign: dict, emission_nm: float) -> dict:
    """``excitation_spectrum`` keyword arguments at one monitor (nm): the campaign's, with the
    gate (s) scaled by :data:`EXCITATION_GATE_FACTOR`."""
    args = dict(campaign["excitation"])
    args["gate_s"] = args["gate_s"] * EXCITATION_GATE_FACTOR.get(float(emission_nm), 1.0)
    return args


def pl_key(analysis) -> tuple[str, str] | None:
    """(sample name, kind) of a PL run analysis: ``emission_spectrum``,
    ``excitation_spectrum_1060nm``, ``lifetime_1060nm`` …; None for anything else."""
    from spinlight.analysis.pl_run import LifetimeRunAnalysis, SpectrumRunAnalysis

    if isinstance(analysis, LifetimeRunAnalysis):
        return analysis.decay.sample_name, f"lifetime_{analysis.decay.emission_nm:.0f}nm"
    if isinstance(analysis, SpectrumRunAnalysis):
        d = analysis.data
        if d.scan == "emission":
            return d.sample_name, "emission_spectrum"
        return d.sample_name, f"excitation_spectrum_{d.fixed_nm:.0f}nm"
    return None


def decay_histogram(catalog, uid: str) -> tuple[np.ndarray, np.ndarray]:
    """(time_ns, counts) of a stored decay or IRF run, by the keys of its ``start["decay"]``
    (several events are summed): the ``irf_lookup`` of ``make_pl_analysis_router``."""
    run = catalog.get_run(uid)
    decay = catalog.start_doc(run).get("decay")
    if not isinstance(decay, dict):
        raise ValueError(f"run {uid} has no start['decay'] metadata; allowed: a lifetime_decay "
                         "or instrument_response run")
    data = catalog.read_primary(run)
    counts = np.atleast_2d(np.asarray(data[decay["counts_key"]], dtype=float))
    time_ns = np.atleast_2d(np.asarray(data[decay["time_key"]], dtype=float))
    return time_ns[0], counts.sum(axis=0)


def connect_pl(ep: dict) -> tuple:
    """(spectrofluorometer, TCSPC, laser) connected to a PL bench's endpoints
    (``lab.endpoints["pl"]``), with the simulators' short polling and settling times."""
    from spinlight.instruments.laser import connect_taiko
    from spinlight.instruments.spectrofluorometer import connect_spectrofluorometer
    from spinlight.instruments.tcspc import connect_tcspc

    opened = []
    try:
        opened.append(connect_spectrofluorometer(ep["excitation_mono"]["url"],
                                                 ep["emission_mono"]["url"], ep["housing"]["url"]))
        for mono in (opened[0].excitation, opened[0].emission):
            mono.wavelength.poll_interval_s.put(SIM_MONO_POLL_S)
        opened.append(connect_tcspc(ep["hydraharp"]["host"], ep["hydraharp"]["port"],
                                    rate_settle_s=SIM_RATE_SETTLE_S))
        opened.append(connect_taiko(ep["taiko"]["host"], ep["taiko"]["port"]))
    except Exception:
        for dev in opened:
            dev.close()
        raise
    return opened


def measure_pl(RE, lab, sample, campaign: dict) -> tuple[dict, dict]:
    """Emission correction, emission spectrum, excitation spectra and decays of ``lab``'s
    compound on its PL bench. Returns run uids (a decay's entry lists the IRF run and the decay
    run) and instrument hours per run."""
    from spinlight.plans.lifetime import lifetime_decay
    from spinlight.plans.pl import emission_spectrum, excitation_spectrum
    from spinlight.plans.pl_correction import emission_correction

    name = sample.name
    if lab.endpoints.get("pl") is None or name not in DECAYS:
        raise ValueError(f"sample {name!r} has no photoluminescence preset; allowed: "
                         f"{sorted(DECAYS)}")
    fl, tcspc, laser = connect_pl(lab.endpoints["pl"])
    uids, hours = {}, {}
    try:   # every plan checks its arguments when called: all of them before the first runs
        plans = [("pl_emission_correction", emission_correction(fl, sample,
                                                                **campaign["correction"])),
                 ("pl_emission_spectrum", emission_spectrum(fl, sample, laser=laser,
                                                            **campaign["emission"]))]
        plans += [(f"pl_excitation_spectrum_{nm:.0f}nm",
                   excitation_spectrum(fl, sample, emission_nm=nm, laser=laser,
                                       **excitation_arguments(campaign, nm)))
                  for nm in EXCITATION_MONITOR_NM[name]]
        plans += [(f"pl_lifetime_{nm:.0f}nm",
                   lifetime_decay(fl, laser, tcspc, sample, emission_nm=nm,
                                  expected_lifetime_ns=taus, n_exp=n_exp, irf="measure",
                                  **decay_arguments(campaign, name, nm, taus)))
                  for nm, taus, n_exp, _ in DECAYS[name]]
        for kind, plan in plans:
            t0 = lab.clock.now()
            got = list(RE(plan))
            uids[kind] = got[0] if len(got) == 1 else got
            hours[kind] = (lab.clock.now() - t0) / 3600.0
    finally:
        for dev in (fl, tcspc, laser):
            dev.close()
    return uids, hours


def _cell(value, err=None, fmt="{:.1f}") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt.format(float(v)) for v in value) or "-"
    text = fmt.format(float(value))
    return text + (f" +- {float(err):.2g}" if err is not None and math.isfinite(err) else "")


def _entry(got, err, ref) -> dict:
    rel = None
    if got is not None and isinstance(ref, (int, float)) and ref:
        rel = (got - ref) / ref
    return {"simulated_measured_fitted": got, "error": err, "published": ref,
            "relative_deviation": rel}


def _summary_key(label: str) -> str:
    """'tau Yb, 980 nm (ns)' → 'tau_Yb_980nm_ns'."""
    text, unit = label.rsplit(" (", 1)
    return "_".join(text.replace(",", "").replace(" nm", "nm").split()) + "_" + unit.rstrip(")")


def _tail_cell(fit, comp: int) -> tuple[str, dict]:
    """The tail-fit cross-check of a decay row: (cell "609.2 +- 0.8 ✓", summary entries); only
    on the row of the fit's longest τ (the one the tail fit is compared with)."""
    tail = getattr(fit, "tail", None) or {}
    if fit is None or comp != fit.fit.n_exp - 1 or "tail_tau_ns" not in tail:
        return "-", {}
    mark = "✓" if tail["tail_agrees"] else "✗"
    return (_cell(tail["tail_tau_ns"], tail["tail_tau_err_ns"]) + f" {mark}",
            {"tail_tau_ns": tail["tail_tau_ns"], "tail_tau_err_ns": tail["tail_tau_err_ns"],
             "tail_agrees": tail["tail_agrees"]})


def _labelled_peaks(result, fraction: float) -> list[float]:
    """Peak positions (nm) of a spectrum that its figure labels (≥ ``fraction`` of the top)."""
    top = result.main_peak.height_cps if result.peaks else math.inf
    return [p.position_nm for p in result.peaks if p.height_cps >= fraction * top]


def pl_table(results: dict, published: dict, energy_transfer=None) -> tuple[str, dict]:
    """Measured-vs-published PL table.

    ``results``: name → kind (:func:`pl_key`) → run analysis; ``published``: name → the
    luminescence preset's ``published`` dict; ``energy_transfer``: the tracker's
    :class:`~spinlight.analysis.lifetime_uncertainty.EnergyTransferResult` or None.
    Returns (text, summary) with both numbers, the fit error and the relative deviation; a
    decay's longest τ also shows the tail-fit cross-check (τ ± σ, ✓ when it agrees within
    ``TAIL_AGREEMENT_SIGMA``, ✗ otherwise; ``tail_*`` in the summary)."""
    from spinlight.analysis.pl_figures import LABEL_FRACTION

    rows, summary = [], {}
    for name, per in results.items():
        pub, cells = published.get(name, {}), summary.setdefault(name, {})
        em = per.get("emission_spectrum")
        if em is not None:
            peaks = _labelled_peaks(em.result, LABEL_FRACTION)
            ref = list(pub.get("emission_peaks_nm", ()))
            corr = em.result.correction or {}
            cells["emission_peaks_nm"] = {"simulated_measured_fitted": peaks, "published": ref,
                                          "correction": corr.get("kind", "none"),
                                          "correction_uid": corr.get("uid")}
            rows.append((name, "emission peaks (nm)" + (", corrected" if corr else ""),
                         _cell(peaks, fmt="{:.0f}"), _cell(ref, fmt="{:.0f}"), ""))
            raw = em.result.uncorrected
            if raw is not None:
                peaks = _labelled_peaks(raw, LABEL_FRACTION)
                cells["emission_peaks_uncorrected_nm"] = peaks
                rows.append((name, "emission peaks, uncorrected (nm)", _cell(peaks, fmt="{:.0f}"),
                             _cell(ref, fmt="{:.0f}"), ""))
        for nm, _, _, table_rows in DECAYS.get(name, []):
            fit = per.get(f"lifetime_{nm:.0f}nm")
            for label, comp, pub_key in table_rows:
                got = err = None
                if fit is not None and comp < fit.fit.n_exp:
                    got = float(fit.fit.taus_ns[comp])
                    err = float(fit.fit.tau_errs_ns[comp])
                ref = pub.get(pub_key)
                tail_text, tail_cells = _tail_cell(fit, comp)
                cells[_summary_key(label)] = {**_entry(got, err, ref), **tail_cells}
                rows.append((name, label, _cell(got, err), _cell(ref), tail_text))
    donor, mixed, _ = ENERGY_TRANSFER
    if mixed in results:
        ref = published.get(mixed, {}).get("eta_ET")
        got = None if energy_transfer is None else energy_transfer.efficiency
        err = None if energy_transfer is None else energy_transfer.efficiency_err
        summary.setdefault(mixed, {})["eta_ET"] = _entry(got, err, ref)
        pct = (lambda v: None if v is None else 100.0 * v)
        rows.append((mixed, f"eta_ET vs {donor} (%)", _cell(pct(got), pct(err)), _cell(pct(ref)),
                     ""))
    head = ("photoluminescence", "quantity", "sim (fit +- err)", "paper", "tail τ (ns) ✓/✗")
    widths = [max(len(r[i]) for r in rows + [head]) + 2 for i in range(len(head))]
    fmt = (lambda r: "".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    lines = [fmt(head), "-" * sum(widths)] + [fmt(r) for r in rows]
    return "\n".join(lines), summary


def write_pl_demo_figures(results: dict, outdir: pathlib.Path) -> list:
    """Spectra per compound (excitation and emission panels) and every fitted decay (log
    scale, fit, IRF, residuals) via ``analysis.pl_figures.write_pl_figures``."""
    from spinlight.analysis.pl_figures import write_pl_figures

    spectra = {name: [a for kind, a in sorted(per.items()) if "spectrum" in kind] or None
               for name, per in results.items()}
    decays = {f"{name}_{kind.replace('lifetime_', '')}": a for name, per in results.items()
              for kind, a in sorted(per.items()) if kind.startswith("lifetime_")}
    return write_pl_figures(outdir, spectra=spectra, decays=decays)
