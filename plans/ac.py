"""ac susceptibility plans: ``ac_frequency_sweep``, ``ac_field_scan``, ``ac_temperature_scan``.

A measurement *set* is one (temperature, field) setpoint at which a list of frequencies is
measured. Frequencies are shared out between the instruments (``AcStation``) by range: each
frequency goes to the first station, in the order given, whose range covers it, so an MPMS3
(0.1–1000 Hz) plus a PPMS ACMS (10 Hz–10 kHz) give one 0.1 Hz–10 kHz data set per sample.
Each station's points go to their own event stream (``ac_mpms3``, ``ac_ppms``); every event
carries the set index and the setpoints, so the analysis groups by set, never by clustering
measured temperatures.

Like the dc plans: validation at call time, metadata in the start document, a checkpoint per
point, ``finalize_wrapper`` leaving every station with the field at zero and the temperature
held, and ``resume_after``/``continues`` to continue an interrupted run (:mod:`.resume`): the
points are the events of all ac streams in the plan's order (per set: each station in turn,
its frequencies in order), a partly measured set is entered at its first remaining point, and
events keep their set index and setpoints so the analysis merges both runs by set.
"""

from __future__ import annotations

from dataclasses import dataclass, fields as dataclass_fields

import numpy as np
import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from ophyd import Signal

from spinlight.instruments import mpms3 as _mpms3
from spinlight.instruments import ppms as _ppms
from spinlight.instruments.errors import check_choice, check_range

from .checks import Checks
from .resume import blocks_left, resume_md, validate_resume
from .safety import qd_safe_state
from .sample import as_sample, finite_list


@dataclass(frozen=True)
class AcLimits:
    """What one ac instrument accepts, without its devices: the ranges the ac validators check
    (an :class:`AcStation` reads the same attributes from its own, so either can be validated
    against)."""

    name: str
    frequency_range_Hz: tuple[float, float]
    amplitude_range_Oe: tuple[float, float]
    temperature_range_K: tuple[float, float]
    field_range_Oe: tuple[float, float]
    averaging_range_s: tuple[float, float]
    cycles_range: tuple[int, int]
    temperature_rate_range_K_per_min: tuple[float, float]
    field_rate_range_Oe_per_s: tuple[float, float]


#: The range attributes of :class:`AcLimits` (every field after ``name``).
_RANGES = tuple(f.name for f in dataclass_fields(AcLimits)[1:])


@dataclass(frozen=True, init=False)
class AcStation:
    """One instrument that measures ac susceptibility: a QD system (``.temperature`` and
    ``.field`` positioners), its ac detector and ``limits``, the :class:`AcLimits` named after
    the system.

    ``AcStation(system, detector, *ranges)`` takes the ranges in :class:`AcLimits` order after
    ``name`` (positionally or by name); each one also reads as an attribute of the station
    (``station.frequency_range_Hz``)."""

    system: object
    detector: object
    limits: AcLimits

    def __init__(self, system, detector, *ranges, **named_ranges):
        limits = AcLimits(system.name, *ranges, **named_ranges)
        for attr, value in (("system", system), ("detector", detector), ("limits", limits)):
            object.__setattr__(self, attr, value)     # frozen: plain assignment is refused

    def __getattr__(self, attr: str):
        # only reached for names the station lacks: the ranges, read from its limits
        if attr in _RANGES:
            return getattr(self.limits, attr)
        raise AttributeError(f"'AcStation' object has no attribute {attr!r}")

    @property
    def name(self) -> str:
        return self.system.name

    @property
    def stream(self) -> str:
        return f"ac_{self.name}"


def ac_station(system, detector, *, temperature_range_K, field_range_Oe,
               temperature_rate_range_K_per_min, field_rate_range_Oe_per_s) -> AcStation:
    """An :class:`AcStation` whose ac ranges come from the detector's instrument limits
    (``detector.limits``: frequency_hz, amplitude_oe, averaging_s, cycles)."""
    lim = detector.limits
    missing = [k for k in ("frequency_hz", "amplitude_oe", "averaging_s", "cycles") if k not in lim]
    if missing:
        raise ValueError(f"detector {detector.name!r} has no limits for {missing}")
    return AcStation(system, detector, tuple(lim["frequency_hz"][:2]), tuple(lim["amplitude_oe"][:2]),
                     tuple(temperature_range_K), tuple(field_range_Oe),
                     tuple(lim["averaging_s"][:2]), tuple(int(c) for c in lim["cycles"][:2]),
                     tuple(temperature_rate_range_K_per_min), tuple(field_rate_range_Oe_per_s))


def _system_ranges(module) -> dict:
    """Temperature/field ranges and rates of a QD system from its instrument module."""
    return dict(temperature_range_K=module.TEMPERATURE_RANGE_K, field_range_Oe=module.FIELD_RANGE_OE,
                temperature_rate_range_K_per_min=module.TEMPERATURE_RATE_K_PER_MIN,
                field_rate_range_Oe_per_s=module.FIELD_RATE_OE_PER_S)


