"""PL bench over loopback: the real drivers (spectrofluorometer, HydraHarp, Taiko) against
PLBench's simulators, with the mCB-Nd preset. Emission spectra come from the photon counter,
decays and the IRF from the TCSPC, and both follow the bench state (holder, monochromators,
shutters, laser)."""

from __future__ import annotations

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps

from pl_benches import connect_fl
from spinlight.analysis.lifetime_fit import tail_fit
from spinlight.instruments.errors import InstrumentError
from spinlight.instruments.laser import connect_taiko
from spinlight.instruments.tcspc import connect_tcspc
from spinlight.simulators.clock import VirtualClock
from spinlight.simulators.lab import SimulatedLab
from spinlight.simulators.pl_bench import PLBench
from spinlight.simulators.samples import get_luminescence
from spinlight.simulators.samples.decay_physics import NirPmt

DARK_CPS = NirPmt().dark_count_rate_cps        # the NIR-PMT's dark rate (cps)
SYNC_DELAY_NS = 5.0


@pytest.fixture
def bench():
    clock = VirtualClock(1000.0, freeze_when_idle=True)
    pl = PLBench(clock, get_luminescence("mCB-Nd"), seed=3)
    ep = pl.start()
    fl = connect_fl(ep)
    det = connect_tcspc(ep["hydraharp"]["host"], ep["hydraharp"]["port"], rate_settle_s=0.01,
                        binning=5, histogram_length_code=5)          # 32 ps x 32768 = 1.05 µs
    laser = connect_taiko(ep["taiko"]["host"], ep["taiko"]["port"])
    yield clock, pl, fl, det, laser
    for dev in (fl, det, laser):
        dev.close()
    pl.stop()
    clock.stop()


def settle(fl, *, holder, emission_nm, lamp="closed", detector="open", slit_um=1000.0,
           excitation_nm=None):
    sets = [fl.holder.set(holder), fl.lamp_shutter.set(lamp), fl.detector_shutter.set(detector),
            fl.emission.slit_um.set(slit_um), fl.excitation.slit_um.set(slit_um),
            fl.emission.wavelength.set(emission_nm)]
    if excitation_nm is not None:
        sets.append(fl.excitation.wavelength.set(excitation_nm))
    for st in sets:
        st.wait(30)


def acquire(det, laser, tacq_s, permille):
    laser.intensity_permille.put(permille)
    det.tacq_s.put(tacq_s)
    with laser.acquisition():
        det.trigger().wait(60)
    return det.last_result


def test_device_shape_and_bad_input_sends_nothing(bench):
    clock, pl, fl, det, laser = bench
    keys = fl.describe()
    for k in ("fluorometer_excitation_wavelength", "fluorometer_emission_wavelength",
              "fluorometer_lamp_shutter", "fluorometer_detector_shutter", "fluorometer_holder",
              "fluorometer_pmt_hv", "fluorometer_counter_counts", "fluorometer_counter_overload",
              "fluorometer_counter_count_rate_cps", "fluorometer_counter_flags",
              "fluorometer_reference_current_nA"):
        assert k in keys
    assert {"fluorometer_counter_gate_s", "fluorometer_emission_slit_um",
            "fluorometer_excitation_grating"} <= set(fl.read_configuration())
    assert fl.hints["fields"] == ["fluorometer_excitation_wavelength",
                                  "fluorometer_emission_wavelength",
                                  "fluorometer_counter_count_rate_cps"]
    assert fl.housing_serial.get() == pl.housing.serial_number
    n = len(pl.housing.received)
    for bad, match in ((lambda: fl.lamp_shutter.set("ajar"), "state='ajar' is not allowed"),
                       (lambda: fl.holder.set("cuvette"), "position='cuvette' is not allowed"),
                       (lambda: fl.counter.gate_s.set(0.0001), "gate_s=0.0001 s is outside")):
        with pytest.raises(ValueError, match=match):
            bad()
    assert len(pl.housing.received) == n
    with pytest.raises(ValueError, match="wavelength_nm=1500.*outside"):
        fl.excitation.wavelength.set(1500.0)                  # 1200 g/mm grating: 0..1400 nm


