"""Transports: one small protocol (``write``, ``query``, ``close``) over every real connection.

A driver is given a transport; it never opens a connection itself. Each transport owns one lock
(GPIB and serial buses are not re-entrant) and every wait is finite.

- :class:`VisaTransport` — pyvisa (``GPIB0::15::INSTR`` in the lab,
  ``TCPIP0::127.0.0.1::PORT::SOCKET`` against a simulator, with pyvisa-py).
- :class:`SerialTransport` — pyserial (``COM3``, ``/dev/ttyUSB0``, ``socket://127.0.0.1:PORT``).
- :class:`MultiVuTransport` — Quantum Design's own ``MultiPyVu.Client``.
- :class:`TranscriptTransport` — a list of (sent, reply) pairs for protocol unit tests.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from typing import Iterable, Protocol, runtime_checkable

from .errors import ConnectionLost, InstrumentError, InstrumentTimeout

log = logging.getLogger(__name__)


@runtime_checkable
class Transport(Protocol):
    """What a driver needs from a connection."""

    name: str
    lock: threading.RLock

    def write(self, cmd: str) -> None: ...

    def query(self, cmd: str) -> str: ...

    def close(self) -> None: ...


class VisaTransport:
    """A pyvisa message-based resource.

    ``strip`` removes a protocol's reply terminator that is not the line terminator (the PPMS
    Model 6000 ends every reply with ``;``).
    """

    def __init__(self, resource: str, *, name: str = "visa", read_termination: str = "\n",
                 write_termination: str = "\n", timeout_s: float = 5.0, strip: str = "",
                 backend: str = "@py"):
        import pyvisa  # imported here so protocol tests do not need a VISA stack

        self.name = name
        self.lock = threading.RLock()
        self.resource_name = resource
        self._strip = strip
        self._visa_errors = (pyvisa.errors.VisaIOError,)
        self._rm = pyvisa.ResourceManager(backend)
        try:
            self._res = self._rm.open_resource(resource, read_termination=read_termination,
                                               write_termination=write_termination,
                                               timeout=int(timeout_s * 1000))
        except self._visa_errors as exc:
            raise ConnectionLost(name, None, None, f"cannot open {resource}: {exc}") from exc

    def write(self, cmd: str) -> None:
        with self.lock:
            try:
                self._res.write(cmd)
            except self._visa_errors as exc:
                raise ConnectionLost(self.name, cmd, None, str(exc)) from exc

    def query(self, cmd: str) -> str:
        with self.lock:
            try:
                reply = self._res.query(cmd)
            except self._visa_errors as exc:
                kind = InstrumentTimeout if "timeout" in str(exc).lower() else ConnectionLost
                raise kind(self.name, cmd, None, str(exc)) from exc
        reply = reply.strip()
        if self._strip and reply.endswith(self._strip):
            reply = reply[: -len(self._strip)]
        return reply

    def close(self) -> None:
        with self.lock:
            try:
                self._res.close()
            finally:
                self._rm.close()


class SerialTransport:
    """A pyserial port; ``socket://host:port`` URLs reach simulators over loopback."""

    def __init__(self, url: str, *, name: str = "serial", baudrate: int = 9600,
                 write_eol: str = "\r", read_eol: str = "\n", timeout_s: float = 2.0,
                 encoding: str = "latin-1"):
        import serial  # pyserial

        self.name = name
        self.lock = threading.RLock()
        self.url = url
        self._write_eol = write_eol
        self._read_eol = read_eol.encode(encoding)
        self._encoding = encoding
        self._timeout_s = timeout_s
        try:
            self._port = serial.serial_for_url(url, baudrate=baudrate, bytesize=8, parity="N",
                                               stopbits=1, timeout=timeout_s)
        except (serial.SerialException, OSError) as exc:
            raise ConnectionLost(name, None, None, f"cannot open {url}: {exc}") from exc

    def write(self, cmd: str) -> None:
        with self.lock:
            self._port.write((cmd + self._write_eol).encode(self._encoding))

    def read_line(self, cmd: str | None = None) -> str:
        """Read one reply line; a missing terminator after the timeout is an error."""
        with self.lock:
            raw = self._port.read_until(self._read_eol)
        if not raw.endswith(self._read_eol):
            raise InstrumentTimeout(self.name, cmd, raw.decode(self._encoding, "replace"),
                                    f"no complete reply within {self._timeout_s} s")
        return raw[: -len(self._read_eol)].decode(self._encoding).strip("\r\n")

    def query(self, cmd: str) -> str:
        with self.lock:
            self._port.reset_input_buffer()
            self.write(cmd)
            return self.read_line(cmd)

    def close(self) -> None:
        with self.lock:
            self._port.close()


