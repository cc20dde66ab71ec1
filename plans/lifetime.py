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
* the pile-up rule: the TOTAL count rate (signal + dark, what the HydraHarp's rate meter and
  its INPT_RATE_RATIO warning see) ≤ ``max_count_fraction`` (≤ 5 %) of the repetition rate; a
  dark rate that alone reaches it is refused before any light (ValueError). An IRF also keeps
  its signal ≤ :data:`IRF_SIGNAL_FRACTION` of the repetition rate (scatter pile-up would
  distort its shape; uniform dark counts do not);
* intensity and acquisition time (``choose_acquisition``): short previews at decreasing laser
  intensity until the rule holds; a preview whose net counts are not
  :data:`SIGNIFICANCE_SIGMA` σ above its dark counts (nothing emits at ``emission_nm``, or the
  detector does not see it) is refused (RuntimeError) before the long acquisition, the light
  made safe. Then the time that brings the NET peak (highest channel of a running mean over
  ~τ_min/20, minus the dark floor per channel: :func:`net_peak`) to ``peak_counts``, estimated
  from the preview; after it, top-ups summed into the same histogram (``acquire_to_peak``)
  until the net peak is within :data:`PEAK_TOLERANCE` of ``peak_counts``, all capped at
  ``max_acquisition_s``.

Each run holds one event: the summed histogram (``tcspc_acquisitions`` acquisitions,
``tcspc_acquisition_time_s`` their total time). ``start["acquisition"]`` records the main
acquisition's planned time, the rates of the chosen intensity (``total_rate_cps``,
``signal_rate_cps``) and both fractions of the repetition rate (``count_fraction``: total,
``signal_fraction``).

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

import logging
import math
from dataclasses import asdict, dataclass

import numpy as np
import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp

from .pl_checks import (MAX_COUNT_FRACTION, DecaySettings, decay_limits,
                        decay_settings,  # noqa: F401  (kept importable here, beside the plans)
                        validate_instrument_response, validate_lifetime_decay)
from .safety import pl_safe_state
from .sample import as_sample

logger = logging.getLogger(__name__)

DARK_TIME_S = 1.0
MAX_PREVIEWS = 6
#: The net peak may fall short of ``peak_counts`` by this fraction before a top-up is made.
PEAK_TOLERANCE = 0.05
MAX_TOPUPS = 4
#: The preview must hold this many σ (Poisson, of the dark counts) of net counts.
SIGNIFICANCE_SIGMA = 5.0
#: Peaks are read on a running mean over the shortest expected lifetime / this many.
SMOOTH_PER_LIFETIME = 20.0
#: Signal count rate / repetition rate of an IRF: scatter pile-up distorts its shape.
IRF_SIGNAL_FRACTION = 0.01
MIN_TIME_S = 0.01


@dataclass(frozen=True)
class Acquisition:
    """What the previews chose: laser intensity (per mille), main acquisition time (s), and
    the rates measured at that intensity (counts/s): total (HydraHarp rate meter), signal
    (total − dark), dark, and the net peak-channel rate of the preview."""

    intensity_permille: int
    time_s: float
    total_cps: float
    signal_cps: float
    dark_cps: float
    net_peak_cps: float


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


def _acquire(tcspc, tacq_s, accumulate=False):
    """Sub-plan: one acquisition (added to the histogram held when ``accumulate``)."""
    yield from bps.mv(tcspc.accumulate, accumulate, tcspc.tacq_s, tacq_s)
    yield from bps.trigger(tcspc, wait=True)
    return (yield from bps.read(tcspc))


def _value(reading, signal):
    return reading[signal.name]["value"]


def _ms(seconds: float) -> float:
    """Seconds rounded up to whole ms (the HydraHarp's unit), at least :data:`MIN_TIME_S`."""
    return max(math.ceil(seconds * 1000.0 - 1e-6) / 1000.0, MIN_TIME_S)


