"""``spinlight import`` and ``spinlight runs``: put legacy .dat files in the catalog, list runs."""

from __future__ import annotations

import argparse
import datetime
import json
import math
import pathlib
import re
import sys

from spinlight.config import default_data_dir


_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def add_data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="DIR", type=pathlib.Path, default=None,
                        help="catalog folder (default: $SPINLIGHT_DATA or ./spinlight-data)")


def data_dir(args: argparse.Namespace) -> pathlib.Path:
    return (args.data or default_data_dir()).expanduser().resolve()


def fail(command: str, message: str) -> int:
    print(f"spinlight {command}: error: {message}", file=sys.stderr)
    return 2


def open_for(args: argparse.Namespace, *, create: bool = False):
    from spinlight.catalog import open_catalog

    return open_catalog(data_dir(args), create=create)


# -- import ----------------------------------------------------------------------------------
def cmd_import(args: argparse.Namespace) -> int:
    from spinlight.catalog import NotACatalogError
    from spinlight.importer import DatImportError, import_dat, parse_ions, sample_metadata

    try:
        path = args.file.expanduser().resolve()
        if not path.is_file():
            raise DatImportError(f"FILE {str(path)!r} does not exist or is not a file")
        sample = sample_metadata(args.sample, mass_mg=args.mass_mg, molar_mass=args.molar_mass,
                                 diamagnetic=args.diamagnetic, formula=args.formula,
                                 ions=parse_ions(args.ions))
        with open_for(args, create=True) as cat:
            start = import_dat(cat, path, sample, force=args.force)
    except (DatImportError, NotACatalogError) as exc:
        return fail("import", str(exc))
    except Exception as exc:  # e.g. DatFormatError naming file and line
        if type(exc).__name__ in ("DatFormatError", "MissingColumnError"):
            return fail("import", str(exc))
        raise
    src = start["imported_from"]
    for label, header, given in (("mass", src.get("header_mass_mg"), sample["mass_mg"]),
                                 ("molar mass", src.get("header_molar_mass_g_per_mol"),
                                  sample["molar_mass_g_per_mol"])):
        if header and abs(header - given) > 0.01 * given:
            print(f"warning: file header {label} {header} differs from the value given "
                  f"({given}); the given value is stored", file=sys.stderr)
    if args.json:
        print(json.dumps({"uid": start["uid"], "scan_id": start.get("scan_id"),
                          "measurement": start["measurement"],
                          "num_points": start["num_points"]}))
    else:
        ref = start.get("scan_id") or start["uid"][:8]
        print(f"imported {path.name}: {start['num_points']} points, measurement "
              f"{start['measurement']!r}, scan_id {start.get('scan_id')}, uid {start['uid']}")
        print(f"  fit it with: spinlight fit {ref} --data {data_dir(args)}")
    return 0


# -- runs ------------------------------------------------------------------------------------
def _fmt_time(t: float) -> str:
    if not math.isfinite(t):
        return "?"
    return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")


def format_table(summaries) -> str:
    header = ("scan_id", "time", "plan", "sample", "points", "status", "uid")
    rows = [(str(s.scan_id if s.scan_id is not None else "-"), _fmt_time(s.start_time),
             s.plan_name + (f" ({s.measurement})" if s.measurement else ""), s.sample or "-",
             str(s.num_events), s.status, s.uid[:8]) for s in summaries]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def cmd_runs(args: argparse.Namespace) -> int:
    from spinlight.catalog import NotACatalogError

    if args.limit is not None and args.limit < 0:
        return fail("runs", f"--limit must be >= 0, got {args.limit}")
    try:
        with open_for(args) as cat:
            summaries = list(cat.runs(limit=args.limit, sample=args.sample))
    except NotACatalogError as exc:
        return fail("runs", str(exc))
    if args.json:
        print(json.dumps([s.to_dict() for s in summaries], indent=1, allow_nan=False,
                         default=str) if summaries else "[]")
    elif summaries:
        print(format_table(summaries))
    else:
        print("no runs" + (f" for sample {args.sample!r}" if args.sample else ""))
    return 0


def register(sub) -> None:
    p = sub.add_parser("import", help="store a legacy MultiVu .dat file as a run",
                       description="Store a Quantum Design MultiVu .dat file as a run in the "
                       "catalog (moment, T, H, time under the live plans' names + all columns).")
    p.add_argument("file", type=pathlib.Path, metavar="FILE.dat")
    p.add_argument("--sample", required=True, help="sample name")
    p.add_argument("--mass-mg", required=True, type=float, metavar="M", help="sample mass (mg)")
    p.add_argument("--molar-mass", required=True, type=float, metavar="G",
                   help="molar mass (g/mol per formula unit)")
    p.add_argument("--diamagnetic", type=float, default=0.0, metavar="X",
                   help="diamagnetic correction (emu/mol/Oe, <= 0; default 0), e.g. -4.2e-4")
    # argparse only takes '-0.1'-style negatives as values; accept '-4.2e-4' too
    p._negative_number_matcher = _NEGATIVE_NUMBER
    p.add_argument("--formula", default=None, help="chemical formula")
    p.add_argument("--ions", default=None, metavar="SPEC",
                   help="magnetic ions per formula unit, e.g. 'Er=1' or 'Nd=1,Yb=1'")
    p.add_argument("--force", action="store_true", help="import again a file already imported")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_data_option(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("runs", help="list the runs in the catalog")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the last N runs")
    p.add_argument("--sample", default=None, metavar="NAME", help="only runs of this sample")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    add_data_option(p)
    p.set_defaults(func=cmd_runs)
