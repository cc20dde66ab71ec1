"""A threaded TCP server for RS-232 ASCII instruments reached through pyserial ``socket://``.

pyserial's ``socket://host:port`` URL carries the serial byte stream unchanged and ignores
every port setting (baud rate, parity, stop bits: ``protocol_socket.Serial._reconfigure_port``
says so), so a simulated serial instrument only needs its framing: a command line ends with
``eol`` (CR for the Acton SpectraPro); stray LF bytes around a line are dropped (a client that
sends CR LF is understood). Several clients may connect at once.

``handler(line, send)`` is called once per received line, in that connection's thread, with
``send(bytes)`` writing to that client. It may send several times (an echo at once, a reply
after a long move) and may block (a move that completes in instrument time); the next line
of the same connection is processed afterwards, as a real serial instrument does. The handler
must be thread-safe across connections.

This module uses the standard library's ``socketserver`` rather than the GPIB line server
(:mod:`.gpib_socket`), whose framing (``;`` terminators, ``payload;\\n`` replies, one reply
per command) does not fit serial instruments that echo and answer in several parts.

:attr:`SerialSocketServer.faults` (:class:`.wire_faults.WireFaults`) garbles or withholds the
output of a line, or drops and refuses connections, when a fault is injected.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from typing import Callable

from .clock import ClockStopped
from .wire_faults import WireFaults

log = logging.getLogger(__name__)

_RECV_TIMEOUT_S = 0.25      # connection threads look at the stop flag at least this often
MAX_LINE_BYTES = 4096       # an unterminated line longer than this is dropped

Handler = Callable[[str, Callable[[bytes], None]], None]


class _Connection(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        owner: SerialSocketServer = self.server.owner
        conn: socket.socket = self.request
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(_RECV_TIMEOUT_S)
        owner._register(conn, True)
        buf = b""
        try:
            while not owner.stopping:
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    return
                *lines, buf = (buf + data).split(owner.eol)
                if len(buf) > MAX_LINE_BYTES:
                    log.warning("%s: dropping %d bytes without a terminator", owner.name, len(buf))
                    buf = b""
                for raw in lines:
                    owner.handler(raw.strip(b"\n").decode("latin-1"),
                                  owner.faults.sender(conn.sendall))
        except ClockStopped:
            log.debug("%s: clock stopped, closing connection", owner.name)
        except OSError as exc:
            log.debug("%s connection ended: %s", owner.name, exc)
        finally:
            owner._register(conn, False)


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class SerialSocketServer:
    """Serve ``handler`` on ``host:port`` (port 0 = ephemeral); ``start()`` returns the port."""

    def __init__(self, handler: Handler, *, host: str = "127.0.0.1", port: int = 0,
                 eol: bytes = b"\r", name: str = "serial"):
        if not eol:
            raise ValueError("eol must be a non-empty byte string, e.g. b'\\r'")
        self.handler, self.eol, self.name = handler, eol, name
        self.host, self.port = host, port
        self.stopping = False
        self._server: _TCPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.faults = WireFaults(self)

    @property
    def url(self) -> str:
        """The pyserial URL a client opens: ``socket://127.0.0.1:PORT``."""
        return f"socket://{self.host}:{self.port}"

    def start(self) -> tuple[str, int]:
        server = _TCPServer((self.host, self.port), _Connection)
        server.owner = self
        self._server = server
        self.host, self.port = server.server_address[:2]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"{self.name}-accept", daemon=True)
        self._thread.start()
        log.info("%s simulator listening on %s", self.name, self.url)
        return self.host, self.port

    def _register(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop accepting, close every connection, join the accept thread (idempotent)."""
        self.stopping = True
        self._interrupt()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _interrupt(self) -> None:
        """Close the listener (new connections are refused) and every connection."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _resume(self) -> None:
        """Listen again on the same port after :meth:`_interrupt` (not after stop())."""
        if not self.stopping:
            self.start()


class SocketServed:
    """For simulators served by a :class:`SerialSocketServer` in ``self.server``: the
    ``socket://`` URL and ``stop()``."""

    server: "SerialSocketServer | None" = None

    @property
    def url(self) -> str:
        """``socket://127.0.0.1:PORT`` once the server runs."""
        if self.server is None:
            raise RuntimeError("start_server() first")
        return self.server.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
