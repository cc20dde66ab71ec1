"""A TCP server speaking the MultiPyVu 3.8.0 wire protocol (written from the captured bytes).

Framing per message: 2-byte big-endian length of a JSON header (utf-8) with ``byteorder``,
``message-type`` (``text/json``), ``message-encoding``, ``message-length``; then the JSON
content ``{id, action, query, result}`` plus ``message_type`` on replies. Per request: the
server echoes it with ``message_type: "confirmed"``, runs it, sends the result with
``"completed"`` and waits up to 1 s for the client to send that dict back ``"confirmed"``,
resending ``completed`` up to 3 times. Server-control actions (START, ALIVE, STATUS, CLOSE,
EXIT) behave and word their results like QD's ``SocketMessageServer``; everything else goes to
a ``handler(action, query) -> result`` callable (instrument actions, plus simulator
extensions). One read/write client at a time; a second START is rejected with QD's text.

Deliberate difference: on Linux QD's scaffolding server crashes on any command error (its
``except pythoncom.com_error`` raises NameError); this server returns the error in ``result`` as
``"MultiPyVuError: ..."`` the way the Windows server does.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import sys
from typing import Callable

from .tcp_server import TcpAcceptor
from .wire_faults import GARBLE, PASS, garble

log = logging.getLogger(__name__)

MULTIPYVU_VERSION = "3.8.0"
SOCKET_RETRIES = 3
TIMEOUT_LENGTH_S = 1.0
#: Server-control actions: answered by the server itself, never affected by reply faults.
CONTROL_ACTIONS = ("START", "ALIVE", "STATUS", "CLOSE", "EXIT")
_RECV_TIMEOUT_S = 0.5     # poll granularity of connection threads (lets stop() be prompt)
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


class MultiVuCommandError(Exception):
    """Raised by a handler; the client receives ``"MultiPyVuError: <message>"``."""


def encode_message(content: dict, encoding: str = "utf-8") -> bytes:
    """Frame ``content`` exactly as MultiPyVu's ``Message._create_message`` does."""
    body = json.dumps(content, ensure_ascii=False).encode(encoding)
    header = json.dumps({"byteorder": sys.byteorder, "message-type": "text/json",
                         "message-encoding": encoding, "message-length": len(body)},
                        ensure_ascii=False).encode("utf-8")
    return struct.pack(">H", len(header)) + header + body


class MessageReader:
    """Incremental decoder of framed messages from a byte stream."""

    def __init__(self):
        self._buf = b""

    def feed(self, data: bytes) -> list[dict]:
        self._buf += data
        out = []
        while len(self._buf) >= 2:
            hlen = struct.unpack(">H", self._buf[:2])[0]
            if len(self._buf) < 2 + hlen:
                break
            header = json.loads(self._buf[2:2 + hlen].decode("utf-8"))
            clen = int(header["message-length"])
            if len(self._buf) < 2 + hlen + clen:
                break
            body = self._buf[2 + hlen:2 + hlen + clen]
            self._buf = self._buf[2 + hlen + clen:]
            out.append(json.loads(body.decode(header.get("message-encoding", "utf-8"))))
        return out


