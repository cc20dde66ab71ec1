"""Retry and reconnect policy shared by every command driver, and the fault-event hook.

:class:`RetryPolicy` wraps one driver operation (send, read, parse, verify):

- a **garbled reply** (:class:`GarbledReply`: the reply does not match the command's pattern,
  cannot be parsed or decoded) or a **timeout** (:class:`~.errors.InstrumentTimeout`) is retried
  up to ``retries`` times. Every command of the QD drivers is safe to repeat: queries read,
  set commands send an absolute setpoint (``TEMP``, ``FIELD``, ``CHAMBER``, ``MOVE``, ``LEVELON``),
  and a repeated measurement request (``SPINLIGHT_VSM``/``SPINLIGHT_AC``) only adds a row the
  detector skips (it waits for its own measurement number). Before retrying after a timeout
  the connection is reopened once: a late reply must not be read as the next command's answer.
  Refusals (``ERROR`` replies, ``MultiPyVuError``) and bad arguments are never retried.
- a **lost connection** (:class:`~.errors.ConnectionLost`) is reconnected with exponential
  back-off: an attempt at once, then after ``reconnect_backoff_s``, 2x, 4x ... until
  ``reconnect_attempts`` attempts have failed (budget :attr:`RetryPolicy.budget_s`); then the
  command is retried. After the last failed attempt :class:`~.errors.ConnectionLost` is raised
  and the link counts as *given up* (:meth:`RetryPolicy.gave_up`): later callers (a plan's
  finalize, the monitor) make one immediate attempt each instead of a new back-off, until a
  reconnection succeeds. One outage has one schedule, whichever threads (plan, pollers,
  monitor) hit it; :meth:`RetryPolicy.no_backoff` lets a thread (the monitor) take part
  without ever sleeping.

**Fault events** go to the ``spinlight.faults`` logger (:data:`FAULT_LOGGER`); each record
carries ``record.fault`` = ``{"kind", "instrument", "command", "error", ...}`` with ``kind`` one
of :data:`FAULT_KINDS`. The campaign runner subscribes with :func:`add_fault_listener`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from typing import Callable

from .errors import ConnectionLost, InstrumentError, InstrumentTimeout, check_range

FAULT_LOGGER = "spinlight.faults"
#: retry: a garbled reply or timeout is retried; connection_lost: an outage starts;
#: reconnect_failed: one reconnection attempt failed (``delay_s`` to the next);
#: reconnected: the link is back (``attempts``, ``outage_s``); gave_up: the last attempt failed.
FAULT_KINDS = ("retry", "connection_lost", "reconnect_failed", "reconnected", "gave_up")
_LEVELS = {"reconnected": logging.INFO, "gave_up": logging.ERROR}
fault_log = logging.getLogger(FAULT_LOGGER)
fault_log.setLevel(logging.INFO)      # "reconnected" (INFO) must reach listeners


class GarbledReply(InstrumentError):
    """A reply that does not match, parse or decode: the line garbled it; worth a retry."""


def emit_fault(kind: str, message: str, **fields) -> None:
    """Log one fault event on ``spinlight.faults`` (``record.fault`` holds kind and fields)."""
    fault_log.log(_LEVELS.get(kind, logging.WARNING), message,
                  extra={"fault": {"kind": kind, "message": message, **fields}})


class _Listener(logging.Handler):
    def __init__(self, callback: Callable[[str, str, dict], None]):
        super().__init__(logging.INFO)
        self.callback = callback

    def emit(self, record: logging.LogRecord) -> None:
        fault = getattr(record, "fault", None)
        if fault is not None:
            fields = {k: v for k, v in fault.items() if k not in ("kind", "message")}
            self.callback(fault["kind"], fault["message"], fields)


def add_fault_listener(callback: Callable[[str, str, dict], None]) -> logging.Handler:
    """Call ``callback(kind, message, fields)`` for every fault event (any thread); returns the
    handle for :func:`remove_fault_listener`. A callback's exception is reported by logging
    and never reaches the instrument call."""
    handler = _Listener(callback)
    fault_log.addHandler(handler)
    return handler


def remove_fault_listener(handle: logging.Handler) -> None:
    fault_log.removeHandler(handle)


class _Link:
    """Reconnection state of one transport during an outage."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.lost_since = None    # monotonic s
        self.attempts = 0
        self.next_at = 0.0
        self.gave_up = False


