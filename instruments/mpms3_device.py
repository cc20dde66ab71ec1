"""The MPMS3 as Ophyd devices: temperature and field positioners, chamber, interlock monitor.

``connect_mpms3(host, port)`` gives ``(mpms3, vsm)`` wired to a MultiVu server (the real
MultiPyVu server on the MultiVu PC, or spinlight's simulator); ``connect_mpms3(..., ac=True)``
gives ``(mpms3, vsm, ac)`` with the AC-option detector, which :func:`mpms3_ac_detector` also
builds for an MPMS3 already connected. The monitor thread (:mod:`.monitor`: ``connected``,
``magnet_fault``, ``temperature_deviation_K``) keeps the interlock signals current so
suspenders can subscribe to them — MultiVu devices produce no events unless someone polls.
The driver retries garbled replies and timeouts and reconnects a lost MultiVu link under a
:class:`~.retry.RetryPolicy` (default ``RetryPolicy()``).
"""

from __future__ import annotations

import logging

from ophyd import Component as Cpt
from ophyd import Signal

from .ac_detector import ACDetector
from .mpms3 import CHAMBER_MODE, MPMS3Driver
from .monitor import MonitorMixin
from .qd_axis import FieldAxis, TemperatureAxis
from .retry import RetryPolicy
from .multivu_transport import MultiVuTransport
from .vsm import VSMDetector

log = logging.getLogger(__name__)


class _ChamberSignal(Signal):
    """Chamber state text; ``put(mode)`` sends a chamber command (seal, purge_seal, ...)."""

    def get(self, **kwargs):
        if self.parent is not None and self.parent.driver is not None and kwargs.pop("query", False):
            _, text = self.parent.driver.get_chamber()
            super().put(text)
        return super().get(**kwargs)

    def put(self, value, **kwargs):
        if value in CHAMBER_MODE:
            self.parent.driver.set_chamber(value)
            _, value = self.parent.driver.get_chamber()
        super().put(value, **kwargs)


class MPMS3(MonitorMixin):
    """Quantum Design MPMS3: ``temperature`` (K) and ``field`` (Oe) positioners."""

    temperature = Cpt(TemperatureAxis, kind="hinted")
    field = Cpt(FieldAxis, kind="hinted")
    chamber = Cpt(_ChamberSignal, value="", kind="config")

    def __init__(self, *args, driver: MPMS3Driver, **kwargs):
        self.driver = driver
        super().__init__(*args, **kwargs)

    def trigger(self):
        """Read temperature and field fresh for the event that follows."""
        self.temperature.update()
        self.field.update()
        return super().trigger()

    def refresh(self) -> None:
        """Query temperature, field and chamber once, updating every signal."""
        self.temperature.update()
        self.field.update()
        self.chamber.get(query=True)

    # -- interlock monitor (MonitorMixin) -------------------------------------------------
    def _monitor_once(self) -> None:
        axes = [a for a in (self.temperature, self.field) if not a.moving]  # pollers publish
        for axis in axes:
            axis.update()
        if not axes:
            self.chamber.get(query=True)   # still probe the link


def mpms3_ac_detector(mpms3: MPMS3, datafile: str | None = None, *, mode: str = "request",
                      name: str = "ac") -> ACDetector:
    """The AC-option detector of a connected MPMS3 (same driver, same ``.dat`` rules as the
    VSM: ``follow`` needs ``datafile``; ``request`` asks the simulator for it if omitted)."""
    return ACDetector(name=name, driver=mpms3.driver, datafile=datafile, mode=mode)


def connect_mpms3(host: str = "127.0.0.1", port: int = 27183, *, datafile: str | None = None,
                  mode: str = "request", timeout_s: float = 30.0, name: str = "mpms3",
                  ac: bool = False, retry: RetryPolicy | None = None,
                  monitor_interval_s: float | None = None):
    """Connect to a MultiVu server and build ``(mpms3, vsm)``, or ``(mpms3, vsm, ac)`` with
    ``ac=True``.

    ``mode='follow'`` with ``datafile`` for a real MPMS3 whose MultiVu sequence writes the
    ``.dat``; ``mode='request'`` against the simulator (datafile asked from it when omitted).
    ``retry``: the driver's :class:`~.retry.RetryPolicy` (default ``RetryPolicy()``);
    ``monitor_interval_s``: start the interlock monitor (s; ``None``: not started).
    """
    transport = MultiVuTransport(host, port, name=name, timeout_s=timeout_s)
    driver = MPMS3Driver(transport, retry=RetryPolicy() if retry is None else retry)
    mpms3 = MPMS3(name=name, driver=driver)
    vsm = VSMDetector(name="vsm", driver=driver, datafile=datafile, mode=mode)
    mpms3.refresh()
    if monitor_interval_s is not None:
        mpms3.start_monitor(monitor_interval_s)
    if ac:
        return mpms3, vsm, mpms3_ac_detector(mpms3, datafile, mode=mode)
    return mpms3, vsm
