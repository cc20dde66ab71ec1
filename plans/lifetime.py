"""Luminescence decays by TCSPC: ``lifetime_decay`` and ``instrument_response``.

The 375 nm picosecond laser excites the sample; photons through the emission monochromator
reach the NIR-PMT and the HydraHarp builds the decay histogram.

Settings are derived, not guessed (``decay_settings``):

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
from dataclasses import asdict, dataclass

import numpy as np
import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp

from spinlight.instruments.errors import check_choice, check_range
from spinlight.instruments.laser import max_repetition_rate_hz

from .pl import SLIT_RANGE_UM, mono_range_nm
from .resume import check_continues
from .safety import pl_safe_state
from .sample import as_sample, finite_list

MAX_COUNT_FRACTION = 0.05            # count rate / repetition rate (pile-up rule, timing.md)
HISTOGRAM_CHANNELS = tuple(1024 << k for k in range(7))
PEAK_COUNTS_RANGE = (100.0, 1.0e8)
ACQUISITION_RANGE_S = (0.01, 360000.0)      # HydraHarp: 1 ms .. 100 h
PREVIEW_RANGE_S = (0.01, 60.0)
DARK_TIME_S = 1.0
MAX_PREVIEWS = 6


@dataclass(frozen=True)
class DecaySettings:
    """Repetition rate (Hz), TCSPC binning code, channel width (ps), channels, window (ns)."""

    repetition_rate_hz: int
    binning: int
    resolution_ps: float
    channels: int
    window_ns: float
    longest_lifetime_ns: float


def decay_settings(expected_lifetime_ns, *, laser_limits_hz, base_resolution_ps: float,
                   binsteps: int, channels: int = 4096, lifetime_periods: float = 5.0,
                   repetition_rate_hz=None) -> DecaySettings:
    """Repetition rate and binning for the expected lifetimes (see the module docstring)."""
    taus = finite_list("expected_lifetime_ns", np.atleast_1d(expected_lifetime_ns).tolist(),
                       0.01, 1.0e6, "ns")
    channels = int(check_choice("channels", channels, HISTOGRAM_CHANNELS))
    low, high = (float(x) for x in laser_limits_hz)
    tau = max(taus)
    f_max = min(high, max_repetition_rate_hz(tau, lifetime_periods))
    if f_max < low:
        raise ValueError(f"expected_lifetime_ns={tau!r} ns needs a repetition rate <= {f_max:.6g} Hz, "
                         f"below the laser's minimum {low:g} Hz")
    if repetition_rate_hz is None:
        rate = int(float(f"{math.floor(f_max):.2g}"))        # two significant digits, rounded down
        rate = rate if rate <= f_max else int(f_max)
    else:
        rate = int(check_range("repetition_rate_hz", repetition_rate_hz, low, f_max,
                               f"Hz (laser limits, and {lifetime_periods:g} x the longest "
                               f"expected lifetime {tau:g} ns per period)"))
    period_ps = 1e12 / rate
    binning = max(0, math.ceil(math.log2(period_ps / (channels * base_resolution_ps)) - 1e-12))
    if binning > binsteps - 1:
        raise ValueError(f"a {period_ps / 1e3:.6g} ns laser period does not fit {channels} channels "
                         f"at the coarsest binning; raise repetition_rate_hz or channels")
    res = base_resolution_ps * 2 ** binning
    return DecaySettings(rate, binning, res, channels, channels * res / 1e3, tau)


def _settings_for(laser, tcspc, expected_lifetime_ns, channels, repetition_rate_hz) -> DecaySettings:
    d = tcspc.driver
    return decay_settings(expected_lifetime_ns, laser_limits_hz=laser.driver.frequency_limits_hz,
                          base_resolution_ps=d.base_resolution_ps, binsteps=d.binsteps,
                          channels=channels, lifetime_periods=laser.lifetime_periods.get(),
                          repetition_rate_hz=repetition_rate_hz)


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


def _validate(peak_counts, max_acquisition_s, max_count_fraction, preview_s, slit_um, intensity):
    check_range("peak_counts", peak_counts, *PEAK_COUNTS_RANGE, "counts")
    check_range("max_acquisition_s", max_acquisition_s, *ACQUISITION_RANGE_S, "s")
    check_range("max_count_fraction", max_count_fraction, 1e-4, MAX_COUNT_FRACTION,
                "(count rate / repetition rate)")
    check_range("preview_s", preview_s, *PREVIEW_RANGE_S, "s")
    check_range("emission_slit_um", slit_um, *SLIT_RANGE_UM, "um")
    check_range("intensity_permille", intensity, 1, 1000, "per mille")


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
    check_continues(continues)
    return {**(md or {}), "continues": continues} if continues else md


def _options(peak_counts, max_acquisition_s, max_count_fraction, preview_s, emission_slit_um,
             intensity_permille) -> dict:
    _validate(peak_counts, max_acquisition_s, max_count_fraction, preview_s, emission_slit_um,
              intensity_permille)
    return {"peak_counts": float(peak_counts), "max_acquisition_s": float(max_acquisition_s),
            "max_count_fraction": float(max_count_fraction), "preview_s": float(preview_s),
            "emission_slit_um": float(emission_slit_um), "intensity_permille": int(intensity_permille)}


def instrument_response(fl, laser, tcspc, sample, *, expected_lifetime_ns, peak_counts: float = 1e4,
                        repetition_rate_hz=None, channels: int = 4096,
                        max_acquisition_s: float = 600.0, max_count_fraction: float = 0.01,
                        preview_s: float = 0.2, emission_slit_um: float = 500.0,
                        intensity_permille: int = 100, continues: str | None = None,
                        md: dict | None = None):
    """The IRF: scatterer in the beam, emission monochromator at the laser wavelength, with
    the repetition rate and channel width a decay of ``expected_lifetime_ns`` will use.
    ``continues`` (uid of an interrupted IRF run) is recorded; the IRF is measured whole."""
    md = _continuation_md(continues, md)
    opts = _options(peak_counts, max_acquisition_s, max_count_fraction, preview_s,
                    emission_slit_um, intensity_permille)
    s = _settings_for(laser, tcspc, expected_lifetime_ns, channels, repetition_rate_hz)
    expected = [float(x) for x in np.atleast_1d(expected_lifetime_ns)]
    nm = float(laser.wavelength_nm.get())
    check_range("laser wavelength_nm", nm, *mono_range_nm(fl.emission), "nm (emission grating)")
    plan = _decay_run("instrument_response", "irf", fl, laser, tcspc, sample, emission_nm=nm, s=s,
                      holder="scatterer", irf_uid=None, n_exp=1, expected=expected, opts=opts, md=md)
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
    md = _continuation_md(continues, md)
    opts = _options(peak_counts, max_acquisition_s, max_count_fraction, preview_s,
                    emission_slit_um, intensity_permille)
    s = _settings_for(laser, tcspc, expected_lifetime_ns, channels, repetition_rate_hz)
    expected = [float(x) for x in np.atleast_1d(expected_lifetime_ns)]
    check_range("emission_nm", emission_nm, *mono_range_nm(fl.emission), "nm (emission grating)")
    n_exp = len(expected) if n_exp is None else int(check_range("n_exp", n_exp, 1, 3, ""))
    if not (irf is None or isinstance(irf, str)):
        raise ValueError(f"irf={irf!r} must be 'measure', an IRF run uid or None")
    # the scatterer is bright: start low and keep the IRF free of pile-up distortion
    irf_opts = {**opts, "max_count_fraction": min(opts["max_count_fraction"], 0.01),
                "preview_s": min(opts["preview_s"], 0.2), "emission_slit_um": 500.0,
                "intensity_permille": min(opts["intensity_permille"], 100)}

    def inner():
        irf_uid = irf
        if irf == "measure":
            irf_uid = yield from _decay_run(
                "instrument_response", "irf", fl, laser, tcspc, sample,
                emission_nm=float(laser.wavelength_nm.get()), s=s, holder="scatterer", irf_uid=None,
                n_exp=1, expected=expected, opts=irf_opts, md=md)
        return (yield from _decay_run("lifetime_decay", "sample", fl, laser, tcspc, sample,
                                      emission_nm=emission_nm, s=s, holder="sample",
                                      irf_uid=irf_uid, n_exp=n_exp, expected=expected, opts=opts,
                                      md=md))

    return bpp.finalize_wrapper(inner(), pl_safe_state(fl, laser))
