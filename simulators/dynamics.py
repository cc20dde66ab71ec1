"""Instrument physics of a Quantum Design cryostat, independent of any wire protocol.

Every class here is a pure function of instrument time and of the commands it received, each
command stamped with the instrument time it arrived (``set(t, ...)``). State is computed lazily
at whatever time is asked for (``value(t)``, ``state_code(t)``), so there is no ticking thread
and a state at a past time is still available (command history is kept). The MPMS3 simulator
serves this over MultiPyVu; the PPMS simulator will serve it over GPIB.

State codes are shared by both front ends: the temperature, magnet and chamber numbers of
MultiVu (``state_text``, instruments.md §2.3) and of the PPMS GETDAT? status nibbles
(``ppms_text``, §1.3) coincide; only the wording differs.

Timing constants are instrument seconds (reference/timing.md gives the measured totals).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

# -- state tables -----------------------------------------------------------------------------
TEMP_TEXT = {1: "Stable", 2: "Tracking", 5: "Near", 6: "Chasing", 7: "Pot Operation",
             10: "Standby", 13: "Diagnostic", 14: "Impedance Control Error",
             15: "General Failure"}
TEMP_PPMS_TEXT = {0: "unknown", 1: "stable", 2: "tracking",
                  5: "within tolerance, waiting for equilibrium", 6: "outside tolerance",
                  7: "filling/emptying reservoir", 10: "standby", 13: "control disabled",
                  14: "impedance not functioning", 15: "failure"}
#: MultiVu's CheckStability() blacklist: these temperature codes mean "still moving".
TEMP_MOVING_CODES = (0, 2, 5, 6, 7)

FIELD_TEXT = {0: "Unknown", 1: "Stable", 2: "Switch Warming", 3: "Switch Cooling",
              4: "Holding (driven)", 5: "Iterate", 6: "Ramping", 7: "Ramping",
              8: "Resetting", 9: "Current Error", 10: "Switch Error", 11: "Quenching",
              12: "Charging Error", 14: "PSU Error", 15: "General Failure"}
FIELD_PPMS_TEXT = {0: "unknown", 1: "persistent, stable", 2: "persistent switch warming",
                   3: "persistent switch cooling", 4: "driven, stable",
                   5: "driven, final approach", 6: "charging", 7: "discharging",
                   8: "current error", 15: "failure"}

CHAMBER_TEXT = {0: "Unknown", 1: "Purged and Sealed", 2: "Vented and Sealed",
                3: "Sealed (condition unknown)", 4: "Performing Purge/Seal",
                5: "Performing Vent/Seal", 6: "Pre-HiVac", 7: "HiVac",
                8: "Pumping Continuously", 9: "Flooding Continuously", 14: "HiVac Error",
                15: "General Failure"}
CHAMBER_PPMS_TEXT = {0: "unknown", 1: "purged and sealed", 2: "vented and sealed",
                     3: "sealed, condition unknown", 4: "performing purge/seal",
                     5: "performing vent/seal", 6: "pre-high vacuum", 7: "high vacuum",
                     8: "pumping continuously", 9: "venting continuously",
                     14: "high vacuum error", 15: "failure"}

# -- timing and noise constants (instrument seconds, K, Oe) --------------------------------------
SETTLE_BASE_S = 5.0            # temperature settle after the ramp, small steps
SETTLE_PER_K_S = 0.5           # ...plus this per kelvin of step (bigger steps ring longer)
SETTLE_LOW_T_EXTRA_S = 15.0    # below LOW_T_K the sample chamber equilibrates slowly
SETTLE_MAX_S = 600.0
NO_OVERSHOOT_SETTLE_FACTOR = 2.0
LOW_T_K = 10.0
OVERSHOOT_BELOW_K = 50.0       # fast-settle overshoot only matters at low temperature
SWITCH_WARM_S = 15.0           # persistent switch heater on (ppmssim-like figure)
SWITCH_COOL_S = 15.0
FINAL_APPROACH_S = 2.0         # driven magnet: short iterate/final approach at the set point
NO_OVERSHOOT_SLOWDOWN = 5.0    # no_overshoot: last part of the ramp at rate/5
OSC_RATIO = 0.4                # oscillate: each overshoot is this fraction of the previous
CHAMBER_TRANSITION_S = {0: 2.0, 1: 120.0, 2: 45.0, 3: 0.0, 4: 0.0, 5: 300.0}
CHAMBER_TRANSIT_CODE = {0: 3, 1: 4, 2: 5, 3: 8, 4: 9, 5: 6}
CHAMBER_FINAL_CODE = {0: 3, 1: 1, 2: 2, 3: 8, 4: 9, 5: 7}
#: Chamber states that satisfy a wait-for, per mode (MultiPyVu CommandChamber.test()).
CHAMBER_DONE = {0: (1, 2, 3), 1: (1,), 2: (1, 2, 3), 3: (8,), 4: (9,), 5: (7,)}


class LimitError(ValueError):
    """A command argument outside the instrument's range; names parameter, value, range."""

    def __init__(self, parameter: str, value, allowed: str):
        self.parameter, self.value, self.allowed = parameter, value, allowed
        super().__init__(f"{parameter} = {value!r} is outside the allowed range {allowed}")


