"""PicoQuant socket-RPC clients (HydraHarp TCSPC, Taiko laser) under scripted wire faults.

Real drivers over loopback against the PL bench of a :class:`SimulatedLab`; faults come from
:class:`FaultInjector.for_lab` (targets ``harp`` and ``taiko``). A withheld reply means the
simulator executed the call and only its answer was lost, so the checks are on what the
simulator did: a fault-free lab with the same seed gives the reference histograms (the
simulator seeds each measurement's Poisson counts by (seed, measurement number), so equal
arrays mean the same measurement, complete, counted once). The light is the bench's PMT dark
counts (5e3 cps, detector shutter closed), about 2.5e4 counts per 5 s histogram.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from polling import wait_for
from spinlight.instruments.clib import NotRetried
from spinlight.instruments.errors import ConnectionLost
from spinlight.instruments.laser import connect_taiko
from spinlight.instruments.retry import RetryPolicy
from spinlight.instruments.tcspc import connect_tcspc
from spinlight.plans.suspenders import SuspendWhileDisconnected, campaign_suspenders
from spinlight.simulators.faults import FaultInjector, FaultScript
from spinlight.simulators.lab import SimulatedLab

SPEED, SEED, TACQ_S = 1000.0, 11, 5.0
SETTINGS = dict(binning=8, histogram_length_code=2)          # 256 ps x 4096 channels
REPLY_TIMEOUT_S = 0.2                                        # wall s per withheld reply
#: the simulator takes ~0.2 wall s to garble a 350 kB histogram reply: wait longer for it
HISTOGRAM_TIMEOUT_S = 1.0
#: short-outage policy: attempts at 0, 0.1, 0.3, 0.7, 1.5 s (budget 1.5 s)
SHORT = dict(retries=2, reconnect_attempts=5, reconnect_backoff_s=0.1)
#: long-outage policy: attempts at 0, 0.1, 0.3 s (budget 0.3 s)
LONG = dict(retries=2, reconnect_attempts=3, reconnect_backoff_s=0.1)


def elapsed(lab) -> float:
    return lab.clock.now() - lab.clock.start_unix



class Bench:
    """A lab, a TCSPC and (``laser=True``) a Taiko laser, with its monitor unless
    ``monitor=False``, and the faults injected into it (stopped, so lifted, on exit)."""

    def __init__(self, tmp_path, *, policy=SHORT, laser=False, monitor=True, seed=SEED,
                 timeout_s=REPLY_TIMEOUT_S):
        self.lab = SimulatedLab(speed=SPEED, seed=seed, sample="mCB-Nd", mass_mg=5.0,
                                data_dir=tmp_path / "sim")
        self.policy, self.want_laser, self.monitor = policy, laser, monitor
        self.timeout_s = timeout_s
        self.injectors: list[FaultInjector] = []
        self.tcspc = self.laser = None

    def __enter__(self) -> "Bench":
        ep = self.lab.start()["pl"]
        self.harp_server = self.lab.pl.tcspc.harp.server
        self.tcspc = connect_tcspc(ep["hydraharp"]["host"], ep["hydraharp"]["port"],
                                   rate_settle_s=0.01, timeout_s=self.timeout_s,
                                   retry=RetryPolicy(**self.policy), **SETTINGS)
        if self.want_laser:
            self.laser = self.connect_laser()
            if self.monitor:
                self.laser.start_monitor(0.01)
        return self

    def connect_laser(self):
        ep = self.lab.endpoints["pl"]["taiko"]
        return connect_taiko(ep["host"], ep["port"], timeout_s=REPLY_TIMEOUT_S,
                             retry=RetryPolicy(**self.policy))

    @property
    def driver(self):
        return self.tcspc.driver

    def inject(self, *faults, target="harp") -> FaultInjector:
        """Faults ``(kind, params)`` starting now, fired before this returns."""
        script = FaultScript()
        for kind, params in faults:
            script.at(kind, elapsed(self.lab), target=target, **params)
        inj = FaultInjector.for_lab(self.lab, script, start=False)
        self.injectors.append(inj)
        inj.poll()                       # due now: fire here, not in the watcher's time
        return inj.start()               # the watcher ends timed faults (outages)

    def on_reply_to(self, fn: str, *faults) -> None:
        """Inject ``faults`` on the HydraHarp's reply to the next ``fn`` call: the server
        records each call before it answers, and runs its fault hooks before replying."""
        server, start = self.harp_server, len(self.harp_server.calls)

        def hook():
            if len(server.calls) > start and server.calls[-1] == fn:
                server.faults.hooks.remove(hook)
                self.inject(*faults)
        server.faults.hooks.append(hook)

    def __exit__(self, *exc) -> None:
        for inj in self.injectors:
            inj.stop()
        for dev in (self.tcspc, self.laser):
            if dev is not None:
                dev.close()
        self.lab.stop()


GARBLED, TIMEOUT = ("garbled", {"count": 1}), ("timeout", {"count": 1})



@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Histograms of three fault-free acquisitions (measurements 1-3) with the same seed."""
    with Bench(tmp_path_factory.mktemp("reference")) as bench:
        results = [bench.driver.acquire(TACQ_S) for _ in range(3)]
    assert all(r.acquisition_time_s == TACQ_S for r in results)
    counts = [r.counts for r in results]
    assert all(c.sum() > 12_500 for c in counts) and not np.array_equal(counts[1], counts[2])
    return counts


