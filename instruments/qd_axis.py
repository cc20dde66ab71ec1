"""Quantum Design temperature and field as Ophyd positioners (shared by MPMS3 and PPMS).

``set()`` sends the command and returns a :class:`ophyd.status.MoveStatus` that a background
poller completes when the *instrument* reports done (MultiVu "Stable" / "Holding"), pushing
readback events on the way so progress bars and suspenders work. Timeouts are always finite.
``stop()`` really stops: it re-targets the current value (holds temperature or field).
"""

from __future__ import annotations

import logging
import threading
import time

from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import MoveStatus

from .errors import InstrumentError, InstrumentTimeout
from .retry import GarbledReply

log = logging.getLogger(__name__)

#: consecutive status polls of a move that may fail (each after the driver's own retries)
#: before the move fails: a connection that answers garbage for that long is not transient
MAX_FAILED_POLLS = 3


class QDMoveStatus(MoveStatus):
    """A move's status whose text names why a failed move failed: bluesky puts ``str`` of the
    failed status in the stop document's ``reason``, and ``MoveStatus(done=True, ...)`` alone
    does not say that the magnet quenched."""

    def __str__(self):
        text = super().__str__()
        exc = self.exception() if self.done else None
        return text if exc is None else f"{text}: {type(exc).__name__}: {exc}"

    __repr__ = __str__


class QDAxis(Device):
    """Base of the temperature and field positioners; the parent device owns the driver."""

    readback = Cpt(Signal, value=0.0, kind="hinted")
    setpoint = Cpt(Signal, value=0.0, kind="normal")
    state = Cpt(Signal, value="", kind="omitted")
    poll_interval_s = Cpt(Signal, value=0.1, kind="omitted")
    #: wall seconds a fault state may last before it fails the move: a fault suspender
    #: watching the monitor sets it, so that it can stop the move (and re-issue it after
    #: recovery) instead of the move failing the measurement first
    fault_grace_s = Cpt(Signal, value=0.0, kind="omitted")

    SUB_READBACK = "readback"
    _default_sub = SUB_READBACK
    egu = ""
    precision = 4
    done_states: frozenset = frozenset()
    fault_states: frozenset = frozenset()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.readback.name = self.name  # events say ``mpms3_temperature``, not ``..._readback``
        self._stop_event = threading.Event()
        self._moving = False

    # Subclasses provide ``_send(target)``, ``_query() -> (value, state)``,
    # ``_tolerance(target)`` and ``expected_duration_s(start, target)`` (instrument seconds).
    @property
    def driver(self):
        return self.parent.driver

    # -- positioner protocol -------------------------------------------------------------
    @property
    def position(self) -> float:
        return self.readback.get()

    @property
    def moving(self) -> bool:
        return self._moving

    def update(self) -> tuple[float, str]:
        """Query the instrument once and publish the reading (used by pollers and monitors)."""
        value, state = self._query()
        self.publish(value, state)
        return value, state

    def publish(self, value: float, state: str) -> None:
        """Publish a reading taken elsewhere (e.g. one GETDAT? serving several signals)."""
        self.state.put(state)
        self.readback.put(value)
        self._run_subs(sub_type=self.SUB_READBACK, value=value, timestamp=time.time())

    def _done_states_for_move(self) -> frozenset:
        """States that end the move being started (fixed at set() time)."""
        return self.done_states

    def set(self, value, *, timeout: float | None = None) -> MoveStatus:
        target = float(value)
        start = self.readback.get()
        self._send(target)  # validates (ValueError) before anything is sent
        self.setpoint.put(target)
        if timeout is None:
            timeout = 2.0 * self.expected_duration_s(start, target) + 600.0
        self._stop_event = stop = threading.Event()
        status = QDMoveStatus(self, target, timeout=timeout, settle_time=0)
        self._moving = True
        done_states = self._done_states_for_move()
        threading.Thread(target=self._poll, args=(status, target, stop, done_states),
                         daemon=True, name=f"{self.name}-poller").start()
        return status

    def _poll(self, status: MoveStatus, target: float, stop: threading.Event,
              done_states: frozenset) -> None:
        seen_moving = False
        fault_since = None
        failed_reads = 0
        try:
            while not status.done:
                if not stop.is_set():
                    try:
                        value, state = self.update()
                        failed_reads = 0
                    except (GarbledReply, InstrumentTimeout) as exc:
                        # the driver already retried; the move goes on in the instrument, so a
                        # few unreadable polls in a row (a burst of faults) do not end it
                        failed_reads += 1
                        if failed_reads > MAX_FAILED_POLLS:
                            raise
                        log.warning("%s: status poll %d/%d failed while moving to %s: %s",
                                    self.name, failed_reads, MAX_FAILED_POLLS, target, exc)
                        stop.wait(self.poll_interval_s.get())
                        continue
                # Checked after the reading too: the hold that stop() sends may already have
                # settled, and that must not pass for the end of the stopped move.
                if stop.is_set():
                    if getattr(stop, "success", False):   # a pause/suspension: re-issued later
                        status.set_finished()
                    else:
                        status.set_exception(InstrumentError(
                            self.parent.driver.instrument, None, None,
                            f"{self.name} move to {target} stopped"))
                    return
                if state in self.fault_states:
                    fault_since = time.monotonic() if fault_since is None else fault_since
                    if time.monotonic() - fault_since >= self.fault_grace_s.get():
                        status.set_exception(InstrumentError(
                            self.parent.driver.instrument, None, state,
                            f"{self.name} fault while moving to {target}"))
                        return
                    stop.wait(self.poll_interval_s.get())
                    continue
                fault_since = None
                if state in done_states:
                    # A 'Stable' read before MultiVu registered the command is stale: require that
                    # we saw it move, or that it is already at the target.
                    if seen_moving or abs(value - target) <= self._tolerance(target):
                        status.set_finished()
                        return
                else:
                    seen_moving = True
                stop.wait(self.poll_interval_s.get())
        except Exception as exc:  # connection faults end the move, never the poller silently
            if not status.done:
                status.set_exception(exc)
        finally:
            self._moving = False

    def signal_stop(self, success: bool) -> None:
        """End the pending move's status: finished for ``success`` (the RunEngine pausing for
        a suspender, which re-issues the move on resume), failed otherwise."""
        self._stop_event.success = bool(success)
        self._stop_event.set()

    def stop(self, *, success: bool = False) -> None:
        was_moving = self._moving
        self.signal_stop(success)
        if was_moving:
            try:
                value, _ = self._query()
                self._send(value)  # hold where it is
                self.setpoint.put(value)
                log.info("%s held at %s %s", self.name, value, self.egu)
            except Exception:
                log.exception("%s: could not hold on stop", self.name)
        super().stop(success=success)


