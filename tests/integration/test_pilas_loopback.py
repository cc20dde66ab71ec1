"""PiLas driver and Ophyd laser <- pyserial socket:// <- PiLas simulator, sharing its laser with
the HydraHarp simulator; and the lock rule inside a Bluesky run."""

from __future__ import annotations

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import pytest
import serial
from bluesky import RunEngine

from spinlight.instruments.laser import connect_pilas
from spinlight.instruments.tcspc import connect_tcspc
from spinlight.simulators.clock import VirtualClock
from spinlight.simulators.tcspc_lab import TCSPCLab
from spinlight.simulators.tcspc_light import ExponentialSource


@pytest.fixture
def bench():
    clock = VirtualClock(1000.0, freeze_when_idle=True)
    lab = TCSPCLab(clock, ExponentialSource(200.0, 0.02), seed=2)
    ep = lab.start()
    yield clock, lab, ep
    lab.stop()
    clock.stop()


@pytest.fixture
def laser(bench):
    dev = connect_pilas(bench[2]["pilas"]["url"], name="pilas", timeout_s=2.0)
    yield dev
    dev.close()


def test_wire_format(bench):
    p = serial.serial_for_url(bench[2]["pilas"]["url"], baudrate=19200, timeout=2.0)

    def ask(cmd: bytes, lines: int = 1) -> bytes:
        p.write(cmd + b"\n")
        return b"".join(p.read_until(b"\n") for _ in range(lines))

    try:
        assert ask(b"ld?") == b"pulsed laser emission: off\n"
        assert ask(b"f=1000") == b"done\n"
        assert ask(b"f?") == b"int. frequency:\t       1000 Hz\n"
        assert ask(b"tune=455") == b"done\n"
        assert ask(b"tune?") == b"tune value:\t\t     45.50 %\n"
        assert ask(b"tm?") == b"tune mode:\tmanual\n"
        assert ask(b"lht?") == "laser head temp.:\t     25.0 °C\n".encode("latin-1")
        assert ask(b"ldtemp?") == b"LD temp.:\t\tgood\n"
        version = ask(b"version?", 8).decode().splitlines()
        assert len(version) == 8 and version[2] == "center wavelength: 375 nm"
        assert ask(b"f=10") == b"error: f out of range 25..40000000\n"
        assert ask(b"bogus") == b"error: unknown command 'bogus'\n"
    finally:
        p.close()
    s = bench[1].laser.snapshot()
    assert (s.repetition_rate_hz, s.intensity_permille, s.soft_locked) == (1000.0, 455, True)


def test_device_settings_reach_the_shared_laser_and_the_lock_rule_holds(bench, laser):
    state = bench[1].laser
    assert laser.wavelength_nm.get() == 375.0 and laser.mode.get() == "pulsed"
    laser.repetition_rate_hz.put(50_000)
    laser.intensity_permille.put(800)
    s = state.snapshot()
    assert (s.repetition_rate_hz, s.intensity_permille, s.soft_locked) == (50_000.0, 800, True)
    with pytest.raises(ValueError, match="repetition_rate_hz=50000000 Hz .*25.0..40000000.0 Hz"):
        laser.repetition_rate_hz.put(50_000_000)
    with pytest.raises(ValueError, match=r"mode='cw' is not allowed; choose one of \['pulsed'\]"):
        laser.mode.put("cw")
    with pytest.raises(ValueError, match="soft_lock=False is not allowed outside an acquisition"):
        laser.soft_lock.put(False)
    assert state.snapshot().soft_locked
    with laser.acquisition():
        assert not state.snapshot().soft_locked and laser.emission.get() is True
    assert state.snapshot().soft_locked and laser.emission.get() is False
    with pytest.raises(RuntimeError, match="boom"):
        with laser.acquisition():
            raise RuntimeError("boom")
    assert state.snapshot().soft_locked                  # relocked after an error too


def test_bluesky_run_unlocks_by_staging_and_relocks_at_the_end(bench, laser):
    clock, lab, ep = bench
    det = connect_tcspc(ep["hydraharp"]["host"], ep["hydraharp"]["port"], rate_settle_s=0.01,
                        binning=10, histogram_length_code=2)       # 1.024 ns x 4096 channels
    try:
        laser.repetition_rate_hz.put(200_000)                      # set over serial ...
        laser.lifetime_ns.put(200.0)                               # 5 x 200 ns <= 5 µs period
        det.tacq_s.put(5.0)
        events: list[dict] = []
        RE = RunEngine({})
        RE(bp.count([det, laser], num=2), lambda name, doc: events.append(doc) if name == "event" else None)
        assert len(events) == 2
        for ev in events:
            assert ev["data"]["pilas_emission"] is True and ev["data"]["pilas_soft_lock"] is False
            assert ev["data"]["tcspc_sync_rate"] == 200_000.0     # ... seen by the HydraHarp
            assert ev["data"]["tcspc_total_counts"] > 0
        assert lab.laser.snapshot().soft_locked and laser.soft_lock.get() is True

        def failing():
            yield from bps.open_run()
            yield from bps.stage(laser)
            yield from bps.trigger_and_read([det, laser])
            raise RuntimeError("plan failed")

        with pytest.raises(RuntimeError, match="plan failed"):
            RE(failing())
        assert lab.laser.snapshot().soft_locked                   # the RunEngine unstaged it
        RE(bp.count([det], num=1), lambda name, doc: events.append(doc) if name == "event" else None)
        assert events[-1]["data"]["tcspc_total_counts"] == 0      # without staging: dark
    finally:
        det.close()
