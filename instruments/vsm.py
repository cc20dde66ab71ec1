"""The MPMS3 VSM moment as an Ophyd detector, fed by the MultiVu ``.dat`` seam.

Two modes, one code path for reading:
- ``follow`` (real hardware today): a MultiVu sequence measures; each ``trigger()`` completes with
  the next complete row MultiVu appends to the ``.dat`` file (rows are queued, never dropped).
- ``request`` (simulator): ``trigger()`` asks for one measurement with the documented
  ``SPINLIGHT_VSM`` extension and completes when the row with that measurement number appears.

Continuous logging during sweeps (``continuous`` signal) uses ``SPINLIGHT_VSM_LOG`` against the
simulator; in follow mode the MultiVu sequence does the logging and the signal only records it.
"""

from __future__ import annotations

import collections
import math
import threading
import time

from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import DeviceStatus

from .errors import InstrumentTimeout
from .qd_dat import DatFollower, ole_to_unix

#: Moment columns in the order MultiVu fills them (VSM, then DC scan).
MOMENT_COLUMNS = (("Moment (emu)", "M. Std. Err. (emu)"),
                  ("DC Moment Free Ctr (emu)", "DC Moment Err Free Ctr (emu)"),
                  ("DC Moment Fixed Ctr (emu)", "DC Moment Err Fixed Ctr (emu)"))


def _num(row: dict, key: str) -> float:
    v = row.get(key)
    if v is None or v == "":
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def row_moment(row: dict) -> tuple[float, float]:
    """(moment, standard error) in emu from whichever moment column the row fills."""
    for m_col, e_col in MOMENT_COLUMNS:
        m = _num(row, m_col)
        if not math.isnan(m):
            return m, _num(row, e_col)
    return math.nan, math.nan


class _ContinuousLogging(Signal):
    """``put(interval_s)`` starts continuous VSM logging, ``put(0)`` stops it."""

    def put(self, value, **kwargs):
        det = self.parent
        interval = float(value)
        if det.mode.get() == "request":
            if interval > 0:
                det.driver.vsm_logging_on(interval)
            else:
                det.driver.vsm_logging_off()
        super().put(interval, **kwargs)


class VSMDetector(Device):
    """Moment (emu) with its standard error, measured T and H, and the instrument time."""

    moment = Cpt(Signal, value=math.nan, kind="hinted")
    moment_err = Cpt(Signal, value=math.nan, kind="normal")
    temperature = Cpt(Signal, value=math.nan, kind="normal")
    field = Cpt(Signal, value=math.nan, kind="normal")
    time = Cpt(Signal, value=math.nan, kind="normal")
    measurement_number = Cpt(Signal, value=-1, kind="normal")
    averaging_time_s = Cpt(Signal, value=2.0, kind="config")
    mode = Cpt(Signal, value="request", kind="config")
    datafile = Cpt(Signal, value="", kind="config")
    continuous = Cpt(_ContinuousLogging, value=0.0, kind="config")
    timeout_s = Cpt(Signal, value=900.0, kind="omitted")

    def __init__(self, *args, driver, datafile: str | None = None, mode: str = "request", **kwargs):
        super().__init__(*args, **kwargs)
        if mode not in ("request", "follow"):
            raise ValueError(f"mode={mode!r} is not allowed; choose 'request' or 'follow'")
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

    # -- file following ----------------------------------------------------------------
    def _ensure_follower(self) -> None:
        if self._follower is None:
            self._follower = DatFollower(self.datafile.get())
            self._follower.poll()  # rows written before we started belong to earlier work

    def _pull(self) -> None:
        for row in self._follower.poll():
            if not math.isnan(row_moment(row)[0]):
                self._queue.append(row)

    def stage(self):
        with self._lock:
            self._follower = None
            self._queue.clear()
            self._ensure_follower()
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
        status = DeviceStatus(self, timeout=timeout)
        with self._lock:
            self._ensure_follower()
            self._pull()
            number = None
            # Rows already measured (e.g. the tail of a logged sweep) are read before any new
            # measurement is requested: queued rows are data, never dropped.
            if self.mode.get() == "request" and self.continuous.get() <= 0 and not self._queue:
                number = self.driver.request_vsm(self.averaging_time_s.get())
        threading.Thread(target=self._wait_row, args=(status, number, timeout), daemon=True,
                         name=f"{self.name}-trigger").start()
        return status

    def _wait_row(self, status: DeviceStatus, number: int | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        try:
            while not status.done:
                with self._lock:
                    self._pull()
                    row = self._take(number)
                if row is not None:
                    self._publish(row)
                    status.set_finished()
                    return
                if time.monotonic() > deadline:
                    raise InstrumentTimeout(self.driver.instrument, "VSM measurement", None,
                                            f"no new row in {self.datafile.get()} within {timeout} s")
                time.sleep(0.01)
        except Exception as exc:
            if not status.done:
                status.set_exception(exc)

    def _take(self, number: int | None):
        if number is None:
            return self._queue.popleft() if self._queue else None
        while self._queue:  # request mode: our row is the one with our measurement number
            row = self._queue.popleft()
            if int(_num(row, "Measurement Number")) == number:
                return row
        return None

    def _publish(self, row: dict) -> None:
        moment, err = row_moment(row)
        stamp = _num(row, "Time Stamp (sec)")
        self.moment.put(moment)
        self.moment_err.put(err)
        self.temperature.put(_num(row, "Temperature (K)"))
        self.field.put(_num(row, "Magnetic Field (Oe)"))
        self.time.put(ole_to_unix(stamp) if not math.isnan(stamp) else math.nan)
        number = _num(row, "Measurement Number")
        self.measurement_number.put(-1 if math.isnan(number) else int(number))
