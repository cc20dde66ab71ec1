"""Virtual instrument clock: instrument time runs ``speed`` times faster than wall time.

Simulated instruments compute their state lazily from instrument time, so nothing ticks. Code
that must wait for something (a wait-for, a measurement finishing) blocks on one shared
condition variable with a wall-clock timeout derived from the instrument time at which the
awaited thing is due; commands that change state call :meth:`VirtualClock.notify` so waiters
re-evaluate at once. There is never a busy loop.

With ``freeze_when_idle=True`` (what the simulated lab uses) instrument time runs only while the
instrument has something to do: a ramp or settle in progress, a measurement pending, continuous
logging, or someone waiting on the clock for a later instrument time. When all of that is over
the clock stops exactly where the last activity ended. The client's own latency (storage,
Python, network) therefore costs no instrument time, as on a real instrument where it is
negligible next to a 30 s point; and every command issued while idle is stamped at a
deterministic instrument time.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Union

#: Longest single wall-clock wait (s). Waits are re-armed after this, which bounds how long a
#: stop() or a missed notification can go unnoticed without turning into polling.
MAX_WALL_WAIT_S = 0.25

#: What a wait predicate may return: True (done), False (wait for a notify) or the instrument
#: time (Unix s) at which it should be asked again.
PredicateResult = Union[bool, float]


class ClockStopped(RuntimeError):
    """Raised in waiters when the clock is stopped (simulator shutting down)."""


class VirtualClock:
    """Instrument time ``now() = start_unix + speed * (wall elapsed since creation)``.

    Parameters
    ----------
    speed : float
        Instrument seconds per wall second (1000 means an hour passes in 3.6 s).
    start_unix : float, optional
        Instrument time (Unix s) at creation; default the current wall time.
    """

    def __init__(self, speed: float = 1000.0, start_unix: float | None = None, *,
                 freeze_when_idle: bool = False):
        if not speed > 0:
            raise ValueError(f"speed must be > 0 (got {speed!r})")
        self.speed = float(speed)
        self.start_unix = time.time() if start_unix is None else float(start_unix)
        self.freeze_when_idle = bool(freeze_when_idle)
        self._base = self.start_unix          # instrument time at wall time _wall_base
        self._wall_base = time.monotonic()
        self._time_lock = threading.Lock()
        self._activity: list[Callable[[], float]] = []
        self._wakes: dict[int, float] = {}    # waiter id -> instrument time it waits for
        self.condition = threading.Condition()
        self._stopped = False

    # -- time conversions -------------------------------------------------------------------
    def add_activity(self, busy_until: Callable[[], float]) -> None:
        """Register a source of activity: ``busy_until()`` is the instrument time (Unix s)
        until which it keeps the instrument busy (``-inf`` idle, ``inf`` indefinitely). It
        must not call :meth:`now`."""
        with self._time_lock:
            self._activity.append(busy_until)

    def _horizon(self) -> float:
        h = max(self._wakes.values(), default=-float("inf"))
        for fn in self._activity:
            h = max(h, fn())
        return h

    def now(self) -> float:
        """Instrument time, Unix seconds."""
        with self._time_lock:
            wall = time.monotonic()
            t = self._base + (wall - self._wall_base) * self.speed
            if self.freeze_when_idle:
                horizon = self._horizon()
                if t >= horizon:  # idle since `horizon`: time stands there
                    t = max(horizon, self._base)
                    self._base, self._wall_base = t, wall
            return t

    def wall_seconds(self, instr_s: float) -> float:
        """Wall seconds that ``instr_s`` instrument seconds take."""
        return max(0.0, instr_s) / self.speed

    def instrument_seconds(self, wall_s: float) -> float:
        """Instrument seconds elapsing in ``wall_s`` wall seconds."""
        return wall_s * self.speed

    # -- waiting ------------------------------------------------------------------------------
    @property
    def stopped(self) -> bool:
        return self._stopped

    def notify(self) -> None:
        """Wake every waiter so it re-evaluates its predicate (call after a state change)."""
        with self.condition:
            self.condition.notify_all()

    def stop(self) -> None:
        """Abort all current and future waits (they raise :class:`ClockStopped`)."""
        with self.condition:
            self._stopped = True
            self.condition.notify_all()

    def sleep(self, instr_s: float) -> None:
        """Sleep ``instr_s`` instrument seconds (interruptible by :meth:`stop`)."""
        deadline = self.now() + max(0.0, instr_s)
        self.wait_until(lambda: self.now() >= deadline or deadline, None)

    def wait_until(self, predicate: Callable[[], PredicateResult],
                   instr_timeout: float | None) -> bool:
        """Block until ``predicate()`` is true or ``instr_timeout`` instrument seconds pass.

        ``predicate`` is called with the clock's condition held. It returns True when done,
        False to wait for the next :meth:`notify`, or a float: the instrument time (Unix s) at
        which the answer may change, so the waiter sleeps exactly until then. Returns True if
        the predicate became true, False on timeout (``None`` = no timeout). Raises
        :class:`ClockStopped` if the clock is stopped meanwhile.
        """
        deadline = None if instr_timeout is None else self.now() + max(0.0, instr_timeout)
        key = id(threading.current_thread())
        try:
            with self.condition:
                while True:
                    if self._stopped:
                        raise ClockStopped("virtual clock stopped")
                    res = predicate()
                    if res is True:
                        return True
                    now = self.now()
                    if deadline is not None and now >= deadline:
                        return False
                    wake = deadline
                    if res is not False and res is not None:
                        wake = float(res) if wake is None else min(wake, float(res))
                    with self._time_lock:  # a waiter keeps time running until its wake time
                        if wake is None:
                            self._wakes.pop(key, None)
                        else:
                            self._wakes[key] = wake
                    wall = MAX_WALL_WAIT_S if wake is None else self.wall_seconds(wake - now)
                    # A tiny positive floor keeps wait() from spinning when wake == now.
                    self.condition.wait(min(max(wall, 1e-4), MAX_WALL_WAIT_S))
        finally:
            with self._time_lock:
                self._wakes.pop(key, None)

    def wait(self, cond: Callable[[], PredicateResult], instr_timeout: float | None) -> bool:
        """Alias of :meth:`wait_until` (the name used in docs/architecture.md)."""
        return self.wait_until(cond, instr_timeout)