def dark_rate(fl, tcspc, tacq_s: float = DARK_TIME_S):
    """Sub-plan: detector dark count rate (counts/s: the histogram's counts / elapsed time),
    laser locked, detector shutter open."""
    yield from bps.mv(fl.lamp_shutter, "closed", fl.detector_shutter, "open")
    reading = yield from _acquire(tcspc, tacq_s)
    yield from bps.mv(fl.detector_shutter, "closed")
    counts = float(_value(reading, tcspc.total_counts))
    return counts / float(_value(reading, tcspc.acquisition_time_s))


def dark_floor(dark_cps: float, elapsed_s: float, s: DecaySettings) -> float:
    """Dark counts per channel (uncorrelated with the laser: flat over one period)."""
    return dark_cps * elapsed_s * s.resolution_ps * 1e-12 * s.repetition_rate_hz


def net_peak(counts, floor: float, width: int) -> float:
    """Net counts of the highest channel: the maximum of a ``width``-channel running mean (a
    single noisy channel would overestimate it) minus the dark ``floor`` per channel."""
    y = np.asarray(counts, dtype=float)
    w = max(1, min(int(width), y.size))
    return float(np.convolve(y, np.full(w, 1.0 / w), mode="valid").max() - floor)


def smooth_channels(kind: str, expected, s: DecaySettings) -> int:
    """Running-mean width (channels) for :func:`net_peak`: shortest expected lifetime /
    :data:`SMOOTH_PER_LIFETIME`; one channel for an IRF (it is narrower than that)."""
    if kind == "irf":
        return 1
    return max(1, int(round(min(expected) / SMOOTH_PER_LIFETIME / (s.resolution_ps / 1000.0))))


def choose_acquisition(fl, laser, tcspc, s: DecaySettings, *, dark_cps: float, peak_counts: float,
                       max_acquisition_s: float, max_count_fraction: float, preview_s: float,
                       start_intensity_permille: int, emission_nm: float, smooth: int = 1,
                       max_signal_fraction: float | None = None):
    """Sub-plan → :class:`Acquisition`.

    Refuses (ValueError) when the dark rate alone reaches ``max_count_fraction`` ×
    repetition rate. Previews at decreasing intensity until the TOTAL count rate (signal +
    dark) is ≤ ``max_count_fraction`` × repetition rate (and the signal ≤
    ``max_signal_fraction`` × it, if given); refuses (RuntimeError) when the preview's net
    counts are below :data:`SIGNIFICANCE_SIGMA` σ of its dark counts. The time is the one that
    brings the net peak (:func:`net_peak`) to ``peak_counts``, in [10 ms, ``max_acquisition_s``].
    """
    rep = s.repetition_rate_hz
    limit = max_count_fraction * rep
    if dark_cps >= limit:
        raise ValueError(
            f"max_count_fraction={max_count_fraction:g} allows a total count rate of {limit:.4g} "
            f"counts/s at repetition_rate_hz={rep} Hz, but the dark count rate alone is "
            f"{dark_cps:.4g} counts/s; allowed: a dark rate below max_count_fraction x "
            "repetition_rate_hz (raise max_count_fraction up to 0.05, or cool the detector)")
    budget = limit - dark_cps
    if max_signal_fraction is not None:
        budget = min(budget, max_signal_fraction * rep)
    intensity = int(start_intensity_permille)
    for _ in range(MAX_PREVIEWS):
        yield from bps.mv(laser.intensity_permille, intensity)
        reading = yield from _lit(fl, laser, _acquire(tcspc, preview_s))
        total = float(_value(reading, tcspc.count_rate))
        signal = max(total - dark_cps, 0.0)
        if signal > budget:
            new = int(math.floor(intensity * 0.8 * budget / signal))
            if new < 1:
                raise ValueError(
                    f"the signal count rate {signal:.4g} counts/s (total {total:.4g}, dark "
                    f"{dark_cps:.4g}) exceeds the {budget:.4g} counts/s that max_count_fraction="
                    f"{max_count_fraction:g} x repetition_rate_hz={rep} Hz leaves even at the "
                    "lowest laser intensity; narrow the emission slit")
            intensity = new
            continue
        elapsed = float(_value(reading, tcspc.acquisition_time_s))
        counts = np.asarray(_value(reading, tcspc.histogram), dtype=float)
        net = float(counts.sum()) - dark_cps * elapsed
        # Poisson σ of the preview's dark counts and of the dark measurement scaled to it
        sigma = math.sqrt(max(dark_cps * elapsed * (1.0 + elapsed / DARK_TIME_S), 1.0))
        peak = net_peak(counts, dark_floor(dark_cps, elapsed, s), smooth)
        if net < SIGNIFICANCE_SIGMA * sigma or not peak > 0.0:
            raise RuntimeError(
                f"no luminescence above the dark counts at emission_nm={emission_nm:g} nm: in a "
                f"{elapsed:g} s preview the signal rate is {net / elapsed:.4g} counts/s against a "
                f"dark rate of {dark_cps:.4g} counts/s (needed: > {SIGNIFICANCE_SIGMA:g} sigma = "
                f"{SIGNIFICANCE_SIGMA * sigma / elapsed:.3g} counts/s); check emission_nm against "
                "the detector's spectral range and the sample")
        tacq = min(_ms(peak_counts * elapsed / peak), math.floor(max_acquisition_s * 1e3) / 1e3)
        return Acquisition(intensity, tacq, total, signal, dark_cps, peak / elapsed)
    raise RuntimeError(f"could not bring the count rate below {limit:.4g} counts/s in "
                       f"{MAX_PREVIEWS} previews")


