"""Steady-state photoluminescence plans: ``emission_spectrum`` and ``excitation_spectrum``.

The spectrofluorometer (``spinlight.instruments.spectrofluorometer``) excites the sample with
the Xe lamp through the excitation monochromator and counts the emission through the emission
monochromator with the NIR-PMT. A spectrum scans one monochromator and keeps the other fixed.

Order of a spectrum: validate (call time, nothing moves; :mod:`.pl_checks`' pure validators with
the connected gratings' ranges) → set the slits, holder on the sample, both shutters closed →
one dark count (detector shutter open, lamp shutter closed) → open the run with the dark rate
in its metadata → open the lamp shutter → one event per wavelength (checkpoint, move, count) →
close both shutters. A PMT overload (count rate above the
detector's saturation, which trips its high voltage) ends the scan with an error naming the
wavelength; the points already counted stay in the run. ``finalize_wrapper`` closes both shutters
(and locks the laser, if one is given) on success, failure and abort.

``resume_after``/``continues`` continue an interrupted spectrum (:mod:`.resume`): the
continuation counts a new dark rate, puts the scanned monochromator straight on the first
wavelength not yet measured and counts the rest, in the same order.

Every event also records the reference photodiode's current (``fl.reference``, nA: the Xe
beam after the excitation monochromator), so an excitation spectrum can be normalised by it
(lamp profile, bandpass and drift) and an emission spectrum's lamp stability checked.

Start documents carry ``start["spectrum"]`` (``scan``, ``wavelength_key``, ``signal_key``,
``reference_key``, ``fixed_nm``, ``dark_cps``, ``saturation_count_rate_cps``) so the analysis
finds its columns and corrects counting losses without knowing device names. The emission correction (the standard lamp scan) is :mod:`.pl_correction`.
"""

from __future__ import annotations

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp

from .pl_checks import spectrum_limits, validate_emission_spectrum, validate_excitation_spectrum
from .resume import resume_md
from .safety import pl_safe_state
from .sample import as_sample


class DetectorOverload(RuntimeError):
    """The PMT saturated (its high voltage tripped): narrow the slits or lower the excitation."""


def _prepare(fl, gate_s, excitation_slit_um, emission_slit_um):
    """Slits, gate, holder on the sample, both shutters closed."""
    yield from bps.mv(fl.lamp_shutter, "closed", fl.detector_shutter, "closed")
    yield from bps.mv(fl.excitation.slit_um, excitation_slit_um, fl.emission.slit_um,
                      emission_slit_um, fl.counter.gate_s, gate_s, fl.holder, "sample")


def dark_count_rate(fl):
    """Sub-plan: the PMT's dark count rate (counts/s) with the lamp shutter closed and the
    detector shutter open; the detector shutter is closed again afterwards."""
    yield from bps.mv(fl.lamp_shutter, "closed", fl.detector_shutter, "open")
    yield from bps.trigger(fl.counter, wait=True)
    reading = yield from bps.read(fl.counter)
    yield from bps.mv(fl.detector_shutter, "closed")
    _raise_on_overload(fl, reading, "dark count")
    return float(reading[fl.counter.count_rate_cps.name]["value"])


def _raise_on_overload(fl, reading, where: str) -> None:
    if reading and reading.get(fl.counter.overload.name, {}).get("value"):
        raise DetectorOverload(
            f"{fl.name}: the PMT overloaded at {where} (count rate above its saturation; its "
            "high voltage tripped). Narrow the slits or lower the excitation and measure again; "
            "the points already counted are stored.")


#: plan -> (scanned monochromator, fixed one, the plan's validator)
_SPECTRA = {"emission_spectrum": ("emission", "excitation", validate_emission_spectrum),
            "excitation_spectrum": ("excitation", "emission", validate_excitation_spectrum)}


