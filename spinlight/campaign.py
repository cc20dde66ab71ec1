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
read ``file:line: key: message``; measurement kinds and their options are in
:mod:`spinlight.campaign_schema`.
"""

from __future__ import annotations

import pathlib
import re
import tomllib
from dataclasses import dataclass, fields

from spinlight.plans.sample import Sample

from .campaign_lines import KeyLines
from .campaign_schema import SIM_MODELS, MeasurementSpec, check_measurement, sim_presets
from .campaign_types import (INT, NUMBER, NUMBER_TABLE, STR, STR_OR_STRS, Field, check_table,
                             dataclass_fields, unknown_key)

INSTRUMENT_NAMES = ("mpms3", "ppms", "fluorometer", "tcspc", "laser")
TOP_LEVEL = ("campaign", "suspenders", "instruments", "samples", "measurements")

_HOST = Field(STR, pattern=r"[A-Za-z0-9_.:-]+", example="'192.168.1.20' or 'localhost'")
_PORT = Field(INT, range=(1, 65535))
_SERIAL = Field(STR, pattern=r"COM\d+|/dev/\S+|socket://[^\s:]+:\d+|rfc2217://\S+|loop://",
                example="'COM3', '/dev/ttyUSB0' or 'socket://127.0.0.1:5001'")
_VISA = (r"GPIB\d*::\d+(::\d+)?(::INSTR)?|TCPIP\d*::[^:\s]+::(\d+::SOCKET|[^:\s]+::INSTR|INSTR)"
         r"|ASRL\S+::INSTR|USB\d*::\S+::INSTR")


def _timeout(default: float) -> Field:
    return Field(NUMBER, default, (0.1, 600.0), "s")


#: Keys of each [instruments.NAME] table. ``dat_folder``: where the MultiVu sequences write
#: their .dat on a real system (spinlight follows it); omitted, the server is asked for its file
#: (the simulators' request mode).
INSTRUMENT_FIELDS = {
    "mpms3": {"host": _HOST, "port": Field(INT, 27183, (1, 65535)), "dat_folder": Field(STR, None),
              "timeout_s": _timeout(30.0)},
    "ppms": {"resource": Field(STR, pattern=_VISA, example="'GPIB0::15::INSTR'"),
             "dat_folder": Field(STR, None), "visa_backend": Field(STR, "@py"),
             "timeout_s": _timeout(5.0), "monitor_interval_s": Field(NUMBER, 1.0, (0.1, 600.0), "s")},
    "fluorometer": {"excitation_url": _SERIAL, "emission_url": _SERIAL, "housing_url": _SERIAL,
                    "timeout_s": _timeout(2.0)},
    "tcspc": {"host": Field(STR, None), "port": Field(INT, None, (1, 65535)),
              "library": Field(STR, None, choices=("ctypes",)), "timeout_s": _timeout(5.0)},
    "laser": {"kind": Field(STR, choices=("taiko", "pilas")), "host": Field(STR, None),
              "port": Field(INT, None, (1, 65535)), "library": Field(STR, None, choices=("ctypes",)),
              "url": Field(STR, None, pattern=_SERIAL.pattern, example=_SERIAL.example),
              "timeout_s": _timeout(5.0)},
}


@dataclass(frozen=True)
class SimSpec:
    """The simulated lab (``SimulatedLab``): instrument seconds per wall second, noise seed,
    and the faults injected into it: ``[[instruments.sim.faults]]`` tables with the keys of
    :meth:`spinlight.simulators.faults.FaultScript.from_dicts` (``kind``, ``target``, ``at_s``
    or ``rate_per_h``, ``duration_s``, ``params``), kept as normalised fault dicts.

    Fault times are *per lab*: ``at_s`` and the Poisson arrivals of ``rate_per_h`` count
    instrument seconds since the lab started, and a new lab starts at every sample change and
    with every ``spinlight run`` / ``resume`` process, replaying the whole script (same seed,
    same arrivals) from its own start."""
    speed: float = 1000.0
    seed: int = 0
    faults: tuple = ()


#: Lab parts each fault kind can target (the names of ``FaultInjector.for_lab``); the PL
#: ones exist only on a lab whose sample has a luminescence preset (a PL bench).
_PL_SERVERS = ("excitation", "emission", "housing", "harp", "taiko", "pilas")
PL_TARGETS = _PL_SERVERS + ("laser",)
FAULT_TARGETS = {"helium_low": ("ppms",), "temperature_excursion": ("mpms3", "ppms"),
                 "quench": ("mpms3", "ppms"), "laser_interlock": ("laser",),
                 **{k: ("mpms3", "ppms") + _PL_SERVERS for k in ("disconnect", "garbled", "timeout")}}


@dataclass(frozen=True)
class Suspenders:
    """Interlock limits for the run (their behaviour lives in the engine assembly)."""
    helium_min_percent: float = 20.0      # suspend below this helium level (%)
    helium_resume_percent: float = 30.0   # ... resume once refilled above this (%)
    temperature_band_K: float = 0.5       # suspend while |T - setpoint| exceeds this (K)
    resume_wait_s: float = 60.0           # wait after a condition clears before resuming (s)
    reconnect_attempts: int = 5           # reconnections tried after a dropped connection
    reconnect_backoff_s: float = 5.0      # first wait between reconnections, doubling (s)


SIM_FIELDS = dataclass_fields(SimSpec, {"speed": (0.001, 1.0e7, "x wall time"),
                                        "seed": (0, 2**32 - 1, "")}, skip=("faults",))
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
class InstrumentsSpec:
    """``mode`` "real" or "sim"; one dict per configured instrument (keys of
    :data:`INSTRUMENT_FIELDS`, defaults filled), None when not configured."""
    mode: str = "real"
    sim: SimSpec = SimSpec()
    mpms3: dict | None = None
    ppms: dict | None = None
    fluorometer: dict | None = None
    tcspc: dict | None = None
    laser: dict | None = None

    @property
    def configured(self) -> tuple[str, ...]:
        """Instruments measurements may use (all of them in sim mode)."""
        if self.mode == "sim":
            return INSTRUMENT_NAMES
        return tuple(n for n in INSTRUMENT_NAMES if getattr(self, n) is not None)


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
    instruments = _instruments(doc.get("instruments", {}), report, sim)
    samples, presets = _samples(doc.get("samples", []), report, instruments.mode == "sim")
    measurements = _measurements(doc.get("measurements", []), report, presets, instruments)
    if instruments.sim.faults:
        _fault_benches(doc["instruments"]["sim"]["faults"], measurements, presets, report)
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


def _instruments(table, report, sim: bool) -> InstrumentsSpec:
    if not isinstance(table, dict):
        report("instruments", table, f"[instruments] must be a table, got {table!r}")
        return InstrumentsSpec(mode="sim" if sim else "real")
    allowed = ("mode", "sim") + INSTRUMENT_NAMES
    for key, value in table.items():
        if key not in allowed:
            unknown_key(report, f"instruments.{key}", key, value, allowed, "[instruments]")
    mode = table.get("mode", "real")
    if mode not in ("real", "sim"):
        report("instruments.mode", mode, f"mode={mode!r} is not allowed; choose one of "
                                         "['real', 'sim']")
    sim_table = table.get("sim", {})
    faults = ()
    if isinstance(sim_table, dict) and "faults" in sim_table:
        sim_table = dict(sim_table)
        faults = _sim_faults(sim_table.pop("faults"), report)
        if not (sim or mode == "sim"):
            report("instruments.sim.faults", None, "faults are injected only into the simulated "
                   "lab: set [instruments] mode = \"sim\" or run with --sim")
    sim_values = check_table(sim_table, SIM_FIELDS, "instruments.sim", report, "[instruments.sim]")
    configured = {}
    for name in INSTRUMENT_NAMES:
        if name in table:   # configured even when invalid: its own problems are reported
            where = f"[instruments.{name}]"
            values = check_table(table[name], INSTRUMENT_FIELDS[name], f"instruments.{name}",
                                 report, where)
            if values is not None:
                _connection_ok(name, values, report)
            configured[name] = values or {}
    return InstrumentsSpec(mode="sim" if sim or mode == "sim" else "real",
                           sim=SimSpec(**sim_values, faults=faults) if sim_values else SimSpec(),
                           **configured)


def _sim_faults(items, report) -> tuple[dict, ...]:
    """The valid ``[[instruments.sim.faults]]`` as normalised fault dicts; each bad entry is
    reported at its key (``instruments.sim.faults[2].kind``) with the value and what is
    allowed (:class:`~spinlight.simulators.faults.Fault` does the checking)."""
    from spinlight.simulators.dynamics import LimitError
    from spinlight.simulators.faults import Fault, FaultScript

    if not isinstance(items, list):
        report("instruments.sim.faults", items, "faults must be an array of tables "
                                                "([[instruments.sim.faults]])")
        return ()
    out = []
    for i, item in enumerate(items):
        where = f"instruments.sim.faults[{i}]"
        try:
            (fault,) = FaultScript.from_dicts([item])
        except LimitError as e:
            name = e.parameter.split(": ", 1)[-1]        # "fault #0: kind" -> "kind"
            if name in ("key", "fault", "at_s/rate_per_h") or name.endswith(" param"):
                key = where if name in ("fault", "at_s/rate_per_h") else \
                    f"{where}.{'params.' if name.endswith(' param') else ''}{e.value}"
                what = f"unknown key {e.value!r}" if name == "key" else \
                    f"unknown parameter {e.value!r}" if name.endswith(" param") else \
                    f"{name}={e.value!r}"
            else:
                top = name in (f.name for f in fields(Fault))
                key = f"{where}.{'' if top else 'params.'}{name}"
                what = f"{name}={e.value!r}"
            report(key, e.value, f"{what} is not allowed; allowed: {e.allowed}")
            continue
        if fault.target not in FAULT_TARGETS[fault.kind]:
            report(f"{where}.target", fault.target, f"target={fault.target!r} cannot take a "
                   f"{fault.kind} fault; choose one of {list(FAULT_TARGETS[fault.kind])}")
            continue
        out.append(fault.to_dict())
    return tuple(out)


def _fault_benches(items, measurements, presets, report) -> None:
    """A fault on a PL target needs a PL bench in every lab: every measured sample needs a
    luminescence preset (otherwise its lab could not start)."""
    from spinlight.simulators.samples import LUMINESCENCE_PRESETS

    bare = sorted({presets[m.sample] for m in measurements} - set(LUMINESCENCE_PRESETS))
    for i, item in enumerate(items):
        if bare and isinstance(item, dict) and item.get("target") in PL_TARGETS:
            report(f"instruments.sim.faults[{i}].target", item["target"],
                   f"target={item['target']!r} is on the PL bench, which the labs of presets "
                   f"{bare} do not have (no luminescence preset); target mpms3 or ppms")


def _connection_ok(name: str, v: dict, report) -> bool:
    """TCSPC and laser: exactly one way to reach them."""
    key = f"instruments.{name}"
    if name == "tcspc" or (name == "laser" and v["kind"] == "taiko"):
        rpc = v["host"] is not None or v["port"] is not None
        if rpc == (v["library"] is not None) or (rpc and None in (v["host"], v["port"])) \
                or (name == "laser" and v["url"] is not None):
            report(key, None, f"[instruments.{name}] needs either host and port (simulator RPC) "
                              "or library = \"ctypes\" (hardware), not both")
            return False
    elif name == "laser" and (v["url"] is None or v["host"] or v["port"] or v["library"]):
        report(key, None, "[instruments.laser] kind = \"pilas\" needs url (serial port) and "
                          "no host, port or library")
        return False
    return True


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
