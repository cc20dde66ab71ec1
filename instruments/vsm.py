"""The MPMS3 VSM moment as an Ophyd detector, fed by the MultiVu ``.dat`` seam.

Follow and request modes come from :class:`~.dat_detector.DatRowDetector`: in ``follow`` mode
each ``trigger()`` completes with the next moment row a MultiVu sequence appends; in ``request``
mode it asks the simulator for one measurement with the documented ``SPINLIGHT_VSM`` extension.

Continuous logging during sweeps (``continuous`` signal) uses ``SPINLIGHT_VSM_LOG`` against the
simulator; in follow mode the MultiVu sequence does the logging and the signal only records it.
Rows already measured (e.g. the tail of a logged sweep) are read before any new measurement is
requested: queued rows are data, never dropped.
"""

from __future__ import annotations

import math

from ophyd import Component as Cpt
from ophyd import Signal

from .dat_detector import DatRowDetector, first_filled

#: Moment columns in the order MultiVu fills them (VSM, then DC scan).
MOMENT_COLUMNS = (("Moment (emu)", "M. Std. Err. (emu)"),
                  ("DC Moment Free Ctr (emu)", "DC Moment Err Free Ctr (emu)"),
                  ("DC Moment Fixed Ctr (emu)", "DC Moment Err Fixed Ctr (emu)"))


def row_moment(row: dict) -> tuple[float, float]:
    """(moment, standard error) in emu from whichever moment column the row fills."""
    col, m = first_filled(row, [m for m, _ in MOMENT_COLUMNS])
    if col is None:
        return math.nan, math.nan
    return m, first_filled(row, [dict(MOMENT_COLUMNS)[col]])[1]


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


class VSMDetector(DatRowDetector):
    """Moment (emu) with its standard error, measured T and H, and the instrument time."""

    moment = Cpt(Signal, value=math.nan, kind="hinted")
    moment_err = Cpt(Signal, value=math.nan, kind="normal")
    averaging_time_s = Cpt(Signal, value=2.0, kind="config")
    continuous = Cpt(_ContinuousLogging, value=0.0, kind="config")

    measurement_kind = "VSM measurement"

    def _accepts(self, row: dict) -> bool:
        return not math.isnan(row_moment(row)[0])

    def _request(self) -> int | None:
        if self.continuous.get() > 0 or self._queue:
            return None         # logged rows (or rows already measured) come first
        return self.driver.request_vsm(self.averaging_time_s.get())

    def _publish_row(self, row: dict) -> None:
        moment, err = row_moment(row)
        self.moment.put(moment)
        self.moment_err.put(err)
