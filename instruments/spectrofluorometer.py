"""The FluoTime-300-like spectrofluorometer as one Ophyd device.

:class:`Spectrofluorometer` holds the excitation and emission monochromators
(:class:`~.monochromator.Monochromator`, Acton SpectraPro protocol) and the housing parts
(:mod:`.fluorometer`): ``lamp_shutter``, ``detector_shutter``, ``holder``, ``pmt_hv``, the
photon ``counter`` and the excitation ``reference`` photodiode (``reference_current_nA``). Its drivers are injected (``drivers={"excitation": ActonDriver,
"emission": ActonDriver, "housing": HousingDriver}``); each component receives its driver when
the device is built, so ``read()``, ``describe()``, ``read_configuration()`` and the hints are
the plain Ophyd ones. ``trigger()`` reads both wavelengths fresh, counts one gate and reads the
reference, so ``bps.trigger_and_read([fl])`` gives one event with wavelengths, counts, reference
current and the housing state; plans may equally trigger ``fl.counter`` (and ``fl.reference``). An overload reading sets ``pmt_hv`` to ``"off"``
(the PMT protection has tripped). :func:`connect_spectrofluorometer` opens the three serial
ports (``socket://127.0.0.1:PORT`` against the simulators).

Light discipline while a plan is paused: the RunEngine calls ``pause()``/``resume()`` on every
object a message of the plan carried (bluesky ``RunEngine._objs_seen``), not only on staged
ones. PL plans move the shutters, so each shutter is a :class:`PausingShutter`: on ``pause()``
it remembers its state and closes, on ``resume()`` it restores that state (the plan continues
where it was, shutters as it left them); an explicit ``put``/``set`` in between (the safe
state after an abort) wins and is not undone. ``Spectrofluorometer.pause()``/``resume()`` do
the same for both shutters, for plans that carry the whole device. ``detector_ranges_nm``:
where the detector responds (nm), a limit the decay plans check ``emission_nm`` against.
"""

from __future__ import annotations

from typing import Mapping

from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import DeviceStatus

from .acton import ActonDriver
from .errors import check_choice
from .fluorometer import (GATE_RANGE_S, LAMP_RANGE_NM, NIR_PMT_RANGES_NM, HighVoltage,
                          HousingDriver, PhotonCounter, ReferenceDetector, SampleHolder, Shutter)
from .monochromator import Monochromator
from .transports import SerialTransport

__all__ = ["GATE_RANGE_S", "LAMP_RANGE_NM", "NIR_PMT_RANGES_NM", "PausingShutter",
           "Spectrofluorometer", "connect_spectrofluorometer"]

DRIVER_KEYS = ("excitation", "emission", "housing")


class DriverComponent(Cpt):
    """A component built with ``driver=parent.drivers[driver_key]`` (injected at creation)."""

    def __init__(self, cls, *, driver_key: str, **kwargs):
        super().__init__(cls, **kwargs)
        self.driver_key = driver_key

    def create_component(self, instance):
        shared = self.kwargs                    # the class-level kwargs, restored below
        self.kwargs = dict(shared, driver=instance.drivers[self.driver_key])
        try:
            return super().create_component(instance)
        finally:
            self.kwargs = shared


class PausingShutter(Shutter):
    """A :class:`Shutter` that closes while the RunEngine is paused and reopens on resume."""

    _held: str | None = None            # the state before a pause, until resume or a put

    def put(self, value, **kwargs):
        self._held = None                 # an explicit command wins over a remembered state
        super().put(value, **kwargs)

    def pause(self) -> None:
        """Remember the state and close (again on a second call: the first state is kept)."""
        held = self.get() if self._held is None else self._held
        Shutter.put(self, "closed")
        self._held = held

    def resume(self) -> None:
        """Restore the state remembered at ``pause()`` (nothing if a put came in between)."""
        held, self._held = self._held, None
        if held is not None and held != self.get():
            Shutter.put(self, held)


