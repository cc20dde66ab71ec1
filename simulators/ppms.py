"""Simulated Quantum Design PPMS (Model 6000 controller, GPIB dialect) over TCP.

Wire protocol (instruments.md §1, §7 item 1), served by :class:`GpibSocketServer`: commands
end with ``\\n``, ``\\r\\n`` or ``;``, are case-insensitive, arguments separated by commas or
spaces; replies are ``payload;\\n``. Set commands (``TEMP``, ``FIELD``, ``CHAMBER``, ``MOVE``,
``LEVELON``) get no reply, as a GPIB write gets none.

=====================  ======================================================================
``TEMP sp,rate,app``   set point 1.9-350 K, rate 0.01-20 K/min, approach 0 fast / 1 no overshoot
``TEMP?``              ``sp,rate,approach`` (the set point, not the reading: use ``GETDAT?``)
``FIELD H,rate,a,m``   +-90000 Oe, 10.5-196 Oe/s, approach 0 linear/1 no overshoot/2 oscillate,
                       mode 0 persistent / 1 driven (persistent switch: 15 s warm, 15 s cool)
``FIELD?``             ``field,rate,approach,mode``
``CHAMBER c``          0 seal, 1 purge+seal, 2 vent+seal, 3 pump, 4 vent (5 high vacuum if
                       the simulator was built with ``high_vacuum=True``); ``CHAMBER?`` -> c
``GETDAT? mask``       ``mask,timestamp,v...``: bits 0 status word, 1 T (K), 2 H (Oe),
                       3 position (deg), 19 sample-space pressure (Torr, illustrative), values
                       ``%.7g`` in ascending bit order; timestamp = instrument time (Unix s,
                       ``%.3f``). Other bits (user bridges, drivers, ...) are refused.
``LEVEL?``             ``percent,age``: age 0 ``>1h``, 1 ``<1h``, 2 ``continuous`` (index order
                       of slave's Enum [inferred]); ``LEVELON n``: 0 on (one reading),
                       1 continuous (default), 2 hourly, 3 off (:mod:`.ppms_helium`)
``MAGCNF?``            ``maxfield,B/I,L,Vlow,Vhigh,heat_s,cool_s`` (illustrative magnet values)
``MOVE p,m,s``         sample rotator, 0-360 deg; m 0 move, 1 to limit + redefine as p,
                       2 redefine; slowdown 0-14; ``MOVE?`` -> ``pos,mode,slowdown``
``REV?`` ``*IDN?``     identification; ``DATE?`` -> ``m,d,yy``, ``TIME?`` -> ``h,m,s``
                       (instrument time, local zone) [formats inferred from ``DATE m,d,yy``]
=====================  ======================================================================

Errors. The manual's error reporting is not public (§1 lists only the command names), so this
is a documented decision: a refused *query* (unknown command, wrong arguments, unsupported
GETDAT? bit) is answered ``ERROR: <what, value, allowed range>;``; a refused *set* command gets
no reply (a GPIB write cannot be answered without desynchronising the next read), leaves the
state unchanged and is queued for the simulator-extension query ``SPINLIGHT_ERR?`` ->
``<n>,<message>`` (``0,no error`` when empty). The spinlight driver reads every setting back
(``TEMP?``, ``FIELD?``, ``CHAMBER?``), which also catches a silent refusal on real hardware.

Simulator extension: ``SPINLIGHT_ERR?``, ``SPINLIGHT_DATAFILE?`` (path of :attr:`datafile`),
``SPINLIGHT_CLOCK?`` (``instrument time,speed``), plus :attr:`PPMSSimulator.extensions`, a dict
``NAME -> fn(args: list[str]) -> str | None`` consulted after the built-in commands (an ACMS
measurement engine attaches there; it may raise :class:`PPMSCommandError` / ``ValueError``,
reported like built-in errors).

Faults (:mod:`.faults`): :meth:`PPMSSimulator.inject_fault` takes ``temperature_excursion``,
``quench`` (magnet nibble 8) and ``helium_low``; ``server.faults`` the wire faults.

The ``.dat`` file: :attr:`datafile` is chosen at construction (unique name in ``data_dir``) but
created only by :meth:`open_datafile` (BYAPP ``ACMS II``), so a PPMS used for temperature and
field only leaves no empty file; ``DatFollower`` waits for a file that does not exist yet.
"""

