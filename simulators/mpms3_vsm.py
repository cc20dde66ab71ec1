"""Simulated MPMS3 VSM: single measurements and continuous logging into a real-layout ``.dat``.

Determinism: a single (settle-mode) measurement draws its noise from
``numpy.random.default_rng([seed, r])`` where ``r`` is the request index (1, 2, ...; equal to
the ``Measurement Number`` whenever no log rows are interleaved); taken in a Stable state its
values depend only on that state and ``r``. Log rows sample the sweep on a grid anchored at the
sweep's own start, ``t_anchor + k * interval`` (k = 1, 2, ...), with noise from
``default_rng([seed, 2, anchor_index, k])``, so the k-th row of a sweep is the same in every
run. Only the wall-clock moment a row reaches the file depends on scheduling.
"""

from __future__ import annotations

import heapq
import math
import logging
import threading
from dataclasses import dataclass, field

import numpy as np

from .clock import ClockStopped

log = logging.getLogger(__name__)

VSM_OVERHEAD_S = 4.0          # centring/settling around each VSM average (timing.md)
VSM_PRE_S = 2.0               # part of the overhead before the averaging window
VSM_FREQUENCY_HZ = 13.0       # VSM drive as written by a real MPMS3 (.dat "Frequency (Hz)")
VSM_PEAK_AMPLITUDE_MM = 2.0
SAMPLES_PER_AVERAGE = 16      # thermometer/field readings averaged per row
AVERAGING_LIMITS_S = (0.1, 1000.0)
LOG_INTERVAL_LIMITS_S = (1.0, 86400.0)


@dataclass(order=True)
class _Job:
    due: float                          # instrument time the row can be written
    seq: int
    kind: str = field(compare=False)    # "single" or "log"
    args: tuple = field(compare=False)


@dataclass
class _LogSchedule:
    index: int
    anchor: float
    interval_s: float
    averaging_s: float
    end: float | None = None
    next_k: int = 1

    def grid_time(self, k: int) -> float:
        return self.anchor + k * self.interval_s


