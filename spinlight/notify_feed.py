"""Feed bluesky documents and campaign events to the notification consumer process.

    feed = NotifierFeed("notify.log", hook="python send_mail.py")
    RE.subscribe(feed)                         # documents
    feed.campaign_event("fault", "PPMS connection lost", exc=err, instrument="ppms")
    feed.close()                               # the consumer writes the summary and exits

The consumer (``python -m spinlight.notifier``, see :mod:`spinlight.notifier` for the line
format) runs in its own process and session, so neither a hook nor a bug there can stop a
measurement, and Ctrl-C (the RunEngine's pause) does not reach it. The RunEngine thread only
encodes a document and appends it to a bounded queue; a writer thread drains the queue into the
consumer's stdin. When the queue is full, events (only their uid, seq_num, descriptor and time
are sent) are dropped before start/descriptor/stop documents and campaign events; every drop is
counted (:attr:`NotifierFeed.dropped`) and reported to the consumer. If the consumer dies the
feed logs it once and drops what follows, or restarts it (``restart=True``), re-sending the
campaign start and the open runs. Nothing here raises into the RunEngine.
"""

from __future__ import annotations

import atexit
import collections
import datetime
import json
import logging
import os
import pathlib
import shlex
import subprocess
import sys
import threading
import time
import weakref
from typing import Any, Sequence

import numpy as np

from spinlight.instruments.errors import check_choice, check_range
from spinlight.notifier import CAMPAIGN_KINDS, DEFAULT_HOOK_ON, HOOK_KINDS

logger = logging.getLogger(__name__)

MAX_ARRAY_SIZE = 64  # larger arrays in start/descriptor documents are sent as a summary
_SENT_IN_FULL = ("start", "descriptor", "stop")
_EVENT_KEYS = ("uid", "seq_num", "descriptor", "time")
_STOP_KEYS = ("uid", "run_start", "time", "exit_status", "reason", "num_events")


def _json_safe(obj: Any) -> Any:
    """``json.dumps`` default: cheap and never fails (unknown objects become their text)."""
    if isinstance(obj, np.ndarray):
        if obj.size <= MAX_ARRAY_SIZE:
            return obj.tolist()
        return f"<array shape={obj.shape} dtype={obj.dtype}>"
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, (pathlib.Path, datetime.date)):
        return str(obj)
    return repr(obj)


def _dumps(name: str, doc: dict) -> str:
    try:
        return json.dumps({"name": name, "doc": doc}, default=_json_safe)
    except (TypeError, ValueError) as exc:  # e.g. a circular structure in the metadata
        keep = {k: v for k, v in doc.items() if k in _STOP_KEYS or k in (
            "scan_id", "plan_name", "num_points", "name", "kind", "message")}
        keep["unserialisable"] = str(exc)
        return json.dumps({"name": name, "doc": keep}, default=repr)


def _replay(line: str) -> str:
    return line[:-1] + ', "replay": true}'


def _close_at_exit(ref: weakref.ref) -> None:
    feed = ref()
    if feed is not None:
        feed.close(timeout=2.0)