def retries(seen):
    return [(f["command"], f["reason"]) for kind, f in seen if kind == "retry"]


# -- 1. garbled and lost replies during an acquisition ------------------------------------------
def test_garbled_and_lost_replies_give_the_fault_free_histograms(tmp_path, reference, faults):
    with Bench(tmp_path, timeout_s=HISTOGRAM_TIMEOUT_S) as bench:
        drv, calls = bench.driver, bench.harp_server.calls
        # Measurement 1: a fault on every step but StartMeas; each call is repeated alone.
        bench.on_reply_to("HH_ClearHistMem", GARBLED)        # the start unit is repeated
        drv.start(TACQ_S)
        bench.on_reply_to("HH_GetSyncRate", TIMEOUT)
        rates = drv.rates()
        bench.on_reply_to("HH_CTCStatus", GARBLED, GARBLED)  # garbled twice, then read
        drv.wait(10.0)
        bench.on_reply_to("HH_StopMeas", GARBLED, GARBLED)   # StopMeas executed 3 times
        bench.on_reply_to("HH_GetHistogram", GARBLED, TIMEOUT)
        first = drv.finish(rates)
        assert np.array_equal(first.counts, reference[0]) and first.acquisition_time_s == TACQ_S
        assert calls.count("HH_StartMeas") == 1 and calls.count("HH_GetHistogram") == 3
        # Measurement 2 starts but its StartMeas reply is lost: the unit stops it, clears its
        # counts and starts measurement 3, which is what the histogram holds, complete.
        bench.on_reply_to("HH_StartMeas", TIMEOUT)
        n = len(calls)
        second = drv.acquire(TACQ_S)
        assert calls[n:n + 5] == ["HH_ClearHistMem", "HH_StartMeas", "HH_StopMeas",
                                  "HH_ClearHistMem", "HH_StartMeas"]
        assert np.array_equal(second.counts, reference[2]) and second.acquisition_time_s == TACQ_S
    assert retries(faults) == [
        ("HH_StartMeas(0, 5000)", "garbled reply"), ("HH_GetSyncRate(0,)", "timeout"),
        ("HH_CTCStatus(0,)", "garbled reply"), ("HH_CTCStatus(0,)", "garbled reply"),
        ("HH_StopMeas(0,)", "garbled reply"), ("HH_StopMeas(0,)", "garbled reply"),
        ("HH_GetHistogram(0, 0, 0)", "garbled reply"), ("HH_GetHistogram(0, 0, 0)", "timeout"),
        ("HH_StartMeas(0, 5000)", "timeout")]
    assert {f["instrument"] for _, f in faults} == {"tcspc"}


