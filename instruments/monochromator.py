"""A scanning monochromator (Acton SpectraPro protocol) as an Ophyd device.

``wavelength`` is a positioner (nm; readback hinted, setpoint normal). ``set(nm)`` checks the
wavelength against the current grating's range (ValueError, nothing sent), sends the scan
rate if it changed and ``>nm`` (the protocol's non-blocking move), and returns a
:class:`~ophyd.status.MoveStatus` that a poller thread completes when the controller answers
``mono-?done`` = 1, publishing ``?nm`` readings on the way (progress bars, suspenders); the
finished ``>nm`` is closed with ``mono-stop`` as the manual requires. ``stop()`` sends
``mono-stop``, which really stops the drive (a blocking ``goto`` could not be interrupted).
The move runs at ``wavelength.scan_rate_nm_per_min`` (config; default the fastest rate,
:data:`~.acton.SCAN_RATE_RANGE_NM_PER_MIN`).

``grating`` (config) turns the turret (blocking, up to 20 s; ``set()`` checks the position
at once, then runs in a thread); ``slit_um`` (config) sets every motorized slit to one width
(entrance = exit, the usual fluorometer band-pass setting) and reads the first one back.

``connect_monochromator(url)`` opens a :class:`~.transports.SerialTransport`:
``socket://127.0.0.1:PORT`` against the simulator, ``/dev/ttyUSB0`` or ``COM3`` in the lab.
"""

from __future__ import annotations

import logging
import math

from ophyd import Component as Cpt
from ophyd import Device, Signal

from .acton import SCAN_RATE_RANGE_NM_PER_MIN, ActonDriver
from .qd_axis import QDAxis
from .transports import SerialTransport

log = logging.getLogger(__name__)


class WavelengthAxis(QDAxis):
    """Wavelength (nm). Moves with ``>nm`` at ``scan_rate_nm_per_min``; done on ``mono-?done``.

    Reuses the poller of :class:`~.qd_axis.QDAxis` with the state ``"done"`` / ``"moving"``.
    """

    scan_rate_nm_per_min = Cpt(Signal, value=SCAN_RATE_RANGE_NM_PER_MIN[1], kind="config")
    egu = "nm"
    precision = 2
    done_states = frozenset({"done"})

    def _send(self, target):
        self.driver.start_scan(target, self.scan_rate_nm_per_min.get())

    def _query(self):
        nm, done = self.driver.poll_move()
        return nm, "done" if done else "moving"

    def _tolerance(self, target):
        return 0.011   # ?nm reports 0.01 nm

    def expected_duration_s(self, start, target):
        return abs(target - start) / max(self.scan_rate_nm_per_min.get(), 1e-3) * 60.0

    def stop(self, *, success: bool = False) -> None:
        was_moving = self._moving
        self.signal_stop(success)
        if was_moving:
            try:
                nm = self.driver.stop_move()
                self.setpoint.put(nm)
                self.publish(nm, "done")
                log.info("%s stopped at %s nm", self.name, nm)
            except Exception:
                log.exception("%s: could not stop the drive", self.name)
        # QDAxis.stop would re-target (hold); the drive is already stopped.
        super(QDAxis, self).stop(success=success)


class _GratingSignal(Signal):
    """Current grating position; ``put(n)`` turns the turret (blocking)."""

    def set(self, value, **kwargs):
        self.parent.driver.check_grating(value)      # bad input fails here, nothing sent
        return super().set(value, **kwargs)

    def put(self, value, **kwargs):
        mono = self.parent
        mono.driver.select_grating(value)
        super().put(mono.driver.grating, **kwargs)
        mono.wavelength.update()                      # clamped if off the new grating's range

    def cache(self, value) -> None:
        super().put(value)


class _SlitSignal(Signal):
    """Width (um) of every motorized slit; ``put(w)`` drives them all (blocking)."""

    def _names(self):
        names = self.parent.driver.motorized_slits
        if not names:
            raise ValueError(f"{self.parent.name} has no motorized slit")
        return names

    def set(self, value, **kwargs):
        self.parent.driver.check_slit(self._names()[0], value)   # bad input fails here
        return super().set(value, **kwargs)

    def put(self, value, **kwargs):
        for name in self._names():
            self.parent.driver.check_slit(name, value)
        widths = [self.parent.driver.set_slit(name, value) for name in self._names()]
        super().put(widths[0], **kwargs)

    def cache(self, value) -> None:
        super().put(value)


class Monochromator(Device):
    """An Acton SpectraPro: ``wavelength`` (nm) positioner, ``grating`` and ``slit_um`` config."""

    wavelength = Cpt(WavelengthAxis, kind="hinted")
    grating = Cpt(_GratingSignal, value=0, kind="config")
    slit_um = Cpt(_SlitSignal, value=math.nan, tolerance=0.5, kind="config")
    model = Cpt(Signal, value="", kind="config")
    serial_number = Cpt(Signal, value="", kind="config")

    def __init__(self, *args, driver: ActonDriver, **kwargs):
        self.driver = driver
        super().__init__(*args, **kwargs)

    def refresh(self) -> None:
        """Read wavelength, grating and slit from the instrument into the signals."""
        d = self.driver
        self.wavelength.update()
        self.wavelength.setpoint.put(self.wavelength.position)
        self.grating.cache(d.get_grating())
        slits = d.motorized_slits
        self.slit_um.cache(d.get_slit(slits[0]) if slits else math.nan)
        self.model.put(d.model or "")
        self.serial_number.put(d.serial_number or "")

    def trigger(self):
        """Read the wavelength fresh for the event that follows."""
        if not self.wavelength.moving:
            self.wavelength.update()
        return super().trigger()

    def close(self) -> None:
        self.driver.close()


def connect_monochromator(url: str, *, name: str = "mono", timeout_s: float = 2.0) -> Monochromator:
    """Open ``url`` (``socket://127.0.0.1:PORT``, ``/dev/ttyUSB0``, ``COM3``) at 9600 8N1,
    switch echo off, read the instrument and return a ready :class:`Monochromator`.

    ``timeout_s`` bounds each reply line; blocking moves get their own longer bound.
    """
    transport = SerialTransport(url, name=name, baudrate=9600, write_eol="\r", read_eol="\n",
                                timeout_s=timeout_s)
    try:
        driver = ActonDriver(transport, name=name).connect()
        mono = Monochromator(name=name, driver=driver)
        mono.refresh()
    except Exception:
        transport.close()
        raise
    return mono