def _quiet_multipyvu_logging() -> None:
    """MultiPyVu's client configures logging on connect: it replaces the *root* logger's
    handlers and writes ``QdMultiVu.log`` into the current folder. In a long-running
    acquisition process that clobbers the application's logging, so only that setup step is
    replaced; the client itself is Quantum Design's, unchanged."""
    import MultiPyVu.MultiVuClient_base as base

    def setup_logging(display_logger_name: bool = True) -> None:
        logging.getLogger("MultiVuClient").setLevel(logging.WARNING)

    base.setup_logging = setup_logging


class MultiVuTransport:
    """Quantum Design's ``MultiPyVu.Client`` as a transport.

    A command is ``"ACTION"`` or ``"ACTION query-text"`` (e.g. ``"TEMP 10.0,5.0,0"``); the reply
    is the server's ``result`` string. MultiPyVu closes its client after a server-side error and
    may call ``sys.exit`` on a socket error, so each call runs on a worker thread with a finite
    timeout and failures become :class:`InstrumentError` / :class:`ConnectionLost`; the next call
    reconnects with a fresh client (MultiPyVu clients cannot be reused).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 27183, *, name: str = "mpms3",
                 timeout_s: float = 30.0, connect: bool = True):
        self.name = name
        self.lock = threading.RLock()
        self.host, self.port = host, int(port)
        self.timeout_s = timeout_s
        self._client = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                           thread_name_prefix=f"{name}-multivu")
        if connect:
            self.open()

    # -- connection ---------------------------------------------------------------------
    def open(self) -> None:
        with self.lock:
            if self._client is not None:
                return
            from MultiPyVu import Client

            _quiet_multipyvu_logging()
            client = Client(host=self.host, port=self.port)
            try:
                self._call(client.__enter__, "START")
            except InstrumentError:
                raise
            self._client = client

    @property
    def connected(self) -> bool:
        return self._client is not None

    def _call(self, fn, cmd: str, *args):
        fut = self._pool.submit(self._guarded, fn, *args)
        try:
            return fut.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            self._drop()
            raise InstrumentTimeout(self.name, cmd, None,
                                    f"no reply from MultiVu within {self.timeout_s} s") from None
        except (SystemExit, ConnectionError, OSError, TimeoutError) as exc:
            self._drop()
            raise ConnectionLost(self.name, cmd, None, f"connection to MultiVu lost: {exc!r}") from exc

    @staticmethod
    def _guarded(fn, *args):
        # SystemExit raised by MultiPyVu inside the worker must not end the worker silently.
        try:
            return fn(*args)
        except SystemExit as exc:
            raise ConnectionError(f"MultiPyVu client exited ({exc})") from None

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client._message.close()
            except Exception:  # already closed by MultiPyVu
                pass

    # -- transport protocol ---------------------------------------------------------------
    def query(self, cmd: str) -> str:
        action, _, text = cmd.strip().partition(" ")
        with self.lock:
            if self._client is None:
                self.open()
            try:
                response = self._call(self._client._query_server, cmd, action, text)
            except InstrumentError:
                raise
            except Exception as exc:  # MultiPyVuError and friends: the server refused
                self._drop()
                raise InstrumentError(self.name, cmd, str(exc), "MultiVu reported an error") from exc
        result = (response or {}).get("result")
        if result is None:
            self._drop()
            raise ConnectionLost(self.name, cmd, None, "empty response from MultiVu")
        if result.startswith("MultiPyVuError"):
            raise InstrumentError(self.name, cmd, result, "MultiVu reported an error")
        return result

    def write(self, cmd: str) -> None:
        self.query(cmd)  # every MultiVu action is answered; the reply is checked by the driver

    def close(self) -> None:
        with self.lock:
            client, self._client = self._client, None
            if client is not None:
                try:
                    self._call(client.close_client, "CLOSE")
                except InstrumentError:
                    pass
        self._pool.shutdown(wait=False, cancel_futures=True)


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