class RetryPolicy:
    """Bounded retries and reconnect back-off (see the module docstring).

    ``retries`` (0-10) extra attempts after a garbled reply or timeout; ``reconnect_attempts``
    (0-1000; 0 = never reconnect) and ``reconnect_backoff_s`` (0-3600 s, the first wait,
    doubling) for a lost connection: campaign ``[suspenders]`` ``reconnect_attempts`` /
    ``reconnect_backoff_s``.
    """

    def __init__(self, *, retries: int = 2, reconnect_attempts: int = 5,
                 reconnect_backoff_s: float = 5.0):
        self.retries = int(check_range("retries", retries, 0, 10))
        self.reconnect_attempts = int(check_range("reconnect_attempts", reconnect_attempts, 0, 1000))
        self.reconnect_backoff_s = check_range("reconnect_backoff_s", reconnect_backoff_s,
                                               0.0, 3600.0, "s")
        self._local = threading.local()
        self._links: "weakref.WeakKeyDictionary[object, _Link]" = weakref.WeakKeyDictionary()
        self._links_lock = threading.Lock()

    @classmethod
    def none(cls) -> "RetryPolicy":
        """One attempt, no reconnection: every fault is raised as it happens."""
        return cls(retries=0, reconnect_attempts=0)

    @property
    def budget_s(self) -> float:
        """Wall seconds of back-off before giving up: the sum of the waits between attempts."""
        n = self.reconnect_attempts
        return self.reconnect_backoff_s * (2 ** (n - 1) - 1) if n > 1 else 0.0

    def __repr__(self) -> str:
        return (f"RetryPolicy(retries={self.retries}, reconnect_attempts={self.reconnect_attempts}, "
                f"reconnect_backoff_s={self.reconnect_backoff_s})")

    # -- per-thread mode ----------------------------------------------------------------------
    @contextlib.contextmanager
    def no_backoff(self):
        """In this thread: never sleep for a reconnection; fail at once if none is due."""
        old = getattr(self._local, "no_backoff", False)
        self._local.no_backoff = True
        try:
            yield self
        finally:
            self._local.no_backoff = old

    def gave_up(self, transport) -> bool:
        """True after a full back-off failed on ``transport`` and no reconnection since."""
        return self._link(transport).gave_up

    def _link(self, transport) -> _Link:
        with self._links_lock:
            link = self._links.get(transport)
            if link is None:
                link = self._links[transport] = _Link()
            return link

    # -- the wrapper ----------------------------------------------------------------------------
    def run(self, op: Callable[[], object], transport, instrument: str, command: str | None):
        """``op()`` with retries and reconnection; nested calls (an operation made of other
        driver calls) run once, the outermost call retries the whole operation."""
        if getattr(self._local, "active", False):
            return op()
        self._local.active = True
        try:
            return self._run(op, transport, instrument, command)
        finally:
            self._local.active = False

    def _run(self, op, transport, instrument, command):
        retried = recovered = 0
        while True:
            gen = getattr(transport, "generation", 0)
            try:
                result = op()
            except ConnectionLost as exc:
                if (self.reconnect_attempts == 0 or recovered >= self.reconnect_attempts
                        or not hasattr(transport, "reconnect")):
                    raise
                recovered += 1
                self._recover(transport, gen, exc, instrument, command)
                continue
            except (GarbledReply, InstrumentTimeout) as exc:
                if retried >= self.retries:
                    raise
                retried += 1
                what = "timeout" if isinstance(exc, InstrumentTimeout) else "garbled reply"
                emit_fault("retry", f"{instrument}: {what} to {command!r}; retry "
                           f"{retried}/{self.retries}", instrument=instrument, command=command,
                           error=str(exc), reason=what, attempt=retried)
                if isinstance(exc, InstrumentTimeout):
                    self._reopen(transport, gen, exc, instrument, command)
                continue
            link = self._link(transport)
            if link.lost_since is not None:       # reconnected on the way (e.g. auto-open)
                with link.lock:
                    if link.lost_since is not None:
                        self._restored(link, instrument, command, time.monotonic())
            return result

    def _reopen(self, transport, gen, exc, instrument, command) -> None:
        """After a timeout: a fresh connection (discards a late reply); if that fails, the
        connection is lost and the back-off applies."""
        reconnect = getattr(transport, "reconnect", None)
        if reconnect is None or self.reconnect_attempts == 0:
            return
        try:
            with transport.lock:
                if getattr(transport, "generation", 0) == gen:
                    reconnect()
        except ConnectionLost as lost:
            self._recover(transport, gen, lost, instrument, command)

    def _recover(self, transport, gen, exc: ConnectionLost, instrument, command) -> None:
        """Reconnect on the link's schedule; returns once connected, raises ConnectionLost
        when the attempts are used up (or, in :meth:`no_backoff` mode, when none is due)."""
        link = self._link(transport)
        quick = getattr(self._local, "no_backoff", False)
        while True:
            with link.lock:
                if getattr(transport, "generation", 0) != gen and getattr(transport, "connected", True):
                    return                                   # another thread reconnected
                now = time.monotonic()
                if link.lost_since is None:
                    link.lost_since, link.next_at = now, now
                    emit_fault("connection_lost", f"{instrument}: connection lost ({exc.message})",
                               instrument=instrument, command=command, error=str(exc))
                if link.gave_up or now >= link.next_at:
                    if self._attempt(transport, link, instrument, command, now):
                        return
                    if link.gave_up:
                        raise ConnectionLost(
                            instrument, command, None,
                            f"connection lost and not restored after {link.attempts} reconnection "
                            f"attempts over {now - link.lost_since:.1f} s (last error: {exc.message})"
                        ) from exc
                wait = max(link.next_at - now, 0.0)
            if quick:
                raise ConnectionLost(instrument, command, None,
                                     f"reconnecting: next attempt in {wait:.1f} s") from exc
            time.sleep(wait)

    @staticmethod
    def _restored(link: _Link, instrument, command, now) -> None:
        emit_fault("reconnected", f"{instrument}: reconnected after {now - link.lost_since:.1f} s "
                   f"({link.attempts} attempt(s))", instrument=instrument, command=command,
                   attempts=link.attempts, outage_s=now - link.lost_since)
        link.reset()

    def _attempt(self, transport, link: _Link, instrument, command, now) -> bool:
        """One reconnection (link lock held); updates the schedule, emits the event."""
        try:
            with transport.lock:
                transport.reconnect()
        except ConnectionLost as err:
            last = err
        else:
            link.attempts += 1
            self._restored(link, instrument, command, now)
            return True
        if link.gave_up:
            return False
        link.attempts += 1
        if link.attempts >= self.reconnect_attempts:
            link.gave_up = True
            emit_fault("gave_up", f"{instrument}: {link.attempts} reconnection attempts failed; "
                       f"giving up ({last.message})", instrument=instrument, command=command,
                       attempts=link.attempts, outage_s=now - link.lost_since, error=str(last))
            return False
        delay = self.reconnect_backoff_s * 2 ** (link.attempts - 1)
        link.next_at = now + delay
        emit_fault("reconnect_failed", f"{instrument}: reconnection attempt {link.attempts}/"
                   f"{self.reconnect_attempts} failed; next in {delay:g} s",
                   instrument=instrument, command=command, attempt=link.attempts,
                   delay_s=delay, error=str(last))
        return False