# -- 2. short outages are ridden out --------------------------------------------------------------
def test_a_short_hydraharp_outage_during_an_acquisition_loses_no_counts(tmp_path, reference,
                                                                       faults):
    with Bench(tmp_path) as bench:
        drv = bench.driver
        drv.start(TACQ_S)
        t0 = time.monotonic()
        bench.inject(("disconnect", {"duration_s": 300.0}))   # 0.3 wall s, measurement runs on
        rates = drv.rates()
        drv.wait(10.0)
        result = drv.finish(rates)
        assert time.monotonic() - t0 >= 0.25
    assert np.array_equal(result.counts, reference[0]) and result.acquisition_time_s == TACQ_S
    kinds = [k for k, _ in faults]
    assert kinds[0] == "connection_lost" and kinds[-1] == "reconnected"
    assert "gave_up" not in kinds and {f["instrument"] for _, f in faults} == {"tcspc"}


def test_a_short_taiko_outage_is_ridden_out_and_seen_by_the_monitor(tmp_path, faults):
    with Bench(tmp_path, laser=True) as bench:
        laser, lab = bench.laser, bench.lab
        seen = []
        laser.connected.subscribe(lambda value, **kw: seen.append(value), run=False)
        assert any(isinstance(s, SuspendWhileDisconnected) for s in campaign_suspenders([laser]))
        bench.inject(("disconnect", {"duration_s": 300.0}), target="taiko")
        assert wait_for(lambda: laser.connected.get() is False, 2.0)   # the monitor saw it
        laser.repetition_rate_hz.put(500_000)        # waits the outage out on the back-off
        assert lab.pl.laser.snapshot().repetition_rate_hz == 500_000
        assert laser.repetition_rate_hz.get() == 500_000
        assert wait_for(lambda: laser.connected.get() is True, 2.0)
        assert any(seen[seen.index(False):]) and not laser.reconnect_failed.get()
    kinds = [k for k, _ in faults]
    assert kinds.count("connection_lost") == 1 and kinds.count("reconnected") == 1
    assert "gave_up" not in kinds and {f["instrument"] for _, f in faults} == {"laser"}


# -- 3. a longer outage ends in ConnectionLost within the budget ---------------------------------
@pytest.mark.parametrize("target", ["harp", "taiko"])
def test_an_outage_longer_than_the_budget_raises_connection_lost_in_time(tmp_path, faults,
                                                                         target):
    budget = RetryPolicy(**LONG).budget_s
    assert budget == pytest.approx(0.3)
    with Bench(tmp_path, policy=LONG, laser=target == "taiko") as bench:
        name, call = ("tcspc", bench.driver.resolution_ps) if target == "harp" else \
            ("laser", bench.laser.driver.get_repetition_rate_hz)
        t0 = time.monotonic()             # the monitor may see the outage first: from here
        inj = bench.inject(("disconnect", {"duration_s": 10_000.0}), target=target)   # 10 wall s
        with pytest.raises(ConnectionLost, match=rf"^{name}: connection lost and not restored "
                                                 r"after 3 reconnection attempts") as err:
            call()
        took = time.monotonic() - t0
        assert budget <= took < budget + 0.5 and err.value.instrument == name
        if target == "taiko":                      # the monitor reports the give-up
            assert wait_for(lambda: bench.laser.reconnect_failed.get() is True, 2.0)
            assert bench.laser.connected.get() is False
        inj.stop()                                 # the outage ends: one attempt, at once
        assert call() > 0
        if target == "taiko":
            assert wait_for(lambda: bench.laser.connected.get() is True, 2.0)
            assert not bench.laser.reconnect_failed.get()
    assert [k for k, _ in faults] == ["connection_lost", "reconnect_failed", "reconnect_failed",
                                      "gave_up", "reconnected"]
    assert {f["instrument"] for _, f in faults} == {name}


