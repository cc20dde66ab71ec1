"""Simulated 375 nm picosecond diode laser: PicoQuant Taiko (``PDLM_*`` RPC) and PiLas (ASCII).

Both front ends drive one :class:`LaserState`, which the TCSPC simulator
(:mod:`.harp_sim`) reads: the laser's repetition rate is the HydraHarp's sync rate, and the
soft lock gates the photons (no counts while locked).

**PDLM (Taiko PDL M1) over RPC** (:class:`PdlmSimulator`, served by :class:`.rpc_socket.RpcServer`
with prefix ``PDLM_``; instruments.md §4.1). Functions as in ``PDLMUser.h``:
OpenDevice/CloseDevice, DecodeError, GetLHWavelength, GetFrequencyLimits, Set/GetFrequency (Hz),
Set/GetPulsePowerPermille (0..1000), Set/GetLaserMode (0 CW, 1 pulse; 2 burst is not simulated
and returns ``PDLM_ERROR_ILLEGAL_VALUE``), Set/GetSoftLock (1 locked), GetLocked (soft lock or
key), GetSystemStatus (``PDLM_DEVSTATE_KEYLOCK`` bit). Calls before OpenDevice return
``PDLM_ERROR_NOT_CONNECTED``; a USB index other than the simulated one returns
``PDLM_ERROR_DEVICE_NOT_FOUND``; a frequency above the head's limit returns
``PDLM_ERROR_FREQUENCY_TOO_HIGH``, below it ``PDLM_ERROR_ILLEGAL_VALUE`` (simulator decision).

**PiLas (EIG2000DX) over pyserial** ``socket://`` (:class:`PiLasSimulator`, §4.2): 19200 8N1
on the real port (a socket ignores it), ``\\n``-terminated lines both ways, labelled replies as
in the comet emulator: ``ld?`` -> ``pulsed laser emission: on``; ``f?`` ->
``int. frequency:\\t       1000000 Hz``; ``tune?`` -> ``tune value:\\t\\t     45.00 %``;
``tm?`` -> ``tune mode:\\tmanual``; ``lht?`` -> ``laser head temp.:\\t     25.0 °C`` (latin-1);
``ldtemp?`` -> ``LD temp.:\\t\\tgood``; ``version?`` -> 8 lines. ``ld=``, ``tm=``, ``f=``
(25 Hz..40 MHz), ``tune=`` (0..1000, tenths of a percent) and ``ts=`` (0/1/2) answer ``done``
(the comet emulator sends nothing for ``tune=``, but Lab5015Utils *queries* it, so the real
controller answers; simulator decision: ``done``). Unknown commands or out-of-range values get
``error: <text>`` (the real error replies are undocumented). ``ld=1`` unlocks (emission on).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, replace

from spinlight.instruments import picoquant_defs as pq

from .rpc_socket import RpcServer
from .serial_socket import SerialSocketServer, SocketServed

#: The simulated Taiko head's frequency range (Hz): a simulator decision for an LDH-375 head.
PDLM_FREQUENCY_LIMITS_HZ = (1, 100_000_000)
#: PiLas internal trigger range (Hz), comet driver / instruments.md §4.2.
PILAS_FREQUENCY_LIMITS_HZ = (25, 40_000_000)


@dataclass(frozen=True)
class LaserSnapshot:
    """The laser at one instant (what the TCSPC simulator sees)."""

    repetition_rate_hz: float
    intensity_permille: int
    mode: str                 # "pulsed" | "cw"
    wavelength_nm: float
    soft_locked: bool
    hard_locked: bool         # key switch / interlock

    @property
    def emitting(self) -> bool:
        """Light leaves the head: neither soft- nor hard-locked."""
        return not (self.soft_locked or self.hard_locked)

    @property
    def period_ns(self) -> float:
        return 1e9 / self.repetition_rate_hz


class LaserState:
    """Thread-safe laser state shared by the laser front ends and the TCSPC simulator.

    Starts soft-locked (no light) at 1 MHz, 500 per mille, pulsed. ``set_interlock(True)``
    opens the interlock (fault injection): the laser is hard-locked until it is closed.
    """

    def __init__(self, *, wavelength_nm: float = 375.0, repetition_rate_hz: float = 1e6,
                 intensity_permille: int = 500, mode: str = "pulsed"):
        self._lock = threading.Lock()
        self._snap = LaserSnapshot(float(repetition_rate_hz), int(intensity_permille), mode,
                                   float(wavelength_nm), soft_locked=True, hard_locked=False)

    def snapshot(self) -> LaserSnapshot:
        with self._lock:
            return self._snap

    def update(self, **fields) -> LaserSnapshot:
        with self._lock:
            self._snap = replace(self._snap, **fields)
            return self._snap

    def set_interlock(self, open_: bool) -> None:
        self.update(hard_locked=bool(open_))


class PdlmSimulator:
    """``PDLM_*`` functions of one Taiko PDL M1 on USB index ``usb_index``."""

    MODES = {pq.PDLM_LASER_MODE_CW: "cw", pq.PDLM_LASER_MODE_PULSE: "pulsed"}

    def __init__(self, state: LaserState, *, usb_index: int = 0, serial: str = "1032415",
                 frequency_limits_hz=PDLM_FREQUENCY_LIMITS_HZ):
        self.state, self.usb_index, self.serial = state, int(usb_index), serial
        self.frequency_limits_hz = tuple(int(f) for f in frequency_limits_hz)
        self.opened = False
        self.server: RpcServer | None = None

    def start_server(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        self.server = RpcServer(self, prefix="PDLM_", host=host, port=port, name="pdlm-sim")
        return self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def _check(self, idx: int) -> int:
        if not pq.PDLM_USB_INDEX_MIN <= idx <= pq.PDLM_USB_INDEX_MAX:
            return pq.PDLM_ERROR["WRONG_USBIDX"]
        if idx != self.usb_index:
            return pq.PDLM_ERROR["DEVICE_NOT_FOUND"]
        return 0 if self.opened else pq.PDLM_ERROR["NOT_CONNECTED"]

    def _get(self, idx: int, value):
        err = self._check(idx)
        return (err, []) if err else (0, [value])

    def _set(self, idx: int, ok: bool, **fields):
        err = self._check(idx) or (0 if ok else pq.PDLM_ERROR["ILLEGAL_VALUE"])
        if not err:
            self.state.update(**fields)
        return err, []

    # -- library functions -------------------------------------------------------------------
    def PDLM_GetLibraryVersion(self):
        return 0, ["spinlight-sim"]

    def PDLM_DecodeError(self, code):
        name = pq.PDLM_ERRORS.get(int(code))
        return (0, [name]) if name else (pq.PDLM_ERROR["ILLEGAL_VALUE"], [""])

    def PDLM_OpenDevice(self, idx):
        if not pq.PDLM_USB_INDEX_MIN <= idx <= pq.PDLM_USB_INDEX_MAX:
            return pq.PDLM_ERROR["WRONG_USBIDX"], [""]
        if idx != self.usb_index:
            return pq.PDLM_ERROR["DEVICE_NOT_FOUND"], [""]
        if self.opened:
            return pq.PDLM_ERROR["DEVICE_ALREADY_OPENED"], [self.serial]
        self.opened = True
        return 0, [self.serial]

    def PDLM_CloseDevice(self, idx):
        err = self._check(idx)
        if not err:
            self.opened = False
        return err, []

    def PDLM_GetLHWavelength(self, idx):
        return self._get(idx, self.state.snapshot().wavelength_nm)

    def PDLM_GetFrequencyLimits(self, idx):
        err = self._check(idx)
        return (err, []) if err else (0, list(self.frequency_limits_hz))

    def PDLM_SetFrequency(self, idx, hz):
        low, high = self.frequency_limits_hz
        err = self._check(idx)
        if not err and hz > high:
            return pq.PDLM_ERROR["FREQUENCY_TOO_HIGH"], []
        return self._set(idx, err == 0 and hz >= low, repetition_rate_hz=float(hz))

    def PDLM_GetFrequency(self, idx):
        return self._get(idx, int(round(self.state.snapshot().repetition_rate_hz)))

    def PDLM_SetPulsePowerPermille(self, idx, permille):
        ok = pq.PDLM_PERMILLE_MIN <= permille <= pq.PDLM_PERMILLE_MAX
        return self._set(idx, ok, intensity_permille=int(permille))

    def PDLM_GetPulsePowerPermille(self, idx):
        return self._get(idx, self.state.snapshot().intensity_permille)

    def PDLM_SetLaserMode(self, idx, mode):
        return self._set(idx, mode in self.MODES, mode=self.MODES.get(mode, "pulsed"))

    def PDLM_GetLaserMode(self, idx):
        inverse = {v: k for k, v in self.MODES.items()}
        return self._get(idx, inverse[self.state.snapshot().mode])

    def PDLM_SetSoftLock(self, idx, locked):
        return self._set(idx, locked in (pq.PDLM_LASER_UNLOCKED, pq.PDLM_LASER_LOCKED),
                         soft_locked=bool(locked))

    def PDLM_GetSoftLock(self, idx):
        return self._get(idx, int(self.state.snapshot().soft_locked))

    def PDLM_GetLocked(self, idx):
        return self._get(idx, int(not self.state.snapshot().emitting))

    def PDLM_GetSystemStatus(self, idx):
        return self._get(idx, pq.PDLM_DEVSTATE_KEYLOCK if self.state.snapshot().hard_locked else 0)


class PiLasSimulator(SocketServed):
    """The PiLas ASCII protocol on :class:`LaserState` (pulsed only; no CW option)."""

    def __init__(self, state: LaserState, *, serial: str = "PLC375CW0F00000042",
                 head_serial: str = "PLH375CW0F00000042", head_temp_C: float = 25.0):
        self.state = state
        self.tune_auto = False
        self.trigger_source = 0
        self.head_temp_C = float(head_temp_C)
        self.identity = (f"controller serial: {serial}", f"laser head serial: {head_serial}",
                         f"center wavelength: {state.snapshot().wavelength_nm:.0f} nm",
                         "CW laser option: no", "CW laser power: fixed",
                         "software version: SW.PiLas.V1.1.AEb",
                         "controller hardware version: PiLas_Control_PCB_Rev.2.1",
                         "laser head hardware version: PiLas_Laser_Head_PCB_Rev.2.0")
        self.received: list[str] = []
        self.server: SerialSocketServer | None = None

    def start_server(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        self.server = SerialSocketServer(self.handle, host=host, port=port, eol=b"\n",
                                         name="pilas-sim")
        return self.server.start()

    def reply(self, line: str) -> str:
        """The reply text (lines joined by ``\\n``) to one command line."""
        cmd = line.strip()
        self.received.append(cmd)
        s = self.state.snapshot()
        queries = {
            "version?": "\n".join(self.identity),
            "ld?": "pulsed laser emission: " + ("off" if s.soft_locked else "on"),
            "tm?": "tune mode:\t" + ("auto" if self.tune_auto else "manual"),
            "tune?": f"tune value:\t\t     {s.intensity_permille / 10:.2f} %",
            "f?": f"int. frequency:\t       {int(round(s.repetition_rate_hz))} Hz",
            "lht?": f"laser head temp.:\t     {self.head_temp_C:.1f} °C",
            "ldtemp?": "LD temp.:\t\tgood",
        }
        if cmd in queries:
            return queries[cmd]
        m = re.fullmatch(r"(ld|tm|tune|f|ts)=(\d+)", cmd)
        if m is None:
            return f"error: unknown command {cmd!r}"
        key, value = m[1], int(m[2])
        limits = {"ld": (0, 1), "tm": (0, 1), "tune": (0, 1000), "ts": (0, 2),
                  "f": PILAS_FREQUENCY_LIMITS_HZ}[key]
        if not limits[0] <= value <= limits[1]:
            return f"error: {key} out of range {limits[0]}..{limits[1]}"
        if key == "ld":
            self.state.update(soft_locked=value == 0)
        elif key == "tm":
            self.tune_auto = value == 1
        elif key == "tune":
            self.state.update(intensity_permille=value)
        elif key == "f":
            self.state.update(repetition_rate_hz=float(value))
        else:
            self.trigger_source = value
        return "done"

    def handle(self, line: str, send) -> None:
        if line.strip():
            send((self.reply(line) + "\n").encode("latin-1"))
