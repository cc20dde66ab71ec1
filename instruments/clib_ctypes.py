"""The hardware backend of :mod:`.clib`: a vendor C library called through ctypes.

:class:`CtypesBackend` executes a :mod:`.clib` function table on a loaded ``.dll`` / ``.so``
(:func:`load_library`) with exact ``argtypes`` (:func:`argtypes`) and ``restype``: ``In``
values by value, ``Out`` scalars through pointers, ``OutStr`` / ``OutArray`` buffers it
allocates, ``BufLen`` / ``InOutLen`` lengths filled in automatically. Same ``call(fn, args)
-> (ret, outs)`` contract as the socket-RPC and transcript backends.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Iterable, Sequence

import numpy as np

from .clib import BufLen, FunctionTable, In, InOutLen, Out, OutArray, OutStr
from .errors import InstrumentError

__all__ = ["CtypesBackend", "argtypes", "load_library"]


def argtypes(spec: Sequence) -> list:
    """ctypes ``argtypes`` for one table entry."""
    out = []
    for p in spec:
        if isinstance(p, In):
            out.append(p.ctype)
        elif isinstance(p, (Out, OutArray)):
            out.append(ctypes.POINTER(p.ctype))
        elif isinstance(p, OutStr):
            out.append(ctypes.c_char_p)
        elif isinstance(p, BufLen):
            out.append(ctypes.c_uint32)
        elif isinstance(p, InOutLen):
            out.append(ctypes.POINTER(ctypes.c_uint32))
        else:
            raise TypeError(f"unknown parameter spec {p!r}")
    return out


def load_library(candidates: Iterable[str], *, stdcall: bool = True):
    """Load the first library of ``candidates`` that exists (``WinDLL`` for the ``__stdcall``
    PicoQuant DLLs on Windows, ``CDLL`` elsewhere)."""
    loader = ctypes.WinDLL if (stdcall and sys.platform == "win32") else ctypes.CDLL
    errors = []
    for path in candidates:
        try:
            return loader(path)
        except OSError as exc:
            errors.append(f"{path}: {exc}")
    raise OSError("cannot load the vendor library; tried " + "; ".join(errors))


class CtypesBackend:
    """Calls the vendor's C library through ctypes, with exact ``argtypes``/``restype``.

    ``library`` is a loaded ``ctypes.CDLL``/``WinDLL``. Functions of the table missing from
    the library fail only when called (older library versions lack some).
    """

    def __init__(self, library, functions: FunctionTable):
        self.lib = library
        self.functions = functions
        self._fns = {}
        for fname, spec in functions.items():
            fn = getattr(library, fname, None)
            if fn is None:
                continue
            fn.argtypes = argtypes(spec)
            fn.restype = ctypes.c_int
            self._fns[fname] = fn

    def call(self, fn: str, args: list) -> tuple[int, list]:
        if fn not in self._fns:
            raise InstrumentError(str(self.lib), fn, None, f"{fn} is not exported by the library")
        it = iter(args)
        cargs, buffers = [], []
        for p in self.functions[fn]:
            if isinstance(p, In):
                cargs.append(next(it))
            elif isinstance(p, Out):
                buf = p.ctype()
                cargs.append(ctypes.byref(buf))
                buffers.append(("scalar", buf))
            elif isinstance(p, OutStr):
                buf = ctypes.create_string_buffer(p.size)
                cargs.append(buf)
                buffers.append(("str", buf))
            elif isinstance(p, OutArray):
                buf = (p.ctype * p.length)()
                cargs.append(buf)
                buffers.append(("array", buf))
            elif isinstance(p, BufLen):
                cargs.append(p.size)
            else:
                cargs.append(ctypes.byref(ctypes.c_uint32(p.size)))
        ret = self._fns[fn](*cargs)
        outs = []
        for kind, buf in buffers:
            if kind == "scalar":
                outs.append(buf.value)
            elif kind == "str":
                outs.append(buf.value.decode("latin-1"))
            else:
                outs.append(np.ctypeslib.as_array(buf).copy())
        return int(ret), outs

    def close(self) -> None:
        pass   # the process keeps the library loaded; CloseDevice is the library's own call
