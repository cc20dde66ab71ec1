"""Argument checks of the photoluminescence plans, pure: the plans call them with the connected
bench's limits, campaign files (``spinlight check``) call them with the widest bench's before
anything is connected, so the two cannot disagree.

``validate_emission_spectrum`` / ``validate_excitation_spectrum`` (:mod:`.pl`),
``validate_emission_correction`` (:mod:`.pl_correction`) and
``validate_instrument_response`` / ``validate_lifetime_decay`` (:mod:`.lifetime`) take the
plan's option keywords plus optional instrument limits (monochromator ranges nm, laser
repetition-rate range Hz, laser lifetimes per period, TCSPC base resolution ps and binning
steps, laser wavelength nm, the detector's sensitive ranges nm); :func:`spectrum_limits` and
:func:`decay_limits` read those from connected devices. A decay's ``emission_nm`` (and the
laser wavelength, where the IRF is measured) must lie inside one of the detector's sensitive
ranges (default the FluoTime NIR-PMT's, ``NIR_PMT_RANGES_NM``: 950-1700 nm plus its weak
300-450 nm response): the monochromator reaches 600 nm, the NIR-PMT does not see it. Each
collects every bad argument with :class:`~.checks.Checks`, raises
:class:`~.checks.PlanArgumentError` (messages name parameter, value and allowed range) and
returns what the plan derives from its arguments: the wavelengths of a spectrum, the
:class:`DecaySettings` and normalised options of a decay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from spinlight.instruments import picoquant_defs as hh
from spinlight.instruments.acton import RANGE_NM_AT_1200_G_PER_MM, SLIT_RANGE_UM
from spinlight.instruments.errors import check_choice, check_range
# Xe lamp range of the excitation path (nm) and the photon counter's gate (s)
from spinlight.instruments.fluorometer import GATE_RANGE_S, LAMP_RANGE_NM, NIR_PMT_RANGES_NM
from spinlight.instruments.laser import LIFETIME_PERIODS, max_repetition_rate_hz

from .checks import Checks
from .resume import check_continues, validate_resume
from .sample import finite_list

MAX_SPECTRUM_POINTS = 20001
MAX_COUNT_FRACTION = 0.05            # count rate / repetition rate (pile-up rule, timing.md)
HISTOGRAM_CHANNELS = tuple(1024 << k for k in range(7))
PEAK_COUNTS_RANGE = (100.0, 1.0e8)
ACQUISITION_RANGE_S = (0.01, 360000.0)      # HydraHarp: 1 ms .. 100 h
PREVIEW_RANGE_S = (0.01, 60.0)
LIFETIME_RANGE_NS = (0.01, 1.0e6)
N_EXP_CHOICES = (1, 2, 3)

# The widest bench, the validators' defaults when nothing is connected; a connected bench's
# limits lie inside these, so a campaign refused here would be refused by the plan too.
#: An SP-2150i with a 600 g/mm grating (nm).
MONO_RANGE_NM = (0.0, RANGE_NM_AT_1200_G_PER_MM * 1200.0 / 600.0)
#: Certified range of the standard lamp (its certificate: ``analysis/standard_lamp.py``) (nm).
STANDARD_LAMP_RANGE_NM = (250.0, 2500.0)
#: Taiko PDL M1 driver default (the PiLas is narrower) (Hz).
LASER_RANGE_HZ = (1.0, 1.0e8)
#: HydraHarp 400 before it is opened: 1 ps base resolution, ``HH_BINSTEPSMAX`` binning codes.
HARP_BASE_RESOLUTION_PS = 1.0


# ---------------------------------------------------------------------- connected limits
def mono_range_nm(mono) -> tuple[float, float]:
    """The wavelength range (nm) of a monochromator's current grating."""
    d = mono.driver
    return 0.0, float(d.gratings[d.grating].max_nm)


def spectrum_limits(fl) -> dict:
    """The connected spectrofluorometer's limits, as keywords of the spectrum validators."""
    return {"excitation_range_nm": mono_range_nm(fl.excitation),
            "emission_range_nm": mono_range_nm(fl.emission)}


