"""The HydraHarp histogram detector as an Ophyd device, and :func:`connect_tcspc`.

:class:`TCSPC` is the detector: ``trigger()`` clears the memory and starts the measurement at
once (errors raise there), and a poller thread completes the status when ``HH_CTCStatus``
reports the end (finite timeout: acquisition time + ``rate_settle_s`` + ``timeout_margin_s``).
The plain driver, its call sequence and its retry semantics are in :mod:`.tcspc`.
"""

from __future__ import annotations

import threading

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import DeviceStatus

from . import picoquant_defs as hh
from .errors import check_choice
from .harp import HarpLib, SocketRpcHarpBackend
from .retry import RetryPolicy
from .tcspc import RATE_SETTLE_S, TCSPCDriver, TCSPCResult


class _Setting(Signal):
    """A configuration signal validated by ``driver.check_<attr>`` and sent by
    ``driver.set_<attr>`` (``driver_attr`` names them)."""

    def __init__(self, *args, driver_attr: str, **kwargs):
        self._attr = driver_attr
        super().__init__(*args, **kwargs)

    def set(self, value, **kwargs):
        getattr(self.parent.driver, f"check_{self._attr}")(value)   # bad input fails here
        return super().set(value, **kwargs)

    def put(self, value, **kwargs):
        getattr(self.parent.driver, f"set_{self._attr}")(value)
        applied = self.parent.driver.settings[self._attr]
        super().put(0 if applied is None else applied, **kwargs)


class _Tacq(Signal):
    """Requested acquisition time (s), validated against 1 ms .. 100 h."""

    def put(self, value, **kwargs):
        ms = self.parent.driver.check_tacq_s(value)
        super().put(ms / 1000.0, **kwargs)


class _Channels(Signal):
    """Histogram length (channels): 1024·2**k for k = 0..6; the time axis follows."""

    @staticmethod
    def code(value) -> int:
        lengths = [1024 << k for k in range(hh.HH_MAXLENCODE + 1)]
        return lengths.index(int(check_choice("channels", value, lengths)))

    def set(self, value, **kwargs):
        self.code(value)                              # bad input fails here
        return super().set(value, **kwargs)

    def put(self, value, **kwargs):
        self.parent.driver.set_histogram_length(self.code(value))
        self.parent.refresh()


class TCSPC(Device):
    """HydraHarp histogram detector: ``trigger()`` acquires one decay histogram."""

    histogram = Cpt(Signal, value=np.zeros(hh.HH_MAXHISTLEN, np.uint32), kind="normal")
    time_ns = Cpt(Signal, value=np.zeros(hh.HH_MAXHISTLEN), kind="normal")
    total_counts = Cpt(Signal, value=0, kind="hinted")
    resolution_ps = Cpt(Signal, value=float("nan"), kind="normal")
    acquisition_time_s = Cpt(Signal, value=float("nan"), kind="normal")
    sync_rate = Cpt(Signal, value=float("nan"), kind="normal")       # Hz
    count_rate = Cpt(Signal, value=float("nan"), kind="normal")      # counts/s
    flags = Cpt(Signal, value=0, kind="normal")
    warnings = Cpt(Signal, value=0, kind="normal")

    tacq_s = Cpt(_Tacq, value=1.0, kind="config")
    binning = Cpt(_Setting, value=0, driver_attr="binning", kind="config")
    offset_ns = Cpt(_Setting, value=0, driver_attr="offset_ns", kind="config")
    sync_divider = Cpt(_Setting, value=1, driver_attr="sync_divider", kind="config")
    stop_count = Cpt(_Setting, value=0, driver_attr="stop_count", kind="config")
    channels = Cpt(_Channels, value=hh.HH_MAXHISTLEN, kind="config")
    timeout_margin_s = Cpt(Signal, value=30.0, kind="omitted")

    def __init__(self, *args, driver: TCSPCDriver, **kwargs):
        self.driver = driver
        super().__init__(*args, **kwargs)
        self._stop_event = threading.Event()
        self.last_result: TCSPCResult | None = None
        self.refresh()

    def refresh(self) -> None:
        """Copy the driver's current settings into the signals (array shapes included)."""
        s = self.driver.settings
        n = s["histogram_length"]
        for sig, key in ((self.binning, "binning"), (self.offset_ns, "offset_ns"),
                         (self.sync_divider, "sync_divider")):
            Signal.put(sig, s[key])
        Signal.put(self.stop_count, s["stop_count"] or 0)
        Signal.put(self.channels, n)
        self.histogram.put(np.zeros(n, np.uint32))
        self.time_ns.put(s["offset_ns"] + np.arange(n) * self.driver.base_resolution_ps
                         * 2 ** s["binning"] / 1000.0)

    def trigger(self) -> DeviceStatus:
        tacq = self.tacq_s.get()
        timeout = self.driver.timeout_s(tacq, self.timeout_margin_s.get())
        self._stop_event = stop = threading.Event()
        self.driver.start(tacq)                      # errors raise here, in trigger()
        status = DeviceStatus(self, timeout=timeout + 1.0)
        threading.Thread(target=self._complete, args=(status, timeout, stop), daemon=True,
                         name=f"{self.name}-ctc-poller").start()
        return status

    def _complete(self, status: DeviceStatus, timeout: float, stop: threading.Event) -> None:
        try:
            rates = self.driver.rates()
            self.driver.wait(timeout, stop)
            self._publish(self.driver.finish(rates))
            status.set_finished()
        except Exception as exc:
            if not status.done:
                status.set_exception(exc)

    def _publish(self, r: TCSPCResult) -> None:
        self.last_result = r
        self.histogram.put(r.counts)
        self.time_ns.put(r.time_ns)
        self.total_counts.put(int(r.counts.sum(dtype=np.int64)))
        self.resolution_ps.put(r.resolution_ps)
        self.acquisition_time_s.put(r.acquisition_time_s)
        self.sync_rate.put(r.sync_rate_hz)
        self.count_rate.put(r.count_rate_cps)
        self.flags.put(r.flags)
        self.warnings.put(r.warnings)

    def stop(self, *, success: bool = False) -> None:
        self._stop_event.set()
        super().stop(success=success)

    def close(self) -> None:
        self.driver.close()


def connect_tcspc(host: str, port: int, *, name: str = "tcspc", timeout_s: float = 5.0,
                  rate_settle_s: float = RATE_SETTLE_S, retry: RetryPolicy | None = None,
                  **settings) -> TCSPC:
    """Connect to the HydraHarp simulator's RPC port, open, configure (``settings`` as for
    :meth:`TCSPCDriver.configure`) and return a ready :class:`TCSPC`. ``retry``: the library's
    :class:`~.retry.RetryPolicy` (default ``RetryPolicy()``; semantics per call in
    :mod:`.harp` and :mod:`.tcspc`). On hardware build it as ``TCSPC(name=...,
    driver=TCSPCDriver(HarpLib(CtypesHarpBackend())).open())``."""
    lib = HarpLib(SocketRpcHarpBackend(host, port, name=name, timeout_s=timeout_s), name=name,
                  retry=RetryPolicy() if retry is None else retry)
    driver = TCSPCDriver(lib, rate_settle_s=rate_settle_s)
    try:
        driver.open()
        driver.configure(**settings)
        return TCSPC(name=name, driver=driver)
    except Exception:
        lib.close()
        raise
