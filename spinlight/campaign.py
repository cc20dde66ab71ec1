"""Campaign files: many measurements, several samples and instruments, described in TOML and
validated before anything moves.

::

    [campaign]                 # name, operator, catalog, log_file, notify_command
    [suspenders]               # helium / temperature / reconnect limits (see Suspenders)
    [instruments]              # mode = "real" (default) or "sim"
    [instruments.sim]          # speed, seed: the simulated lab (sim mode, or `--sim`)
    [[instruments.sim.faults]] # kind, target, at_s | rate_per_h, duration_s, params (sim only)
    [instruments.mpms3]        # host, port, dat_folder
    [instruments.ppms]         # resource = "GPIB0::15::INSTR", dat_folder
    [instruments.fluorometer]  # excitation_url, emission_url, housing_url
    [instruments.tcspc]        # host + port (simulator RPC) or library = "ctypes"
    [instruments.laser]        # kind = "taiko" (host + port or library) | "pilas" (url)
    [[samples]]                # name, formula, mass_mg, molar_mass_g_per_mol, ions, ...
    [[measurements]]           # plan, sample, [stations], options of the plan

:func:`load_campaign` reports *every* problem at once as a :class:`CampaignError` whose lines
read ``file:line: key: message``; the [instruments] section is checked by
:mod:`spinlight.campaign_instruments`, measurement kinds and their options are in
:mod:`spinlight.campaign_schema`.
"""

from __future__ import annotations

import pathlib
import re
import tomllib
from dataclasses import dataclass

from spinlight.plans.sample import Sample

from .campaign_instruments import InstrumentsSpec, SimSpec, check_fault_benches, instruments_spec
from .campaign_lines import KeyLines
from .campaign_schema import SIM_MODELS, MeasurementSpec, check_measurement, sim_presets
from .campaign_types import (NUMBER, NUMBER_TABLE, STR, STR_OR_STRS, Field, check_table,
                             dataclass_fields, unknown_key)

TOP_LEVEL = ("campaign", "suspenders", "instruments", "samples", "measurements")


@dataclass(frozen=True)
class Suspenders:
    """Interlock limits for the run (their behaviour lives in the engine assembly)."""
    helium_min_percent: float = 20.0      # suspend below this helium level (%)
    helium_resume_percent: float = 30.0   # ... resume once refilled above this (%)
    temperature_band_K: float = 0.5       # suspend while |T - setpoint| exceeds this (K)
    resume_wait_s: float = 60.0           # wait after a condition clears before resuming (s)
    reconnect_attempts: int = 5           # reconnections tried after a dropped connection
    reconnect_backoff_s: float = 5.0      # first wait between reconnections, doubling (s)


SUSPENDER_FIELDS = dataclass_fields(Suspenders, {
    "helium_min_percent": (0.0, 100.0, "%"), "helium_resume_percent": (0.0, 100.0, "%"),
    "temperature_band_K": (0.001, 50.0, "K"), "resume_wait_s": (0.0, 86400.0, "s"),
    "reconnect_attempts": (0, 1000, ""), "reconnect_backoff_s": (0.0, 3600.0, "s")})
CAMPAIGN_FIELDS = {"name": Field(STR, None), "operator": Field(STR, ""), "catalog": Field(STR, None),
                   "log_file": Field(STR, None), "notify_command": Field(STR_OR_STRS, None),
                   "description": Field(STR, "")}
SAMPLE_FIELDS = {"name": Field(STR), "formula": Field(STR, ""), "mass_mg": Field(NUMBER),
                 "molar_mass_g_per_mol": Field(NUMBER), "ions": Field(NUMBER_TABLE, {}),
                 "diamagnetic_emu_per_mol_Oe": Field(NUMBER, 0.0), "holder": Field(STR, ""),
                 "preset": Field(STR, None)}


@dataclass(frozen=True)
class CampaignSettings:
    """The [campaign] table; paths are resolved against the campaign file's folder."""
    name: str
    operator: str = ""
    catalog: pathlib.Path | None = None
    log_file: pathlib.Path | None = None
    notify_command: str | list | None = None
    description: str = ""


@dataclass(frozen=True)
class CampaignProblem:
    file: str
    line: int | None
    key: str
    value: object
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line if self.line is not None else '?'}: {self.key}: {self.message}"


