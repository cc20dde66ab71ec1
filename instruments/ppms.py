"""Quantum Design PPMS driver: the Model 6000 controller's GPIB command set (no Bluesky here).

Command set, limits and status codes from instruments.md §1 (slave, KAME, Julia and MATLAB
drivers). Replies end with ``;`` (stripped here, whatever the transport's termination); every
argument is validated before anything is sent. Set commands get no reply on GPIB, so each
setting is read back (``TEMP?``, ``FIELD?``, ``CHAMBER?``) and a mismatch raises
:class:`InstrumentError`: a controller that silently refused a setting is caught at once.
With a :class:`~.retry.RetryPolicy` a set command and its read-back are retried together.
Readings come from ``GETDAT? <mask>`` (:meth:`PPMSDriver.getdat`); the status word packs four
nibbles decoded by :func:`decode_status`.

Against spinlight's simulator, ``SPINLIGHT_*`` queries (a documented simulator extension) give
the queued set-command errors, the ``.dat`` path and the virtual clock; a real PPMS rejects them.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass

from .commands import Choice, Command, Driver, Param
from .errors import InstrumentError
from .retry import GarbledReply
from .mpms3 import CHAMBER_MODE as _MULTIVU_CHAMBER_MODE
from .mpms3 import FIELD_APPROACH, MAGNET_MODE, NUMBER, TEMPERATURE_APPROACH, _whole_cycles

__all__ = ["PPMSDriver", "PPMSStatus", "SetCommand", "decode_status", "GETDAT_BITS",
           "TEMPERATURE_STATES", "MAGNET_STATES", "CHAMBER_STATES", "POSITION_STATES",
           "FIELD_APPROACH", "MAGNET_MODE", "TEMPERATURE_APPROACH", "CHAMBER_MODE"]

#: Instrument limits (slave's PPMS limits; 9 T magnet).
TEMPERATURE_RANGE_K = (1.9, 350.0)
TEMPERATURE_RATE_K_PER_MIN = (0.01, 20.0)
FIELD_RANGE_OE = (-90000.0, 90000.0)
FIELD_RATE_OE_PER_S = (10.5, 196.0)
POSITION_RANGE_DEG = (0.0, 360.0)
#: ACMS option (QD specification: 10 Hz–10 kHz, drive up to 17 Oe).
AC_FREQUENCY_HZ = (10.0, 10000.0)
AC_AMPLITUDE_OE = (0.002, 17.0)
AC_AVERAGING_S = (0.5, 600.0)
AC_CYCLES = (1, 1000)
#: Chamber codes of the Model 6000 (5 = high vacuum exists only on some systems: not sent).
CHAMBER_MODE = {k: v for k, v in _MULTIVU_CHAMBER_MODE.items() if v <= 4}
MOVE_MODE = {"move": 0, "limit_redefine": 1, "redefine": 2}
LEVEL_METER_MODE = {"on": 0, "continuous": 1, "hourly": 2, "off": 3}
LEVEL_AGE = {0: ">1h", 1: "<1h", 2: "continuous"}

#: GETDAT? bit numbers (§1.3): value n is bit 2**n of the mask; replies in ascending bit order.
GETDAT_BITS = {"status": 0, "temperature": 1, "field": 2, "position": 3,
               "bridge1_resistance": 4, "bridge1_current": 5, "bridge2_resistance": 6,
               "bridge2_current": 7, "bridge3_resistance": 8, "bridge3_current": 9,
               "bridge4_resistance": 10, "bridge4_current": 11, "signal1": 12, "signal2": 13,
               "digital_inputs": 14, "driver1_current": 15, "driver1_power": 16,
               "driver2_current": 17, "driver2_power": 18, "pressure": 19,
               **{f"user{i}": 19 + i for i in range(1, 11)}}
_BIT_NAMES = {b: n for n, b in GETDAT_BITS.items()}

#: Status-word nibble names (§1.3).
TEMPERATURE_STATES = {0: "unknown", 1: "stable", 2: "tracking",
                      5: "within tolerance, waiting for equilibrium", 6: "outside tolerance",
                      7: "filling/emptying reservoir", 10: "standby", 13: "control disabled",
                      14: "impedance not functioning", 15: "failure"}
MAGNET_STATES = {0: "unknown", 1: "persistent stable", 2: "persistent switch warming",
                 3: "switch cooling", 4: "driven stable", 5: "driven final approach",
                 6: "charging", 7: "discharging", 8: "current error", 15: "failure"}
CHAMBER_STATES = {0: "unknown", 1: "purged and sealed", 2: "vented and sealed",
                  3: "sealed (condition unknown)", 4: "performing purge/seal",
                  5: "performing vent/seal", 6: "pre-HiVac", 7: "HiVac",
                  8: "pumping continuously", 9: "venting continuously", 14: "HiVac error",
                  15: "failure"}
POSITION_STATES = {0: "unknown", 1: "stopped", 5: "moving", 8: "limit", 9: "index",
                   15: "failure"}


@dataclass(frozen=True)
class PPMSStatus:
    """The GETDAT? status word decoded: names (§1.3) and raw nibble codes."""
    word: int
    temperature: str
    magnet: str
    chamber: str
    position: str
    temperature_code: int
    magnet_code: int
    chamber_code: int
    position_code: int


def decode_status(word: int) -> PPMSStatus:
    """Split the 16-bit status word into its temperature, magnet, chamber, position nibbles.

    A code the manual does not define is named ``"undefined code N"`` (never raises: the
    status must stay readable for interlocks); a word outside 0-65535 raises ``ValueError``.
    """
    if isinstance(word, bool) or int(word) != word or not 0 <= word <= 0xFFFF:
        raise ValueError(f"status word = {word!r} is outside the allowed range 0-65535")
    word = int(word)
    codes = [(word >> (4 * i)) & 0xF for i in range(4)]
    names = [table.get(c, f"undefined code {c}") for table, c in
             zip((TEMPERATURE_STATES, MAGNET_STATES, CHAMBER_STATES, POSITION_STATES), codes)]
    return PPMSStatus(word, *names, *codes)


@dataclass(frozen=True)
class SetCommand(Command):
    """A write whose setting is then read back with ``readback`` (a query echoing the numbers
    just sent, in order); the driver raises :class:`InstrumentError` on any difference."""
    readback: str = ""


def _r(pattern: str) -> str:
    """A reply regex; the controller's trailing ``;`` is accepted and stripped."""
    return pattern + r";?"


