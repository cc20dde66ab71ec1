"""Vendor C libraries (PicoQuant HHLib, PDLM_Lib) behind a thin, table-driven abstraction.

PicoQuant TCSPC electronics and diode-laser drivers have no wire protocol: the interface is a
C library (instruments.md §3.1, §4.1, §7 items 3-4). spinlight keeps the exact C function names
and argument order and swaps what executes them:

- :class:`~.clib_ctypes.CtypesBackend` loads the real ``.dll`` / ``.so`` (hardware; its own
  module, :mod:`.clib_ctypes`);
- :class:`~.rpc_backend.SocketRpcBackend` sends each call to a simulator process;
- :class:`TranscriptBackend` replays expected calls in unit tests.

A library is a table ``{function name: (parameter specs in C order)}``:

==================  ==========================================================================
``In(ctype)``       input by value; the Python caller passes it
``Out(ctype)``      scalar output through a pointer; returned
``OutStr(size)``    ``char*`` buffer of ``size`` bytes the function fills; returned as ``str``
``OutArray(ct, n)`` array buffer of ``n`` elements; returned as a numpy array
``BufLen(size)``    ``uint32`` input carrying a buffer's length; filled in automatically
``InOutLen(size)``  ``uint32*`` buffer length in/out (``PDLM_DecodeError``); automatic, dropped
==================  ==========================================================================

Every function returns an ``int``: 0 (or positive) means success, negative an error code. A
backend's ``call(fn, args)`` takes the ``In`` values in C order and returns ``(ret, outs)``
with the ``Out``/``OutStr``/``OutArray`` values in C order. :class:`VendorLibrary` turns a
negative code into :class:`LibraryError` carrying the library's own error text.

**Faults** (socket backends only). With a :class:`~.retry.RetryPolicy` (default none) each
call is retried after a garbled reply or a timeout and reconnected after a lost connection. A
lost reply means the call *was* executed, so a call is repeated alone only if that is harmless
(setters send absolute values, getters read); those of :attr:`VendorLibrary.not_retried`
raise :class:`NotRetried` instead (unless the backend raised :class:`RequestNotSent`: never
executed, so resent). Drivers repeat them inside :meth:`VendorLibrary.retrying`, a unit of
calls designed to be repeated whole (e.g. stop, clear, start again).
"""

from __future__ import annotations

import ctypes
import operator
import threading
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterable, Mapping, Protocol, Sequence

import numpy as np

from .errors import ConnectionLost, InstrumentError, InstrumentTimeout, check_range
from .retry import GarbledReply, RetryPolicy

_INTEGER_CTYPES = (ctypes.c_int, ctypes.c_uint, ctypes.c_int32, ctypes.c_uint32, ctypes.c_int64,
                   ctypes.c_uint64, ctypes.c_long, ctypes.c_ulong)


@dataclass(frozen=True)
class In:
    """Input passed by value."""

    ctype: type

    def coerce(self, value):
        # ints must be ints (8.5 is not a sync divider); floats accept any real number
        if self.ctype in _INTEGER_CTYPES:
            return operator.index(value)
        return float(value)


@dataclass(frozen=True)
class Out:
    """Scalar output through a pointer."""

    ctype: type


@dataclass(frozen=True)
class OutStr:
    """``char*`` output buffer of ``size`` bytes (latin-1 text)."""

    size: int


@dataclass(frozen=True)
class OutArray:
    """Array output buffer of ``length`` elements of ``ctype``."""

    ctype: type
    length: int


@dataclass(frozen=True)
class BufLen:
    """``uint32`` input holding a buffer length, passed automatically."""

    size: int


@dataclass(frozen=True)
class InOutLen:
    """``uint32*`` buffer length in/out, passed automatically; its output is dropped."""

    size: int