def test_emission_scan_sees_the_nd_1060_band(bench):
    clock, pl, fl, det, laser = bench
    events = []

    def plan():
        yield from bps.mv(fl.excitation.slit_um, 1000.0, fl.emission.slit_um, 1000.0,
                          fl.counter.gate_s, 0.1, fl.holder, "sample")
        yield from bps.mv(fl.excitation.wavelength, 300.0, fl.emission.wavelength, 1000)
        yield from bps.mv(fl.lamp_shutter, "open", fl.detector_shutter, "open")
        yield from bps.open_run()
        for nm in np.arange(1000.0, 1101.0, 4.0):
            yield from bps.mv(fl.emission.wavelength, nm)
            yield from bps.trigger_and_read([fl])
        yield from bps.close_run()
        yield from bps.mv(fl.lamp_shutter, "closed", fl.detector_shutter, "closed")

    RunEngine({})(plan(), lambda name, doc: events.append(doc["data"]) if name == "event" else None)
    wl = np.array([e["fluorometer_emission_wavelength"] for e in events])
    rate = np.array([e["fluorometer_counter_count_rate_cps"] for e in events])
    assert len(events) == 26 and np.allclose(wl, np.arange(1000.0, 1101.0, 4.0), atol=0.011)
    assert abs(wl[np.argmax(rate)] - 1060.0) <= 4.0
    assert rate.max() > 4 * DARK_CPS and rate.min() < 1.2 * DARK_CPS          # band over dark
    assert all(e["fluorometer_holder"] == "sample" and e["fluorometer_lamp_shutter"] == "open"
               and not e["fluorometer_counter_overload"] for e in events)
    # fl.trigger() also reads the reference photodiode: the Xe beam at 300 nm, constant
    ref = np.array([e["fluorometer_reference_current_nA"] for e in events])
    assert ref.min() > 0 and ref.std() < 0.01 * ref.mean()
    assert ref.mean() == pytest.approx(pl.housing.optics.reference_current_na(), rel=0.01)
    assert pl.housing.shutters == {"LAMP": "CLOSED", "DETECTOR": "CLOSED"}


def test_decay_on_the_sample_at_1060_nm_has_the_nd_lifetime(bench):
    clock, pl, fl, det, laser = bench
    settle(fl, holder="sample", emission_nm=1060.0)
    r = acquire(det, laser, 20.0, 200)
    mu = pl.housing.optics.photons_per_pulse("SAMPLE", 375.0) * 0.2
    assert r.sync_rate_hz == 1e6 and r.count_rate_cps == pytest.approx(mu * 1e6 + DARK_CPS, rel=0.02)
    assert r.pile_up_ratio < 0.05 and "WARNING_INPT_RATE_RATIO" not in r.warning_names
    t = r.time_ns.reshape(-1, 8)[:, 0]                                # rebin to 256 ps
    counts = r.counts.astype(np.int64).reshape(-1, 8).sum(axis=1)
    fit = tail_fit(t, counts, start_ns=SYNC_DELAY_NS + 10.0, stop_ns=995.0)
    tau, err = fit.params["tau1"], fit.stderr["tau1"]
    assert err < 1.5 and abs(tau - 134.0) < max(4 * err, 0.02 * 134.0)


def test_scatterer_at_375_nm_gives_a_narrow_irf(bench):
    clock, pl, fl, det, laser = bench
    settle(fl, holder="scatterer", emission_nm=375.0)
    r = acquire(det, laser, 5.0, 100)
    counts = r.counts.astype(float)
    peak = int(np.argmax(counts))
    fwhm_ns = np.count_nonzero(counts >= 0.5 * counts[peak]) * r.resolution_ps / 1000.0
    assert 0.3 < fwhm_ns < 0.6                                       # 0.41 ns IRF
    assert abs(r.time_ns[peak] - SYNC_DELAY_NS) < 0.3
    late = counts[(r.time_ns > SYNC_DELAY_NS + 20) & (r.time_ns < 990)]
    dark_per_channel = DARK_CPS * 5.0 * (r.resolution_ps / 1000.0) / 1000.0   # 1000 ns period
    assert late.mean() == pytest.approx(dark_per_channel, rel=0.1)  # scatter is instantaneous
    assert r.count_rate_cps == pytest.approx(0.0375 * 1e6 + DARK_CPS, rel=0.02)
    settle(fl, holder="scatterer", emission_nm=400.0)               # off the laser line: dark
    r = acquire(det, laser, 5.0, 100)
    assert r.count_rate_cps == pytest.approx(DARK_CPS, rel=0.005)     # dead-time loss only


