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
threads (listening and threads: :class:`.tcp_server.TcpAcceptor`). :attr:`GpibSocketServer.faults` (:class:`.wire_faults.WireFaults`) garbles or
withholds replies and drops/refuses connections when a fault is injected.
"""

from __future__ import annotations

import logging
import re
import socket
from typing import Callable, Optional

from .tcp_server import TcpAcceptor

log = logging.getLogger(__name__)

_TERMINATORS = re.compile(rb"[;\r\n]")
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


class GpibSocketServer(TcpAcceptor):
    """Threaded TCP server on ``host:port`` (port 0 = ephemeral) calling ``handler``."""

    poll_s = _RECV_TIMEOUT_S

    def __init__(self, handler: Handler, *, host: str = "127.0.0.1", port: int = 0,
                 name: str = "gpib"):
        super().__init__(host=host, port=port, name=name)
        self.handler = handler

    # -- per connection --------------------------------------------------------------------
    def _serve(self, conn: socket.socket) -> None:
        for raw in self._lines(conn, _TERMINATORS.split, MAX_COMMAND_BYTES):
            reply = self._answer(raw.decode("latin-1"))
            if reply is not None:
                self.faults.sender(conn.sendall)(format_reply(reply))

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