#: ac instruments by station name -> their instrument module (limit constants).
AC_INSTRUMENTS = {"mpms3": _mpms3, "ppms": _ppms}


def ac_instrument_limits(name: str) -> AcLimits:
    """:class:`AcLimits` of ``"mpms3"`` (AC option, 0.1-1000 Hz) or ``"ppms"`` (ACMS,
    10 Hz-10 kHz) from the instrument modules' constants, the numbers the drivers enforce."""
    check_choice("ac instrument", name, set(AC_INSTRUMENTS))
    m = AC_INSTRUMENTS[name]
    return AcLimits(name, tuple(m.AC_FREQUENCY_HZ), tuple(m.AC_AMPLITUDE_OE),
                    averaging_range_s=tuple(m.AC_AVERAGING_S),
                    cycles_range=tuple(int(c) for c in m.AC_CYCLES), **_system_ranges(m))


def mpms3_ac_station(mpms3, ac) -> AcStation:
    """The MPMS3 with its AC option (0.1–1000 Hz)."""
    return ac_station(mpms3, ac, **_system_ranges(_mpms3))


def ppms_ac_station(ppms, ac) -> AcStation:
    """The PPMS with its ACMS option (10 Hz–10 kHz)."""
    return ac_station(ppms, ac, **_system_ranges(_ppms))


def assign_frequencies(stations, frequencies_Hz) -> dict[str, list[float]]:
    """Station name -> its frequencies (Hz, in the order given). Each frequency goes to the
    first station whose range covers it; a frequency no station covers is an error naming it
    and every station's range."""
    if not stations:
        raise ValueError("stations is empty; give at least one AcStation")
    lo = min(s.frequency_range_Hz[0] for s in stations)
    hi = max(s.frequency_range_Hz[1] for s in stations)
    freqs = finite_list("frequencies_Hz", frequencies_Hz, lo, hi, "Hz")
    out: dict[str, list[float]] = {s.name: [] for s in stations}
    for i, f in enumerate(freqs):
        for s in stations:
            a, b = s.frequency_range_Hz
            if a <= f <= b:
                out[s.name].append(f)
                break
        else:
            ranges = ", ".join(f"{s.name} {s.frequency_range_Hz[0]:g}-{s.frequency_range_Hz[1]:g} Hz"
                               for s in stations)
            raise ValueError(f"frequencies_Hz[{i}]={f:g} Hz is covered by no instrument ({ranges})")
    return {k: v for k, v in out.items() if v}


@dataclass(frozen=True)
class _Settings:
    amplitude_Oe: float
    averaging_time_s: float
    cycles: int
    rate_K_per_min: float
    field_rate_Oe_per_s: float


@dataclass(frozen=True)
class AcSets:
    """Validated ac sets: the (T K, H Oe) setpoints in order, each station's frequencies (Hz),
    the per-point settings and the stations (as given) that measure something."""

    setpoints: list
    share: dict
    settings: _Settings
    used: list

    @property
    def set_order(self) -> list[tuple[object, float]]:
        """One set's points in event order: ``(station, frequency Hz)``."""
        return [(s, f) for s in self.used for f in self.share[s.name]]

    @property
    def num_points(self) -> int:
        return sum(len(v) for v in self.share.values()) * len(self.setpoints)


#: (plan option, station range attribute, unit) of the settings every station must accept.
_STATION_SETTINGS = (("amplitude_Oe", "amplitude_range_Oe", "Oe"),
                     ("averaging_time_s", "averaging_range_s", "s"),
                     ("cycles", "cycles_range", ""),
                     ("rate_K_per_min", "temperature_rate_range_K_per_min", "K/min"),
                     ("field_rate_Oe_per_s", "field_rate_range_Oe_per_s", "Oe/s"))


def _axis(c: Checks, option: str, value, low: float, high: float, unit: str) -> list:
    """``[(label, value)]`` of a setpoint axis: a list option (the scanned axis, labels
    ``option[i]``) or a number (the fixed one); coarse sanity range ``low..high`` first."""
    with c(option):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            return [(option, check_range(option, value, low, high, unit))]
        return [(f"{option}[{i}]", v)
                for i, v in enumerate(finite_list(option, value, low, high, unit))]
    return []


