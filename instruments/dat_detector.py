"""Ophyd detectors fed by the MultiVu ``.dat`` seam: the machinery shared by VSM and ac.

Quantum Design systems publish moments and ac susceptibilities only in the ``.dat`` file
MultiVu writes (instruments.md §2.3-2.4). A :class:`DatRowDetector` has two modes, one code
path for reading:

- ``follow`` (real hardware today): a MultiVu sequence measures; each ``trigger()`` completes
  with the next complete row of the detector's kind that MultiVu appends (rows are queued,
  never dropped; rows already in the file at ``stage()`` belong to earlier work);
- ``request`` (simulator): ``trigger()`` asks for one measurement through a documented
  simulator extension (the subclass's :meth:`DatRowDetector._request`) and completes when the
  row with that ``Measurement Number`` appears. Rows numbered below it were requested by
  earlier triggers and are dropped; rows numbered above it stay queued for later triggers.

**Pause and suspension.** The RunEngine calls :meth:`DatRowDetector.pause` when it pauses or
suspends; the pending trigger is then ended (its status *finished*: after the rewind to the
last checkpoint the RunEngine waits only on the replayed trigger, whereas a failed status
would fail the run) and its thread stops, so it cannot take the replayed trigger's row. The
row it had requested is never published: it was measured across the interruption.

Subclasses say which rows are theirs (:meth:`_accepts`), how to request one and what to publish
(:meth:`_publish_row`); the base publishes temperature, field, instrument time and measurement
number of every row.
"""

from __future__ import annotations

import collections
import math
import threading
import time

from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import DeviceStatus
from ophyd.utils import InvalidState

from .errors import InstrumentTimeout, check_choice
from .qd_dat import AC_ALIASES, DatFollower

STATUS_MARGIN_S = 2.0


def row_number(row: dict, key: str) -> float:
    """A row's value of column ``key`` as a float (NaN if absent, empty or text)."""
    v = row.get(key)
    if v is None or v == "":
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def first_filled(row: dict, names) -> tuple[str | None, float]:
    """(column, value) of the first of ``names`` this row fills, else (None, NaN)."""
    for name in names:
        v = row_number(row, name)
        if not math.isnan(v):
            return name, v
    return None, math.nan


