"""Scripted faults for unattended-campaign tests: what goes wrong, on which instrument, when.

A :class:`FaultScript` lists :class:`Fault` s, each at a fixed instrument time (``at_s``
instrument seconds after the lab clock started) or at random (``rate_per_h``, a seeded Poisson
process counted from the clock's start; arrivals before the injector exists are dropped, a
fixed-time fault already due fires at once). A :class:`FaultInjector` applies them to the
simulators of a lab on the *virtual* clock: nothing happens while the clock stands still, and
a fault that is in force and has an end (an outage, an excursion, low helium until the
refill, an open interlock) keeps the clock running until that end, as real time passes during
a real fault. A fault not yet due never moves the clock.

What a client sees (``at`` = the fault's instrument time, ``d`` = ``duration_s``):

==========================  =====================================================================
``helium_low``  (ppms)      ``LEVEL?`` drops to ``percent`` at ``at`` and is refilled to
                            ``refill_percent`` (default 80) at ``at + d``, like an operator
                            filling the dewar; boil-off continues from each level. The MPMS3 has
                            none: MultiPyVu 3.8.0 exposes no helium level, so it targets the PPMS.
``temperature_excursion``   from ``at`` to ``at + d`` the temperature reads ``delta_K`` off the
  (mpms3, ppms)             controller's value and the state is Chasing (MultiVu) / status nibble
                            6 "outside tolerance" (PPMS); a WAITFOR on temperature waits it out.
``quench``  (mpms3, ppms)   at ``at`` the field drops to 0 Oe; the magnet state is "Quenching"
                            (MultiVu code 11; ``state="current_error"``: "Current Error", 9) or
                            PPMS nibble 8 "current error". Latched, as on a QD system (the field
                            is not restored by itself): it stays until the client sets a field,
                            which ramps from 0. ``duration_s`` must be 0.
``laser_interlock``         ``LaserState.set_interlock(True)`` at ``at``, ``False`` at ``at + d``
                            (Taiko ``PDLM_GetLocked`` 1, keylock bit in ``PDLM_GetSystemStatus``).
``disconnect``              at ``at`` the target's server closes every connection and its
                            listening socket (connects are refused); at ``at + d`` it listens
                            again on the same port. Requests already running still execute.
``garbled``                 the next ``count`` replies after ``at`` (default 1) have every byte
                            replaced by printable ASCII junk; terminators (``;`` CR LF) and the
                            MultiPyVu framing stay, so the client reads one wrong reply.
``timeout``                 the next ``count`` replies after ``at`` are never sent; the request
                            *is* executed (the instrument acted, the answer was lost). GPIB set
                            commands have no reply and are not counted. MultiVu still confirms
                            receipt, then never completes.
==========================  =====================================================================

Physical faults are scheduled into the instrument models when the injector is built and are
evaluated lazily (exact at every instrument time); wire and laser faults are fired by a small
thread that waits on the clock without registering a wake, and by every server before it
replies, so they too take effect at the scripted instrument time.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from .clock import MAX_WALL_WAIT_S
from .dynamics import LimitError
from .fault_kinds import KINDS, MAX_RATE_PER_H, PHYSICAL_KINDS, WIRE_KINDS, check_fault, number
from .wire_faults import WireFaults

_MIN_WAIT_S = 1e-3          # watcher: shortest wall wait
_FROZEN_WAIT_S = 0.05       # watcher: wall re-check while the clock stands still


@dataclass(frozen=True)
class Fault:
    """One scripted fault: ``kind`` on ``target`` (a name in the injector's targets), at
    ``at_s`` instrument s after the clock started *or* at ``rate_per_h`` (Poisson),
    lasting ``duration_s`` (s), with kind-specific ``params`` (see the module table)."""

    kind: str
    target: str
    at_s: float | None = None
    rate_per_h: float | None = None
    duration_s: float = 0.0
    params: Mapping = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.target, str) or not self.target:
            raise LimitError("target", self.target, "a non-empty instrument name")
        if (self.at_s is None) == (self.rate_per_h is None):
            raise LimitError("at_s/rate_per_h", (self.at_s, self.rate_per_h),
                             "exactly one of them (a time, or a Poisson rate)")
        if self.at_s is not None:
            object.__setattr__(self, "at_s", number("at_s", self.at_s, 0.0, math.inf, "s"))
        else:
            object.__setattr__(self, "rate_per_h", number(
                "rate_per_h", self.rate_per_h, 1e-9, MAX_RATE_PER_H, "per hour"))
        d, params = check_fault(self.kind, self.duration_s, self.params)
        object.__setattr__(self, "duration_s", d)
        object.__setattr__(self, "params", params)

    def to_dict(self) -> dict:
        when = {"at_s": self.at_s} if self.at_s is not None else {"rate_per_h": self.rate_per_h}
        return {"kind": self.kind, "target": self.target, **when,
                "duration_s": self.duration_s, "params": dict(self.params)}


_DICT_KEYS = ("kind", "target", "at_s", "rate_per_h", "duration_s", "params")


@dataclass
class FaultScript:
    """An ordered list of faults; :meth:`at` and :meth:`poisson` append and return the script."""

    faults: list = field(default_factory=list)

    def at(self, kind: str, at_s: float, *, target: str, duration_s: float = 0.0,
           **params) -> "FaultScript":
        self.faults.append(Fault(kind, target, at_s=at_s, duration_s=duration_s, params=params))
        return self

    def poisson(self, kind: str, rate_per_h: float, *, target: str, duration_s: float = 0.0,
                **params) -> "FaultScript":
        self.faults.append(Fault(kind, target, rate_per_h=rate_per_h, duration_s=duration_s,
                                 params=params))
        return self

    @classmethod
    def from_dicts(cls, items: Iterable[Mapping]) -> "FaultScript":
        """From ``[{"kind", "target", "at_s" | "rate_per_h", "duration_s", "params"}, ...]``
        (e.g. JSON); an error names the fault's index, the key, the value and what is allowed."""
        faults = []
        for i, item in enumerate(items):
            try:
                if not isinstance(item, Mapping):
                    raise LimitError("fault", item, f"a mapping with keys {list(_DICT_KEYS)}")
                for key in item:
                    if key not in _DICT_KEYS:
                        raise LimitError("key", key, f"one of {list(_DICT_KEYS)}")
                for key in ("kind", "target"):
                    if key not in item:
                        raise LimitError(key, None, "required")
                faults.append(Fault(**dict(item)))
            except LimitError as exc:
                raise LimitError(f"fault #{i}: {exc.parameter}", exc.value, exc.allowed) from exc
        return cls(faults)

    def to_dicts(self) -> list[dict]:
        return [f.to_dict() for f in self.faults]

    def __iter__(self):
        return iter(self.faults)

    def __len__(self) -> int:
        return len(self.faults)


def wire_of(target) -> WireFaults | None:
    """The :class:`WireFaults` of a server, or of a simulator's running ``server``."""
    for obj in (target, getattr(target, "server", None)):
        faults = getattr(obj, "faults", None)
        if isinstance(faults, WireFaults):
            return faults
    return None


@dataclass(frozen=True)
class InjectedFault:
    """One entry of :attr:`FaultInjector.history`: a fault starting or ending."""

    kind: str
    target: str
    phase: str                # "start" | "end"
    t: float                  # instrument time, Unix s
    elapsed_s: float          # instrument s since the clock started
    params: Mapping
    fault_index: int          # position in the script
    occurrence: int           # 0 for a fixed-time fault; n-th arrival of a Poisson fault


@dataclass
class _Event:
    fault_index: int
    occurrence: int
    fault: Fault
    t: float
    t_end: float | None


class FaultInjector:
    """Apply a :class:`FaultScript` to ``targets`` (name -> simulator, server or
    ``LaserState``) on ``clock``; ``seed`` keys the Poisson arrivals and the garbage.

    Building it validates every fault against its target (an error names the fault, the target
    and the targets that could take it), expands Poisson faults up to ``horizon_h`` instrument
    hours after the clock's start, schedules the physical faults into the simulators and, with
    ``start=True``, starts the watcher. :attr:`history` lists what fired (:class:`InjectedFault`,
    in instrument-time order); :meth:`stop` ends the watcher and lifts any outage or interlock
    still in force (physical faults already scheduled play out).
    """

    def __init__(self, clock, targets: Mapping[str, object], script, seed: int = 0, *,
                 horizon_h: float = 72.0, start: bool = True):
        if not isinstance(script, FaultScript):
            script = FaultScript.from_dicts(script)
        self.clock, self.targets, self.script, self.seed = clock, dict(targets), script, seed
        self.horizon_h = number("horizon_h", horizon_h, 0.0, 24 * 365.0, "h")
        self.history: list[InjectedFault] = []
        self._lock = threading.RLock()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._interlocks: dict[str, int] = {}
        self._busy_end = -math.inf
        for i, fault in enumerate(script):
            self._check_target(i, fault)
        self._pending = sorted(self._expand(), key=lambda e: (e.t, e.fault_index))
        self._active: list[_Event] = []
        for ev in self._pending:
            if ev.fault.kind in PHYSICAL_KINDS:
                ev.t = self.targets[ev.fault.target].inject_fault(
                    ev.fault.kind, at=ev.t, duration_s=ev.fault.duration_s, **ev.fault.params)
                ev.t_end = ev.t + ev.fault.duration_s if ev.t_end is not None else None
        self._wires = {w for w in (wire_of(t) for t in self.targets.values()) if w is not None}
        for wire in self._wires:
            wire.hooks.append(self.poll)
        clock.add_activity(lambda: self._busy_end)   # a float read: no lock, no clock call
        if start:
            self.start()

    @classmethod
    def for_lab(cls, lab, script, seed: int = 0, **kwargs) -> "FaultInjector":
        """Targets from a SimulatedLab: ``mpms3``, ``ppms``, ``laser`` (``lab.pl.laser``) and
        every served simulator of ``lab.pl`` (and one level below) by attribute name."""
        targets = {n: getattr(lab, n) for n in ("mpms3", "ppms") if getattr(lab, n, None)}
        pl = getattr(lab, "pl", None)
        if pl is not None:
            for name, obj in vars(pl).items():
                inner = vars(obj).items() if hasattr(obj, "__dict__") else ()
                for n, o in [(name, obj), *inner]:
                    if wire_of(getattr(o, "server", None)) is not None:   # a served simulator
                        targets.setdefault(n, o)
            if getattr(pl, "laser", None) is not None:
                targets["laser"] = pl.laser
        return cls(lab.clock, targets, script, seed, **kwargs)

    # -- construction -------------------------------------------------------------------------
    def _capable(self, kind: str, target) -> bool:
        if kind in PHYSICAL_KINDS:
            return kind in getattr(target, "FAULT_KINDS", ())
        if kind == "laser_interlock":
            return callable(getattr(target, "set_interlock", None))
        return wire_of(target) is not None

    def _check_target(self, i: int, fault: Fault) -> None:
        if fault.target not in self.targets:
            raise LimitError(f"fault #{i}: target", fault.target, f"one of {sorted(self.targets)}")
        if not self._capable(fault.kind, self.targets[fault.target]):
            able = sorted(n for n, t in self.targets.items() if self._capable(fault.kind, t))
            raise LimitError(f"fault #{i} ({fault.kind}): target", fault.target,
                             f"one of {able} (a running server for wire faults)")

    def _expand(self) -> list[_Event]:
        start, now = self.clock.start_unix, self.clock.now()
        end = start + self.horizon_h * 3600.0
        events = []
        for i, f in enumerate(self.script):
            if f.at_s is not None:
                times = [max(start + f.at_s, now)]
            else:
                rng, t, times = np.random.default_rng([int(self.seed), i]), start, []
                while True:
                    t += rng.exponential(3600.0 / f.rate_per_h)
                    if t > end:
                        break
                    if t >= now:
                        times.append(float(t))
            for n, t in enumerate(times):
                t_end = t + f.duration_s if KINDS[f.kind][0] else None
                events.append(_Event(i, n, f, t, t_end))
        return events

    @property
    def planned(self) -> list[tuple[str, str, float, float]]:
        """Every fault still to start: (kind, target, instrument s since clock start, duration s)."""
        with self._lock:
            return [(e.fault.kind, e.fault.target, e.t - self.clock.start_unix,
                     e.fault.duration_s) for e in self._pending]

    # -- firing -------------------------------------------------------------------------------
    def poll(self) -> float:
        """Fire every start and end due at the current instrument time; returns that time.
        Servers call it before each reply; the watcher calls it on time."""
        with self._lock:
            now = self.clock.now()
            due = []
            while self._pending and self._pending[0].t <= now:
                ev = self._pending.pop(0)
                due.append((ev.t, 0, ev))
                if ev.t_end is not None:
                    self._active.append(ev)
            for ev in [e for e in self._active if e.t_end <= now]:
                self._active.remove(ev)
                due.append((ev.t_end, 1, ev))
            for when, phase, ev in sorted(due, key=lambda d: (d[0], d[1])):
                self._fire(ev, "end" if phase else "start", when)
            self._busy_end = max((e.t_end for e in self._active), default=-math.inf)
        return now

    def _fire(self, ev: _Event, phase: str, when: float) -> None:
        f, target = ev.fault, self.targets[ev.fault.target]
        start = phase == "start"
        if f.kind == "laser_interlock":
            depth = self._interlocks.get(f.target, 0) + (1 if start else -1)
            self._interlocks[f.target] = depth
            target.set_interlock(depth > 0)
        elif f.kind == "disconnect":
            (wire_of(target).begin_outage if start else wire_of(target).end_outage)()
        elif f.kind in WIRE_KINDS:
            wire_of(target).arm(f.kind, f.params["count"],
                                seed=f"{self.seed}:{ev.fault_index}:{ev.occurrence}")
        self.history.append(InjectedFault(f.kind, f.target, phase, when,
                                          when - self.clock.start_unix, dict(f.params),
                                          ev.fault_index, ev.occurrence))

    def _next_due(self) -> float | None:
        with self._lock:
            times = [e.t_end for e in self._active] + [e.t for e in self._pending[:1]]
        return min(times, default=None)

    def _watch(self) -> None:
        """Fire faults on time. Waits on the clock's condition (woken by every command) with a
        wall timeout, never registering a wake time, so it does not keep the clock running."""
        last = None
        while not self._halt.is_set() and not self.clock.stopped:
            now = self.poll()
            nxt = self._next_due()
            if nxt is None:
                return
            wait = _FROZEN_WAIT_S if now == last else \
                min(max(self.clock.wall_seconds(nxt - now), _MIN_WAIT_S), MAX_WALL_WAIT_S)
            last = now
            with self.clock.condition:
                if not self._halt.is_set():
                    self.clock.condition.wait(wait)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "FaultInjector":
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="fault-injector", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """End the watcher; lift outages and interlocks still in force (idempotent)."""
        self._halt.set()
        with self.clock.condition:
            self.clock.condition.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2.0)
        with self._lock:
            for wire in self._wires:
                if self.poll in wire.hooks:
                    wire.hooks.remove(self.poll)
            for ev in self._active:
                target = self.targets[ev.fault.target]
                if ev.fault.kind == "disconnect":
                    wire_of(target).end_outage()
                elif ev.fault.kind == "laser_interlock":
                    target.set_interlock(False)
            self._active.clear()
            self._pending.clear()
            self._busy_end = -math.inf

    def __enter__(self) -> "FaultInjector":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