class _Connection:
    def __init__(self, server: "MultiVuServer", sock: socket.socket, addr):
        self.server, self.sock, self.addr = server, sock, tuple(addr[:2])
        self.reader = MessageReader()
        self.pending: list[dict] = []
        self.read_write = False
        self.closed = False

    def send(self, content: dict, message_type: str) -> None:
        msg = dict(content)
        msg["message_type"] = message_type
        self.sock.sendall(encode_message(msg))

    def next_message(self, timeout_s: float | None) -> dict | None:
        """Next decoded message; None on timeout. Raises ConnectionError on EOF."""
        if self.pending:
            return self.pending.pop(0)
        self.sock.settimeout(_RECV_TIMEOUT_S if timeout_s is None else timeout_s)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return None
        if not data:
            raise ConnectionError("peer closed")
        if _QUICKACK is not None:
            # The client writes confirmation + next request back to back; ACK at once so its
            # Nagle algorithm does not hold the second write (Linux only, not persistent).
            try:
                self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass
        self.pending.extend(self.reader.feed(data))
        return self.pending.pop(0) if self.pending else None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class MultiVuServer(TcpAcceptor):
    """Threaded MultiPyVu-protocol server on ``host:port`` (port 0 = ephemeral).

    ``handler(action, query) -> str`` answers instrument actions; it raises
    :class:`MultiVuCommandError` for errors (and ``ValueError`` for unparsable arguments, which
    QD's server reports as "The command '<ACTION>' has not been implemented.").
    """

    poll_s = _RECV_TIMEOUT_S

    def __init__(self, handler: Callable[[str, str], str], *, flavor: str = "MPMS3",
                 host: str = "127.0.0.1", port: int = 0, mvu_version: str = "sim",
                 option_flags: str = "s;t", on_exit: Callable[[], None] | None = None):
        super().__init__(host=host, port=port, name="multivu")
        self.handler = handler
        self.flavor = flavor
        self.mvu_version = mvu_version
        self.option_flags = option_flags
        self.on_exit = on_exit

    # -- connections: the acceptor's hooks -------------------------------------------------------
    def _wrap(self, sock: socket.socket, addr) -> "_Connection":
        # NODELAY matters here: every reply is two small writes (confirmed, completed).
        return _Connection(self, super()._wrap(sock, addr), addr)

    def _hangup(self, conn: "_Connection") -> None:
        conn.close()

    def wait_stopped(self, timeout_s: float | None = None) -> bool:
        return self._stop.wait(timeout_s)

    def status(self) -> str:
        if self._stop.is_set():
            return "closed"
        with self._lock:
            return "connected" if any(c.read_write for c in self._conns) else "idle"

    # -- per connection --------------------------------------------------------------------------
    def _serve(self, conn: _Connection) -> None:
        while not self.stopping and not conn.closed:
            request = conn.next_message(None)
            if request is None:
                continue
            if request.get("message_type") == "confirmed":
                continue          # a late confirmation of an earlier reply
            if self._do_request(conn, request):
                break

    def _do_request(self, conn: _Connection, request: dict) -> bool:
        """Handshake and run one request; True when the connection must close afterwards."""
        request = {k: request.get(k, "") for k in ("id", "action", "query", "result")}
        conn.send(request, "confirmed")
        response, close_after = self._run(conn, dict(request))
        if response["action"] not in CONTROL_ACTIONS:
            mode, rng = self.faults.decide()
            if mode == GARBLE:
                response["result"] = garble(str(response["result"]), rng)
            elif mode != PASS:           # withheld (timeout) or dropped: never answered
                return bool(close_after)
        for _attempt in range(SOCKET_RETRIES):
            conn.send(response, "completed")
            if self._await_confirmation(conn, response["id"]):
                break
        else:
            log.info("no confirmation of %s from %s", response["action"], conn.addr)
        if close_after == "exit":
            self.stop()
            if self.on_exit is not None:
                self.on_exit()
        return bool(close_after)

    def _await_confirmation(self, conn: _Connection, msg_id: str) -> bool:
        """Wait up to TIMEOUT_LENGTH_S for the client's confirmation of ``msg_id``."""
        msg = conn.next_message(TIMEOUT_LENGTH_S)
        if msg is None:
            return False
        if msg.get("id") == msg_id and msg.get("message_type") == "confirmed":
            return True
        conn.pending.insert(0, msg)   # a new request: keep it for the serve loop
        return True

    def _run(self, conn: _Connection, resp: dict):
        action = str(resp.get("action", ""))
        addr = str(conn.addr)
        if action == "START":
            with self._lock:
                taken = any(c.read_write for c in self._conns if c is not conn and not c.closed)
                if not taken:
                    conn.read_write = True
            if taken:
                resp["result"] = (f"Connection attempt rejected from {addr}: "
                                  "another client is connected.")
                log.info(resp["result"])
                return resp, "close"
            flags = [MULTIPYVU_VERSION, f"mv={self.mvu_version.replace(';', ',')}"]
            flags += [f for f in self.option_flags.split(";") if f]
            resp["query"] = ";".join(flags)
            resp["result"] = f"Connected to {self.flavor} MultiVuServer at {addr}"
            return resp, None
        if action == "ALIVE":
            resp["query"] = "ALIVE"
            resp["result"] = f"Connected to {self.flavor} MultiVuServer at {addr}"
            return resp, None if conn.read_write else "close"
        if action == "STATUS":
            resp["query"] = "STATUS"
            resp["result"] = self.status()
            return resp, None if conn.read_write else "close"
        if action == "CLOSE":
            resp["query"] = "CLOSE"
            resp["result"] = f"Client {addr} disconnected."
            conn.read_write = False
            return resp, "close"
        if action == "EXIT":
            resp["query"] = "EXIT"
            resp["result"] = "Closing client and exiting server."
            return resp, "exit"
        if not conn.read_write:
            resp["result"] = ("MultiPyVuError: not connected: send START first "
                              "(only the read/write client may send commands)")
            return resp, None
        resp["result"] = self._call_handler(action, str(resp.get("query", "")))
        return resp, None

    def _call_handler(self, action: str, query: str) -> str:
        try:
            return str(self.handler(action, query))
        except MultiVuCommandError as e:
            text = str(e)
            return text if text.startswith("MultiPyVuError: ") else f"MultiPyVuError: {text}"
        except ValueError:
            return f"The command '{action}' has not been implemented."
        except Exception as e:     # an instrument bug must not kill the server
            log.exception("handler failed for %s %r", action, query)
            return f"MultiPyVuError: internal simulator error: {e!r}"