class DatRowDetector(Device):
    """Base of detectors reading MultiVu ``.dat`` rows (see the module docstring)."""

    temperature = Cpt(Signal, value=math.nan, kind="normal")
    field = Cpt(Signal, value=math.nan, kind="normal")
    time = Cpt(Signal, value=math.nan, kind="normal")
    measurement_number = Cpt(Signal, value=-1, kind="normal")
    mode = Cpt(Signal, value="request", kind="config")
    datafile = Cpt(Signal, value="", kind="config")
    timeout_s = Cpt(Signal, value=900.0, kind="omitted")

    #: Named in timeout errors ("VSM measurement", "AC measurement").
    measurement_kind = "measurement"

    def __init__(self, *args, driver, datafile: str | None = None, mode: str = "request",
                 **kwargs):
        super().__init__(*args, **kwargs)
        check_choice("mode", mode, {"request", "follow"})
        self.driver = driver
        self.mode.put(mode)
        if not datafile:
            if mode == "follow":
                raise ValueError("datafile is required in follow mode: give the .dat MultiVu writes")
            datafile = driver.get_datafile()
        self.datafile.put(str(datafile))
        self._follower: DatFollower | None = None
        self._queue: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._pending: list[tuple[DeviceStatus, int | None]] = []   # triggers not yet done
        self._abandoned: set[int] = set()    # numbers requested by triggers ended by pause()

    # -- subclass hooks ------------------------------------------------------------------
    def _accepts(self, row: dict) -> bool:
        """Is this row one of this detector's measurements?"""
        raise NotImplementedError

    def _request(self) -> int | None:
        """Request mode, lock held, queue up to date: ask the instrument for one measurement
        and return its Measurement Number, or None to take the next queued row instead."""
        raise NotImplementedError

    def _publish_row(self, row: dict) -> None:
        """Put this detector's own readings of ``row``."""
        raise NotImplementedError

    # -- file following ----------------------------------------------------------------
    def _ensure_follower(self) -> None:
        if self._follower is None:
            self._follower = DatFollower(self.datafile.get())
            self._follower.poll()  # rows written before we started belong to earlier work

    def _pull(self) -> None:
        for row in self._follower.poll():
            if self._accepts(row) and row_number(row, "Measurement Number") not in self._abandoned:
                self._queue.append(row)

    def follow_from_now(self) -> None:
        """Forget queued rows and follow the file from its current end (before a sweep starts
        logging, so its first rows are not mistaken for earlier work)."""
        with self._lock:
            self._follower = None
            self._queue.clear()
            self._ensure_follower()

    def stage(self):
        self.follow_from_now()
        return super().stage()

    def pending_rows(self) -> int:
        """Rows already written but not yet read (sweep mode drains them at the end)."""
        with self._lock:
            self._ensure_follower()
            self._pull()
            return len(self._queue)

    # -- detector protocol -----------------------------------------------------------------
    def trigger(self) -> DeviceStatus:
        timeout = self.timeout_s.get()
        # the status' own timeout is a backstop behind _wait_row's, whose error names the file
        status = DeviceStatus(self, timeout=timeout + STATUS_MARGIN_S)
        with self._lock:
            self._ensure_follower()
            self._pull()
            number = self._request() if self.mode.get() == "request" else None
            self._pending.append((status, number))
        threading.Thread(target=self._wait_row, args=(status, number, timeout), daemon=True,
                         name=f"{self.name}-trigger").start()
        return status

    def _wait_row(self, status: DeviceStatus, number: int | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        try:
            while True:
                with self._lock:
                    if not any(s is status for s, _ in self._pending):
                        return          # ended by pause(): its row is not ours to take
                    self._pull()
                    row = self._take(number)
                if row is not None:
                    self._publish(row)
                    status.set_finished()
                    return
                if time.monotonic() > deadline:
                    raise InstrumentTimeout(getattr(self.driver, "instrument", "MultiVu"),
                                            self.measurement_kind, None,
                                            f"no new row in {self.datafile.get()} within {timeout} s")
                time.sleep(0.01)
        except Exception as exc:
            if not status.done:
                status.set_exception(exc)
        finally:
            with self._lock:
                self._pending = [p for p in self._pending if p[0] is not status]

    def pause(self) -> None:
        """RunEngine pause or suspension: end the pending trigger(s) and stop their threads
        (see the module docstring); the rewound plan triggers again."""
        with self._lock:
            pending, self._pending = self._pending, []
            self._abandoned.update(n for _, n in pending if n is not None)
            self._queue = collections.deque(          # a row may already be queued
                r for r in self._queue
                if row_number(r, "Measurement Number") not in self._abandoned)
        for status, _ in pending:
            if not status.done:
                try:
                    status.set_finished()   # ignored by the RunEngine after its rewind
                except InvalidState:
                    pass                    # the thread finished it meanwhile
        super().pause()

    def _take(self, number: int | None):
        if number is None:
            return self._queue.popleft() if self._queue else None
        # request mode: our row carries our number; lower ones were requested before ours
        # (never taken), higher ones belong to later triggers and stay queued
        while self._queue and row_number(self._queue[0], "Measurement Number") < number:
            self._queue.popleft()
        for i, row in enumerate(self._queue):
            if row_number(row, "Measurement Number") == number:
                del self._queue[i]
                return row
        return None

    def _publish(self, row: dict) -> None:
        self._publish_row(row)
        self.temperature.put(first_filled(row, AC_ALIASES["temperature"])[1])
        self.field.put(first_filled(row, AC_ALIASES["field"])[1])
        self.time.put(self._follower.time_unix(row))
        number = row_number(row, "Measurement Number")
        self.measurement_number.put(-1 if math.isnan(number) else int(number))
