"""Campaign commands.

``spinlight check CAMPAIGN.toml``: validate a campaign file before anything moves. Prints a
summary of the campaign (instruments, samples, measurements with their options), or every
problem, one per line as ``file:line: key: message``, with exit status 2 (also for ``plan``
and ``run``).

``spinlight plan CAMPAIGN.toml [--speed X]``: what will run, points and instrument time per
measurement and in total, from a rehearsal on simulators (:mod:`spinlight.campaign_estimate`).

``spinlight run CAMPAIGN.toml [--sim] [--no-progress] [--no-estimate]``: run it
(:mod:`spinlight.campaign_run`); exit status 0 all ok, 1 a measurement failed, 3 stopped for a
sample change, 130 aborted (Ctrl-C).

``spinlight resume CAMPAIGN.toml [--sim] [--force] [--no-progress] [--no-estimate]``: continue
it from its last completed point (:mod:`spinlight.campaign_resume`); exit status as ``run``, 2
when it cannot be resumed (the file changed since its last run: use ``--force``).

``spinlight replay RUN [--data CATALOG] --sim [--speed X] [--preset NAME]``: re-execute a
stored run's plan on simulators as a new run linked by ``replay_of`` (:mod:`spinlight.replay`);
prints the new uid(s) and the point counts side by side; exit status as ``run``, 2 when the
run cannot be replayed.
"""

from __future__ import annotations

import argparse
import sys


def register(sub) -> None:
    p = sub.add_parser("check", help="validate a campaign file (nothing is connected or moved)")
    p.add_argument("campaign", help="campaign file (TOML)")
    p.add_argument("--sim", action="store_true",
                   help="check it as `spinlight run --sim` would run it (simulated lab)")
    p.set_defaults(func=run)
    p = sub.add_parser("plan", help="what a campaign will run: points and instrument time "
                                    "(rehearsed on simulators)")
    p.add_argument("campaign", help="campaign file (TOML)")
    p.add_argument("--speed", type=float, default=None,
                   help="rehearsal speed, instrument s per wall s (default 1e6)")
    p.set_defaults(func=run_plan)
    p = sub.add_parser("run", help="run a campaign: store, analyse, log, notify")
    p.add_argument("campaign", help="campaign file (TOML)")
    p.add_argument("--sim", action="store_true", help="on simulators, whatever [instruments] say")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-estimate", action="store_true",
                   help="skip the rehearsal (the bar then has no totals)")
    p.set_defaults(func=run_campaign)
    p = sub.add_parser("resume", help="continue a campaign from its last completed point")
    p.add_argument("campaign", help="campaign file (TOML)")
    p.add_argument("--sim", action="store_true", help="on simulators, whatever [instruments] say")
    p.add_argument("--force", action="store_true",
                   help="resume although the file changed (runs that still match are kept)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-estimate", action="store_true", help="skip the rehearsal")
    p.set_defaults(func=resume_campaign)
    from spinlight.cmd_catalog import add_data_option

    p = sub.add_parser("replay",
                       help="re-run a stored run's plan on simulators (a new, linked run)")
    p.add_argument("run", help="run: scan id, uid (prefix) or -N")
    add_data_option(p)
    p.add_argument("--sim", action="store_true", required=True,
                   help="on simulators (required: a replay never moves real instruments)")
    p.add_argument("--speed", type=float, default=None,
                   help="instrument s per wall s (default 20000)")
    p.add_argument("--preset", default=None,
                   help="simulator preset (default: the run's sample name)")
    p.add_argument("--seed", type=int, default=None,
                   help="simulator seed (default: the original run's, if it was simulated)")
    p.set_defaults(func=replay)


def _load(path, *, sim: bool, command: str):
    """The campaign, or None after printing every problem."""
    from spinlight.campaign import CampaignError, load_campaign

    try:
        return load_campaign(path, sim=sim)
    except CampaignError as e:
        n = len(e.problems)
        print(f"spinlight {command}: {n} problem{'s' if n != 1 else ''} in {path}:",
              file=sys.stderr)
        print(str(e), file=sys.stderr)
        return None