def time_noise(seed: int, salt: int, t: float, sigma: float) -> float:
    """Gaussian noise that is a pure function of (seed, salt, instrument time to the ms)."""
    key = [int(seed) & 0xFFFFFFFF, int(salt), int(round(t * 1000.0))]
    return float(np.random.default_rng(key).normal(0.0, sigma))


@dataclass(frozen=True)
class Segment:
    """Linear piece of a trajectory: value goes v0 -> v1 over [t0, t1] with state ``code``."""
    t0: float
    t1: float
    v0: float
    v1: float
    code: int

    def value(self, t: float) -> float:
        if self.t1 <= self.t0:
            return self.v1
        f = min(1.0, max(0.0, (t - self.t0) / (self.t1 - self.t0)))
        return self.v0 + (self.v1 - self.v0) * f


class _History:
    """Programs (one per command) sorted by command time; the latest one at t is in force."""

    def __init__(self, initial, keep: int = 64):
        self._times: list[float] = [-math.inf]
        self._progs: list = [initial]
        self._keep = keep

    def add(self, t: float, prog) -> None:
        i = bisect.bisect_right(self._times, t)
        del self._times[i:], self._progs[i:]          # a command supersedes later ones
        self._times.append(t)
        self._progs.append(prog)
        if len(self._times) > self._keep:
            del self._times[1:-self._keep], self._progs[1:-self._keep]

    def at(self, t: float):
        return self._progs[bisect.bisect_right(self._times, t) - 1]

    @property
    def latest(self):
        return self._progs[-1]


# -- temperature ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _TempProgram:
    t0: float
    T0: float
    setpoint: float
    rate_K_per_min: float
    approach: int
    ramp_end: float       # instrument time the ramp (Tracking) ends
    ramp_target: float    # temperature at the end of the ramp
    stable_at: float      # instrument time the controller reports Stable
    overshoot_K: float

    def value(self, t: float) -> float:
        if t >= self.stable_at:
            return self.setpoint
        if t < self.ramp_end:
            rate = self.rate_K_per_min / 60.0
            step = math.copysign(rate * (t - self.t0), self.ramp_target - self.T0)
            return self.T0 + step
        u = (t - self.ramp_end) / max(self.stable_at - self.ramp_end, 1e-9)
        if self.approach == 1:      # no overshoot: decelerate onto the set point
            return self.setpoint + (self.ramp_target - self.setpoint) * (1.0 - u) ** 2
        sign = math.copysign(1.0, self.setpoint - self.T0)
        return self.setpoint + sign * self.overshoot_K * 6.75 * u * (1.0 - u) ** 2

    def code(self, t: float) -> int:
        if t >= self.stable_at:
            return 1
        return 2 if t < self.ramp_end else 5


