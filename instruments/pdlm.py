"""PicoQuant Taiko PDL M1 library (``PDLM_Lib``, ``PDLMUser.h``, instruments.md §4.1) and its
driver, :class:`PdlmLaserDriver`, the Taiko side of :class:`~.laser.PicosecondLaser`.

:class:`LaserLib` follows :mod:`.clib` (ctypes / socket-RPC / transcript backends); the RPC
client is :mod:`.rpc_backend`, shared with the HydraHarp.

**Faults** (the library's :class:`~.retry.RetryPolicy`): every call is repeated after a garbled
or lost reply, since the Taiko's setters send absolute values (``PDLM_SetFrequency`` Hz,
``PDLM_SetPulsePowerPermille``, ``PDLM_SetLaserMode``, ``PDLM_SetSoftLock``) and its getters
read; except ``PDLM_OpenDevice`` (:data:`PDLM_NOT_RETRIED`): the lost call may have opened the
device and a second one fails (``PDLM_ERROR_DEVICE_ALREADY_OPENED``), so
:meth:`PdlmLaserDriver.open` repeats its whole sequence after closing the device, and a
stand-alone call raises :class:`~.clib.NotRetried`. ``PDLM_CloseDevice`` repeated reports
``PDLM_ERROR_NOT_CONNECTED``, which :meth:`PdlmLaserDriver.close` takes as closed. A
reconnection needs no re-opening: the device's state (open, settings, lock) belongs to the
device (the simulator), not to the connection.
"""

from __future__ import annotations

import math
import sys
from ctypes import c_float, c_int, c_uint32

from . import picoquant_defs as pq
from .clib import (BufLen, In, InOutLen, LibraryError, Out, OutStr, TranscriptBackend,
                   VendorLibrary, check_int)
from .clib_ctypes import CtypesBackend, load_library
from .errors import check_choice
from .rpc_backend import SocketRpcBackend

_IDX = In(c_int)

#: PDLM_Lib functions (``PDLMUser.h``).
PDLM_FUNCTIONS = {
    "PDLM_GetLibraryVersion": (OutStr(32), BufLen(32)),
    "PDLM_DecodeError": (In(c_int), OutStr(256), InOutLen(256)),
    "PDLM_OpenDevice": (_IDX, OutStr(16)),
    "PDLM_CloseDevice": (_IDX,),
    "PDLM_GetLHWavelength": (_IDX, Out(c_float)),                        # nm
    "PDLM_GetFrequencyLimits": (_IDX, Out(c_uint32), Out(c_uint32)),     # Hz
    "PDLM_SetFrequency": (_IDX, In(c_uint32)),
    "PDLM_GetFrequency": (_IDX, Out(c_uint32)),
    "PDLM_SetPulsePowerPermille": (_IDX, In(c_uint32)),
    "PDLM_GetPulsePowerPermille": (_IDX, Out(c_uint32)),
    "PDLM_SetLaserMode": (_IDX, In(c_uint32)),                           # 0 CW, 1 pulse
    "PDLM_GetLaserMode": (_IDX, Out(c_uint32)),
    "PDLM_SetSoftLock": (_IDX, In(c_uint32)),                            # 1 locked
    "PDLM_GetSoftLock": (_IDX, Out(c_uint32)),
    "PDLM_GetLocked": (_IDX, Out(c_uint32)),                             # any lock
    "PDLM_GetSystemStatus": (_IDX, Out(c_uint32)),
}
LIBRARY_NAMES = ("PDLM_Lib.dll", "pdlm_lib.dll") if sys.platform == "win32" else ("libpdlm.so",)
MODES = {"cw": pq.PDLM_LASER_MODE_CW, "pulsed": pq.PDLM_LASER_MODE_PULSE}
#: Calls never repeated on their own (see the module docstring): fn -> reason(args) or None.
PDLM_NOT_RETRIED = {
    "PDLM_OpenDevice": lambda args: "the lost call may have opened the device (a repeat fails "
                                    "PDLM_ERROR_DEVICE_ALREADY_OPENED); PdlmLaserDriver.open() "
                                    "reopens it cleanly",
}



class LaserLib(VendorLibrary):
    """PDLM_Lib: ``PDLM_*`` methods generated from :data:`PDLM_FUNCTIONS`."""

    functions = PDLM_FUNCTIONS
    not_retried = PDLM_NOT_RETRIED
    instrument = "taiko"

    def error_text(self, code: int) -> str:
        return self._error_text_via("PDLM_DecodeError", code)


class CtypesLaserBackend(CtypesBackend):
    """The real PDLM_Lib through ctypes (Windows DLL; ``path`` overrides the name)."""

    def __init__(self, path: str | None = None):
        super().__init__(load_library([path] if path else LIBRARY_NAMES), PDLM_FUNCTIONS)


