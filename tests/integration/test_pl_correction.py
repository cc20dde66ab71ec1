"""Spectral correction end to end on the PL bench over loopback: the standard lamp scanned by
``emission_correction``, then an mCB-Yb emission spectrum corrected by the streaming router
with that response (the Yb peak back at the model's ~1000 nm, the uncorrected one ~3 nm red),
and an excitation spectrum normalised by the reference photodiode recorded in every event."""

from __future__ import annotations

import numpy as np
import pytest
from bluesky import RunEngine

from pl_benches import fluorometer_bench

from spinlight.analysis.pl_streaming import make_pl_analysis_router
from spinlight.analysis.spectral_correction import SpectralResponse
from spinlight.analysis.standard_lamp import CERTIFICATE_ID
from spinlight.plans import Sample
from spinlight.plans.checks import PlanArgumentError
from spinlight.plans.pl import emission_spectrum, excitation_spectrum
from spinlight.plans.pl_correction import STANDARD_LAMP, emission_correction

SAMPLE = Sample(name="mCB-Yb", mass_mg=5.0, molar_mass_g_per_mol=2428.0, ions={"Yb": 3})


@pytest.fixture(scope="module")
def bench():
    with fluorometer_bench("mCB-Yb", seed=11) as pl_fl:
        yield pl_fl


@pytest.fixture(scope="module")
def measured(bench):
    """Raw and derived documents of: correction, emission spectrum, excitation spectrum."""
    pl, fl = bench
    raw, derived, results = [], [], []
    RE = RunEngine(context_managers=[])
    RE.subscribe(lambda name, doc: raw.append((name, doc)))
    RE.subscribe(make_pl_analysis_router(lambda name, doc: derived.append((name, doc)),
                                         on_result=results.append))
    n_before = len(pl.housing.received)
    # long gates cost instrument time only (virtual clock): the peak test is about the
    # correction, not about counting noise
    (corr_uid,) = RE(emission_correction(fl, SAMPLE, start_nm=900.0, stop_nm=1150.0, step_nm=2.0,
                                         gate_s=2.0))
    during = [line for _, line in list(pl.housing.received)[n_before:]]
    holder_after = pl.housing.holder
    (em_uid,) = RE(emission_spectrum(fl, SAMPLE, excitation_nm=330.0, start_nm=930.0,
                                     stop_nm=1100.0, step_nm=2.0, gate_s=5.0))
    (ex_uid,) = RE(excitation_spectrum(fl, SAMPLE, emission_nm=1000.0, start_nm=250.0,
                                       stop_nm=450.0, step_nm=5.0, gate_s=0.2))
    starts = {d["uid"]: d for n, d in raw if n == "start"}
    derived_starts = {d["derived_from"]: d for n, d in derived if n == "start"}
    return dict(uids=(corr_uid, em_uid, ex_uid), raw=raw, starts=starts, derived=derived_starts,
                results=results, during=during, holder_after=holder_after)


def events_of(raw, uid):
    desc = {d["uid"] for n, d in raw if n == "descriptor" and d["run_start"] == uid}
    return [d["data"] for n, d in raw if n == "event" and d["descriptor"] in desc]


def intrinsic_peak_nm(model, excitation_nm=330.0) -> float:
    lam = np.arange(950.0, 1050.0, 0.01)
    return float(lam[np.argmax(model.emission_spectrum(lam, excitation_nm=excitation_nm))])


def test_the_correction_scans_the_standard_lamp_with_the_xe_shutter_closed(bench, measured):
    pl, fl = bench
    corr_uid = measured["uids"][0]
    start = measured["starts"][corr_uid]
    assert start["plan_name"] == "emission_correction"
    assert start["measurement"] == "spectral_response" and start["for_sample"] == "mCB-Yb"
    meta = start["spectral_response"]
    assert meta == {"kind": "emission", "source": "standard_lamp", "standard": CERTIFICATE_ID,
                    "emission_slit_um": 1000.0, "grating_g_per_mm": 600}
    dark = pl.housing.pmt.dark_count_rate_cps                       # PMT dark, shutter closed
    assert 0.9 * dark < start["spectrum"]["dark_cps"] < 1.1 * dark
    assert "HOLDER LAMP" in measured["during"] and measured["holder_after"] == "LAMP"
    assert "SHUTTER LAMP OPEN" not in measured["during"]             # no Xe light at all
    events = events_of(measured["raw"], corr_uid)
    assert len(events) == start["num_points"] == 126
    assert pl.housing.shutters == {"LAMP": "CLOSED", "DETECTOR": "CLOSED"}
    # the router turned it into the response: the NIR-PMT's rise from 950 to 1050 nm
    (response,) = [r for r in measured["results"] if isinstance(r, SpectralResponse)]
    assert response.uid == corr_uid and response.standard == CERTIFICATE_ID
    s, _ = response.at([1000.0, 1050.0, 1100.0])
    assert s[0] / s[1] == pytest.approx(0.6, abs=0.05) and s[2] / s[1] == pytest.approx(1.0, abs=0.05)
    lo, hi = response.usable_range_nm
    assert 905.0 <= lo <= 925.0 and hi == 1150.0
    derived = measured["derived"][corr_uid]
    assert derived["plan_name"] == "spectral_response_analysis"
    assert derived["results"]["usable_lo_nm"] == lo


