"""The PPMS as an Ophyd device: temperature and field positioners, chamber, interlock monitor.

The positioners are the MPMS3's (:mod:`.qd_axis`) with the PPMS status names: a temperature
move ends on "stable"; a field move ends on "persistent stable" when ``field.magnet_mode`` is
``"persistent"`` (the default: the switch warms, the magnet ramps, the switch cools) and on
"driven stable" when it is ``"driven"``. ``stop()`` holds temperature and field where they are.

A background monitor (one ``GETDAT? 7`` and one ``LEVEL?`` per interval) keeps
``helium_level`` (%), ``temperature_state``, ``magnet_state`` and ``chamber_state`` current, and
with them :mod:`.monitor`'s ``connected``, ``magnet_fault`` and ``temperature_deviation_K``, so
suspenders can subscribe to them; GPIB devices produce no events unless someone polls. The
driver retries garbled replies and timeouts and reconnects a lost link under a
:class:`~.retry.RetryPolicy` (default ``RetryPolicy()``).
``connect_ppms(resource)`` builds it over pyvisa (``GPIB0::15::INSTR`` in the lab,
``TCPIP0::127.0.0.1::PORT::SOCKET`` against the simulator).
"""

from __future__ import annotations

import logging

from ophyd import Component as Cpt
from ophyd import Signal

from .mpms3_device import _ChamberSignal
from .ppms import GETDAT_BITS, PPMSDriver
from .monitor import MonitorMixin
from .qd_axis import FieldAxis, TemperatureAxis
from .retry import RetryPolicy
from .transports import VisaTransport

log = logging.getLogger(__name__)

_MONITOR_MASK = sum(1 << GETDAT_BITS[k] for k in ("status", "temperature", "field"))


class PPMSTemperatureAxis(TemperatureAxis):
    """Sample temperature (K); done on the PPMS status "stable"."""
    done_states = frozenset({"stable"})
    fault_states = frozenset({"impedance not functioning", "failure"})


class PPMSFieldAxis(FieldAxis):
    """Field (Oe); done on "persistent stable" or "driven stable" per ``magnet_mode``."""
    magnet_mode = Cpt(Signal, value="persistent", kind="config")
    done_states = frozenset({"persistent stable", "driven stable"})
    done_states_by_mode = {"persistent": frozenset({"persistent stable"}),
                           "driven": frozenset({"driven stable"})}
    fault_states = frozenset({"current error", "failure"})


class PPMS(MonitorMixin):
    """Quantum Design PPMS: ``temperature`` (K) and ``field`` (Oe) positioners."""

    temperature = Cpt(PPMSTemperatureAxis, kind="hinted")
    field = Cpt(PPMSFieldAxis, kind="hinted")
    chamber = Cpt(_ChamberSignal, value="", kind="config")
    helium_level = Cpt(Signal, value=float("nan"), kind="normal")   # percent
    helium_age = Cpt(Signal, value="", kind="omitted")              # '>1h' '<1h' 'continuous'
    temperature_state = Cpt(Signal, value="", kind="omitted")
    magnet_state = Cpt(Signal, value="", kind="omitted")
    chamber_state = Cpt(Signal, value="", kind="omitted")

    def __init__(self, *args, driver: PPMSDriver, **kwargs):
        self.driver = driver
        super().__init__(*args, **kwargs)
        # A poller's reading is news for the interlock signals too.
        self.temperature.state.subscribe(self._mirror(self.temperature_state), run=False)
        self.field.state.subscribe(self._mirror(self.magnet_state), run=False)

    @staticmethod
    def _mirror(signal):
        def put(value, **kwargs):
            if value:
                signal.put(value)
        return put

    def trigger(self):
        """Read status, temperature, field and helium fresh for the event that follows."""
        self.refresh(force=True)
        return super().trigger()

    def refresh(self, *, force: bool = False) -> None:
        """One ``GETDAT? 7`` + ``LEVEL?``: update the state signals, the chamber, the helium
        level, and the axis readbacks (those of a moving axis only with ``force``: its poller
        publishes them)."""
        d = self.driver.getdat(_MONITOR_MASK)
        st = d["status"]
        self.temperature_state.put(st.temperature)
        self.magnet_state.put(st.magnet)
        self.chamber_state.put(st.chamber)
        self.chamber.put(st.chamber)
        for axis, value, state in ((self.temperature, d["temperature"], st.temperature),
                                   (self.field, d["field"], st.magnet)):
            if force or not axis.moving:
                axis.publish(value, state)
        level, age = self.driver.get_level()
        self.helium_level.put(level)
        self.helium_age.put(age)



def connect_ppms(resource: str, *, timeout_s: float = 5.0, name: str = "ppms",
                 monitor_interval_s: float | None = 1.0, backend: str = "@py",
                 retry: RetryPolicy | None = None) -> PPMS:
    """Open ``resource`` with pyvisa (``"\\n"`` read and write termination) and build the
    device; reads everything once and starts the interlock monitor every
    ``monitor_interval_s`` (``None``: no monitor). ``backend`` ``"@py"`` is pyvisa-py; use
    ``""`` for the system VISA library (NI-VISA for a GPIB card). ``retry``: the driver's
    :class:`~.retry.RetryPolicy` (default ``RetryPolicy()``)."""
    if not timeout_s > 0:
        raise ValueError(f"timeout_s={timeout_s!r} must be > 0 s")
    transport = VisaTransport(resource, name=name, read_termination="\n",
                              write_termination="\n", timeout_s=timeout_s, backend=backend)
    ppms = PPMS(name=name, driver=PPMSDriver(transport,
                                             retry=RetryPolicy() if retry is None else retry))
    try:
        ppms.refresh(force=True)
        if monitor_interval_s is not None:
            ppms.start_monitor(monitor_interval_s)
    except Exception:
        transport.close()
        raise
    return ppms


def ppms_ac_detector(ppms: PPMS, datafile: str | None = None, *, mode: str = "request",
                     name: str = "ppms_ac"):
    """The ACMS detector of a connected PPMS (``.dat`` seam: ``follow`` a real ACMS sequence's
    file given as ``datafile``, or ``request`` points from the simulator)."""
    from .ac_detector import ACDetector
    return ACDetector(name=name, driver=ppms.driver, datafile=datafile, mode=mode)
