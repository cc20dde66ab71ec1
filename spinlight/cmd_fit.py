"""``spinlight fit RUN``: analyse a stored dc run (live or imported) and show stored results.

RUN is a scan id, a uid (prefix) or a negative index (``-1`` = last stored run). Live runs are
dispatched on ``plan_name`` (``chi_t``, ``m_h``, ``mce_isotherms``); imported runs
(``plan_name="import_dat"``) on their ``measurement`` key. Derived result runs already stored
for RUN (start key ``derived_from``) are listed too.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from spinlight.cmd_catalog import add_data_option, fail, open_for


class FitInputError(ValueError):
    pass


def analysis_start(start: dict) -> dict:
    """The start document handed to ``analyze_dc_run`` (imported runs: plan_name from the
    guessed ``measurement``)."""
    from spinlight.analysis.dc import DC_PLANS

    plan = start.get("plan_name")
    if plan in DC_PLANS:
        return start
    if plan == "import_dat":
        kind = start.get("measurement")
        if kind in DC_PLANS:
            return {**start, "plan_name": kind}
        raise FitInputError(
            f"run {start['uid'][:8]} is an imported {kind!r} measurement; `spinlight fit` "
            f"analyses dc runs, allowed measurements: {DC_PLANS}")
    if "derived_from" in start:
        raise FitInputError(
            f"run {start['uid'][:8]} is a derived result run ({plan!r}); give the raw run "
            f"{start['derived_from']}")
    raise FitInputError(f"run {start['uid'][:8]} has plan_name {plan!r}; allowed: {DC_PLANS} "
                        "or an imported dc .dat file")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def fit_run(cat, ref) -> dict:
    """Analyse run ``ref`` of catalog ``cat``: ``{"result": DcRunAnalysis, "run": {...},
    "derived_results": [...]}``."""
    from spinlight.analysis.dc import analyze_dc_run

    run = cat.get_run(ref)
    start = cat.start_doc(run)
    astart = analysis_start(start)
    data = cat.read_primary(run)
    if not data:
        raise FitInputError(f"run {start['uid'][:8]} has no primary events yet")
    result = analyze_dc_run(astart, data)
    derived = []
    for d in cat.derived_runs(start["uid"]):
        ds = cat.start_doc(d)
        derived.append({"uid": ds["uid"], "time": ds.get("time"), "plan_name": ds.get("plan_name"),
                        "status": cat.run_status(d), "results": ds.get("results")})
    summary = cat.summary(run)
    return {"result": result, "derived_results": derived, "run": {
        "uid": start["uid"], "scan_id": start.get("scan_id"), "plan_name": start.get("plan_name"),
        "analysis": astart["plan_name"], "sample": summary.sample, "status": summary.status,
        "num_events": summary.num_events}}


def cmd_fit(args: argparse.Namespace) -> int:
    from spinlight.catalog import NotACatalogError, RunNotFoundError

    try:
        with open_for(args) as cat:
            out = fit_run(cat, args.run)
    except (NotACatalogError, RunNotFoundError, FitInputError, ValueError) as exc:
        return fail("fit", f"RUN {args.run!r}: {exc}" if not isinstance(exc, NotACatalogError)
                    else str(exc))
    result, run = out["result"], out["run"]
    if args.json:
        doc = result.to_dict()
        doc["run"] = run
        doc["derived_results"] = out["derived_results"]
        print(json.dumps(_json_safe(doc), indent=1, default=str))
        return 0
    if run["status"] != "success":
        print(f"note: run status {run['status']!r}; analysing the {run['num_events']} "
              "points on disk", file=sys.stderr)
    print(f"run scan_id {run['scan_id']} uid {run['uid']} ({run['plan_name']}, "
          f"analysed as {run['analysis']})")
    print(result.report())
    for d in out["derived_results"]:
        res = d.get("results") or {}
        keys = [k for k in ("theta_K", "curie_constant_emu_K_per_mol",
                            "chi_t_300K_emu_K_per_mol", "minus_delta_s_max_J_per_kg_K",
                            "error") if k in res]
        shown = ", ".join(f"{k}={res[k]}" for k in keys) or "(no scalar results)"
        print(f"stored derived run {d['uid'][:8]} ({d['status']}): {shown}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("fit", help="analyse a stored dc run (χT/Curie–Weiss, M(H)/MCE)",
                       description="Analyse a stored dc run and list stored derived results.")
    p.add_argument("run", metavar="RUN", help="scan id, uid (prefix ≥5 chars) or -1 for the last")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    add_data_option(p)
    p.set_defaults(func=cmd_fit)