def _scan(plan_name, fl, sample, *, fixed: tuple[str, float], gate_s, excitation_slit_um,
          emission_slit_um, laser, md, resume_after, continues, **scan):
    """A spectrum with the fixed monochromator at ``fixed`` (option name, nm) and the other
    scanning ``scan`` (``start_nm``, ``stop_nm``, ``step_nm``); validated when called."""
    scanned, other, validate = _SPECTRA[plan_name]
    wavelengths = validate(**{fixed[0]: fixed[1]}, **scan, gate_s=gate_s,
                           excitation_slit_um=excitation_slit_um, emission_slit_um=emission_slit_um,
                           resume_after=resume_after, continues=continues, **spectrum_limits(fl))
    sample = as_sample(sample)
    fixed_nm, extra_md = float(fixed[1]), {fixed[0]: float(fixed[1])}
    scan_mono, fixed_mono = getattr(fl, scanned), getattr(fl, other)
    todo = wavelengths[resume_after:]                 # validated: at least one point is left
    scan_axis, fixed_axis = scan_mono.wavelength, fixed_mono.wavelength
    plan_args = {"fixed_nm": fixed_nm, "start_nm": wavelengths[0], "stop_nm": wavelengths[-1],
                 "step_nm": abs(wavelengths[1] - wavelengths[0]) if len(wavelengths) > 1 else 0.0,
                 "gate_s": float(gate_s), "excitation_slit_um": float(excitation_slit_um),
                 "emission_slit_um": float(emission_slit_um)}
    plan_args.update(extra_md)

    def inner():
        yield from _prepare(fl, gate_s, excitation_slit_um, emission_slit_um)
        yield from bps.mv(fixed_axis, fixed_nm, scan_axis, todo[0])
        dark = yield from dark_count_rate(fl)
        saturation = yield from bps.rd(fl.counter.saturation_count_rate_cps)
        start_md = {
            "plan_name": plan_name, "plan_args": plan_args, "measurement": plan_name,
            "instrument": "FluoTime300", "sample": sample.to_md(),
            "detectors": [fl.counter.name], "motors": [scan_axis.name],
            "num_points": len(todo),
            "spectrum": {"scan": scanned,
                         "wavelength_key": scan_axis.name,
                         "signal_key": fl.counter.count_rate_cps.name,
                         "reference_key": fl.reference.current_nA.name,
                         "fixed_nm": float(fixed_nm), "dark_cps": dark,
                         "saturation_count_rate_cps": float(saturation)},
            "hints": {"dimensions": [([scan_axis.name], "primary")]},
        }
        start_md.update(extra_md)
        start_md.update(resume_md(resume_after, continues, len(wavelengths)))
        start_md.update(md or {})

        @bpp.run_decorator(md=start_md)
        def run():
            yield from bps.mv(fl.lamp_shutter, "open", fl.detector_shutter, "open")
            for nm in todo:
                yield from bps.checkpoint()
                yield from bps.mv(scan_axis, nm)
                reading = yield from bps.trigger_and_read([fl.counter, fl.reference, scan_axis,
                                                           fixed_axis])
                _raise_on_overload(fl, reading, f"{scan_axis.name}={nm} nm")
            yield from bps.mv(fl.lamp_shutter, "closed", fl.detector_shutter, "closed")

        return (yield from run())

    return bpp.finalize_wrapper(inner(), pl_safe_state(fl, laser))


def emission_spectrum(fl, sample, *, excitation_nm: float, start_nm: float, stop_nm: float,
                      step_nm: float, gate_s: float = 0.5, excitation_slit_um: float = 500.0,
                      emission_slit_um: float = 1000.0, laser=None, resume_after: int = 0,
                      continues: str | None = None, md: dict | None = None):
    """Emission counts (counts/s) vs emission wavelength (nm) at a fixed lamp excitation (nm).

    ``laser`` (optional) is locked again at the end, for benches where it shares the sample.
    """
    return _scan("emission_spectrum", fl, sample, fixed=("excitation_nm", excitation_nm),
                 start_nm=start_nm, stop_nm=stop_nm, step_nm=step_nm, gate_s=gate_s,
                 excitation_slit_um=excitation_slit_um, emission_slit_um=emission_slit_um,
                 laser=laser, md=md, resume_after=resume_after, continues=continues)


def excitation_spectrum(fl, sample, *, emission_nm: float, start_nm: float, stop_nm: float,
                        step_nm: float, gate_s: float = 0.5, excitation_slit_um: float = 500.0,
                        emission_slit_um: float = 1000.0, laser=None, resume_after: int = 0,
                        continues: str | None = None, md: dict | None = None):
    """Emission counts (counts/s) at a fixed emission wavelength (nm) vs lamp excitation (nm)."""
    return _scan("excitation_spectrum", fl, sample, fixed=("emission_nm", emission_nm),
                 start_nm=start_nm, stop_nm=stop_nm, step_nm=step_nm, gate_s=gate_s,
                 excitation_slit_um=excitation_slit_um, emission_slit_um=emission_slit_um,
                 laser=laser, md=md, resume_after=resume_after, continues=continues)
