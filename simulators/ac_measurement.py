"""An ac susceptibility point as the MPMS3 AC option or the PPMS ACMS measures it.

Instrument-neutral: limits, instrument time per point, noise, the measured point
(:class:`AcPoint`) and its ``.dat`` columns for either layout. :class:`AcEngine` queues points
on a simulator's :class:`~.measurement_queue.MeasurementQueue`. Units: cgs-emu (emu, emu/Oe),
Oe, Hz, K, s.

Limits (``AC_INSTRUMENTS``)
---------------------------
- MPMS3 AC option: 0.1-1000 Hz, drive 0.1-10 Oe (QD's MPMS3 AC option specification; the real
  ``mpms3_ac_vs_f_ErCOT.dat`` uses 1-999 Hz at 2 Oe), averaging 0.5-600 s, 1-1000 cycles.
- PPMS ACMS: 10 Hz-10 kHz, drive 0.002-17 Oe (QD's ACMS specification), same averaging and
  cycle ranges (spinlight's choice; the ACMS dialog limits were not verified).

Instrument time per point (:func:`point_duration_s`)
----------------------------------------------------
``overhead + low_f_extra / (1 + (f / f_step)^4) + settle_cycles / f + readings * n / f`` where
``n = max(cycles, floor(averaging_s * f))`` is the number of drive cycles averaged (the ``AC
Cycles`` column: at least ``cycles``, at least ``averaging_s`` rounded down to whole cycles, as
in the real ErCOT file, 2 s at 999 Hz -> 1998 cycles). MPMS3 constants were fitted to the 539
point-to-point steps of the real ErCOT file (model / real: median 1.00, 5-95 % 0.90-1.18) and
reproduce timing.md's medians within 12 %: 36 s overhead (centring, autorange, trim coils), a
20 s step below ~8 Hz (seen in the real file between 8.5 and 6.7 Hz) and 35 settling cycles,
which dominate below ~2 Hz. PPMS ACMS: 22 s overhead (sample moves between the coil sets),
900 settling cycles and two readings per point give 54 s at 30 Hz, 27 s at 300 Hz and 24 s at
3 kHz for 1 s averaging (timing.md: 55, 30, 25 s).

Noise (:func:`noise_sigma_emu`)
-------------------------------
Per component (in-phase and out-of-phase), in emu::

    sigma_m^2 = [floor * (1 + (f_c / f)^p)]^2 * t_ref / t_acq + (relative * |m|)^2

a floor with a 1/f-like rise below ``f_c`` that averages down with the acquisition time
``t_acq = readings * n / f`` (fewer cycles / shorter averaging -> more noise), plus a relative
term (drive calibration, drift) that does not. The relative error therefore grows at low
frequency and at low signal. sigma_chi = sigma_m / drive (emu/Oe). MPMS3 values reproduce the
real ErCOT standard errors at 2 Oe (3-10e-9 emu/Oe above 10 Hz, 3-15e-8 below);
the ACMS floor (2e-8 emu at 10 kHz, QD's ACMS sensitivity figure) rises as 1/f below 1 kHz
(an induction coil's voltage is f * m), to ~1.4e-6 emu at 10 Hz for 2 s of averaging.
Reported standard errors are estimates from ``ERR_DOF`` blocks (true sigma * sqrt(chi2_k / k)),
so they scatter like a real instrument's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .measurement_queue import Window, read_window

ERR_DOF = 8                  # blocks behind a reported standard error
AC_NOISE_STREAM = 3          # rng stream id of ac points: default_rng([seed, 3, request index])
MPMS3_TRANSPORT_ACTION = 5   # written by a real MPMS3 on AC rows (ErCOT file), as are
MPMS3_AC_RANGE = 1           # AC Range and AC Measure Type
MPMS3_AC_MEASURE_TYPE = 5


@dataclass(frozen=True)
class AcInstrument:
    """One ac option: its limits, timing and noise constants (see the module docstring)."""

    name: str
    frequency_hz: tuple[float, float]
    amplitude_oe: tuple[float, float]
    averaging_s: tuple[float, float]
    cycles: tuple[int, int]
    overhead_s: float
    low_f_extra_s: float
    low_f_step_hz: float
    settle_cycles: float
    readings: int
    noise_floor_emu: float
    noise_corner_hz: float
    noise_exponent: float
    noise_relative: float
    noise_reference_s: float


AC_INSTRUMENTS: dict[str, AcInstrument] = {
    "MPMS3": AcInstrument("MPMS3", (0.1, 1000.0), (0.1, 10.0), (0.5, 600.0), (1, 1000),
                          overhead_s=36.0, low_f_extra_s=20.0, low_f_step_hz=8.0,
                          settle_cycles=35.0, readings=1,
                          noise_floor_emu=5e-9, noise_corner_hz=20.0, noise_exponent=1.0,
                          noise_relative=5e-5, noise_reference_s=2.0),
    "PPMS": AcInstrument("PPMS", (10.0, 10000.0), (0.002, 17.0), (0.5, 600.0), (1, 1000),
                         overhead_s=22.0, low_f_extra_s=0.0, low_f_step_hz=1.0,
                         settle_cycles=900.0, readings=2,
                         noise_floor_emu=2e-8, noise_corner_hz=1000.0, noise_exponent=1.0,
                         noise_relative=1e-4, noise_reference_s=1.0),
}


def instrument_spec(instrument: str) -> AcInstrument:
    try:
        return AC_INSTRUMENTS[instrument]
    except (KeyError, TypeError):
        raise ValueError(f"instrument={instrument!r} is not allowed; choose one of "
                         f"{sorted(AC_INSTRUMENTS)}") from None


def _in_range(name: str, value, lo: float, hi: float, unit: str, instrument: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not lo <= v <= hi:                        # also rejects NaN and text
        raise ValueError(f"{name}={value!r} {unit} is outside the {instrument} range "
                         f"{lo:g}..{hi:g} {unit}".replace("  ", " "))
    return v


def _timing_args(spec: AcInstrument, frequency_hz, averaging_s, cycles):
    f = _in_range("frequency_hz", frequency_hz, *spec.frequency_hz, "Hz", spec.name)
    avg = _in_range("averaging_s", averaging_s, *spec.averaging_s, "s", spec.name)
    c = _in_range("cycles", cycles, *spec.cycles, "", spec.name)
    if not c.is_integer():
        raise ValueError(f"cycles={cycles!r} is not a whole number; allowed {spec.cycles[0]}.."
                         f"{spec.cycles[1]}")
    return f, avg, int(c)


def validate_settings(instrument: str, frequency_hz, amplitude_oe, averaging_s, cycles):
    """Checked ``(frequency_hz, amplitude_oe, averaging_s, cycles)``; a ``ValueError`` names
    the parameter, the value and the instrument's range. ``cycles`` must be a whole number."""
    spec = instrument_spec(instrument)
    f, avg, c = _timing_args(spec, frequency_hz, averaging_s, cycles)
    a = _in_range("amplitude_oe", amplitude_oe, *spec.amplitude_oe, "Oe", spec.name)
    return f, a, avg, c


