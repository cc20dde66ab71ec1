"""The interlock monitor shared by the QD systems: a background thread that keeps the state
signals (temperature / magnet state, helium level ...) current so suspenders can subscribe to
them — pyvisa and MultiVu devices produce no events unless someone polls."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class MonitorMixin:
    """For an Ophyd ``Device`` with a ``monitor_interval_s`` signal, a ``driver`` and a
    ``refresh()``: one monitoring round is :meth:`_monitor_once` (default ``refresh()``;
    override to skip axes that are moving); ``start_monitor``/``stop_monitor``/``close``."""

    _monitor: threading.Thread | None = None
    _monitor_stop: threading.Event | None = None

    def _monitor_once(self) -> None:
        self.refresh()

    def start_monitor(self, interval_s: float | None = None) -> None:
        if interval_s is not None:
            if not interval_s > 0:
                raise ValueError(f"interval_s={interval_s!r} must be > 0 s")
            self.monitor_interval_s.put(float(interval_s))
        if self._monitor is not None and self._monitor.is_alive():
            return
        self._monitor_stop = threading.Event()
        self._monitor = threading.Thread(target=self._monitor_loop, args=(self._monitor_stop,),
                                         daemon=True, name=f"{self.name}-monitor")
        self._monitor.start()

    def stop_monitor(self) -> None:
        if self._monitor_stop is not None:
            self._monitor_stop.set()
        if self._monitor is not None:
            self._monitor.join(timeout=5.0)
        self._monitor = None

    def _monitor_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self._monitor_once()
            except Exception:  # noqa: BLE001 - a failed poll must not end the monitor
                log.warning("%s monitor: query failed", self.name, exc_info=True)
            stop.wait(self.monitor_interval_s.get())

    def close(self) -> None:
        self.stop_monitor()
        self.driver.close()
