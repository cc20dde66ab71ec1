"""Transports: one small protocol (``write``, ``query``, ``close``) over every real connection.

A driver is given a transport; it never opens a connection itself. Each transport owns one lock
(GPIB and serial buses are not re-entrant) and every wait is finite. Transports raise
:class:`~.errors.InstrumentTimeout`, :class:`~.errors.ConnectionLost` or
:class:`~.retry.GarbledReply` and can ``reconnect()``; retrying is the driver's
:class:`~.retry.RetryPolicy`'s job.

- :class:`VisaTransport` — pyvisa (``GPIB0::15::INSTR`` in the lab,
  ``TCPIP0::127.0.0.1::PORT::SOCKET`` against a simulator, with pyvisa-py).
- :class:`SerialTransport` — pyserial (``COM3``, ``/dev/ttyUSB0``, ``socket://127.0.0.1:PORT``).
- :class:`~.multivu_transport.MultiVuTransport` — Quantum Design's own ``MultiPyVu.Client``
  (its own module; importable from here too).
- :class:`TranscriptTransport` — a list of (sent, reply) pairs for protocol unit tests.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from typing import Iterable, Protocol, runtime_checkable

from .errors import ConnectionLost, InstrumentTimeout
from .retry import GarbledReply

log = logging.getLogger(__name__)


@runtime_checkable
class Transport(Protocol):
    """What a driver needs from a connection.

    ``generation`` counts successful (re)connections and ``reconnect()`` closes and reopens
    the connection (raising :class:`ConnectionLost` if it cannot): the
    :class:`~.retry.RetryPolicy` uses both to recover from faults.
    """

    name: str
    lock: threading.RLock
    generation: int

    @property
    def connected(self) -> bool: ...

    def write(self, cmd: str) -> None: ...

    def query(self, cmd: str) -> str: ...

    def reconnect(self) -> None: ...

    def close(self) -> None: ...


class VisaTransport:
    """A pyvisa message-based resource.

    ``strip`` removes a protocol's reply terminator that is not the line terminator (the PPMS
    Model 6000 ends every reply with ``;``). A reply that is not ASCII is a
    :class:`~.retry.GarbledReply`; socket errors pyvisa-py lets through bare (a refused
    connection surfaces at the first write) are :class:`ConnectionLost`.
    """

    def __init__(self, resource: str, *, name: str = "visa", read_termination: str = "\n",
                 write_termination: str = "\n", timeout_s: float = 5.0, strip: str = "",
                 backend: str = "@py"):
        import pyvisa  # imported here so protocol tests do not need a VISA stack

        self.name = name
        self.lock = threading.RLock()
        self.resource_name = resource
        self.generation = 0
        self._strip = strip
        self._visa_errors = (pyvisa.errors.VisaIOError,)
        self._options = dict(read_termination=read_termination,
                             write_termination=write_termination, timeout=int(timeout_s * 1000))
        self._rm = pyvisa.ResourceManager(backend)
        self._res = None
        self.open()

    def open(self) -> None:
        with self.lock:
            if self._res is not None:
                return
            try:
                res = self._rm.open_resource(self.resource_name, **self._options)
            except (*self._visa_errors, OSError) as exc:
                raise ConnectionLost(self.name, None, None,
                                     f"cannot open {self.resource_name}: {exc}") from exc
            if not _socket_session_connected(res):
                res.close()
                raise ConnectionLost(self.name, None, None,
                                     f"cannot open {self.resource_name}: connection refused")
            self._res = res
            self.generation += 1

    @property
    def connected(self) -> bool:
        return self._res is not None

    def reconnect(self) -> None:
        with self.lock:
            self._drop()
            self.open()

    def _drop(self) -> None:
        res, self._res = self._res, None
        if res is not None:
            try:
                res.close()
            except Exception:  # noqa: BLE001 - the link is gone either way
                pass

    def _io(self, cmd: str, fn):
        with self.lock:
            if self._res is None:
                raise ConnectionLost(self.name, cmd, None, "not connected")
            if peer_closed(_session_socket(self._res)):
                self._drop()
                raise ConnectionLost(self.name, cmd, None, "the instrument closed the connection")
            try:
                return fn(self._res)
            except self._visa_errors as exc:
                kind = InstrumentTimeout if "timeout" in str(exc).lower() else ConnectionLost
                raise kind(self.name, cmd, None, str(exc)) from exc
            except UnicodeDecodeError as exc:
                raise GarbledReply(self.name, cmd, repr(exc.object), f"reply is not ASCII: {exc}") from exc
            except OSError as exc:        # ConnectionRefusedError, BrokenPipeError, ...
                self._drop()
                raise ConnectionLost(self.name, cmd, None, f"connection lost: {exc!r}") from exc

    def write(self, cmd: str) -> None:
        self._io(cmd, lambda res: res.write(cmd))

    def query(self, cmd: str) -> str:
        reply = self._io(cmd, lambda res: res.query(cmd)).strip()
        if self._strip and reply.endswith(self._strip):
            reply = reply[: -len(self._strip)]
        return reply

    def close(self) -> None:
        with self.lock:
            try:
                self._drop()
            finally:
                self._rm.close()


def _session_socket(res):
    """The TCP socket under a pyvisa-py SOCKET session, else None."""
    try:
        sock = res.visalib.sessions[res.session].interface
    except (AttributeError, KeyError, TypeError):
        return None
    return sock if isinstance(sock, socket.socket) else None


def _socket_session_connected(res) -> bool:
    """pyvisa-py 0.8.1 "opens" a TCPIP SOCKET resource whose connection was refused (its
    non-blocking connect is never checked): ask the socket. Other sessions: True."""
    sock = _session_socket(res)
    if sock is None:
        return True
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


def peer_closed(sock) -> bool:
    """The peer closed ``sock`` (EOF is waiting). pyvisa-py and MultiPyVu only notice that
    after a read timeout; checked before each command, a dropped link is seen at once."""
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):      # closed or reset
        return True


class SerialTransport:
    """A pyserial port; ``socket://host:port`` URLs reach simulators over loopback."""

    def __init__(self, url: str, *, name: str = "serial", baudrate: int = 9600,
                 write_eol: str = "\r", read_eol: str = "\n", timeout_s: float = 2.0,
                 encoding: str = "latin-1"):
        self.name = name
        self.lock = threading.RLock()
        self.url = url
        self.generation = 0
        self._baudrate = baudrate
        self._write_eol = write_eol
        self._read_eol = read_eol.encode(encoding)
        self._encoding = encoding
        self._timeout_s = timeout_s
        self._port = None
        self.open()

    def open(self) -> None:
        import serial  # pyserial

        with self.lock:
            if self._port is not None:
                return
            try:
                self._port = serial.serial_for_url(self.url, baudrate=self._baudrate, bytesize=8,
                                                   parity="N", stopbits=1, timeout=self._timeout_s)
            except (serial.SerialException, OSError) as exc:
                raise ConnectionLost(self.name, None, None, f"cannot open {self.url}: {exc}") from exc
            self.generation += 1

    @property
    def connected(self) -> bool:
        return self._port is not None

    def reconnect(self) -> None:
        with self.lock:
            port, self._port = self._port, None
            if port is not None:
                try:
                    port.close()
                except Exception:  # noqa: BLE001 - the link is gone either way
                    pass
            self.open()

    @contextlib.contextmanager
    def _guard(self, cmd: str | None):
        import serial

        with self.lock:
            if self._port is None:
                raise ConnectionLost(self.name, cmd, None, "not connected")
            try:
                yield self._port
            except (serial.SerialException, OSError) as exc:
                raise ConnectionLost(self.name, cmd, None, f"connection lost: {exc!r}") from exc

    def write(self, cmd: str) -> None:
        with self._guard(cmd) as port:
            port.write((cmd + self._write_eol).encode(self._encoding))

    def read_line(self, cmd: str | None = None) -> str:
        """Read one reply line; a missing terminator after the timeout is an error."""
        with self._guard(cmd) as port:
            raw = port.read_until(self._read_eol)
        if not raw.endswith(self._read_eol):
            raise InstrumentTimeout(self.name, cmd, raw.decode(self._encoding, "replace"),
                                    f"no complete reply within {self._timeout_s} s")
        try:
            return raw[: -len(self._read_eol)].decode(self._encoding).strip("\r\n")
        except UnicodeDecodeError as exc:
            raise GarbledReply(self.name, cmd, repr(raw), f"reply is not {self._encoding}") from exc

    def query(self, cmd: str) -> str:
        with self._guard(cmd) as port:
            port.reset_input_buffer()
            self.write(cmd)
            return self.read_line(cmd)

    def close(self) -> None:
        with self.lock:
            if self._port is not None:
                self._port.close()


