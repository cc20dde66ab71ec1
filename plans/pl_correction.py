"""The emission correction: the instrument's spectral response measured on a standard lamp.

A calibrated tungsten-halogen standard lamp (certified spectral irradiance) goes into the sample
position (``fl.holder = "lamp"``) and the emission monochromator scans it with the Xe lamp
shutter closed; the counts over the certified photon flux are the relative sensitivity of
emission monochromator + NIR-PMT (``analysis.spectral_correction.response_from_run``), by
which emission spectra measured with the same grating and emission slit are divided.

Order: validate (call time, nothing moves) → both shutters closed, emission slit and gate set,
holder on the standard lamp → dark count with the detector shutter closed (the lamp stays lit
in its position) → open the run → open the detector shutter → one event per wavelength
(checkpoint, move, count) → close both shutters (``finalize_wrapper``: on success, failure
and abort). A PMT overload ends the scan with an error naming the wavelength. The holder stays
on the lamp; the spectrum plans move it back to the sample.

The start document names the run a spectral-response measurement: ``measurement =
"spectral_response"``, ``start["spectrum"]`` (as the spectrum plans: ``scan="emission"``,
``wavelength_key``, ``signal_key``, ``dark_cps``, ``saturation_count_rate_cps``) and
``start["spectral_response"]``
(``kind="emission"``, ``source="standard_lamp"``, ``standard``: the lamp's certificate id,
``emission_slit_um``, ``grating_g_per_mm``: the emission grating).
"""

from __future__ import annotations

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp

from .pl import _raise_on_overload
from .pl_checks import spectrum_limits, validate_emission_correction
from .safety import pl_safe_state
from .sample import as_sample

#: Certificate id of the bench's standard lamp (``analysis.standard_lamp.CERTIFICATE_ID``).
STANDARD_LAMP = "SL-QTH-3000K-0427"


def _grooves(mono) -> int:
    d = mono.driver
    return int(d.gratings[d.grating].grooves_per_mm)


def emission_correction(fl, sample=None, *, start_nm: float, stop_nm: float, step_nm: float,
                        gate_s: float = 0.5, emission_slit_um: float = 1000.0,
                        standard: str = STANDARD_LAMP, md: dict | None = None):
    """Counts (cps) of the standard lamp vs emission wavelength (nm): the raw emission
    correction. ``sample`` (optional) is the sample whose spectra it will correct, recorded as
    ``start["for_sample"]``; ``standard`` the certificate id of the lamp in the holder."""
    limits = spectrum_limits(fl)
    wavelengths = validate_emission_correction(
        start_nm=start_nm, stop_nm=stop_nm, step_nm=step_nm, gate_s=gate_s,
        emission_slit_um=emission_slit_um, standard=standard,
        emission_range_nm=limits["emission_range_nm"])
    for_sample = None if sample is None else as_sample(sample).name
    axis = fl.emission.wavelength
    plan_args = {"start_nm": wavelengths[0], "stop_nm": wavelengths[-1],
                 "step_nm": abs(wavelengths[1] - wavelengths[0]), "gate_s": float(gate_s),
                 "emission_slit_um": float(emission_slit_um), "standard": standard}

    def inner():
        yield from bps.mv(fl.lamp_shutter, "closed", fl.detector_shutter, "closed")
        yield from bps.mv(fl.emission.slit_um, emission_slit_um, fl.counter.gate_s, gate_s,
                          fl.holder, "lamp", axis, wavelengths[0])
        yield from bps.trigger(fl.counter, wait=True)   # dark: detector shutter closed
        dark = yield from bps.read(fl.counter)
        _raise_on_overload(fl, dark, "dark count")
        saturation = yield from bps.rd(fl.counter.saturation_count_rate_cps)
        start_md = {
            "plan_name": "emission_correction", "plan_args": plan_args,
            "measurement": "spectral_response", "instrument": "FluoTime300",
            "detectors": [fl.counter.name], "motors": [axis.name],
            "num_points": len(wavelengths),
            "spectrum": {"scan": "emission", "wavelength_key": axis.name,
                         "signal_key": fl.counter.count_rate_cps.name, "fixed_nm": None,
                         "dark_cps": float(dark[fl.counter.count_rate_cps.name]["value"]),
                         "saturation_count_rate_cps": float(saturation)},
            "spectral_response": {"kind": "emission", "source": "standard_lamp",
                                  "standard": standard,
                                  "emission_slit_um": float(emission_slit_um),
                                  "grating_g_per_mm": _grooves(fl.emission)},
            "hints": {"dimensions": [([axis.name], "primary")]},
        }
        if for_sample is not None:
            start_md["for_sample"] = for_sample
        start_md.update(md or {})

        @bpp.run_decorator(md=start_md)
        def run():
            yield from bps.mv(fl.detector_shutter, "open")
            for nm in wavelengths:
                yield from bps.checkpoint()
                yield from bps.mv(axis, nm)
                reading = yield from bps.trigger_and_read([fl.counter, axis])
                _raise_on_overload(fl, reading, f"{axis.name}={nm} nm (standard lamp)")
            yield from bps.mv(fl.detector_shutter, "closed")

        return (yield from run())

    return bpp.finalize_wrapper(inner(), pl_safe_state(fl))
