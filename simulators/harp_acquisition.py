"""The histogram acquisition engine of the simulated HydraHarp 400 (:mod:`.harp_sim`).

Holds the histogram memory (``uint64`` per input channel, clipped at 2**32-1 like the
instrument's ``uint32`` bins) and at most one measurement of input 0, timed on the
:class:`.clock.VirtualClock` (instrument s):

- :meth:`HistogramAcquisition.start` plans a run of ``tacq_s`` at fixed expected rates
  (counts/s per channel, the light at start). With stop-on-overflow the run ends when the
  fullest channel reaches ``stopcount`` (at ``stopcount / its rate``); that channel then holds
  exactly ``stopcount``, the others are clipped to it and :attr:`overflow` is set.
  Without it (``stop_ovfl = 0``) channels clip at 2**32-1 and the flag says whether one did.
- A run is committed to the memory lazily (:meth:`settle`, called before every library call)
  once its end has passed, or at once by :meth:`stop`.
- Counts are Poisson samples of ``rate × elapsed`` from a generator seeded by ``(seed,
  measurement number, stream)`` (stream 0 the committed run, 1 a live view), so the same seed
  and call sequence give the same histograms whatever the wall-clock scheduling.

Not thread-safe on its own: the simulator calls it under its lock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spinlight.instruments import picoquant_defs as hh

U32_MAX = np.iinfo(np.uint32).max


@dataclass
class Measurement:
    number: int
    start: float              # instrument time (Unix s)
    end: float                # planned end (tacq or overflow)
    rate: np.ndarray          # expected counts/s per channel of input 0
    overflow_channel: int     # channel that reaches stopcount at `end`, or -1
    stopcount: int
    stopped_at: float | None = None

    def elapsed(self, now: float) -> float:
        return max(0.0, min(now, self.end, self.stopped_at or math.inf) - self.start)


class HistogramAcquisition:
    """Histogram memory of ``n_channels`` inputs and the measurement running on input 0."""

    def __init__(self, clock, seed: int, n_channels: int):
        self.clock, self.seed, self.n_channels = clock, int(seed), int(n_channels)
        self._n_meas = 0          # never reset: keys the counts of each measurement
        self.reset()

    def reset(self) -> None:
        """Initialize's state: empty memory, no run, stop at 2**32-1 counts."""
        self.stop_ovfl, self.stopcount = 1, hh.HH_STOPCNTMAX
        self.hist = np.zeros((self.n_channels, hh.HH_MAXHISTLEN), np.uint64)
        self.overflow = False
        self.meas: Measurement | None = None

    @property
    def running(self) -> bool:
        m = self.meas
        return m is not None and m.stopped_at is None

    def busy_until(self) -> float:
        """Planned end of the running measurement (instrument s), -inf when none. Attribute
        reads only: the clock calls it and it must not call clock.now()."""
        m = self.meas
        return m.end if (m is not None and m.stopped_at is None) else -math.inf

    def start(self, rate: np.ndarray, tacq_s: float) -> None:
        """Start a run of ``tacq_s`` instrument s at ``rate`` (counts/s per channel)."""
        now = self.clock.now()
        duration, channel = tacq_s, -1
        if self.stop_ovfl and rate.size and rate.max() > 0:
            t_full = self.stopcount / rate.max()
            if t_full < duration:
                duration, channel = t_full, int(rate.argmax())
        self._n_meas += 1
        self.overflow = False
        self.meas = Measurement(self._n_meas, now, now + duration, rate, channel, self.stopcount)

    def stop(self) -> None:
        """End a running measurement now and commit what it counted."""
        m = self.meas
        if m is not None and m.stopped_at is None:
            m.stopped_at = self.clock.now()
            self._commit(m)

    def abort(self) -> None:
        """Forget the measurement without committing it (the device was closed)."""
        self.meas = None

    def settle(self) -> None:
        """Commit a measurement whose time is over to the histogram memory."""
        m = self.meas
        if m is None or m.stopped_at is not None:
            return
        if self.clock.now() < m.end:
            return
        m.stopped_at = m.end
        self._commit(m)

    def clear(self) -> None:
        self.hist.fill(0)

    def histogram(self, ch: int, clear: bool) -> np.ndarray:
        """Channel ``ch`` of the memory as ``uint32`` (plus the live counts of a running
        measurement on input 0); ``clear`` empties that channel afterwards."""
        out = self.hist[ch].copy()
        m = self.meas
        if ch == 0 and m is not None and m.stopped_at is None:    # live view of a run
            part = self._sample(m, m.elapsed(self.clock.now()), 1)
            out[:part.size] = np.minimum(out[:part.size] + part, U32_MAX)
        if clear:
            self.hist[ch].fill(0)
        return out.astype(np.uint32)

    def elapsed_ms(self) -> float:
        """Instrument ms the last (or running) measurement has counted."""
        return 0.0 if self.meas is None else 1000.0 * self.meas.elapsed(self.clock.now())

    # -- counts ----------------------------------------------------------------------------------
    def _sample(self, meas: Measurement, elapsed: float, stream: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, meas.number, stream])
        counts = rng.poisson(meas.rate * elapsed).astype(np.uint64)
        limit = meas.stopcount if meas.overflow_channel >= 0 else U32_MAX
        if meas.overflow_channel >= 0 and elapsed >= meas.end - meas.start:
            counts[meas.overflow_channel] = meas.stopcount    # the channel that stopped it
        return np.minimum(counts, limit)

    def _commit(self, m: Measurement) -> None:
        counts = self._sample(m, m.elapsed(m.stopped_at), 0)
        n = counts.size
        self.hist[0, :n] = np.minimum(self.hist[0, :n] + counts, U32_MAX)
        clipped = m.overflow_channel >= 0 and m.stopped_at >= m.end
        self.overflow = bool(clipped or (self.stop_ovfl == 0 and (self.hist[0] >= U32_MAX).any()))