class Spectrofluorometer(Device):
    """Excitation and emission monochromators, shutters, sample changer and photon counter."""

    excitation = DriverComponent(Monochromator, driver_key="excitation")
    emission = DriverComponent(Monochromator, driver_key="emission")
    lamp_shutter = DriverComponent(PausingShutter, driver_key="housing", which="lamp",
                                   value="closed")
    detector_shutter = DriverComponent(PausingShutter, driver_key="housing", which="detector",
                                       value="closed")
    holder = DriverComponent(SampleHolder, driver_key="housing", value="sample")
    pmt_hv = DriverComponent(HighVoltage, driver_key="housing", value="on")
    counter = DriverComponent(PhotonCounter, driver_key="housing")
    reference = DriverComponent(ReferenceDetector, driver_key="housing")
    housing_serial = Cpt(Signal, value="", kind="config")

    def __init__(self, *args, drivers: Mapping[str, object],
                 detector_ranges_nm=NIR_PMT_RANGES_NM, **kwargs):
        for key in drivers:
            check_choice("drivers key", key, DRIVER_KEYS)
        missing = [k for k in DRIVER_KEYS if k not in drivers]
        if missing:
            raise ValueError(f"drivers is missing {missing}; need one driver for each of {DRIVER_KEYS}")
        self.drivers = dict(drivers)
        self.detector_ranges_nm = tuple((float(lo), float(hi)) for lo, hi in detector_ranges_nm)
        super().__init__(*args, **kwargs)
        self.counter.overload.subscribe(self._on_overload, run=False)

    def _on_overload(self, value, **kwargs) -> None:
        if value:
            self.pmt_hv.cache("off")            # the PMT protection switches HV off

    def pause(self) -> None:
        """The RunEngine pauses: lamp, then detector shutter closed, their states remembered;
        both are tried, the first failure raised."""
        self._both("pause")

    def resume(self) -> None:
        """The RunEngine resumes: both shutters back as they were at ``pause()``."""
        self._both("resume")

    def _both(self, method: str) -> None:
        errors = []
        for shutter in (self.lamp_shutter, self.detector_shutter):
            try:
                getattr(shutter, method)()
            except Exception as exc:    # the other shutter must still be handled
                errors.append(exc)
        if errors:
            raise errors[0]

    def refresh(self) -> None:
        """Read every monochromator and housing setting from the instruments."""
        self.excitation.refresh()
        self.emission.refresh()
        for sig in (self.lamp_shutter, self.detector_shutter, self.holder, self.pmt_hv):
            sig.refresh()
        self.counter.refresh()
        identity = self.drivers["housing"].identity
        self.housing_serial.put(identity[2] if len(identity) > 2 else "")

    def trigger(self):
        """Fresh wavelength readings, then one gate of counting, then the reference current;
        the status fails with the first part's own exception."""
        self.excitation.trigger()
        self.emission.trigger()
        status = DeviceStatus(self)

        def finish(part) -> None:
            if not part.success:
                status.set_exception(part.exception())
            elif part.device is self.reference:
                status.set_finished()
            else:
                self.reference.trigger().add_callback(finish)

        self.counter.trigger().add_callback(finish)
        return status

    def close(self) -> None:
        for driver in self.drivers.values():
            driver.close()


def connect_spectrofluorometer(excitation_url: str, emission_url: str, housing_url: str, *,
                               name: str = "fluorometer", timeout_s: float = 2.0,
                               detector_ranges_nm=NIR_PMT_RANGES_NM) -> Spectrofluorometer:
    """Open both Acton monochromators (9600 8N1, CR out) and the housing (LF both ways), read
    them and return a ready :class:`Spectrofluorometer` (its detector responding in
    ``detector_ranges_nm``, nm). ``timeout_s`` bounds each reply line;
    moves and counts get their own longer bounds."""
    opened: list[SerialTransport] = []

    def port(url, key, write_eol):
        t = SerialTransport(url, name=f"{name}_{key}", baudrate=9600, write_eol=write_eol,
                            read_eol="\n", timeout_s=timeout_s)
        opened.append(t)
        return t

    try:
        drivers = {key: ActonDriver(port(url, key, "\r"), name=f"{name}_{key}").connect()
                   for key, url in (("excitation", excitation_url), ("emission", emission_url))}
        drivers["housing"] = HousingDriver(port(housing_url, "housing", "\n"),
                                           name=f"{name}_housing").connect()
        fl = Spectrofluorometer(name=name, drivers=drivers, detector_ranges_nm=detector_ranges_nm)
        fl.refresh()
    except Exception:
        for t in opened:
            t.close()
        raise
    return fl
