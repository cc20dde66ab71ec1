"""The 375 nm picosecond diode laser: PicoQuant Taiko library (``PDLM_*``) or PiLas (serial ASCII),
one Ophyd device for both.

Family chosen for the PicoQuant library: **Taiko PDL M1** (``PDLM_Lib``, ``PDLMUser.h``,
instruments.md §4.1): its repetition rate is set in Hz (``PDLM_SetFrequency``), the intensity in
per mille (``PDLM_SetPulsePowerPermille``) and the soft lock directly (``PDLM_SetSoftLock``),
which map one-to-one onto the device's signals (the Sepia II SLM takes a frequency *index*).
The library and its driver (:class:`LaserLib`, :class:`PdlmLaserDriver`, their retry
semantics) are in :mod:`.pdlm`, re-exported here. The serial alternative is
:class:`~.pilas.PiLasDriver` (re-exported here), opened by :func:`connect_pilas`.

:class:`PicosecondLaser` signals: ``repetition_rate_hz``, ``intensity_permille``, ``mode``
(``"pulsed"``/``"cw"``), ``wavelength_nm`` (config); ``soft_lock`` (True = locked, the default),
``locked`` (soft lock or key/interlock), ``emission`` (light leaves the head) and
``interlock_open`` (locked by the key switch / interlock, not by software: the Taiko's
``PDLM_GetSystemStatus`` keylock and on/off-button bits, so it stays True while a pause has
soft-locked the laser too; a driver without that status, e.g. the PiLas, reports "locked but
not soft-locked").

**Monitor.** :class:`PicosecondLaser` is a :class:`~.monitor.ConnectionMonitor`, like the QD
systems: ``start_monitor`` polls the lock state in the background (suspenders watch
``interlock_open``) and publishes ``connected`` (False after a round failed with a lost
connection, True after one succeeded) and ``reconnect_failed`` (down and the driver's
:class:`~.retry.RetryPolicy` has given up); it polls in the policy's ``no_backoff`` mode. A
failed round reports the laser locked (no emission). Both drivers run under a policy (Taiko:
the library's, :mod:`.pdlm`; PiLas: the command driver's, :mod:`.pilas`), so the monitor works
the same for either.

**Lock rule.** The laser is locked when the device is created and may be unlocked only by an
acquisition: ``stage()`` unlocks and ``unstage()`` / ``stop()`` lock again; ``soft_lock.put(False)``
outside that raises. Plans therefore unlock it by staging it for the run, e.g. listing it with
the detectors (``bp.count([tcspc, laser])``, whose ``stage_decorator`` stages at the start and
unstages in the run's finalize, also on error or abort) or ``bpp.stage_wrapper(plan,
[tcspc, laser])``; scripts use ``with laser.acquisition(): ...``.

**Repetition-rate rule.** With ``lifetime_ns`` set (the longest lifetime expected, ns), rates
above :func:`max_repetition_rate_hz` (``lifetime_periods`` = 5 lifetimes per laser period,
reference/timing.md) are refused, as are the head's own limits; errors name the parameter, the
value and the allowed range.
"""

from __future__ import annotations

import contextlib
import math

from ophyd import Component as Cpt
from ophyd import Signal

from .errors import check_range
from .monitor import ConnectionMonitor
from .pdlm import (LIBRARY_NAMES, MODES, PDLM_FUNCTIONS, PDLM_NOT_RETRIED, CtypesLaserBackend,
                   LaserLib, PdlmLaserDriver, SocketRpcLaserBackend, TranscriptLaserBackend)
from .pilas import PiLasDriver
from .retry import RetryPolicy
from .transports import SerialTransport

__all__ = ["PicosecondLaser", "connect_taiko", "connect_pilas", "max_repetition_rate_hz",
           "LIFETIME_PERIODS", "PiLasDriver",
           # the Taiko library and driver, from .pdlm
           "LaserLib", "PdlmLaserDriver", "CtypesLaserBackend", "SocketRpcLaserBackend",
           "TranscriptLaserBackend", "PDLM_FUNCTIONS", "PDLM_NOT_RETRIED", "LIBRARY_NAMES",
           "MODES"]

#: Default lifetimes per laser period for the repetition-rate rule (timing.md: 5-10).
LIFETIME_PERIODS = 5.0


