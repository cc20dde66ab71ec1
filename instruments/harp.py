"""PicoQuant HydraHarp 400 library (HHLib 3.0, prefix ``HH_``) as a thin Python abstraction.

Family chosen: **HydraHarp 400** (``hhlib64.dll`` / ``libhh400.so``). It is the best-verified
library here (the v3.0 ``hhdefin.h`` and the PicoQuant histogram-mode demos in C, C# and
Python, instruments.md §3.1) and its histogram path has every step the framework needs:
``HH_Calibrate``, CFD triggering on sync and inputs, ``HH_SetHistoLen``, 1 ps base resolution.

:class:`HarpLib` has one method per C function, with the C name and the C argument order
minus the pointer outputs, which are returned (see :mod:`.clib`)::

    lib = HarpLib(SocketRpcHarpBackend("127.0.0.1", port))      # simulator
    lib = HarpLib(CtypesHarpBackend())                           # hardware
    serial = lib.HH_OpenDevice(0)
    lib.HH_Initialize(0, HH_MODE_HIST, 0)
    lib.HH_SetSyncDiv(0, 8)
    counts = lib.HH_GetHistogram(0, 0, 0)        # dev, channel, clear -> 65536 uint32

A negative return code raises :class:`~.clib.LibraryError` whose message carries the
library's own text from ``HH_GetErrorString``. The library checks nothing in Python: range
checks belong to the driver (:mod:`.tcspc`), which validates *before* calling.

Over the socket backend, with a :class:`~.retry.RetryPolicy`, every call is repeated after a
garbled or lost reply (it was executed; only the answer was lost) except those of
:data:`HH_NOT_RETRIED`, which raise :class:`~.clib.NotRetried` instead:

- ``HH_OpenDevice``: the lost call may have opened the device, and a second one then fails
  (``HH_ERROR_DEVICE_BUSY``); :meth:`.tcspc.TCSPCDriver.open` repeats its whole sequence after
  ``HH_CloseDevice``.
- ``HH_StartMeas``: a measurement may have started; :meth:`.tcspc.TCSPCDriver.start` repeats
  ``HH_StopMeas``, ``HH_ClearHistMem``, ``HH_StartMeas``, so the memory holds one
  measurement, never a lost or a doubled one.
- ``HH_GetHistogram`` with ``clear=1``: the library cleared the memory before the reply was
  lost; a repeat would return the emptied memory, so those counts are gone (``clear=0``, what
  the driver uses, reads without side effect and is repeated).

Everything else is idempotent: setters (``SetSyncDiv``, ``SetBinning``, ``SetOffset`` ...)
send absolute values, getters read, ``Initialize`` resets to the same state, ``ClearHistMem``,
``StopMeas`` and ``CloseDevice`` leave the same state when repeated. A reconnection needs no
re-opening: the device's state (open, initialised, settings, a running measurement) belongs to
the device (the simulator), not to the connection.

The ctypes backend cannot be exercised without a HydraHarp and its library; its ``argtypes``
come from the same table the other backends use and are unit-tested, and its marshalling is
tested against a small C library compiled in the tests.
"""

from __future__ import annotations

import sys
from ctypes import c_double, c_int, c_uint

from .clib import In, Out, OutArray, OutStr, TranscriptBackend, VendorLibrary
from .clib_ctypes import CtypesBackend, load_library
from .picoquant_defs import HH_MAXHISTLEN
from .rpc_backend import SocketRpcBackend

_DEV = In(c_int)