def run(args: argparse.Namespace) -> int:
    campaign = _load(args.campaign, sim=args.sim, command="check")
    if campaign is None:
        return 2
    print(summary(campaign))
    return 0


def run_plan(args: argparse.Namespace) -> int:
    import time

    from spinlight.campaign import CampaignError
    from spinlight.campaign_estimate import ESTIMATE_SPEED, estimate_campaign
    from spinlight.campaign_store import campaign_files, store_estimate
    from spinlight.instruments.errors import check_range

    speed = ESTIMATE_SPEED if args.speed is None else check_range("--speed", args.speed, 1.0, 1e7,
                                                                  "x wall time")
    campaign = _load(args.campaign, sim=False, command="plan")
    if campaign is None:
        return 2
    t0 = time.monotonic()
    try:
        estimates = estimate_campaign(campaign, speed=speed)
    except CampaignError as e:
        print(f"spinlight plan: {args.campaign} cannot be rehearsed on simulators:\n{e}",
              file=sys.stderr)
        return 2
    store_estimate(campaign_files(campaign), [e.to_dict() for e in estimates], speed)
    print(plan_table(campaign, estimates, speed, time.monotonic() - t0))
    return 1 if any(e.error for e in estimates) else 0


def plan_table(campaign, estimates, speed: float, wall_s: float) -> str:
    from spinlight.progress import format_duration

    where = "simulated lab" if campaign.sim else \
        "real instruments (rehearsed on simulators from their initial state)"
    lines = [f"campaign {campaign.name!r} ({campaign.path}): {len(estimates)} measurements on "
             f"{where}; rehearsal x{speed:g}, seed {campaign.instruments.sim.seed}, "
             f"{wall_s:.0f} s wall",
             f"{'#':>3}  {'plan':<20} {'sample':<12} {'points':>7} {'instrument':>11} "
             f"{'hours':>7}  label"]
    for e in estimates:
        note = f"REHEARSAL FAILED: {e.error}" if e.error else e.label
        lines.append(f"{e.index:>3}  {e.plan:<20} {e.sample:<12} {e.points:>7} "
                     f"{format_duration(e.instrument_s):>11} {e.instrument_s / 3600:>7.2f}  {note}")
    total_s = sum(e.instrument_s for e in estimates)
    lines.append(f"{'':>3}  {'total':<33} {sum(e.points for e in estimates):>7} "
                 f"{format_duration(total_s):>11} {total_s / 3600:>7.2f}")
    return "\n".join(lines)


def run_campaign(args: argparse.Namespace) -> int:
    from spinlight.campaign_run import CampaignRunner

    campaign = _load(args.campaign, sim=args.sim, command="run")
    if campaign is None:
        return 2
    result = CampaignRunner(campaign, progress=not args.no_progress,
                            estimate=not args.no_estimate).run()
    return _report(result)


def _report(result) -> int:
    for r in result.measurements:
        print(f"{r.index:>3}  {r.plan:<20} {r.sample:<12} {r.status:<8} {r.points:>6} pts "
              f"{r.instrument_s / 3600:>7.2f} h" + (f"  {r.error}" if r.error else ""))
    print(f"campaign {result.name!r}: {result.status}; catalog {result.catalog}; "
          f"log {result.log}" + (f"\n{result.message}" if result.message else ""))
    return result.exit_code


def resume_campaign(args: argparse.Namespace) -> int:
    from spinlight.campaign_resume import ResumeError, resume_campaign as resume

    campaign = _load(args.campaign, sim=args.sim, command="resume")
    if campaign is None:
        return 2
    try:
        plan, result = resume(campaign, force=args.force, progress=not args.no_progress,
                              estimate=not args.no_estimate)
    except ResumeError as e:
        print(f"spinlight resume: {e}", file=sys.stderr)
        return 2
    for s in plan.states:
        pts = f"{s.completed}/{s.total} pts" if s.total is not None else ""
        print(f"{s.index:>3}  {s.plan:<20} {s.status:<12} {pts:<10} "
              + (f"run {s.run[:8]} ({s.run_status})" if s.run else ""))
    if result is None:
        print(f"campaign {campaign.name!r}: nothing to resume, every measurement is done")
        return 0
    return _report(result)