def max_repetition_rate_hz(lifetime_ns: float, periods: float = LIFETIME_PERIODS) -> float:
    """Highest repetition rate (Hz) whose period holds ``periods`` lifetimes of ``lifetime_ns``."""
    tau = check_range("lifetime_ns", lifetime_ns, 1e-3, 1e9, "ns")
    n = check_range("lifetime_periods", periods, 1.0, 1000.0)
    return 1e9 / (n * tau)


class _Setting(Signal):
    """A laser setting: ``set``/``put`` validate through the device first, then send."""

    def __init__(self, *args, attr: str, **kwargs):
        self._attr = attr
        super().__init__(*args, **kwargs)

    def set(self, value, **kwargs):
        self.parent.check(self._attr, value)          # bad input fails here, nothing sent
        return super().set(value, **kwargs)

    def put(self, value, **kwargs):
        value = self.parent.check(self._attr, value)
        getattr(self.parent.driver, f"set_{self._attr}")(value)
        super().put(getattr(self.parent.driver, f"get_{self._attr}")(), **kwargs)

    def cache(self, value) -> None:
        super().put(value)


class _SoftLock(Signal):
    """True = locked. Locking is always allowed; unlocking only while staged (an acquisition)."""

    def put(self, value, **kwargs):
        laser = self.parent
        locked = bool(value)
        if not locked and not laser.acquiring:
            raise ValueError(f"soft_lock={value!r} is not allowed outside an acquisition "
                             "(allowed: True); plans unlock the laser by staging it")
        laser.driver.set_soft_lock(locked)
        super().put(locked, **kwargs)
        laser.update_lock_state()

    def cache(self, value) -> None:
        super().put(bool(value))


class _Lifetime(Signal):
    """Longest expected lifetime (ns; NaN = no rule); the current rate must satisfy it."""

    def put(self, value, **kwargs):
        laser = self.parent
        tau = float(value)
        if not math.isnan(tau):
            limit = max_repetition_rate_hz(tau, laser.lifetime_periods.get())
            rate = laser.repetition_rate_hz.get()
            if rate > limit:
                raise ValueError(f"repetition_rate_hz={rate!r} Hz is outside the allowed range "
                                 f"..{limit:.6g} Hz for lifetime_ns={tau!r} ns "
                                 f"({laser.lifetime_periods.get():g} lifetimes per period); "
                                 "lower the repetition rate first")
        super().put(tau, **kwargs)