def decay_limits(fl, laser, tcspc) -> dict:
    """The connected bench's limits, as keywords of the decay validators."""
    return {"emission_range_nm": mono_range_nm(fl.emission),
            "laser_limits_hz": tuple(float(f) for f in laser.driver.frequency_limits_hz),
            "lifetime_periods": float(laser.lifetime_periods.get()),
            "base_resolution_ps": float(tcspc.driver.base_resolution_ps),
            "binsteps": int(tcspc.driver.binsteps),
            "laser_wavelength_nm": float(laser.wavelength_nm.get()),
            "detector_ranges_nm": tuple(fl.detector_ranges_nm)}


def check_in_ranges(parameter: str, value, ranges, what: str) -> float:
    """``value`` (nm) inside one of ``ranges`` ((low, high) pairs, nm) of ``what``; the
    error names the parameter, the value and every allowed range."""
    allowed = f"{', '.join(f'{lo:g}..{hi:g}' for lo, hi in ranges)} nm ({what})"
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{parameter}={value!r} is not a number; allowed ranges "
                         f"{allowed}") from None
    if not any(lo <= v <= hi for lo, hi in ranges):          # also refuses NaN
        raise ValueError(f"{parameter}={value!r} nm is outside the allowed ranges {allowed}")
    return v


# ---------------------------------------------------------------------------------- spectra
def spectrum_wavelengths(start_nm, stop_nm, step_nm, *, limits_nm=(0.0, 1e5),
                         parameter: str = "wavelength") -> list[float]:
    """Wavelengths (nm) from ``start_nm`` to ``stop_nm`` (either direction) in ``step_nm``
    steps, each inside ``limits_nm``; errors name the parameter, value and range."""
    lo, hi = (float(x) for x in limits_nm)
    a = check_range(f"{parameter} start_nm", start_nm, lo, hi, "nm")
    b = check_range(f"{parameter} stop_nm", stop_nm, lo, hi, "nm")
    step = check_range("step_nm", step_nm, 0.001, max(hi - lo, 0.001), "nm")
    n = int(math.floor(abs(b - a) / step + 1e-9)) + 1
    if n > MAX_SPECTRUM_POINTS:
        raise ValueError(f"step_nm={step_nm!r} nm gives {n} points from {a} to {b} nm; allowed "
                         f"at most {MAX_SPECTRUM_POINTS} (step >= {abs(b - a) / (MAX_SPECTRUM_POINTS - 1):.4g} nm)")
    sign = 1.0 if b >= a else -1.0
    return [round(a + sign * i * step, 6) for i in range(n)]


def _settings(c: Checks, *, gate_s, excitation_slit_um, emission_slit_um) -> None:
    for name, value, rng, unit in (("gate_s", gate_s, GATE_RANGE_S, "s"),
                                   ("excitation_slit_um", excitation_slit_um, SLIT_RANGE_UM, "um"),
                                   ("emission_slit_um", emission_slit_um, SLIT_RANGE_UM, "um")):
        with c(name):
            check_range(name, value, *rng, unit)


def _spectrum(c: Checks, *, start_nm, stop_nm, step_nm, limits_nm, source: str, resume_after,
              continues) -> list[float]:
    """The scanned wavelengths (nm), each inside ``limits_nm`` (of ``source``), then
    ``resume_after``/``continues`` against their number ([] when they are bad)."""
    wavelengths: list[float] = []
    for name, value in (("start_nm", start_nm), ("stop_nm", stop_nm)):
        with c(name):
            check_range(name, value, *limits_nm, f"nm ({source})")
    if not c.failed("start_nm", "stop_nm"):
        with c("step_nm"):
            wavelengths = spectrum_wavelengths(start_nm, stop_nm, step_nm, limits_nm=limits_nm)
    validate_resume(c, resume_after=resume_after, continues=continues, num_points=len(wavelengths))
    return wavelengths


