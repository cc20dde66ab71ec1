"""The FluoTime-300-like spectrofluorometer as one Ophyd device.

:class:`Spectrofluorometer` holds the excitation and emission monochromators
(:class:`~.monochromator.Monochromator`, Acton SpectraPro protocol) and the housing parts
(:mod:`.fluorometer`): ``lamp_shutter``, ``detector_shutter``, ``holder``, ``pmt_hv`` and the
photon ``counter``. Its drivers are injected (``drivers={"excitation": ActonDriver,
"emission": ActonDriver, "housing": HousingDriver}``); each component receives its driver when
the device is built, so ``read()``, ``describe()``, ``read_configuration()`` and the hints are
the plain Ophyd ones. ``trigger()`` reads both wavelengths fresh and counts one gate, so
``bps.trigger_and_read([fl])`` gives one event with wavelengths, counts and the housing state;
plans may equally trigger ``fl.counter`` alone. An overload reading sets ``pmt_hv`` to ``"off"``
(the PMT protection has tripped). :func:`connect_spectrofluorometer` opens the three serial
ports (``socket://127.0.0.1:PORT`` against the simulators).
"""

from __future__ import annotations

from typing import Mapping

from ophyd import Component as Cpt
from ophyd import Device, Signal

from .acton import ActonDriver
from .errors import check_choice
from .fluorometer import (GATE_RANGE_S, LAMP_RANGE_NM, HighVoltage, HousingDriver, PhotonCounter,
                          SampleHolder, Shutter)
from .monochromator import Monochromator
from .transports import SerialTransport

__all__ = ["GATE_RANGE_S", "LAMP_RANGE_NM", "Spectrofluorometer", "connect_spectrofluorometer"]

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


class Spectrofluorometer(Device):
    """Excitation and emission monochromators, shutters, sample changer and photon counter."""

    excitation = DriverComponent(Monochromator, driver_key="excitation")
    emission = DriverComponent(Monochromator, driver_key="emission")
    lamp_shutter = DriverComponent(Shutter, driver_key="housing", which="lamp", value="closed")
    detector_shutter = DriverComponent(Shutter, driver_key="housing", which="detector",
                                       value="closed")
    holder = DriverComponent(SampleHolder, driver_key="housing", value="sample")
    pmt_hv = DriverComponent(HighVoltage, driver_key="housing", value="on")
    counter = DriverComponent(PhotonCounter, driver_key="housing")
    housing_serial = Cpt(Signal, value="", kind="config")

    def __init__(self, *args, drivers: Mapping[str, object], **kwargs):
        for key in drivers:
            check_choice("drivers key", key, DRIVER_KEYS)
        missing = [k for k in DRIVER_KEYS if k not in drivers]
        if missing:
            raise ValueError(f"drivers is missing {missing}; need one driver for each of {DRIVER_KEYS}")
        self.drivers = dict(drivers)
        super().__init__(*args, **kwargs)
        self.counter.overload.subscribe(self._on_overload, run=False)

    def _on_overload(self, value, **kwargs) -> None:
        if value:
            self.pmt_hv.cache("off")            # the PMT protection switches HV off

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
        """Fresh wavelength readings, then one gate of counting (status of the count)."""
        self.excitation.trigger()
        self.emission.trigger()
        return self.counter.trigger()

    def close(self) -> None:
        for driver in self.drivers.values():
            driver.close()


def connect_spectrofluorometer(excitation_url: str, emission_url: str, housing_url: str, *,
                               name: str = "fluorometer", timeout_s: float = 2.0) -> Spectrofluorometer:
    """Open both Acton monochromators (9600 8N1, CR out) and the housing (LF both ways), read
    them and return a ready :class:`Spectrofluorometer`. ``timeout_s`` bounds each reply line;
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
        fl = Spectrofluorometer(name=name, drivers=drivers)
        fl.refresh()
    except Exception:
        for t in opened:
            t.close()
        raise
    return fl