class PicosecondLaser(ConnectionMonitor):
    """A ps diode laser (Taiko or PiLas driver); see the module docstring for the rules."""

    repetition_rate_hz = Cpt(_Setting, value=math.nan, attr="repetition_rate_hz", kind="config")
    intensity_permille = Cpt(_Setting, value=0, attr="intensity_permille", kind="config")
    mode = Cpt(_Setting, value="pulsed", attr="mode", kind="config")
    wavelength_nm = Cpt(Signal, value=math.nan, kind="config")
    lifetime_ns = Cpt(_Lifetime, value=math.nan, kind="config")
    lifetime_periods = Cpt(Signal, value=LIFETIME_PERIODS, kind="config")
    soft_lock = Cpt(_SoftLock, value=True, kind="normal")
    locked = Cpt(Signal, value=True, kind="normal")
    emission = Cpt(Signal, value=False, kind="normal")
    interlock_open = Cpt(Signal, value=False, kind="omitted")

    def __init__(self, *args, driver, **kwargs):
        self.driver = driver
        super().__init__(*args, **kwargs)
        self.acquiring = False
        self.driver.set_soft_lock(True)       # default: locked
        self.refresh()

    # -- validation ---------------------------------------------------------------------
    def max_repetition_rate_hz(self) -> float:
        """The head's limit, lowered by the lifetime rule when ``lifetime_ns`` is set."""
        high = self.driver.frequency_limits_hz[1]
        tau = self.lifetime_ns.get()
        if not math.isnan(tau):
            high = min(high, max_repetition_rate_hz(tau, self.lifetime_periods.get()))
        return high

    def check(self, attr: str, value):
        value = getattr(self.driver, f"check_{attr}")(value)
        if attr == "repetition_rate_hz":
            low, high = self.driver.frequency_limits_hz[0], self.max_repetition_rate_hz()
            if not value <= high:
                raise ValueError(f"repetition_rate_hz={value!r} Hz is outside the allowed range "
                                 f"{low:g}..{high:.6g} Hz (lifetime_ns={self.lifetime_ns.get()!r} ns"
                                 f" x {self.lifetime_periods.get():g} periods)")
        return value

    # -- state ----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read every setting and the lock state from the instrument."""
        d = self.driver
        self.repetition_rate_hz.cache(d.get_repetition_rate_hz())
        self.intensity_permille.cache(d.get_intensity_permille())
        self.mode.cache(d.get_mode())
        self.wavelength_nm.put(d.wavelength_nm)
        self.update_lock_state()

    def update_lock_state(self) -> None:
        """Publish soft lock, overall lock, emission and interlock (what the monitor polls)."""
        soft, locked = self.driver.get_soft_lock(), self.driver.get_locked()
        hardware = getattr(self.driver, "get_interlock_open", None)
        interlock = hardware() if hardware is not None else (locked and not soft)
        self.soft_lock.cache(soft)
        self.locked.put(locked)
        self.emission.put(not locked)
        self.interlock_open.put(bool(interlock))

    def _monitor_once(self) -> None:
        """One monitor round (:class:`~.monitor.ConnectionMonitor`): the lock state."""
        try:
            self.update_lock_state()
        except Exception:       # a failed poll reports locked
            self.locked.put(True)
            self.emission.put(False)
            raise

    # -- acquisitions ---------------------------------------------------------------------
    def stage(self):
        self.check("repetition_rate_hz", self.driver.get_repetition_rate_hz())
        staged = super().stage()
        self.acquiring = True
        try:
            self.soft_lock.put(False)
        except Exception:
            self.unstage()
            raise
        return staged

    def unstage(self):
        self.acquiring = False
        try:
            self.soft_lock.put(True)
        finally:
            unstaged = super().unstage()
        return unstaged

    def pause(self):
        """The RunEngine pauses (Ctrl-C, a suspender): light off until it resumes."""
        self.driver.set_soft_lock(True)
        self.soft_lock.cache(True)
        self.update_lock_state()

    def resume(self):
        """Back to what the plan had: unlocked again only inside an acquisition."""
        if self.acquiring:
            self.soft_lock.put(False)

    @contextlib.contextmanager
    def acquisition(self):
        """Unlocked inside the ``with`` block, locked again on exit (also on errors)."""
        self.stage()
        try:
            yield self
        finally:
            self.unstage()

    def stop(self, *, success: bool = False) -> None:
        try:
            self.acquiring = False
            self.soft_lock.put(True)
        finally:
            super().stop(success=success)

    def close(self) -> None:
        self.stop_monitor()
        try:
            self.driver.set_soft_lock(True)
        finally:
            self.driver.close()


def connect_taiko(host: str, port: int, *, name: str = "laser", usb_index: int = 0,
                  timeout_s: float = 5.0, retry: RetryPolicy | None = None) -> PicosecondLaser:
    """Connect to the laser simulator's PDLM RPC port and return a locked, ready
    :class:`PicosecondLaser`; on hardware use ``LaserLib(CtypesLaserBackend())``. ``retry``:
    the library's :class:`~.retry.RetryPolicy` (default ``RetryPolicy()``; semantics in
    :mod:`.pdlm`)."""
    lib = LaserLib(SocketRpcLaserBackend(host, port, name=name, timeout_s=timeout_s), name=name,
                   retry=RetryPolicy() if retry is None else retry)
    try:
        return PicosecondLaser(name=name, driver=PdlmLaserDriver(lib, usb_index=usb_index).open())
    except Exception:
        lib.close()
        raise


def connect_pilas(url: str, *, name: str = "laser", timeout_s: float = 2.0,
                  retry: RetryPolicy | None = None) -> PicosecondLaser:
    """Open a PiLas at ``url`` (``socket://127.0.0.1:PORT``, ``/dev/ttyUSB0``, ``COM3``; 19200 8N1,
    ``\\n`` both ways) and return a locked, ready :class:`PicosecondLaser`. ``timeout_s`` (s) bounds
    each reply; ``retry``: the driver's :class:`~.retry.RetryPolicy` (default ``RetryPolicy()``;
    semantics in :mod:`.pilas`)."""
    timeout = check_range("timeout_s", timeout_s, 0.01, 600.0, "s")
    transport = SerialTransport(url, name=name, baudrate=19200, write_eol="\n", read_eol="\n",
                                timeout_s=timeout)
    driver = PiLasDriver(transport, name=name, retry=RetryPolicy() if retry is None else retry)
    try:
        return PicosecondLaser(name=name, driver=driver.open())
    except Exception:
        transport.close()
        raise
