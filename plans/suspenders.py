"""Campaign suspenders: pause a run while the lab is not fit to measure, resume when it is.

:func:`campaign_suspenders` builds bluesky suspenders for the devices it is given, by what
they expose (the QD systems' monitor signals, :mod:`spinlight.instruments.monitor`; the
laser's ``interlock_open``):

========================  =================================================================
helium (PPMS)             ``SuspendFloor(helium_level)``: below ``helium_min_percent`` it
                          suspends, it resumes once refilled above ``helium_resume_percent``.
                          The MPMS3 has no helium query (MultiPyVu 3.8.0), so none there.
temperature               ``SuspendCeil(temperature_deviation_K, temperature_band_K)``: the
                          deviation counts only after the temperature was reported stable at
                          the setpoint sent, so ramps and sweeps never trip it.
magnet (quench, current   ``SuspendBoolHigh(magnet_fault)``. A QD quench latches until the
error)                    client sets a field, so the suspender's ``pre_plan`` re-applies the
                          field setpoint in force when it tripped and waits for it (that
                          clears the fault); the run resumes ``resume_wait_s`` later. A second
                          fault during that ramp fails the run (its finalize makes it safe).
laser interlock           ``SuspendBoolHigh(interlock_open)``; the RunEngine's pause
                          soft-locks the laser, its resume unlocks it inside an acquisition.
lost connection           while ``connected`` is False; the driver's RetryPolicy reconnects
                          with back-off. When it gives up (``reconnect_failed``) the suspender
                          lets the run continue, so the next command raises ConnectionLost:
                          the run fails naming the instrument and its finalize tries the
                          safe state; the points measured before stay in the run.
========================  =================================================================

Every suspender waits ``resume_wait_s`` after its condition clears, and its
``tripped_message`` says what happened. They watch *polled* signals: the QD monitors must be
running (``start_monitor``; checked here) and so must the laser's lock monitor.

**No point stored twice.** A suspension rewinds to the last checkpoint and replays what came
after it; if a point's event was already saved there, it would be stored again. :func:`install`
therefore also adds :func:`checkpoint_after_save` to the RunEngine's preprocessors: a checkpoint
right after every ``save`` (and ``open_run``/``close_run``), so a replay re-measures only the
point that was interrupted, never one already stored. A suspender's request reaches the
RunEngine a few messages after it tripped, so it can land between a ``save`` and that next
checkpoint message; :func:`install` therefore also makes ``save`` itself take the checkpoint in
the same step (:func:`_saving_checkpoint`), leaving no such window.

Moves: a QD temperature or field move interrupted by a suspension is held and re-issued on
resume (``QDAxis`` finishes its move on ``stop(success=True)``), and a ``.dat``-row detector
ends its pending trigger on ``pause()``. A quench *during* a field ramp puts the magnet in a
fault state; :class:`SuspendOnMagnetFault` gives the field axis a grace period
(``fault_grace_s``, a few monitor polls) so that the suspension, not the fault, ends the move.
Without that suspender a fault state fails the move at once.
"""

from __future__ import annotations

import logging
import math

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.suspenders import SuspendBoolHigh, SuspendBoolLow, SuspendCeil, SuspendFloor
from bluesky.utils import Msg, single_gen

from spinlight.instruments.errors import check_range

log = logging.getLogger(__name__)

#: monitor polls a field move waits on a magnet fault for :class:`SuspendOnMagnetFault`
FAULT_GRACE_MONITOR_POLLS = 3

#: plan messages after which :func:`checkpoint_after_save` inserts a checkpoint
_CHECKPOINT_AFTER = ("save", "open_run", "close_run")


class SuspendOnMagnetFault(SuspendBoolHigh):
    """Suspend on ``system.magnet_fault``; the pre_plan re-applies the field setpoint that was
    in force when the fault appeared (captured then, before the RunEngine's stop() re-targets
    the field) and waits for it: a latched quench clears only when a field is set."""

    def __init__(self, system, **kwargs):
        self.system = system
        self.target_Oe = math.nan

        def reapply_field():          # a plain function: a bound method would recurse in repr
            return self._recover()

        super().__init__(system.magnet_fault, pre_plan=reapply_field, **kwargs)
        # the field move must outlast a fault long enough for the monitor to see it and for
        # this suspender to stop the move (success) rather than the move failing the run
        grace = FAULT_GRACE_MONITOR_POLLS * float(system.monitor_interval_s.get()) + 1.0
        self.previous_grace_s = system.field.fault_grace_s.get()   # restored by remove()
        if self.previous_grace_s < grace:
            system.field.fault_grace_s.put(grace)

    def _should_suspend(self, value):
        trip = bool(value)
        if trip and not self.tripped:
            self.target_Oe = float(self.system.field.setpoint.get())
        return trip

    def _target(self) -> float:
        target = self.target_Oe
        return float(self.system.field.setpoint.get()) if math.isnan(target) else target

    def _recover(self):
        yield from bps.mv(self.system.field, self._target())

    def get_futures(self):
        """Called by the RunEngine before a plan starts. A fault that latched before (a quench
        between measurements, or one left by a failed run) would be waited for there without
        the pre_plan, i.e. forever: so re-apply the field here first (blocking; an error fails
        the plan's start), then wait as usual for the fault to clear plus ``sleep``."""
        if self.tripped and self.system.magnet_fault.get():
            target = self._target()
            log.warning("%s: magnet fault before the run; re-applying %g Oe", self.system.name,
                        target)
            self.system.field.set(target).wait()
        return super().get_futures()


