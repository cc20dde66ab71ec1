"""Simulated HydraHarp 400 (HHLib 3.0 semantics) served over newline-JSON RPC.

PicoQuant exposes no network protocol, so the simulator implements the *library*: one method
per ``HH_*`` C function returning ``(return code, [pointer outputs])``, served by
:class:`.rpc_socket.RpcServer` (instruments.md §7 item 3). Behaviour (§3.1):

- ``HH_OpenDevice`` succeeds for device index 0 only (others: ``HH_ERROR_DEVICE_OPEN_FAIL``);
  other calls on a device not open return ``HH_ERROR_DEVICE_NOT_OPEN``, before
  ``HH_Initialize`` ``HH_ERROR_NOT_INITIALIZED``. ``HH_Initialize`` accepts modes 0 (histogram),
  2 (T2) and 3 (T3), anything else ``HH_ERROR_INVALID_MODE``; only histogram acquisitions are
  simulated (StartMeas/GetHistogram in T2/T3 return ``HH_ERROR_INVALID_MODE``). Out-of-range
  arguments return ``HH_ERROR_INVALID_ARGUMENT`` (limits of ``hhdefin.h``; sync divider 1, 2,
  4, 8 or 16).
- Channel width = 1 ps base resolution × 2**binning (binning 0..25), histogram length
  1024·2**lencode, offset in ns. ``HH_GetHistogram`` always fills 65536 ``uint32``.
- ``HH_StartMeas(tacq)`` runs for ``tacq`` ms of *instrument* time on the
  :class:`.clock.VirtualClock` (which keeps running meanwhile); ``HH_CTCStatus`` is 0 until
  then, 1 after. ``HH_StopMeas`` ends it early. The histogram memory accumulates until
  ``HH_ClearHistMem`` (or ``clear=1`` in ``HH_GetHistogram``).
- Counts: Poisson samples of ``rate × elapsed`` with a generator seeded by
  ``(seed, measurement number)``: the same seed and call sequence give the same histograms,
  whatever the wall-clock scheduling. The light conditions at ``HH_StartMeas`` hold for the
  whole measurement.
- Overflow (``HH_SetStopOverflow(dev, 1, stopcount)``): the measurement ends when the fullest
  channel reaches ``stopcount`` (at ``stopcount / its expected rate``); that channel holds
  exactly ``stopcount``, others are clipped to it, and ``FLAG_OVERFLOW`` is set. With
  ``stop_ovfl = 0`` channels clip at 2**32-1 (the flag is set if one does). Default after
  Initialize: stop at 2**32-1.
- Rates: ``HH_GetSyncRate`` / ``HH_GetCountRate`` return 0 until 400 ms of instrument time
  after ``HH_Initialize`` or ``HH_SetSyncDiv`` (the clock keeps running until then), then the
  exact expected rates (no counter noise, so results never depend on how often they are read).
  The sync rate is the laser's repetition rate (undivided) in pulsed mode, also while the laser
  is locked (simulator decision: the driver's oscillator and sync output keep running), 0 in CW
  or when the sync CFD level exceeds the sync pulse (:data:`SYNC_PULSE_MV`); the count rate on input 0 is
  every detected photon per second (only the detector's dark counts while the laser is
  locked), 0 when the input CFD level exceeds the detector pulse (:data:`DETECTOR_PULSE_MV`). Inputs other than 0 see nothing.
- Warnings (simulator thresholds): SYNC_RATE_ZERO, SYNC_RATE_TOO_HIGH (divided sync > 12.5 MHz),
  INPT_RATE_ZERO, INPT_RATE_TOO_HIGH (> 12.5 Mcps), INPT_RATE_RATIO (count rate > 5 % of the
  sync rate: pile-up, reference/timing.md), TIME_SPAN_TOO_SMALL (histogram window shorter than
  the divided sync period), OFFSET_UNNECESSARY (offset > 0 although the window without it
  covers the period).

This module is the HHLib call surface (return codes, settings, light, rates, warnings); the
run timing, counts, overflow and histogram memory are the acquisition engine,
:class:`.harp_acquisition.HistogramAcquisition` (:attr:`HydraHarpSimulator.acq`).

Light: a ``signal_source(bin_edges_ns, laser)`` (:mod:`.tcspc_light`) gives the detected
photons per second versus time after a laser pulse; it is called only while the laser emits.
Photons arrive ``sync_delay_ns + input offset − sync offset`` after the sync (cable delays);
:func:`.tcspc_light.channel_rates` maps them onto the channels (sync divider included).
"""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import Callable

