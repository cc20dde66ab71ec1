"""Princeton Instruments / Acton SpectraPro monochromator driver (serial ASCII; no Bluesky).

Protocol (instruments.md §5.1): 9600 baud 8N1, commands end with CR, parameters come before
the command word (``500.000 goto``), every completed command ends with ``" ok\\r\\n"``; an
unknown or refused command gets ``" <word>? \\r\\n"`` and no ``ok``. The RS-232 port echoes
each command until ``no-echo``: :meth:`ActonDriver.connect` sends it, and an echo is stripped
anyway (a USB unit never echoes). Commands are sent in lower case, the only case the SP-2150i
accepts. Use a :class:`~.transports.SerialTransport` with ``write_eol="\\r"``,
``read_eol="\\n"``; replies may span several lines (``?gratings``) and blocking moves
(``goto``, ``grating``) answer only when the motion ends, so the driver reads line by line
until ``ok`` or an error, waiting at most the move's bound for those.

Limits are checked before anything is sent: the wavelength against the *current grating's*
range (0-1400 nm at 1200 g/mm, scaling as 1200/grooves; the firmware would silently clamp),
the grating against those installed on the installed turret (the firmware would answer ``ok``
and not move), slit widths against 10-3000 um.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from .commands import Command, Driver, Param, parse_reply
from .errors import InstrumentError, InstrumentTimeout, check_choice, check_range

NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+))"
#: Mechanical range at 1200 g/mm (SpectraPro specification); other gratings scale as 1200/g.
RANGE_NM_AT_1200_G_PER_MM = 1400.0
SLIT_RANGE_UM = (10.0, 3000.0)
#: NM/MIN accepted range: the manuals give 0.01 nm/min resolution but no maximum; the upper
#: limit is the simulator's (its GOTO speed, 6000 nm/min).
SCAN_RATE_RANGE_NM_PER_MIN = (0.01, 6000.0)
SLITS = ("front-ent-slit", "side-ent-slit", "front-exit-slit", "side-exit-slit")
#: Gratings per turret by MODEL reply (odemis' table); other models have 3.
GRATINGS_PER_TURRET = {"SP-2-150i": 2}
#: Bounds (s) on how long a blocking command may take to answer ``ok``: a grating change
#: takes up to 20 s (manual); GOTO crosses the range at an assumed >= 50 nm/s.
GRATING_CHANGE_MAX_S = 20.0
GOTO_MIN_SPEED_NM_PER_S = 50.0
REPLY_MARGIN_S = 10.0

_OK = re.compile(r"(?:^|\s)ok\s*$", re.IGNORECASE)
_INSTALLED = re.compile(r"[ >\x1a]?\s*(\d+)\s+(\d+)\s*g/mm\s+BLZ=\s*([\d.]+)\s*(NM|UM)\s*", re.I)
_NOT_INSTALLED = re.compile(r"[ >\x1a]?\s*(\d+)\s+Not Installed\s*", re.I)


@dataclass(frozen=True)
class Grating:
    """One installed grating: position, groove density (g/mm), blaze (nm)."""

    index: int
    grooves_per_mm: int
    blaze_nm: float

    @property
    def max_nm(self) -> float:
        """Upper end of the wavelength range (nm) on this grating."""
        return RANGE_NM_AT_1200_G_PER_MM * 1200.0 / self.grooves_per_mm


def parse_gratings(text: str) -> tuple[dict[int, Grating], int | None]:
    """``?gratings`` listing -> ({position: Grating}, position marked current or None).

    Lines look like ``"\\x1a1  1200 g/mm BLZ=  500NM "`` (current one marked by 0x1A or
    ``>``), ``" 2  600 g/mm BLZ=  1.0UM "`` or ``" 3  Not Installed     "``; anything else
    is an error (strict parsing).
    """
    gratings, current = {}, None
    for line in text.split("\n"):
        if not line.strip():
            continue
        m = _INSTALLED.fullmatch(line)
        if m:
            n, grooves, blaze, unit = int(m[1]), int(m[2]), float(m[3]), m[4].upper()
            gratings[n] = Grating(n, grooves, blaze * (1000.0 if unit == "UM" else 1.0))
        elif not _NOT_INSTALLED.fullmatch(line):
            raise ValueError(f"unrecognised grating line {line!r}")
        if line[:1] in (">", "\x1a"):
            current = int(re.match(r".\s*(\d+)", line)[1])
    if not gratings:
        raise ValueError("no installed grating listed")
    return gratings, current


@dataclass(frozen=True)
class Word:
    """A command word chosen from a fixed set (e.g. a slit designator), sent in lower case."""

    name: str
    allowed: tuple

    def encode(self, value) -> str:
        return check_choice(self.name, str(value).lower(), self.allowed)


def _fmt3(v: float) -> str:
    return f"{v:.3f}"   # GOTO takes up to 3 decimals


_WAVELENGTH = Param("wavelength_nm", 0.0, 1e5, "nm", fmt=_fmt3)   # per-grating check first
_SLIT = Word("slit", SLITS)


class ActonDriver(Driver):
    """Command table and protocol handling for one SpectraPro; call :meth:`connect` first.

    After ``connect()``: ``model``, ``serial_number``, ``turret``, ``gratings`` ({position:
    :class:`Grating`}), ``grating`` (current position), ``scan_rate_nm_per_min`` and ``slits``
    ({designator: width um, or None without a motor}) describe the instrument.
    """

    instrument = "acton"

    _no_echo = Command("no-echo", reply="", doc="Stop echoing commands (RS-232 default is echo)")
    echo_on = Command("echo", reply="", doc="Echo commands again")
    get_model = Command("model", reply=r"(\S+)", parse=lambda m: m[1])
    get_serial = Command("serial", reply=r"(\S+)", parse=lambda m: m[1])
    get_wavelength = Command("?nm", reply=NUMBER + r"(?:\s*nm)?", parse=lambda m: float(m[1]),
                             doc="Wavelength (nm, 0.01 nm resolution); SP-2150i may omit 'nm'")
    _goto = Command("{wavelength_nm} goto", (_WAVELENGTH,), reply="")
    _scan = Command("{wavelength_nm} >nm", (_WAVELENGTH,), reply="")
    is_done = Command("mono-?done", reply=r"([01])", parse=lambda m: m[1] == "1",
                      doc="True when the move started by >nm has ended")
    _mono_stop = Command("mono-stop", reply="")
    _set_scan_rate = Command(
        "{rate_nm_per_min} nm/min",
        (Param("rate_nm_per_min", *SCAN_RATE_RANGE_NM_PER_MIN, "nm/min", fmt=lambda v: f"{v:.2f}"),),
        reply="")
    get_scan_rate = Command("?nm/min", reply=NUMBER + r"\s*nm/min", parse=lambda m: float(m[1]))
    get_grating = Command("?grating", reply=r"(\d+)", parse=lambda m: int(m[1]))
    _set_grating = Command("{grating} grating", (Param("grating", 1, 9, "", fmt=lambda v: str(int(v))),),
                           reply="")
    get_gratings = Command("?gratings", reply=r"(?s)(.*)", parse=lambda m: parse_gratings(m[1]),
                           doc="({position: Grating}, marked current position)")
    get_turret = Command("?turret", reply=r"([123])", parse=lambda m: int(m[1]))
    _set_slit = Command("{slit} {width_um} microns",
                        (_SLIT, Param("width_um", *SLIT_RANGE_UM, "um", fmt=lambda v: str(int(round(v))))),
                        reply="")
    _get_slit = Command("{slit} ?microns", (_SLIT,), reply=r"(\d+)\s*um|(no motor)",
                        parse=lambda m: None if m[2] else float(m[1]))

    def __init__(self, transport, *, name: str | None = None):
        super().__init__(transport)
        self.instrument = name or getattr(transport, "name", None) or type(self).instrument
        self.model = self.serial_number = None
        self.turret = 1
        self.gratings: dict[int, Grating] = {}
        self.grating: int | None = None
        self.scan_rate_nm_per_min: float | None = None
        self.slits: dict[str, float | None] = {}
        self._scan_open = False   # a >nm move must be ended with mono-stop (manual)

    # -- protocol -------------------------------------------------------------------------
    def execute(self, cmd: Command, args: tuple = (), kwargs: dict | None = None, *,
                wait_s: float | None = None):
        """Validate, send, read up to ``ok`` (at most ``wait_s`` s more for a blocking
        move), then parse the reply strictly (a mismatch raises :class:`~.retry.GarbledReply`)."""
        wire = cmd.encode(args, kwargs or {})   # validation happens here, before any I/O
        value = parse_reply(self.instrument, cmd, wire, self._exchange(wire, wait_s))
        return None if cmd.parse is None else value

    @staticmethod
    def _complete(line: str) -> bool:
        return bool(_OK.search(line)) or line.rstrip().endswith("?")

    def _exchange(self, wire: str, wait_s: float | None) -> str:
        """Send ``wire``; return the reply text without echo and ``ok``."""
        t = self.transport
        deadline = time.monotonic() + (wait_s or 0.0)
        lines: list[str] = []
        partial = ""
        with t.lock:
            try:
                lines = t.query(wire).split("\n")
            except InstrumentTimeout as exc:
                if wait_s is None:
                    raise
                partial = exc.reply or ""       # e.g. the echo, sent before the move
            while not lines or not self._complete(lines[-1]):
                read_line = getattr(t, "read_line", None)
                if read_line is None:            # a transcript gives whole replies
                    raise InstrumentError(self.instrument, wire, "\n".join(lines),
                                          "incomplete reply: neither ' ok' nor an error")
                try:
                    lines.append(partial + read_line(wire))
                    partial = ""
                except InstrumentTimeout as exc:
                    partial += exc.reply or ""
                    if time.monotonic() >= deadline:
                        raise InstrumentTimeout(self.instrument, wire, "\n".join(lines) + partial,
                                                f"no ' ok' within the {wait_s or 0:g} s allowed") from None
        lines = [line.rstrip("\r") for line in lines]
        if not _OK.search(lines[-1]):
            raise InstrumentError(self.instrument, wire, "\n".join(lines).strip(),
                                  "command refused (the controller answered '<word>?')")
        lines[-1] = _OK.sub("", lines[-1])
        text = "\n".join(lines)
        if text.lower().startswith(wire.lower()):   # echo (RS-232 default)
            text = text[len(wire):]
        return text

    # -- connection -----------------------------------------------------------------------
    def connect(self) -> "ActonDriver":
        """Switch echo off and read identification, gratings, scan rate and slits."""
        self._no_echo()
        self.model = self.get_model()
        self.serial_number = self.get_serial()
        self.turret = self.get_turret()
        self.gratings, _ = self.get_gratings()
        self.grating = self.get_grating()
        if self.grating not in self.gratings:
            raise InstrumentError(self.instrument, "?grating", str(self.grating),
                                  f"current grating is not in the installed list {sorted(self.gratings)}")
        self.scan_rate_nm_per_min = self.get_scan_rate()
        self.slits = {s: self._get_slit(s) for s in SLITS}
        return self

    # -- validation -----------------------------------------------------------------------
    def usable_gratings(self) -> list[int]:
        """Installed grating positions on the installed turret."""
        per = GRATINGS_PER_TURRET.get(self.model, 3)
        first = (self.turret - 1) * per + 1
        return [n for n in sorted(self.gratings) if first <= n < first + per]

    def check_grating(self, grating) -> int:
        return int(check_choice("grating", grating, self.usable_gratings()))

    def check_wavelength(self, wavelength_nm, grating: int | None = None) -> float:
        """Range-check a wavelength (nm) for ``grating`` (default: the current one)."""
        g = self.gratings[self.grating if grating is None else grating]
        try:
            return check_range("wavelength_nm", wavelength_nm, 0.0, g.max_nm, "nm")
        except ValueError as exc:
            raise ValueError(f"{exc} (grating {g.index}: {g.grooves_per_mm} g/mm)") from None

    @property
    def motorized_slits(self) -> tuple[str, ...]:
        return tuple(s for s, w in self.slits.items() if w is not None)

    # -- moves ----------------------------------------------------------------------------
    def goto(self, wavelength_nm: float) -> None:
        """Move at maximum speed; returns when the move has ended (blocking)."""
        nm = self.check_wavelength(wavelength_nm)
        bound = self.gratings[self.grating].max_nm / GOTO_MIN_SPEED_NM_PER_S + REPLY_MARGIN_S
        self.execute(type(self)._goto, (nm,), wait_s=bound)
        self._scan_open = False

    def set_scan_rate(self, rate_nm_per_min: float) -> None:
        self.execute(type(self)._set_scan_rate, (rate_nm_per_min,))
        self.scan_rate_nm_per_min = self.get_scan_rate()

    def start_scan(self, wavelength_nm: float, rate_nm_per_min: float | None = None) -> None:
        """Start a move at the scan rate (``>nm``) and return at once; follow it with
        :meth:`poll_move`. A new rate is validated before anything is sent."""
        nm = self.check_wavelength(wavelength_nm)
        if rate_nm_per_min is not None:
            type(self)._set_scan_rate.encode((rate_nm_per_min,), {})   # validate only
            if abs(float(rate_nm_per_min) - (self.scan_rate_nm_per_min or -1.0)) >= 0.005:
                self.set_scan_rate(rate_nm_per_min)
        self.execute(type(self)._scan, (nm,))
        self._scan_open = True

    def poll_move(self) -> tuple[float, bool]:
        """``(wavelength nm, done)``; ends a finished ``>nm`` with ``mono-stop``."""
        done = self.is_done()
        nm = self.get_wavelength()
        if done and self._scan_open:
            self._mono_stop()
            self._scan_open = False
        return nm, done

    def stop_move(self) -> float:
        """Stop a ``>nm`` move where it is (``mono-stop``); returns the wavelength (nm)."""
        self._mono_stop()
        self._scan_open = False
        return self.get_wavelength()

    def select_grating(self, grating: int) -> None:
        """Turn the turret to ``grating`` (blocking, up to 20 s); the wavelength is kept.
        The firmware answers ``ok`` even when it does not move, so the grating is read back."""
        n = self.check_grating(grating)
        self.execute(type(self)._set_grating, (n,), wait_s=2 * GRATING_CHANGE_MAX_S + REPLY_MARGIN_S)
        got = self.get_grating()
        if got != n:
            raise InstrumentError(self.instrument, f"{n} grating", str(got),
                                  f"grating still {got} after selecting {n}")
        self.grating = n

    # -- slits ----------------------------------------------------------------------------
    def check_slit(self, slit: str, width_um: float) -> str:
        """Validate a motorized slit's name and width (um); returns the wire name."""
        name = check_choice("slit", str(slit).lower(), self.motorized_slits)
        type(self)._set_slit.encode((name, width_um), {})
        return name

    def set_slit(self, slit: str, width_um: float) -> float:
        """Set a motorized slit (um, 10-3000; blocking); returns the width read back."""
        name = self.check_slit(slit, width_um)
        span = SLIT_RANGE_UM[1] - SLIT_RANGE_UM[0]
        self.execute(type(self)._set_slit, (name, width_um), wait_s=span / 100.0 + REPLY_MARGIN_S)
        return self.get_slit(name)

    def get_slit(self, slit: str) -> float | None:
        """Width (um) of ``slit``; None if it has no motor."""
        width = self._get_slit(slit)
        self.slits[str(slit).lower()] = width
        return width
