"""Magnet and sample-chamber dynamics (part of :mod:`spinlight.simulators.dynamics`).

Same conventions as the temperature control there: ``set(t, ...)`` with instrument time,
lazy pure read-outs at any ``t``, shared MultiVu / PPMS state codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .dynamics import (CHAMBER_DONE, CHAMBER_FINAL_CODE, CHAMBER_PPMS_TEXT, CHAMBER_TEXT,
                       CHAMBER_TRANSIT_CODE, CHAMBER_TRANSITION_S, FIELD_PPMS_TEXT, FIELD_TEXT,
                       FINAL_APPROACH_S, NO_OVERSHOOT_SLOWDOWN, OSC_RATIO, SWITCH_COOL_S,
                       SWITCH_WARM_S, LimitError, Segment, _History, time_noise)

PERSISTENT, DRIVEN = 0, 1
LINEAR, NO_OVERSHOOT, OSCILLATE = 0, 1, 2
#: Magnet codes in which the persistent switch is cold (a new ramp must warm it first).
_SWITCH_COLD = (1, 3)


@dataclass(frozen=True)
class _FieldProgram:
    t0: float
    setpoint: float
    rate_Oe_per_s: float
    approach: int
    mode: int
    segments: tuple          # of Segment, contiguous in time
    final_value: float
    final_code: int
    serial: int = 0          # issue order of commands and quenches (ties in time)

    @property
    def done_at(self) -> float:
        return self.segments[-1].t1 if self.segments else self.t0

    def _seg(self, t: float):
        for s in self.segments:
            if t < s.t1:
                return s
        return None

    def value(self, t: float) -> float:
        s = self._seg(t)
        return self.final_value if s is None else s.value(t)

    def code(self, t: float) -> int:
        s = self._seg(t)
        return self.final_code if s is None else s.code


class Magnet:
    """Superconducting magnet with persistent switch, in Oe and Oe/s.

    Sequence for a persistent-mode set: switch warming -> ramping (charging away from zero,
    discharging towards it) -> switch cooling -> Stable. Driven mode: (switch warming if it was
    persistent) -> ramping -> final approach (Iterate) -> Holding (driven). Approaches:
    0 linear, 1 no_overshoot (last part at rate/5), 2 oscillate (decaying overshoots about the
    set point). Above ``high_field_Oe`` the supply charges at most ``high_field_rate_Oe_per_s``
    (the ramp time depends on the field). ``has_switch=False`` models a driven-only magnet
    (no warming/cooling phases, persistent mode refused), as MultiPyVu treats the MPMS3.
    """

    def __init__(self, *, max_field_Oe: float = 70000.0, rate_limits_Oe_per_s=(1.0, 700.0),
                 high_field_Oe: float = 50000.0, high_field_rate_Oe_per_s: float = 300.0,
                 has_switch: bool = True, initial_code: int = 1, seed: int = 0):
        self.max_field_Oe = max_field_Oe
        self.rate_limits_Oe_per_s = rate_limits_Oe_per_s
        self.high_field_Oe = high_field_Oe
        self.high_field_rate_Oe_per_s = high_field_rate_Oe_per_s
        self.has_switch = has_switch
        self.seed = seed
        mode = PERSISTENT if initial_code == 1 else DRIVEN
        self._h = _History(_FieldProgram(-math.inf, 0.0, 100.0, LINEAR, mode, (), 0.0,
                                         initial_code))
        self._quenches: tuple = ()        # (t, serial, state code) faults, see quench()
        self._serial = 0

    def validate(self, field_Oe: float, rate_Oe_per_s: float, approach: int, mode: int):
        if not abs(field_Oe) <= self.max_field_Oe:
            raise LimitError("field set point (Oe)", field_Oe,
                             f"-{self.max_field_Oe:g} to {self.max_field_Oe:g} Oe")
        lo, hi = self.rate_limits_Oe_per_s
        if not lo <= rate_Oe_per_s <= hi:
            raise LimitError("field rate (Oe/s)", rate_Oe_per_s, f"{lo:g}-{hi:g} Oe/s")
        if approach not in (LINEAR, NO_OVERSHOOT, OSCILLATE):
            raise LimitError("field approach", approach,
                             "0 (linear), 1 (no_overshoot) or 2 (oscillate)")
        if mode not in (PERSISTENT, DRIVEN) or (mode == PERSISTENT and not self.has_switch):
            allowed = "0 (persistent) or 1 (driven)" if self.has_switch else "1 (driven)"
            raise LimitError("magnet mode", mode, allowed)

    def _waypoints(self, h0: float, sp: float, rate: float, approach: int):
        """(target, rate) legs from h0 to the set point for an approach mode."""
        delta = sp - h0
        if approach == NO_OVERSHOOT and delta:
            slow = min(abs(delta), max(0.01 * abs(delta), 10.0))
            return [(sp - math.copysign(slow, delta), rate), (sp, rate / NO_OVERSHOOT_SLOWDOWN)]
        if approach == OSCILLATE and delta:
            legs, amp, sign = [], min(0.1 * abs(delta) + 10.0, 5000.0), math.copysign(1, delta)
            while amp >= 1.0 and len(legs) < 10:
                target = max(-self.max_field_Oe, min(self.max_field_Oe, sp + sign * amp))
                legs.append((target, rate))
                amp, sign = amp * OSC_RATIO, -sign
            return legs + [(sp, rate)]
        return [(sp, rate)]

    def _ramp(self, t: float, h0: float, h1: float, rate: float) -> list:
        """Linear legs h0 -> h1 starting at t, split where |H| crosses the high-field limit."""
        cuts = sorted({h0, h1} | {c for c in (-self.high_field_Oe, self.high_field_Oe)
                                  if min(h0, h1) < c < max(h0, h1)}, reverse=h1 < h0)
        segs = []
        for a, b in zip(cuts, cuts[1:]):
            r = rate
            if max(abs(a), abs(b)) > self.high_field_Oe:
                r = min(rate, self.high_field_rate_Oe_per_s)
            code = 6 if abs(b) > abs(a) else 7     # charging away from zero, else discharging
            segs.append(Segment(t, t + abs(b - a) / r, a, b, code))
            t = segs[-1].t1
        return segs

    def set(self, t: float, field_Oe: float, rate_Oe_per_s: float, approach: int,
            mode: int) -> None:
        """Command a field at instrument time ``t`` (Unix s)."""
        self.validate(field_Oe, rate_Oe_per_s, approach, mode)
        h0 = self.value(t)
        segs: list = []
        if self.has_switch and self.state_code(t) in _SWITCH_COLD:
            segs.append(Segment(t, t + SWITCH_WARM_S, h0, h0, 2))
        tc, h = (segs[-1].t1 if segs else t), h0
        for target, rate in self._waypoints(h0, float(field_Oe), rate_Oe_per_s, approach):
            for s in self._ramp(tc, h, target, rate):
                segs.append(s)
                tc, h = s.t1, s.v1
        if mode == PERSISTENT:
            segs.append(Segment(tc, tc + SWITCH_COOL_S, h, h, 3))
            final = 1
        else:
            segs.append(Segment(tc, tc + FINAL_APPROACH_S, h, h, 5))
            final = 4
        self._serial += 1
        self._h.add(t, _FieldProgram(t, float(field_Oe), float(rate_Oe_per_s), int(approach),
                                     int(mode), tuple(segs), float(field_Oe), final,
                                     self._serial))

    def quench(self, t: float, code: int) -> None:
        """Fault (:mod:`.faults`): at ``t`` the field collapses to 0 and the magnet reads
        ``code`` (a front end's quench / current-error code) until the next :meth:`set` after
        ``t``, which starts from 0 Oe (a real QD magnet does not recover the field by itself).
        Scheduled ahead and evaluated lazily; at equal times the later-issued one wins."""
        self._serial += 1
        self._quenches = self._quenches + ((float(t), self._serial, int(code)),)

    def _quenches_after(self, prog: _FieldProgram):
        return [q for q in self._quenches if q[:2] > (prog.t0, prog.serial)]

    def _at(self, t: float) -> _FieldProgram:
        """The program in force at ``t``: the latest command, unless a quench came after it."""
        prog = self._h.at(t)
        hit = max((q for q in self._quenches_after(prog) if q[0] <= t), default=None)
        if hit is None:
            return prog
        return _FieldProgram(hit[0], prog.setpoint, prog.rate_Oe_per_s, prog.approach, prog.mode,
                             (), 0.0, hit[2], hit[1])

    # -- read-outs ----------------------------------------------------------------------------
    def value(self, t: float) -> float:
        """True field at ``t``, Oe."""
        return self._at(t).value(t)

    def reading(self, t: float) -> float:
        """Field reading at ``t`` (value plus time-keyed noise), Oe."""
        H = self.value(t)
        return H + time_noise(self.seed, 2, t, 0.02 + 2e-6 * abs(H))

    def state_code(self, t: float) -> int:
        return self._at(t).code(t)

    def state_text(self, t: float) -> str:
        return FIELD_TEXT[self.state_code(t)]

    def ppms_text(self, t: float) -> str:
        return FIELD_PPMS_TEXT[self.state_code(t)]

    def settled_at(self, t: float) -> float:
        """Instrument time the current command ends Stable/Holding at its set point; a quench
        after that command ends all motion at the quench time (so a quench scheduled for later
        never keeps the clock running by itself)."""
        prog = self._h.at(t)
        quench = min((q[0] for q in self._quenches_after(prog)), default=math.inf)
        return min(prog.done_at, quench)

    @property
    def setpoint_Oe(self) -> float:
        return self._h.latest.setpoint

    @property
    def rate_Oe_per_s(self) -> float:
        return self._h.latest.rate_Oe_per_s

    @property
    def approach(self) -> int:
        return self._h.latest.approach

    @property
    def mode(self) -> int:
        return self._h.latest.mode

    def last_command_time(self) -> float:
        return self._h.latest.t0


@dataclass(frozen=True)
class _ChamberProgram:
    t0: float
    mode: int
    done_at: float

    def code(self, t: float) -> int:
        return CHAMBER_TRANSIT_CODE[self.mode] if t < self.done_at else \
            CHAMBER_FINAL_CODE[self.mode]


class Chamber:
    """Sample-space atmosphere. Modes: 0 seal, 1 purge_seal, 2 vent_seal, 3 pump_continuous,
    4 vent_continuous, 5 high_vacuum; each passes a transition state (Performing Purge/Seal,
    Pre-HiVac, ...) for CHAMBER_TRANSITION_S before its final state."""

    MODES = {0: "seal", 1: "purge_seal", 2: "vent_seal", 3: "pump_continuous",
             4: "vent_continuous", 5: "high_vacuum"}

    def __init__(self, *, initial_mode: int = 1, modes=(0, 1, 2, 3, 4, 5)):
        self.modes = tuple(modes)
        self._h = _History(_ChamberProgram(-math.inf, initial_mode, -math.inf))

    def validate(self, mode: int) -> None:
        if mode not in self.modes:
            raise LimitError("chamber mode", mode,
                             ", ".join(f"{m} ({self.MODES[m]})" for m in self.modes))

    def set(self, t: float, mode: int) -> None:
        self.validate(mode)
        self._h.add(t, _ChamberProgram(t, int(mode), t + CHAMBER_TRANSITION_S[mode]))

    def state_code(self, t: float) -> int:
        return self._h.at(t).code(t)

    def state_text(self, t: float) -> str:
        return CHAMBER_TEXT[self.state_code(t)]

    def ppms_text(self, t: float) -> str:
        return CHAMBER_PPMS_TEXT[self.state_code(t)]

    def settled_at(self, t: float) -> float:
        return self._h.at(t).done_at

    def is_done(self, t: float) -> bool:
        """Wait-for criterion of MultiPyVu: the state the current mode aims at."""
        return self.state_code(t) in CHAMBER_DONE[self._h.at(t).mode]

    @property
    def mode(self) -> int:
        return self._h.latest.mode
