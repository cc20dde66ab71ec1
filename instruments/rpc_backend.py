"""Newline-delimited JSON RPC: the socket form of a vendor C library call (client side).

PicoQuant libraries have no network protocol, so the simulator seam is a decision
(instruments.md §7 item 3): one request line per C call, one reply line back::

    -> {"fn": "HH_SetSyncDiv", "args": [0, 8]}\\n
    <- {"ret": 0, "out": []}\\n
    -> {"fn": "HH_GetSyncRate", "args": [0]}\\n
    <- {"ret": 0, "out": [40000]}\\n

``args`` are the C function's *input* arguments in C order; ``out`` its pointer outputs in C
order (see :mod:`.clib`). Numbers and strings are plain JSON; a numpy array (e.g. the 65536
``uint32`` histogram of ``HH_GetHistogram``) travels as
``{"ndarray": "<u4", "shape": [65536], "b64": "<base64 of the little-endian bytes>"}``. A
request the server cannot execute (unknown function, wrong argument count, bad JSON) gets
``{"error": "<text>"}``, raised here as :class:`~.errors.InstrumentError`; the library's own
negative return codes are ordinary replies.

Faults, for the library's :class:`~.retry.RetryPolicy` (this backend is its transport:
``lock``, ``generation``, ``connected``, ``reconnect()``): a reply that is not a JSON object
of the right form is a :class:`~.retry.GarbledReply`; no reply within ``timeout_s`` is an
:class:`~.errors.InstrumentTimeout` (the connection is closed, so a late reply is never read
as the next call's); a dropped connection is :class:`~.errors.ConnectionLost`, or
:class:`~.clib.RequestNotSent` when it failed before the request line was complete on the
wire (the server never executed it). The next call reconnects.

:func:`encode_value` / :func:`decode_value` are the shared wire format: the simulator's server
(:mod:`spinlight.simulators.rpc_socket`) uses them too.
"""

from __future__ import annotations

import base64
import json
import socket
import threading

import numpy as np

from .clib import RequestNotSent
from .errors import ConnectionLost, InstrumentError, InstrumentTimeout
from .retry import GarbledReply
from .transports import peer_closed

MAX_REPLY_BYTES = 16 * 1024 * 1024   # a 65536-channel histogram is ~350 kB


def encode_value(value):
    """A JSON-ready form of one argument or output."""
    if isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value)
        dtype = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        a = a.astype(dtype, copy=False)
        return {"ndarray": dtype.str, "shape": list(a.shape),
                "b64": base64.b64encode(a.tobytes()).decode("ascii")}
    if isinstance(value, np.generic):
        return value.item()
    return value


def decode_value(value):
    """Inverse of :func:`encode_value`."""
    if isinstance(value, dict) and "ndarray" in value:
        raw = base64.b64decode(value["b64"])
        return np.frombuffer(raw, dtype=np.dtype(value["ndarray"])).reshape(value["shape"]).copy()
    return value


def encode_line(obj: dict) -> bytes:
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode("ascii")


class SocketRpcBackend:
    """A :class:`~.clib.Backend` that sends each call to a simulator over TCP.

    One connection, one lock (calls are serialised as on a USB device); every wait is bounded
    by ``timeout_s``. Faults: see the module docstring. ``generation`` counts connections.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, name: str = "rpc",
                 timeout_s: float = 5.0, connect: bool = True):
        self.host, self.port, self.name = host, int(port), name
        self.timeout_s = float(timeout_s)
        self.lock = threading.RLock()
        self._sock: socket.socket | None = None
        self._buf = b""
        self.generation = 0
        if connect:
            self.open()

    def open(self) -> None:
        with self.lock:
            if self._sock is not None:
                return
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
            except OSError as exc:
                raise ConnectionLost(self.name, None, None,
                                     f"cannot connect to {self.host}:{self.port}: {exc}") from exc
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock, self._buf = sock, b""
            self.generation += 1

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def reconnect(self) -> None:
        with self.lock:
            self._drop()
            self.open()

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _read_line(self, what: str) -> bytes:
        while b"\n" not in self._buf:
            try:
                chunk = self._sock.recv(1 << 16)
            except socket.timeout:
                self._drop()
                raise InstrumentTimeout(self.name, what, None,
                                        f"no reply within {self.timeout_s} s") from None
            except OSError as exc:
                self._drop()
                raise ConnectionLost(self.name, what, None, str(exc)) from exc
            if not chunk:
                self._drop()
                raise ConnectionLost(self.name, what, None, "connection closed by the server")
            self._buf += chunk
            if len(self._buf) > MAX_REPLY_BYTES:
                self._drop()
                raise GarbledReply(self.name, what, None, "reply too long: no line end")
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def call(self, fn: str, args: list) -> tuple[int, list]:
        request = encode_line({"fn": fn, "args": [encode_value(a) for a in args]})
        what = f"{fn}{tuple(args)}"
        with self.lock:
            try:
                self.open()
            except ConnectionLost as exc:
                raise RequestNotSent(self.name, what, None, exc.message) from exc
            if peer_closed(self._sock):       # dropped while idle: seen before sending
                self._drop()
                raise RequestNotSent(self.name, what, None, "connection closed by the server")
            try:
                self._sock.sendall(request)
            except OSError as exc:            # the final newline was not sent: not executed
                self._drop()
                raise RequestNotSent(self.name, what, None, str(exc)) from exc
            line = self._read_line(what)
        text = line.decode("latin-1", "replace")
        try:
            reply = json.loads(line)
        except ValueError:
            raise GarbledReply(self.name, what, text[:200], "reply is not JSON") from None
        if not isinstance(reply, dict):
            raise GarbledReply(self.name, what, text[:200], "reply is not a JSON object")
        if "error" in reply:
            raise InstrumentError(self.name, what, str(reply["error"]), "the server refused the call")
        try:
            ret = int(reply["ret"])
            outs = [decode_value(v) for v in reply.get("out", [])]
        except (KeyError, TypeError, ValueError) as exc:   # base64 errors are ValueErrors
            raise GarbledReply(self.name, what, text[:200], f"malformed reply: {exc}") from None
        return ret, outs

    def close(self) -> None:
        with self.lock:
            self._drop()