def acquire_to_peak(tcspc, s: DecaySettings, acq: Acquisition, *, peak_counts: float,
                    max_acquisition_s: float, smooth: int):
    """Sub-plan: the main acquisition, then top-ups summed into the same histogram (the
    detector's ``accumulate``) while the net peak is short of ``peak_counts`` by more than
    :data:`PEAK_TOLERANCE`, at most :data:`MAX_TOPUPS` and ``max_acquisition_s`` in all.
    Returns the last reading (the summed histogram)."""
    reading = yield from _acquire(tcspc, acq.time_s)
    for topup in range(MAX_TOPUPS + 1):
        elapsed = float(_value(reading, tcspc.acquisition_time_s))
        peak = net_peak(_value(reading, tcspc.histogram),
                        dark_floor(acq.dark_cps, elapsed, s), smooth)
        room = max_acquisition_s - elapsed
        if peak >= (1.0 - PEAK_TOLERANCE) * peak_counts:
            break
        if room < MIN_TIME_S or topup == MAX_TOPUPS or not peak > 0.0:
            logger.warning("net peak %.4g counts of the %.4g requested after %.4g s "
                           "(max_acquisition_s=%g)", peak, peak_counts, elapsed, max_acquisition_s)
            break
        more = min(_ms((peak_counts - peak) * elapsed / peak), math.floor(room * 1000.0) / 1000.0)
        reading = yield from _acquire(tcspc, more, accumulate=True)
    return reading


