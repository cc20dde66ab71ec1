"""Simulated MPMS3 VSM: single measurements and continuous logging into a real-layout ``.dat``.

Rows go through the simulator's :class:`~.measurement_queue.MeasurementQueue` (shared with the
ac option: one ``Measurement Number`` sequence per file, one measurement at a time).

Determinism: a single (settle-mode) measurement draws its noise from
``numpy.random.default_rng([seed, r])`` where ``r`` is the VSM request index (1, 2, ...; equal
to the ``Measurement Number`` whenever no other rows are interleaved); taken in a Stable state
its values depend only on that state and ``r``. Log rows sample the sweep on a grid anchored at
the sweep's own start, ``t_anchor + k * interval`` (k = 1, 2, ...), with noise from
``default_rng([seed, 2, anchor_index, k])``, so the k-th row of a sweep is the same in every
run. Only the wall-clock moment a row reaches the file depends on scheduling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .measurement_queue import Window, read_window

VSM_OVERHEAD_S = 4.0          # centring/settling around each VSM average (timing.md)
VSM_PRE_S = 2.0               # part of the overhead before the averaging window
VSM_FREQUENCY_HZ = 13.0       # VSM drive as written by a real MPMS3 (.dat "Frequency (Hz)")
VSM_PEAK_AMPLITUDE_MM = 2.0
AVERAGING_LIMITS_S = (0.1, 1000.0)
LOG_INTERVAL_LIMITS_S = (1.0, 86400.0)


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


def status_columns(sim, w: Window) -> dict:
    """Columns every MPMS3 measurement row fills besides its own: T/H range, mass, states."""
    tm = w.t_mid
    return {
        "Min. Temperature (K)": w.T_min,
        "Max. Temperature (K)": w.T_max,
        "Min. Field (Oe)": w.H_min,
        "Max. Field (Oe)": w.H_max,
        "Mass (grams)": sim.mass_mg * 1e-3,
        "Measure Count": 1,
        "SQUID Status (code)": 0,
        "Measure Status (code)": 0,
        "Temp. Status (code)": sim.temperature.state_code(tm),
        "Field Status (code)": sim.magnet.state_code(tm),
        "Chamber Status (code)": sim.chamber.state_code(tm),
        "Average Temp (K)": w.T_mean,
    }


class VsmEngine:
    """VSM rows on the simulator's measurement queue (and a row source for logging).

    ``sim`` provides ``clock``, ``lock``, ``queue``, ``temperature``, ``magnet``, ``chamber``,
    ``sample``, ``mass_mg`` and ``seed``.
    """

    def __init__(self, sim):
        self.sim = sim
        self._logs: list[_LogSchedule] = []
        self._log_index = 0
        sim.queue.add_source(self)

    # -- requests (called with sim.lock held) ---------------------------------------------------
    def request(self, t: float, averaging_s: float) -> int:
        """Queue a single measurement at instrument time ``t``; returns its Measurement Number."""
        lo, hi = AVERAGING_LIMITS_S
        if not lo <= averaging_s <= hi:
            raise ValueError(f"averaging time {averaging_s} s outside {lo}-{hi} s")
        q = self.sim.queue
        start = q.reserve(t, averaging_s + VSM_OVERHEAD_S)   # one measurement at a time
        number, req = q.next_number(), q.next_index("vsm")
        t0 = start + VSM_PRE_S
        q.submit(q.busy_until, lambda: self._row(number, t0, t0 + averaging_s, averaging_s,
                                                 np.random.default_rng([self.sim.seed, req]),
                                                 t_mid=None))
        return number

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

    # -- row source for continuous logging (queue worker, lock held) ----------------------------
    def _next_log(self) -> tuple[float, _LogSchedule] | None:
        self._logs = [s for s in self._logs if s.end is None or s.grid_time(s.next_k) < s.end]
        # Continuous logging records sweeps: rows are due while T or H moves (plus one last
        # row at the end point); a stable instrument logs nothing and its clock may freeze.
        motion_end = max(self.sim.temperature.settled_at(math.inf),
                         self.sim.magnet.settled_at(math.inf))
        best = None
        for s in self._logs:
            tk = s.grid_time(s.next_k)
            if tk > motion_end + s.interval_s:
                continue
            due = tk + s.averaging_s / 2.0
            if best is None or due < best[0]:
                best = (due, s)
        return best

    def next_due(self) -> float | None:
        nxt = self._next_log()
        return None if nxt is None else nxt[0]

    def take(self) -> dict:
        s = self._next_log()[1]
        k = s.next_k
        s.next_k += 1
        tk = s.grid_time(k)
        rng = np.random.default_rng([self.sim.seed, 2, s.index, k])
        return self._row(self.sim.queue.next_number(), tk - s.averaging_s / 2,
                         tk + s.averaging_s / 2, s.averaging_s, rng, t_mid=tk)

    def _row(self, number: int, t0: float, t1: float, avg: float, rng, t_mid) -> dict:
        """One VSM row from the true T/H over [t0, t1] plus noise drawn from ``rng``."""
        sim = self.sim
        w = read_window(sim.temperature, sim.magnet, t0, t1, rng, t_mid)
        T_c, H_c = sim.temperature.value(w.t_mid), sim.magnet.value(w.t_mid)
        moment, err = sim.sample.measure_vsm(T_c, H_c, sim.mass_mg, rng)
        return {
            "time_unix": w.t_mid,
            "Temperature (K)": w.T_mean,
            "Magnetic Field (Oe)": w.H_mean,
            "Moment (emu)": float(moment),
            "M. Std. Err. (emu)": float(err),
            "Transport Action": 1,
            "Averaging Time (sec)": avg,
            "Frequency (Hz)": VSM_FREQUENCY_HZ,
            "Peak Amplitude (mm)": VSM_PEAK_AMPLITUDE_MM,
            "Measurement Number": number,
            **status_columns(sim, w),
        }
