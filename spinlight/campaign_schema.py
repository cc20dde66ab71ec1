"""Measurement kinds of campaign files: which plan, which instruments, which options.

One :class:`PlanKind` per plan in :data:`REGISTRY`. Option names, defaults and (where annotated)
types come from the plan's own signature (``inspect.signature``), so the schema cannot drift
from the plans; the values are checked by the plan's own pure validator (``validate_chi_t``,
``validate_ac_field_scan``, ...), the same function the plan calls, so a campaign that passes
``spinlight check`` cannot be refused by its plans for a bad argument.

To add a plan: give it keyword-only options (annotated ``float``/``int``/``str``/``bool``, or
list the type in ``types=``), write a pure ``validate_<plan>(*context, **options)`` that raises
:class:`~spinlight.plans.checks.PlanArgumentError`, and add one ``register(PlanKind(...))`` below.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Callable, Mapping

from spinlight.plans.checks import PlanArgumentError

from .campaign_types import (ANNOTATIONS, BOOL, INT, NUMBER, NUMBER_OR_NUMBERS, NUMBERS, REQUIRED,
                             STR, STRS, CountingReport, Report, did_you_mean, expand_range,
                             type_error, unknown_key)

#: Types of options whose plans leave them unannotated (lists, "number or list", None defaults).
COMMON_TYPES = {"temperatures_K": NUMBERS, "fields_Oe": NUMBERS, "frequencies_Hz": NUMBERS,
                "expected_lifetime_ns": NUMBER_OR_NUMBERS, "repetition_rate_hz": NUMBER,
                "irf": STR}
#: Keyword parameters that are never campaign options (the runner supplies them).
NOT_OPTIONS = ("md", "resume_after", "continues", "resume_from_K")   # the runner sets these itself
#: Keys of a ``[[measurements]]`` table that are not plan options.
RESERVED = {"plan": STR, "sample": STR, "stations": STRS, "label": STR}
#: Simulator preset families (sim mode: a sample's preset must have a model of this family).
SIM_MODELS = ("magnetic", "ac", "luminescence")


def resolve(target: str):
    """The object named ``"package.module:attribute"``."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Option:
    name: str
    type: str
    default: object = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class PlanKind:
    """A measurement kind: the plan (``"module:function"``), its validator (called as
    ``validator(*context(instruments), **options)``), the instruments it always needs and, for
    ac, the stations a measurement chooses among (``stations = [...]``, default: every one
    configured, in this order)."""

    name: str
    plan: str
    validator: str
    instruments: tuple[str, ...] = ()
    stations: tuple[str, ...] = ()
    context: Callable[[tuple[str, ...]], tuple] | None = None
    sim_model: str = "magnetic"
    types: Mapping[str, str] = field(default_factory=dict)
    devices: tuple[str, ...] = ()            # keyword-only device parameters, not options
    kwargs_from: str | None = None           # the plan forwards **kwargs to this function
    kwargs_exclude: tuple[str, ...] = ()     # ... except these, which the plan sets itself
    description: str = ""

    def plan_function(self):
        return resolve(self.plan)

    def validator_function(self):
        return resolve(self.validator)

    def options(self) -> dict[str, Option]:
        """Option name -> :class:`Option`, in signature order."""
        out: dict[str, Option] = {}
        for p in inspect.signature(self.plan_function()).parameters.values():
            if p.kind is p.VAR_KEYWORD and self.kwargs_from:
                for q in inspect.signature(resolve(self.kwargs_from)).parameters.values():
                    if q.kind is q.KEYWORD_ONLY and q.name not in out and self._is_option(q) \
                            and q.name not in self.kwargs_exclude:
                        out[q.name] = self._option(q)
            elif p.kind is p.KEYWORD_ONLY and self._is_option(p):
                out[p.name] = self._option(p)
        return out

    def _is_option(self, p) -> bool:
        return not (p.name.startswith("_") or p.name in NOT_OPTIONS or p.name in self.devices)

    def _option(self, p) -> Option:
        ann = p.annotation if not isinstance(p.annotation, str) else \
            p.annotation.replace(" | None", "").replace("Optional[", "").rstrip("]")
        type_ = self.types.get(p.name) or COMMON_TYPES.get(p.name) or ANNOTATIONS.get(ann)
        if type_ is None and p.default not in (p.empty, None):
            type_ = ANNOTATIONS.get(type(p.default))
        if type_ is None:
            raise LookupError(f"plan {self.name!r}: option {p.name!r} has no campaign type; "
                              f"annotate it or add it to PlanKind(types=...)")
        return Option(p.name, type_, REQUIRED if p.default is p.empty else p.default)


