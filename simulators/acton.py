"""Simulated Princeton Instruments / Acton SpectraPro monochromator on pyserial ``socket://``.

Wire protocol (instruments.md §5.1, §7 item 5), served by :class:`.SerialSocketServer` on
loopback TCP, so ``serial.serial_for_url("socket://127.0.0.1:PORT")`` connects as to the real
RS-232 port. The real port is 9600 baud 8N1 without flow control; a socket has no baud rate
(pyserial ignores port settings for ``socket://``), so bytes arrive at once.

Framing. A command line ends with CR. The controller is a Forth-like interpreter: numbers
go before the word that uses them (``546.07 GOTO``) and one line may hold several commands
separated by spaces. Words are case-insensitive here (the SP-2150i accepts lower case only,
which is what spinlight sends). In echo mode (the RS-232 default) the line is echoed as
received; then each word's output follows and the line ends with ``" ok\\r\\n"``:

===========================  ===============================================================
``?NM``                      ``" 500.00 nm  ok"`` (0.01 nm resolution, unit appended)
``x GOTO`` ``x <GOTO>``      move at maximum speed; reply after the move (instrument time)
``x NM`` ``x <NM>``          move at the scan rate; reply after the move
``x >NM``                    start a move at the scan rate and reply at once; ``MONO-?DONE``
                             -> ``" 0 "`` moving / ``" 1 "`` done; ``MONO-STOP`` stops it
``x NM/MIN`` ``?NM/MIN``     scan rate, ``" 100.00 nm/min "``
``n GRATING`` ``?GRATING``   select grating 1-9 (blocking, 20 s); ``" 1 "``
``?GRATINGS``                ``"\\r\\n\\x1a1  1200 g/mm BLZ=  500NM \\r\\n 2  600 g/mm BLZ=  1.0UM
                             \\r\\n 3  Not Installed     \\r\\n..."`` then ``" ok"`` (0x1A marks
                             the current grating, as in listings captured by odemis/NPlab)
``n TURRET`` ``?TURRET``     installed turret 1-3 (selects which gratings are usable)
``MODEL`` ``SERIAL``         ``" SP-2-150i "``, ``" 21503417 "``
``ECHO`` ``NO-ECHO``         echo mode on / off
``FRONT-ENT-SLIT`` ...       select a slit (``SIDE-ENT-SLIT``, ``FRONT-EXIT-SLIT``,
                             ``SIDE-EXIT-SLIT``); ``w MICRONS`` (10-3000 um, blocking) and
                             ``?MICRONS`` -> ``" 480 um "`` or ``" no motor "``
===========================  ===============================================================

Errors. An unknown word gets ``" <word>? \\r\\n"`` and no ``ok``; the rest of the line is
dropped. Documented real behaviour: wavelengths outside the grating's range are clamped to it
(GOTO/NM), and ``n GRATING`` for a grating that is not installed (or not on the installed
turret) answers ``ok`` and changes nothing. Undocumented, so simulator decisions, answered in
the same ``" <word>? "`` form: a word whose number is missing, a slit width outside 10-3000 um,
a scan rate outside :data:`SCAN_RATE_LIMITS_NM_PER_MIN`, a turret outside 1-3.

Timing (instrument seconds on the :class:`.VirtualClock`, which keeps running during moves):
GOTO moves at :data:`GOTO_SPEED_NM_PER_S`; NM and >NM at the scan rate (default 100 nm/min,
the SP-2300i manual's factory value); a grating change takes :data:`GRATING_CHANGE_S`; slits
move at :data:`SLIT_SPEED_UM_PER_S`. Motions queue: a move sent while another is running
starts when it ends. ``MONO-?DONE`` and ``?NM`` work during a ``>NM`` move.
"""

from __future__ import annotations

import collections
import random
import re
import threading
from typing import Callable

from .clock import VirtualClock
from .serial_socket import SerialSocketServer, SocketServed