class TemperatureControl:
    """Sample-chamber temperature: ramp at the rate (Tracking), settle (Near), Stable.

    ``approach`` 0 = fast_settle (small overshoot below 50 K), 1 = no_overshoot (slows down
    onto the set point, settles twice as long). Limits in K and K/min.
    """

    def __init__(self, *, initial_K: float = 300.0, limits_K=(1.8, 400.0),
                 rate_limits_K_per_min=(0.01, 20.0), seed: int = 0):
        self.limits_K = limits_K
        self.rate_limits_K_per_min = rate_limits_K_per_min
        self.seed = seed
        self._h = _History(_TempProgram(-math.inf, initial_K, initial_K, 1.0, 0,
                                        -math.inf, initial_K, -math.inf, 0.0))
        self._excursions: tuple = ()      # (t0, t1, delta K) windows, see add_excursion()

    @staticmethod
    def settle_time_s(setpoint_K: float, step_K: float, approach: int) -> float:
        s = SETTLE_BASE_S + SETTLE_PER_K_S * step_K
        if setpoint_K < LOW_T_K:
            s += SETTLE_LOW_T_EXTRA_S
        s = min(s, SETTLE_MAX_S)
        return s * (NO_OVERSHOOT_SETTLE_FACTOR if approach == 1 else 1.0)

    def validate(self, setpoint_K: float, rate_K_per_min: float, approach: int) -> None:
        lo, hi = self.limits_K
        if not lo <= setpoint_K <= hi:
            raise LimitError("temperature set point (K)", setpoint_K, f"{lo}-{hi} K")
        rlo, rhi = self.rate_limits_K_per_min
        if not rlo <= rate_K_per_min <= rhi:
            raise LimitError("temperature rate (K/min)", rate_K_per_min, f"{rlo}-{rhi} K/min")
        if approach not in (0, 1):
            raise LimitError("temperature approach", approach,
                             "0 (fast_settle) or 1 (no_overshoot)")

    def set(self, t: float, setpoint_K: float, rate_K_per_min: float, approach: int) -> None:
        """Command a new set point at instrument time ``t`` (Unix s)."""
        self.validate(setpoint_K, rate_K_per_min, approach)
        T0 = self.value(t)
        step = abs(setpoint_K - T0)
        settle = self.settle_time_s(setpoint_K, step, approach)
        rate_s = rate_K_per_min / 60.0
        ramp_target, overshoot = setpoint_K, 0.0
        if approach == 1:
            # Hand over to the deceleration with a continuous slope: B = rate*settle/2.
            b = min(step, rate_s * settle / 2.0)
            ramp_target = setpoint_K - math.copysign(b, setpoint_K - T0)
        elif setpoint_K < OVERSHOOT_BELOW_K:
            overshoot = min(0.03 * step, 0.05 * setpoint_K, 0.5)
        ramp_end = t + abs(ramp_target - T0) / rate_s
        self._h.add(t, _TempProgram(t, T0, float(setpoint_K), float(rate_K_per_min),
                                    int(approach), ramp_end, ramp_target,
                                    ramp_end + settle, overshoot))

    def add_excursion(self, t0: float, t1: float, delta_K: float) -> None:
        """Fault (:mod:`.faults`): over ``[t0, t1)`` the temperature is ``delta_K`` off whatever
        the controller does and reads Chasing / outside tolerance (code 6); then it is back.
        Scheduled ahead and evaluated lazily like every read-out (windows may overlap: they add).
        """
        if not (math.isfinite(t0) and t1 > t0):
            raise ValueError(f"excursion window [{t0!r}, {t1!r}) must have t1 > t0 (instrument s)")
        self._excursions = self._excursions + ((float(t0), float(t1), float(delta_K)),)

    def _excursion_at(self, t: float) -> tuple[float, float]:
        """(summed offset K, latest end) of the excursions in force at ``t``; (0, -inf) if none."""
        delta, end = 0.0, -math.inf
        for a, b, d in self._excursions:
            if a <= t < b:
                delta, end = delta + d, max(end, b)
        return delta, end

    # -- read-outs ----------------------------------------------------------------------------
    def value(self, t: float) -> float:
        """True (noise-free) temperature at ``t``, K."""
        delta, _ = self._excursion_at(t)
        v = self._h.at(t).value(t)
        return max(v + delta, 0.1) if delta else v

    def reading(self, t: float) -> float:
        """Thermometer reading at ``t`` (value plus time-keyed noise), K."""
        T = self.value(t)
        return T + time_noise(self.seed, 1, t, 2e-4 * T + 1e-3)

    def state_code(self, t: float) -> int:
        if self._excursion_at(t)[1] > t:
            return 6                           # Chasing / outside tolerance
        return self._h.at(t).code(t)

    def state_text(self, t: float) -> str:
        return TEMP_TEXT[self.state_code(t)]

    def ppms_text(self, t: float) -> str:
        return TEMP_PPMS_TEXT[self.state_code(t)]

    def settled_at(self, t: float) -> float:
        """Instrument time at which the current command reports Stable (may be < t); during
        an excursion not before its end."""
        return max(self._h.at(t).stable_at, self._excursion_at(t)[1])

    @property
    def setpoint_K(self) -> float:
        return self._h.latest.setpoint

    @property
    def rate_K_per_min(self) -> float:
        return self._h.latest.rate_K_per_min

    @property
    def approach(self) -> int:
        return self._h.latest.approach

    def last_command_time(self) -> float:
        return self._h.latest.t0


# Magnet and chamber live in their own module to keep files short; re-exported lazily here
# (PEP 562) so callers import every dynamics class from one place without a circular import.
_MAGNET_NAMES = ("Magnet", "Chamber", "DRIVEN", "PERSISTENT", "LINEAR", "NO_OVERSHOOT",
                 "OSCILLATE")


def __getattr__(name: str):
    if name in _MAGNET_NAMES:
        from . import dynamics_magnet
        return getattr(dynamics_magnet, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
