"""Photoluminescence plans on the PL bench over loopback (real drivers, bluesky RunEngine):
spectra, IRF + decay with derived settings, light discipline on success / failure / abort, and
bad input refused before anything moves."""

from __future__ import annotations

import threading
import time
from dataclasses import fields

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from bluesky.utils import FailedStatus, Msg, RunEngineInterrupted
from documents import runs_of
from pl_benches import connect_fl
from spinlight.analysis.pl_streaming import make_pl_analysis_router
from spinlight.instruments.laser import connect_taiko
from spinlight.instruments.tcspc import connect_tcspc
from spinlight.plans import Sample
from spinlight.plans.lifetime import (DecaySettings, dark_floor, decay_settings, lifetime_decay,
                                      net_peak)
from spinlight.plans.pl import emission_spectrum, excitation_spectrum
from spinlight.simulators.clock import VirtualClock
from spinlight.simulators.pl_bench import PLBench
from spinlight.simulators.samples import get_luminescence

SAMPLE = Sample(name="mCB-Nd", mass_mg=5.0, molar_mass_g_per_mol=2589.0, ions={"Nd": 3})


def make_bench(speed=2000.0, preset="mCB-Nd", seed=5):
    clock = VirtualClock(speed, freeze_when_idle=True)
    pl = PLBench(clock, get_luminescence(preset), seed=seed)
    ep = pl.start()
    fl = connect_fl(ep)
    det = connect_tcspc(ep["hydraharp"]["host"], ep["hydraharp"]["port"], rate_settle_s=0.01)
    laser = connect_taiko(ep["taiko"]["host"], ep["taiko"]["port"])
    return clock, pl, fl, det, laser


@pytest.fixture
def bench():
    clock, pl, fl, det, laser = make_bench()
    yield pl, fl, det, laser
    for dev in (fl, det, laser):
        dev.close()
    pl.stop()
    clock.stop()


def run(plan, *callbacks):
    docs = []
    RE = RunEngine(context_managers=[])
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    for cb in callbacks:
        RE.subscribe(cb)
    RE(plan)
    return docs


def assert_safe(pl):
    snap = pl.laser.snapshot()
    assert snap.soft_locked and not snap.emitting
    assert pl.housing.shutters == {"LAMP": "CLOSED", "DETECTOR": "CLOSED"}


def test_emission_spectrum_finds_the_nd_band_and_closes_the_shutters(bench):
    pl, fl, det, laser = bench
    docs = run(emission_spectrum(fl, SAMPLE, excitation_nm=330.0, start_nm=1020.0, stop_nm=1100.0,
                                 step_nm=4.0, gate_s=0.2, laser=laser))
    (start, events), = runs_of(docs)
    spec = start["spectrum"]
    assert spec["scan"] == "emission" and spec["fixed_nm"] == 330.0
    dark_cps = spec["dark_cps"]
    dark = pl.housing.pmt.dark_count_rate_cps
    assert 0.9 * dark < dark_cps < 1.1 * dark                 # NIR-PMT dark counts
    nm = np.array([e[spec["wavelength_key"]] for e in events])
    rate = np.array([e[spec["signal_key"]] for e in events]) - spec["dark_cps"]
    assert len(events) == 21 == start["num_points"]
    ref = [e[spec["reference_key"]] for e in events]         # the reference diode, every event
    assert spec["reference_key"] == "fluorometer_reference_current_nA" and min(ref) > 0
    assert abs(nm[np.argmax(rate)] - 1060.0) <= 4.0
    assert rate.max() > 10 * max(rate[0], 1.0)               # band over its wing
    assert_safe(pl)


def pause_after_checkpoint(plan, n, pl, seen):
    """``plan`` paused (as by Ctrl-C) right after its ``n``-th checkpoint; ``seen`` records the
    simulator's shutters then, before the pause."""
    checkpoints = []

    def insert_pause(msg):
        if msg.command == "checkpoint":
            checkpoints.append(msg)
            if len(checkpoints) == n:
                def pause():
                    seen.append(dict(pl.housing.shutters))
                    yield Msg("pause", None, defer=False)
                return None, pause()
        return None, None

    return bpp.plan_mutator(plan, insert_pause)


def paused_emission_spectrum(bench):
    """An emission spectrum (21 points) paused before its 5th point: the RunEngine, the docs
    so far and the shutters just before the pause."""
    pl, fl, det, laser = bench
    RE, docs, seen = RunEngine(context_managers=[]), [], []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    plan = emission_spectrum(fl, SAMPLE, excitation_nm=330.0, start_nm=1020.0, stop_nm=1100.0,
                             step_nm=4.0, gate_s=0.2, laser=laser)
    with pytest.raises(RunEngineInterrupted):
        RE(pause_after_checkpoint(plan, 5, pl, seen))
    assert RE.state == "paused"
    assert seen == [{"LAMP": "OPEN", "DETECTOR": "OPEN"}]          # lit before the pause
    assert len(runs_of(docs)[0][1]) == 4    # 4 points counted
    assert pl.housing.shutters == {"LAMP": "CLOSED", "DETECTOR": "CLOSED"}   # dark while paused
    return RE, docs


