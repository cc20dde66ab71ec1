"""NKT/ALDS PiLas picosecond diode laser (EIG2000DX controller): plain ASCII over RS-232.

Protocol (instruments.md §4.2; comet driver/emulator, Lab5015Utils): 19200 baud 8N1, ``\\n`` ends
every line both ways; replies are labelled text, parsed with regexes (an older driver's bare
``int(query("ld?"))`` does not match the firmware):

=================  ==============================================  ==========================
command            reply                                            meaning
=================  ==============================================  ==========================
``version?``       8 lines ``key: value`` (``center wavelength:``)  identification
``ld?``            ``pulsed laser emission: on`` / ``off``        emission state
``ld=0|1``         ``done``                                         emission off / on
``tm?``            ``tune mode:\\tmanual`` / ``auto``               tune mode
``tm=0|1``         ``done``                                         manual / auto tune
``tune?``          ``tune value:\\t\\t     45.00 %``                 intensity (percent)
``tune=0..1000``   ``done``                                         intensity, tenths of a %
``f?``             ``int. frequency:\\t       1000000 Hz``          repetition rate
``f=25..40e6``     ``done``                                         repetition rate (Hz)
``ts=0|1|2``       ``done``                                         trigger: internal, ext., TTL
``lht?``           ``laser head temp.:\\t     25.0 °C`` (latin-1)    head temperature
``ldtemp?``        ``LD temp.:\\t\\tgood``                           diode temperature status
=================  ==============================================  ==========================

``tune=`` is answered ``done`` here like every setter (Lab5015Utils *queries* ``tune=``; the
comet emulator sends nothing). The PiLas has no soft lock: emission off (``ld=0``) is the lock,
and it is pulsed only (no CW option). ``tune=`` per mille = intensity_permille.

**Faults** (the driver's :class:`~.retry.RetryPolicy`, :mod:`.retry`; default none, the
``RetryPolicy()`` of :func:`~.laser.connect_pilas`): a reply that does not match its pattern
(or identification lines that do not parse) is a :class:`~.retry.GarbledReply`, a missing line
end after ``timeout_s`` an :class:`~.errors.InstrumentTimeout`; both are retried (the
connection is reopened before retrying after a timeout, so a late reply is never taken for the
next command's), a lost connection (pyserial ``socket://`` closed or refused) is reconnected
on the policy's back-off. An ``error...`` reply (the simulator's form; the controller's own
is undocumented) is a refusal and never retried. Every PiLas command is safe to repeat, so each is retried alone:
queries read, and the setters send absolute values (``ld=0|1``, ``tm=``, ``tune=``, ``f=``,
``ts=``): a setter whose ``done`` was lost or garbled was executed, and sending it again sets
the same value. :meth:`PiLasDriver.open` (identify, manual tuning, trigger) is repeated whole.
Nothing is stored per connection, so a reconnection needs no re-opening.
"""

from __future__ import annotations

import re

from .clib import check_int
from .commands import Choice, Command, Driver, Param, parse_reply
from .errors import InstrumentError, check_choice
from .retry import GarbledReply, RetryPolicy

#: PiLas internal trigger range (Hz).
FREQUENCY_LIMITS_HZ = (25.0, 40e6)
VERSION_LINES = 8
_DONE = "done"


def _int_fmt(name: str, low: float, high: float, unit: str = ""):
    return lambda v: str(check_int(name, v, low, high, unit))


