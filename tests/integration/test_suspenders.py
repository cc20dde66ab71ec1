"""Campaign suspenders against the simulated lab: each scripted fault interrupts a real plan
run by a RunEngine (PPMS ACMS frequency sweep over pyvisa, MPMS3 M(H) over MultiPyVu, a
luminescence decay with the Taiko laser); the run suspends, resumes when the fault clears and
ends with exactly the planned points, once each, and the instruments safe. Garbled replies and
timeouts are retried inside the drivers; a lost connection is reconnected within the back-off
budget, and past it the run fails cleanly with the points measured before."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky.suspenders import SuspendBoolHigh
from bluesky.utils import FailedStatus, Msg
from ophyd import Signal

import MultiPyVu.MultiVuClient_base as _client_base

from pl_benches import connect_fl
from polling import wait_for
from spinlight.instruments.errors import ConnectionLost
from spinlight.instruments.laser import connect_taiko
from spinlight.instruments.mpms3_device import connect_mpms3
from spinlight.instruments.ppms_device import connect_ppms, ppms_ac_detector
from spinlight.instruments.retry import RetryPolicy
from spinlight.instruments.tcspc import connect_tcspc
from spinlight.plans import Sample, m_h
from spinlight.plans.ac import ac_frequency_sweep, ppms_ac_station
from spinlight.plans.lifetime import lifetime_decay
from spinlight.plans.suspenders import campaign_suspenders, checkpoint_after_save, install, remove
from spinlight.simulators.faults import FaultInjector, FaultScript
from spinlight.simulators.lab import SimulatedLab

SPEED = 200.0                      # instrument s per wall s: a fault of 100 s lasts 0.5 s
POLICY = dict(retries=2, reconnect_attempts=4, reconnect_backoff_s=0.2)   # budget 1.4 s
FREQS = [10.0, 30.0, 100.0, 300.0, 1000.0]
FIELDS = [1000.0, 1100.0, 1200.0, 1300.0]
# wall s before a cleared suspender resumes (a shorter wait is tested separately: the
# .dat-row detector ends its interrupted trigger on pause())
RESUME_WAIT_S = 0.3
SAMPLE = Sample(name="Dy-SMM", mass_mg=20.0, molar_mass_g_per_mol=1000.0)


@pytest.fixture(autouse=True)
def _quiet_multipyvu(monkeypatch, tmp_path):
    monkeypatch.setattr(_client_base, "setup_logging", lambda *a, **k: None)
    monkeypatch.chdir(tmp_path)



class Session:
    """A lab, a RunEngine recording documents, and faults injected after the n-th event."""

    def __init__(self, lab, suspend_on=()):
        self.lab, self.docs, self.injectors = lab, [], []
        self._builds, self._armed = {}, None
        self.RE = RunEngine(context_managers=[])
        self.RE.record_interruptions = True
        self.RE.subscribe(lambda name, doc: self.docs.append((name, doc)))
        if suspend_on:
            install(self.RE, campaign_suspenders(suspend_on, helium_min_percent=20.0,
                                                 helium_resume_percent=30.0,
                                                 temperature_band_K=0.5,
                                                 resume_wait_s=RESUME_WAIT_S))

    def elapsed(self) -> float:
        return self.lab.clock.now() - self.lab.clock.start_unix

    def inject_during(self, detector, n: int, build):
        """``build(now_s)`` -> FaultScript, injected once the RunEngine waits for the ``n``-th
        trigger of ``detector``: fault times follow the plan's progress (a point's measurement
        lasts 10-35 instrument s), not a guessed schedule. May be called for several ``n``."""
        self._builds[(detector, n)] = build
        counts = {}

        def hook(msg):
            if msg.command == "trigger" and any(msg.obj is d for d, _ in self._builds):
                counts[msg.obj] = counts.get(msg.obj, 0) + 1
                self._armed = (msg.obj, counts[msg.obj])
            elif msg.command == "wait" and self._armed in self._builds:
                build = self._builds.pop(self._armed)
                self.injectors.append(FaultInjector.for_lab(self.lab, build(self.elapsed())))
        self.RE.msg_hook = hook

    @property
    def injector(self):
        return self.injectors[0] if self.injectors else None

    def events(self, stream):
        names = {d["uid"]: d["name"] for n, d in self.docs if n == "descriptor"}
        return [d for n, d in self.docs if n == "event" and names[d["descriptor"]] == stream]

    def stop_doc(self):
        (stop,) = [d for n, d in self.docs if n == "stop"]
        return stop

    def fault_window(self, kind):
        """(start, end) instrument s of the injected fault ``kind``."""
        times = {h.phase: h.elapsed_s for h in self.injector.history if h.kind == kind}
        return times.get("start"), times.get("end")

    def close(self):
        for injector in self.injectors:
            injector.stop()


# -- PPMS (pyvisa, ACMS frequency sweep) ----------------------------------------------------------
@pytest.fixture
def ppms_lab(tmp_path):
    with SimulatedLab(speed=SPEED, seed=5, sample="Dy-SMM", mass_mg=20.0,
                      data_dir=tmp_path / "sim") as lab:
        yield lab


def ppms_station(lab, monitor=True):
    ppms = connect_ppms(lab.endpoints["ppms"]["resource"], timeout_s=0.3,
                        monitor_interval_s=0.02 if monitor else None, retry=RetryPolicy(**POLICY))
    return ppms, ppms_ac_station(ppms, ppms_ac_detector(ppms))


def during_third_point(session, station, build):
    session.inject_during(station.detector, 3, build)


def sweep(station):
    return ac_frequency_sweep([station], SAMPLE, temperature_K=295.0, field_Oe=1000.0,
                              frequencies_Hz=FREQS, averaging_time_s=2.0, cycles=2,
                              rate_K_per_min=20.0)


def assert_all_points_once(session, stream="ac_ppms", key="ppms_ac_frequency_hz", planned=FREQS):
    events = session.events(stream)
    assert [e["seq_num"] for e in events] == list(range(1, len(planned) + 1))
    np.testing.assert_allclose([e["data"][key] for e in events], planned)
    assert session.stop_doc()["exit_status"] == "success"
    return events


def assert_ppms_safe(ppms):
    field, magnet = ppms.driver.get_field()
    temperature, state = ppms.driver.get_temperature()
    assert abs(field) < 1.0 and magnet == "persistent stable"
    assert ppms.driver.get_temperature_setpoint()[0] == pytest.approx(295.0)   # held
    assert state in ("stable", "within tolerance, waiting for equilibrium")



def interruptions(session):
    return [e["data"]["interruption"] for e in session.events("interruptions")]


PHYSICAL = {
    "helium_low": (dict(duration_s=100.0, percent=5.0, refill_percent=80.0), "helium level below 20 %"),
    "temperature_excursion": (dict(duration_s=100.0, delta_K=3.0), "temperature more than 0.5 K"),
    "quench": (dict(state="current_error"), "magnet quench or current error"),
}


@pytest.mark.parametrize("kind", sorted(PHYSICAL))
def test_ppms_fault_suspends_then_the_sweep_completes_once_each(ppms_lab, kind):
    params, message = PHYSICAL[kind]
    ppms, station = ppms_station(ppms_lab)
    s = Session(ppms_lab, suspend_on=[ppms])
    during_third_point(s, station, lambda now: FaultScript().at(kind, now + 2.0, target="ppms",
                                                                **params))
    try:
        s.RE(sweep(station))
        events = assert_all_points_once(s)
        (note,) = interruptions(s)
        assert message in note
        start, end = s.fault_window(kind)
        third = events[2]["data"]
        # the interrupted point was measured again after the fault cleared, at the setpoints
        assert third["ppms_ac_time"] - ppms_lab.clock.start_unix > (end or start)
        assert third["ppms_field"] == pytest.approx(1000.0, abs=1.0)
        assert abs(third["ppms_temperature"] - 295.0) < 0.5
        assert not ppms.magnet_fault.get() and ppms.helium_level.get() > 30.0
        assert_ppms_safe(ppms)
    finally:
        s.close()
        ppms.close()


def test_a_suspension_shorter_than_the_ac_point_it_interrupts_replays_that_point_once(ppms_lab):
    """The interrupted measurement is still running when the replay asks for the point again:
    pause() ends the abandoned trigger, whose row is never published, and the replayed
    trigger takes its own row (no hang until the detector timeout)."""
    from spinlight.instruments.qd_dat import read_dat

    ppms, station = ppms_station(ppms_lab)
    det = station.detector
    det.timeout_s.put(20.0)                      # a hang fails in 20 s, not 900 s
    s = Session(ppms_lab)
    install(s.RE, campaign_suspenders([ppms], temperature_band_K=0.5, resume_wait_s=0.05))
    # 100 Hz with 30 s averaging: a 91 instrument s point; the suspension lasts ~25 s
    during_third_point(s, station, lambda now: FaultScript().at(
        "temperature_excursion", now + 2.0, target="ppms", duration_s=10.0, delta_K=3.0))
    inject, triggers, written_at_replay = s.RE.msg_hook, [], []

    def hook(msg):
        if msg.command == "trigger" and msg.obj is det:
            triggers.append(msg)
            if len(triggers) == 4:               # the replay of the third point
                written_at_replay.extend(
                    int(r["Measurement Number"]) for r in read_dat(det.datafile.get()).rows)
        inject(msg)
    s.RE.msg_hook = hook
    published = []
    det.measurement_number.subscribe(lambda value, **kw: published.append(value), run=False)
    try:
        t0 = time.monotonic()
        s.RE(ac_frequency_sweep([station], SAMPLE, temperature_K=295.0, field_Oe=1000.0,
                                frequencies_Hz=FREQS, averaging_time_s=30.0, cycles=2,
                                rate_K_per_min=20.0))
        wall_s = time.monotonic() - t0
        events = assert_all_points_once(s)
        (note,) = interruptions(s)
        assert "temperature more than 0.5 K" in note
        numbers = [e["data"]["ppms_ac_measurement_number"] for e in events]
        abandoned = numbers[1] + 1
        assert numbers == [numbers[0], numbers[1], abandoned + 1, abandoned + 2, abandoned + 3]
        assert len(triggers) == 6
        # the abandoned point was still being measured when the replay was triggered ...
        assert numbers[1] in written_at_replay and abandoned not in written_at_replay
        all_rows = [int(r["Measurement Number"]) for r in read_dat(det.datafile.get()).rows]
        assert abandoned in all_rows                 # ... and was written, but never used
        assert published == numbers
        assert wait_for(lambda: not any(t.name == f"{det.name}-trigger" and t.is_alive()
                                        for t in threading.enumerate()), 2.0)
        assert wall_s < 15.0
        assert_ppms_safe(ppms)
    finally:
        s.close()
        ppms.close()


def test_ppms_garbled_replies_and_timeouts_are_retried(ppms_lab, faults):
    ppms, station = ppms_station(ppms_lab, monitor=False)    # only the plan's own commands
    s = Session(ppms_lab)
    s.inject_during(station.detector, 2, lambda now: FaultScript()
                    .at("garbled", now, target="ppms", count=2))
    s.inject_during(station.detector, 4, lambda now: FaultScript()
                    .at("timeout", now, target="ppms", count=2))
    try:
        s.RE(sweep(station))
        assert_all_points_once(s)
        reasons = [f["reason"] for kind, f in faults if kind == "retry"]
        assert reasons.count("garbled reply") == 2 and reasons.count("timeout") == 2
        assert all(f["instrument"] == "PPMS" for _, f in faults)
        assert_ppms_safe(ppms)
    finally:
        s.close()
        ppms.close()


def test_ppms_outage_shorter_than_the_backoff_budget_is_survived(ppms_lab, faults):
    ppms, station = ppms_station(ppms_lab)
    s = Session(ppms_lab, suspend_on=[ppms])
    during_third_point(s, station, lambda now: FaultScript().at(
        "disconnect", now + 2.0, target="ppms", duration_s=100.0))          # 0.5 s < 1.4 s
    try:
        s.RE(sweep(station))
        assert_all_points_once(s)
        kinds = [k for k, _ in faults]
        assert "connection_lost" in kinds and "reconnected" in kinds and "gave_up" not in kinds
        assert ppms.connected.get() and not ppms.reconnect_failed.get()
        assert_ppms_safe(ppms)
    finally:
        s.close()
        ppms.close()


def test_ppms_outage_longer_than_the_budget_fails_cleanly_keeping_earlier_points(ppms_lab, faults):
    ppms, station = ppms_station(ppms_lab)
    s = Session(ppms_lab, suspend_on=[ppms])
    during_third_point(s, station, lambda now: FaultScript().at(
        "disconnect", now + 2.0, target="ppms", duration_s=1e5))
    try:
        with pytest.raises(ConnectionLost, match="PPMS"):
            s.RE(sweep(station))
        stop = s.stop_doc()
        assert stop["exit_status"] == "fail" and "PPMS: connection lost" in stop["reason"]
        events = s.events("ac_ppms")
        assert len(events) >= 2 and [e["seq_num"] for e in events] == list(range(1, len(events) + 1))
        np.testing.assert_allclose([e["data"]["ppms_ac_frequency_hz"] for e in events],
                                   FREQS[:len(events)])
        assert ("gave_up", "PPMS") in [(k, f["instrument"]) for k, f in faults]
        assert wait_for(lambda: ppms.reconnect_failed.get() and not ppms.connected.get())
        s.close()                           # the outage ends: the link comes back
        assert ppms.driver.get_level()[0] > 0
    finally:
        s.close()
        ppms.close()


# -- MPMS3 (MultiPyVu, M(H)) ------------------------------------------------------------------------
@pytest.fixture
def mpms3_lab(tmp_path):
    with SimulatedLab(speed=SPEED, seed=5, sample="mCB-Nd", mass_mg=20.0,
                      data_dir=tmp_path / "sim") as lab:
        ep = lab.endpoints["mpms3"]
        yield lab, ep


def mh(mpms3, vsm):
    return m_h(mpms3, vsm, SAMPLE, temperatures_K=[295.0], fields_Oe=FIELDS,
               field_rate_Oe_per_s=100.0, averaging_time_s=10.0, zero_field_between=False)


def assert_mpms3_safe(mpms3):
    field, state = mpms3.driver.get_field()
    assert abs(field) < 1.0 and state in ("Holding (driven)", "Stable")
    assert mpms3.driver.get_temperature_setpoints()[0] == pytest.approx(295.0)


@pytest.mark.parametrize("kind", ["quench", "garbled_timeout", "disconnect"])
def test_mpms3_fault_during_an_m_h_is_survived(mpms3_lab, kind, faults):
    lab, ep = mpms3_lab
    monitored = kind != "garbled_timeout"
    mpms3, vsm = connect_mpms3(ep["host"], ep["port"], timeout_s=0.5, retry=RetryPolicy(**POLICY),
                               monitor_interval_s=0.02 if monitored else None)
    s = Session(lab, suspend_on=[mpms3] if monitored else ())
    scripts = {
        "quench": lambda now: FaultScript().at("quench", now + 2.0, target="mpms3"),
        "garbled_timeout": lambda now: FaultScript().at("garbled", now, target="mpms3", count=2),
        "disconnect": lambda now: FaultScript().at("disconnect", now + 2.0, target="mpms3",
                                                   duration_s=300.0),   # 1.5 s: > 0.5 s timeout
    }
    s.inject_during(vsm, 2, scripts[kind])
    if kind == "garbled_timeout":
        s.inject_during(vsm, 3, lambda now: FaultScript().at("timeout", now, target="mpms3", count=2))
    try:
        s.RE(mh(mpms3, vsm))
        events = assert_all_points_once(s, "primary", "mpms3_field_setpoint", FIELDS)
        np.testing.assert_allclose([e["data"]["vsm_field"] for e in events], FIELDS, atol=2.0)
        kinds = [k for k, _ in faults]
        if kind == "quench":
            (note,) = interruptions(s)
            assert "magnet quench" in note and not mpms3.magnet_fault.get()
        elif kind == "garbled_timeout":
            assert kinds.count("retry") == 4
        else:
            assert "connection_lost" in kinds and "reconnected" in kinds
            assert mpms3.connected.get()
        assert_mpms3_safe(mpms3)
    finally:
        s.close()
        mpms3.close()


def quench_during_ramp_to(lab, session, field_obj, target_Oe, after_s=10.0):
    """Inject a quench ``after_s`` instrument s into the ramp the plan starts to ``target_Oe``."""
    def hook(msg):
        if (msg.command == "set" and msg.obj is field_obj and msg.args[0] == target_Oe
                and not session.injectors):
            session.injectors.append(FaultInjector.for_lab(lab, FaultScript().at(
                "quench", session.elapsed() + after_s, target="mpms3")))
    session.RE.msg_hook = hook


RAMP_FIELDS = [1000.0, 6000.0]     # 50 instrument s of ramp between them at 100 Oe/s


@pytest.mark.parametrize("ramp_to", [6000.0, 0.0], ids=["to_a_point", "safe_state_to_zero"])
def test_a_quench_during_a_field_ramp_suspends_and_the_ramp_is_made_again(mpms3_lab, ramp_to):
    lab, ep = mpms3_lab
    mpms3, vsm = connect_mpms3(ep["host"], ep["port"], timeout_s=0.5, retry=RetryPolicy(**POLICY),
                               monitor_interval_s=0.02)
    s = Session(lab, suspend_on=[mpms3])
    quench_during_ramp_to(lab, s, mpms3.field, ramp_to)
    states = []
    s.RE.state_hook = lambda new, old: states.append(new)
    try:
        s.RE(m_h(mpms3, vsm, SAMPLE, temperatures_K=[295.0], fields_Oe=RAMP_FIELDS,
                 field_rate_Oe_per_s=100.0, averaging_time_s=10.0, zero_field_between=False))
        events = assert_all_points_once(s, "primary", "mpms3_field_setpoint", RAMP_FIELDS)
        np.testing.assert_allclose([e["data"]["vsm_field"] for e in events], RAMP_FIELDS, atol=2.0)
        assert s.fault_window("quench")[0] is not None and states.count("suspending") == 1
        assert not mpms3.magnet_fault.get()
        if ramp_to:      # the point at 6000 Oe was measured after the quench, at full field
            (note,) = interruptions(s)
            assert "magnet quench" in note
            assert events[1]["data"]["vsm_time"] - lab.clock.start_unix > s.fault_window("quench")[0]
        # else: the safe state runs after the run's stop document, so no interruption event
        assert_mpms3_safe(mpms3)
        assert mpms3.field.fault_grace_s.get() > 1.0
        remove(s.RE, list(s.RE.suspenders))    # no suspender: a fault fails a move at once again
        assert mpms3.field.fault_grace_s.get() == 0.0
    finally:
        s.close()
        mpms3.close()


def test_without_a_quench_suspender_a_quench_during_a_ramp_fails_the_run_safely(mpms3_lab):
    lab, ep = mpms3_lab
    mpms3, vsm = connect_mpms3(ep["host"], ep["port"], timeout_s=0.5, retry=RetryPolicy(**POLICY))
    s = Session(lab)
    quench_during_ramp_to(lab, s, mpms3.field, 6000.0)
    try:
        with pytest.raises(FailedStatus) as failed:
            s.RE(m_h(mpms3, vsm, SAMPLE, temperatures_K=[295.0], fields_Oe=RAMP_FIELDS,
                     field_rate_Oe_per_s=100.0, averaging_time_s=10.0, zero_field_between=False))
        assert "fault while moving to 6000" in str(failed.value.__cause__)
        stop = s.stop_doc()     # the catalog says why, not just "MoveStatus(...)"
        assert stop["exit_status"] == "fail" and "fault while moving to 6000.0" in stop["reason"]
        assert "Quenching" in stop["reason"]
        assert len(s.events("primary")) == 1
        assert_mpms3_safe(mpms3)
    finally:
        s.close()
        mpms3.close()


# -- laser interlock (Taiko, luminescence decay) -------------------------------------------------
def test_laser_interlock_suspends_the_decay_which_is_acquired_again_once(tmp_path):
    with SimulatedLab(speed=SPEED, seed=5, sample="mCB-Nd", mass_mg=5.0,
                      data_dir=tmp_path / "sim") as lab:
        ep = lab.endpoints["pl"]
        fl = connect_fl(ep)
        tcspc = connect_tcspc(ep["hydraharp"]["host"], ep["hydraharp"]["port"], rate_settle_s=0.01)
        laser = connect_taiko(ep["taiko"]["host"], ep["taiko"]["port"])
        laser.start_monitor(0.01)
        s = Session(lab, suspend_on=[laser])
        opened = []

        def interlock_once_the_decay_runs(name, doc):
            # the decay's run opens just before its (~14 instrument s) acquisition
            if name == "start" and not s.injectors:
                opened.append(s.elapsed())
                s.injectors.append(FaultInjector.for_lab(lab, FaultScript().at(
                    "laser_interlock", s.elapsed() + 3.0, target="laser", duration_s=10.0)))
        s.RE.subscribe(interlock_once_the_decay_runs)
        saved_at = []
        s.RE.subscribe(lambda name, doc: saved_at.append(s.elapsed()) if name == "event" else None)
        try:
            s.RE(lifetime_decay(fl, laser, tcspc, SAMPLE, emission_nm=1060.0,
                                expected_lifetime_ns=134.0, irf=None, peak_counts=2000))
            (event,) = s.events("primary")
            assert s.stop_doc()["exit_status"] == "success"
            (note,) = interruptions(s)
            assert "laser interlock open" in note
            _, closed = s.fault_window("laser_interlock")
            tacq = event["data"]["tcspc_acquisition_time_s"]
            # the whole acquisition was made again after the interlock closed, unlocked
            assert saved_at[-1] >= closed + tacq
            assert not event["data"]["laser_soft_lock"] and event["data"]["tcspc_total_counts"] > 0
            assert not laser.interlock_open.get()
            snap = lab.pl.laser.snapshot()
            assert snap.soft_locked and not snap.emitting
            assert lab.pl.housing.shutters == {"LAMP": "CLOSED", "DETECTOR": "CLOSED"}
        finally:
            s.close()
            for dev in (fl, tcspc, laser):
                dev.close()


# -- the pieces ---------------------------------------------------------------------------------
def test_a_point_saved_before_a_suspension_is_not_stored_again():
    """Without :func:`checkpoint_after_save` the rewind replays the point already saved."""
    def plan(reading):
        yield from bps.open_run()
        yield from bps.checkpoint()
        yield from bps.trigger_and_read([reading])
        yield from bps.sleep(0.3)                 # the fault arrives here, after the save
        yield from bps.trigger_and_read([reading])
        yield from bps.close_run()

    for installed, expected in ((False, [1, 1, 2]), (True, [1, 2])):
        trip, reading = Signal(name="trip", value=False), Signal(name="reading", value=1.0)
        RE = RunEngine(context_managers=[])
        suspender = SuspendBoolHigh(trip, sleep=0.01)
        if installed:
            install(RE, [suspender])
        else:
            RE.install_suspender(suspender)
        seq = []

        def on_doc(name, doc, trip=trip):
            if name == "event":
                seq.append(doc["seq_num"])
                if len(seq) == 1:
                    threading.Timer(0.05, trip.put, (True,)).start()
                    threading.Timer(0.25, trip.put, (False,)).start()
        RE(plan(reading), on_doc)
        assert seq == expected
    remove(RE, [suspender])
    assert checkpoint_after_save not in RE.preprocessors and not RE.suspenders


def test_checkpoints_follow_saves_and_runs_but_respect_cleared_regions():
    msgs = [Msg("open_run"), Msg("create", name="primary"), Msg("save"), Msg("clear_checkpoint"),
            Msg("create", name="primary"), Msg("save"), Msg("checkpoint"),
            Msg("create", name="primary"), Msg("save"), Msg("close_run")]
    out = [m.command for m in checkpoint_after_save(m for m in msgs)]
    assert out == ["open_run", "checkpoint", "create", "save", "checkpoint", "clear_checkpoint",
                   "create", "save", "checkpoint", "create", "save", "checkpoint", "close_run",
                   "checkpoint"]


def test_suspender_settings_and_a_running_monitor_are_required(ppms_lab):
    ppms = connect_ppms(ppms_lab.endpoints["ppms"]["resource"], timeout_s=0.3,
                        monitor_interval_s=None)
    try:
        with pytest.raises(ValueError, match=r"ppms: its monitor is not running"):
            campaign_suspenders([ppms])
        ppms.start_monitor(0.05)
        with pytest.raises(ValueError, match=r"helium_resume_percent=10 % is outside the "
                                             r"allowed range 20\.0\.\.100\.0 %"):
            campaign_suspenders([ppms], helium_min_percent=20, helium_resume_percent=10)
        with pytest.raises(ValueError, match=r"temperature_band_K=0 K .*0\.001\.\.50\.0 K"):
            campaign_suspenders([ppms], temperature_band_K=0)
        built = campaign_suspenders([ppms], helium_min_percent=15, resume_wait_s=7)
        assert sorted(type(s).__name__ for s in built) == [
            "SuspendCeil", "SuspendFloor", "SuspendOnMagnetFault", "SuspendWhileDisconnected"]
        assert all(s._sleep == 7 for s in built)
        assert any("helium level below 15 %" in s._tripped_message for s in built)
    finally:
        ppms.close()


def test_temperature_deviation_counts_only_once_the_setpoint_was_reached(ppms_lab):
    ppms = connect_ppms(ppms_lab.endpoints["ppms"]["resource"], timeout_s=0.3,
                        monitor_interval_s=0.02)
    seen = []                                          # (deviation K, temperature K)
    ppms.temperature_deviation_K.subscribe(
        lambda value, **kw: seen.append((value, ppms.temperature.readback.get())), run=False)
    try:
        assert wait_for(lambda: len(seen) > 3)
        assert max(d for d, _ in seen) == 0.0          # no setpoint sent by this client yet
        ppms.temperature.rate_K_per_min.put(20.0)
        seen.clear()
        ppms.temperature.set(280.0).wait(30)           # 15 K away: approaching is no deviation
        far = [d for d, t in seen if abs(t - 280.0) > 0.5]
        assert len(far) > 3 and max(far) == 0.0
        assert wait_for(lambda: 0.0 < ppms.temperature_deviation_K.get() < 0.5)   # stable
        injector = FaultInjector.for_lab(ppms_lab, FaultScript().at(
            "temperature_excursion", ppms_lab.clock.now() - ppms_lab.clock.start_unix,
            target="ppms", duration_s=50.0, delta_K=2.0))
        assert wait_for(lambda: ppms.temperature_deviation_K.get() > 1.5)
        assert wait_for(lambda: ppms.temperature_deviation_K.get() < 0.5)
        injector.stop()
    finally:
        ppms.close()
