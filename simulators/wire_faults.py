"""Connection-level faults shared by the simulator servers (GPIB line, MultiVu, serial/RPC).

Each server owns one :class:`WireFaults` (``server.faults``) and asks it, per answered request,
what to do with the reply: send it, send it garbled, or withhold it. The fault injector
(:mod:`.faults`) arms it: ``arm("garbled", n)`` corrupts the next ``n`` replies,
``arm("timeout", n)`` withholds the next ``n`` replies (the request itself is still executed:
the instrument did it, the answer got lost), ``begin_outage()`` / ``end_outage()`` close every
connection and the listening socket (new connections are refused) and listen again on the
same port. A "reply" is everything one request makes the server send: a GPIB query's
``payload;\\n``, a MultiVu action's ``completed`` message, a serial line's echo and answer.

The server supplies the two socket operations: ``_interrupt()`` (close the listener and every
connection, without stopping the server for good) and ``_resume()`` (listen again on the
same port). Everything else (counting, garbling, nesting of outages) lives here.
"""

from __future__ import annotations

import random
import string
import threading
from typing import Callable

PASS, GARBLE, WITHHOLD, DROP = "pass", "garble", "withhold", "drop"
#: Reply kinds a fault can arm, and what each does to a reply.
ARMED_MODES = {"garbled": GARBLE, "timeout": WITHHOLD}
#: Bytes a garbled reply never contains: terminators stay where they were, so a line-based
#: client reads one (wrong) reply instead of waiting for a terminator.
_KEEP = b";\r\n"
_JUNK = "".join(c for c in string.printable if c not in ";\r\n\t\x0b\x0c")


class WireFaults:
    """Reply filter and outage switch of one server (thread-safe).

    ``hooks`` are called (without arguments) before each decision, so an injector can fire
    faults that are due at the current instrument time before a reply goes out.
    """

    def __init__(self, server):
        self._server = server
        self._lock = threading.Lock()
        self._armed: list[list] = []          # [mode, remaining, rng] in arming order
        self._outages = 0
        self.hooks: list[Callable[[], object]] = []
        self.counts = {GARBLE: 0, WITHHOLD: 0, DROP: 0}   # replies affected so far

    # -- arming (the injector) ------------------------------------------------------------
    def arm(self, kind: str, count: int, seed=0) -> None:
        """Affect the next ``count`` replies: ``kind`` "garbled" or "timeout"; ``seed`` makes
        the garbage reproducible."""
        if kind not in ARMED_MODES:
            raise ValueError(f"kind = {kind!r} is not allowed; choose one of {sorted(ARMED_MODES)}")
        if int(count) != count or count < 1:
            raise ValueError(f"count = {count!r} must be a whole number >= 1")
        with self._lock:
            self._armed.append([ARMED_MODES[kind], int(count), random.Random(str(seed))])

    @property
    def down(self) -> bool:
        """True during an outage (connections closed, new ones refused)."""
        return self._outages > 0

    def begin_outage(self) -> None:
        """Close every connection and stop listening (nested outages need as many ends)."""
        with self._lock:
            self._outages += 1
            first = self._outages == 1
        if first:
            self._server._interrupt()

    def end_outage(self) -> None:
        """End one outage; the server listens again on its port when none is left."""
        with self._lock:
            if self._outages == 0:
                return
            self._outages -= 1
            last = self._outages == 0
        if last:
            self._server._resume()

    # -- per reply (the servers) ----------------------------------------------------------
    def decide(self) -> tuple[str, random.Random | None]:
        """What to do with the reply about to be sent: ``(mode, rng)``, mode one of PASS,
        GARBLE (use ``rng`` with :func:`garble`), WITHHOLD, DROP (outage: the connection is
        gone). Consumes one armed reply."""
        for hook in list(self.hooks):
            hook()
        with self._lock:
            if self._outages:
                mode, rng = DROP, None
            elif self._armed:
                entry = self._armed[0]
                mode, rng = entry[0], entry[2]
                entry[1] -= 1
                if entry[1] == 0:
                    self._armed.pop(0)
            else:
                return PASS, None
            self.counts[mode] += 1
            return mode, rng

    def sender(self, send: Callable[[bytes], None]) -> Callable[[bytes], None]:
        """Wrap ``send`` for one request: the first call decides, every later call of the same
        request (an echo, then the answer) gets the same treatment."""
        state: dict = {}

        def filtered(data: bytes) -> None:
            if not state:
                state["mode"], state["rng"] = self.decide()
            if state["mode"] == PASS:
                send(data)
            elif state["mode"] == GARBLE:
                send(garble(data, state["rng"]))
        return filtered


def garble(data, rng: random.Random):
    """``data`` (bytes or str) with every byte replaced by random printable ASCII, except
    ``;``, CR and LF, which stay in place."""
    if isinstance(data, str):
        return "".join(c if c in ";\r\n" else rng.choice(_JUNK) for c in data)
    return bytes(b if b in _KEEP else ord(rng.choice(_JUNK)) for b in data)