class NotifierFeed:
    """RunEngine callback ``(name, doc)`` feeding a ``spinlight.notifier`` subprocess.

    ``log``/``hook``/``summary``/``hook_timeout_s``/``hook_on`` are the consumer's options
    (``hook``: a command line, split with shlex, or an argv list; never run through a shell;
    the message is appended as the last argument). ``maxsize`` bounds the
    queue (messages); ``drop`` says which event goes when it is full (``"oldest"`` queued or the
    ``"newest"``). ``restart`` restarts a dead consumer, at most ``max_restarts`` times.
    ``stderr`` is where the consumer's stderr goes (default: inherited).
    """

    def __init__(self, log: str | os.PathLike, *, hook: str | Sequence[str] | None = None,
                 summary: str | os.PathLike | None = None, hook_timeout_s: float = 30.0,
                 hook_on=DEFAULT_HOOK_ON, maxsize: int = 1000, drop: str = "oldest",
                 restart: bool = False, max_restarts: int = 3, stderr=None):
        check_range("maxsize", maxsize, 1, 1_000_000)
        check_choice("drop", drop, ("oldest", "newest"))
        check_range("hook_timeout_s", hook_timeout_s, 0.01, 3600, "s")
        check_range("max_restarts", max_restarts, 0, 1000)
        if isinstance(hook_on, str):
            hook_on = [k.strip() for k in hook_on.split(",") if k.strip()]
        for kind in hook_on:
            check_choice("hook_on", kind, HOOK_KINDS)
        self.argv = [sys.executable, "-m", "spinlight.notifier", "--log", os.fspath(log),
                     "--hook-timeout", repr(float(hook_timeout_s)), "--hook-on", ",".join(hook_on)]
        if hook is not None and not isinstance(hook, str):   # argv list, as in campaign files
            hook = shlex.join(str(a) for a in hook)
        if hook is not None:
            try:
                if not shlex.split(hook):
                    raise ValueError("empty command")
            except ValueError as exc:
                raise ValueError(f"hook={hook!r} is not a usable command line: {exc}") from None
            self.argv += ["--hook", hook]
        if summary is not None:
            self.argv += ["--summary", os.fspath(summary)]
        self.maxsize = int(maxsize)
        self.drop = drop
        self.restart = restart
        self.max_restarts = int(max_restarts)
        self.dropped = 0       # messages never delivered (queue full, consumer dead, closed)
        self.sent = 0          # messages written to the consumer
        self.restarts = 0
        self._stderr = stderr
        # (droppable, line, key); key says what a restarted consumer must be told again
        self._queue: collections.deque[tuple[bool, str, tuple | None]] = collections.deque()
        self._cond = threading.Condition()
        # writer thread only, as of the lines written: what a restarted consumer must get again
        self._open_runs: dict[str, list[str]] = {}   # run uid -> start + descriptor lines
        self._campaign: str | None = None           # campaign_start line of an open campaign
        self._dead = False
        self._closing = False
        self._killed = False                         # by close(): it was not reading
        self._proc = self._spawn()
        self._thread = threading.Thread(target=self._write_loop, daemon=True,
                                        name=f"notifier-feed-{self._proc.pid}")
        self._thread.start()
        atexit.register(_close_at_exit, weakref.ref(self))

    # -- producer side (RunEngine / campaign runner threads) -----------------------------
    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return not self._dead and self._proc.poll() is None

    def __call__(self, name: str, doc: dict) -> None:
        try:
            if name in _SENT_IN_FULL:
                line = _dumps(name, doc)
            elif name == "event":
                line = _dumps(name, {k: doc.get(k) for k in _EVENT_KEYS})
            elif name == "event_page":
                line = _dumps(name, {"descriptor": doc.get("descriptor"),
                                     "seq_num": list(doc.get("seq_num", ())),
                                     "time": list(doc.get("time", ()))})
            else:
                return  # resource/datum documents say nothing a notification needs
            key = ((name, str(doc.get("uid" if name == "start" else "run_start")))
                   if name in _SENT_IN_FULL else None)
            self._put(line, droppable=key is None, key=key)
        except Exception:  # noqa: BLE001 - notifications must never stop a measurement
            logger.exception("notifier feed: %s document not sent", name)

    def campaign_event(self, kind: str, message: str = "", **fields: Any) -> None:
        """Send a non-document event. ``kind`` is one of :data:`CAMPAIGN_KINDS` (a bad kind
        raises ValueError); ``exc=<exception>`` adds ``fault`` (its class name), ``error``
        and, for InstrumentError, ``instrument``/``command``/``reply``. For ``fault`` the
        summary groups by ``fault``; ``campaign_start`` takes ``campaign=<name>``; the fields
        of ``campaign_end`` (counts, ...) are copied into the summary. ``time`` (Unix s)
        defaults to now."""
        check_choice("kind", kind, CAMPAIGN_KINDS)
        try:
            exc = fields.pop("exc", None)
            if exc is not None:
                fields.setdefault("fault", type(exc).__name__)
                fields.setdefault("error", str(exc))
                for attr in ("instrument", "command", "reply"):
                    if getattr(exc, attr, None) is not None:
                        fields.setdefault(attr, getattr(exc, attr))
            doc = {"time": time.time(), **fields, "kind": kind, "message": str(message)}
            self._put(_dumps("campaign", doc), droppable=False, key=(kind, None))
        except Exception:  # noqa: BLE001
            logger.exception("notifier feed: campaign event %r not sent", kind)

    def _put(self, line: str, *, droppable: bool, key: tuple | None) -> None:
        with self._cond:
            if self._dead or self._closing:
                self.dropped += 1
                return
            if len(self._queue) >= self.maxsize and not self._make_room(droppable):
                self.dropped += 1
                return
            self._queue.append((droppable, line, key))
            self._cond.notify()

    def _make_room(self, droppable: bool) -> bool:
        """Drop one queued message (counted); False if the new one should go instead."""
        if droppable and self.drop == "newest":
            return False
        for i, (queued_droppable, _, _) in enumerate(self._queue):
            if queued_droppable:          # events go before documents that matter
                del self._queue[i]
                self.dropped += 1
                return True
        if droppable or self.drop == "newest":
            return False
        self._queue.popleft()
        self.dropped += 1
        return True

    def _remember(self, line: str, key: tuple | None) -> None:
        """Track what a restarted consumer must be told again (campaign start, open runs)."""
        name, uid = key or (None, None)
        if name == "start":
            self._open_runs[uid] = [_replay(line)]
        elif name == "descriptor" and uid in self._open_runs:
            self._open_runs[uid].append(_replay(line))
        elif name == "stop":
            self._open_runs.pop(uid, None)
        elif name in ("campaign_start", "campaign_end"):
            self._campaign = _replay(line) if name == "campaign_start" else None

    # -- writer thread ------------------------------------------------------------------
    def _spawn(self) -> subprocess.Popen:
        # own session/process group: Ctrl-C in the terminal pauses the RunEngine only
        extra = ({"start_new_session": True} if os.name == "posix"
                 else {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP})
        return subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=self._stderr, **extra)

    def _write_loop(self) -> None:
        reported = 0
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closing:
                        self._cond.wait()
                    if not self._queue:
                        return
                    items = list(self._queue)
                    self._queue.clear()
                    dropped = self.dropped
                if self._dead:
                    with self._cond:
                        self.dropped += len(items)
                    continue
                batch = [line for _, line, _ in items]
                if dropped > reported:  # the consumer reports drops in its summary
                    batch.insert(0, _dumps("feed", {"dropped": dropped, "time": time.time()}))
                    reported = dropped
                if self._write(batch):
                    for _, line, key in items:
                        self._remember(line, key)
        finally:
            try:
                self._proc.stdin.close()   # EOF: the consumer summarises and exits
            except (OSError, ValueError):
                pass

    def _write(self, batch: list[str]) -> bool:
        data = ("\n".join(batch) + "\n").encode("utf-8")
        while True:
            try:
                self._proc.stdin.write(data)
                self._proc.stdin.flush()
                self.sent += len(batch)
                return True
            except (OSError, ValueError) as exc:
                if not self._consumer_died(exc):
                    with self._cond:
                        self.dropped += len(batch)
                    return False
                # the state as of the last batch written; duplicates are ignored by the consumer
                resend = ([_dumps("feed", {"restarted": self.restarts})]
                          + ([self._campaign] if self._campaign else [])
                          + [ln for lines in self._open_runs.values() for ln in lines])
                data = ("\n".join(resend) + "\n").encode("utf-8") + data

    def _consumer_died(self, exc: Exception) -> bool:
        """Log the death; True if a new consumer was started."""
        code = self._proc.poll()
        try:
            self._proc.stdin.close()
        except (OSError, ValueError):
            pass
        can_restart = self.restart and self.restarts < self.max_restarts and not self._killed
        logger.error("notifier consumer (pid %s) is gone (exit code %s, %s: %s); %s",
                     self._proc.pid, code, type(exc).__name__, exc,
                     "restarting it" if can_restart else "notifications are dropped from now on")
        if can_restart:
            try:
                self._proc = self._spawn()
                self.restarts += 1
                return True
            except OSError:
                logger.exception("notifier consumer could not be restarted")
        self._dead = True
        return False

    def close(self, timeout: float = 5.0) -> bool:
        """Send what is queued, close the consumer's stdin (it writes the summary of an open
        campaign, runs its last hooks and exits) and wait up to ``timeout`` s. True if the
        consumer has exited; if not it is left to finish its hooks on its own. A consumer that
        does not read at all within ``timeout`` is killed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.error("notifier consumer (pid %s) is not reading; killing it", self.pid)
            self._killed = True
            self._proc.kill()
            self._thread.join(1.0)
        try:
            self._proc.wait(max(0.0, deadline - time.monotonic()))
            return True
        except subprocess.TimeoutExpired:
            return False

    def __enter__(self) -> NotifierFeed:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