REGISTRY: dict[str, PlanKind] = {}


def register(kind: PlanKind) -> PlanKind:
    if kind.sim_model not in SIM_MODELS:
        raise ValueError(f"sim_model={kind.sim_model!r}; choose one of {SIM_MODELS}")
    REGISTRY[kind.name] = kind
    return kind


def ac_context(stations: tuple[str, ...]) -> tuple:
    """The ac validators' first argument: each station's :class:`AcLimits`."""
    from spinlight.plans.ac import ac_instrument_limits
    return ([ac_instrument_limits(s) for s in stations],)


_DC, _AC = "spinlight.plans.dc", "spinlight.plans.ac"
_PL, _LT, _PLC = "spinlight.plans.pl", "spinlight.plans.lifetime", "spinlight.plans.pl_checks"
_PLCOR = "spinlight.plans.pl_correction"
_MPMS3, _PL_BENCH = ("mpms3",), ("fluorometer", "laser", "tcspc")
_AC_STATIONS = dict(stations=("mpms3", "ppms"), context=ac_context, sim_model="ac")

register(PlanKind("chi_t", f"{_DC}:chi_t", f"{_DC}:validate_chi_t", instruments=_MPMS3,
                  description="M(T) at a fixed field, for chiT (MPMS3 VSM)"))
register(PlanKind("m_h", f"{_DC}:m_h", f"{_DC}:validate_m_h", instruments=_MPMS3,
                  description="M(H) isotherms (MPMS3 VSM)"))
register(PlanKind("mce_isotherms", f"{_DC}:mce_isotherms", f"{_DC}:validate_mce_isotherms",
                  instruments=_MPMS3, kwargs_from=f"{_DC}:m_h",
                  kwargs_exclude=("loop", "zero_field_between"),
                  description="M(H) isotherm set for the magnetocaloric effect (MPMS3 VSM)"))
register(PlanKind("ac_frequency_sweep", f"{_AC}:ac_frequency_sweep",
                  f"{_AC}:validate_ac_frequency_sweep", **_AC_STATIONS,
                  description="chi'(f), chi''(f) at one T and H (MPMS3 AC and/or PPMS ACMS)"))
register(PlanKind("ac_field_scan", f"{_AC}:ac_field_scan", f"{_AC}:validate_ac_field_scan",
                  **_AC_STATIONS, description="one frequency sweep per dc field"))
register(PlanKind("ac_temperature_scan", f"{_AC}:ac_temperature_scan",
                  f"{_AC}:validate_ac_temperature_scan", **_AC_STATIONS,
                  description="one frequency sweep per temperature"))
# Photoluminescence: no context, so the validators check against the widest bench's limits
# (the plans pass the connected gratings', laser's and TCSPC's).
register(PlanKind("emission_spectrum", f"{_PL}:emission_spectrum",
                  f"{_PLC}:validate_emission_spectrum",
                  instruments=("fluorometer",), devices=("laser",), sim_model="luminescence",
                  description="emission vs wavelength at a fixed lamp excitation"))
register(PlanKind("excitation_spectrum", f"{_PL}:excitation_spectrum",
                  f"{_PLC}:validate_excitation_spectrum", instruments=("fluorometer",),
                  devices=("laser",), sim_model="luminescence",
                  description="emission at one wavelength vs lamp excitation"))