def test_the_corrected_yb_peak_is_the_models_and_the_uncorrected_one_is_not(bench, measured):
    pl, fl = bench
    corr_uid, em_uid, _ = measured["uids"]
    truth = intrinsic_peak_nm(pl.model)
    assert truth == pytest.approx(1000.0, abs=0.5)
    stored = measured["derived"][em_uid]
    assert stored["plan_name"] == "spectrum_analysis"
    assert stored["correction"] == "emission_response" and stored["correction_uid"] == corr_uid
    res = stored["results"]
    assert res["corrected"] is True and res["correction_uid"] == corr_uid
    corrected, uncorrected = res["main_peak_nm"], res["uncorrected_main_peak_nm"]
    print(f"Yb peak: model {truth:.2f}, corrected {corrected:.2f}, uncorrected {uncorrected:.2f} nm")
    # the NIR-PMT's QE (rising ~2x from 1000 to 1050 nm) pulls the raw maximum ~2-3 nm red
    # (model x QE alone: 1001.9 nm; the slit's ~11 nm bandpass adds to it)
    assert abs(corrected - truth) <= 1.5
    assert uncorrected - corrected > 2.0
    assert res["correction_applied"]["usable_range_nm"][0] <= 930.0
    # the reference was recorded in every event (lamp on, excitation fixed: constant)
    start = measured["starts"][em_uid]
    ref = np.array([e[start["spectrum"]["reference_key"]] for e in events_of(measured["raw"], em_uid)])
    assert ref.min() > 0 and ref.std() < 0.01 * ref.mean()


def test_the_excitation_spectrum_is_normalised_by_the_reference(bench, measured):
    pl, fl = bench
    _, _, ex_uid = measured["uids"]
    start = measured["starts"][ex_uid]
    key = start["spectrum"]["reference_key"]
    events = events_of(measured["raw"], ex_uid)
    ref = np.array([e[key] for e in events])
    nm = np.array([e[start["spectrum"]["wavelength_key"]] for e in events])
    assert ref.min() > 0 and ref[nm == 250.0][0] < 0.5 * ref[nm == 450.0][0]   # Xe UV edge
    stored = measured["derived"][ex_uid]
    assert stored["correction"] == "reference" and stored["correction_uid"] is None
    res = stored["results"]
    # the model's excitation band (ligand, 300 nm) divided by the diode's QE (S/R keeps it)
    lam = np.arange(250.0, 450.0, 0.1)
    from spinlight.simulators.fluorometer_sim import reference_responsivity_a_per_w
    true = pl.model.excitation_spectrum(lam, emission_nm=1000.0) / (
        reference_responsivity_a_per_w(lam) / lam)
    assert abs(res["main_peak_nm"] - lam[np.argmax(true)]) < 6.0
    assert res["uncorrected_main_peak_nm"] - lam[np.argmax(true)] > 15.0   # the lamp profile


def test_bad_correction_arguments_are_refused_before_anything_moves(bench):
    pl, fl = bench
    n = len(pl.housing.received)
    with pytest.raises(PlanArgumentError) as info:
        emission_correction(fl, start_nm=200.0, stop_nm=3000.0, step_nm=2.0, gate_s=0.0,
                            standard="")
    text = str(info.value)
    for part in ("start_nm=200.0 nm", "250.0..2500.0", "stop_nm=3000.0", "gate_s=0.0 s",
                 "0.001..100.0", "standard=''"):
        assert part in text
    with pytest.raises(PlanArgumentError, match=r"start_nm=1000.0 and stop_nm=1000.0 give 1 "
                                                r"point; allowed: at least 2"):
        emission_correction(fl, start_nm=1000.0, stop_nm=1000.0, step_nm=2.0)
    assert len(pl.housing.received) == n and STANDARD_LAMP == CERTIFICATE_ID