def validate_emission_spectrum(*, excitation_nm, start_nm, stop_nm, step_nm, gate_s,
                               excitation_slit_um, emission_slit_um, resume_after=0,
                               continues=None, excitation_range_nm=MONO_RANGE_NM,
                               emission_range_nm=MONO_RANGE_NM) -> list[float]:
    """``emission_spectrum``'s checks: the emission wavelengths (nm) of the full plan.

    ``*_range_nm``: the monochromators' ranges (nm): default the widest on the bench, the plan
    passes its connected gratings' (:func:`spectrum_limits`).
    """
    c = Checks()
    with c("excitation_nm"):
        check_range("excitation_nm", excitation_nm, *LAMP_RANGE_NM, "nm (Xe lamp)")
        check_range("excitation_nm", excitation_nm, *excitation_range_nm,
                    "nm (excitation monochromator)")
    _settings(c, gate_s=gate_s, excitation_slit_um=excitation_slit_um,
              emission_slit_um=emission_slit_um)
    wavelengths = _spectrum(c, start_nm=start_nm, stop_nm=stop_nm, step_nm=step_nm,
                            limits_nm=emission_range_nm, source="emission monochromator",
                            resume_after=resume_after, continues=continues)
    c.raise_if_any()
    return wavelengths


def validate_excitation_spectrum(*, emission_nm, start_nm, stop_nm, step_nm, gate_s,
                                 excitation_slit_um, emission_slit_um, resume_after=0,
                                 continues=None, excitation_range_nm=MONO_RANGE_NM,
                                 emission_range_nm=MONO_RANGE_NM) -> list[float]:
    """``excitation_spectrum``'s checks: the excitation wavelengths (nm) of the full plan,
    inside both the Xe lamp's and the excitation monochromator's range (limits as in
    :func:`validate_emission_spectrum`)."""
    c = Checks()
    with c("emission_nm"):
        check_range("emission_nm", emission_nm, *emission_range_nm, "nm (emission monochromator)")
    _settings(c, gate_s=gate_s, excitation_slit_um=excitation_slit_um,
              emission_slit_um=emission_slit_um)
    limits = (max(LAMP_RANGE_NM[0], excitation_range_nm[0]),
              min(LAMP_RANGE_NM[1], excitation_range_nm[1]))
    wavelengths = _spectrum(c, start_nm=start_nm, stop_nm=stop_nm, step_nm=step_nm,
                            limits_nm=limits, source="Xe lamp and excitation monochromator",
                            resume_after=resume_after, continues=continues)
    c.raise_if_any()
    return wavelengths


def validate_emission_correction(*, start_nm, stop_nm, step_nm, gate_s, emission_slit_um,
                                 standard="", emission_range_nm=MONO_RANGE_NM) -> list[float]:
    """``emission_correction``'s checks: the emission wavelengths (nm) of the standard-lamp
    scan, inside the emission monochromator's range and the lamp's certified range; the lamp's
    certificate id ``standard`` a non-empty string."""
    c = Checks()
    with c("standard"):
        if not (isinstance(standard, str) and standard.strip()):
            raise ValueError(f"standard={standard!r} is not allowed; allowed: the certificate id "
                             "of the standard lamp (a non-empty string)")
    for name, value, rng, unit in (("gate_s", gate_s, GATE_RANGE_S, "s"),
                                   ("emission_slit_um", emission_slit_um, SLIT_RANGE_UM, "um")):
        with c(name):
            check_range(name, value, *rng, unit)
    limits = (max(STANDARD_LAMP_RANGE_NM[0], emission_range_nm[0]),
              min(STANDARD_LAMP_RANGE_NM[1], emission_range_nm[1]))
    wavelengths = _spectrum(c, start_nm=start_nm, stop_nm=stop_nm, step_nm=step_nm,
                            limits_nm=limits, source="standard lamp certificate and emission "
                            "monochromator", resume_after=0, continues=None)
    with c("step_nm"):
        if 0 < len(wavelengths) < 2:
            raise ValueError(f"start_nm={start_nm!r} and stop_nm={stop_nm!r} give "
                             f"{len(wavelengths)} point; allowed: at least 2 points (a response "
                             "is interpolated between them)")
    c.raise_if_any()
    return wavelengths