def validate_ac_sets(stations, *, temperature: tuple, field: tuple, frequencies_Hz,
                     amplitude_Oe, averaging_time_s, cycles, rate_K_per_min,
                     field_rate_Oe_per_s, resume_after=0, continues=None) -> AcSets:
    """The checks every ac plan makes, pure (no device is touched).

    ``stations``: :class:`AcStation` or :class:`AcLimits` objects (their order is the
    frequency preference). ``temperature`` and ``field`` are ``(option name, value)``: a number
    for the fixed setpoint, a list for the scanned axis. Every station that gets frequencies
    must accept the settings and every setpoint; ``resume_after`` must leave at least one
    point (:mod:`.resume`). Raises :class:`~.checks.PlanArgumentError` listing every
    bad argument, each naming the option, the value, the instrument and its range.
    """
    c = Checks()
    stations = list(stations)
    names = [s.name for s in stations]
    with c("stations"):
        if len(set(names)) != len(names):
            raise ValueError(f"stations has duplicate instrument names {names}")
    temps = _axis(c, *temperature, 0.0, 1000.0, "K")
    fields = _axis(c, *field, -1.0e5, 1.0e5, "Oe")
    share: dict[str, list[float]] = {}
    if not c.failed("stations"):
        with c("frequencies_Hz"):
            share = assign_frequencies(stations, frequencies_Hz)
    settings = {"amplitude_Oe": amplitude_Oe, "averaging_time_s": averaging_time_s,
                "cycles": cycles, "rate_K_per_min": rate_K_per_min,
                "field_rate_Oe_per_s": field_rate_Oe_per_s}
    axes = ((temperature[0], temps, "temperature_range_K", "K"),
            (field[0], fields, "field_range_Oe", "Oe"))
    for s in (s for s in stations if s.name in share):
        for option, attr, unit in _STATION_SETTINGS:
            with c(option):
                check_range(f"{option} (on {s.name})", settings[option], *getattr(s, attr), unit)
        for option, values, attr, unit in axes:
            for label, v in values:
                with c(option):
                    check_range(f"{label} (on {s.name})", v, *getattr(s, attr), unit)
    validate_resume(c, resume_after=resume_after, continues=continues,
                    num_points=sum(len(v) for v in share.values()) * len(temps) * len(fields))
    c.raise_if_any()
    setpoints = [(float(t), float(h)) for _, t in temps for _, h in fields]
    settings = _Settings(float(amplitude_Oe), float(averaging_time_s), cycles,
                         float(rate_K_per_min), float(field_rate_Oe_per_s))
    return AcSets(setpoints, share, settings, [s for s in stations if s.name in share])


def validate_ac_frequency_sweep(stations, *, temperature_K, field_Oe, **options) -> AcSets:
    """:func:`ac_frequency_sweep`'s checks (``options``: frequencies and settings)."""
    return validate_ac_sets(stations, temperature=("temperature_K", temperature_K),
                            field=("field_Oe", field_Oe), **options)


def validate_ac_field_scan(stations, *, temperature_K, fields_Oe, **options) -> AcSets:
    """:func:`ac_field_scan`'s checks (``options``: frequencies and settings)."""
    return validate_ac_sets(stations, temperature=("temperature_K", temperature_K),
                            field=("fields_Oe", fields_Oe), **options)


def validate_ac_temperature_scan(stations, *, temperatures_K, field_Oe, **options) -> AcSets:
    """:func:`ac_temperature_scan`'s checks (``options``: frequencies and settings)."""
    return validate_ac_sets(stations, temperature=("temperatures_K", temperatures_K),
                            field=("field_Oe", field_Oe), **options)


def _ac_sets(plan_name, sample, sets: AcSets, dimension: str, md, extra_md, resume_after=0,
             continues=None):
    """The shared body: for each validated (T, H) setpoint move every station used and measure
    its share of the frequencies (after the first ``resume_after`` points of the full plan)."""
    share, settings, setpoints, used = sets.share, sets.settings, sets.setpoints, sets.used
    set_index = Signal(name="ac_set_index", value=0)
    t_set = Signal(name="ac_temperature_setpoint_K", value=float(setpoints[0][0]))
    h_set = Signal(name="ac_field_setpoint_Oe", value=float(setpoints[0][1]))
    plan_args = {"setpoints": [[float(t), float(h)] for t, h in setpoints],
                 "frequencies_Hz": {k: v for k, v in share.items()},
                 "amplitude_Oe": settings.amplitude_Oe, "averaging_time_s": settings.averaging_time_s,
                 "cycles": settings.cycles, "rate_K_per_min": settings.rate_K_per_min,
                 "field_rate_Oe_per_s": settings.field_rate_Oe_per_s}
    start_md = {
        "plan_name": plan_name, "plan_args": plan_args, "measurement": plan_name,
        "instrument": "+".join(s.name.upper() for s in used),
        "instruments": [s.name for s in used],
        "sample": sample.to_md(),
        "detectors": [s.detector.name for s in used],
        "motors": [dimension],
        "num_points": sets.num_points - resume_after,
        "num_sets": len(setpoints),
        "ac_streams": [s.stream for s in used],
        "frequency_range_Hz": [min(min(v) for v in share.values()),
                               max(max(v) for v in share.values())],
        "hints": {"dimensions": [([f"{s.detector.name}_frequency_hz"], s.stream) for s in used]},
    }
    start_md.update(extra_md)
    start_md.update(resume_md(resume_after, continues, sets.num_points))
    start_md.update(md or {})

    @bpp.run_decorator(md=start_md)
    def inner():
        for s in used:
            yield from bps.mv(s.system.temperature.rate_K_per_min, settings.rate_K_per_min,
                              s.system.field.rate_Oe_per_s, settings.field_rate_Oe_per_s,
                              s.detector.amplitude_oe, settings.amplitude_Oe,
                              s.detector.averaging_s, settings.averaging_time_s,
                              s.detector.cycles, settings.cycles)
        order = sets.set_order
        for k, first in blocks_left([len(order)] * len(setpoints), resume_after):
            t, h = setpoints[k]
            yield from bps.checkpoint()
            yield from bps.mv(set_index, k, t_set, float(t), h_set, float(h))
            moves = []
            for s in used:   # all stations approach the setpoint together
                moves += [s.system.field, float(h), s.system.temperature, float(t)]
            yield from bps.mv(*moves)
            for s, f in order[first:]:
                yield from bps.checkpoint()
                yield from bps.mv(s.detector.frequency_hz, f)
                yield from bps.trigger_and_read([s.detector, s.system, set_index, t_set, h_set],
                                                name=s.stream)

    def safe():
        for s in used:
            yield from qd_safe_state(s.system)

    return bpp.finalize_wrapper(inner(), safe())