import numpy as np

from spinlight.instruments import picoquant_defs as hh

from .clock import VirtualClock
from .harp_acquisition import HistogramAcquisition
from .laser_sim import LaserSnapshot, LaserState
from .rpc_socket import RpcServer
from .tcspc_light import SignalSource, channel_rates, total_rate

BASE_RESOLUTION_PS = 1.0
BINSTEPS = 26
N_CHANNELS = 2
RATE_SETTLE_S = 0.4          # count rates valid this long (instrument s) after SetSyncDiv
SYNC_PULSE_MV = 800          # simulated sync pulse amplitude (CFD levels above it: no sync)
DETECTOR_PULSE_MV = 400      # simulated detector pulse amplitude
MAX_SYNC_RATE_HZ = 12.5e6    # divided sync rate above this: WARNING_SYNC_RATE_TOO_HIGH
MAX_COUNT_RATE_CPS = 12.5e6
PILE_UP_RATIO = 0.05

_E = hh.HH_ERROR


class HydraHarpSimulator:
    """One HydraHarp 400 (device index 0) with its detector on input 0."""

    def __init__(self, clock: VirtualClock, laser: LaserState, signal_source: SignalSource, *,
                 seed: int = 0, serial: str = "1043210", sync_delay_ns: float = 5.0):
        self.clock, self.laser, self.signal_source = clock, laser, signal_source
        self.seed, self.serial, self.sync_delay_ns = int(seed), serial, float(sync_delay_ns)
        self.lock = threading.RLock()
        self.opened = False
        self.mode: int | None = None
        self.server: RpcServer | None = None
        self.acq = HistogramAcquisition(clock, self.seed, N_CHANNELS)
        self._rates_valid_at = -math.inf
        self._reset()
        clock.add_activity(self._busy_until)

    def _reset(self) -> None:
        self.sync_div, self.binning, self.offset_ns, self.lencode = 1, 0, 0, hh.HH_MAXLENCODE
        self.sync_cfd, self.sync_offset_ps = (50, 10), 0
        self.input_cfd = [(50, 10)] * N_CHANNELS
        self.input_offset_ps = [0] * N_CHANNELS
        self.acq.reset()

    # -- server and clock ------------------------------------------------------------------
    def start_server(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        self.server = RpcServer(self, prefix="HH_", host=host, port=port, name="hydraharp-sim")
        return self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def _busy_until(self) -> float:
        # must not call clock.now(): attribute reads only
        return max(self.acq.busy_until(), self._rates_valid_at)

    # -- light model -------------------------------------------------------------------------
    @property
    def resolution_ps(self) -> float:
        return BASE_RESOLUTION_PS * 2 ** self.binning

    @property
    def histogram_length(self) -> int:
        return 1024 << self.lencode

    def _sync_rate(self, s: LaserSnapshot) -> float:
        return s.repetition_rate_hz if s.mode == "pulsed" and self.sync_cfd[0] <= SYNC_PULSE_MV else 0.0

    def _detector_seen(self) -> bool:
        return self.input_cfd[0][0] <= DETECTOR_PULSE_MV

    @staticmethod
    def _dark_if_locked(s: LaserSnapshot) -> LaserSnapshot:
        """A locked laser sends no light; the detector's dark counts remain (a source scales
        its light with the intensity, so intensity 0 leaves only them)."""
        return s if s.emitting else dataclasses.replace(s, intensity_permille=0)

    def light(self, s: LaserSnapshot) -> np.ndarray:
        """Expected counts/s per histogram channel of input 0 under laser state ``s``."""
        n = self.histogram_length
        if not self._detector_seen() or self._sync_rate(s) == 0.0:   # no sync starts the clock
            return np.zeros(n)
        s = self._dark_if_locked(s)
        shift = self.sync_delay_ns + (self.input_offset_ps[0] - self.sync_offset_ps) / 1000.0
        return channel_rates(self.signal_source, s, n_channels=n,
                             resolution_ns=self.resolution_ps / 1000.0, offset_ns=self.offset_ns,
                             sync_divider=self.sync_div, shift_ns=shift)[0]

    # -- call checks ---------------------------------------------------------------------------
    def _guard(self, dev: int, *, init: bool = True) -> int:
        if dev != 0 or not self.opened:
            return _E["DEVICE_NOT_OPEN"]
        if init and self.mode is None:
            return _E["NOT_INITIALIZED"]
        self.acq.settle()
        return 0

    def _guard_histogram_mode(self, dev: int) -> int:
        return self._guard(dev) or (0 if self.mode == hh.HH_MODE_HIST else _E["INVALID_MODE"])

    def _set(self, dev: int, ok: bool, apply: Callable[[], None]):
        with self.lock:
            err = self._guard(dev) or (0 if ok else _E["INVALID_ARGUMENT"])
            if not err:
                apply()
            return err, []

    def _get(self, dev: int, value_fn: Callable[[], list]):
        with self.lock:
            err = self._guard(dev)
            return (err, []) if err else (0, value_fn())

    def _rates(self) -> tuple[int, int]:
        if self.clock.now() < self._rates_valid_at:
            return 0, 0
        s = self.laser.snapshot()
        count = total_rate(self.signal_source, self._dark_if_locked(s)) if self._detector_seen() else 0.0
        return int(round(self._sync_rate(s))), int(round(count))

    def _warnings(self) -> int:
        sync, count = self._rates()
        period_ns = 1e9 / sync if sync else math.inf
        span_ns = self.histogram_length * self.resolution_ps / 1000.0
        w = hh.HH_WARNING
        conditions = {
            "SYNC_RATE_ZERO": sync == 0,
            "SYNC_RATE_TOO_HIGH": sync / self.sync_div > MAX_SYNC_RATE_HZ,
            "INPT_RATE_ZERO": count == 0,
            "INPT_RATE_TOO_HIGH": count > MAX_COUNT_RATE_CPS,
            "INPT_RATE_RATIO": sync > 0 and count > PILE_UP_RATIO * sync,
            "TIME_SPAN_TOO_SMALL": sync > 0 and self.offset_ns + span_ns < period_ns * self.sync_div,
            "OFFSET_UNNECESSARY": sync > 0 and self.offset_ns > 0 and span_ns >= period_ns * self.sync_div,
        }
        return sum(w[k] for k, on in conditions.items() if on)

    # -- HHLib functions ------------------------------------------------------------------------
    def HH_GetLibraryVersion(self):
        return 0, [hh.HH_LIB_VERSION]

    def HH_GetErrorString(self, code):
        name = hh.HH_ERRORS.get(int(code))
        return (0, [name]) if name else (_E["INVALID_ARGUMENT"], [""])

    def HH_OpenDevice(self, dev):
        with self.lock:
            if dev != 0:
                return _E["DEVICE_OPEN_FAIL"], [""]
            if self.opened:
                return _E["DEVICE_BUSY"], [""]
            self.opened = True
            return 0, [self.serial]

    def HH_CloseDevice(self, dev):
        with self.lock:
            if dev == 0:
                self.opened, self.mode = False, None
                self.acq.abort()
            return 0, []

    def HH_Initialize(self, dev, mode, refsource):
        with self.lock:
            err = self._guard(dev, init=False)
            if err:
                return err, []
            if mode not in (hh.HH_MODE_HIST, hh.HH_MODE_T2, hh.HH_MODE_T3):
                return _E["INVALID_MODE"], []
            if refsource not in (hh.HH_REFSRC_INTERNAL, hh.HH_REFSRC_EXTERNAL):
                return _E["INVALID_ARGUMENT"], []
            self._reset()
            self.mode = int(mode)
            self._rates_valid_at = self.clock.now() + RATE_SETTLE_S
        self.clock.notify()
        return 0, []

    def HH_GetHardwareInfo(self, dev):
        return self._get(dev, lambda: ["HydraHarp 400", "930003", "2.0"])

    def HH_GetSerialNumber(self, dev):
        return self._get(dev, lambda: [self.serial])

    def HH_GetBaseResolution(self, dev):
        return self._get(dev, lambda: [BASE_RESOLUTION_PS, BINSTEPS])

    def HH_GetNumOfInputChannels(self, dev):
        return self._get(dev, lambda: [N_CHANNELS])

    def HH_Calibrate(self, dev):
        return self._set(dev, True, lambda: None)

    def HH_SetSyncDiv(self, dev, div):
        def apply():
            self.sync_div = int(div)
            self._rates_valid_at = self.clock.now() + RATE_SETTLE_S
        out = self._set(dev, div in hh.HH_SYNC_DIVIDERS, apply)
        self.clock.notify()
        return out

    def _cfd_ok(self, level, zc) -> bool:
        return hh.HH_DISCRMIN <= level <= hh.HH_DISCRMAX and hh.HH_ZCMIN <= zc <= hh.HH_ZCMAX

    def HH_SetSyncCFD(self, dev, level, zc):
        return self._set(dev, self._cfd_ok(level, zc), lambda: setattr(self, "sync_cfd", (level, zc)))

    def HH_SetSyncChannelOffset(self, dev, ps):
        ok = hh.HH_CHANOFFSMIN <= ps <= hh.HH_CHANOFFSMAX
        return self._set(dev, ok, lambda: setattr(self, "sync_offset_ps", int(ps)))

    def HH_SetInputCFD(self, dev, ch, level, zc):
        ok = 0 <= ch < N_CHANNELS and self._cfd_ok(level, zc)
        return self._set(dev, ok, lambda: self.input_cfd.__setitem__(ch, (level, zc)))

    def HH_SetInputChannelOffset(self, dev, ch, ps):
        ok = 0 <= ch < N_CHANNELS and hh.HH_CHANOFFSMIN <= ps <= hh.HH_CHANOFFSMAX
        return self._set(dev, ok, lambda: self.input_offset_ps.__setitem__(ch, int(ps)))

    def HH_SetStopOverflow(self, dev, stop_ovfl, stopcount):
        ok = stop_ovfl in (0, 1) and hh.HH_STOPCNTMIN <= stopcount <= hh.HH_STOPCNTMAX

        def apply():
            self.acq.stop_ovfl, self.acq.stopcount = int(stop_ovfl), int(stopcount)
        return self._set(dev, ok, apply)

    def HH_SetBinning(self, dev, binning):
        return self._set(dev, 0 <= binning < BINSTEPS, lambda: setattr(self, "binning", int(binning)))

    def HH_SetOffset(self, dev, ns):
        ok = hh.HH_OFFSETMIN <= ns <= hh.HH_OFFSETMAX
        return self._set(dev, ok, lambda: setattr(self, "offset_ns", int(ns)))

    def HH_SetHistoLen(self, dev, lencode):
        with self.lock:
            err = self._guard(dev) or (0 if 0 <= lencode <= hh.HH_MAXLENCODE else _E["INVALID_ARGUMENT"])
            if err:
                return err, []
            self.lencode = int(lencode)
            return 0, [self.histogram_length]

    def HH_ClearHistMem(self, dev):
        return self._set(dev, True, self.acq.clear)

    def HH_StartMeas(self, dev, tacq_ms):
        with self.lock:
            err = self._guard_histogram_mode(dev)
            if err:
                return err, []
            if not hh.HH_ACQTMIN <= tacq_ms <= hh.HH_ACQTMAX:
                return _E["INVALID_ARGUMENT"], []
            self.acq.start(self.light(self.laser.snapshot()), tacq_ms / 1000.0)
        self.clock.notify()
        return 0, []

    def HH_StopMeas(self, dev):
        with self.lock:
            err = self._guard(dev)
            if not err:
                self.acq.stop()
        self.clock.notify()
        return err, []

    def HH_CTCStatus(self, dev):
        return self._get(dev, lambda: [int(not self.acq.running)])

    def HH_GetHistogram(self, dev, ch, clear):
        with self.lock:
            err = self._guard_histogram_mode(dev)
            if err:
                return err, []
            if not 0 <= ch < N_CHANNELS or clear not in (0, 1):
                return _E["INVALID_ARGUMENT"], []
            return 0, [self.acq.histogram(ch, clear)]

    def HH_GetResolution(self, dev):
        return self._get(dev, lambda: [self.resolution_ps])

    def HH_GetSyncRate(self, dev):
        return self._get(dev, lambda: [self._rates()[0]])

    def HH_GetCountRate(self, dev, ch):
        if not 0 <= ch < N_CHANNELS:
            return _E["INVALID_ARGUMENT"], []
        return self._get(dev, lambda: [self._rates()[1] if ch == 0 else 0])

    def HH_GetFlags(self, dev):
        return self._get(dev, lambda: [hh.HH_FLAG_OVERFLOW * self.acq.overflow
                                       + hh.HH_FLAG_ACTIVE * self.acq.running])

    def HH_GetElapsedMeasTime(self, dev):
        return self._get(dev, lambda: [self.acq.elapsed_ms()])

    def HH_GetWarnings(self, dev):
        return self._get(dev, lambda: [self._warnings()])

    def HH_GetWarningsText(self, dev, warnings):
        names = [name for bit, name in hh.HH_WARNINGS.items() if warnings & bit]
        return self._get(dev, lambda: ["\n".join(names)])