OUTPUTS = (Out, OutStr, OutArray)
FunctionTable = Mapping[str, Sequence]
#: ``{function: reason(input args) -> why it must not be repeated, or None}``
RetryTable = Mapping[str, Callable[[list], "str | None"]]


class LibraryError(InstrumentError):
    """The library returned a negative code (``code``); a refusal, never retried."""

    def __init__(self, instrument: str, command: str, code: int, message: str):
        super().__init__(instrument, command, str(code), message)
        self.code = code


class RequestNotSent(ConnectionLost):
    """The connection failed before the request was complete on the wire: the library never
    saw the call, so sending it again is safe whatever it does."""


class NotRetried(InstrumentError):
    """A call that is not safe to repeat was interrupted (garbled or lost reply, connection
    lost after sending): it may or may not have been executed, so it is not repeated."""


def check_int(name: str, value, low: float, high: float, unit: str = "") -> int:
    """Validate an integer C argument before the call: in ``low..high`` and whole (a fraction
    is refused, never rounded). The error names the parameter, the value and the range."""
    v = check_range(name, value, low, high, unit)
    if v != int(v):
        raise ValueError(f"{name}={value!r} must be a whole number in {low}..{high} {unit}".rstrip())
    return int(v)


def n_inputs(spec: Sequence) -> int:
    return sum(isinstance(p, In) for p in spec)


def c_signature(name: str, spec: Sequence) -> str:
    """``"int HH_GetSyncRate(int, int*)"``-style text for docstrings and errors."""
    names = []
    for p in spec:
        if isinstance(p, In):
            names.append(p.ctype.__name__.removeprefix("c_"))
        elif isinstance(p, Out):
            names.append(p.ctype.__name__.removeprefix("c_") + "*")
        elif isinstance(p, OutStr):
            names.append(f"char[{p.size}]")
        elif isinstance(p, OutArray):
            names.append(f"{p.ctype.__name__.removeprefix('c_')}[{p.length}]")
        elif isinstance(p, BufLen):
            names.append("uint32 bufflen")
        else:
            names.append("uint32* bufflen")
    return f"int {name}({', '.join(names)})"


class Backend(Protocol):
    """What executes a library call."""

    def call(self, fn: str, args: list) -> tuple[int, list]: ...

    def close(self) -> None: ...


