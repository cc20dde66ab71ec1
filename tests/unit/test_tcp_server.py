"""The shared TCP acceptor of the simulator servers (:mod:`spinlight.simulators.tcp_server`):
what stop() does to connected clients, the port and the threads, and that an outage ending
after stop() does not listen again. Framing is tested with each server."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from polling import wait_for
from spinlight.simulators.serial_socket import SerialSocketServer
from spinlight.simulators.tcp_server import TcpAcceptor


class Echo(TcpAcceptor):
    """The smallest real line server: sends every received line back."""

    poll_s = 0.1

    def _serve(self, conn):
        for line in self._lines(conn, lambda buf: buf.split(b"\n"), 16):
            conn.sendall(line + b"\n")


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=1.0)


def test_stop_hangs_up_every_client_frees_the_port_and_ends_the_threads():
    server = Echo(name="echo-test")
    host, port = server.start()
    assert server.running and not server.stopping
    clients = [connect(port) for _ in range(2)]
    for i, c in enumerate(clients):
        c.sendall(b"h")                                      # one line in two writes
        c.sendall(b"i%d\n" % i)
        assert c.recv(100) == b"hi%d\n" % i
    assert wait_for(lambda: len(server._conns) == 2)
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 1.0
    assert [c.recv(100) for c in clients] == [b"", b""]      # EOF: hung up by the server
    assert not any(t.name.startswith("echo-test-") and t.is_alive() for t in threading.enumerate())
    assert not server._conns and not server.running and server.stopping
    with pytest.raises(ConnectionRefusedError):
        connect(port)
    server.stop()                                            # idempotent
    for c in clients:
        c.close()


def test_an_outage_ending_after_stop_does_not_listen_again():
    server = Echo()
    _, port = server.start()
    server.faults.begin_outage()
    with pytest.raises(ConnectionRefusedError):
        connect(port)
    assert not server.stopping                               # an outage is not a stop
    server.stop()
    server.faults.end_outage()
    with pytest.raises(ConnectionRefusedError):
        connect(port)


def test_serial_stop_does_not_wait_for_a_handler_blocked_in_instrument_time():
    release, entered = threading.Event(), threading.Event()

    def handler(line, send):
        send(b"echo\r")
        entered.set()
        release.wait(5.0)                                    # a long move

    server = SerialSocketServer(handler, name="serial-test")
    _, port = server.start()
    c = connect(port)
    try:
        c.sendall(b"GO\r")
        assert c.recv(100) == b"echo\r" and entered.wait(1.0)
        t0 = time.monotonic()
        server.stop()
        assert time.monotonic() - t0 < 1.0                   # not the 2 s join timeout
        assert c.recv(100) == b""                            # the client is hung up at once
        with pytest.raises(ConnectionRefusedError):
            connect(port)
    finally:
        release.set()
        c.close()
    assert wait_for(lambda: not any(t.name.startswith("serial-test-") and t.is_alive()
                                    for t in threading.enumerate()), 2.0)

