"""Luminescence decays by TCSPC: ``lifetime_decay`` and ``instrument_response``.

The 375 nm picosecond laser excites the sample; photons through the emission monochromator
reach the NIR-PMT and the HydraHarp builds the decay histogram.

Arguments are checked when the plan is called, before anything moves, by the pure validators of
:mod:`.pl_checks` with the connected bench's limits. Settings are derived, not guessed
(``decay_settings``, also in :mod:`.pl_checks`):

* repetition rate: the highest the laser allows with ``lifetime_periods`` (default 5) of the
  longest expected lifetime in one period (reference/timing.md), or the rate given, which is
  refused when it is too high for the lifetime;
* binning: the finest channel width whose ``channels`` cover one full laser period;
* intensity and acquisition time (``choose_acquisition``): short previews at decreasing laser
  intensity until the signal count rate (count rate − dark rate) is ≤ ``max_count_fraction``
  (≤ 5 %) of the repetition rate, then the time that reaches ``peak_counts`` in the highest
  channel, capped at ``max_acquisition_s``.

Light discipline: the laser is soft-locked and the detector shutter closed except during an
acquisition (preview or measurement: ``laser`` is staged only for it); the lamp shutter stays
closed; ``finalize_wrapper`` locks the laser and closes both shutters on success, failure and
abort.

``instrument_response`` puts the scatterer in the beam and the emission monochromator on the
laser wavelength. ``lifetime_decay(irf="measure")`` (default) measures one first with the same
repetition rate and channel width and links it through ``start["decay"]["irf_uid"]``; pass an
earlier IRF run's uid instead, or ``irf=None`` for a tail fit only.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp

from .pl_checks import (MAX_COUNT_FRACTION, DecaySettings, decay_limits,
                        decay_settings,  # noqa: F401  (kept importable here, beside the plans)
                        validate_instrument_response, validate_lifetime_decay)
from .safety import pl_safe_state
from .sample import as_sample

DARK_TIME_S = 1.0
MAX_PREVIEWS = 6


def _configure(laser, tcspc, s: DecaySettings):
    """Laser and TCSPC for these settings (the laser stays locked). The laser checks the rate
    against its ``lifetime_ns`` rule, so a lower rate is set before a longer lifetime and a
    shorter lifetime before a higher rate."""
    yield from bps.mv(laser.mode, "pulsed")
    pair = [(laser.repetition_rate_hz, s.repetition_rate_hz), (laser.lifetime_ns, s.longest_lifetime_ns)]
    if s.repetition_rate_hz > laser.repetition_rate_hz.get():
        pair.reverse()
    for sig, value in pair:
        yield from bps.mv(sig, value)
    yield from bps.mv(tcspc.channels, s.channels, tcspc.binning, s.binning, tcspc.offset_ns, 0,
                      tcspc.sync_divider, 1)


def _lit(fl, laser, plan):
    """Run ``plan`` with the detector shutter open and the laser unlocked (staged), and only
    then: both are undone afterwards, also on failure or abort."""
    def body():
        yield from bps.mv(fl.detector_shutter, "open")
        yield from bps.stage(laser)
        return (yield from plan)

    def cleanup():
        yield from bps.unstage(laser)
        yield from bps.mv(fl.detector_shutter, "closed")

    return (yield from bpp.finalize_wrapper(body(), cleanup()))


def _acquire(tcspc, tacq_s):
    yield from bps.mv(tcspc.tacq_s, tacq_s)
    yield from bps.trigger(tcspc, wait=True)
    return (yield from bps.read(tcspc))


def dark_rate(fl, tcspc, tacq_s: float = DARK_TIME_S):
    """Plan stub: detector dark count rate (counts/s), laser locked, detector shutter open."""
    yield from bps.mv(fl.lamp_shutter, "closed", fl.detector_shutter, "open")
    reading = yield from _acquire(tcspc, tacq_s)
    yield from bps.mv(fl.detector_shutter, "closed")
    return float(reading[tcspc.count_rate.name]["value"])


def _value(reading, signal):
    return reading[signal.name]["value"]


def choose_acquisition(fl, laser, tcspc, s: DecaySettings, *, dark_cps: float, peak_counts: float,
                       max_acquisition_s: float, max_count_fraction: float, preview_s: float,
                       start_intensity_permille: int):
    """Plan stub → (intensity per mille, acquisition time s, signal rate counts/s)."""
    limit = max_count_fraction * s.repetition_rate_hz
    intensity = int(start_intensity_permille)
    for _ in range(MAX_PREVIEWS):
        yield from bps.mv(laser.intensity_permille, intensity)
        reading = yield from _lit(fl, laser, _acquire(tcspc, preview_s))
        signal = max(float(_value(reading, tcspc.count_rate)) - dark_cps, 0.0)
        if signal > limit:
            new = int(math.floor(intensity * 0.8 * limit / signal))
            if new < 1:
                raise ValueError(
                    f"the signal count rate {signal:.4g} counts/s exceeds {max_count_fraction:g} x "
                    f"repetition_rate_hz={s.repetition_rate_hz} Hz even at the lowest laser "
                    "intensity; narrow the emission slit")
            intensity = new
            continue
        counts = np.asarray(_value(reading, tcspc.histogram), dtype=float)
        dark_per_channel = dark_cps * preview_s * s.resolution_ps * 1e-12 * s.repetition_rate_hz
        peak_rate = (counts.max() - dark_per_channel) / preview_s if counts.size else 0.0
        if not peak_rate > 0.0:
            raise RuntimeError(f"no luminescence above the dark counts in a {preview_s:g} s preview "
                               f"(count rate {signal + dark_cps:.4g} counts/s, dark {dark_cps:.4g}); "
                               "check the emission wavelength and the sample")
        tacq = min(max(peak_counts / peak_rate, preview_s), max_acquisition_s)
        return intensity, round(tacq, 3), signal
    raise RuntimeError(f"could not bring the count rate below {limit:.4g} counts/s in "
                       f"{MAX_PREVIEWS} previews")


def _decay_run(plan_name, kind, fl, laser, tcspc, sample, *, emission_nm, s: DecaySettings,
               holder, irf_uid, n_exp, expected, opts, md):
    """Plan stub: configure, dark, previews, then one run with one event (the histogram)."""
    yield from bps.mv(fl.lamp_shutter, "closed", fl.detector_shutter, "closed")
    yield from bps.mv(fl.holder, holder, fl.emission.slit_um, opts["emission_slit_um"])
    yield from bps.mv(fl.emission.wavelength, emission_nm)
    yield from _configure(laser, tcspc, s)
    dark = yield from dark_rate(fl, tcspc)
    intensity, tacq, signal = yield from choose_acquisition(
        fl, laser, tcspc, s, dark_cps=dark, peak_counts=opts["peak_counts"],
        max_acquisition_s=opts["max_acquisition_s"], max_count_fraction=opts["max_count_fraction"],
        preview_s=opts["preview_s"], start_intensity_permille=opts["intensity_permille"])
    yield from bps.mv(laser.intensity_permille, intensity)
    yield from bps.mv(tcspc.tacq_s, tacq)
    start_md = {
        "plan_name": plan_name, "measurement": plan_name, "instrument": "FluoTime300",
        "plan_args": {"emission_nm": float(emission_nm), "expected_lifetime_ns": expected, **opts},
        "sample": as_sample(sample).to_md(), "detectors": [tcspc.name], "motors": [],
        "num_points": 1,
        "decay": {"kind": kind, "counts_key": tcspc.histogram.name, "time_key": tcspc.time_ns.name,
                  "resolution_key": tcspc.resolution_ps.name, "irf_uid": irf_uid,
                  "emission_nm": float(emission_nm), "excitation_nm": float(laser.wavelength_nm.get()),
                  "repetition_rate_hz": s.repetition_rate_hz, "expected_lifetime_ns": expected,
                  "n_exp": int(n_exp), "dark_cps": dark},
        "acquisition": {**asdict(s), "intensity_permille": intensity, "acquisition_time_s": tacq,
                        "signal_rate_cps": signal,
                        "count_fraction": signal / s.repetition_rate_hz,
                        "target_peak_counts": opts["peak_counts"]},
    }
    start_md.update(md or {})

    def event():
        yield from _lit(fl, laser, bps.trigger_and_read([tcspc, laser, fl.emission.wavelength]))

    return (yield from bpp.run_wrapper(event(), md=start_md))


def _continuation_md(continues, md) -> dict | None:
    return {**(md or {}), "continues": continues} if continues else md


def instrument_response(fl, laser, tcspc, sample, *, expected_lifetime_ns, peak_counts: float = 1e4,
                        repetition_rate_hz=None, channels: int = 4096,
                        max_acquisition_s: float = 600.0, max_count_fraction: float = 0.01,
                        preview_s: float = 0.2, emission_slit_um: float = 500.0,
                        intensity_permille: int = 100, continues: str | None = None,
                        md: dict | None = None):
    """The IRF: scatterer in the beam, emission monochromator at the laser wavelength, with
    the repetition rate and channel width a decay of ``expected_lifetime_ns`` will use.
    ``continues`` (uid of an interrupted IRF run) is recorded; the IRF is measured whole."""
    limits = decay_limits(fl, laser, tcspc)
    a = validate_instrument_response(
        expected_lifetime_ns=expected_lifetime_ns, peak_counts=peak_counts,
        repetition_rate_hz=repetition_rate_hz, channels=channels,
        max_acquisition_s=max_acquisition_s, max_count_fraction=max_count_fraction,
        preview_s=preview_s, emission_slit_um=emission_slit_um,
        intensity_permille=intensity_permille, continues=continues, **limits)
    plan = _decay_run("instrument_response", "irf", fl, laser, tcspc, sample,
                      emission_nm=limits["laser_wavelength_nm"], s=a.settings, holder="scatterer",
                      irf_uid=None, n_exp=1, expected=a.expected_lifetime_ns, opts=a.options,
                      md=_continuation_md(continues, md))
    return bpp.finalize_wrapper(plan, pl_safe_state(fl, laser))


def lifetime_decay(fl, laser, tcspc, sample, *, emission_nm: float, expected_lifetime_ns,
                   peak_counts: float = 1e4, n_exp: int | None = None, irf="measure",
                   repetition_rate_hz=None, channels: int = 4096,
                   max_acquisition_s: float = 3600.0, max_count_fraction: float = MAX_COUNT_FRACTION,
                   preview_s: float = 1.0, emission_slit_um: float = 1000.0,
                   intensity_permille: int = 1000, continues: str | None = None,
                   md: dict | None = None):
    """The luminescence decay at ``emission_nm`` (nm) after 375 nm pulses; returns its run uid.

    ``expected_lifetime_ns``: one lifetime or a list (ns; the longest sets the repetition
    rate); ``n_exp`` (default: how many were given) is passed to the streaming fit.
    ``continues``: uid of an interrupted decay run; a decay is one event, so it is re-measured
    whole and the new run records the link.
    """
    limits = decay_limits(fl, laser, tcspc)
    a = validate_lifetime_decay(
        emission_nm=emission_nm, expected_lifetime_ns=expected_lifetime_ns,
        peak_counts=peak_counts, n_exp=n_exp, irf=irf, repetition_rate_hz=repetition_rate_hz,
        channels=channels, max_acquisition_s=max_acquisition_s,
        max_count_fraction=max_count_fraction, preview_s=preview_s,
        emission_slit_um=emission_slit_um, intensity_permille=intensity_permille,
        continues=continues, **limits)
    md, opts, s, expected = (_continuation_md(continues, md), a.options, a.settings,
                             a.expected_lifetime_ns)
    # the scatterer is bright: start low and keep the IRF free of pile-up distortion
    irf_opts = {**opts, "max_count_fraction": min(opts["max_count_fraction"], 0.01),
                "preview_s": min(opts["preview_s"], 0.2), "emission_slit_um": 500.0,
                "intensity_permille": min(opts["intensity_permille"], 100)}

    def inner():
        irf_uid = irf
        if irf == "measure":
            irf_uid = yield from _decay_run(
                "instrument_response", "irf", fl, laser, tcspc, sample,
                emission_nm=limits["laser_wavelength_nm"], s=s, holder="scatterer", irf_uid=None,
                n_exp=1, expected=expected, opts=irf_opts, md=md)
        return (yield from _decay_run("lifetime_decay", "sample", fl, laser, tcspc, sample,
                                      emission_nm=emission_nm, s=s, holder="sample",
                                      irf_uid=irf_uid, n_exp=a.n_exp, expected=expected,
                                      opts=opts, md=md))

    return bpp.finalize_wrapper(inner(), pl_safe_state(fl, laser))