class PiLasDriver(Driver):
    """Command table of one PiLas; :meth:`open` identifies it and selects manual tuning and
    the internal trigger. Implements the laser-driver interface of
    :class:`~.laser.PicosecondLaser`."""

    instrument = "pilas"
    modes = ("pulsed",)
    frequency_limits_hz = FREQUENCY_LIMITS_HZ

    get_emission = Command("ld?", reply=r"pulsed laser emission:\s*(on|off)",
                           parse=lambda m: m[1] == "on", doc="True when the laser emits")
    _set_emission = Command("ld={emission}", (Param("emission", 0, 1, fmt=_int_fmt("emission", 0, 1)),),
                            reply=_DONE)
    get_tune_auto = Command("tm?", reply=r"tune mode:\s*(auto|manual)", parse=lambda m: m[1] == "auto")
    _set_tune_mode = Command("tm={auto}", (Param("auto", 0, 1, fmt=_int_fmt("auto", 0, 1)),),
                             reply=_DONE)
    _get_tune = Command("tune?", reply=r"tune value:\s*([\d.]+)\s*%",
                        parse=lambda m: round(float(m[1]) * 10), doc="intensity, per mille")
    _set_tune = Command("tune={intensity_permille}",
                        (Param("intensity_permille", 0, 1000, "per mille",
                               fmt=_int_fmt("intensity_permille", 0, 1000, "per mille")),),
                        reply=_DONE)
    _get_frequency = Command("f?", reply=r"int\. frequency:\s*(\d+)\s*Hz", parse=lambda m: float(m[1]))
    _set_frequency = Command("f={repetition_rate_hz}",
                             (Param("repetition_rate_hz", *FREQUENCY_LIMITS_HZ, "Hz",
                                    fmt=_int_fmt("repetition_rate_hz", *FREQUENCY_LIMITS_HZ, "Hz")),),
                             reply=_DONE)
    _set_trigger = Command("ts={trigger}", (Choice("trigger", {"internal": 0, "external": 1,
                                                               "ttl": 2}),), reply=_DONE)
    get_head_temperature_C = Command("lht?", reply=r"laser head temp\.:\s*([-+\d.]+)\s*°C",
                                     parse=lambda m: float(m[1]))
    get_diode_temperature_status = Command("ldtemp?", reply=r"LD temp\.:\s*(\S+)",
                                           parse=lambda m: m[1])

    def __init__(self, transport, *, name: str | None = None, retry: RetryPolicy | None = None):
        super().__init__(transport, retry=retry)
        self.instrument = name or getattr(transport, "name", None) or type(self).instrument
        self.identity: dict[str, str] = {}
        self.wavelength_nm = float("nan")

    def _execute_once(self, cmd: Command, wire: str, args: tuple, kwargs: dict):
        reply = self.transport.query(wire)        # every PiLas command is answered
        if reply.startswith("error"):
            raise InstrumentError(self.instrument, wire, reply, "the PiLas refused the command")
        return parse_reply(self.instrument, cmd, wire, reply)

    # -- connection -------------------------------------------------------------------------
    def identify(self) -> dict[str, str]:
        """``version?``: 8 ``key: value`` lines -> dict (retried as one command)."""
        return self.retrying(self._identify_once, "version?")

    def _identify_once(self) -> dict[str, str]:
        t = self.transport
        with t.lock:
            lines = t.query("version?").split("\n")
            read_line = getattr(t, "read_line", None)
            while len(lines) < VERSION_LINES and read_line is not None:
                lines.append(read_line("version?"))
        info = {}
        for line in lines:
            key, sep, value = line.partition(":")
            if not sep:
                raise GarbledReply(self.instrument, "version?", "\n".join(lines),
                                   f"unexpected identification line {line!r}")
            info[key.strip()] = value.strip()
        if len(info) != VERSION_LINES:
            raise GarbledReply(self.instrument, "version?", "\n".join(lines),
                               f"expected {VERSION_LINES} identification lines")
        return info

    def open(self, *, trigger: str = "internal") -> "PiLasDriver":
        """Identify, select manual tuning (so ``tune=`` applies) and the trigger source; after
        a fault the whole sequence again (each step is safe to repeat)."""
        self.retrying(lambda: self._open_once(trigger), "open")
        return self

    def _open_once(self, trigger: str) -> None:
        self.identity = self.identify()
        m = re.fullmatch(r"([\d.]+)\s*nm", self.identity.get("center wavelength", ""))
        if m is None:
            raise GarbledReply(self.instrument, "version?", str(self.identity),
                               "no 'center wavelength: <n> nm' line")
        self.wavelength_nm = float(m[1])
        self._set_tune_mode(0)
        self._set_trigger(trigger)

    # -- laser-driver interface ---------------------------------------------------------------
    def check_repetition_rate_hz(self, hz) -> int:
        return check_int("repetition_rate_hz", hz, *FREQUENCY_LIMITS_HZ, "Hz")

    def set_repetition_rate_hz(self, hz) -> None:
        self._set_frequency(hz)

    def get_repetition_rate_hz(self) -> float:
        return self._get_frequency()

    def check_intensity_permille(self, permille) -> int:
        return check_int("intensity_permille", permille, 0, 1000, "per mille")

    def set_intensity_permille(self, permille) -> None:
        self._set_tune(permille)

    def get_intensity_permille(self) -> int:
        return self._get_tune()

    def check_mode(self, mode) -> str:
        return check_choice("mode", mode, self.modes)

    def set_mode(self, mode) -> None:
        self.check_mode(mode)          # pulsed only: nothing to send

    def get_mode(self) -> str:
        return "pulsed"

    def set_soft_lock(self, locked: bool) -> None:
        self._set_emission(0 if locked else 1)

    def get_soft_lock(self) -> bool:
        return not self.get_emission()

    def get_locked(self) -> bool:
        return not self.get_emission()