def averaged_cycles(frequency_hz: float, averaging_s: float, cycles: int) -> int:
    """Drive cycles averaged: at least ``cycles``, at least ``averaging_s`` in whole cycles."""
    return max(int(cycles), int(math.floor(averaging_s * frequency_hz + 1e-9)))


def acquisition_s(instrument: str, frequency_hz, averaging_s, cycles) -> float:
    """Instrument seconds spent averaging the signal (all readings of the point)."""
    spec = instrument_spec(instrument)
    f, avg, c = _timing_args(spec, frequency_hz, averaging_s, cycles)
    return spec.readings * averaged_cycles(f, avg, c) / f


def point_duration_s(instrument: str, frequency_hz, averaging_s, cycles) -> float:
    """Instrument seconds one ac point takes (module docstring; timing.md)."""
    spec = instrument_spec(instrument)
    f, avg, c = _timing_args(spec, frequency_hz, averaging_s, cycles)
    step = spec.low_f_extra_s / (1.0 + (f / spec.low_f_step_hz) ** 4)
    return spec.overhead_s + step + spec.settle_cycles / f + acquisition_s(instrument, f, avg, c)


def noise_sigma_emu(instrument: str, frequency_hz, averaging_s, cycles, moment_emu) -> float:
    """Standard deviation (emu) of each ac moment component (module docstring)."""
    spec = instrument_spec(instrument)
    f = float(frequency_hz)
    t_acq = acquisition_s(instrument, frequency_hz, averaging_s, cycles)
    floor = spec.noise_floor_emu * (1.0 + (spec.noise_corner_hz / f) ** spec.noise_exponent)
    return math.sqrt(floor**2 * spec.noise_reference_s / t_acq
                     + (spec.noise_relative * abs(float(moment_emu))) ** 2)


def sample_chi_emu_per_oe(model, temperature_K, field_Oe, frequency_hz, mass_mg):
    """True (chi', chi'') of the whole sample in emu/Oe: the model's molar values (emu mol^-1
    Oe^-1 per formula unit) times mass / molar mass. Broadcasts like ``model.chi_molar``."""
    c1, c2 = model.chi_molar(temperature_K, field_Oe, frequency_hz)
    scale = float(mass_mg) * 1e-3 / model.molar_mass_g_per_mol
    return np.asarray(c1) * scale, np.asarray(c2) * scale


