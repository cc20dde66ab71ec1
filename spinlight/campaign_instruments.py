"""The [instruments] section of a campaign file: which instruments are configured and how each
is reached (:data:`INSTRUMENT_FIELDS`), real or simulated mode, and the simulated lab with the
faults injected into it (:class:`SimSpec`, :data:`FAULT_TARGETS`).

Used by :func:`spinlight.campaign.load_campaign`; ``report(key, value, message)`` collects every
problem (see :mod:`spinlight.campaign_types`), so nothing here raises on a bad file.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .campaign_types import INT, NUMBER, STR, Field, check_table, dataclass_fields, unknown_key

INSTRUMENT_NAMES = ("mpms3", "ppms", "fluorometer", "tcspc", "laser")

_HOST = Field(STR, pattern=r"[A-Za-z0-9_.:-]+", example="'192.168.1.20' or 'localhost'")
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


SIM_FIELDS = dataclass_fields(SimSpec, {"speed": (0.001, 1.0e7, "x wall time"),
                                        "seed": (0, 2**32 - 1, "")}, skip=("faults",))


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


def instruments_spec(table, report, sim: bool) -> InstrumentsSpec:
    """The [instruments] table as an :class:`InstrumentsSpec`, each problem reported (the
    faults, the simulated lab, every instrument table and how it is reached); ``sim=True``
    (``--sim``) forces sim mode."""
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


def check_fault_benches(items, measurements, presets, report) -> None:
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
