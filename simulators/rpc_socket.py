"""A newline-delimited JSON RPC server exposing a simulated vendor C library.

Wire format (shared with the client, :mod:`spinlight.instruments.rpc_backend`): one request
line ``{"fn": "HH_SetSyncDiv", "args": [0, 8]}``, one reply line ``{"ret": 0, "out": [...]}``;
arrays travel base64-encoded (``encode_value``). A request that cannot be executed (bad JSON,
a function the simulator does not export, wrong arguments) gets ``{"error": "<text>"}``.

The target object exports its C functions as methods whose names start with ``prefix``
(``HH_``, ``PDLM_``): ``method(*args) -> (ret, [outputs])``. Calls from one connection run in
order in that connection's thread; the target must be thread-safe across connections.

Framing, threads and wire faults (:attr:`RpcServer.faults`) come from
:class:`.serial_socket.SerialSocketServer` (a line server with a configurable terminator, here
``\\n``); only the JSON handling is added here.
"""

from __future__ import annotations

import json
import logging
from typing import Callable

from spinlight.instruments.rpc_backend import decode_value, encode_line, encode_value

from .clock import ClockStopped
from .serial_socket import SerialSocketServer

log = logging.getLogger(__name__)


class RpcServer(SerialSocketServer):
    """Serve ``target``'s ``prefix*`` methods on ``host:port`` (port 0 = ephemeral)."""

    def __init__(self, target, *, prefix: str, host: str = "127.0.0.1", port: int = 0,
                 name: str = "rpc"):
        if not prefix:
            raise ValueError("prefix must name the library's function prefix, e.g. 'HH_'")
        super().__init__(self.handle, host=host, port=port, eol=b"\n", name=name)
        self.target, self.prefix = target, prefix
        self.calls: list[str] = []          # function names received, for inspection

    def dispatch(self, request: dict) -> dict:
        """Execute one decoded request; returns the reply object."""
        fn, args = request.get("fn"), request.get("args", [])
        if not isinstance(fn, str) or not fn.startswith(self.prefix) or not isinstance(args, list):
            return {"error": f"malformed request {request!r}: need fn={self.prefix}... and args=[...]"}
        method: Callable | None = getattr(self.target, fn, None)
        if method is None:
            return {"error": f"{fn} is not exported by this simulator"}
        self.calls.append(fn)
        try:
            ret, outs = method(*[decode_value(a) for a in args])
        except TypeError as exc:
            return {"error": f"{fn}: bad arguments {args!r}: {exc}"}
        return {"ret": int(ret), "out": [encode_value(v) for v in outs]}

    def handle(self, line: str, send: Callable[[bytes], None]) -> None:
        if not line.strip():
            return
        try:
            request = json.loads(line)
            reply = self.dispatch(request) if isinstance(request, dict) else \
                {"error": "request must be a JSON object"}
        except ValueError as exc:
            reply = {"error": f"request is not JSON: {exc}"}
        except ClockStopped:
            raise
        except Exception as exc:    # a simulator bug must not kill the connection silently
            log.exception("%s: %s failed", self.name, line[:80])
            reply = {"error": f"simulator failure: {exc!r}"}
        send(encode_line(reply))
