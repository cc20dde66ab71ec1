"""Campaign-time checks of the photoluminescence plans' options, before anything is connected.

The PL plans check wavelengths against the gratings of the *connected* monochromators and the
repetition rate against the connected laser, so they cannot be called without devices. Until
they expose pure validators, these functions check what can be known beforehand with the
plans' own constants and pure helpers (``LAMP_RANGE_NM``, ``GATE_RANGE_S``, ``SLIT_RANGE_UM``,
``spectrum_wavelengths``, the lifetime ranges and ``decay_settings``); the plan re-checks the
rest when it is called. Each raises :class:`~spinlight.plans.checks.PlanArgumentError` listing
every bad option. The keyword names are the plans' option names.
"""

from __future__ import annotations

from spinlight.instruments import picoquant_defs as hh
from spinlight.instruments.acton import RANGE_NM_AT_1200_G_PER_MM
from spinlight.instruments.errors import check_choice, check_range
from spinlight.plans import lifetime as lt
from spinlight.plans.checks import Checks
from spinlight.plans.pl import GATE_RANGE_S, LAMP_RANGE_NM, SLIT_RANGE_UM, spectrum_wavelengths
from spinlight.plans.sample import finite_list

#: Widest monochromator range on the bench: an SP-2150i with a 600 g/mm grating (nm).
MONO_RANGE_NM = (0.0, RANGE_NM_AT_1200_G_PER_MM * 1200.0 / 600.0)
#: Widest repetition-rate range of the supported lasers (Taiko PDL M1 driver default; the PiLas
#: is narrower): the plan re-checks against the connected laser (Hz).
LASER_RANGE_HZ = (1.0, 1.0e8)
#: HydraHarp 400 before it is opened: 1 ps base resolution, ``HH_BINSTEPSMAX`` binning codes.
HARP_BASE_RESOLUTION_PS = 1.0


def _spectrum(c: Checks, start_nm, stop_nm, step_nm, limits, parameter) -> None:
    for name, value in (("start_nm", start_nm), ("stop_nm", stop_nm)):
        with c(name):
            check_range(name, value, *limits, f"nm ({parameter} range)")
    if not c.failed("start_nm", "stop_nm"):
        with c("step_nm"):
            spectrum_wavelengths(start_nm, stop_nm, step_nm, limits_nm=limits, parameter=parameter)


def _settings(c: Checks, gate_s, excitation_slit_um, emission_slit_um) -> None:
    for name, value, rng, unit in (("gate_s", gate_s, GATE_RANGE_S, "s"),
                                   ("excitation_slit_um", excitation_slit_um, SLIT_RANGE_UM, "um"),
                                   ("emission_slit_um", emission_slit_um, SLIT_RANGE_UM, "um")):
        with c(name):
            check_range(name, value, *rng, unit)


def check_emission_spectrum(*, excitation_nm, start_nm, stop_nm, step_nm, gate_s,
                            excitation_slit_um, emission_slit_um) -> None:
    c = Checks()
    with c("excitation_nm"):
        check_range("excitation_nm", excitation_nm, *LAMP_RANGE_NM, "nm (Xe lamp)")
    _spectrum(c, start_nm, stop_nm, step_nm, MONO_RANGE_NM, "emission")
    _settings(c, gate_s, excitation_slit_um, emission_slit_um)
    c.raise_if_any()


def check_excitation_spectrum(*, emission_nm, start_nm, stop_nm, step_nm, gate_s,
                              excitation_slit_um, emission_slit_um) -> None:
    c = Checks()
    with c("emission_nm"):
        check_range("emission_nm", emission_nm, *MONO_RANGE_NM, "nm (emission monochromator)")
    _spectrum(c, start_nm, stop_nm, step_nm, LAMP_RANGE_NM, "excitation")
    _settings(c, gate_s, excitation_slit_um, emission_slit_um)
    c.raise_if_any()


def _decay(c: Checks, *, expected_lifetime_ns, peak_counts, repetition_rate_hz, channels,
           max_acquisition_s, max_count_fraction, preview_s, emission_slit_um,
           intensity_permille) -> None:
    for name, value, low, high, unit in (
            ("peak_counts", peak_counts, *lt.PEAK_COUNTS_RANGE, "counts"),
            ("max_acquisition_s", max_acquisition_s, *lt.ACQUISITION_RANGE_S, "s"),
            ("max_count_fraction", max_count_fraction, 1e-4, lt.MAX_COUNT_FRACTION,
             "(count rate / repetition rate)"),
            ("preview_s", preview_s, *lt.PREVIEW_RANGE_S, "s"),
            ("emission_slit_um", emission_slit_um, *SLIT_RANGE_UM, "um"),
            ("intensity_permille", intensity_permille, 1, 1000, "per mille")):
        with c(name):
            check_range(name, value, low, high, unit)
    with c("expected_lifetime_ns"):
        finite_list("expected_lifetime_ns", expected_lifetime_ns
                    if isinstance(expected_lifetime_ns, list) else [expected_lifetime_ns],
                    0.01, 1.0e6, "ns")
    with c("channels"):
        check_choice("channels", channels, lt.HISTOGRAM_CHANNELS)
    if not c.failed("expected_lifetime_ns", "channels"):
        # the plan's own rule: rate <= 1/(5 lifetimes), and a period must fit the histogram
        with c("expected_lifetime_ns" if repetition_rate_hz is None else "repetition_rate_hz"):
            lt.decay_settings(expected_lifetime_ns, laser_limits_hz=LASER_RANGE_HZ,
                              base_resolution_ps=HARP_BASE_RESOLUTION_PS,
                              binsteps=hh.HH_BINSTEPSMAX, channels=channels,
                              repetition_rate_hz=repetition_rate_hz)


def check_instrument_response(**options) -> None:
    c = Checks()
    _decay(c, **options)
    c.raise_if_any()


def check_lifetime_decay(*, emission_nm, n_exp, irf, **options) -> None:
    c = Checks()
    with c("emission_nm"):
        check_range("emission_nm", emission_nm, *MONO_RANGE_NM, "nm (emission monochromator)")
    with c("n_exp"):
        if n_exp is not None:
            check_range("n_exp", n_exp, 1, 3, "")
    with c("irf"):
        if not (irf is None or (isinstance(irf, str) and irf.strip())):
            raise ValueError(f"irf={irf!r} must be 'measure' or the uid of an IRF run")
    _decay(c, **options)
    c.raise_if_any()