def default_frequencies_Hz(f_min: float = 0.1, f_max: float = 10000.0, per_decade: int = 6) -> list[float]:
    """Log-spaced frequencies, ``per_decade`` per decade, from ``f_min`` to ``f_max`` (Hz)."""
    check_range("f_min", f_min, 1e-3, 1e5, "Hz")
    check_range("f_max", f_max, f_min, 1e5, "Hz")
    check_range("per_decade", per_decade, 1, 50, "")
    n = int(round(np.log10(f_max / f_min) * per_decade)) + 1
    return [float(f) for f in np.geomspace(f_min, f_max, max(n, 2))]


def _ac_plan(plan_name: str, dimension: str, validate, fixed: tuple[str, ...], stations, sample,
             md, **options):
    """The public plans' body: ``options`` (setpoints, frequencies, settings, ``resume_after``
    and ``continues``, by name) checked by ``validate``, then the sets measured; ``fixed``
    names the single-setpoint options that go into the start document."""
    sample = as_sample(sample)
    sets = validate(stations, **options)
    return _ac_sets(plan_name, sample, sets, dimension, md, {k: float(options[k]) for k in fixed},
                    options["resume_after"], options["continues"])


# --------------------------------------------------------------------------------------------
def ac_frequency_sweep(stations, sample, *, temperature_K: float, field_Oe: float,
                       frequencies_Hz, amplitude_Oe: float = 2.0, averaging_time_s: float = 5.0,
                       cycles: int = 10, rate_K_per_min: float = 2.0,
                       field_rate_Oe_per_s: float = 100.0, resume_after: int = 0,
                       continues: str | None = None, md: dict | None = None):
    """χ'(f), χ''(f) at one temperature (K) and one dc field (Oe)."""
    return _ac_plan("ac_frequency_sweep", "frequency", validate_ac_frequency_sweep,
                    ("temperature_K", "field_Oe"), **locals())   # every argument, by name


def ac_field_scan(stations, sample, *, temperature_K: float, fields_Oe, frequencies_Hz,
                  amplitude_Oe: float = 2.0, averaging_time_s: float = 5.0, cycles: int = 10,
                  rate_K_per_min: float = 2.0, field_rate_Oe_per_s: float = 100.0,
                  resume_after: int = 0, continues: str | None = None, md: dict | None = None):
    """χ''(f, H) at a fixed temperature: one frequency sweep per field of ``fields_Oe``, to
    find the field that slows the relaxation most."""
    return _ac_plan("ac_field_scan", "field", validate_ac_field_scan, ("temperature_K",),
                    **locals())   # every argument, by name


def ac_temperature_scan(stations, sample, *, temperatures_K, field_Oe: float, frequencies_Hz,
                        amplitude_Oe: float = 2.0, averaging_time_s: float = 5.0, cycles: int = 10,
                        rate_K_per_min: float = 2.0, field_rate_Oe_per_s: float = 100.0,
                        resume_after: int = 0, continues: str | None = None,
                        md: dict | None = None):
    """χ''(f, T) at a fixed dc field: one frequency sweep per temperature, in the order given."""
    return _ac_plan("ac_temperature_scan", "temperature", validate_ac_temperature_scan,
                    ("field_Oe",), **locals())   # every argument, by name
