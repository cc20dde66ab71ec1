"""Streaming PL analysis (spinlight.analysis.pl_streaming, pl_run) on documents made by a real
bluesky RunEngine.

The runs have the start-document shape of pl_design.md; plain ophyd Signals hold data simulated
by spinlight.simulators.samples: TCSPC histograms from LuminescenceModel.expected_histogram
(IRF convolution, earlier-pulse tails, dead time, dark counts) with Poisson noise, the IRF from
InstrumentResponse.shape, spectra from LuminescenceModel.emission_spectrum through the NIR-PMT
(QE, saturation, dark) with Poisson noise. Published lifetimes: mCB-Nd 134 ns, mCB-NdYb 122 ns at
1060 nm (η_ET = 1 − 122/134 = 8.96 %), mCB-Yb 608 ns at 1000 nm.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from ophyd import Signal

from spinlight.analysis.pl_run import (DecayData, analyze_decay, decay_from_columns, rebin_irf,
                                       spectrum_from_columns)
from spinlight.analysis.pl_streaming import EnergyTransferTracker, make_pl_analysis_router
from spinlight.plans.sample import Sample
from spinlight.simulators.samples import NirPmt, get_luminescence, sample_histogram

WIDTH_NS, N_CHANNELS, PULSE_NS, REP_HZ = 2.0, 2048, 40.0, 1e5
EDGES = np.arange(N_CHANNELS + 1) * WIDTH_NS
TIME = EDGES[:-1]
IRF_MODEL = NirPmt().irf()
SAMPLES = {"mCB-Nd": {"Nd": 3.0}, "mCB-NdYb": {"Nd": 1.32, "Yb": 1.68}, "mCB-Yb": {"Yb": 3.0}}
KEYS = {"counts_key": "hydraharp_histogram", "time_key": "hydraharp_time_ns",
        "resolution_key": "hydraharp_resolution_ps"}


def decay_counts(name, emission_nm, n_counts, rng):
    expected = get_luminescence(name).expected_histogram(
        EDGES, emission_nm=emission_nm, excitation_nm=375.0, repetition_rate_hz=REP_HZ,
        photons_per_pulse=0.01, irf=IRF_MODEL, dark_count_rate_cps=2e3, pulse_time_ns=PULSE_NS,
        dead_time_ns=80.0)
    return sample_histogram(expected * n_counts / expected.sum(), rng)


def irf_counts(rng, n_counts=1e5):
    return sample_histogram(n_counts * IRF_MODEL.shape(EDGES, t0_ns=PULSE_NS) + 0.5, rng)


def start_md(plan_name, sample, extra):
    return {"plan_name": plan_name, "measurement": plan_name, "instrument": "FluoTime300",
            "plan_args": {}, "sample": Sample(sample, 5.0, 1500.0, ions=SAMPLES[sample]).to_md(),
            **extra}


def decay_md(plan_name, sample, *, emission_nm, irf_uid=None, n_exp=1, expected=(134.0,)):
    return start_md(plan_name, sample, {"decay": {
        "kind": "irf" if plan_name == "instrument_response" else "sample", **KEYS,
        "irf_uid": irf_uid, "emission_nm": emission_nm, "excitation_nm": 375.0,
        "repetition_rate_hz": REP_HZ, "expected_lifetime_ns": list(expected), "n_exp": n_exp,
        "dark_cps": 2e3}})


def decay_plan(md, counts, events=1):
    hist = Signal(name=KEYS["counts_key"], value=np.asarray(counts))
    axis = Signal(name=KEYS["time_key"], value=TIME)
    res = Signal(name=KEYS["resolution_key"], value=WIDTH_NS * 1e3)

    @bpp.run_decorator(md=md)
    def plan():
        for _ in range(events):
            yield from bps.trigger_and_read([hist, axis, res])
    return plan()


def spectrum_plan(md, wavelength_nm, rate_cps):
    wl = Signal(name="emission_wavelength", value=0.0)
    rate = Signal(name="counter_count_rate_cps", value=0.0)

    @bpp.run_decorator(md=md)
    def plan():
        for x, r in zip(wavelength_nm, rate_cps):
            yield from bps.mv(wl, float(x), rate, float(r))
            yield from bps.trigger_and_read([rate, wl])
    return plan()


class Store:
    """Collects the derived documents and indexes derived runs by plan name."""

    def __init__(self):
        self.docs = []

    def __call__(self, name, doc):
        json.dumps(doc)                      # a catalog stores JSON: every doc must serialise
        self.docs.append((name, doc))

    def runs(self, plan_name):
        out, current = [], None
        for name, doc in self.docs:
            if name == "start" and doc["plan_name"] == plan_name:
                current = {"start": doc, "events": []}
                out.append(current)
            elif current is not None and name == "event" and doc["descriptor"] in current.get(
                    "descs", ()):
                current["events"].append(doc["data"])
            elif current is not None and name == "descriptor" and \
                    doc["run_start"] == current["start"]["uid"]:
                current.setdefault("descs", set()).add(doc["uid"])
            elif current is not None and name == "stop" and \
                    doc["run_start"] == current["start"]["uid"]:
                current["stop"] = doc
                current = None
        return out


@pytest.fixture
def engine():
    store = Store()
    re = RunEngine({}, call_returns_result=False)
    return re, store


def test_irf_decays_and_energy_transfer_are_published_as_linked_runs(engine):
    re, store = engine
    rng = np.random.default_rng(11)
    tracker = EnergyTransferTracker("mCB-Nd", "mCB-NdYb", 1060.0)
    re.subscribe(make_pl_analysis_router(store, energy_transfer=[tracker]))
    (irf_uid,) = re(decay_plan(decay_md("instrument_response", "mCB-Nd", emission_nm=375.0),
                               irf_counts(rng)))
    raw = {}
    for name, em, n, expected in (("mCB-Nd", 1060.0, 1e6, 134.0), ("mCB-NdYb", 1060.0, 1e6, 122.0),
                                  ("mCB-Yb", 1000.0, 3e5, 608.0)):
        md = decay_md("lifetime_decay", name, emission_nm=em, irf_uid=irf_uid,
                      expected=(expected,))
        (raw[name],) = re(decay_plan(md, decay_counts(name, em, n, rng)))
    assert store.runs("spectrum_analysis") == []
    runs = {r["start"]["sample_name"]: r for r in store.runs("lifetime_analysis")}
    assert len(store.runs("lifetime_analysis")) == 3                # the IRF run is an input
    assert sorted(runs) == ["mCB-Nd", "mCB-NdYb", "mCB-Yb"]
    for name, expected in (("mCB-Nd", 134.0), ("mCB-NdYb", 122.0), ("mCB-Yb", 608.0)):
        run = runs[name]
        start, (ev,) = run["start"], run["events"]
        assert run["stop"]["exit_status"] == "success"
        assert start["derived_from"] == raw[name] and start["analysis"] == "lifetime_decay"
        assert start["irf_uid"] == irf_uid and start["fit_kind"] == "reconvolution"
        assert ev["method"] == "mle" and ev["irf_uid"] == irf_uid and ev["sample_name"] == name
        assert ev["tau1_ns"] == pytest.approx(expected, rel=0.03), name
        assert 0 < ev["tau1_err_ns"] < 0.02 * expected
        assert ev["tau_amp_ns"] == pytest.approx(ev["tau1_ns"])
        assert ev["tau_int_ns"] == pytest.approx(ev["tau1_ns"])
        assert 0.8 < ev["chi2_red"] < 3.0 and ev["amp1_counts"] > 0
        assert start["results"]["taus_ns"] == [pytest.approx(ev["tau1_ns"])]
    # η_ET from the Nd-only and Nd–Yb decays at 1060 nm
    (et,) = store.runs("energy_transfer_analysis")
    (ev,) = et["events"]
    assert et["start"]["derived_from"] == [raw["mCB-Nd"], raw["mCB-NdYb"]]
    assert et["start"]["lifetime_analysis_uids"] == [runs["mCB-Nd"]["start"]["uid"],
                                                     runs["mCB-NdYb"]["start"]["uid"]]
    assert ev["eta_et"] == pytest.approx(1 - 122.0 / 134.0, abs=0.01)
    assert 0 < ev["eta_et_err"] < 0.005
    assert ev["eta_et"] == pytest.approx(
        1 - runs["mCB-NdYb"]["events"][0]["tau1_ns"] / runs["mCB-Nd"]["events"][0]["tau1_ns"])
    assert tracker.result.efficiency == ev["eta_et"]


def test_decay_without_an_available_irf_falls_back_to_a_tail_fit(engine):
    re, store = engine
    re.subscribe(make_pl_analysis_router(store))
    rng = np.random.default_rng(5)
    md = decay_md("lifetime_decay", "mCB-Nd", emission_nm=1060.0, irf_uid="never-measured")
    re(decay_plan(md, decay_counts("mCB-Nd", 1060.0, 5e5, rng)))
    (run,) = store.runs("lifetime_analysis")
    (ev,) = run["events"]
    assert run["start"]["fit_kind"] == "tail" and run["start"]["irf_uid"] is None
    assert "never-measured" in ev["note"] and "tail fit" in ev["note"]
    assert ev["tau1_ns"] == pytest.approx(134.0, rel=0.03)


def test_irf_lookup_supplies_an_irf_measured_in_an_earlier_session(engine):
    re, store = engine
    rng = np.random.default_rng(8)
    catalog = {"irf-from-catalog": (TIME, irf_counts(rng))}     # what the CLI would read
    asked = []

    def lookup(uid):
        asked.append(uid)
        if uid == "catalog-offline":
            raise ConnectionError("tiled server down")
        return catalog.get(uid)

    re.subscribe(make_pl_analysis_router(store, lookup))
    uids = ("irf-from-catalog", "unknown-uid", "catalog-offline", "irf-from-catalog")
    for uid in uids:
        md = decay_md("lifetime_decay", "mCB-Yb", emission_nm=1000.0, irf_uid=uid)
        re(decay_plan(md, decay_counts("mCB-Yb", 1000.0, 3e5, rng)))
    first, second, third, fourth = store.runs("lifetime_analysis")
    assert asked == list(uids[:3])                      # a found IRF is remembered
    for run in (first, fourth):
        assert run["start"]["fit_kind"] == "reconvolution"
        assert run["events"][0]["tau1_ns"] == pytest.approx(608.0, rel=0.04)
    assert "irf_lookup" in first["events"][0]["note"]
    assert "seen in this session" in fourth["events"][0]["note"]
    assert second["start"]["fit_kind"] == third["start"]["fit_kind"] == "tail"
    assert "found nothing" in second["events"][0]["note"]
    assert "ConnectionError: tiled server down" in third["events"][0]["note"]


def test_emission_spectrum_run_gives_peaks_and_band_integrals(engine):
    re, store = engine
    got = []
    re.subscribe(make_pl_analysis_router(store, on_result=got.append))
    rng = np.random.default_rng(2)
    pmt, model = NirPmt(), get_luminescence("mCB-Nd")
    wl = np.arange(950.0, 1400.1, 2.0)
    flux = model.emission_spectrum(wl, excitation_nm=375.0)
    gate, dark_s = 0.1, 10.0              # the dark rate counted 10 s, as the plans' dark
    rate = rng.poisson(pmt.detected_rate(flux / flux.max() * 1e7, wl) * gate) / gate
    dark = float(rng.poisson(pmt.detected_rate(0.0, wl[0]) * dark_s) / dark_s)
    md = start_md("emission_spectrum", "mCB-Nd", {"spectrum": {
        "scan": "emission", "wavelength_key": "emission_wavelength",
        "signal_key": "counter_count_rate_cps", "fixed_nm": 375.0, "dark_cps": dark}})
    (raw,) = re(spectrum_plan(md, wl, rate))
    (run,) = store.runs("spectrum_analysis")
    (ev,) = run["events"]
    assert run["start"]["derived_from"] == raw and run["start"]["analysis"] == "emission_spectrum"
    assert ev["main_peak_nm"] == pytest.approx(1060.0, abs=1.0)
    assert ev["dark_cps"] == dark and ev["n_bands"] == 2 and ev["scan"] == "emission"
    # two bands (1060 and 1334 nm emission, each with its red Stark satellite); the highest
    # peak of each band is at the published position; the integrals' ratio is the model's
    # (noise-free, no dark) over the bands the analysis found
    res = run["start"]["results"]
    pos, heights = np.array(res["peak_positions_nm"]), np.array(res["peak_heights_cps"])
    tops = []
    for lo, hi in res["bands_nm"]:
        inside = (pos >= lo) & (pos <= hi)
        tops.append(float(pos[inside][np.argmax(heights[inside])]))
    assert tops == [pytest.approx(1060.0, abs=1.0), pytest.approx(1334.0, abs=1.0)]
    def model_integral(lo, hi):        # cps nm, on a grid 40x finer than the scan
        fine = np.linspace(lo, hi, int(round((hi - lo) / 0.05)) + 1)
        true = pmt.detected_rate(model.emission_spectrum(fine, excitation_nm=375.0)
                                 / flux.max() * 1e7, fine, include_dark=False)
        return np.trapezoid(true, fine)

    (lo1, hi1), (lo2, hi2) = res["bands_nm"]
    assert lo1 < 1060.0 < hi1 <= lo2 < 1334.0 < hi2
    ratio = model_integral(lo1, hi1) / model_integral(lo2, hi2)
    assert ev["band1_integral_cps_nm"] / ev["band2_integral_cps_nm"] == pytest.approx(ratio,
                                                                                     rel=0.02)
    assert got[0].result.main_peak.position_nm == ev["main_peak_nm"]


def test_failed_analyses_are_published_as_failed_runs_and_never_raise(engine):
    re, store = engine
    re.subscribe(make_pl_analysis_router(store))
    md = decay_md("lifetime_decay", "mCB-Nd", emission_nm=1060.0)
    md["decay"]["counts_key"] = "no_such_key"
    re(decay_plan(md, np.ones(N_CHANNELS)))
    md = decay_md("lifetime_decay", "mCB-Nd", emission_nm=1060.0)
    md["decay"]["n_exp"] = 5
    re(decay_plan(md, decay_counts("mCB-Nd", 1060.0, 1e4, np.random.default_rng(1))))
    bad_key, bad_n = store.runs("lifetime_analysis")
    for run, words in ((bad_key, ("counts_key", "no_such_key", "hydraharp_histogram")),
                       (bad_n, ("n_exp=5", "1, 2 or 3"))):
        assert run["stop"]["exit_status"] == "fail" and run["events"] == []
        assert all(w in run["stop"]["reason"] for w in words), run["stop"]["reason"]


def test_emit_failure_does_not_reach_the_run_engine():
    def broken(name, doc):
        raise RuntimeError("catalog offline")

    re = RunEngine({}, call_returns_result=False)
    re.subscribe(make_pl_analysis_router(broken))
    md = decay_md("lifetime_decay", "mCB-Nd", emission_nm=1060.0)
    uids = re(decay_plan(md, decay_counts("mCB-Nd", 1060.0, 1e4, np.random.default_rng(3))))
    assert len(uids) == 1


# -- pl_run and the tracker without the RunEngine --------------------------------------------
def test_decay_from_columns_sums_events_and_names_missing_keys():
    md = decay_md("lifetime_decay", "mCB-Nd", emission_nm=1060.0, irf_uid="u1", n_exp=2)
    cols = {KEYS["counts_key"]: [np.arange(4.0), np.ones(4)], KEYS["time_key"]: [TIME[:4]] * 2,
            KEYS["resolution_key"]: [2000.0, 2000.0]}
    d = decay_from_columns(md, cols)
    assert d.counts.tolist() == [1.0, 2.0, 3.0, 4.0] and d.n_exp == 2 and d.irf_uid == "u1"
    assert d.resolution_ps == 2000.0 and d.sample_name == "mCB-Nd" and d.emission_nm == 1060.0
    cols[KEYS["time_key"]] = [TIME[:4], TIME[:4] + 1.0]
    with pytest.raises(ValueError, match="different time axes"):
        decay_from_columns(md, cols)
    with pytest.raises(ValueError, match=r"start\['decay'\]=None"):
        decay_from_columns({"uid": "x"}, cols)
    with pytest.raises(ValueError, match=r"\['wavelength_key'\]='emission_wavelength'"):
        spectrum_from_columns({"spectrum": {"wavelength_key": "emission_wavelength"}}, cols)


def test_rebin_irf_moves_counts_onto_another_axis_and_conserves_them():
    irf = np.zeros(100)
    irf[30] = 1000.0
    t = np.arange(100) * 0.5
    assert np.array_equal(rebin_irf(t, irf, t), irf)
    moved = rebin_irf(t, irf, t[10:90] - 0.25)            # other offset, half-channel shift
    assert moved.sum() == pytest.approx(1000.0)
    assert np.flatnonzero(moved).tolist() == [20, 21]
    coarse = rebin_irf(t, irf, np.arange(25) * 2.0)       # 4× wider channels
    assert coarse[7] == pytest.approx(1000.0)
    with pytest.raises(ValueError, match="does not overlap"):
        rebin_irf(t, irf, t + 100.0)


def test_histogram_longer_than_the_laser_period_is_fitted_over_one_period():
    # as the plans set it up: 2048 × 0.512 ns channels cover the 670 ns period of 1.49 MHz;
    # after the period the channels stay empty
    rate, edges = 1492537.0, np.arange(2049) * 0.512
    rng, model = np.random.default_rng(9), get_luminescence("mCB-Nd")
    expected = model.expected_histogram(edges, emission_nm=1060.0, excitation_nm=375.0,
                                        repetition_rate_hz=rate, photons_per_pulse=0.02,
                                        irf=IRF_MODEL, dark_count_rate_cps=2e4, pulse_time_ns=5.0,
                                        dead_time_ns=80.0)
    counts = sample_histogram(expected * 1e6 / expected.sum(), rng)
    assert counts[edges[:-1] >= 1e9 / rate].sum() == 0 and counts[1307] > 0
    irf = sample_histogram(1e5 * IRF_MODEL.shape(edges, t0_ns=5.0), rng)
    data = DecayData(edges[:-1], counts, "sample", repetition_rate_hz=rate, emission_nm=1060.0)
    assert data.one_period()[0].size == 1308                      # 1308 × 0.512 ns ≤ 670 ns
    for result in (analyze_decay(data, (edges[:-1], irf), profile=False),
                   analyze_decay(data, None, profile=False)):
        assert result.fit.taus_ns[0] == pytest.approx(134.0, rel=0.03), result.fit_kind
        assert result.fit.chi2_red < 1.5 and "1308 of 2048 channels" in result.note
    assert result.fit_kind == "tail"


def test_energy_transfer_tracker_pairs_only_its_samples_and_wavelength():
    rng = np.random.default_rng(4)
    published = []
    tracker = EnergyTransferTracker("mCB-Nd", "mCB-NdYb", 1060.0,
                                    emit=lambda n, d: published.append((n, d)))

    def analysis(name, em):
        d = DecayData(TIME, decay_counts(name, em, 3e5, rng), "sample", uid=f"raw-{name}-{em}",
                      emission_nm=em, repetition_rate_hz=REP_HZ, sample_name=name)
        return analyze_decay(d, None, profile=False)

    tracker(analysis("mCB-NdYb", 1000.0))           # acceptor band: not the donor emission
    tracker(analysis("mCB-Yb", 1060.0))             # another sample
    tracker(analysis("mCB-Nd", 1060.0))
    assert tracker.result is None and published == []
    tracker(analysis("mCB-NdYb", 1060.5))           # within the 2 nm tolerance
    assert tracker.result.efficiency == pytest.approx(0.0896, abs=0.02)
    assert [n for n, _ in published] == ["start", "descriptor", "event", "stop"]
    assert published[0][1]["derived_from"] == ["raw-mCB-Nd-1060.0", "raw-mCB-NdYb-1060.5"]
    with pytest.raises(ValueError, match="tolerance_nm=0.0"):
        EnergyTransferTracker("a", "b", 1060.0, tolerance_nm=0.0)
