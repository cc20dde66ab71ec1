"""One measurement system, one queue: rows due at instrument times, written by one worker.

A simulated MultiVu instrument measures one thing at a time (VSM point, ac point, ...) and
appends each result to its ``.dat`` file when the measurement's instrument time is over. This
module holds the part every measurement kind shares:

- :meth:`MeasurementQueue.reserve` serialises measurements (a new one starts when the previous
  one ends) and :meth:`MeasurementQueue.next_number` hands out the ``Measurement Number``,
  shared by every row of the file;
- :meth:`MeasurementQueue.next_index` counts requests per stream, so a row's noise can come from
  ``numpy.random.default_rng([seed, stream..., index])`` and is the same in every run whatever
  the wall-clock scheduling;
- :meth:`MeasurementQueue.submit` queues a row builder due at an instrument time; *sources*
  (e.g. continuous VSM logging) offer rows on their own schedule;
- one worker thread waits on the :class:`~.clock.VirtualClock`, builds due rows in time order
  under the simulator lock and writes them with ``DatWriter.write_row`` (flushed and fsynced
  before the next row is built);
- :func:`read_window` samples thermometer and magnet over a measurement window (the mean,
  minimum and maximum MultiVu writes).
"""

from __future__ import annotations

import heapq
import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from .clock import ClockStopped

log = logging.getLogger(__name__)

SAMPLES_PER_WINDOW = 16       # thermometer/field readings averaged per row


class RowSource(Protocol):
    """Rows on a source's own schedule (called with the simulator lock held)."""

    def next_due(self) -> float | None:
        """Instrument time (Unix s) the next row can be written, or None."""

    def take(self) -> dict:
        """Build that row (``DatWriter.write_row`` values)."""


@dataclass(order=True)
class _Job:
    due: float                                   # instrument time the row can be written
    seq: int
    build: Callable[[], dict] = field(compare=False)


class MeasurementQueue:
    """Schedules rows on instrument time and writes them from one worker thread.

    ``clock`` is the simulator's :class:`~.clock.VirtualClock`, ``lock`` the simulator lock
    (held while requests are queued and rows are built), ``writer`` its ``DatWriter``.
    """

    def __init__(self, clock, lock, writer, *, name: str = "measurements"):
        self.clock, self.lock, self.writer = clock, lock, writer
        self.busy_until = float("-inf")          # instrument time the system is free again
        self._jobs: list[_Job] = []
        self._sources: list[RowSource] = []
        self._seq = 0
        self._number = 0                         # Measurement Number (shared by all rows)
        self._indices: dict[str, int] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # -- bookkeeping (caller holds the lock) -------------------------------------------------
    def reserve(self, t: float, duration_s: float) -> float:
        """Book the measurement system for ``duration_s`` from ``t`` or, if busy, from the end
        of the previous measurement; returns the start time."""
        start = max(t, self.busy_until)
        self.busy_until = start + duration_s
        return start

    def next_number(self) -> int:
        """The next ``Measurement Number`` of the file."""
        self._number += 1
        return self._number

    def next_index(self, stream: str) -> int:
        """Request counter of one stream (1, 2, ...), for per-request noise seeds."""
        self._indices[stream] = self._indices.get(stream, 0) + 1
        return self._indices[stream]

    def submit(self, due: float, build: Callable[[], dict]) -> None:
        """Queue a row: ``build()`` runs under the lock once instrument time reaches ``due``."""
        self._seq += 1
        heapq.heappush(self._jobs, _Job(due, self._seq, build))

    def add_source(self, source: RowSource) -> None:
        self._sources.append(source)

    @property
    def pending(self) -> int:
        """Rows queued and not yet written."""
        return len(self._jobs)

    @property
    def last_number(self) -> int:
        """The last Measurement Number handed out (0 before any)."""
        return self._number

    # -- worker -------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stopping = True
        self.clock.notify()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _next_due(self) -> tuple[float, object] | None:
        best = (self._jobs[0].due, None) if self._jobs else None
        for s in self._sources:
            due = s.next_due()
            if due is not None and (best is None or due < best[0]):
                best = (due, s)
        return best

    def _predicate(self):
        if self._stopping:
            return True
        with self.lock:
            nxt = self._next_due()
        if nxt is None:
            return False
        return True if nxt[0] <= self.clock.now() else nxt[0]

    def _run(self) -> None:
        try:
            while not self._stopping:
                self.clock.wait_until(self._predicate, None)
                while not self._stopping:
                    with self.lock:
                        nxt = self._next_due()
                        if nxt is None or nxt[0] > self.clock.now():
                            break
                        src = nxt[1]
                        row = heapq.heappop(self._jobs).build() if src is None else src.take()
                    self.writer.write_row(row)   # fsynced before the next row is built
        except ClockStopped:
            pass
        except Exception:          # keep the server alive; the failure is in the log
            log.exception("measurement worker failed")


@dataclass(frozen=True)
class Window:
    """Thermometer and magnet over a measurement window (K, Oe; times Unix s)."""

    t0: float
    t1: float
    t_mid: float
    T_mean: float
    T_min: float
    T_max: float
    H_mean: float
    H_min: float
    H_max: float


def read_window(temperature, magnet, t0: float, t1: float, rng, t_mid: float | None = None,
                n: int = SAMPLES_PER_WINDOW) -> Window:
    """``n`` thermometer and field readings over ``[t0, t1]`` with reading noise from ``rng``
    (temperature 2e-4 relative + 1 mK; field 0.02 Oe + 2 ppm)."""
    ts = np.linspace(t0, t1, n)
    T_true = np.array([temperature.value(t) for t in ts])
    H_true = np.array([magnet.value(t) for t in ts])
    T = T_true + rng.normal(0.0, 1.0, ts.size) * (2e-4 * T_true + 1e-3)
    H = H_true + rng.normal(0.0, 1.0, ts.size) * (0.02 + 2e-6 * np.abs(H_true))
    return Window(t0, t1, 0.5 * (t0 + t1) if t_mid is None else t_mid,
                  float(T.mean()), float(T.min()), float(T.max()),
                  float(H.mean()), float(H.min()), float(H.max()))