class TranscriptTransport:
    """Replays expected (sent, reply) pairs; a reply of ``None`` marks a write.

    Fails loudly on the first command that differs from the transcript, and ``assert_done()``
    checks that every pair was used — the pymeasure ``expected_protocol`` idea.
    """

    def __init__(self, pairs: Iterable[tuple[str, str | None]], *, name: str = "transcript"):
        self.name = name
        self.lock = threading.RLock()
        self._pairs = list(pairs)
        self._pos = 0
        self.sent: list[str] = []
        self.generation, self.connected = 1, True

    def reconnect(self) -> None:
        self.sent.append("<reconnect>")   # a transcript has nothing to reopen; recorded

    def _next(self, cmd: str, want_reply: bool) -> str | None:
        with self.lock:
            if self._pos >= len(self._pairs):
                raise AssertionError(f"unexpected command {cmd!r}: transcript exhausted")
            sent, reply = self._pairs[self._pos]
            if cmd != sent:
                raise AssertionError(f"command #{self._pos} was {cmd!r}, transcript expects {sent!r}")
            if want_reply and reply is None:
                raise AssertionError(f"{cmd!r} was queried but the transcript has no reply")
            self._pos += 1
            self.sent.append(cmd)
            return reply

    def write(self, cmd: str) -> None:
        self._next(cmd, want_reply=False)

    def query(self, cmd: str) -> str:
        return self._next(cmd, want_reply=True)

    def close(self) -> None:
        pass

    def assert_done(self) -> None:
        left = self._pairs[self._pos:]
        if left:
            raise AssertionError(f"{len(left)} transcript pairs not used, next {left[0]!r}")


def __getattr__(name: str):
    # MultiVuTransport lives in .multivu_transport; still importable from here (PEP 562).
    if name == "MultiVuTransport":
        from .multivu_transport import MultiVuTransport
        return MultiVuTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