def test_a_paused_spectrum_has_its_shutters_closed_and_resumes_with_them_open(bench):
    pl, fl, det, laser = bench
    RE, docs = paused_emission_spectrum(bench)
    RE.resume()
    (start, events), = runs_of(docs)
    spec = start["spectrum"]
    nm = np.array([e[spec["wavelength_key"]] for e in events])
    rate = np.array([e[spec["signal_key"]] for e in events]) - spec["dark_cps"]
    assert nm.tolist() == [1020.0 + 4.0 * i for i in range(21)]        # every point, once
    # the band (1060 nm, after the pause) was counted with both shutters open again
    assert abs(nm[np.argmax(rate)] - 1060.0) <= 4.0 and rate.max() > 10 * max(rate[0], 1.0)
    assert_safe(pl)


def test_a_paused_spectrum_aborted_leaves_the_shutters_closed(bench):
    pl, fl, det, laser = bench
    RE, docs = paused_emission_spectrum(bench)
    RE.abort("test")
    assert docs[-1][0] == "stop" and docs[-1][1]["exit_status"] == "abort"
    assert_safe(pl)
    assert fl.lamp_shutter.get() == fl.detector_shutter.get() == "closed"


def test_excitation_spectrum_shows_the_ligand_band_and_nd_lines(bench):
    pl, fl, det, laser = bench
    docs = run(excitation_spectrum(fl, SAMPLE, emission_nm=1060.0, start_nm=280.0, stop_nm=600.0,
                                   step_nm=10.0, gate_s=0.2))
    (start, events), = runs_of(docs)
    spec = start["spectrum"]
    assert spec["scan"] == "excitation" and spec["fixed_nm"] == 1060.0
    rate = {round(e[spec["wavelength_key"]]): e[spec["signal_key"]] - spec["dark_cps"] for e in events}
    assert rate[300] > 3 * rate[450]                          # ligand band near 300 nm
    assert rate[580] > 1.5 * rate[560]                        # Nd 4G5/2 line
    assert_safe(pl)


def test_lifetime_decay_measures_the_irf_then_the_decay_and_the_fit_recovers_134_ns(bench):
    pl, fl, det, laser = bench
    derived = []
    docs = run(lifetime_decay(fl, laser, det, SAMPLE, emission_nm=1060.0, expected_lifetime_ns=134.0,
                              peak_counts=4000),
               make_pl_analysis_router(lambda name, doc: derived.append((name, doc))))
    runs = runs_of(docs)
    assert [s["measurement"] for s, _ in runs] == ["instrument_response", "lifetime_decay"]
    (irf_start, (irf_event,)), (start, (event,)) = runs
    decay = start["decay"]
    assert decay["irf_uid"] == irf_start["uid"] and irf_start["decay"]["kind"] == "irf"
    acq = start["acquisition"]
    assert acq["count_fraction"] <= 0.05                      # pile-up rule
    assert decay["repetition_rate_hz"] <= 1e9 / (5 * 134.0)   # 5 lifetimes per period
    assert acq["window_ns"] >= 1e9 / decay["repetition_rate_hz"]
    counts = np.asarray(event[decay["counts_key"]], dtype=float)
    assert counts.size == acq["channels"] == 4096
    # the NET peak (running mean minus the dark floor per channel) reached its target
    settings = DecaySettings(**{f.name: acq[f.name] for f in fields(DecaySettings)})
    floor = dark_floor(decay["dark_cps"], event[decay["acquisition_time_key"]], settings)
    peak = net_peak(counts, floor, acq["smooth_channels"])
    assert acq["target_peak_counts"] == 4000
    assert 0.85 * 4000 <= peak <= 1.15 * 4000, peak
    assert event[laser.soft_lock.name] is False               # unlocked only while acquiring
    t = np.asarray(event[decay["time_key"]])
    assert counts[t >= 1e9 / decay["repetition_rate_hz"]].sum() == 0   # one period of photons
    # the streaming analysis fits it with the IRF run it links to
    (result,) = [d for n, d in derived if n == "start" and d["plan_name"] == "lifetime_analysis"]
    assert result["derived_from"] == start["uid"] and result["irf_uid"] == irf_start["uid"]
    assert result["fit_kind"] == "reconvolution"
    assert result["results"]["tau_ns"] == pytest.approx(134.0, rel=0.02)
    assert_safe(pl)


def test_decay_settings_follow_the_lifetime():
    s = decay_settings(608.0, laser_limits_hz=(1e3, 8e7), base_resolution_ps=1.0, binsteps=26)
    assert s.repetition_rate_hz <= 1e9 / (5 * 608) and s.repetition_rate_hz >= 0.9e9 / (5 * 608)
    assert s.window_ns >= 1e9 / s.repetition_rate_hz and s.window_ns < 2.0e9 / s.repetition_rate_hz
    with pytest.raises(ValueError, match=r"repetition_rate_hz=5000000.*608 ns"):
        decay_settings(608.0, laser_limits_hz=(1e3, 8e7), base_resolution_ps=1.0, binsteps=26,
                       repetition_rate_hz=5e6)