class SuspendWhileDisconnected(SuspendBoolLow):
    """Suspend while ``system.connected`` is False, unless the retry policy gave up
    (``system.reconnect_failed``): then the run goes on and fails at its next command.

    When the RunEngine cannot be reached (its thread is inside a command to this instrument,
    riding the outage out on the driver's own back-off), the outage is left to that command:
    no suspension is requested until the link has been up again, so a rewind never follows a
    recovery that already happened."""

    def __init__(self, system, **kwargs):
        self._failed = system.reconnect_failed
        self._left_to_command = False
        super().__init__(system.connected, **kwargs)

    def _should_suspend(self, value):
        return not value and not self._failed.get()

    def _should_resume(self, value):
        return bool(value) or bool(self._failed.get())

    def __call__(self, value, **kwargs):
        if value:
            self._left_to_command = False
        elif self._left_to_command:
            return
        try:
            super().__call__(value, **kwargs)
        except RuntimeError:
            # bluesky could not reach the RunEngine's loop within 0.1 s
            log.debug("%s: RunEngine busy in a command; the outage is left to it", self._sig.name)
            self._left_to_command = True


def campaign_suspenders(devices, *, helium_min_percent: float = 20.0,
                        helium_resume_percent: float = 30.0, temperature_band_K: float = 0.5,
                        resume_wait_s: float = 60.0) -> list:
    """Suspenders for ``devices`` (QD systems with a running monitor, lasers), from the
    campaign ``[suspenders]`` values: helium % (PPMS), the temperature band (K) and the wait
    (s) after a condition clears. See the module docstring for what each does."""
    low = check_range("helium_min_percent", helium_min_percent, 0.0, 100.0, "%")
    high = check_range("helium_resume_percent", helium_resume_percent, low, 100.0, "%")
    band = check_range("temperature_band_K", temperature_band_K, 0.001, 50.0, "K")
    wait = check_range("resume_wait_s", resume_wait_s, 0.0, 86400.0, "s")
    out = []
    for dev in devices:
        name = dev.name
        if hasattr(dev, "start_monitor") and hasattr(dev, "monitoring") and not dev.monitoring:
            raise ValueError(f"{name}: its monitor is not running; call {name}.start_monitor("
                             "interval_s) first (suspenders only see polled values)")
        if hasattr(dev, "helium_level"):
            out.append(SuspendFloor(dev.helium_level, low, resume_thresh=high, sleep=wait,
                                    tripped_message=f"{name}: helium level below {low:g} %; "
                                    f"waiting for a refill above {high:g} %"))
        if hasattr(dev, "temperature_deviation_K"):
            out.append(SuspendCeil(dev.temperature_deviation_K, band, sleep=wait,
                                   tripped_message=f"{name}: temperature more than {band:g} K "
                                   "from its setpoint"))
        if hasattr(dev, "magnet_fault"):
            out.append(SuspendOnMagnetFault(dev, sleep=wait, tripped_message=f"{name}: magnet "
                                            "quench or current error; re-applying the field"))
        if hasattr(dev, "interlock_open"):
            out.append(SuspendBoolHigh(dev.interlock_open, sleep=wait,
                                       tripped_message=f"{name}: laser interlock open"))
        if hasattr(dev, "connected") and hasattr(dev, "reconnect_failed"):
            out.append(SuspendWhileDisconnected(dev, sleep=wait, tripped_message=f"{name}: "
                                                "connection lost; reconnecting"))
    return out


def checkpoint_after_save(plan):
    """``plan`` with a checkpoint after every ``save``, ``open_run`` and ``close_run`` (not in
    a region the plan made non-rewindable with ``clear_checkpoint``): a suspension never
    replays a stored event."""
    cleared = False

    def insert(msg):
        nonlocal cleared
        if msg.command == "clear_checkpoint":
            cleared = True
        elif msg.command == "checkpoint":
            cleared = False
        elif msg.command in _CHECKPOINT_AFTER and not cleared:
            return None, single_gen(Msg("checkpoint"))
        return None, None

    return (yield from bpp.plan_mutator(plan, insert))


def _saving_checkpoint(RE):
    """A ``save`` command for ``RE`` that takes a checkpoint as soon as the event is emitted,
    with no await in between (where a suspension could land and replay the saved point).
    Inside a region made non-rewindable with ``clear_checkpoint`` it does nothing more."""
    async def save(msg):
        response = await RE._save(msg)
        RE._reset_checkpoint_state()
        return response
    save.checkpoints = True
    return save


def install(RE, suspenders) -> None:
    """Install ``suspenders`` on ``RE``, add :func:`checkpoint_after_save` to its
    preprocessors (once) and make its ``save`` take a checkpoint."""
    for s in suspenders:
        RE.install_suspender(s)
    if checkpoint_after_save not in RE.preprocessors:
        RE.preprocessors.append(checkpoint_after_save)
    if not getattr(RE._command_registry.get("save"), "checkpoints", False):
        RE.register_command("save", _saving_checkpoint(RE))


def remove(RE, suspenders) -> None:
    """Undo :func:`install` for ``suspenders`` (the preprocessor and the ``save`` command go
    when none is left)."""
    for s in suspenders:
        RE.remove_suspender(s)
        if isinstance(s, SuspendOnMagnetFault):   # no suspender left to act on a fault
            s.system.field.fault_grace_s.put(s.previous_grace_s)
    if not RE.suspenders and checkpoint_after_save in RE.preprocessors:
        RE.preprocessors.remove(checkpoint_after_save)
        RE.register_command("save", RE._save)