class SocketRpcLaserBackend(SocketRpcBackend):
    """PDLM calls sent to the laser simulator (newline JSON RPC, :mod:`.rpc_backend`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, name: str = "taiko-rpc",
                 timeout_s: float = 5.0, connect: bool = True):
        super().__init__(host, port, name=name, timeout_s=timeout_s, connect=connect)


class TranscriptLaserBackend(TranscriptBackend):
    """Expected ``(fn, args, ret, outs)`` calls for unit tests."""


class PdlmLaserDriver:
    """A Taiko PDL M1 through :class:`LaserLib`: the interface :class:`PicosecondLaser` uses
    (shared with :class:`PiLasDriver`). Values are validated before any call."""

    modes = ("pulsed", "cw")

    def __init__(self, lib: LaserLib, *, usb_index: int = 0):
        self.lib = lib
        self.instrument = lib.name
        self.usb_index = check_int("usb_index", usb_index, pq.PDLM_USB_INDEX_MIN, pq.PDLM_USB_INDEX_MAX)
        self.serial = ""
        self.wavelength_nm = math.nan
        self.frequency_limits_hz = (1.0, 1e8)

    def _call(self, fn: str, *args):
        return getattr(self.lib, fn)(self.usb_index, *args)

    @property
    def retry(self):
        """The library's :class:`~.retry.RetryPolicy` (what the laser's monitor polls under)."""
        return self.lib.retry

    @property
    def transport(self):
        """The library's backend: the connection the retry policy reconnects."""
        return self.lib.backend

    def open(self) -> "PdlmLaserDriver":
        """Open, read the wavelength and frequency limits; after a fault the whole sequence
        again, once the device is closed (a lost ``PDLM_OpenDevice`` may have opened it)."""
        self.lib.retrying(self._open_once, "open", before_retry=self._close_device)
        return self

    def _open_once(self) -> None:
        self.serial = self._call("PDLM_OpenDevice")
        self.wavelength_nm = float(self._call("PDLM_GetLHWavelength"))
        low, high = self._call("PDLM_GetFrequencyLimits")
        self.frequency_limits_hz = (float(low), float(high))

    def _close_device(self) -> None:
        try:
            self._call("PDLM_CloseDevice")
        except LibraryError as exc:     # repeated after a lost reply: already closed
            if exc.code != pq.PDLM_ERROR["NOT_CONNECTED"]:
                raise

    def close(self) -> None:
        try:
            self._close_device()
        finally:
            self.lib.close()

    def check_repetition_rate_hz(self, hz) -> int:
        return check_int("repetition_rate_hz", hz, *self.frequency_limits_hz, "Hz")

    def set_repetition_rate_hz(self, hz) -> None:
        self._call("PDLM_SetFrequency", self.check_repetition_rate_hz(hz))

    def get_repetition_rate_hz(self) -> float:
        return float(self._call("PDLM_GetFrequency"))

    def check_intensity_permille(self, permille) -> int:
        return check_int("intensity_permille", permille, pq.PDLM_PERMILLE_MIN, pq.PDLM_PERMILLE_MAX,
                     "per mille")

    def set_intensity_permille(self, permille) -> None:
        self._call("PDLM_SetPulsePowerPermille", self.check_intensity_permille(permille))

    def get_intensity_permille(self) -> int:
        return int(self._call("PDLM_GetPulsePowerPermille"))

    def check_mode(self, mode) -> str:
        return check_choice("mode", mode, self.modes)

    def set_mode(self, mode) -> None:
        self._call("PDLM_SetLaserMode", MODES[self.check_mode(mode)])

    def get_mode(self) -> str:
        code = self._call("PDLM_GetLaserMode")
        return {v: k for k, v in MODES.items()}.get(code, f"code {code}")

    def set_soft_lock(self, locked: bool) -> None:
        self._call("PDLM_SetSoftLock", pq.PDLM_LASER_LOCKED if locked else pq.PDLM_LASER_UNLOCKED)

    def get_soft_lock(self) -> bool:
        return self._call("PDLM_GetSoftLock") != pq.PDLM_LASER_UNLOCKED

    def get_locked(self) -> bool:
        return self._call("PDLM_GetLocked") != pq.PDLM_LASER_UNLOCKED

    def get_interlock_open(self) -> bool:
        """Hardware lock: key switch or on/off button (``PDLM_GetSystemStatus`` bits)."""
        bits = pq.PDLM_DEVSTATE_KEYLOCK | pq.PDLM_DEVSTATE_LOCKED_BY_ON_OFF_BUTTON
        return bool(int(self._call("PDLM_GetSystemStatus")) & bits)