from __future__ import annotations

import collections
import math
import re
import threading
import time
from pathlib import Path
from typing import Callable

from spinlight.instruments.qd_dat import DatWriter

from .clock import VirtualClock
from .ppms_acms import PpmsAcms
from .dynamics import SWITCH_COOL_S, SWITCH_WARM_S, Chamber, LimitError, Magnet, \
    TemperatureControl
from .fault_kinds import CryostatFaults
from .gpib_socket import GpibSocketServer
from .ppms_helium import HeliumLevel

TEMPERATURE_LIMITS_K = (1.9, 350.0)
TEMPERATURE_RATE_LIMITS_K_PER_MIN = (0.01, 20.0)   # 0 would mean "never arrives"
MAX_FIELD_OE = 90000.0
FIELD_RATE_LIMITS_OE_PER_S = (10.5, 196.0)
POSITION_RANGE_DEG = (0.0, 360.0)
POSITION_SPEED_DEG_PER_S = 12.0                    # at slowdown 0; divided by (1 + slowdown)
#: MAGCNF? reply: max field Oe, B/I Oe/A, L H, Vlow V, Vhigh V, switch heat s, cool s.
MAGNET_CONFIG = (MAX_FIELD_OE, 1500.0, 42.0, 1.8, 1.2, int(SWITCH_WARM_S), int(SWITCH_COOL_S))
#: Sample-space pressure (Torr) per chamber state code, illustrative only.
PRESSURE_TORR = {0: 10.0, 1: 5.0, 2: 760.0, 3: 10.0, 4: 1.0, 5: 400.0, 6: 0.1, 7: 1e-4,
                 8: 0.05, 9: 760.0, 14: 1.0, 15: 10.0}
BIT_STATUS, BIT_TEMPERATURE, BIT_FIELD, BIT_POSITION, BIT_PRESSURE = 0, 1, 2, 3, 19
APP = "ACMS II"
IDN = "QUANTUM DESIGN,PPMS MODEL 6000 (spinlight simulator),SIM,1.0"


class PPMSCommandError(ValueError):
    """A command the controller refuses; the message names what, the value and the range."""


