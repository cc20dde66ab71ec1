"""FluoTime-300-like housing: lamp and detector shutters, sample changer, NIR-PMT photon counter.

NOT protocol-faithful. The FluoTime 300's lamp shutter, sample holder and PMT counter are
reached only through PicoQuant's closed EasyTau software (instruments.md §3.3, §7 item 6); no
public protocol exists. spinlight defines a minimal ASCII line protocol (LF both ways, one reply
line per command; :mod:`spinlight.simulators.fluorometer_sim` serves it), so on real hardware
this driver is the seam where an EasyTau bridge would plug in.

:class:`HousingDriver` is a table of declared commands (:mod:`.commands`): every argument is
validated before anything is sent (errors name parameter, value and allowed range/choices), an
``ERR ...`` reply raises :class:`~.errors.InstrumentError` naming command and reply. Commands that
act (shutter 0.05 s, holder 5 s, ``COUNT?`` one gate) answer only when done, so the driver keeps
reading up to a bound for those. Ophyd side:

- :class:`Shutter` (``"open"``/``"closed"``), :class:`SampleHolder` (``"sample"``/
  ``"scatterer"``/``"empty"``/``"lamp"``: the calibrated standard lamp in the sample position,
  for the emission correction) and :class:`HighVoltage` (``"on"``/``"off"``): signals whose
  ``set()`` validates at once (ValueError, nothing sent) and returns a status finished when the
  instrument confirms and the read-back matches; the value is the read-back.
- :class:`PhotonCounter`: ``trigger()`` returns a status that a background thread finishes
  after ``COUNT?``; readings ``counts``, ``count_rate_cps`` (hinted), ``overload``, ``flags``;
  ``gate_s`` and ``saturation_count_rate_cps`` (config, for the analysis' counting-loss
  correction). An overload (count rate above the PMT saturation) is reported with
  ``overload=True`` (the PMT high voltage trips off); counting with HV off fails the status
  with an :class:`InstrumentError` saying so.
- :class:`ReferenceDetector`: the reference photodiode behind a beam splitter after the
  excitation monochromator (``REF?``); ``trigger()`` reads ``current_nA`` (photocurrent, nA;
  0 with the lamp shutter closed), the denominator of a reference-normalised excitation spectrum.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Mapping

from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import DeviceStatus

from .commands import Command, Driver, Param
from .errors import InstrumentError, InstrumentTimeout, check_choice

#: Xe lamp range on the excitation path (nm) and the photon counter's gate range (s).
LAMP_RANGE_NM = (230.0, 1000.0)
GATE_RANGE_S = (0.001, 100.0)
#: Where the FluoTime NIR-PMT (InP/InGaAs photocathode) responds (nm): its NIR band and the
#: weak near-UV response that records the IRF on a scatterer at the 375 nm laser line.
#: 500-950 nm is blind (the Nd 880 nm band is invisible). Assumed, as the detector model.
NIR_PMT_RANGES_NM = ((300.0, 450.0), (950.0, 1700.0))
FLAG_OVERLOAD, FLAG_DETECTOR_CLOSED, FLAG_HV_OFF = 1, 2, 4
#: The counter's saturation count rate (cps; 1/dead time: measured = R/(1 + R/R_sat)). Not
#: readable over the wire: set ``counter.saturation_count_rate_cps`` from the detector's data
#: sheet or a linearity measurement. Default: the simulated NIR-PMT's (ASSUMED).
PMT_SATURATION_COUNT_RATE_CPS = 1.0e6
SATURATION_RANGE_CPS = (1.0e4, 1.0e10)
#: Bounds (s) on replies that come after an action: shutter (0.05 s), sample changer (5 s);
#: ``COUNT?`` gets its gate plus the margin.
SHUTTER_MAX_S, HOLDER_MAX_S, REPLY_MARGIN_S = 1.0, 10.0, 5.0


@dataclass(frozen=True)
class Keyword:
    """A word argument chosen from ``codes`` (lower-case name -> wire word)."""

    name: str
    codes: Mapping[str, str]

    def encode(self, value) -> str:
        return self.codes[check_choice(self.name, str(value).lower(), tuple(self.codes))]


_SHUTTER = Keyword("shutter", {"lamp": "LAMP", "detector": "DETECTOR"})
_SHUTTER_STATE = Keyword("state", {"open": "OPEN", "closed": "CLOSE"})
_HOLDER = Keyword("position", {"sample": "SAMPLE", "scatterer": "SCATTERER", "empty": "EMPTY",
                               "lamp": "LAMP"})
_HV = Keyword("hv", {"on": "ON", "off": "OFF"})
_GATE = Param("gate_s", *GATE_RANGE_S, "s", fmt=lambda v: f"{v:.3f}")   # 1 ms resolution


def _lower(m):
    return m[1].lower()


@dataclass(frozen=True)
class CountResult:
    """One ``COUNT?``: counts in ``gate_s`` seconds and the flags."""

    counts: int
    flags: int
    gate_s: float

    @property
    def count_rate_cps(self) -> float:
        return self.counts / self.gate_s

    @property
    def overload(self) -> bool:
        return bool(self.flags & FLAG_OVERLOAD)

    @property
    def detector_closed(self) -> bool:
        return bool(self.flags & FLAG_DETECTOR_CLOSED)

    @property
    def hv_off(self) -> bool:
        return bool(self.flags & FLAG_HV_OFF)


class _PatientLines:
    """The injected transport with two additions: a reply may take up to ``patience_s`` more
    (read line by line after the transport's own timeout), and ``ERR ...`` raises."""

    def __init__(self, transport, instrument: str):
        self.transport, self.instrument = transport, instrument
        self.lock = transport.lock
        self.patience_s = 0.0
        self.name = getattr(transport, "name", instrument)

    def query(self, cmd: str) -> str:
        deadline = time.monotonic() + self.patience_s
        try:
            reply = self.transport.query(cmd)
        except InstrumentTimeout as exc:
            partial = exc.reply or ""
            while True:
                if time.monotonic() >= deadline:
                    raise InstrumentTimeout(self.instrument, cmd, partial,
                                            f"no reply within {self.patience_s:g} s") from None
                try:
                    reply = partial + self.transport.read_line(cmd)
                    break
                except InstrumentTimeout as more:
                    partial += more.reply or ""
        if reply.startswith("ERR"):
            raise InstrumentError(self.instrument, cmd, reply, "command refused")
        return reply

    def write(self, cmd: str) -> None:
        self.transport.write(cmd)

    def close(self) -> None:
        self.transport.close()


class HousingDriver(Driver):
    """Command table of the housing; :meth:`connect` reads the identity and the state."""

    instrument = "housing"

    get_idn = Command("*IDN?", reply=r"([^,]+),([^,]+),([^,]+),([^,]+)", parse=lambda m: m.groups())
    _set_shutter = Command("SHUTTER {shutter} {state}", (_SHUTTER, _SHUTTER_STATE), reply="OK")
    _get_shutter = Command("SHUTTER? {shutter}", (_SHUTTER,), reply=r"(OPEN|CLOSED)", parse=_lower)
    _set_holder = Command("HOLDER {position}", (_HOLDER,), reply="OK")
    get_holder = Command("HOLDER?", reply=r"(SAMPLE|SCATTERER|EMPTY|LAMP)", parse=_lower)
    _set_gate = Command("GATE {gate_s}", (_GATE,), reply="OK")
    get_gate = Command("GATE?", reply=r"(\d+\.?\d*)", parse=lambda m: float(m[1]))
    _set_hv = Command("HV {hv}", (_HV,), reply="OK")
    get_hv = Command("HV?", reply=r"(ON|OFF)", parse=_lower)
    _count = Command("COUNT?", reply=r"(\d+),(\d+)", parse=lambda m: (int(m[1]), int(m[2])))
    get_reference_na = Command("REF?", reply=r"(\d+(?:\.\d*)?)", parse=lambda m: float(m[1]),
                               doc="reference photodiode current (nA)")

    def __init__(self, transport, *, name: str | None = None):
        name = name or getattr(transport, "name", None) or type(self).instrument
        super().__init__(_PatientLines(transport, name))
        self.instrument = name
        self.identity: tuple = ()
        self.gate_s: float | None = None

    def execute(self, cmd: Command, args: tuple = (), kwargs: dict | None = None, *,
                wait_s: float = 0.0):
        """As :meth:`Driver.execute`, allowing ``wait_s`` more for a reply after an action."""
        with self.transport.lock:
            self.transport.patience_s = wait_s
            return super().execute(cmd, args, kwargs)

    def connect(self) -> "HousingDriver":
        self.identity = self.get_idn()
        if self.identity[1] != "FT300-HOUSING":
            raise InstrumentError(self.instrument, "*IDN?", ",".join(self.identity),
                                  "not a FT300-HOUSING")
        self.gate_s = self.get_gate()
        return self

    # -- actions --------------------------------------------------------------------------
    def set_shutter(self, shutter: str, state: str) -> str:
        """Open or close ``shutter`` ("lamp"/"detector"); returns the read-back state."""
        self.execute(type(self)._set_shutter, (shutter, state), wait_s=SHUTTER_MAX_S)
        return self.get_shutter(shutter)

    def get_shutter(self, shutter: str) -> str:
        return self._get_shutter(shutter)

    def set_holder(self, position: str) -> str:
        """Move the sample changer (blocking, 5 s); returns the position read back
        ("sample", "scatterer", "empty" or "lamp": the standard lamp)."""
        self.execute(type(self)._set_holder, (position,), wait_s=HOLDER_MAX_S)
        return self.get_holder()

    def set_gate(self, gate_s: float) -> float:
        self._set_gate(gate_s)
        self.gate_s = self.get_gate()
        return self.gate_s

    def set_hv(self, state: str) -> str:
        self._set_hv(state)
        return self.get_hv()

    def count(self) -> CountResult:
        """One gate of photon counting (blocking for the gate)."""
        gate = self.gate_s if self.gate_s is not None else self.get_gate()
        counts, flags = self.execute(type(self)._count, wait_s=gate + REPLY_MARGIN_S)
        return CountResult(counts, flags, gate)


# ----------------------------------------------------------------------- Ophyd side
class _HousingSetting(Signal):
    """A housing state word; ``set``/``put`` validate first, the value is the read-back."""

    keyword: Keyword

    def __init__(self, *args, driver: HousingDriver, **kwargs):
        self.driver = driver
        super().__init__(*args, **kwargs)

    def check(self, value) -> str:
        self.keyword.encode(value)                  # ValueError naming the choices
        return str(value).lower()

    def set(self, value, **kwargs):
        return super().set(self.check(value), **kwargs)

    def _set_and_wait(self, value, timeout, **kwargs):
        self.put(value)
        if self.get() != value:
            raise InstrumentError(self.driver.instrument, None, self.get(),
                                  f"{self.name} is {self.get()!r} after setting {value!r}")

    def put(self, value, **kwargs):
        super().put(self._send(self.check(value)), **kwargs)

    def refresh(self) -> None:
        super().put(self._read())

    def cache(self, value) -> None:
        super().put(value)


class Shutter(_HousingSetting):
    """Lamp or detector shutter (``which``): ``"open"`` / ``"closed"``."""

    keyword = _SHUTTER_STATE

    def __init__(self, *args, which: str, **kwargs):
        self.which = check_choice("which", which, tuple(_SHUTTER.codes))
        super().__init__(*args, **kwargs)

    def _send(self, value):
        return self.driver.set_shutter(self.which, value)

    def _read(self):
        return self.driver.get_shutter(self.which)


class SampleHolder(_HousingSetting):
    """Sample changer: ``"sample"`` / ``"scatterer"`` (IRF) / ``"empty"`` / ``"lamp"`` (the
    calibrated standard lamp, for the emission correction)."""

    keyword = _HOLDER

    def _send(self, value):
        return self.driver.set_holder(value)

    def _read(self):
        return self.driver.get_holder()


class HighVoltage(_HousingSetting):
    """PMT high voltage: ``"on"`` / ``"off"`` (an overload switches it off)."""

    keyword = _HV

    def _send(self, value):
        return self.driver.set_hv(value)

    def _read(self):
        return self.driver.get_hv()


class _Saturation(Signal):
    """Counter saturation rate (cps), configuration only: nothing is sent."""

    def put(self, value, **kwargs):
        lo, hi = SATURATION_RANGE_CPS
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = float("nan")
        if not lo <= v <= hi:
            raise ValueError(f"saturation_count_rate_cps={value!r} is out of range; allowed range: "
                             f"{lo:g}..{hi:g} cps")
        super().put(v, **kwargs)


class _Gate(Signal):
    """Counter gate (s, 0.001..100, 1 ms resolution)."""

    def set(self, value, **kwargs):
        _GATE.encode(value)                          # bad input fails here, nothing sent
        return super().set(round(float(value), 3), **kwargs)

    def put(self, value, **kwargs):
        super().put(self.parent.driver.set_gate(value), **kwargs)


class PhotonCounter(Device):
    """The NIR-PMT photon counter; ``trigger()`` counts one gate."""

    counts = Cpt(Signal, value=0, kind="normal")
    count_rate_cps = Cpt(Signal, value=float("nan"), kind="hinted")
    overload = Cpt(Signal, value=False, kind="normal")
    flags = Cpt(Signal, value=0, kind="normal")
    gate_s = Cpt(_Gate, value=float("nan"), tolerance=5e-4, kind="config")
    saturation_count_rate_cps = Cpt(_Saturation, value=PMT_SATURATION_COUNT_RATE_CPS, kind="config")

    def __init__(self, *args, driver: HousingDriver, **kwargs):
        self.driver = driver
        super().__init__(*args, **kwargs)
        self.last_result: CountResult | None = None
        if driver.gate_s is not None:
            Signal.put(self.gate_s, driver.gate_s)

    def refresh(self) -> None:
        Signal.put(self.gate_s, self.driver.get_gate())

    def trigger(self) -> DeviceStatus:
        gate = self.driver.gate_s if self.driver.gate_s is not None else GATE_RANGE_S[1]
        status = DeviceStatus(self, timeout=gate + REPLY_MARGIN_S + 5.0)
        threading.Thread(target=self._count, args=(status,), daemon=True,
                         name=f"{self.name}-count").start()
        return status

    def _count(self, status: DeviceStatus) -> None:
        try:
            r = self.driver.count()
            if r.hv_off:
                raise InstrumentError(self.driver.instrument, "COUNT?", f"{r.counts},{r.flags}",
                                      "PMT high voltage is off (an overload trips it): nothing was "
                                      "counted; remove the cause, then switch it on (pmt_hv 'on')")
            self.last_result = r
            self.counts.put(r.counts)
            self.count_rate_cps.put(r.count_rate_cps)
            self.flags.put(r.flags)
            self.overload.put(r.overload)
            status.set_finished()
        except Exception as exc:
            if not status.done:
                status.set_exception(exc)


class ReferenceDetector(Device):
    """The reference photodiode sampling the excitation beam; ``trigger()`` reads ``REF?``."""

    current_nA = Cpt(Signal, value=float("nan"), kind="normal")

    def __init__(self, *args, driver: HousingDriver, **kwargs):
        self.driver = driver
        super().__init__(*args, **kwargs)

    def trigger(self) -> DeviceStatus:
        # a thread, so it waits its turn on the port while the counter's gate runs
        status = DeviceStatus(self, timeout=GATE_RANGE_S[1] + REPLY_MARGIN_S + 5.0)
        threading.Thread(target=self._read, args=(status,), daemon=True,
                         name=f"{self.name}-read").start()
        return status

    def _read(self, status: DeviceStatus) -> None:
        try:
            self.current_nA.put(self.driver.get_reference_na())
            status.set_finished()
        except Exception as exc:
            if not status.done:
                status.set_exception(exc)