def _decay_run(plan_name, kind, fl, laser, tcspc, sample, *, emission_nm, s: DecaySettings,
               holder, irf_uid, n_exp, expected, opts, md):
    """Sub-plan: configure, dark, previews, then one run with one event: the histogram of the
    main acquisition and its top-ups, summed."""
    yield from bps.mv(fl.lamp_shutter, "closed", fl.detector_shutter, "closed")
    yield from bps.mv(fl.holder, holder, fl.emission.slit_um, opts["emission_slit_um"])
    yield from bps.mv(fl.emission.wavelength, emission_nm)
    yield from _configure(laser, tcspc, s)
    dark = yield from dark_rate(fl, tcspc)
    smooth = smooth_channels(kind, expected, s)
    signal_cap = IRF_SIGNAL_FRACTION if kind == "irf" else None
    acq = yield from choose_acquisition(
        fl, laser, tcspc, s, dark_cps=dark, peak_counts=opts["peak_counts"],
        max_acquisition_s=opts["max_acquisition_s"], max_count_fraction=opts["max_count_fraction"],
        preview_s=opts["preview_s"], start_intensity_permille=opts["intensity_permille"],
        emission_nm=emission_nm, smooth=smooth, max_signal_fraction=signal_cap)
    yield from bps.mv(laser.intensity_permille, acq.intensity_permille)
    rep = s.repetition_rate_hz
    start_md = {
        "plan_name": plan_name, "measurement": plan_name, "instrument": "FluoTime300",
        "plan_args": {"emission_nm": float(emission_nm), "expected_lifetime_ns": expected, **opts},
        "sample": as_sample(sample).to_md(), "detectors": [tcspc.name], "motors": [],
        "num_points": 1,
        "decay": {"kind": kind, "counts_key": tcspc.histogram.name, "time_key": tcspc.time_ns.name,
                  "resolution_key": tcspc.resolution_ps.name, "irf_uid": irf_uid,
                  "acquisition_time_key": tcspc.acquisition_time_s.name,
                  "acquisitions_key": tcspc.acquisitions.name,
                  "emission_nm": float(emission_nm), "excitation_nm": float(laser.wavelength_nm.get()),
                  "repetition_rate_hz": rep, "expected_lifetime_ns": expected,
                  "n_exp": int(n_exp), "dark_cps": dark},
        "acquisition": {**asdict(s), "intensity_permille": acq.intensity_permille,
                        "acquisition_time_s": acq.time_s,
                        "max_acquisition_s": opts["max_acquisition_s"],
                        "total_rate_cps": acq.total_cps, "signal_rate_cps": acq.signal_cps,
                        "count_fraction": acq.total_cps / rep,
                        "signal_fraction": acq.signal_cps / rep,
                        "count_rate_rule": "total count rate (signal + dark) <= "
                                           "max_count_fraction x repetition_rate_hz",
                        "max_count_fraction": opts["max_count_fraction"],
                        "max_signal_fraction": signal_cap,
                        "target_peak_counts": opts["peak_counts"],
                        "target": "net peak: highest channel (running mean over smooth_channels) "
                                  "minus the dark floor per channel",
                        "smooth_channels": smooth, "preview_net_peak_cps": acq.net_peak_cps},
    }
    start_md.update(md or {})

    def event():
        def body():
            yield from acquire_to_peak(tcspc, s, acq, peak_counts=opts["peak_counts"],
                                       max_acquisition_s=opts["max_acquisition_s"], smooth=smooth)
            yield from bps.create("primary")
            for obj in (tcspc, laser, fl.emission.wavelength):
                yield from bps.read(obj)
            yield from bps.save()
            yield from bps.mv(tcspc.accumulate, False)
        yield from _lit(fl, laser, body())

    return (yield from bpp.run_wrapper(event(), md=start_md))


def _continuation_md(continues, md) -> dict | None:
    return {**(md or {}), "continues": continues} if continues else md


def instrument_response(fl, laser, tcspc, sample, *, expected_lifetime_ns, peak_counts: float = 1e4,
                        repetition_rate_hz=None, channels: int = 4096,
                        max_acquisition_s: float = 600.0,
                        max_count_fraction: float = MAX_COUNT_FRACTION,
                        preview_s: float = 0.2, emission_slit_um: float = 500.0,
                        intensity_permille: int = 100, continues: str | None = None,
                        md: dict | None = None):
    """The IRF: scatterer in the beam, emission monochromator at the laser wavelength, with
    the repetition rate and channel width a decay of ``expected_lifetime_ns`` will use.
    ``max_count_fraction`` bounds the total count rate (signal + dark), the signal is kept
    ≤ :data:`IRF_SIGNAL_FRACTION` of the repetition rate; ``peak_counts`` is net of the dark
    floor. ``continues`` (uid of an interrupted IRF run) is recorded; the IRF is measured
    whole."""
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
    ``peak_counts``: the NET peak to reach (highest channel minus the dark floor per channel,
    see the module docstring), within ``max_acquisition_s`` (s) in all.
    ``max_count_fraction``: bound on the TOTAL count rate (signal + dark) / repetition rate.
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
    # the scatterer is bright: start low (its signal is also capped, IRF_SIGNAL_FRACTION)
    irf_opts = {**opts, "preview_s": min(opts["preview_s"], 0.2), "emission_slit_um": 500.0,
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