class TemperatureAxis(QDAxis):
    """Sample temperature (K). Rate and approach are configuration."""

    rate_K_per_min = Cpt(Signal, value=10.0, kind="config")
    approach = Cpt(Signal, value="fast_settle", kind="config")
    egu = "K"
    done_states = frozenset({"Stable"})
    fault_states = frozenset({"Impedance Control Error", "General Failure"})

    def _send(self, target):
        self.driver.set_temperature(target, self.rate_K_per_min.get(), self.approach.get())

    def _query(self):
        return self.driver.get_temperature()

    def _tolerance(self, target):
        return max(0.05, 0.005 * abs(target))

    def expected_duration_s(self, start, target):
        return abs(target - start) / max(self.rate_K_per_min.get(), 1e-3) * 60.0 + 1800.0


class FieldAxis(QDAxis):
    """Magnetic field (Oe). Rate, approach and magnet mode are configuration.

    ``done_states_by_mode`` (magnet mode -> states) lets a system whose magnet reports a
    different final state per mode (PPMS: persistent stable / driven stable) finish a move
    only in the state the configured mode aims at; modes not listed use ``done_states``.
    """

    rate_Oe_per_s = Cpt(Signal, value=100.0, kind="config")
    approach = Cpt(Signal, value="linear", kind="config")
    magnet_mode = Cpt(Signal, value="driven", kind="config")
    egu = "Oe"
    precision = 2
    done_states = frozenset({"Stable", "Holding (driven)", "Holding"})
    fault_states = frozenset({"Current Error", "Switch Error", "Quenching", "Charging Error",
                              "PSU Error", "General Failure"})
    done_states_by_mode: dict = {}

    def _done_states_for_move(self):
        return self.done_states_by_mode.get(self.magnet_mode.get(), self.done_states)

    def _send(self, target):
        self.driver.set_field(target, self.rate_Oe_per_s.get(), self.approach.get(),
                              self.magnet_mode.get())

    def _query(self):
        return self.driver.get_field()

    def _tolerance(self, target):
        return max(1.0, 1e-4 * abs(target))

    def expected_duration_s(self, start, target):
        return abs(target - start) / max(self.rate_Oe_per_s.get(), 1e-3) + 300.0