#: Maximum (GOTO) drive speed. Not in the manuals read here; odemis' SpectraPro driver
#: assumes "about 1000 nm takes 10 s", which is used as the simulator's value.
GOTO_SPEED_NM_PER_S = 100.0
#: Grating (turret) change; the manuals say "up to 20 s".
GRATING_CHANGE_S = 20.0
#: Factory scan rate (SP-2300i manual defaults) and the simulator's accepted range (the upper
#: limit, the GOTO speed, is a simulator decision: the manuals give no maximum).
DEFAULT_SCAN_RATE_NM_PER_MIN = 100.0
SCAN_RATE_LIMITS_NM_PER_MIN = (0.01, 60.0 * GOTO_SPEED_NM_PER_S)
#: Mechanical scanning range 0-1400 nm with a 1200 g/mm grating (SpectraPro specification);
#: the drive limits the grating angle, so the range scales as 1200/(grooves per mm).
RANGE_NM_AT_1200_G_PER_MM = 1400.0
#: Motorized slit widths (um) and the simulator's slit drive speed (not documented).
SLIT_LIMITS_UM = (10, 3000)
SLIT_SPEED_UM_PER_S = 1000.0
SLIT_NAMES = ("FRONT-ENT-SLIT", "SIDE-ENT-SLIT", "FRONT-EXIT-SLIT", "SIDE-EXIT-SLIT")
#: Model -> (MODEL reply, gratings per turret) (odemis' table of SpectraPro models).
MODELS = {"SP-2150i": ("SP-2-150i", 2), "SP-2300i": ("SP-2-300i", 3),
          "SP-2500i": ("SP-2-500i", 3), "SP-2750i": ("SP-2-750i", 3)}

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")


def wavelength_limit_nm(grooves_per_mm: float) -> float:
    """Upper end of the mechanical range (nm) for a grating of ``grooves_per_mm``."""
    return RANGE_NM_AT_1200_G_PER_MM * 1200.0 / float(grooves_per_mm)


def format_blaze(blaze_nm: float) -> str:
    """``"  500NM"`` below 1 um, ``"  1.6UM"`` above (captured listings show both forms)."""
    if blaze_nm < 1000:
        return f"{int(round(blaze_nm)):5d}NM"
    return f"{blaze_nm / 1000:5.1f}UM"


class _Refused(Exception):
    """The firmware's ``" <word>? "`` answer."""


