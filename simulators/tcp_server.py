"""The TCP side shared by the simulator servers: listen, accept, one thread per connection, stop.

:class:`TcpAcceptor` binds ``host:port`` (port 0 = ephemeral), accepts in a thread and serves
each connection in its own thread through :meth:`TcpAcceptor._serve`, which a subclass supplies
with its framing (GPIB lines, MultiVu messages, serial lines). It also supplies the two socket
operations :class:`.wire_faults.WireFaults` needs for an outage: :meth:`~TcpAcceptor._interrupt`
closes the listener (new connections are refused) and hangs up every connection without
stopping the server for good; :meth:`~TcpAcceptor._resume` listens again on the same port.
``stop()`` does both for good and joins the threads; it may be called from a connection thread
(a client asking the server to exit).

Subclass hooks: :meth:`_wrap` turns an accepted socket into the connection object ``_serve``
gets (default: the socket, with ``TCP_NODELAY`` and a ``poll_s`` receive timeout so the
thread looks at :attr:`stopping` that often), :meth:`_hangup` breaks a connection from another
thread, :meth:`_close` releases it when its thread ends.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Callable

from .wire_faults import WireFaults

log = logging.getLogger(__name__)


class TcpAcceptor:
    """Listener + accept thread + one thread per connection on ``host:port``."""

    #: Wall seconds between looks at the stop flag (accept timeout, default recv timeout).
    poll_s = 0.5
    #: Whether :meth:`stop` also waits for the connection threads (not only the acceptor).
    join_connections = True

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, name: str = "tcp"):
        self.host, self.port, self.name = host, port, name
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: set = set()
        self._threads: list[threading.Thread] = []
        self._acceptor: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self.faults = WireFaults(self)

    # -- subclass hooks ------------------------------------------------------------------------
    def _serve(self, conn) -> None:
        """Talk to one client until it leaves or :attr:`stopping`; runs in its own thread.
        An ``OSError`` (the peer or :meth:`_hangup` broke the connection) ends it quietly."""
        raise NotImplementedError

    def _wrap(self, sock: socket.socket, addr):
        # Replies go out as small writes; without NODELAY, Nagle + the client's delayed ACK
        # add ~40 ms to every request.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.poll_s)
        return sock

    def _hangup(self, conn) -> None:
        """Break ``conn`` from another thread; its ``_serve`` sees EOF or an error at once."""
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _close(self, conn) -> None:
        conn.close()

    def _lines(self, conn: socket.socket, split: Callable[[bytes], list], max_bytes: int):
        """The complete lines received on ``conn`` (for line-framed subclasses), until EOF or
        :attr:`stopping`. ``split(buffer)`` cuts at the terminators, the last piece being the
        unterminated rest; a rest longer than ``max_bytes`` is dropped with a warning."""
        buf = b""
        while not self.stopping:
            try:
                data = conn.recv(65536)
            except socket.timeout:
                continue
            if not data:
                return
            *lines, buf = split(buf + data)
            if len(buf) > max_bytes:
                log.warning("%s: dropping %d bytes without a terminator", self.name, len(buf))
                buf = b""
            yield from lines

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called (for good: an outage does not set it)."""
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        return self._listener is not None and not self._stop.is_set()

    def start(self) -> tuple[str, int]:
        """Bind, listen and accept in a thread; returns the bound ``(host, port)``."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen()
        except OSError:
            sock.close()
            raise
        sock.settimeout(self.poll_s)
        self._listener = sock
        self.host, self.port = sock.getsockname()[:2]
        self._acceptor = self._spawn(self._accept_loop, f"{self.name}-accept", sock)
        log.info("%s simulator listening on %s:%d", self.name, self.host, self.port)
        return self.host, self.port

    def stop(self, timeout_s: float = 2.0) -> None:
        """Close the listener and every connection, then join the threads (idempotent)."""
        self._stop.set()
        self._interrupt()
        threads = list(self._threads) if self.join_connections else [self._acceptor]
        for t in threads:
            if t is not None and t is not threading.current_thread():
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
        for conn in conns:
            self._hangup(conn)

    def _resume(self) -> None:
        """Listen again on the same port after :meth:`_interrupt` (not after stop())."""
        if not self._stop.is_set():
            self.start()

    # -- threads -------------------------------------------------------------------------------
    def _spawn(self, target, name: str, *args) -> threading.Thread:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()
        return t

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                sock, addr = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            conn = self._wrap(sock, addr)
            with self._lock:
                self._conns.add(conn)
            self._spawn(self._connection, f"{self.name}-conn-{addr[1]}", conn)

    def _connection(self, conn) -> None:
        try:
            self._serve(conn)
        except OSError as exc:
            log.debug("%s connection ended: %s", self.name, exc)
        finally:
            with self._lock:
                self._conns.discard(conn)
            self._close(conn)