def test_bad_input_is_refused_before_anything_moves(bench):
    pl, fl, det, laser = bench
    before = (pl.emission.wavelength_nm, pl.excitation.wavelength_nm, pl.housing.holder,
              pl.laser.snapshot())
    with pytest.raises(ValueError, match=r"emission_nm=3000.*0.0\.\.2800"):
        lifetime_decay(fl, laser, det, SAMPLE, emission_nm=3000.0, expected_lifetime_ns=134.0)
    with pytest.raises(ValueError, match=r"emission_nm=600.0 nm .*950\.\.1700 nm"):  # NIR-PMT blind
        lifetime_decay(fl, laser, det, SAMPLE, emission_nm=600.0, expected_lifetime_ns=134.0)
    with pytest.raises(ValueError, match=r"repetition_rate_hz=5000000.*Hz"):
        lifetime_decay(fl, laser, det, SAMPLE, emission_nm=1000.0, expected_lifetime_ns=608.0,
                       repetition_rate_hz=5e6)
    with pytest.raises(ValueError, match=r"excitation_nm=1200.*230.0\.\.1000.0"):
        emission_spectrum(fl, SAMPLE, excitation_nm=1200.0, start_nm=900, stop_nm=1100, step_nm=5)
    with pytest.raises(ValueError, match=r"step_nm=0.*nm"):
        excitation_spectrum(fl, SAMPLE, emission_nm=1060.0, start_nm=300, stop_nm=400, step_nm=0)
    with pytest.raises(ValueError, match=r"max_count_fraction=0.2.*0.05"):
        lifetime_decay(fl, laser, det, SAMPLE, emission_nm=1060.0, expected_lifetime_ns=134.0,
                       max_count_fraction=0.2)
    assert (pl.emission.wavelength_nm, pl.excitation.wavelength_nm, pl.housing.holder,
            pl.laser.snapshot()) == before


def test_the_laser_cannot_be_unlocked_outside_an_acquisition(bench):
    pl, fl, det, laser = bench
    with pytest.raises(ValueError, match=r"soft_lock=False is not allowed outside an acquisition"):
        laser.soft_lock.put(False)
    RE = RunEngine(context_managers=[])
    with pytest.raises(FailedStatus) as info:
        RE(bps.mv(laser.soft_lock, False))
    assert "outside an acquisition" in str(info.value.__cause__)
    assert pl.laser.snapshot().soft_locked


def test_a_failure_during_the_acquisition_leaves_the_light_off(bench):
    pl, fl, det, laser = bench
    triggers = []

    def fail_on_second_tcspc_trigger(msg):
        if msg.command == "trigger" and msg.obj is det:
            triggers.append(msg)
            if len(triggers) == 3:             # dark, preview, then the measurement
                assert not pl.laser.snapshot().soft_locked   # the laser was on for it
                def boom():
                    raise RuntimeError("simulated detector failure")
                    yield Msg("null")
                return boom(), None
        return None, None

    plan = bpp.plan_mutator(lifetime_decay(fl, laser, det, SAMPLE, emission_nm=1060.0,
                                           expected_lifetime_ns=134.0, irf=None, peak_counts=2000),
                            fail_on_second_tcspc_trigger)
    with pytest.raises(RuntimeError, match="simulated detector failure"):
        run(plan)
    assert len(triggers) == 3
    assert_safe(pl)


def test_abort_while_the_laser_is_on_leaves_the_light_off():
    clock, pl, fl, det, laser = make_bench(speed=50.0)
    RE = RunEngine(context_managers=[])
    paused = threading.Event()

    def pause_when_lit():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not paused.is_set():
            if not pl.laser.snapshot().soft_locked:
                RE.request_pause(defer=False)
                paused.set()
                return
            time.sleep(0.002)

    try:
        watcher = threading.Thread(target=pause_when_lit, daemon=True)
        watcher.start()
        with pytest.raises(RunEngineInterrupted):
            RE(lifetime_decay(fl, laser, det, SAMPLE, emission_nm=1060.0,
                              expected_lifetime_ns=134.0, irf=None, peak_counts=3000))
        watcher.join(10)        # request_pause returns in the watcher after the RE has paused
        assert paused.is_set() and RE.state == "paused"
        assert pl.laser.snapshot().soft_locked                 # no light while paused
        # and the detector shutter, open for the acquisition, closed (the PMT in the dark)
        assert pl.housing.shutters == {"LAMP": "CLOSED", "DETECTOR": "CLOSED"}
        RE.abort("test")
        assert_safe(pl)
    finally:
        for dev in (fl, det, laser):
            dev.close()
        pl.stop()
        clock.stop()