class ActonSimulator(SocketServed):
    """A SpectraPro on the virtual clock.

    ``gratings`` lists ``(grooves per mm, blaze nm)`` for positions 1, 2, ...; positions up to
    three turrets' worth are reported "Not Installed". ``motorized_slits`` names the slits with
    a motor (the others answer ``no motor``). ``seed`` fixes the serial number.
    """

    def __init__(self, clock: VirtualClock, *, model: str = "SP-2150i",
                 gratings=((1200, 500.0), (600, 1000.0)), seed: int = 0,
                 motorized_slits=("SIDE-ENT-SLIT", "FRONT-EXIT-SLIT"), slit_um: float = 100.0,
                 echo: bool = True, current_marker: str = "\x1a"):
        if model not in MODELS:
            raise ValueError(f"model={model!r} is not allowed; choose one of {sorted(MODELS)}")
        self.model_text, self.per_turret = MODELS[model]
        gratings = [(int(g), float(b)) for g, b in gratings]
        if not 1 <= len(gratings) <= 3 * self.per_turret:
            raise ValueError(f"gratings: {len(gratings)} given; allowed 1..{3 * self.per_turret} "
                             f"for {model}")
        unknown = set(motorized_slits) - set(SLIT_NAMES)
        if unknown:
            raise ValueError(f"motorized_slits={sorted(unknown)} not allowed; choose from {SLIT_NAMES}")
        self.clock = clock
        self.gratings = {i + 1: g for i, g in enumerate(gratings)}
        self.serial_number = f"{model[3:7]}{random.Random(seed).randint(1000, 9999)}"
        self.echo = bool(echo)
        self.current_marker = current_marker
        self.lock = threading.RLock()
        self.turret, self.grating = 1, 1
        self.scan_rate_nm_per_min = DEFAULT_SCAN_RATE_NM_PER_MIN
        # Wavelength drive: a linear segment (t0, nm0) -> (t1, nm1), instrument time.
        t = clock.now()
        self._t0 = self._t1 = t
        self._nm0 = self._nm1 = 0.0
        self._free_at = t                       # end of the last queued drive motion
        self._slits = {s: float(slit_um) for s in motorized_slits}
        self._slit_free_at = t
        self._slit_selected = SLIT_NAMES[0]
        self.received: collections.deque = collections.deque(maxlen=1000)
        self.server: SerialSocketServer | None = None
        self._words: dict[str, Callable[[list], str]] = {
            "?NM": lambda s: f" {self.wavelength_nm:.2f} nm ",
            "GOTO": self._goto, "<GOTO>": self._goto, "NM": self._nm, "<NM>": self._nm,
            ">NM": self._scan, "MONO-?DONE": lambda s: f" {int(self.done)} ",
            "MONO-STOP": self._stop, "NM/MIN": self._set_rate,
            "?NM/MIN": lambda s: f" {self.scan_rate_nm_per_min:.2f} nm/min ",
            "GRATING": self._set_grating, "?GRATING": lambda s: f" {self.grating} ",
            "?GRATINGS": self._list_gratings, "TURRET": self._set_turret,
            "?TURRET": lambda s: f" {self.turret} ",
            "MODEL": lambda s: f" {self.model_text} ", "SERIAL": lambda s: f" {self.serial_number} ",
            "ECHO": lambda s: self._set_echo(True), "NO-ECHO": lambda s: self._set_echo(False),
            "MICRONS": self._set_slit, "?MICRONS": self._get_slit,
        }
        for name in SLIT_NAMES:
            self._words[name] = lambda s, name=name: self._select_slit(name)
        clock.add_activity(self._busy_until)

    # -- lifecycle ------------------------------------------------------------------------
    def start_server(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        self.server = SerialSocketServer(self.handle, host=host, port=port, eol=b"\r",
                                         name=f"acton-{self.serial_number}")
        return self.server.start()



    def _busy_until(self) -> float:
        # Must not call clock.now(): plain attribute reads.
        return max(self._free_at, self._slit_free_at)

    # -- state ----------------------------------------------------------------------------
    def _position(self, t: float) -> float:
        if t >= self._t1:
            return self._nm1
        if t <= self._t0:
            return self._nm0
        return self._nm0 + (self._nm1 - self._nm0) * (t - self._t0) / (self._t1 - self._t0)

    @property
    def wavelength_nm(self) -> float:
        """Wavelength (nm) now, interpolated during a move."""
        with self.lock:
            return self._position(self.clock.now())

    @property
    def done(self) -> bool:
        """True when no drive motion (move or grating change) is running or queued."""
        with self.lock:
            return self.clock.now() >= self._free_at

    @property
    def last_move(self) -> tuple[float, float, float, float]:
        """The latest drive motion: (start, start nm, end, end nm), instrument time (Unix s)."""
        with self.lock:
            return self._t0, self._nm0, self._t1, self._nm1

    def slit_um(self, name: str) -> float | None:
        """Width (um) of slit ``name``; None if it has no motor."""
        with self.lock:
            return self._slits.get(name)

    def limit_nm(self, grating: int | None = None) -> float:
        return wavelength_limit_nm(self.gratings[grating or self.grating][0])

    def _drive(self, target_nm: float, duration_s: float | None, speed_nm_per_s: float) -> float:
        """Queue a wavelength motion; returns its end (instrument time)."""
        with self.lock:
            start = max(self.clock.now(), self._free_at)
            here = self._position(start)
            target = min(max(round(target_nm, 3), 0.0), self.limit_nm())   # firmware clamps
            if duration_s is None:
                duration_s = abs(target - here) / speed_nm_per_s
            self._t0, self._nm0, self._t1, self._nm1 = start, here, start + duration_s, target
            self._free_at = start + duration_s
        self.clock.notify()
        return self._free_at

    def _wait(self, end: float) -> None:
        self.clock.wait_until(lambda: self.clock.now() >= end or end, None)

    # -- interpreter ----------------------------------------------------------------------
    def handle(self, line: str, send: Callable[[bytes], None]) -> None:
        """Execute one command line (the server's handler)."""
        self.received.append((self.clock.now(), line))
        if self.echo:
            send(line.encode("latin-1"))
        stack: list[float] = []
        for token in line.split():
            if _NUMBER.fullmatch(token):
                stack.append(float(token))
                continue
            fn = self._words.get(token.upper())
            try:
                if fn is None:
                    raise _Refused(token)
                out = fn(stack)
            except _Refused:
                send(f" {token}? \r\n".encode("latin-1"))
                return
            if out:
                send(out.encode("latin-1"))
        send(b" ok\r\n")

    @staticmethod
    def _pop(stack: list) -> float:
        if not stack:
            raise _Refused()
        return stack.pop()

    def _goto(self, stack) -> str:
        self._wait(self._drive(self._pop(stack), None, GOTO_SPEED_NM_PER_S))
        return ""

    def _nm(self, stack) -> str:
        self._wait(self._drive(self._pop(stack), None, self.scan_rate_nm_per_min / 60.0))
        return ""

    def _scan(self, stack) -> str:
        self._drive(self._pop(stack), None, self.scan_rate_nm_per_min / 60.0)
        return ""

    def _stop(self, stack) -> str:
        with self.lock:
            now = self.clock.now()
            if now < self._t1:
                here = self._position(now)
                self._t0, self._nm0, self._t1, self._nm1 = now, here, now, here
                self._free_at = now
        self.clock.notify()
        return ""

    def _set_rate(self, stack) -> str:
        rate = self._pop(stack)
        lo, hi = SCAN_RATE_LIMITS_NM_PER_MIN
        if not lo <= rate <= hi:
            raise _Refused()
        self.scan_rate_nm_per_min = round(rate, 2)
        return ""

    def _usable(self, n: int) -> bool:
        first = (self.turret - 1) * self.per_turret + 1
        return n in self.gratings and first <= n < first + self.per_turret

    def _set_grating(self, stack) -> str:
        n = self._pop(stack)
        if n != int(n) or not self._usable(int(n)):
            return ""                              # real firmware: ok, nothing changes
        with self.lock:
            same = int(n) == self.grating
            self.grating = int(n)
            here = self._nm1                       # the wavelength is kept (clamped if need be)
        self._wait(self._drive(here, 0.0 if same else GRATING_CHANGE_S, GOTO_SPEED_NM_PER_S))
        return ""

    def _list_gratings(self, stack) -> str:
        lines = []
        for n in range(1, 3 * self.per_turret + 1):
            mark = self.current_marker if n == self.grating else " "
            if n in self.gratings:
                grooves, blaze = self.gratings[n]
                lines.append(f"{mark}{n}  {grooves} g/mm BLZ={format_blaze(blaze)} ")
            else:
                lines.append(f"{mark}{n}  Not Installed     ")
        return "\r\n" + "".join(x + "\r\n" for x in lines)

    def _set_turret(self, stack) -> str:
        t = self._pop(stack)
        if t not in (1, 2, 3):
            raise _Refused()
        self.turret = int(t)
        return ""

    def _set_echo(self, on: bool) -> str:
        self.echo = on
        return ""

    def _select_slit(self, name: str) -> str:
        self._slit_selected = name
        return ""

    def _set_slit(self, stack) -> str:
        width = self._pop(stack)
        name = self._slit_selected
        if name not in self._slits:
            return " no motor "
        lo, hi = SLIT_LIMITS_UM
        if not lo <= width <= hi:
            raise _Refused()
        with self.lock:
            start = max(self.clock.now(), self._slit_free_at)
            end = start + abs(round(width) - self._slits[name]) / SLIT_SPEED_UM_PER_S
            self._slits[name] = float(round(width))
            self._slit_free_at = end
        self.clock.notify()
        self._wait(end)
        return ""

    def _get_slit(self, stack) -> str:
        width = self._slits.get(self._slit_selected)
        return " no motor " if width is None else f" {int(width)} um "