class VsmEngine:
    """Schedules VSM rows on instrument time and writes them from one worker thread.

    ``sim`` provides ``clock``, ``lock``, ``temperature``, ``magnet``, ``chamber``, ``sample``,
    ``mass_mg``, ``seed`` and ``writer`` (a ``DatWriter``).
    """

    def __init__(self, sim):
        self.sim = sim
        self._jobs: list[_Job] = []
        self._seq = 0
        self._requests = 0
        self._number = 0                 # Measurement Number column (shared by all rows)
        self._busy_until = float("-inf")
        self._logs: list[_LogSchedule] = []
        self._log_index = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="mpms3-vsm", daemon=True)

    # -- requests (called with sim.lock held) ---------------------------------------------------
    def request(self, t: float, averaging_s: float) -> int:
        """Queue a single measurement at instrument time ``t``; returns its Measurement Number."""
        lo, hi = AVERAGING_LIMITS_S
        if not lo <= averaging_s <= hi:
            raise ValueError(f"averaging time {averaging_s} s outside {lo}-{hi} s")
        start = max(t, self._busy_until)        # the VSM measures one thing at a time
        self._busy_until = start + averaging_s + VSM_OVERHEAD_S
        self._requests += 1
        self._number += 1
        self._push(self._busy_until, "single",
                   (self._number, self._requests, start + VSM_PRE_S, averaging_s))
        return self._number

    def set_logging(self, t: float, on: bool, interval_s: float = 10.0,
                    averaging_s: float | None = None) -> None:
        for s in self._logs:
            if s.end is None:
                s.end = t
        if on:
            lo, hi = LOG_INTERVAL_LIMITS_S
            if not lo <= interval_s <= hi:
                raise ValueError(f"log interval {interval_s} s outside {lo}-{hi} s")
            avg = max(0.5, interval_s - VSM_OVERHEAD_S) if averaging_s is None else averaging_s
            self._log_index += 1
            self._logs.append(_LogSchedule(self._log_index, t, interval_s, min(avg, interval_s)))

    @property
    def logging(self) -> bool:
        return any(s.end is None for s in self._logs)

    def new_sweep(self, t: float) -> None:
        """A T or H command at ``t``: re-anchor an active log grid at the sweep start."""
        active = [s for s in self._logs if s.end is None]
        if active:
            self.set_logging(t, True, active[-1].interval_s, active[-1].averaging_s)

    def _push(self, due: float, kind: str, args: tuple) -> None:
        self._seq += 1
        heapq.heappush(self._jobs, _Job(due, self._seq, kind, args))

    # -- worker -------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stopping = True
        self.sim.clock.notify()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _next_due(self) -> tuple[float, object] | None:
        best = (self._jobs[0].due, "job") if self._jobs else None
        # Continuous logging records sweeps: rows are due while T or H moves (plus one last
        # row at the end point); a stable instrument logs nothing and its clock may freeze.
        motion_end = max(self.sim.temperature.settled_at(math.inf),
                         self.sim.magnet.settled_at(math.inf))
        for s in self._logs:
            tk = s.grid_time(s.next_k)
            if s.end is not None and tk >= s.end:
                continue
            if tk > motion_end + s.interval_s:
                continue
            due = tk + s.averaging_s / 2.0
            if best is None or due < best[0]:
                best = (due, s)
        return best

    def _predicate(self):
        if self._stopping:
            return True
        with self.sim.lock:
            nxt = self._next_due()
        if nxt is None:
            return False
        return True if nxt[0] <= self.sim.clock.now() else nxt[0]

    def _run(self) -> None:
        clock = self.sim.clock
        try:
            while not self._stopping:
                clock.wait_until(self._predicate, None)
                while not self._stopping:
                    with self.sim.lock:
                        self._logs = [s for s in self._logs
                                      if s.end is None or s.grid_time(s.next_k) < s.end]
                        nxt = self._next_due()
                        if nxt is None or nxt[0] > clock.now():
                            break
                        row = self._take(nxt[1])
                    self.sim.writer.write_row(row)
        except ClockStopped:
            pass
        except Exception:          # keep the server alive; the failure is in the log
            log.exception("VSM worker failed")

    def _take(self, what) -> dict:
        if what == "job":
            job = heapq.heappop(self._jobs)
            number, req, t_start, avg = job.args
            rng = np.random.default_rng([self.sim.seed, req])
            return self._row(number, t_start, t_start + avg, avg, rng, t_mid=None)
        s: _LogSchedule = what
        k = s.next_k
        s.next_k += 1
        self._number += 1
        tk = s.grid_time(k)
        rng = np.random.default_rng([self.sim.seed, 2, s.index, k])
        return self._row(self._number, tk - s.averaging_s / 2, tk + s.averaging_s / 2,
                         s.averaging_s, rng, t_mid=tk)

    def _row(self, number: int, t0: float, t1: float, avg: float, rng, t_mid) -> dict:
        """One VSM row from the true T/H over [t0, t1] plus noise drawn from ``rng``."""
        sim = self.sim
        ts = np.linspace(t0, t1, SAMPLES_PER_AVERAGE)
        T_true = np.array([sim.temperature.value(t) for t in ts])
        H_true = np.array([sim.magnet.value(t) for t in ts])
        T_meas = T_true + rng.normal(0.0, 1.0, ts.size) * (2e-4 * T_true + 1e-3)
        H_meas = H_true + rng.normal(0.0, 1.0, ts.size) * (0.02 + 2e-6 * np.abs(H_true))
        tm = 0.5 * (t0 + t1) if t_mid is None else t_mid
        T_c, H_c = sim.temperature.value(tm), sim.magnet.value(tm)
        moment, err = sim.sample.measure_vsm(T_c, H_c, sim.mass_mg, rng)
        return {
            "time_unix": tm,
            "Temperature (K)": float(T_meas.mean()),
            "Magnetic Field (Oe)": float(H_meas.mean()),
            "Moment (emu)": float(moment),
            "M. Std. Err. (emu)": float(err),
            "Transport Action": 1,
            "Averaging Time (sec)": avg,
            "Frequency (Hz)": VSM_FREQUENCY_HZ,
            "Peak Amplitude (mm)": VSM_PEAK_AMPLITUDE_MM,
            "Min. Temperature (K)": float(T_meas.min()),
            "Max. Temperature (K)": float(T_meas.max()),
            "Min. Field (Oe)": float(H_meas.min()),
            "Max. Field (Oe)": float(H_meas.max()),
            "Mass (grams)": sim.mass_mg * 1e-3,
            "Measure Count": 1,
            "Measurement Number": number,
            "SQUID Status (code)": 0,
            "Measure Status (code)": 0,
            "Temp. Status (code)": sim.temperature.state_code(tm),
            "Field Status (code)": sim.magnet.state_code(tm),
            "Chamber Status (code)": sim.chamber.state_code(tm),
            "Average Temp (K)": float(T_meas.mean()),
        }