def test_detector_shutter_closed_gives_dark_only(bench):
    clock, pl, fl, det, laser = bench
    settle(fl, holder="sample", emission_nm=1060.0, detector="closed")
    r = acquire(det, laser, 5.0, 500)
    assert r.count_rate_cps == pytest.approx(DARK_CPS, rel=0.005)     # dead-time loss only
    assert abs(int(r.counts.sum()) - DARK_CPS * 5.0) < 5 * np.sqrt(DARK_CPS * 5.0)
    fl.counter.gate_s.set(1.0).wait(5)
    fl.trigger().wait(10)
    assert fl.counter.flags.get() == 2
    assert abs(fl.counter.count_rate_cps.get() - DARK_CPS) < 0.05 * DARK_CPS


def test_overload_switches_hv_off_and_the_next_count_fails(bench):
    clock, pl, fl, det, laser = bench
    settle(fl, holder="scatterer", emission_nm=1000.0, excitation_nm=1000.0, lamp="open")
    fl.trigger().wait(10)
    assert fl.counter.overload.get() is True and fl.pmt_hv.get() == "off"
    assert pl.housing.hv_on is False
    with pytest.raises(InstrumentError, match="PMT high voltage is off"):
        fl.trigger().wait(10)
    fl.lamp_shutter.set("closed").wait(5)
    fl.pmt_hv.set("on").wait(5)
    fl.trigger().wait(10)
    assert fl.counter.overload.get() is False and fl.counter.flags.get() == 0


def test_standard_lamp_position_and_reference_with_the_shutter_closed(bench):
    clock, pl, fl, det, laser = bench
    settle(fl, holder="lamp", emission_nm=1200.0, lamp="closed")
    assert pl.housing.holder == "LAMP" and fl.holder.get() == "lamp"
    fl.trigger().wait(10)
    lamp_cps = fl.counter.count_rate_cps.get()
    assert lamp_cps > DARK_CPS + 3e4                              # the standard lamp is lit
    assert fl.reference.current_nA.get() == 0.0                   # no Xe light: no reference
    fl.detector_shutter.set("closed").wait(5)
    fl.trigger().wait(10)
    assert abs(fl.counter.count_rate_cps.get() - DARK_CPS) < 0.05 * DARK_CPS
    # the TCSPC sees the standard lamp as a flat background
    fl.detector_shutter.set("open").wait(5)
    r = acquire(det, laser, 2.0, 100)
    assert r.count_rate_cps == pytest.approx(pl.housing.optics.standard_lamp_rate_cps() + DARK_CPS,
                                             rel=0.02)


def test_replies_slower_than_the_line_timeout_are_awaited():
    clock = VirtualClock(10.0, freeze_when_idle=True)                # holder move: 0.5 wall s
    with PLBench(clock, get_luminescence("mCB-Nd"), seed=0) as pl:
        fl = connect_fl(pl.endpoints, timeout_s=0.2)
        try:
            fl.holder.set("empty").wait(10)
            assert fl.holder.get() == "empty" and pl.housing.holder == "EMPTY"
        finally:
            fl.close()
    clock.stop()


def test_simulated_lab_serves_the_pl_bench(tmp_path):
    with SimulatedLab(data_dir=tmp_path, sample="mCB-Yb", seed=2) as lab:
        ep = lab.endpoints["pl"]
        assert set(ep) == {"excitation_mono", "emission_mono", "housing", "hydraharp", "taiko",
                           "pilas"}
        assert lab.pl.model.name == "mCB-Yb" and lab.pl.clock is lab.clock
        fl = connect_fl(ep)
        try:
            settle(fl, holder="sample", emission_nm=1000.0, excitation_nm=300.0, lamp="open")
            fl.trigger().wait(10)
            assert fl.counter.count_rate_cps.get() > 1.5 * DARK_CPS            # Yb 1000 nm band
            assert lab.pl.housing.shutters["LAMP"] == "OPEN" and lab.pl.laser.snapshot().soft_locked
        finally:
            fl.close()
    with SimulatedLab(data_dir=tmp_path / "dy", sample="Dy-SMM") as lab:
        assert lab.endpoints["pl"] is None and lab.pl is None