# ----------------------------------------------------------------------------------- decays
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
                   binsteps: int, channels: int = 4096, lifetime_periods: float = LIFETIME_PERIODS,
                   repetition_rate_hz=None) -> DecaySettings:
    """Repetition rate and binning for the expected lifetimes (ns), see :mod:`.lifetime`."""
    taus = finite_list("expected_lifetime_ns", np.atleast_1d(expected_lifetime_ns).tolist(),
                       *LIFETIME_RANGE_NS, "ns")
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
        try:
            rate = int(check_range("repetition_rate_hz", repetition_rate_hz, low, f_max))
        except ValueError:
            raise ValueError(
                f"repetition_rate_hz={repetition_rate_hz!r} Hz is outside the allowed range "
                f"{_digits4(low)}..{_digits4(f_max)} Hz (the laser's limits, and "
                f"{lifetime_periods:g} x the longest expected lifetime {tau:g} ns per period)"
            ) from None
    period_ps = 1e12 / rate
    binning = max(0, math.ceil(math.log2(period_ps / (channels * base_resolution_ps)) - 1e-12))
    if binning > binsteps - 1:
        raise ValueError(f"a {period_ps / 1e3:.6g} ns laser period does not fit {channels} channels "
                         f"at the coarsest binning; raise repetition_rate_hz or channels")
    res = base_resolution_ps * 2 ** binning
    return DecaySettings(rate, binning, res, channels, channels * res / 1e3, tau)


def _digits4(x: float) -> str:
    """``x`` with 4 significant digits, positional (328947.37 -> '328900')."""
    return np.format_float_positional(x, precision=4, unique=False, fractional=False, trim="-")


@dataclass(frozen=True)
class DecayArgs:
    """A decay plan's validated arguments: its settings, the expected lifetimes (ns), the
    number of exponentials to fit and the acquisition options, normalised (``peak_counts``,
    ``max_acquisition_s``, ``max_count_fraction``, ``preview_s``, ``emission_slit_um``,
    ``intensity_permille``)."""

    settings: DecaySettings
    expected_lifetime_ns: list
    n_exp: int
    options: dict


#: Acquisition options of the decay plans: (allowed range, unit, type).
_ACQUISITION = {"peak_counts": (PEAK_COUNTS_RANGE, "counts", float),
                "max_acquisition_s": (ACQUISITION_RANGE_S, "s", float),
                "max_count_fraction": ((1e-4, MAX_COUNT_FRACTION), "(count rate / repetition rate)",
                                       float),
                "preview_s": (PREVIEW_RANGE_S, "s", float),
                "emission_slit_um": (SLIT_RANGE_UM, "um", float),
                "intensity_permille": ((1, 1000), "per mille", int)}


