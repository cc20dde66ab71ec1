"""Shared test helpers: the spectrofluorometer connected to a PL bench's simulators over
loopback, its monochromators polled fast (the virtual clock makes moves short in wall time)."""

from __future__ import annotations

from contextlib import contextmanager

from spinlight.instruments.spectrofluorometer import connect_spectrofluorometer
from spinlight.simulators.clock import VirtualClock
from spinlight.simulators.pl_bench import PLBench
from spinlight.simulators.samples import get_luminescence


def connect_fl(ep, **kw):
    """The Spectrofluorometer on a bench's endpoints ``ep`` (``PLBench.start()``)."""
    fl = connect_spectrofluorometer(ep["excitation_mono"]["url"], ep["emission_mono"]["url"],
                                    ep["housing"]["url"], **kw)
    for mono in (fl.excitation, fl.emission):
        mono.wavelength.poll_interval_s.put(0.005)
    return fl


@contextmanager
def fluorometer_bench(preset: str, *, seed: int, speed: float = 2000.0):
    """(bench, fluorometer) on a fresh PL bench of luminescence ``preset``; closed after."""
    clock = VirtualClock(speed, freeze_when_idle=True)
    pl = PLBench(clock, get_luminescence(preset), seed=seed)
    fl = connect_fl(pl.start())
    try:
        yield pl, fl
    finally:
        fl.close()
        pl.stop()
        clock.stop()