@dataclass(frozen=True)
class AcPoint:
    """One measured ac point. chi in emu/Oe for the sample mass; T and H during the point."""

    instrument: str
    frequency_hz: float
    amplitude_oe: float
    averaging_s: float
    cycles: int                  # drive cycles averaged (AC Cycles)
    temperature_K: float
    field_Oe: float
    duration_s: float            # instrument time of the point
    chi_real_emu_per_Oe: float
    chi_imag_emu_per_Oe: float
    chi_real_err_emu_per_Oe: float
    chi_imag_err_emu_per_Oe: float
    phase_deg: float
    phase_err_deg: float

    @property
    def chi_abs_emu_per_Oe(self) -> float:
        return math.hypot(self.chi_real_emu_per_Oe, self.chi_imag_emu_per_Oe)

    @property
    def chi_abs_err_emu_per_Oe(self) -> float:
        a = self.chi_abs_emu_per_Oe
        if a == 0.0:
            return math.hypot(self.chi_real_err_emu_per_Oe, self.chi_imag_err_emu_per_Oe)
        return math.hypot(self.chi_real_emu_per_Oe * self.chi_real_err_emu_per_Oe,
                          self.chi_imag_emu_per_Oe * self.chi_imag_err_emu_per_Oe) / a

    # moment-type values (emu) = chi * drive amplitude
    @property
    def m_real_emu(self) -> float:
        return self.chi_real_emu_per_Oe * self.amplitude_oe

    @property
    def m_imag_emu(self) -> float:
        return self.chi_imag_emu_per_Oe * self.amplitude_oe

    @property
    def m_real_err_emu(self) -> float:
        return self.chi_real_err_emu_per_Oe * self.amplitude_oe

    @property
    def m_imag_err_emu(self) -> float:
        return self.chi_imag_err_emu_per_Oe * self.amplitude_oe


def measure(instrument: str, model, *, temperature_K: float, field_Oe: float,
            frequency_hz: float, amplitude_oe: float, averaging_s: float, cycles: int,
            mass_mg: float, rng: np.random.Generator) -> AcPoint:
    """One ac point of ``model`` (an AcModel: ``chi_molar``, ``molar_mass_g_per_mol``) for a
    sample of ``mass_mg`` at T, H; noise drawn from ``rng`` (same rng state -> same point)."""
    f, a, avg, c = validate_settings(instrument, frequency_hz, amplitude_oe, averaging_s, cycles)
    if not mass_mg > 0:
        raise ValueError(f"mass_mg={mass_mg!r} must be > 0")
    c1, c2 = (float(v) for v in sample_chi_emu_per_oe(model, temperature_K, field_Oe, f, mass_mg))
    sigma = noise_sigma_emu(instrument, f, avg, c, math.hypot(c1, c2) * a) / a    # emu/Oe
    x1, x2 = c1 + sigma * rng.standard_normal(), c2 + sigma * rng.standard_normal()
    e1, e2 = sigma * np.sqrt(rng.chisquare(ERR_DOF, 2) / ERR_DOF)
    mod = math.hypot(x1, x2)
    phase_err = 180.0 if mod == 0.0 else min(180.0, math.degrees(sigma / mod))
    return AcPoint(instrument, f, a, avg, averaged_cycles(f, avg, c), float(temperature_K),
                   float(field_Oe), point_duration_s(instrument, f, avg, c), x1, x2,
                   float(e1), float(e2), math.degrees(math.atan2(x2, x1)), phase_err)


# -- .dat columns ----------------------------------------------------------------------------
def mpms3_ac_row(p: AcPoint) -> dict:
    """MPMS3 ``.dat`` values of an ac row (AC columns; the VSM moment columns stay empty)."""
    return {
        "Temperature (K)": p.temperature_K,
        "Magnetic Field (Oe)": p.field_Oe,
        "Transport Action": MPMS3_TRANSPORT_ACTION,
        "AC Moment (emu)": p.chi_abs_emu_per_Oe * p.amplitude_oe,
        "AC M. Std Err. (emu)": p.chi_abs_err_emu_per_Oe * p.amplitude_oe,
        "AC Phase (deg)": p.phase_deg,
        "AC Phase Std. Err. (deg)": p.phase_err_deg,
        "AC Susceptibility (emu/Oe)": p.chi_abs_emu_per_Oe,
        "AC Suscept. Std Err. (emu/Oe)": p.chi_abs_err_emu_per_Oe,
        "AC X' (emu/Oe)": p.chi_real_emu_per_Oe,
        "AC X' Std Err. (emu/Oe)": p.chi_real_err_emu_per_Oe,
        "AC X'' (emu/Oe)": p.chi_imag_emu_per_Oe,
        "AC X'' Std Err. (emu/Oe)": p.chi_imag_err_emu_per_Oe,
        "AC Drive (Oe)": p.amplitude_oe,
        "AC Frequency (Hz)": p.frequency_hz,
        "AC Averaging Time (sec)": p.averaging_s,
        "AC Cycles": p.cycles,
        "AC Range": MPMS3_AC_RANGE,
        "AC Measure Type": MPMS3_AC_MEASURE_TYPE,
    }