def validate_instrument_response(*, expected_lifetime_ns, peak_counts, repetition_rate_hz,
                                 channels, max_acquisition_s, max_count_fraction, preview_s,
                                 emission_slit_um, intensity_permille, continues=None,
                                 emission_range_nm=MONO_RANGE_NM, laser_limits_hz=LASER_RANGE_HZ,
                                 lifetime_periods=LIFETIME_PERIODS,
                                 base_resolution_ps=HARP_BASE_RESOLUTION_PS,
                                 binsteps=hh.HH_BINSTEPSMAX, laser_wavelength_nm=None,
                                 detector_ranges_nm=NIR_PMT_RANGES_NM) -> DecayArgs:
    """``instrument_response``'s checks: its :class:`DecayArgs` (``n_exp`` 1).

    Limits (default: the widest bench; the plan passes the connected one's,
    :func:`decay_limits`): the emission monochromator's range (nm), the laser's repetition-rate
    range (Hz) and lifetimes per period, the TCSPC base resolution (ps) and binning steps, the
    laser wavelength (nm), where the IRF is measured (None: unknown, not checked; it must lie in
    the monochromator's range and in one of ``detector_ranges_nm``, the detector's sensitive
    ranges, nm: the NIR-PMT's weak UV response records the 375 nm IRF).
    """
    c = Checks()
    taus, settings = [], None
    acquisition = {"peak_counts": peak_counts, "max_acquisition_s": max_acquisition_s,
                   "max_count_fraction": max_count_fraction, "preview_s": preview_s,
                   "emission_slit_um": emission_slit_um, "intensity_permille": intensity_permille}
    for name, value in acquisition.items():
        (low, high), unit, _ = _ACQUISITION[name]
        with c(name):
            check_range(name, value, low, high, unit)
    with c("expected_lifetime_ns"):
        taus = finite_list("expected_lifetime_ns", np.atleast_1d(expected_lifetime_ns).tolist(),
                           *LIFETIME_RANGE_NS, "ns")
    with c("channels"):
        check_choice("channels", channels, HISTOGRAM_CHANNELS)
    with c("continues"):      # a decay is one event: a continuation re-measures it whole
        check_continues(continues)
    if laser_wavelength_nm is not None:
        with c("laser_wavelength_nm"):
            check_range("laser wavelength_nm", laser_wavelength_nm, *emission_range_nm,
                        "nm (emission monochromator)")
            check_in_ranges("laser wavelength_nm", laser_wavelength_nm, detector_ranges_nm,
                            "detector sensitive ranges")
    if not c.failed("expected_lifetime_ns", "channels"):
        # the rate rule (lifetimes per period, laser limits) and a period that fits the histogram
        with c("expected_lifetime_ns" if repetition_rate_hz is None else "repetition_rate_hz"):
            settings = decay_settings(expected_lifetime_ns, laser_limits_hz=laser_limits_hz,
                                      base_resolution_ps=base_resolution_ps, binsteps=binsteps,
                                      channels=channels, lifetime_periods=lifetime_periods,
                                      repetition_rate_hz=repetition_rate_hz)
    c.raise_if_any()
    return DecayArgs(settings, taus, 1, {k: _ACQUISITION[k][2](v) for k, v in acquisition.items()})


def validate_lifetime_decay(*, emission_nm, n_exp, irf, emission_range_nm=MONO_RANGE_NM,
                            laser_wavelength_nm=None, detector_ranges_nm=NIR_PMT_RANGES_NM,
                            **options) -> DecayArgs:
    """``lifetime_decay``'s checks: its :class:`DecayArgs` (``n_exp`` None: one exponential per
    expected lifetime). ``options``: the rest of the plan's options and the limits, checked as
    :func:`validate_instrument_response` checks them (the laser wavelength only when the IRF
    is measured first, ``irf='measure'``); ``emission_nm`` must lie in the emission
    monochromator's range and in one of ``detector_ranges_nm`` (nm); ``n_exp`` one of
    :data:`N_EXP_CHOICES`."""
    c = Checks()
    with c("emission_nm"):
        check_range("emission_nm", emission_nm, *emission_range_nm, "nm (emission monochromator)")
        check_in_ranges("emission_nm", emission_nm, detector_ranges_nm,
                        "detector sensitive ranges")
    with c("n_exp"):
        if n_exp is not None:
            if isinstance(n_exp, bool) or not isinstance(n_exp, (int, np.integer)):
                raise ValueError(f"n_exp={n_exp!r} is not allowed; choose one of "
                                 f"{list(N_EXP_CHOICES)} (an integer number of exponentials)")
            check_choice("n_exp", n_exp, N_EXP_CHOICES)
    with c("irf"):
        if not (irf is None or (isinstance(irf, str) and irf.strip())):
            raise ValueError(f"irf={irf!r} must be 'measure', an IRF run uid or None")
    args = None
    with c("options"):      # a nested validator: its problems keep their own option names
        args = validate_instrument_response(
            emission_range_nm=emission_range_nm, detector_ranges_nm=detector_ranges_nm,
            laser_wavelength_nm=laser_wavelength_nm if irf == "measure" else None, **options)
    c.raise_if_any()
    return replace(args, n_exp=len(args.expected_lifetime_ns) if n_exp is None else int(n_exp))