def replay(args: argparse.Namespace) -> int:
    from spinlight.catalog import NotACatalogError, RunNotFoundError
    from spinlight.cmd_catalog import data_dir, fail
    from spinlight.replay import REPLAY_SPEED, ReplayError, replay_run, side_by_side

    try:
        rr = replay_run(args.run, catalog_root=data_dir(args), preset=args.preset,
                        speed=REPLAY_SPEED if args.speed is None else args.speed, seed=args.seed)
    except (ReplayError, NotACatalogError, RunNotFoundError, ValueError) as e:
        return fail("replay", str(e))
    print(side_by_side(rr))
    print(f"replay of {rr.original}: {rr.result.status}; campaign file {rr.campaign_file}")
    for uid in rr.uids:
        print(f"new run: {uid}")
    return rr.result.exit_code


def _short(value) -> str:
    """An option value in a few characters (lists as first..last and their length)."""
    if isinstance(value, list):
        if len(value) <= 3:
            return "[" + ", ".join(_short(v) for v in value) + "]"
        return f"[{_short(value[0])}..{_short(value[-1])}] ({len(value)})"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _instrument(name: str, v: dict) -> str:
    dat = f", .dat in {v['dat_folder']}" if v.get("dat_folder") else ", .dat from the server"
    where = {"mpms3": lambda: f"{v['host']}:{v['port']}{dat}",
             "ppms": lambda: f"{v['resource']}{dat}",
             "fluorometer": lambda: f"{v['excitation_url']} / {v['emission_url']} / {v['housing_url']}",
             "tcspc": lambda: v["library"] or f"{v['host']}:{v['port']}",
             "laser": lambda: f"{v['kind']} " + (v["url"] or v["library"] or f"{v['host']}:{v['port']}")}
    return f"  {name:<12} {where[name]()}"


def summary(c) -> str:
    s = c.settings
    lines = [f"campaign {c.name!r} ({c.path})"]
    if s.operator or s.catalog or s.log_file:
        lines.append(f"  operator {s.operator or '-'}; catalog {s.catalog or '(default)'}; "
                     f"log {s.log_file or '-'}")
    if c.sim:
        lines.append(f"instruments: simulated lab (speed x{c.instruments.sim.speed:g}, "
                     f"seed {c.instruments.sim.seed})")
        faults = c.instruments.sim.faults
        if faults:
            lines.append(f"  scripted faults ({len(faults)}): " + ", ".join(
                f"{f['kind']} on {f['target']} " + (f"at {f['at_s']:g} s" if "at_s" in f
                                                    else f"{f['rate_per_h']:g}/h")
                for f in faults))
    else:
        lines.append("instruments:")
        lines += [_instrument(n, getattr(c.instruments, n)) for n in c.instruments.configured]
    lines.append(f"samples ({len(c.samples)}):")
    for name, smp in c.samples.items():
        ions = ", ".join(f"{k} {v:g}" for k, v in smp.ions.items()) or "-"
        preset = f", sim preset {c.presets[name]}" if c.sim else ""
        lines.append(f"  {name:<12} {smp.mass_mg:g} mg, {smp.molar_mass_g_per_mol:g} g/mol, "
                     f"ions {ions}, dia {smp.diamagnetic_emu_per_mol_Oe:g} emu/(mol Oe){preset}")
    lines.append(f"measurements ({len(c.measurements)}):")
    for m in c.measurements:
        opts = " ".join(f"{k}={_short(v)}" for k, v in m.options.items())
        lines.append(f"  {m.index:>3} line {m.line or '?':>4}  {m.plan:<20} {m.sample:<12} "
                     f"[{'+'.join(m.instruments)}] {opts}" + (f"  # {m.label}" if m.label else ""))
    return "\n".join(lines)