def ppms_acms_row(p: AcPoint) -> dict:
    """PPMS ACMS ``.dat`` values (``PPMS_ACMS_COLUMNS``): moment-type M', M'' in emu."""
    return {
        "Temperature (K)": p.temperature_K,
        "Magnetic Field (Oe)": p.field_Oe,
        "Frequency (Hz)": p.frequency_hz,
        "Amplitude (Oe)": p.amplitude_oe,
        "M' (emu)": p.m_real_emu,
        "M'' (emu)": p.m_imag_emu,
        "M' Std Err. (emu)": p.m_real_err_emu,
        "M'' Std Err. (emu)": p.m_imag_err_emu,
        "Averaging Time (sec)": p.averaging_s,
        "Number of Cycles": p.cycles,
    }


AC_ROW_MAPPERS: dict[str, Callable[[AcPoint], dict]] = {"MPMS3": mpms3_ac_row,
                                                         "PPMS": ppms_acms_row}


def ac_row(p: AcPoint) -> dict:
    """The ``.dat`` values of ``p`` in its instrument's layout."""
    return AC_ROW_MAPPERS[p.instrument](p)


# -- queueing ac points ------------------------------------------------------------------------
def sample_ac_model(sample):
    """The ac preset named like the simulated ``sample`` (``ValueError`` listing the presets
    if there is none)."""
    from .samples import AC_PRESETS, get_ac_model   # imported late: heavy physics
    if hasattr(sample, "chi_molar"):
        return sample
    name = getattr(sample, "name", None)
    if name not in AC_PRESETS:
        raise ValueError(f"the simulated sample {name!r} has no ac model; ac presets: "
                         f"{list(AC_PRESETS)} (or pass ac_model=)")
    return get_ac_model(name)


class AcEngine:
    """ac points on a :class:`~.measurement_queue.MeasurementQueue` at the current T and H.

    ``model`` is an AcModel or a zero-argument callable returning one (resolved at the first
    request; it may raise ``ValueError``). ``temperature`` / ``magnet`` provide ``value(t)``;
    ``extra_columns(window)`` adds the instrument's status columns to each row. A point
    measures over the last ``acquisition_s`` of its duration; its row is stamped at the middle
    of that window and written when the point ends. Noise: ``default_rng([seed, 3, r])`` with
    ``r`` the ac request index.
    """

    def __init__(self, queue, instrument: str, *, model, mass_mg: float, temperature, magnet,
                 seed: int, extra_columns: Callable[[Window], dict] | None = None):
        self.queue, self.spec = queue, instrument_spec(instrument)
        self._model = model if hasattr(model, "chi_molar") else None
        self._model_source = model
        self.mass_mg, self.seed = float(mass_mg), int(seed)
        self.temperature, self.magnet = temperature, magnet
        self.extra_columns = extra_columns

    @property
    def model(self):
        if self._model is None:
            self._model = self._model_source()
        return self._model

    def request(self, t: float, frequency_hz, amplitude_oe, averaging_s, cycles) -> int:
        """Queue one point at instrument time ``t`` (caller holds the simulator lock); returns
        its Measurement Number. Bad settings raise ``ValueError`` and queue nothing."""
        name = self.spec.name
        settings = validate_settings(name, frequency_hz, amplitude_oe, averaging_s, cycles)
        model = self.model
        duration = point_duration_s(name, settings[0], settings[2], settings[3])
        t_acq = acquisition_s(name, settings[0], settings[2], settings[3])
        q = self.queue
        end = q.reserve(t, duration) + duration
        number, r = q.next_number(), q.next_index("ac")
        q.submit(end, lambda: self._row(model, number, r, end - t_acq, end, settings))
        return number

    def _row(self, model, number: int, r: int, t0: float, t1: float, settings) -> dict:
        f, a, avg, c = settings
        rng = np.random.default_rng([self.seed, AC_NOISE_STREAM, r])
        w = read_window(self.temperature, self.magnet, t0, t1, rng)
        point = measure(self.spec.name, model, temperature_K=w.T_mean, field_Oe=w.H_mean,
                        frequency_hz=f, amplitude_oe=a, averaging_s=avg, cycles=c,
                        mass_mg=self.mass_mg, rng=rng)
        row = {"time_unix": w.t_mid, "Measurement Number": number, **ac_row(point)}
        if self.extra_columns is not None:
            row.update(self.extra_columns(w))
        return row
