"""``spinlight replay RUN --sim``: re-execute a stored run's plan on simulators as a new run.

What is replayed (:func:`replay_source`), from the run's start document:

* a campaign run: ``start["campaign"]`` ``plan`` and ``options`` (the measurement's plan, so a
  replay of a ``lifetime_decay`` measurement's IRF run replays the whole measurement, and a
  continuation is replayed whole); ac stations from ``start["instruments"]``;
* any other run: ``plan_name`` and ``plan_args`` when they are exactly options of that plan in
  :data:`spinlight.campaign_schema.REGISTRY` (every required one given, none unknown);
  otherwise :class:`ReplayError` says which keys are missing or unknown.

The sample is ``start["sample"]``; the simulator preset is its name unless ``preset`` is given;
the simulators' seed is the original's when it was measured on simulators (so a replay draws
the same noise and reproduces the points exactly), unless ``seed`` is given.
:func:`replay_campaign_text` writes a one-measurement sim campaign file
(``<catalog>-replays/replay-<uid8>.toml``, its log next to it) storing into the same catalog;
it is validated like any campaign file and run by
:class:`~spinlight.campaign_run.CampaignRunner` with ``md={"replay_of": <uid>}`` in every start
document. :func:`replay_run` returns the new uids and a side-by-side of point counts (events,
all streams).
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib

#: Default simulation speed of a replay (instrument s per wall s).
REPLAY_SPEED = 20000.0
SAMPLE_KEYS = ("name", "formula", "mass_mg", "molar_mass_g_per_mol", "ions",
               "diamagnetic_emu_per_mol_Oe", "holder")


class ReplayError(ValueError):
    """The run cannot be replayed (what it lacks is in the message)."""


@dataclasses.dataclass
class ReplayResult:
    original: str
    uids: list                          # the new runs
    rows: list                          # (role, uid, plan_name, points)
    result: object                      # CampaignResult
    campaign_file: str


def replay_source(start: dict) -> tuple[str, dict, list | None]:
    """``(plan, options, stations)`` of a run (see the module docstring)."""
    from .campaign_schema import REGISTRY

    uid = start.get("uid", "?")
    md = start.get("campaign") or {}
    if isinstance(md.get("plan"), str) and isinstance(md.get("options"), dict):
        plan, options = md["plan"], dict(md["options"])
    else:
        plan, args = start.get("plan_name"), start.get("plan_args")
        if plan not in REGISTRY:
            raise ReplayError(f"run {uid} has no campaign metadata and its plan_name={plan!r} is "
                              f"not a campaign plan ({', '.join(REGISTRY)}): cannot replay it")
        allowed = REGISTRY[plan].options()
        args = args if isinstance(args, dict) else {}
        unknown = sorted(set(args) - set(allowed))
        missing = sorted(k for k, o in allowed.items() if o.required and k not in args)
        if unknown or missing:
            raise ReplayError(f"run {uid} ({plan}) has no campaign metadata and its plan_args "
                              f"are not the plan's options (unknown: {', '.join(unknown) or '-'};"
                              f" missing: {', '.join(missing) or '-'}): cannot replay it")
        options = dict(args)
    kind = REGISTRY.get(plan)
    if kind is None:
        raise ReplayError(f"run {uid}: plan {plan!r} is not a campaign plan")
    stations = list(start.get("instruments") or []) if kind.stations else None
    if kind.stations and not stations:
        raise ReplayError(f"run {uid} ({plan}): its start document names no ac stations "
                          "('instruments')")
    return plan, options, stations


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value)
                                                         else "inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items())
        return "{ " + ", ".join(items) + " }"
    raise ReplayError(f"value {value!r} ({type(value).__name__}) cannot be written to a "
                      "campaign file")


def _table(header: str, items: dict) -> list[str]:
    # None is a plan default that TOML cannot write: leaving the option out gives it back
    return [header] + [f"{k} = {_toml(v)}" for k, v in items.items() if v is not None]


def replay_campaign_text(start: dict, *, catalog, speed: float = REPLAY_SPEED, seed: int = 0,
                         preset: str | None = None) -> str:
    """The one-measurement sim campaign that replays the run of ``start`` into ``catalog``."""
    plan, options, stations = replay_source(start)
    sample = start.get("sample")
    needed = {"name", "mass_mg", "molar_mass_g_per_mol"}
    if not isinstance(sample, dict) or not needed <= set(sample):
        raise ReplayError(f"run {start.get('uid')}: its start document has no complete sample "
                          f"(name, mass_mg, molar_mass_g_per_mol): {sample!r}")
    uid, catalog = start["uid"], pathlib.Path(catalog).resolve()
    folder = catalog.with_name(catalog.name + "-replays")
    head = {"name": f"replay-{uid[:8]}", "catalog": str(catalog),
            "log_file": str(folder / f"replay-{uid[:8]}.log"),
            "description": f"replay of run {uid} ({start.get('plan_name')}) on simulators"}
    measurement = {"plan": plan, "sample": sample["name"], "label": f"replay of {uid[:8]}"}
    if stations:
        measurement["stations"] = stations
    lines = (["# written by `spinlight replay`"] + _table("[campaign]", head)
             + ["", '[instruments]', 'mode = "sim"', ""]
             + _table("[instruments.sim]", {"speed": float(speed), "seed": int(seed)}) + [""]
             + _table("[[samples]]", {**{k: sample[k] for k in SAMPLE_KEYS if k in sample
                                         and sample[k] != ""}, "preset": preset}) + [""]
             + _table("[[measurements]]", {**measurement, **options}))
    return "\n".join(lines) + "\n"


def _points(catalog, run) -> int:
    return sum(catalog.num_events(run, stream) for stream in run)


def replay_run(ref, *, catalog_root, speed: float = REPLAY_SPEED, seed: int | None = None,
               preset: str | None = None, progress: bool = False) -> ReplayResult:
    """Replay run ``ref`` (scan id, uid (prefix), -N) of the catalog in ``catalog_root`` on
    simulators into the same catalog (see the module docstring). ``seed``: the simulators'
    seed; by default the original run's (``start["campaign"]["sim"]["seed"]``) when it was
    itself measured on simulators, so the replay draws the same noise, else 0."""
    from .campaign import CampaignError, load_campaign
    from .campaign_run import CampaignRunner
    from .catalog import open_catalog
    from spinlight.instruments.errors import check_range

    check_range("speed", speed, 1.0, 1e7, "x wall time")
    with open_catalog(catalog_root) as catalog:
        start = catalog.start_doc(catalog.get_run(ref))
    if seed is None:
        sim = (start.get("campaign") or {}).get("sim") or {}
        seed = int(sim.get("seed", 0))
    text = replay_campaign_text(start, catalog=catalog_root, speed=speed, seed=seed, preset=preset)
    path = pathlib.Path(catalog_root).resolve()
    path = path.with_name(path.name + "-replays") / f"replay-{start['uid'][:8]}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    try:
        campaign = load_campaign(path, sim=True)
    except CampaignError as exc:
        raise ReplayError(f"run {start['uid']} cannot be replayed on simulators ({path}):\n"
                          f"{exc}") from None
    result = CampaignRunner(campaign, progress=progress, estimate=False,
                            md={"replay_of": start["uid"]}).run()
    uids = list(result.measurements[0].uids)
    with open_catalog(catalog_root) as catalog:
        rows = [("original", start["uid"], start.get("plan_name", ""),
                 _points(catalog, catalog.get_run(start["uid"])))]
        for uid in uids:
            run = catalog.get_run(uid)
            rows.append(("replay", uid, run.metadata["start"].get("plan_name", ""),
                         _points(catalog, run)))
    return ReplayResult(start["uid"], uids, rows, result, str(path))


def side_by_side(rr: ReplayResult) -> str:
    """The point counts of the original and the replay, one run per line."""
    points = {plan: n for role, _, plan, n in rr.rows if role == "original"}
    lines = [f"{'':<9} {'run':<10} {'plan':<22} {'points':>6}"]
    for role, uid, plan, n in rr.rows:
        same = "" if role == "original" or plan not in points else \
            ("  same" if n == points[plan] else f"  differs ({points[plan]} in the original)")
        lines.append(f"{role:<9} {uid[:8]:<10} {plan:<22} {n:>6}{same}")
    return "\n".join(lines)
