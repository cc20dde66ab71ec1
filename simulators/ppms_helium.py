"""The PPMS liquid-helium bath and its level meter (``LEVEL?`` / ``LEVELON`` of :mod:`.ppms`).

The level (%) falls linearly on instrument time: a constant boil-off plus an extra rate while
the magnet leads carry current. Faults and planned refills schedule level changes ahead
(:meth:`HeliumLevel.schedule`, used by :class:`.fault_kinds.CryostatFaults` for
``helium_low``); everything is evaluated lazily when the level is read, so the helium never
keeps the virtual clock running.

``LEVEL?`` replies ``percent,age``: the age code is 0 ``>1h``, 1 ``<1h``, 2 ``continuous``
(index order of slave's Enum [inferred]); ``LEVELON n`` sets the meter: 0 on (one reading),
1 continuous (default), 2 hourly, 3 off.
"""

from __future__ import annotations

import math

from .dynamics import LimitError

AGE_OVER_1H, AGE_UNDER_1H, AGE_CONTINUOUS = 0, 1, 2
LEVEL_ON, LEVEL_CONTINUOUS, LEVEL_HOURLY, LEVEL_OFF = 0, 1, 2, 3


class HeliumLevel:
    """Liquid-helium level (%), falling linearly on instrument time.

    ``boiloff`` %/h always, plus ``driven_extra`` %/h while the magnet leads carry current
    (from a FIELD command until the switch has cooled in persistent mode; indefinitely in
    driven mode). The level meter answers continuously by default; in the other LEVELON modes
    it reports its last reading and that reading's age.
    """

    def __init__(self, t: float, percent: float, boiloff: float, driven_extra: float):
        for name, v in (("helium boil-off (%/h)", boiloff),
                        ("driven-magnet extra boil-off (%/h)", driven_extra)):
            if not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"{name} = {v!r} must be a finite number >= 0")
        self.boiloff, self.driven_extra = float(boiloff), float(driven_extra)
        self._t0, self._p0 = t, 0.0
        self._energised: list[tuple[float, float]] = []
        self._scheduled: tuple = ()       # (t, serial, percent) level changes, see schedule()
        self._serial = self._anchor_serial = 0
        self.refill(t, percent)
        self.meter_mode = LEVEL_CONTINUOUS
        self._read_t, self._read_v = t, self._p0

    def schedule(self, t: float, percent: float) -> None:
        """The level becomes ``percent`` at instrument time ``t`` (a fault or a planned refill,
        :mod:`.faults`); applied lazily, superseded by a later-issued :meth:`refill`."""
        self._check(percent)
        self._serial += 1
        self._scheduled = tuple(sorted(self._scheduled + ((float(t), self._serial,
                                                           float(percent)),)))

    def percent(self, t: float) -> float:
        t0, p0 = self._t0, self._p0
        for ts, serial, ps in self._scheduled:   # the latest scheduled change since the anchor
            if (ts, serial) > (self._t0, self._anchor_serial) and ts <= t:
                t0, p0 = ts, ps
        t = max(t, t0)
        used = self.boiloff * (t - t0)
        used += self.driven_extra * sum(max(0.0, min(t, b) - max(t0, a))
                                        for a, b in self._energised)
        return max(0.0, p0 - used / 3600.0)

    def _anchor(self, t: float, percent: float) -> None:
        self._serial += 1
        self._t0, self._p0, self._anchor_serial = t, percent, self._serial
        self._energised = [(t, b) for _, b in self._energised if b > t]

    @staticmethod
    def _check(percent: float) -> None:
        if not 0.0 <= percent <= 100.0:
            raise ValueError(f"helium level = {percent!r} % is outside the allowed range 0-100 %")

    def refill(self, t: float, percent: float) -> None:
        self._check(percent)
        self._anchor(t, float(percent))

    def energise(self, t: float, until: float) -> None:
        """A FIELD command at ``t``: the leads carry current until ``until`` (supersedes)."""
        self._anchor(t, self.percent(t))
        self._energised = [(t, until)]

    def set_meter(self, t: float, mode: int) -> None:
        if mode not in (0, 1, 2, 3):
            raise LimitError("level meter mode", mode, "0 (on), 1 (continuous), 2 (hourly), 3 (off)")
        self.meter_mode = mode
        self._read_t, self._read_v = t, self.percent(t)

    def reading(self, t: float) -> tuple[float, int]:
        """(percent, age code) as LEVEL? reports it at ``t``."""
        if self.meter_mode == LEVEL_CONTINUOUS:
            return self.percent(t), AGE_CONTINUOUS
        if self.meter_mode == LEVEL_HOURLY and t - self._read_t >= 3600.0:
            self._read_t, self._read_v = t, self.percent(t)
        return self._read_v, AGE_UNDER_1H if t - self._read_t < 3600.0 else AGE_OVER_1H