# -- 4. calls that cannot be repeated raise instead -----------------------------------------------
def test_a_call_that_cannot_be_repeated_raises_not_retried(tmp_path, faults):
    with Bench(tmp_path) as bench:
        lib, calls = bench.driver.lib, bench.harp_server.calls
        bench.driver.acquire(TACQ_S)
        assert lib.HH_GetHistogram(0, 0, 0).sum() > 12_500
        bench.on_reply_to("HH_GetHistogram", TIMEOUT)
        with pytest.raises(NotRetried, match=r"HH_GetHistogram was interrupted \(no reply within "
                                             r"0\.2 s\) and is not retried: with clear=1 the "
                                             r"memory was cleared .*counts are gone"):
            lib.HH_GetHistogram(0, 0, 1)
        assert lib.HH_GetHistogram(0, 0, 0).sum() == 0      # why: the lost call cleared them
        n = calls.count("HH_StartMeas")
        bench.on_reply_to("HH_StartMeas", GARBLED)
        with pytest.raises(NotRetried, match=r"HH_StartMeas was interrupted \(reply is not (a )?"
                                             r"JSON.* and is not retried: a measurement may have"):
            lib.HH_StartMeas(0, 1000)
        assert calls.count("HH_StartMeas") == n + 1          # sent once, never repeated
        assert retries(faults) == []


def test_a_lost_open_device_reply_is_recovered_by_opening_again(tmp_path, faults):
    with Bench(tmp_path, laser=True, monitor=False) as bench:
        ep, calls = bench.lab.endpoints["pl"]["hydraharp"], bench.harp_server.calls
        bench.tcspc.close()                                  # closes the device too
        n = len(calls)
        bench.on_reply_to("HH_OpenDevice", TIMEOUT)          # opened, the answer lost
        bench.tcspc = connect_tcspc(ep["host"], ep["port"], timeout_s=REPLY_TIMEOUT_S,
                                    rate_settle_s=0.01, retry=RetryPolicy(**SHORT), **SETTINGS)
        assert calls[n:n + 4] == ["HH_OpenDevice", "HH_CloseDevice", "HH_OpenDevice",
                                  "HH_Initialize"]
        assert bench.driver.serial == "1043210" and bench.lab.pl.tcspc.harp.opened
        bench.on_reply_to("HH_OpenDevice", GARBLED)
        with pytest.raises(NotRetried, match="HH_OpenDevice was interrupted .* not retried"):
            bench.driver.lib.HH_OpenDevice(0)                # alone: never repeated
        # The Taiko alike: PDLM_OpenDevice's reply lost at connect.
        taiko = bench.lab.pl.tcspc.taiko
        bench.laser.close()
        n = len(taiko.server.calls)
        bench.inject(TIMEOUT, target="taiko")                # the next reply: OpenDevice's
        bench.laser = bench.connect_laser()
        assert taiko.server.calls[n:n + 3] == ["PDLM_OpenDevice", "PDLM_CloseDevice",
                                               "PDLM_OpenDevice"]
        assert taiko.opened and bench.laser.driver.serial == "1032415"
    assert retries(faults) == [("open", "timeout")] * 2
    assert [f["instrument"] for k, f in faults] == ["tcspc", "laser"]


def test_laser_settings_survive_lost_and_garbled_replies(tmp_path, faults):
    with Bench(tmp_path, laser=True, monitor=False) as bench:
        laser, state = bench.laser, bench.lab.pl.laser
        bench.inject(TIMEOUT, GARBLED, target="taiko")      # the setter's replies
        laser.intensity_permille.put(250)
        bench.inject(GARBLED, TIMEOUT, target="taiko")
        laser.repetition_rate_hz.put(200_000)
        with laser.acquisition():
            bench.inject(TIMEOUT, target="taiko")           # relocking: SetSoftLock(1)
        assert state.snapshot().intensity_permille == 250 == laser.intensity_permille.get()
        assert state.snapshot().repetition_rate_hz == 200_000 == laser.repetition_rate_hz.get()
        assert state.snapshot().soft_locked and laser.soft_lock.get() is True
    assert retries(faults) == [
        ("PDLM_SetPulsePowerPermille(0, 250)", "timeout"),
        ("PDLM_SetPulsePowerPermille(0, 250)", "garbled reply"),
        ("PDLM_SetFrequency(0, 200000)", "garbled reply"), ("PDLM_SetFrequency(0, 200000)", "timeout"),
        ("PDLM_SetSoftLock(0, 1)", "timeout")]