register(PlanKind("emission_correction", f"{_PLCOR}:emission_correction",
                  f"{_PLC}:validate_emission_correction", instruments=("fluorometer",),
                  sim_model="luminescence",
                  description="emission spectral response on the standard lamp (correction)"))
register(PlanKind("instrument_response", f"{_LT}:instrument_response",
                  f"{_PLC}:validate_instrument_response", instruments=_PL_BENCH,
                  sim_model="luminescence", description="TCSPC instrument response (scatterer)"))
register(PlanKind("lifetime_decay", f"{_LT}:lifetime_decay", f"{_PLC}:validate_lifetime_decay",
                  instruments=_PL_BENCH, sim_model="luminescence",
                  description="TCSPC luminescence decay at one emission wavelength"))


def sim_presets(model: str) -> tuple[str, ...]:
    """Simulator preset names with a model of this family (imported only in sim mode)."""
    from spinlight.simulators.samples import presets
    return tuple({"magnetic": presets.SAMPLE_PRESETS, "ac": presets.AC_PRESETS,
                  "luminescence": presets.LUMINESCENCE_PRESETS}[model])


def _all_presets() -> set[str]:
    return set().union(*(sim_presets(m) for m in SIM_MODELS))


# ------------------------------------------------------------------ one [[measurements]] table
@dataclass(frozen=True)
class MeasurementSpec:
    """One validated measurement: ``options`` as written (range tables expanded), ``defaults``
    the plan's defaults for the rest; ``arguments()`` is what the plan is called with."""

    index: int
    plan: str
    sample: str
    instruments: tuple[str, ...]
    options: dict
    defaults: dict
    key_path: str
    line: int | None = None
    label: str = ""

    @property
    def kind(self) -> PlanKind:
        return REGISTRY[self.plan]

    def arguments(self) -> dict:
        return {**self.defaults, **self.options}


def check_measurement(index: int, table, *, samples: Mapping[str, str], configured: tuple[str, ...],
                      sim: bool, report: Report, line: int | None = None) -> MeasurementSpec | None:
    """Validate ``measurements[index]``; ``samples`` maps sample name -> simulator preset.
    Reports every problem; returns the spec only when there was none."""
    path = f"measurements[{index}]"
    rep = CountingReport(report)
    if not isinstance(table, dict):
        rep(path, table, f"each [[measurements]] entry must be a table, got {table!r}")
        return None
    for key, type_ in RESERVED.items():
        if key in table and (msg := type_error(table[key], type_)) is not None:
            rep(f"{path}.{key}", table[key], f"{key}={table[key]!r} {msg}")
    plan, sample = table.get("plan"), table.get("sample")
    kind = REGISTRY.get(plan) if isinstance(plan, str) else None
    if "plan" not in table:
        rep(path, None, f"plan is missing (required); allowed: {', '.join(REGISTRY)}")
    elif isinstance(plan, str) and kind is None:
        rep(f"{path}.plan", plan, f"plan={plan!r} is not a known plan; {did_you_mean(plan, REGISTRY)}"
                                  f"allowed: {', '.join(REGISTRY)}")
    if "sample" not in table:
        rep(path, None, "sample is missing (required): the name of a [[samples]] entry")
    elif isinstance(sample, str) and sample not in samples:
        rep(f"{path}.sample", sample, f"sample={sample!r} is not defined in [[samples]]; "
                                      f"{did_you_mean(sample, samples)}defined: "
                                      f"{', '.join(samples) or '(none)'}")
    if kind is None:
        return None
    instruments = _instruments(kind, table, path, configured, rep)
    if sim and isinstance(sample, str) and samples.get(sample) in _all_presets():
        presets = sim_presets(kind.sim_model)   # (an unknown preset is reported with the sample)
        if samples[sample] not in presets:
            rep(f"{path}.sample", sample, f"sample {sample!r} has simulator preset "
                f"{samples[sample]!r}, which has no {kind.sim_model} model (needed by {kind.name} "
                f"in sim mode); presets with one: {', '.join(presets)}")
    options, bad = _options(kind, table, path, rep)
    allowed = kind.options()
    defaults = {k: o.default for k, o in allowed.items() if k not in options}
    if instruments is None or any(o.required and k not in options for k, o in allowed.items()):
        return None
    # the plan's own checks, on every well-typed option (defaults stand in for the others,
    # whose problems are already reported)
    try:
        context = kind.context(instruments) if kind.context else ()
        kind.validator_function()(*context, **{**defaults, **options})
    except PlanArgumentError as e:
        for option, message in e.problems:
            if option not in bad:
                key = f"{path}.{option}" if option in allowed else path
                rep(key, options.get(option, defaults.get(option)), message)
    except ValueError as e:
        rep(path, None, str(e))
    if rep.count:
        return None
    label = table.get("label", "")
    return MeasurementSpec(index, plan, sample, instruments, options, defaults, path, line, label)


