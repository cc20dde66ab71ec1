"""A PicosecondLaser on a PiLas (pyserial ``socket://``) under scripted wire faults.

Real driver over loopback against the PiLas simulator of a :class:`TCSPCLab`; faults come from a
:class:`FaultInjector` on its server (garbled reply, withheld reply, disconnect). A withheld
reply means the simulator executed the command and only its answer was lost, so the checks
are on what the simulator received and on the shared laser state.
"""

from __future__ import annotations

import time

import pytest

from polling import wait_for
from spinlight.campaign_devices import _laser
from spinlight.instruments.errors import ConnectionLost
from spinlight.instruments.laser import connect_pilas
from spinlight.instruments.retry import RetryPolicy
from spinlight.simulators.clock import VirtualClock
from spinlight.simulators.faults import FaultInjector, FaultScript
from spinlight.simulators.tcspc_lab import TCSPCLab
from spinlight.simulators.tcspc_light import ExponentialSource

SPEED = 1000.0                     # instrument s per wall s
REPLY_TIMEOUT_S = 0.2              # wall s per withheld reply
#: short-outage policy: attempts at 0, 0.1, 0.3, 0.7, 1.5, 3.1 s (budget 3.1 s)
SHORT = dict(retries=2, reconnect_attempts=6, reconnect_backoff_s=0.1)
#: long-outage policy: attempts at 0, 0.1, 0.3 s (budget 0.3 s)
LONG = dict(retries=2, reconnect_attempts=3, reconnect_backoff_s=0.1)
GARBLED, TIMEOUT = ("garbled", {"count": 1}), ("timeout", {"count": 1})


class Bench:
    """The PiLas simulator and a PiLas-backed laser (monitor at 10 ms unless ``monitor=False``);
    injected faults are stopped (so lifted) on exit."""

    def __init__(self, *, policy=SHORT, monitor=True):
        self.clock = VirtualClock(SPEED, freeze_when_idle=True)
        self.lab = TCSPCLab(self.clock, ExponentialSource(200.0, 0.02), seed=3)
        self.policy, self.monitor = policy, monitor
        self.injectors: list[FaultInjector] = []
        self.laser = None

    def __enter__(self) -> "Bench":
        url = self.lab.start()["pilas"]["url"]
        self.laser = connect_pilas(url, name="pilas", timeout_s=REPLY_TIMEOUT_S,
                                   retry=RetryPolicy(**self.policy))
        if self.monitor:
            self.laser.start_monitor(0.01)
        return self

    def inject(self, *faults, duration_s: float = 0.0) -> FaultInjector:
        """Faults ``(kind, params)`` starting now (instrument time), fired before this returns."""
        now = self.clock.now() - self.clock.start_unix
        script = FaultScript()
        for kind, params in faults:
            script.at(kind, now, target="pilas", duration_s=duration_s, **params)
        inj = FaultInjector(self.clock, {"pilas": self.lab.pilas}, script, start=False)
        self.injectors.append(inj)
        inj.poll()
        return inj.start()               # the watcher ends a timed outage

    def __exit__(self, *exc) -> None:
        for inj in self.injectors:
            inj.stop()
        if self.laser is not None:
            self.laser.close()
        self.lab.stop()
        self.clock.stop()


def retries(faults):
    return [(f["command"], f["reason"]) for kind, f in faults if kind == "retry"]


def test_garbled_and_withheld_replies_are_retried_and_the_setting_lands(faults):
    with Bench(monitor=False) as bench:
        laser, received, state = bench.laser, bench.lab.pilas.received, bench.lab.laser
        n = len(received)
        bench.inject(GARBLED, TIMEOUT)                   # the setter's first two replies
        laser.repetition_rate_hz.put(50_000)
        bench.inject(TIMEOUT, GARBLED)                   # its read-back's
        assert laser.driver.get_repetition_rate_hz() == 50_000.0
        assert received[n:] == ["f=50000"] * 3 + ["f?"] * 4
        with laser.acquisition():
            bench.inject(GARBLED)                        # relocking: ld=0
        assert state.snapshot().repetition_rate_hz == 50_000 == laser.repetition_rate_hz.get()
        assert state.snapshot().soft_locked and laser.soft_lock.get() is True
        assert laser.connected.get() is True
    assert retries(faults) == [("f=50000", "garbled reply"), ("f=50000", "timeout"),
                               ("f?", "timeout"), ("f?", "garbled reply"),
                               ("ld=0", "garbled reply")]
    assert {f["instrument"] for _, f in faults} == {"pilas"}


def test_a_disconnect_of_two_seconds_is_ridden_out_and_seen_by_the_monitor(faults):
    with Bench() as bench:
        laser, state = bench.laser, bench.lab.laser
        seen = []
        laser.connected.subscribe(lambda value, **kw: seen.append(value), run=False)
        t0 = time.monotonic()
        bench.inject(("disconnect", {}), duration_s=2.0 * SPEED)          # 2 wall s
        assert wait_for(lambda: laser.connected.get() is False, 2.0)    # the monitor saw it
        laser.intensity_permille.put(300)          # waits the outage out on the back-off
        assert time.monotonic() - t0 >= 1.9
        assert state.snapshot().intensity_permille == 300 == laser.intensity_permille.get()
        assert wait_for(lambda: laser.connected.get() is True, 2.0)
        assert seen[0] is False and seen[-1] is True and not laser.reconnect_failed.get()
        assert laser.locked.get() is True and laser.emission.get() is False
    kinds = [k for k, _ in faults]
    assert kinds.count("connection_lost") == 1 and kinds.count("reconnected") == 1
    assert "gave_up" not in kinds and {f["instrument"] for _, f in faults} == {"pilas"}


def test_an_outage_longer_than_the_budget_fails_naming_the_laser_and_sets_reconnect_failed(
        faults):
    budget = RetryPolicy(**LONG).budget_s
    assert budget == pytest.approx(0.3)
    with Bench(policy=LONG) as bench:
        laser = bench.laser
        t0 = time.monotonic()
        inj = bench.inject(("disconnect", {}), duration_s=10.0 * SPEED)   # 10 wall s
        with pytest.raises(ConnectionLost, match=r"^pilas: connection lost and not restored "
                                                 r"after 3 reconnection attempts") as err:
            laser.repetition_rate_hz.put(20_000)
        took = time.monotonic() - t0
        assert budget <= took < budget + 1.0 and err.value.instrument == "pilas"
        assert wait_for(lambda: laser.reconnect_failed.get() is True, 2.0)
        assert laser.connected.get() is False
        inj.stop()                                 # the outage ends: one attempt, at once
        laser.repetition_rate_hz.put(20_000)
        assert bench.lab.laser.snapshot().repetition_rate_hz == 20_000
        assert wait_for(lambda: laser.connected.get() is True, 2.0)
        assert not laser.reconnect_failed.get()
    assert [k for k, _ in faults] == ["connection_lost", "reconnect_failed", "reconnect_failed",
                                      "gave_up", "reconnected"]
    assert {f["instrument"] for _, f in faults} == {"pilas"}


def test_the_campaign_gives_a_pilas_its_retry_policy():
    clock = VirtualClock(SPEED, freeze_when_idle=True)
    lab = TCSPCLab(clock, ExponentialSource(200.0, 0.02), seed=3)
    policy = RetryPolicy(**LONG)
    try:
        (laser,) = _laser("pilas", url=lab.start()["pilas"]["url"], timeout_s=1.0, retry=policy)
        try:
            assert laser.driver.retry is policy
        finally:
            laser.close()
    finally:
        lab.stop()
        clock.stop()
