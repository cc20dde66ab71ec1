"""The HydraHarp histogram detector as an Ophyd device, and :func:`connect_tcspc`.

:class:`TCSPC` is the detector: ``trigger()`` clears the memory and starts the measurement at
once (errors raise there), and a poller thread completes the status when ``HH_CTCStatus``
reports the end (finite timeout: acquisition time + ``rate_settle_s`` + ``timeout_margin_s``).

With ``accumulate`` True a trigger adds its histogram to the one the device holds (same
channels, channel width and offset, else ``trigger()`` refuses) instead of replacing it, so
several acquisitions read as one histogram: ``acquisitions`` counts them,
``acquisition_time_s`` is their summed elapsed time, ``sync_rate`` / ``count_rate`` their
time-weighted means, ``flags`` / ``warnings`` the union. A trigger with ``accumulate`` False
starts afresh (the driver clears the HydraHarp memory either way: each acquisition is whole).
The plain driver, its call sequence and its retry semantics are in :mod:`.tcspc`.
"""

from __future__ import annotations

import threading
from dataclasses import replace

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

    def set(self, value, **kwargs):
        self.parent.driver.check_tacq_s(value)        # bad input fails here, not in the thread
        return super().set(value, **kwargs)

    def put(self, value, **kwargs):
        ms = self.parent.driver.check_tacq_s(value)
        super().put(ms / 1000.0, **kwargs)


class _Accumulate(Signal):
    """True: the next trigger adds to the histogram held; False: it replaces it."""

    def set(self, value, **kwargs):
        check_choice("accumulate", value, (False, True))      # bad input fails here
        return super().set(value, **kwargs)

    def put(self, value, **kwargs):
        super().put(bool(check_choice("accumulate", value, (False, True))), **kwargs)


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
    acquisitions = Cpt(Signal, value=0, kind="normal")     # summed in ``histogram``

    tacq_s = Cpt(_Tacq, value=1.0, kind="config")
    binning = Cpt(_Setting, value=0, driver_attr="binning", kind="config")
    offset_ns = Cpt(_Setting, value=0, driver_attr="offset_ns", kind="config")
    sync_divider = Cpt(_Setting, value=1, driver_attr="sync_divider", kind="config")
    stop_count = Cpt(_Setting, value=0, driver_attr="stop_count", kind="config")
    channels = Cpt(_Channels, value=hh.HH_MAXHISTLEN, kind="config")
    accumulate = Cpt(_Accumulate, value=False, kind="config")
    timeout_margin_s = Cpt(Signal, value=30.0, kind="omitted")

    def __init__(self, *args, driver: TCSPCDriver, **kwargs):
        self.driver = driver
        super().__init__(*args, **kwargs)
        self._stop_event = threading.Event()
        self.last_result: TCSPCResult | None = None      # the last acquisition alone
        self._held: TCSPCResult | None = None            # what ``histogram`` holds (summed)
        self._held_count = 0
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
        self._held, self._held_count = None, 0
        self.acquisitions.put(0)
        self.histogram.put(np.zeros(n, np.uint32))
        self.time_ns.put(s["offset_ns"] + np.arange(n) * self.driver.base_resolution_ps
                         * 2 ** s["binning"] / 1000.0)

    def trigger(self) -> DeviceStatus:
        tacq = self.tacq_s.get()
        held = self._held if self.accumulate.get() else None
        if held is not None and held.settings != self.driver.settings:
            raise ValueError(f"accumulate=True but the settings changed from {held.settings} "
                             f"to {self.driver.settings}; allowed: the same histogram length, "
                             "binning and offset (or accumulate=False to start afresh)")
        timeout = self.driver.timeout_s(tacq, self.timeout_margin_s.get())
        self._stop_event = stop = threading.Event()
        self.driver.start(tacq)                      # errors raise here, in trigger()
        status = DeviceStatus(self, timeout=timeout + 1.0)
        threading.Thread(target=self._complete, args=(status, timeout, stop, held), daemon=True,
                         name=f"{self.name}-ctc-poller").start()
        return status

    def _complete(self, status: DeviceStatus, timeout: float, stop: threading.Event,
                  held: TCSPCResult | None) -> None:
        try:
            rates = self.driver.rates()
            self.driver.wait(timeout, stop)
            r = self.driver.finish(rates)
            self.last_result = r
            total = r if held is None else accumulated(held, r)
            self._held, self._held_count = total, (0 if held is None else self._held_count) + 1
            self._publish(total)
            status.set_finished()
        except Exception as exc:
            if not status.done:
                status.set_exception(exc)

    def _publish(self, r: TCSPCResult) -> None:
        self.acquisitions.put(self._held_count)
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


def accumulated(a: TCSPCResult, b: TCSPCResult) -> TCSPCResult:
    """Two acquisitions on the same axis as one: counts summed (clipped at 2**32-1, which sets
    the overflow flag), times summed, rates weighted by elapsed time, flags and warnings ORed."""
    counts = a.counts.astype(np.int64) + b.counts
    top = np.iinfo(np.uint32).max
    flags = a.flags | b.flags | (hh.HH_FLAG_OVERFLOW if counts.max(initial=0) > top else 0)
    ta, tb = a.acquisition_time_s, b.acquisition_time_s
    w = tb / (ta + tb) if ta + tb > 0 else 1.0
    return replace(b, counts=np.minimum(counts, top).astype(np.uint32),
                   acquisition_time_s=ta + tb, requested_time_s=a.requested_time_s
                   + b.requested_time_s, sync_rate_hz=(1 - w) * a.sync_rate_hz
                   + w * b.sync_rate_hz, count_rate_cps=(1 - w) * a.count_rate_cps
                   + w * b.count_rate_cps, flags=flags, warnings=a.warnings | b.warnings)


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