def _instruments(kind: PlanKind, table, path, configured, rep) -> tuple[str, ...] | None:
    """The instruments this measurement uses, or None (reported) when one is missing."""
    ok = True
    if "stations" in table and not kind.stations:
        unknown_key(rep, f"{path}.stations", "stations", table["stations"],
                    list(RESERVED.keys() - {"stations"}) + list(kind.options()), f"plan {kind.name}")
        return None
    stations: tuple[str, ...] = ()
    if kind.stations:
        given = table.get("stations")
        if given is None:
            stations = tuple(s for s in kind.stations if s in configured)
            if not stations:
                rep(f"{path}.plan", kind.name, f"plan {kind.name!r} needs one of the instruments "
                    f"{list(kind.stations)}; none is configured in [instruments] (add one, or "
                    f"set [instruments] mode = \"sim\")")
                return None
        elif isinstance(given, list):
            bad = [s for s in given if s not in kind.stations]
            if bad or not given or len(set(given)) != len(given):
                rep(f"{path}.stations", given, f"stations={given!r}: give each of "
                    f"{list(kind.stations)} at most once (at least one)")
                return None
            stations = tuple(given)
            for s in stations:
                if s not in configured:
                    ok = False
                    rep(f"{path}.stations", given, f"station {s!r} is not configured in "
                        f"[instruments] (add [instruments.{s}] or set mode = \"sim\")")
        else:
            return None   # type already reported
    for inst in kind.instruments:
        if inst not in configured:
            ok = False
            rep(f"{path}.plan", kind.name, f"plan {kind.name!r} needs instrument {inst!r}, which "
                f"is not configured (add [instruments.{inst}] or set [instruments] mode = \"sim\")")
    return (kind.instruments + stations) if ok else None


def _options(kind: PlanKind, table, path, rep) -> tuple[dict, set]:
    """Well-typed options as written (range tables expanded) and the keys that were wrong
    (unknown, wrong type, or required and missing); every problem is reported."""
    allowed = kind.options()
    out, bad = {}, set()
    for key, value in table.items():
        if key in RESERVED:
            continue
        if key not in allowed:
            bad.add(key)
            unknown_key(rep, f"{path}.{key}", key, value, list(allowed), f"plan {kind.name}")
            continue
        type_ = allowed[key].type
        if isinstance(value, dict) and type_ in (NUMBERS, NUMBER_OR_NUMBERS):
            value = expand_range(value, f"{path}.{key}", rep)
            if value is None:
                bad.add(key)
                continue
        msg = type_error(value, type_)
        if msg is not None:
            bad.add(key)
            rep(f"{path}.{key}", value, f"{key}={value!r} {msg}")
            continue
        out[key] = value
    for name, opt in allowed.items():
        if opt.required and name not in table:
            bad.add(name)
            rep(path, None, f"option {name} ({opt.type}) is required by plan {kind.name}")
    return out, bad


__all__ = ["BOOL", "INT", "NUMBER", "NUMBERS", "NUMBER_OR_NUMBERS", "STR", "STRS", "REGISTRY",
           "MeasurementSpec", "Option", "PlanKind", "check_measurement", "register", "resolve",
           "sim_presets"]
