"""A small threaded TCP line server for GPIB-style ASCII instruments (PPMS Model 6000 dialect).

GPIB has no TCP form, so the framing is a decision (instruments.md §7 item 1): a command ends
with ``"\\n"``, ``"\\r\\n"`` or ``";"``; one packet may carry several commands and one command
may arrive split over several packets. The first word is the command, made upper-case (the
controller is case-insensitive); the arguments follow, separated by commas and/or spaces
(``TEMP 300,10,0`` and ``TEMP 300 10 0`` are the same command).

A ``handler(command, args) -> str | None`` answers each command: a string is sent back as
``payload;\\n`` (the real controller ends replies with ``;`` plus EOI), ``None`` sends nothing
(a write, as on GPIB where a write gets no reply). Several clients may connect at once; the
handler must be thread-safe. ``stop()`` closes the listener and every connection and joins the
threads. :attr:`GpibSocketServer.faults` (:class:`.wire_faults.WireFaults`) garbles or
withholds replies and drops/refuses connections when a fault is injected.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from typing import Callable, Optional

from .wire_faults import WireFaults

log = logging.getLogger(__name__)

_TERMINATORS = re.compile(r"[;\r\n]")
_HEAD = re.compile(r"([^\s,]+)[\s,]*(.*)", re.S)
_ARG_SEP = re.compile(r"\s*,\s*|\s+")
_RECV_TIMEOUT_S = 0.5      # connection threads look at the stop flag at least this often
MAX_COMMAND_BYTES = 4096   # an unterminated command longer than this is dropped

Handler = Callable[[str, list], Optional[str]]


def parse_command(text: str) -> tuple[str, list[str]] | None:
    """``"temp 300, 10 0"`` -> ``("TEMP", ["300", "10", "0"])``; blank text -> ``None``."""
    text = text.strip()
    if not text:
        return None
    head, rest = _HEAD.fullmatch(text).groups()
    rest = rest.strip()
    return head.upper(), (_ARG_SEP.split(rest) if rest else [])


def format_reply(payload: str) -> bytes:
    """``payload;\\n``. A line break inside a payload would end the reply early; a ``;`` is
    harmless (clients read up to the newline and strip only the last ``;``)."""
    clean = payload.replace("\r", " ").replace("\n", " ")
    return (clean + ";\n").encode("latin-1", "replace")


class GpibSocketServer:
    """Threaded TCP server on ``host:port`` (port 0 = ephemeral) calling ``handler``."""

    def __init__(self, handler: Handler, *, host: str = "127.0.0.1", port: int = 0,
                 name: str = "gpib"):
        self.handler = handler
        self.host, self.port, self.name = host, port, name
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self.faults = WireFaults(self)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> tuple[str, int]:
        """Bind, listen and accept in a thread; returns the bound ``(host, port)``."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen()
        sock.settimeout(_RECV_TIMEOUT_S)
        self._listener = sock
        self.host, self.port = sock.getsockname()[:2]
        self._spawn(self._accept_loop, f"{self.name}-accept", sock)
        log.info("%s simulator listening on %s:%d", self.name, self.host, self.port)
        return self.host, self.port

    @property
    def running(self) -> bool:
        return self._listener is not None and not self._stop.is_set()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Close the listener and every connection, then join the threads (idempotent)."""
        self._stop.set()
        self._interrupt()
        for t in list(self._threads):
            if t is not threading.current_thread():
                t.join(timeout_s)

    def _interrupt(self) -> None:
        """Close the listener (new connections are refused) and every connection."""
        if self._listener is not None:
            try:    # wakes a thread blocked in accept() at once (Linux)
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _resume(self) -> None:
        """Listen again on the same port after :meth:`_interrupt` (not after stop())."""
        if not self._stop.is_set():
            self.start()

    def _spawn(self, target, name: str, *args) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(_RECV_TIMEOUT_S)
            with self._lock:
                self._conns.add(conn)
            self._spawn(self._serve, f"{self.name}-conn-{addr[1]}", conn)

    # -- per connection --------------------------------------------------------------------
    def _serve(self, conn: socket.socket) -> None:
        buf = ""
        try:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    return
                buf += data.decode("latin-1")
                *complete, buf = _TERMINATORS.split(buf)
                if len(buf) > MAX_COMMAND_BYTES:
                    log.warning("%s: dropping %d bytes without a terminator", self.name, len(buf))
                    buf = ""
                for text in complete:
                    reply = self._answer(text)
                    if reply is not None:
                        self.faults.sender(conn.sendall)(format_reply(reply))
        except OSError as exc:
            log.debug("%s connection ended: %s", self.name, exc)
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def _answer(self, text: str) -> str | None:
        parsed = parse_command(text)
        if parsed is None:
            return None
        command, args = parsed
        try:
            return self.handler(command, args)
        except Exception as exc:   # a simulator bug must not kill the connection
            log.exception("%s: handler failed for %r", self.name, text)
            return f"ERROR: internal simulator error: {exc!r}" if command.endswith("?") else None