#: HHLib 3.0 functions used for histogram-mode TCSPC (signatures from the v3.0 demos).
HH_FUNCTIONS = {
    "HH_GetLibraryVersion": (OutStr(8),),
    "HH_GetErrorString": (OutStr(40), In(c_int)),
    "HH_OpenDevice": (_DEV, OutStr(8)),
    "HH_CloseDevice": (_DEV,),
    "HH_Initialize": (_DEV, In(c_int), In(c_int)),                  # mode, refsource
    "HH_GetHardwareInfo": (_DEV, OutStr(16), OutStr(8), OutStr(8)),  # model, partno, version
    "HH_GetSerialNumber": (_DEV, OutStr(8)),
    "HH_GetBaseResolution": (_DEV, Out(c_double), Out(c_int)),      # ps, binsteps
    "HH_GetNumOfInputChannels": (_DEV, Out(c_int)),
    "HH_Calibrate": (_DEV,),
    "HH_SetSyncDiv": (_DEV, In(c_int)),
    "HH_SetSyncCFD": (_DEV, In(c_int), In(c_int)),                  # level mV, zero cross mV
    "HH_SetSyncChannelOffset": (_DEV, In(c_int)),                   # ps
    "HH_SetInputCFD": (_DEV, In(c_int), In(c_int), In(c_int)),      # channel, level, zc
    "HH_SetInputChannelOffset": (_DEV, In(c_int), In(c_int)),       # channel, ps
    "HH_SetStopOverflow": (_DEV, In(c_int), In(c_uint)),            # stop_ovfl, stopcount
    "HH_SetBinning": (_DEV, In(c_int)),
    "HH_SetOffset": (_DEV, In(c_int)),                              # ns
    "HH_SetHistoLen": (_DEV, In(c_int), Out(c_int)),                # lencode -> actual length
    "HH_ClearHistMem": (_DEV,),
    "HH_StartMeas": (_DEV, In(c_int)),                              # tacq ms
    "HH_StopMeas": (_DEV,),
    "HH_CTCStatus": (_DEV, Out(c_int)),
    "HH_GetHistogram": (_DEV, OutArray(c_uint, HH_MAXHISTLEN), In(c_int), In(c_int)),
    "HH_GetResolution": (_DEV, Out(c_double)),                      # ps
    "HH_GetSyncRate": (_DEV, Out(c_int)),                           # Hz
    "HH_GetCountRate": (_DEV, In(c_int), Out(c_int)),               # channel -> counts/s
    "HH_GetFlags": (_DEV, Out(c_int)),
    "HH_GetElapsedMeasTime": (_DEV, Out(c_double)),                 # ms
    "HH_GetWarnings": (_DEV, Out(c_int)),
    "HH_GetWarningsText": (_DEV, OutStr(16384), In(c_int)),
}

#: Calls never repeated on their own (see the module docstring): fn -> reason(args) or None.
HH_NOT_RETRIED = {
    "HH_OpenDevice": lambda args: "the lost call may have opened the device (a repeat fails "
                                  "HH_ERROR_DEVICE_BUSY); TCSPCDriver.open() reopens it cleanly",
    "HH_StartMeas": lambda args: "a measurement may have started; TCSPCDriver.start() stops, "
                                 "clears and starts it again",
    "HH_GetHistogram": lambda args: "with clear=1 the memory was cleared before the reply was "
                                    "lost: those counts are gone" if args[2] else None,
}

#: Library file names tried by :class:`CtypesHarpBackend`, in order.
LIBRARY_NAMES = (("hhlib64.dll", "hhlib.dll") if sys.platform == "win32"
                 else ("libhh400.so", "hhlib.so"))


class HarpLib(VendorLibrary):
    """HHLib 3.0: ``HH_*`` methods generated from :data:`HH_FUNCTIONS`."""

    functions = HH_FUNCTIONS
    not_retried = HH_NOT_RETRIED
    instrument = "hydraharp"

    def error_text(self, code: int) -> str:
        return self._error_text_via("HH_GetErrorString", code)


class CtypesHarpBackend(CtypesBackend):
    """The real HHLib through ctypes (``path``: the library file; default: try
    :data:`LIBRARY_NAMES` on the loader's search path)."""

    def __init__(self, path: str | None = None):
        super().__init__(load_library([path] if path else LIBRARY_NAMES), HH_FUNCTIONS)


class SocketRpcHarpBackend(SocketRpcBackend):
    """HHLib calls sent to the HydraHarp simulator (newline JSON RPC, :mod:`.rpc_backend`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, name: str = "hydraharp-rpc",
                 timeout_s: float = 5.0, connect: bool = True):
        super().__init__(host, port, name=name, timeout_s=timeout_s, connect=connect)


class TranscriptHarpBackend(TranscriptBackend):
    """Expected ``(fn, args, ret, outs)`` calls for unit tests."""
