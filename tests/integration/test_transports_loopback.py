"""pyvisa-py and pyserial transports against a line-protocol server on loopback."""

import socket
import threading

import pytest

from spinlight.instruments.errors import InstrumentTimeout
from spinlight.instruments.transports import SerialTransport, VisaTransport


class LineServer:
    """Answers ``ECHO? x`` with ``x;`` (PPMS-style ';' terminator), ignores ``SILENT``."""

    def __init__(self, eol=b"\n"):
        self.eol = eol
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.received = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _ = self.sock.accept()
        buf = b""
        with conn:
            while True:
                data = conn.recv(1024)
                if not data:
                    return
                buf += data
                while self.eol in buf:
                    line, buf = buf.split(self.eol, 1)
                    text = line.decode().strip()
                    self.received.append(text)
                    if text.startswith("ECHO? "):
                        conn.sendall(text[6:].encode() + b";" + self.eol)

    def close(self):
        self.sock.close()


def test_visa_transport_over_tcpip_socket():
    srv = LineServer()
    t = VisaTransport(f"TCPIP0::127.0.0.1::{srv.port}::SOCKET", name="ppms", strip=";",
                      timeout_s=0.5)
    try:
        assert t.query("ECHO? 300.0,K") == "300.0,K"
        t.write("SILENT")
        with pytest.raises(InstrumentTimeout) as err:
            t.query("SILENT")
        assert err.value.instrument == "ppms" and err.value.command == "SILENT"
    finally:
        t.close()
        srv.close()
    assert srv.received[:2] == ["ECHO? 300.0,K", "SILENT"]


def test_serial_transport_over_socket_url():
    srv = LineServer(eol=b"\r")
    t = SerialTransport(f"socket://127.0.0.1:{srv.port}", name="mono", write_eol="\r",
                        read_eol="\r", timeout_s=0.5)
    try:
        assert t.query("ECHO? 500.00 nm") == "500.00 nm;"
        with pytest.raises(InstrumentTimeout):
            t.query("SILENT")
    finally:
        t.close()
        srv.close()