class VendorLibrary:
    """Base of :class:`~.harp.HarpLib` and :class:`~.pdlm.LaserLib`.

    Subclasses set ``functions`` (the table), ``instrument`` (a name for errors),
    ``not_retried`` (see the module docstring) and implement :meth:`error_text`. One Python
    method per C function is generated, with the C name: ``lib.HH_SetSyncDiv(0, 8)``; it
    returns None, the single output, or a tuple of outputs. ``retry``: the
    :class:`~.retry.RetryPolicy` of every call (default none: faults are raised at once).
    """

    functions: FunctionTable = {}
    not_retried: RetryTable = {}
    instrument = "library"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for fname, spec in cls.functions.items():
            if fname not in cls.__dict__:
                setattr(cls, fname, _method(fname, spec))

    def __init__(self, backend: Backend, *, name: str | None = None,
                 retry: RetryPolicy | None = None):
        self.backend = backend
        self.name = name or self.instrument
        self.retry = retry if retry is not None else RetryPolicy.none()
        self.lock = threading.RLock()   # one caller at a time, as with a USB device
        self._units = threading.local()

    def call(self, fn: str, *args):
        spec = self.functions.get(fn)
        if spec is None:
            raise AttributeError(f"{type(self).__name__} has no function {fn!r}")
        ins = [p for p in spec if isinstance(p, In)]
        if len(args) != len(ins):
            raise TypeError(f"{c_signature(fn, spec)} takes {len(ins)} input argument(s), "
                            f"got {len(args)}")
        values = [p.coerce(a) for p, a in zip(ins, args)]
        what = f"{fn}{tuple(values)}"
        rule = self.not_retried.get(fn)
        reason = rule(values) if rule is not None and not getattr(self._units, "depth", 0) else None
        op = partial(self._call_once, fn, values, what) if reason is None else \
            partial(self._call_not_repeated, fn, values, what, reason)
        return self.retry.run(op, self.backend, self.name, what)

    def _call_once(self, fn: str, values: list, what: str):
        with self.lock:
            ret, outs = self.backend.call(fn, values)
            if ret < 0:
                text = self.error_text(ret)
                raise LibraryError(self.name, what, ret, f"{fn} returned {ret}: {text}")
        if not outs:
            return None
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _call_not_repeated(self, fn: str, values: list, what: str, reason: str):
        try:
            return self._call_once(fn, values, what)
        except RequestNotSent:
            raise                      # never reached the library: the policy may resend it
        except (GarbledReply, InstrumentTimeout, ConnectionLost) as exc:
            raise NotRetried(self.name, what, exc.reply,
                             f"{fn} was interrupted ({exc.message}) and is not retried: "
                             f"{reason}") from exc

    def retrying(self, op: Callable[[], object], command: str, *,
                 before_retry: Callable[[], object] | None = None):
        """``op()`` (several calls) as one unit under the retry policy: its calls run once
        each, even those in :attr:`not_retried`, and a fault repeats the whole unit, after
        ``before_retry()`` (e.g. stop what a lost call may have started). ``op`` must be
        safe to repeat that way; say why where it is defined."""
        attempts = 0

        def attempt():
            nonlocal attempts
            attempts += 1
            if attempts > 1 and before_retry is not None:
                before_retry()
            return op()

        depth = getattr(self._units, "depth", 0)
        self._units.depth = depth + 1
        try:
            return self.retry.run(attempt, self.backend, self.name, command)
        finally:
            self._units.depth = depth

    def error_text(self, code: int) -> str:
        """The library's text for error ``code`` (subclasses call its error function)."""
        return f"error {code}"

    def _error_text_via(self, fn: str, code: int) -> str:
        """Ask the library's own error function; never raises (it is used while raising)."""
        try:
            ret, outs = self.backend.call(fn, [int(code)])
        except Exception as exc:  # the connection may be what failed
            return f"error {code} (no text: {exc})"
        return outs[0] if ret >= 0 and outs else f"error {code}"

    def close(self) -> None:
        self.backend.close()


def _method(fname: str, spec):
    def method(self, *args):
        return self.call(fname, *args)

    method.__name__ = method.__qualname__ = fname
    method.__doc__ = c_signature(fname, spec)
    return method


# -- transcripts (unit tests) ---------------------------------------------------------------------
class TranscriptBackend:
    """Replays expected calls ``(fn, args, ret, outs)``; fails on the first difference.

    ``assert_done()`` checks that every expected call was made. Array outputs may be given as
    lists.
    """

    def __init__(self, calls: Iterable[tuple], *, name: str = "transcript"):
        self.name = name
        self._calls = [tuple(c) for c in calls]
        self._pos = 0
        self.made: list[tuple[str, list]] = []

    def call(self, fn: str, args: list) -> tuple[int, list]:
        if self._pos >= len(self._calls):
            raise AssertionError(f"unexpected call {fn}{tuple(args)}: transcript exhausted")
        want_fn, want_args, ret, outs = self._calls[self._pos]
        if fn != want_fn or list(args) != list(want_args):
            raise AssertionError(f"call #{self._pos} was {fn}{tuple(args)}, transcript expects "
                                 f"{want_fn}{tuple(want_args)}")
        self._pos += 1
        self.made.append((fn, list(args)))
        return ret, [np.asarray(o) if isinstance(o, list) else o for o in outs]

    def close(self) -> None:
        pass

    def assert_done(self) -> None:
        left = self._calls[self._pos:]
        if left:
            raise AssertionError(f"{len(left)} expected call(s) not made, next {left[0][:2]!r}")

