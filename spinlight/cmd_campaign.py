"""``spinlight check CAMPAIGN.toml``: validate a campaign file before anything moves.

Prints a summary of the campaign (instruments, samples, measurements with their options), or
every problem, one per line as ``file:line: key: message``, with exit status 2.
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


def run(args: argparse.Namespace) -> int:
    from spinlight.campaign import CampaignError, load_campaign

    try:
        campaign = load_campaign(args.campaign, sim=args.sim)
    except CampaignError as e:
        n = len(e.problems)
        print(f"spinlight check: {n} problem{'s' if n != 1 else ''} in {args.campaign}:",
              file=sys.stderr)
        print(str(e), file=sys.stderr)
        return 2
    print(summary(campaign))
    return 0


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
