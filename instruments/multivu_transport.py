"""Quantum Design's ``MultiPyVu.Client`` (3.8.0) as a transport (see :mod:`.transports`)."""

from __future__ import annotations

import concurrent.futures
import logging
import socket
import threading

from .errors import ConnectionLost, InstrumentError, InstrumentTimeout
from .transports import peer_closed


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

    MultiPyVu waits for a completion without a deadline, and when the server drops the link it
    returns its own error text ('Close client', ...) as the *result*. So a timeout shuts the
    socket down (waking the blocked worker) and abandons that worker: every connection has its
    own; and a result the server did not send (no ``message_type``) is :class:`ConnectionLost`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 27183, *, name: str = "mpms3",
                 timeout_s: float = 30.0, connect: bool = True):
        self.name = name
        self.lock = threading.RLock()
        self.host, self.port = host, int(port)
        self.timeout_s = timeout_s
        self.generation = 0
        self._client = None
        self._pool = None
        self._ready = False
        if connect:
            self.open()

    # -- connection ---------------------------------------------------------------------
    def open(self) -> None:
        with self.lock:
            if self._client is not None:
                return
            from MultiPyVu import Client

            _quiet_multipyvu_logging()
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"{self.name}-multivu")
            self._client = client = Client(host=self.host, port=self.port)
            try:
                self._call(client.__enter__, "START")
            except InstrumentError:
                raise
            except Exception as exc:  # MultiPyVuError: e.g. the server refused the client
                self._drop()
                raise ConnectionLost(self.name, "START", None, f"cannot connect: {exc!r}") from exc
            self._ready = True
            self.generation += 1

    @property
    def connected(self) -> bool:
        return self._client is not None and self._ready

    def reconnect(self) -> None:
        with self.lock:
            self._drop()
            self.open()

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
        client, self._client, self._ready = self._client, None, False
        pool, self._pool = self._pool, None
        sock = getattr(getattr(client, "_message", None), "sock", None)
        if sock is not None:
            try:  # wakes the worker's recv(); MultiPyVu closes the socket itself
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    # -- transport protocol ---------------------------------------------------------------
    def query(self, cmd: str) -> str:
        action, _, text = cmd.strip().partition(" ")
        with self.lock:
            if self._client is None:
                self.open()
            if peer_closed(getattr(self._client._message, "sock", None)):
                self._drop()
                raise ConnectionLost(self.name, cmd, None, "MultiVu closed the connection")
            try:
                response = self._call(self._client._query_server, cmd, action, text)
            except InstrumentError:
                raise
            except Exception as exc:  # MultiPyVuError and friends: the server refused
                self._drop()
                raise InstrumentError(self.name, cmd, str(exc), "MultiVu reported an error") from exc
            result = (response or {}).get("result")
            if result is None or (response or {}).get("message_type") is None:
                # MultiPyVu's own error text (e.g. 'Close client'): the server never answered
                self._drop()
                raise ConnectionLost(self.name, cmd, result, "connection to MultiVu lost")
        if result.startswith("MultiPyVuError"):
            raise InstrumentError(self.name, cmd, result, "MultiVu reported an error")
        return result

    def write(self, cmd: str) -> None:
        self.query(cmd)  # every MultiVu action is answered; the reply is checked by the driver

    def close(self) -> None:
        with self.lock:
            client, pool = self._client, self._pool
            if client is not None and self._ready:
                try:
                    self._call(client.close_client, "CLOSE")
                except InstrumentError:
                    pass
            self._client, self._pool, self._ready = None, None, False
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
