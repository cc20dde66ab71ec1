"""Connection monitors: a background thread that polls a device so suspenders can subscribe to
its state — pyvisa, MultiVu, serial and vendor-library devices produce no events unless someone
polls.

:class:`ConnectionMonitor` is the base of every monitored device (the QD systems through
:class:`MonitorMixin`, the picosecond laser): the poll loop and the connection bookkeeping.
Its subclass has a ``driver`` with ``retry`` (a :class:`~.retry.RetryPolicy`) and ``transport``
(the connection that policy reconnects) and says what one round is (:meth:`_monitor_once`).
Signals:

- ``connected`` (bool): False after a monitoring round failed with a lost connection, True
  again after a round succeeded (after a reconnection). The monitor polls under the driver's
  :class:`~.retry.RetryPolicy` in :meth:`~.retry.RetryPolicy.no_backoff` mode: it takes part
  in the outage's reconnection schedule without ever sleeping.
- ``reconnect_failed`` (bool): the connection is down *and* the policy has given up (its last
  reconnection attempt failed, or it never reconnects); published before ``connected``.
- ``monitor_interval_s`` (s): the wait between rounds.

:class:`MonitorMixin` adds the interlock signals of a QD system with ``temperature`` and
``field`` axes (besides its own, e.g. the PPMS ``helium_level``):

- ``magnet_fault`` (bool): the magnet state, from any reading (monitor or a moving field's
  poller), is one of the field axis' ``fault_states`` (quench, current error, ...).
- ``temperature_deviation_K`` (K): ``|T - setpoint|`` once the temperature has been reported
  stable within the axis tolerance of the setpoint this client last sent; 0 before that (no
  setpoint sent yet, or approaching a new one: ramps and sweeps never count as deviations).
"""

from __future__ import annotations

import logging
import threading

from ophyd import Component as Cpt
from ophyd import Device, Signal

from .errors import ConnectionLost, check_range

log = logging.getLogger(__name__)

#: Allowed monitor intervals (s): each round is at least one instrument query.
MONITOR_INTERVAL_LIMITS_S = (0.01, 3600.0)


class ConnectionMonitor(Device):
    """Base of a polled device (see the module docstring): ``start_monitor`` /
    ``stop_monitor`` / ``poll_once`` / ``close``; subclasses implement :meth:`_monitor_once`
    (default ``refresh()``)."""

    monitor_interval_s = Cpt(Signal, value=1.0, kind="omitted")
    connected = Cpt(Signal, value=True, kind="omitted")
    reconnect_failed = Cpt(Signal, value=False, kind="omitted")

    _monitor: threading.Thread | None = None
    _monitor_stop: threading.Event | None = None

    def _monitor_once(self) -> None:
        """One monitoring round: query the instrument, publish what it said."""
        self.refresh()

    @property
    def monitoring(self) -> bool:
        return self._monitor is not None and self._monitor.is_alive()

    def poll_once(self) -> bool:
        """One monitoring round; publishes ``reconnect_failed`` and ``connected``. Returns
        whether the instrument answered (other errors are logged, the state kept)."""
        policy = self.driver.retry
        try:
            with policy.no_backoff():
                self._monitor_once()
            ok = True
        except ConnectionLost as exc:   # reported on the fault hook by the retry policy
            log.debug("%s monitor: %s", self.name, exc)
            ok = False
        except Exception:  # noqa: BLE001 - a failed poll must not end the monitor
            log.warning("%s monitor: query failed", self.name, exc_info=True)
            return self.connected.get()
        gave_up = policy.reconnect_attempts == 0 or policy.gave_up(self.driver.transport)
        self.reconnect_failed.put(not ok and gave_up)
        self.connected.put(ok)
        return ok

    def start_monitor(self, interval_s: float | None = None) -> None:
        """Poll every ``interval_s`` (wall s; ``None``: ``monitor_interval_s``) in a background
        thread, a first round at once. Already running: only the interval changes (from the
        next wait on)."""
        if interval_s is not None:
            self.monitor_interval_s.put(check_range("interval_s", interval_s,
                                                    *MONITOR_INTERVAL_LIMITS_S, "s"))
        if self.monitoring:
            return
        self._monitor_stop = threading.Event()
        self._monitor = threading.Thread(target=self._monitor_loop, args=(self._monitor_stop,),
                                         daemon=True, name=f"{self.name}-monitor")
        self._monitor.start()

    def stop_monitor(self) -> None:
        """End the monitor and wait for a round in progress (at most 5 s)."""
        if self._monitor_stop is not None:
            self._monitor_stop.set()
        if self._monitor is not None and self._monitor is not threading.current_thread():
            self._monitor.join(timeout=5.0)
        self._monitor = None

    def _monitor_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.poll_once()
            stop.wait(self.monitor_interval_s.get())

    def close(self) -> None:
        self.stop_monitor()
        self.driver.close()


class MonitorMixin(ConnectionMonitor):
    """Base of a QD system Device with ``temperature`` and ``field`` axes, a ``driver`` and a
    ``refresh()``: one monitoring round is :meth:`_monitor_once` (default ``refresh()``;
    override to skip axes that are moving); adds ``magnet_fault`` and
    ``temperature_deviation_K``."""

    magnet_fault = Cpt(Signal, value=False, kind="omitted")
    temperature_deviation_K = Cpt(Signal, value=0.0, kind="omitted")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._deviation_lock = threading.Lock()
        self._t_setpoint: float | None = None
        self._t_reached = False
        self.temperature.setpoint.subscribe(self._on_temperature_setpoint, run=False)
        self.temperature.readback.subscribe(self._on_temperature, run=False)
        self.field.state.subscribe(self._on_magnet_state, run=False)

    # -- derived interlock signals ---------------------------------------------------------
    def _on_temperature_setpoint(self, value, **kwargs) -> None:
        with self._deviation_lock:
            self._t_setpoint, self._t_reached = float(value), False
        self._on_temperature()

    def _on_temperature(self, *args, **kwargs) -> None:
        axis = self.temperature
        value, state = axis.readback.get(), axis.state.get()
        with self._deviation_lock:
            sp = self._t_setpoint
            if sp is not None and state in axis.done_states and abs(value - sp) <= axis._tolerance(sp):
                self._t_reached = True
            deviation = abs(value - sp) if sp is not None and self._t_reached else 0.0
        self.temperature_deviation_K.put(deviation)

    def _on_magnet_state(self, value, **kwargs) -> None:
        self.magnet_fault.put(value in self.field.fault_states)
