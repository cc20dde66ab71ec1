"""Histogram-mode TCSPC on a HydraHarp 400: the plain driver (the Ophyd detector and
:func:`connect_tcspc` are in :mod:`.tcspc_device`, importable from here too).

:class:`TCSPCDriver` runs the HHLib call sequence of the vendor demos (instruments.md §3.1)
on a :class:`~.harp.HarpLib`: ``open()`` (OpenDevice, Initialize in histogram mode with the
internal clock, GetHardwareInfo, GetBaseResolution, GetNumOfInputChannels, Calibrate), the
settings (sync divider, CFD levels, channel offsets, histogram length, binning, offset, stop on
overflow), and acquisitions (ClearHistMem, StartMeas, CTCStatus until ≠ 0, StopMeas,
GetHistogram, GetElapsedMeasTime, GetFlags). Every argument is checked against the HHLib
limits (:mod:`.picoquant_defs`) *before* any call; errors name parameter, value and range.

Count rates are valid only 400 ms after ``HH_Initialize`` or ``HH_SetSyncDiv`` (HHLib
manual); :meth:`TCSPCDriver.rates` waits out the rest of ``rate_settle_s`` (wall seconds)
before reading them. Results report the overflow flag (a channel reached the stop count set
by ``stop_count``), the HHLib warnings and the pile-up ratio count rate / sync rate, which
should stay ≤ 5 % (``reference/timing.md``).

**Faults** (the library's :class:`~.retry.RetryPolicy`, semantics per call in :mod:`.harp`):
single calls are retried by the library; two operations are repeated whole instead, because
their key call must not be repeated on its own. :meth:`TCSPCDriver.open`: after
``HH_CloseDevice`` (a lost ``HH_OpenDevice`` may have opened the device), the whole sequence.
:meth:`TCSPCDriver.start`: after ``HH_StopMeas`` (a lost ``HH_StartMeas`` may have started a
measurement), ``HH_ClearHistMem`` and ``HH_StartMeas`` again: the partial counts are cleared,
so the histogram is always exactly one measurement of ``tacq`` (a new one), never counts lost
or counted twice. :meth:`TCSPCDriver.finish` only reads (``HH_StopMeas`` of a stopped
measurement does nothing; ``HH_GetHistogram`` with ``clear=0``), so its calls repeat freely
and a lost reply there gives the same histogram.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from . import picoquant_defs as hh
from .clib import check_int
from .errors import InstrumentError, InstrumentTimeout, check_choice, check_range
from .harp import HarpLib

#: ``rates()`` waits this long (wall s) after Initialize / SetSyncDiv (HHLib manual: ≥ 400 ms).
RATE_SETTLE_S = 0.4
#: Pile-up limit: count rate / sync rate (reference/timing.md: ≤ 1-5 %).
PILE_UP_RATIO = 0.05


@dataclass(frozen=True)
class TCSPCResult:
    """One histogram: ``counts[k]`` photons in channel k, which covers
    ``[time_ns[k], time_ns[k] + resolution_ps/1000)`` after the (divided) sync."""

    counts: np.ndarray
    time_ns: np.ndarray
    resolution_ps: float
    acquisition_time_s: float     # elapsed, from HH_GetElapsedMeasTime
    requested_time_s: float
    sync_rate_hz: float
    count_rate_cps: float
    flags: int
    warnings: int
    settings: dict = field(default_factory=dict)

    @property
    def overflow(self) -> bool:
        return bool(self.flags & hh.HH_FLAG_OVERFLOW)

    @property
    def flag_names(self) -> tuple[str, ...]:
        return tuple(name for bit, name in hh.HH_FLAGS.items() if self.flags & bit)

    @property
    def warning_names(self) -> tuple[str, ...]:
        return tuple(name for bit, name in hh.HH_WARNINGS.items() if self.warnings & bit)

    @property
    def pile_up_ratio(self) -> float:
        """Count rate / sync rate (NaN without sync); keep ≤ :data:`PILE_UP_RATIO`."""
        return self.count_rate_cps / self.sync_rate_hz if self.sync_rate_hz > 0 else float("nan")


class TCSPCDriver:
    """HydraHarp histogram acquisitions through a :class:`~.harp.HarpLib` (no Bluesky)."""

    def __init__(self, lib: HarpLib, *, devidx: int = 0, channel: int = 0,
                 rate_settle_s: float = RATE_SETTLE_S, poll_interval_s: float = 0.005):
        self.lib = lib
        self.instrument = lib.name
        self.devidx = check_int("devidx", devidx, 0, hh.HH_MAXDEVNUM - 1)
        self.channel = check_int("channel", channel, 0, hh.HH_MAXINPCHAN - 1)
        self.rate_settle_s = check_range("rate_settle_s", rate_settle_s, 0.0, 60.0, "s")
        self.poll_interval_s = check_range("poll_interval_s", poll_interval_s, 1e-4, 10.0, "s")
        self.serial = self.model = ""
        self.base_resolution_ps, self.binsteps, self.n_channels = 1.0, hh.HH_BINSTEPSMAX, 1
        self.settings = {"sync_divider": 1, "binning": 0, "offset_ns": 0,
                         "histogram_length": hh.HH_MAXHISTLEN, "stop_count": None}
        self._settle_from = time.monotonic()
        self._requested_s = 0.0

    def _call(self, fn: str, *args):
        return getattr(self.lib, fn)(self.devidx, *args)

    # -- connection ---------------------------------------------------------------------
    def open(self, serial: str = "") -> "TCSPCDriver":
        """Open, initialise (histogram mode, internal clock), identify and calibrate; after a
        fault the whole sequence again, from ``HH_CloseDevice``."""
        self.lib.retrying(lambda: self._open_once(serial), "open",
                          before_retry=lambda: self._call("HH_CloseDevice"))
        return self

    def _open_once(self, serial: str) -> None:
        self.serial = self._call("HH_OpenDevice")
        if serial and self.serial != serial:
            raise InstrumentError(self.instrument, "HH_OpenDevice", self.serial,
                                  f"device {self.devidx} has serial {self.serial}, not {serial}")
        self._call("HH_Initialize", hh.HH_MODE_HIST, hh.HH_REFSRC_INTERNAL)
        self._settle_from = time.monotonic()
        self.model, _, _ = self._call("HH_GetHardwareInfo")
        self.base_resolution_ps, self.binsteps = self._call("HH_GetBaseResolution")
        self.n_channels = self._call("HH_GetNumOfInputChannels")
        if self.channel >= self.n_channels:
            raise ValueError(f"channel={self.channel} is outside the allowed range "
                             f"0..{self.n_channels - 1} of this {self.model}")
        self._call("HH_Calibrate")

    def close(self) -> None:
        try:
            self._call("HH_CloseDevice")
        finally:
            self.lib.close()

    # -- validation (no I/O) ------------------------------------------------------------
    def check_sync_divider(self, divider) -> int:
        return int(check_choice("sync_divider", divider, hh.HH_SYNC_DIVIDERS))

    def check_binning(self, binning) -> int:
        return check_int("binning", binning, 0, self.binsteps - 1)

    def check_offset_ns(self, offset_ns) -> int:
        return check_int("offset_ns", offset_ns, hh.HH_OFFSETMIN, hh.HH_OFFSETMAX, "ns")

    def check_tacq_s(self, tacq_s) -> int:
        """Acquisition time (s) -> whole ms in the HHLib range."""
        low, high = hh.HH_ACQTMIN / 1000, hh.HH_ACQTMAX / 1000
        s = check_range("acquisition_time_s", tacq_s, low, high, "s")
        ms = round(s * 1000.0)
        if abs(ms - s * 1000.0) > 1e-6 * max(1.0, ms):
            raise ValueError(f"acquisition_time_s={tacq_s!r} s must be a whole number of ms "
                             f"in {low}..{high} s")
        return ms

    def check_stop_count(self, stop_count) -> int | None:
        if stop_count is None or stop_count == 0:
            return None
        return check_int("stop_count", stop_count, hh.HH_STOPCNTMIN, hh.HH_STOPCNTMAX, "counts")

    @staticmethod
    def check_cfd(prefix: str, level_mV, zero_cross_mV) -> tuple[int, int]:
        return (check_int(f"{prefix}_cfd_level_mV", level_mV, hh.HH_DISCRMIN, hh.HH_DISCRMAX, "mV"),
                check_int(f"{prefix}_cfd_zero_cross_mV", zero_cross_mV, hh.HH_ZCMIN, hh.HH_ZCMAX, "mV"))

    @staticmethod
    def check_channel_offset(name: str, offset_ps) -> int:
        return check_int(name, offset_ps, hh.HH_CHANOFFSMIN, hh.HH_CHANOFFSMAX, "ps")

    # -- settings -------------------------------------------------------------------------
    def set_sync_divider(self, divider) -> int:
        d = self.check_sync_divider(divider)
        self._call("HH_SetSyncDiv", d)
        self._settle_from = time.monotonic()     # rates invalid for the next 400 ms
        self.settings["sync_divider"] = d
        return d

    def set_sync_cfd(self, level_mV, zero_cross_mV) -> None:
        self._call("HH_SetSyncCFD", *self.check_cfd("sync", level_mV, zero_cross_mV))

    def set_input_cfd(self, level_mV, zero_cross_mV) -> None:
        self._call("HH_SetInputCFD", self.channel, *self.check_cfd("input", level_mV, zero_cross_mV))

    def set_sync_offset_ps(self, offset_ps) -> None:
        self._call("HH_SetSyncChannelOffset", self.check_channel_offset("sync_offset_ps", offset_ps))

    def set_input_offset_ps(self, offset_ps) -> None:
        v = self.check_channel_offset("input_offset_ps", offset_ps)
        self._call("HH_SetInputChannelOffset", self.channel, v)

    def set_histogram_length(self, lencode) -> int:
        """Length code 0..6 -> 1024·2**code channels; returns the actual length."""
        code = check_int("histogram_length_code", lencode, 0, hh.HH_MAXLENCODE)
        length = self._call("HH_SetHistoLen", code)
        self.settings["histogram_length"] = int(length)
        return int(length)

    def set_binning(self, binning) -> float:
        """Channel width = base resolution × 2**binning; returns it (ps)."""
        b = self.check_binning(binning)
        self._call("HH_SetBinning", b)
        self.settings["binning"] = b
        return self.resolution_ps()

    def set_offset_ns(self, offset_ns) -> int:
        o = self.check_offset_ns(offset_ns)
        self._call("HH_SetOffset", o)
        self.settings["offset_ns"] = o
        return o

    def set_stop_count(self, stop_count) -> int | None:
        """Stop when a channel reaches ``stop_count`` (None: never; counts clip at 2**32-1)."""
        n = self.check_stop_count(stop_count)
        self._call("HH_SetStopOverflow", int(n is not None), n or hh.HH_STOPCNTMAX)
        self.settings["stop_count"] = n
        return n

    def configure(self, *, sync_divider=1, binning=0, offset_ns=0, histogram_length_code=6,
                  sync_cfd_mV=(50, 10), input_cfd_mV=(50, 10), sync_offset_ps=0,
                  input_offset_ps=0, stop_count=None) -> dict:
        """Validate every setting first, then send them in the demo order."""
        self.check_sync_divider(sync_divider), self.check_binning(binning)
        self.check_offset_ns(offset_ns), self.check_stop_count(stop_count)
        self.check_cfd("sync", *sync_cfd_mV), self.check_cfd("input", *input_cfd_mV)
        self.check_channel_offset("sync_offset_ps", sync_offset_ps)
        self.check_channel_offset("input_offset_ps", input_offset_ps)
        check_int("histogram_length_code", histogram_length_code, 0, hh.HH_MAXLENCODE)
        self.set_sync_divider(sync_divider)
        self.set_sync_cfd(*sync_cfd_mV)
        self.set_sync_offset_ps(sync_offset_ps)
        self.set_input_cfd(*input_cfd_mV)
        self.set_input_offset_ps(input_offset_ps)
        self.set_histogram_length(histogram_length_code)
        self.set_binning(binning)
        self.set_offset_ns(offset_ns)
        self.set_stop_count(stop_count)
        return dict(self.settings)

    def resolution_ps(self) -> float:
        return float(self._call("HH_GetResolution"))

    # -- rates ----------------------------------------------------------------------------
    def rates(self) -> tuple[float, float, int]:
        """(sync rate Hz, count rate counts/s, warnings bitmask), once the rates are valid."""
        wait = self._settle_from + self.rate_settle_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        sync = self._call("HH_GetSyncRate")
        count = self._call("HH_GetCountRate", self.channel)
        warnings = self._call("HH_GetWarnings")     # after the rates, as the manual requires
        return float(sync), float(count), int(warnings)

    def warnings_text(self, warnings: int) -> str:
        return self._call("HH_GetWarningsText", int(warnings)) if warnings else ""

    # -- acquisition -----------------------------------------------------------------------
    def start(self, tacq_s: float) -> None:
        """Clear the histogram memory and start a measurement of ``tacq_s`` seconds; after a
        fault, stop (what a lost StartMeas started), clear and start again."""
        ms = self.check_tacq_s(tacq_s)

        def clear_and_start():
            self._call("HH_ClearHistMem")
            self._call("HH_StartMeas", ms)
        self.lib.retrying(clear_and_start, f"HH_StartMeas({self.devidx}, {ms})",
                          before_retry=self.stop)
        self._requested_s = ms / 1000.0

    def done(self) -> bool:
        return self._call("HH_CTCStatus") != 0

    def wait(self, timeout_s: float, stop: threading.Event | None = None) -> None:
        """Poll ``HH_CTCStatus`` until the measurement ends (``stop`` set: StopMeas, error)."""
        deadline = time.monotonic() + timeout_s
        stop = stop or threading.Event()
        while not self.done():
            if stop.is_set():
                self.stop()
                raise InstrumentError(self.instrument, "HH_CTCStatus", None, "acquisition stopped")
            if time.monotonic() > deadline:
                self.stop()
                raise InstrumentTimeout(self.instrument, "HH_CTCStatus", "0",
                                        f"acquisition not finished within {timeout_s:g} s")
            stop.wait(self.poll_interval_s)

    def stop(self) -> None:
        self._call("HH_StopMeas")

    def finish(self, rates: tuple[float, float, int]) -> TCSPCResult:
        """StopMeas, then read histogram, elapsed time, flags and resolution."""
        self._call("HH_StopMeas")
        n = self.settings["histogram_length"]
        counts = np.asarray(self._call("HH_GetHistogram", self.channel, 0))[:n].astype(np.uint32)
        elapsed_ms = self._call("HH_GetElapsedMeasTime")
        flags = self._call("HH_GetFlags")
        res = self.resolution_ps()
        t = self.settings["offset_ns"] + np.arange(n) * (res / 1000.0)
        return TCSPCResult(counts=counts, time_ns=t, resolution_ps=res,
                           acquisition_time_s=float(elapsed_ms) / 1000.0,
                           requested_time_s=self._requested_s, sync_rate_hz=rates[0],
                           count_rate_cps=rates[1], flags=int(flags), warnings=rates[2],
                           settings=dict(self.settings))

    def timeout_s(self, tacq_s: float, margin_s: float = 30.0) -> float:
        """A finite bound (wall s) on one acquisition, rate settling included."""
        return float(tacq_s) + self.rate_settle_s + margin_s

    def acquire(self, tacq_s: float, *, timeout_s: float | None = None,
                stop: threading.Event | None = None) -> TCSPCResult:
        """One complete acquisition; rates are read while it runs."""
        self.start(tacq_s)
        rates = self.rates()
        self.wait(self.timeout_s(tacq_s) if timeout_s is None else timeout_s, stop)
        return self.finish(rates)


def __getattr__(name: str):
    # The Ophyd device lives in .tcspc_device; still importable from here (PEP 562).
    if name in ("TCSPC", "connect_tcspc"):
        from . import tcspc_device
        return getattr(tcspc_device, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