def _fixed(decimals: int):
    return lambda v: f"{float(v):.{decimals}f}"


def _integer(name: str):
    def fmt(v):
        if float(v) != int(float(v)):
            raise ValueError(f"{name}={v!r} must be an integer")
        return str(int(float(v)))
    return fmt


def _floats(m) -> tuple:
    return tuple(float(x) for x in m.groups())


_N = NUMBER
_CSV = _N + r"(?:," + _N + r")*"


class PPMSDriver(Driver):
    """Command table for the PPMS Model 6000 controller."""

    instrument = "PPMS"

    set_temperature = SetCommand(
        "TEMP {temperature_K},{rate_K_per_min},{approach}",
        (Param("temperature_K", *TEMPERATURE_RANGE_K, "K", fmt=_fixed(4)),
         Param("rate_K_per_min", *TEMPERATURE_RATE_K_PER_MIN, "K/min", fmt=_fixed(2)),
         Choice("approach", TEMPERATURE_APPROACH)),
        readback="TEMP?", doc="Start a temperature approach (K, K/min, fast_settle|no_overshoot).")
    get_temperature_setpoint = Command(
        "TEMP?", reply=_r(f"{_N},{_N},(\\d)"),
        parse=lambda m: (float(m.group(1)), float(m.group(2)), int(m.group(3))),
        doc="(set point K, rate K/min, approach code)")

    set_field = SetCommand(
        "FIELD {field_Oe},{rate_Oe_per_s},{approach},{mode}",
        (Param("field_Oe", *FIELD_RANGE_OE, "Oe", fmt=_fixed(2)),
         Param("rate_Oe_per_s", *FIELD_RATE_OE_PER_S, "Oe/s", fmt=_fixed(1)),
         Choice("approach", FIELD_APPROACH), Choice("mode", MAGNET_MODE)),
        readback="FIELD?", doc="Start a field change (Oe, Oe/s, approach, persistent|driven).")
    get_field_setpoint = Command(
        "FIELD?", reply=_r(f"{_N},{_N},(\\d),(\\d)"),
        parse=lambda m: (float(m.group(1)), float(m.group(2)), int(m.group(3)), int(m.group(4))),
        doc="(set point Oe, rate Oe/s, approach code, magnet mode code)")

    set_chamber = SetCommand("CHAMBER {mode}", (Choice("mode", CHAMBER_MODE),),
                             readback="CHAMBER?", doc="seal, purge_seal, vent_seal, "
                             "pump_continuous or vent_continuous")
    get_chamber_mode = Command("CHAMBER?", reply=_r(r"(\d+)"), parse=lambda m: int(m.group(1)),
                               doc="last chamber command code")

    getdat_raw = Command(
        "GETDAT? {mask}", (Param("mask", 1, 2 ** 30 - 1, fmt=_integer("mask")),),
        reply=_r(r"(\d+),(" + _CSV + ")"),
        parse=lambda m: (int(m.group(1)), [float(x) for x in m.group(2).split(",")]),
        doc="(mask echoed, [timestamp, values...]); use getdat() for a checked dict")

    get_level = Command("LEVEL?", reply=_r(f"{_N},([012])"),
                        parse=lambda m: (float(m.group(1)), LEVEL_AGE[int(m.group(2))]),
                        doc="(helium level %, reading age '>1h' | '<1h' | 'continuous')")
    set_level_meter = Command("LEVELON {mode}", (Choice("mode", LEVEL_METER_MODE),),
                              doc="level meter: on (one reading), continuous, hourly, off")
    get_magnet_config = Command(
        "MAGCNF?", reply=_r(",".join([_N] * 7)),
        parse=lambda m: dict(zip(("max_field_Oe", "field_per_current_Oe_per_A",
                                  "inductance_H", "charge_voltage_low_V",
                                  "charge_voltage_high_V", "switch_heat_s", "switch_cool_s"),
                                 _floats(m))))

    move = Command(
        "MOVE {position_deg},{mode},{slowdown}",
        (Param("position_deg", *POSITION_RANGE_DEG, "deg", fmt=_fixed(3)),
         Choice("mode", MOVE_MODE), Param("slowdown", 0, 14, fmt=_integer("slowdown"))),
        doc="Move the sample rotator (deg); mode move | limit_redefine | redefine")
    get_move = Command("MOVE?", reply=_r(f"{_N},(\\d+),(\\d+)"),
                       parse=lambda m: (float(m.group(1)), int(m.group(2)), int(m.group(3))),
                       doc="(position deg, move mode code, slowdown code)")

    get_revision = Command("REV?", reply=_r(r"([^;]+)"), parse=lambda m: m.group(1))
    identify = Command("*IDN?", reply=_r(r"([^;]+)"), parse=lambda m: m.group(1))
    get_date = Command("DATE?", reply=_r(r"(\d{1,2}),(\d{1,2}),(\d{2})"),
                       parse=lambda m: datetime.date(2000 + int(m.group(3)), int(m.group(1)),
                                                     int(m.group(2))),
                       doc="controller date (two-digit year read as 20yy)")
    get_time = Command("TIME?", reply=_r(r"(\d{1,2}),(\d{1,2}),(\d{1,2})"),
                       parse=lambda m: datetime.time(*(int(g) for g in m.groups())))

    # -- simulator extension (documented; a real PPMS refuses these) -----------------------
    next_error = Command("SPINLIGHT_ERR?", reply=_r(r"(\d+),(.*?)"),
                         parse=lambda m: (int(m.group(1)), m.group(2)),
                         doc="Simulator: oldest refused set command (count, text); 0 = none")
    get_datafile = Command("SPINLIGHT_DATAFILE?", reply=_r(r"(.+?)"), parse=lambda m: m.group(1),
                           doc="Simulator: path of the ACMS .dat the simulator writes")
    ac_measure = Command(
        "SPINLIGHT_AC? {frequency_hz},{amplitude_oe},{averaging_s},{cycles}",
        (Param("frequency_hz", *AC_FREQUENCY_HZ, "Hz"), Param("amplitude_oe", *AC_AMPLITUDE_OE, "Oe"),
         Param("averaging_s", *AC_AVERAGING_S, "s"),
         Param("cycles", *AC_CYCLES, "", fmt=_whole_cycles)),
        reply=_r(r"(\d+)"), parse=lambda m: int(m.group(1)),
        doc="Simulator extension (ACMS has no GPIB command): queue one ACMS point at the "
            "current T and H (Hz, Oe, averaging s, cycles); returns its measurement number")
    get_clock = Command("SPINLIGHT_CLOCK?", reply=_r(f"{_N},{_N}"), parse=_floats,
                        doc="Simulator: (instrument time Unix s, speed factor)")

    # -- execution ------------------------------------------------------------------------
    def _execute_once(self, cmd: Command, wire: str, args: tuple, kwargs: dict):
        """One try: send, check the reply, read a setting back (retried as a whole)."""
        try:
            result = super()._execute_once(cmd, wire, args, kwargs)
        except InstrumentError as exc:
            reply = (exc.reply or "").strip().rstrip(";")
            if reply.upper().startswith("ERROR"):   # a refusal: never retried
                raise InstrumentError(self.instrument, exc.command, exc.reply,
                                      f"the controller refused the command: {reply}") from exc
            raise
        if isinstance(cmd, SetCommand) and cmd.readback:
            self._verify(wire, cmd.readback)
        return result

    def _verify(self, wire: str, readback: str) -> None:
        sent = [float(v) for v in wire.split(" ", 1)[1].split(",")]
        reply = self.transport.query(readback)
        text = reply.strip()
        text = text[:-1] if text.endswith(";") else text
        try:
            got = [float(v) for v in text.split(",")]
        except ValueError:
            got = None
        if got is None or len(got) != len(sent):
            raise GarbledReply(self.instrument, readback, reply,
                               f"cannot read back the setting of {wire!r}")
        if not all(math.isclose(a, b, rel_tol=1e-6, abs_tol=0.006) for a, b in zip(sent, got)):
            raise InstrumentError(self.instrument, wire, reply,
                                  f"setting not applied: {readback} reads {text!r}")

    # -- readings -------------------------------------------------------------------------
    def getdat(self, mask: int) -> dict:
        """``GETDAT? mask`` as ``{"timestamp": s, "status": PPMSStatus, "temperature": K,
        "field": Oe, ...}`` (keys from :data:`GETDAT_BITS`). The timestamp is the controller's
        clock in seconds (opaque on a real PPMS; instrument Unix time on the simulator)."""
        return self.retrying(lambda: self._getdat_once(mask), f"GETDAT? {mask}")

    def _getdat_once(self, mask: int) -> dict:
        echoed, values = self.getdat_raw(mask)
        bits = [b for b in range(30) if int(mask) >> b & 1]
        reply = ",".join([str(echoed)] + [repr(v) for v in values])
        if echoed != int(mask) or len(values) != 1 + len(bits):
            raise GarbledReply(self.instrument, f"GETDAT? {int(mask)}", reply,
                               f"expected mask {int(mask)} and {1 + len(bits)} values")
        out = {"timestamp": values[0]}
        for b, v in zip(bits, values[1:]):
            out[_BIT_NAMES[b]] = v
        if "status" in out:
            try:
                out["status"] = decode_status(out["status"])
            except ValueError as exc:
                raise GarbledReply(self.instrument, f"GETDAT? {int(mask)}", reply,
                                   str(exc)) from exc
        return out

    def get_status(self) -> PPMSStatus:
        return self.getdat(1)["status"]

    def get_temperature(self) -> tuple[float, str]:
        """(temperature K, temperature state name) from one ``GETDAT? 3``."""
        d = self.getdat(0b11)
        return d["temperature"], d["status"].temperature

    def get_field(self) -> tuple[float, str]:
        """(field Oe, magnet state name) from one ``GETDAT? 5``."""
        d = self.getdat(0b101)
        return d["field"], d["status"].magnet

    def get_chamber(self) -> tuple[int, str]:
        """(chamber state code, name) from the status word."""
        st = self.get_status()
        return st.chamber_code, st.chamber
