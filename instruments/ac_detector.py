"""ac susceptibility as an Ophyd detector, fed by the MultiVu ``.dat`` seam (MPMS3 AC, PPMS ACMS).

Follow and request modes come from :class:`~.dat_detector.DatRowDetector`. In ``request`` mode
each ``trigger()`` calls ``driver.ac_measure(frequency_hz, amplitude_oe, averaging_s, cycles)``
(the ``SPINLIGHT_AC`` simulator extension on the MPMS3) and completes with the row carrying
the returned Measurement Number; in ``follow`` mode it completes with the next ac row a real
MultiVu AC/ACMS sequence appends.

Plans set ``frequency_hz``, ``amplitude_oe`` (read in every event) and ``averaging_s``,
``cycles`` (configuration) before triggering; each ``put`` is checked against the driver's
instrument limits (:func:`ac_limits`) before anything is sent. After a trigger,
``frequency_hz`` and ``amplitude_oe`` show the values the row reports; the next request still
uses what the plan set.

Rows of either layout are read through the canonical aliases of
:data:`spinlight.instruments.qd_dat.AC_ALIASES`: MPMS3 ``AC X' (emu/Oe)`` columns directly,
moment-type columns (``M' (emu)``, ``m' (emu)``, PPMS ACMS / MPMS-XL) divided by the drive
amplitude, so ``chi_real``/``chi_imag`` are always in emu/Oe.
"""

from __future__ import annotations

import math

from ophyd import Component as Cpt
from ophyd import Signal

from .commands import Command
from .dat_detector import DatRowDetector, first_filled
from .errors import check_range
from .qd_dat import AC_ALIASES

#: The settings a request sends, in the driver's argument order.
AC_SETTINGS = ("frequency_hz", "amplitude_oe", "averaging_s", "cycles")


def ac_limits(driver) -> dict[str, tuple[float, float, str]]:
    """``{setting: (low, high, unit)}`` of a driver: its ``ac_limits`` mapping if it has one,
    else the parameters of its declarative ``ac_measure`` command; ``{}`` if neither."""
    limits = getattr(driver, "ac_limits", None)
    if limits:
        return {k: tuple(v) for k, v in dict(limits).items()}
    cmd = getattr(type(driver), "ac_measure", None)
    if isinstance(cmd, Command):
        return {p.name: (p.low, p.high, p.unit) for p in cmd.params}
    return {}


def row_ac(row: dict) -> dict[str, float] | None:
    """Canonical ac values of one ``.dat`` row (chi in emu/Oe, f in Hz, drive in Oe, T in K,
    H in Oe), or None if the row holds no ac point. Moment-type columns (emu) are divided by
    the drive amplitude."""
    col, chi_real = first_filled(row, AC_ALIASES["chi_real"])
    if col is None:
        return None
    drive = first_filled(row, AC_ALIASES["drive"])[1]
    out = {"chi_real": chi_real, "drive": drive,
           "frequency": first_filled(row, AC_ALIASES["frequency"])[1]}
    for key in ("chi_imag", "chi_real_err", "chi_imag_err"):
        out[key] = first_filled(row, AC_ALIASES[key])[1]
    if not col.endswith("(emu/Oe)"):
        for key in ("chi_real", "chi_imag"):
            out[key] /= drive
    for key in ("chi_real_err", "chi_imag_err"):   # each error column has its own unit
        name = first_filled(row, AC_ALIASES[key])[0]
        if name is not None and not name.endswith("(emu/Oe)"):
            out[key] /= drive
    return out


class _AcSetting(Signal):
    """A setting for the next requested point; ``put`` validates it against the driver's
    limits first. :meth:`show` records a value reported by a row without validating it."""

    def put(self, value, **kwargs):
        v = self.parent.check_setting(self.attr_name, value)
        self.parent._settings[self.attr_name] = v
        super().put(v, **kwargs)

    def show(self, value) -> None:
        Signal.put(self, value)


class ACDetector(DatRowDetector):
    """chi' and chi'' (emu/Oe) with standard errors, frequency, drive, T, H and time."""

    chi_real = Cpt(Signal, value=math.nan, kind="hinted")
    chi_imag = Cpt(Signal, value=math.nan, kind="hinted")
    chi_real_err = Cpt(Signal, value=math.nan, kind="normal")
    chi_imag_err = Cpt(Signal, value=math.nan, kind="normal")
    frequency_hz = Cpt(_AcSetting, value=100.0, kind="normal")
    amplitude_oe = Cpt(_AcSetting, value=2.0, kind="normal")
    averaging_s = Cpt(_AcSetting, value=2.0, kind="config")
    cycles = Cpt(_AcSetting, value=2, kind="config")

    measurement_kind = "AC measurement"

    def __init__(self, *args, driver, datafile: str | None = None, mode: str = "request",
                 **kwargs):
        super().__init__(*args, driver=driver, datafile=datafile, mode=mode, **kwargs)
        self.limits = ac_limits(driver)
        if mode == "request" and not self.limits:
            raise ValueError(f"request mode needs a driver with ac_measure (got {driver!r})")
        self._settings = {}
        for name in AC_SETTINGS:       # the defaults must fit this instrument too
            getattr(self, name).put(getattr(self, name).get())

    def check_setting(self, name: str, value):
        """``value`` checked against the instrument's range for setting ``name``."""
        if name not in self.limits:
            return value
        lo, hi, unit = self.limits[name]
        v = check_range(name, value, lo, hi, unit)
        if name == "cycles":
            if not v.is_integer():
                raise ValueError(f"cycles={value!r} is not a whole number; allowed {lo}..{hi}")
            return int(v)
        return v

    def _accepts(self, row: dict) -> bool:
        return row_ac(row) is not None

    def _request(self) -> int | None:
        return self.driver.ac_measure(*(self._settings[k] for k in AC_SETTINGS))

    def _publish_row(self, row: dict) -> None:
        ac = row_ac(row)
        self.chi_real.put(ac["chi_real"])
        self.chi_imag.put(ac["chi_imag"])
        self.chi_real_err.put(ac["chi_real_err"])
        self.chi_imag_err.put(ac["chi_imag_err"])
        self.frequency_hz.show(ac["frequency"])
        self.amplitude_oe.show(ac["drive"])