class CampaignError(ValueError):
    """Every problem of a campaign file; ``str()`` lists them one per line."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Campaign:
    path: pathlib.Path
    name: str
    samples: dict[str, Sample]
    instruments: InstrumentsSpec
    measurements: list[MeasurementSpec]
    settings: CampaignSettings
    suspenders: Suspenders
    presets: dict[str, str]          # sample name -> simulator preset (sim mode)

    @property
    def sim(self) -> bool:
        return self.instruments.mode == "sim"

    def with_sim(self) -> "Campaign":
        """This campaign on simulators (what ``spinlight run --sim`` runs), validated again
        in sim mode (simulator presets must exist)."""
        return self if self.sim else load_campaign(self.path, sim=True)


class _Problems:
    def __init__(self, file: str, lines: KeyLines | None):
        self.file, self.lines, self.items = file, lines, []

    def __call__(self, key: str, value, message: str) -> None:
        line = self.lines.line_of(key) if self.lines else None
        self.items.append(CampaignProblem(self.file, line, key, value, message))


def load_campaign(path, *, sim: bool = False) -> Campaign:
    """Read and validate a campaign file; ``sim=True`` runs it on simulators whatever its
    [instruments] say. Raises :class:`CampaignError` with every problem found."""
    path = pathlib.Path(path)
    report = _Problems(str(path), None)
    try:
        text = path.read_text(encoding="utf-8")
        doc = tomllib.loads(text)
    except OSError as e:
        report("(file)", str(path), f"cannot read the campaign file: {e.strerror or e}")
        raise CampaignError(report.items) from None
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+)", str(e))
        report.items.append(CampaignProblem(str(path), int(m.group(1)) if m else None, "(syntax)",
                                            None, f"not valid TOML: {e}"))
        raise CampaignError(report.items) from None
    report.lines = KeyLines(text)
    for key, value in doc.items():
        if key not in TOP_LEVEL:
            unknown_key(report, key, key, value, TOP_LEVEL, "the campaign file")
    settings = _settings(doc.get("campaign", {}), path, report)
    suspenders = _suspenders(doc.get("suspenders", {}), report)
    instruments = instruments_spec(doc.get("instruments", {}), report, sim)
    samples, presets = _samples(doc.get("samples", []), report, instruments.mode == "sim")
    measurements = _measurements(doc.get("measurements", []), report, presets, instruments)
    if instruments.sim.faults:
        check_fault_benches(doc["instruments"]["sim"]["faults"], measurements, presets, report)
    if report.items:   # top to bottom of the file; problems without a line first
        raise CampaignError(sorted(report.items, key=lambda p: -1 if p.line is None else p.line))
    return Campaign(path, settings.name, samples, instruments, measurements, settings,
                    suspenders, presets)


def _settings(table, path: pathlib.Path, report) -> CampaignSettings:
    values = check_table(table, CAMPAIGN_FIELDS, "campaign", report, "[campaign]") or {}
    base = path.resolve().parent
    return CampaignSettings(
        name=values.get("name") or path.stem, operator=values.get("operator", ""),
        catalog=base / values["catalog"] if values.get("catalog") else None,
        log_file=base / values["log_file"] if values.get("log_file") else None,
        notify_command=values.get("notify_command"), description=values.get("description", ""))


def _suspenders(table, report) -> Suspenders:
    values = check_table(table, SUSPENDER_FIELDS, "suspenders", report, "[suspenders]")
    if values is None:
        return Suspenders()
    if values["helium_resume_percent"] <= values["helium_min_percent"]:
        report("suspenders.helium_resume_percent", values["helium_resume_percent"],
               f"helium_resume_percent={values['helium_resume_percent']} % must be above "
               f"helium_min_percent={values['helium_min_percent']} %")
    return Suspenders(**values)


def _samples(items, report, sim: bool) -> tuple[dict[str, Sample], dict[str, str]]:
    samples, presets = {}, {}
    if not isinstance(items, list):
        report("samples", items, "samples must be an array of tables ([[samples]])")
        return samples, presets
    known = None
    for i, table in enumerate(items):
        key = f"samples[{i}]"
        values = check_table(table, SAMPLE_FIELDS, key, report, "[[samples]]")
        name = table.get("name") if isinstance(table, dict) else None
        if isinstance(name, str) and name in presets:
            report(f"{key}.name", name, f"sample name={name!r} is defined twice")
            continue
        if isinstance(name, str):   # known even when invalid: measurements may refer to it
            presets[name] = table.get("preset") if isinstance(table.get("preset"), str) else name
        if values is None:
            continue
        try:
            fields = {k: v for k, v in values.items() if k != "preset"}
            samples[name] = Sample(**fields)
        except ValueError as e:
            m = re.match(r"(?:sample )?([A-Za-z_]+)", str(e))
            report(f"{key}.{m.group(1)}" if m and m.group(1) in SAMPLE_FIELDS else key,
                   values.get(m.group(1)) if m else None, str(e))
            continue
        if sim:
            known = known or set().union(*(sim_presets(f) for f in SIM_MODELS))
            if presets[name] not in known:
                report(f"{key}.preset" if values["preset"] else f"{key}.name", presets[name],
                       f"simulator preset {presets[name]!r} does not exist (sim mode uses the "
                       f"sample name unless preset is given); presets: {', '.join(sorted(known))}")
    return samples, presets


def _measurements(items, report, presets, instruments: InstrumentsSpec) -> list[MeasurementSpec]:
    if not isinstance(items, list) or not items:
        report("measurements", items, "the campaign needs at least one [[measurements]] table")
        return []
    out = []
    for i, table in enumerate(items):
        spec = check_measurement(i, table, samples=presets, configured=instruments.configured,
                                 sim=instruments.mode == "sim", report=report,
                                 line=report.lines.line_of(f"measurements[{i}]"))
        if spec is not None:
            out.append(spec)
    return out


__all__ = ["Campaign", "CampaignError", "CampaignProblem", "CampaignSettings", "InstrumentsSpec",
           "MeasurementSpec", "SimSpec", "Suspenders", "load_campaign"]