def unique_path(data_dir: Path, stem: str) -> Path:
    """``data_dir/stem.dat``, or ``stem_2.dat``, ... if taken (the folder is created)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)
    path, i = data_dir / f"{stem}.dat", 1
    while path.exists():
        i += 1
        path = data_dir / f"{stem}_{i}.dat"
    return path


class SamplePosition:
    """Sample rotator (deg): linear moves, status 5 moving / 1 stopped (§1.3 position nibble)."""

    def __init__(self):
        self.t0 = self.t1 = -math.inf
        self.p0 = self.p1 = self.final = 0.0
        self.mode = self.slowdown = 0

    def set(self, t: float, position: float, mode: int, slowdown: int) -> None:
        lo, hi = POSITION_RANGE_DEG
        if not lo <= position <= hi:
            raise LimitError("position (deg)", position, f"{lo:g}-{hi:g} deg")
        if mode not in (0, 1, 2):
            raise LimitError("move mode", mode, "0 (move), 1 (limit, redefine), 2 (redefine)")
        if slowdown not in range(15):
            raise LimitError("slowdown code", slowdown, "0-14")
        now = self.value(t)
        target = {0: position, 1: lo, 2: now}[mode]   # mode 1 drives to the limit switch
        speed = POSITION_SPEED_DEG_PER_S / (1 + slowdown)
        self.t0, self.p0, self.p1 = t, now, target
        self.t1 = t + abs(target - now) / speed
        self.final = position
        self.mode, self.slowdown = mode, slowdown

    def value(self, t: float) -> float:
        if t >= self.t1:
            return self.final
        return self.p0 + (self.p1 - self.p0) * (t - self.t0) / (self.t1 - self.t0)

    def state_code(self, t: float) -> int:
        return 5 if t < self.t1 else 1


def _g(v: float) -> str:
    return f"{v:.7g}"


class PPMSSimulator(CryostatFaults):
    """A simulated PPMS (temperature, persistent-switch magnet, chamber, rotator, helium).

    ``sample`` and ``mass_mg`` are kept for an ac measurement engine attached through
    :attr:`extensions`; ``seed`` keys the reading noise. Helium starts at ``helium_percent``
    and falls by ``helium_boiloff_percent_per_h`` (+ ``helium_driven_extra_percent_per_h``
    while the magnet is energised) of instrument time; :meth:`refill` sets it.
    """

    FAULT_KINDS = ("temperature_excursion", "quench", "helium_low")
    QUENCH_CODES = {"quench": 8, "current_error": 8}        # the Model 6000 has one code

    def __init__(self, clock: VirtualClock, sample, *, mass_mg: float, data_dir,
                 seed: int = 0, title: str = "", helium_percent: float = 80.0,
                 helium_boiloff_percent_per_h: float = 1.0,
                 helium_driven_extra_percent_per_h: float = 2.0, high_vacuum: bool = False,
                 ac_model=None):
        if not mass_mg > 0:
            raise ValueError(f"mass_mg = {mass_mg!r} must be > 0")
        self.clock, self.sample, self.mass_mg, self.seed = clock, sample, float(mass_mg), seed
        self.lock = threading.RLock()
        self.temperature = TemperatureControl(
            limits_K=TEMPERATURE_LIMITS_K, seed=seed,
            rate_limits_K_per_min=TEMPERATURE_RATE_LIMITS_K_PER_MIN)
        self.magnet = Magnet(max_field_Oe=MAX_FIELD_OE, high_field_Oe=MAX_FIELD_OE,
                             rate_limits_Oe_per_s=FIELD_RATE_LIMITS_OE_PER_S,
                             has_switch=True, initial_code=1, seed=seed)
        self.chamber = Chamber(initial_mode=1, modes=(0, 1, 2, 3, 4) + ((5,) if high_vacuum else ()))
        self.position = SamplePosition()
        self.helium = HeliumLevel(clock.now(), helium_percent, helium_boiloff_percent_per_h,
                                  helium_driven_extra_percent_per_h)
        name = getattr(sample, "name", "sample")
        self.title = title or f"spinlight simulated PPMS - {name}"
        self.datafile = unique_path(Path(data_dir), f"PPMS_ACMS_sim_{name}")
        self.writer: DatWriter | None = None
        self.extensions: dict[str, Callable[[list], str | None]] = {}
        self.stop_hooks: list[Callable[[], None]] = []
        self.errors: collections.deque = collections.deque(maxlen=100)
        self.received: collections.deque = collections.deque(maxlen=1000)
        self.server: GpibSocketServer | None = None
        self.acms = PpmsAcms(self, ac_model)
        self._commands = {
            "TEMP": self._set_temp, "TEMP?": self._get_temp,
            "FIELD": self._set_field, "FIELD?": self._get_field,
            "CHAMBER": self._set_chamber, "CHAMBER?": lambda a: self._noargs(a, self.chamber.mode),
            "GETDAT?": self._getdat, "LEVEL?": self._level, "LEVELON": self._levelon,
            "MAGCNF?": lambda a: self._noargs(a, ",".join(_g(v) for v in MAGNET_CONFIG)),
            "MOVE": self._move, "MOVE?": self._get_move,
            "REV?": lambda a: self._noargs(a, "spinlight-sim,1.0"),
            "*IDN?": lambda a: self._noargs(a, IDN),
            "DATE?": lambda a: self._noargs(a, self._clock_text("{m},{d},{yy:02d}")),
            "TIME?": lambda a: self._noargs(a, self._clock_text("{H},{M},{S}")),
            "SPINLIGHT_ERR?": self._next_error,
            "SPINLIGHT_DATAFILE?": lambda a: self._noargs(a, str(self.datafile)),
            "SPINLIGHT_CLOCK?": lambda a: self._noargs(
                a, f"{self.clock.now():.3f},{self.clock.speed:g}"),
        }
        clock.add_activity(self._busy_until)

    # -- lifecycle ------------------------------------------------------------------------
    def _busy_until(self) -> float:
        """Instrument time until which T, H, chamber or rotator still move (the clock runs
        until then). Helium falls lazily and keeps nothing busy. Must not call clock.now()."""
        end = math.inf
        return max(self.temperature.settled_at(end), self.magnet.settled_at(end),
                   self.chamber.settled_at(end), self.position.t1)

    def start_server(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        self.server = GpibSocketServer(self.handle, host=host, port=port, name="ppms")
        return self.server.start()

    def stop(self) -> None:
        """Stop serving, run the stop hooks (e.g. an ac engine), close the ``.dat``."""
        if self.server is not None:
            self.server.stop()
        for hook in self.stop_hooks:
            hook()
        if self.writer is not None and not self.writer.closed:
            self.writer.close()

    def open_datafile(self, **writer_kwargs) -> DatWriter:
        """Create :attr:`datafile` (once) as a ``DatWriter`` with BYAPP ``ACMS II``; later
        calls return the same writer. ``writer_kwargs`` go to ``DatWriter`` (``columns``,
        ``fsync``, ``info``...) on the first call only."""
        with self.lock:
            if self.writer is None:
                kw = dict(title=self.title, sample_material=getattr(self.sample, "name", ""),
                          sample_mass_mg=self.mass_mg, app=APP, open_time_unix=self.clock.now(),
                          molecular_weight=getattr(self.sample, "molar_mass_g_per_mol", None))
                kw.update(writer_kwargs)
                self.writer = DatWriter(self.datafile, **kw)
            return self.writer

    def refill(self, percent: float) -> None:
        """Set the helium level to ``percent`` (0-100 %) at the current instrument time."""
        with self.lock:
            self.helium.refill(self.clock.now(), percent)

    def helium_percent(self, t: float | None = None) -> float:
        return self.helium.percent(self.clock.now() if t is None else t)

    # -- dispatch -------------------------------------------------------------------------
    def handle(self, command: str, args: list) -> str | None:
        """Answer one parsed command (the server's handler; ``command`` upper-case)."""
        self.received.append((self.clock.now(), command, tuple(args)))
        fn = self._commands.get(command) or self.extensions.get(command)
        try:
            if fn is None:
                raise PPMSCommandError(f"unknown command {command!r}")
            return fn(args)
        except (PPMSCommandError, ValueError) as exc:   # LimitError is a ValueError
            line = " ".join([command, ",".join(args)]).strip()
            self.errors.append((self.clock.now(), line, str(exc)))
            return f"ERROR: {line}: {exc}" if command.endswith("?") else None

    @staticmethod
    def _noargs(args: list, reply) -> str:
        if args:
            raise PPMSCommandError(f"takes no arguments (got {','.join(args)!r})")
        return str(reply)

    @staticmethod
    def _numbers(args: list, kinds: str, what: str) -> list:
        """Parse ``args`` as ``kinds`` ('f' float, 'i' integer); names ``what`` on error."""
        if len(args) != len(kinds):
            raise PPMSCommandError(f"needs {len(kinds)} arguments ({what}), got {len(args)}")
        out = []
        for a, k in zip(args, kinds):
            try:
                v = float(a)
            except ValueError:
                raise PPMSCommandError(f"argument {a!r} is not a number ({what})") from None
            if k == "i" and v != int(v):
                raise PPMSCommandError(f"argument {a!r} must be an integer ({what})")
            out.append(int(v) if k == "i" else v)
        return out

    def _apply(self, fn) -> None:
        with self.lock:
            fn(self.clock.now())
        self.clock.notify()

    def _clock_text(self, fmt: str) -> str:
        tm = time.localtime(self.clock.now())
        return fmt.format(m=tm.tm_mon, d=tm.tm_mday, yy=tm.tm_year % 100, H=tm.tm_hour,
                          M=tm.tm_min, S=tm.tm_sec)

    # -- temperature, field, chamber, rotator, helium ------------------------------------------
    def _set_temp(self, args) -> None:
        sp, rate, approach = self._numbers(args, "ffi", "set point K, rate K/min, approach")
        self._apply(lambda t: self.temperature.set(t, sp, rate, approach))

    def _get_temp(self, args) -> str:
        tc = self.temperature
        return self._noargs(args, f"{_g(tc.setpoint_K)},{_g(tc.rate_K_per_min)},{tc.approach}")

    def _set_field(self, args) -> None:
        h, rate, approach, mode = self._numbers(args, "ffii", "field Oe, rate Oe/s, approach, mode")

        def apply(t):
            self.magnet.set(t, h, rate, approach, mode)
            self.helium.energise(t, math.inf if mode == 1 else self.magnet.settled_at(t))
        self._apply(apply)

    def _get_field(self, args) -> str:
        m = self.magnet
        return self._noargs(args, f"{_g(m.setpoint_Oe)},{_g(m.rate_Oe_per_s)},{m.approach},{m.mode}")

    def _set_chamber(self, args) -> None:
        (mode,) = self._numbers(args, "i", "chamber code")
        self._apply(lambda t: self.chamber.set(t, mode))

    def _move(self, args) -> None:
        pos, mode, sdc = self._numbers(args, "fii", "position deg, mode, slowdown")
        self._apply(lambda t: self.position.set(t, pos, mode, sdc))

    def _get_move(self, args) -> str:
        p = self.position
        return self._noargs(args, f"{_g(p.value(self.clock.now()))},{p.mode},{p.slowdown}")

    def _levelon(self, args) -> None:
        (mode,) = self._numbers(args, "i", "level meter mode")
        self._apply(lambda t: self.helium.set_meter(t, mode))

    def _level(self, args) -> str:
        with self.lock:
            percent, age = self.helium.reading(self.clock.now())
        return self._noargs(args, f"{_g(percent)},{age}")

    def _next_error(self, args) -> str:
        self._noargs(args, "")
        if not self.errors:
            return "0,no error"
        _, line, msg = self.errors.popleft()
        return f"{len(self.errors) + 1},{line}: {msg}"

    # -- GETDAT? --------------------------------------------------------------------------
    def status_word(self, t: float) -> int:
        """Four nibbles: temperature | magnet << 4 | chamber << 8 | position << 12 (§1.3)."""
        return (self.temperature.state_code(t) | self.magnet.state_code(t) << 4
                | self.chamber.state_code(t) << 8 | self.position.state_code(t) << 12)

    def getdat(self, mask: int, t: float) -> str:
        """The GETDAT? reply for ``mask`` at instrument time ``t``."""
        channels = {BIT_STATUS: self.status_word, BIT_TEMPERATURE: self.temperature.reading,
                    BIT_FIELD: self.magnet.reading, BIT_POSITION: self.position.value,
                    BIT_PRESSURE: lambda s: PRESSURE_TORR[self.chamber.state_code(s)]}
        if not 0 < mask < 1 << 30:
            raise PPMSCommandError(f"mask {mask} is outside the allowed range 1-{(1 << 30) - 1}")
        unsupported = [b for b in range(30) if mask >> b & 1 and b not in channels]
        if unsupported:
            raise PPMSCommandError(f"mask {mask}: bit(s) {unsupported} not available on this "
                                   f"simulator (available bits {sorted(channels)})")
        with self.lock:
            values = [_g(channels[b](t)) for b in sorted(channels) if mask >> b & 1]
        return ",".join([str(mask), f"{t:.3f}"] + values)

    def _getdat(self, args) -> str:
        (mask,) = self._numbers(args, "i", "bit mask")
        return self.getdat(mask, self.clock.now())
