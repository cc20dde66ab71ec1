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

Listening, threads and outages come from :class:`.tcp_server.TcpAcceptor`, as for the GPIB
line server (:mod:`.gpib_socket`), whose framing (``;`` terminators, ``payload;\\n`` replies,
one reply per command) does not fit serial instruments that echo and answer in several parts.

:attr:`SerialSocketServer.faults` (:class:`.wire_faults.WireFaults`) garbles or withholds the
output of a line, or drops and refuses connections, when a fault is injected.
"""

from __future__ import annotations

import logging
import socket
from typing import Callable

from .clock import ClockStopped
from .tcp_server import TcpAcceptor

log = logging.getLogger(__name__)

_RECV_TIMEOUT_S = 0.25      # connection threads look at the stop flag at least this often
MAX_LINE_BYTES = 4096       # an unterminated line longer than this is dropped

Handler = Callable[[str, Callable[[bytes], None]], None]


class SerialSocketServer(TcpAcceptor):
    """Serve ``handler`` on ``host:port`` (port 0 = ephemeral); ``start()`` returns the port."""

    poll_s = _RECV_TIMEOUT_S
    # A handler may block for instrument time (a grating move); stop() does not wait for it.
    join_connections = False

    def __init__(self, handler: Handler, *, host: str = "127.0.0.1", port: int = 0,
                 eol: bytes = b"\r", name: str = "serial"):
        if not eol:
            raise ValueError("eol must be a non-empty byte string, e.g. b'\\r'")
        super().__init__(host=host, port=port, name=name)
        self.handler, self.eol = handler, eol

    @property
    def url(self) -> str:
        """The pyserial URL a client opens: ``socket://127.0.0.1:PORT``."""
        return f"socket://{self.host}:{self.port}"

    def _serve(self, conn: socket.socket) -> None:
        try:
            for raw in self._lines(conn, lambda buf: buf.split(self.eol), MAX_LINE_BYTES):
                self.handler(raw.strip(b"\n").decode("latin-1"), self.faults.sender(conn.sendall))
        except ClockStopped:
            log.debug("%s: clock stopped, closing connection", self.name)


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
