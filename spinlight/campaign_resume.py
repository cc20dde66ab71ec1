"""``spinlight resume CAMPAIGN.toml``: continue a campaign from its last completed point.

After a ``kill -9`` (or a crash, a Ctrl-C abort, a failure, a stop for a sample change) the
catalog holds every point measured so far (:mod:`spinlight.doclog`, TiledWriter with
``batch_size=1``). :func:`plan_resume` finds the campaign's runs by their start documents
(``start["campaign"]``: ``file`` = this file, or ``campaign_id`` = this file text's) and works
out, per measurement, from the latest run of that measurement whose plan, sample and options
are the file's (:class:`MeasurementState`):

* ``done``: that run is the measurement's own plan and its stop document says ``success``
  (or a run whose writer died after storing every point of the plan, or a ``chi_t`` sweep
  whose last stored point is within one point's step of ``t_stop_K``: ``sweep_finished``);
* ``partial``: it has no stop document and its writer is dead (``Catalog.run_status`` =
  ``interrupted``), or it stopped with ``abort`` / ``fail``; a run whose writer is still alive
  (``open``) refuses the resume;
* ``not started``: no run.

:func:`resume_campaign` then runs the campaign from the first measurement that is not done
(``CampaignRunner.run(start_index, skip=<done ones after it>, overrides=...)``). A partial
measurement is continued (:mod:`spinlight.plans.resume`) with ``resume_after`` = the points of
the full plan already stored in the catalog (the interrupted run's ``resume_after`` plus its
stored events, all streams) and ``continues`` = the interrupted run's uid; a ``chi_t`` sweep
also gets ``resume_from_K``, the ``vsm_temperature`` of its last stored point. Plans without
``resume_after`` (single-event TCSPC runs) are measured again whole, linked by ``continues``.

Marking (:func:`mark_interrupted`): when the continuation's start document is emitted, the
interrupted run gets a stop document (``exit_status`` ``abort``, ``reason`` ``"interrupted:
acquisition process died; continued by <uid>"``, ``num_events`` = the events stored in the
catalog) — appended to its document log first (a torn last line is dropped; its lock file
removed), then written into the Tiled node's metadata with ``update_metadata`` (as TiledWriter
writes a stop document). The event in flight at the kill may be in the document log but not in
Tiled: the catalog is what counts, so that point is measured again.

The file changed since its last run (another SHA-256): the resume is refused with the
changes (:func:`file_changes`) unless ``force``; forced, only runs whose plan, sample and
options equal the file's count.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import time

from spinlight.plans.dc_sweep import sweep_finished

from .campaign_run import CampaignRunner, _json_safe
from .campaign_store import campaign_files, campaign_id

log = logging.getLogger("spinlight.campaign")

REASON = "interrupted: acquisition process died; continued by {uid}"
REASON_COMPLETE = ("interrupted: acquisition process died after its last point (all {n} points "
                   "stored); nothing to continue")


class ResumeError(RuntimeError):
    """The campaign cannot be resumed (file changed, a run still being written)."""


@dataclasses.dataclass
class MeasurementState:
    index: int
    plan: str
    status: str = "not started"        # done | partial | not started
    run: str | None = None             # uid of the latest matching run
    run_status: str = ""               # its catalog status (success, abort, interrupted, ...)
    completed: int = 0                 # points of the full plan stored (all continuations)
    total: int | None = None           # points of the full plan (nominal for a sweep)
    arguments: dict = dataclasses.field(default_factory=dict)  # extra plan keyword arguments
    md: dict = dataclasses.field(default_factory=dict)         # extra start-document metadata


@dataclasses.dataclass
class ResumePlan:
    states: list
    start_index: int | None            # None: every measurement is done
    skip: list
    to_mark: dict                      # measurement index -> uid marked when continued
    complete: list                     # uids of interrupted runs holding every point


def _campaign_runs(catalog, campaign, files, cid) -> list:
    """Runs made by this campaign file (or text), oldest first."""
    from tiled.queries import Eq

    found = {}
    for key, value in (("start.campaign.file", str(campaign.path.resolve())),
                       ("start.campaign.campaign_id", cid)):
        for run in catalog.client.search(Eq(key, value)).values():
            found[run.metadata["start"]["uid"]] = run
    return sorted(found.values(), key=lambda r: r.metadata["start"].get("time", 0.0))


def file_changes(campaign, runs) -> list[str]:
    """What differs between the file now and the text of its latest run (empty: same text)."""
    from .campaign_store import file_sha256

    sha = file_sha256(campaign.path)
    if not runs or runs[-1].metadata["start"]["campaign"]["sha256"] == sha:
        return []
    old_sha = runs[-1].metadata["start"]["campaign"]["sha256"]
    old = {r.metadata["start"]["campaign"]["index"]: r.metadata["start"]["campaign"]
           for r in runs if r.metadata["start"]["campaign"]["sha256"] == old_sha}
    out = []
    for i, md in sorted(old.items()):
        if i >= len(campaign.measurements):
            out.append(f"measurement {i} ({md['plan']}) is no longer in the file")
            continue
        spec = campaign.measurements[i]
        for key, now in (("plan", spec.plan), ("sample", spec.sample)):
            if md[key] != now:
                out.append(f"measurement {i}: {key} was {md[key]!r}, now {now!r}")
        new = _json_safe(spec.arguments())
        for key in sorted(set(md["options"]) | set(new)):
            if md["options"].get(key) != new.get(key):
                out.append(f"measurement {i} ({spec.plan}): {key} was "
                           f"{md['options'].get(key)!r}, now {new.get(key)!r}")
    return out or [f"the file text changed (sha256 {old_sha[:12]} -> {sha[:12]}) but no "
                   "measurement's plan, sample or options did"]


def _key(md: dict) -> tuple:
    return md["index"], md["plan"], md["sample"], md["options"]


def _stored(catalog, run) -> int:
    return sum(catalog.num_events(run, stream) for stream in run)


def _sweep_finished(spec, overrides: dict) -> bool:
    args = {**spec.arguments(), **overrides}       # the file's options with the plan's defaults
    return sweep_finished(**{k: args[k] for k in ("t_start_K", "t_stop_K", "rate_K_per_min",
                                                  "log_interval_s", "resume_from_K")})


def _state(catalog, spec, runs) -> tuple[MeasurementState, str | None, bool]:
    """(state, uid to mark when continued, interrupted run holding every point)."""
    st = MeasurementState(spec.index, spec.plan)
    if not runs:
        return st, None, False
    last = runs[-1]
    start = last.metadata["start"]
    st.run, st.run_status = start["uid"], catalog.run_status(last)
    if st.run_status == "open":
        raise ResumeError(f"measurement {spec.index} ({spec.plan}): run {st.run} is still being "
                          "written by a live process (is the campaign still running?)")
    own = start.get("plan_name") == spec.plan
    interrupted = st.run_status == "interrupted"
    if own and st.run_status == "success":
        st.status = "done"
        return st, None, False
    st.status = "partial"
    params = inspect.signature(spec.kind.plan_function()).parameters
    if own and "resume_after" in params:
        st.completed = int(start.get("resume_after", 0)) + _stored(catalog, last)
        st.total = start.get("num_points_total", start.get("num_points"))
        sweep = spec.arguments().get("mode") == "sweep"
        if not sweep and st.total is not None and st.completed >= st.total:
            st.status = "done"      # the writer died after its last point
            return st, None, interrupted
        st.arguments["resume_after"] = st.completed
        if sweep and st.completed:
            data = catalog.read_primary(last).get("vsm_temperature", [])
            st.arguments["resume_from_K"] = float(data[-1]) if len(data) \
                else float(start["resume_from_K"])
            if _sweep_finished(spec, st.arguments):
                st.status = "done"  # died after its last logged point: nothing left to sweep
                return st, None, interrupted
    if st.run_status != "success":     # (a finished IRF before a decay that never started)
        (st.arguments if "continues" in params else st.md)["continues"] = st.run
    return st, st.run if interrupted else None, False


def plan_resume(campaign, *, data_root=None, force: bool = False) -> ResumePlan:
    """Read the catalog and work out what a resume runs (see the module docstring)."""
    from .catalog import NotACatalogError, open_catalog

    files = campaign_files(campaign, data_root)
    cid = campaign_id(files, campaign)
    try:
        catalog = open_catalog(files.catalog)
    except NotACatalogError:
        catalog = None
    states, to_mark, complete = [], {}, []
    try:
        runs = _campaign_runs(catalog, campaign, files, cid) if catalog is not None else []
        changes = file_changes(campaign, runs)
        if changes and not force:
            raise ResumeError(f"{campaign.path} changed since its last run "
                              f"({runs[-1].metadata['start']['uid'][:8]}):\n  "
                              + "\n  ".join(changes)
                              + "\nresume with --force to keep the runs that still match "
                                "(same plan, sample and options)")
        for spec in campaign.measurements:
            key = (spec.index, spec.plan, spec.sample, _json_safe(spec.arguments()))
            mine = [r for r in runs if _key(r.metadata["start"]["campaign"]) == key]
            st, mark, full = _state(catalog, spec, mine)
            states.append(st)
            if mark:
                to_mark[spec.index] = mark
            if full:
                complete.append(st.run)
    finally:
        if catalog is not None:
            catalog.close()
    todo = [s.index for s in states if s.status != "done"]
    start = todo[0] if todo else None
    skip = [s.index for s in states if s.status == "done" and start is not None
            and s.index > start]
    return ResumePlan(states, start, skip, to_mark, complete)


def mark_interrupted(catalog, uid: str, reason: str) -> dict:
    """Give the interrupted run ``uid`` its stop document (see the module docstring)."""
    from bluesky.utils import new_uid

    from .doclog import dumps, log_dir

    run = catalog.client[uid]
    stop = {"uid": new_uid(), "run_start": uid, "time": time.time(), "exit_status": "abort",
            "reason": reason, "num_events": {s: catalog.num_events(run, s) for s in run}}
    for path in sorted(log_dir(catalog.root).glob(f"*/{uid}.jsonl"))[:1]:
        with open(path, "r+b") as fh:
            text = fh.read()
            if text and not text.endswith(b"\n"):     # a line torn by the kill
                fh.truncate(text.rfind(b"\n") + 1)
            fh.seek(0, os.SEEK_END)
            fh.write((dumps("stop", stop) + "\n").encode())
            fh.flush()
            os.fsync(fh.fileno())
        path.with_name(path.name + ".lock").unlink(missing_ok=True)
    run.update_metadata(metadata={"stop": stop}, drop_revision=True)
    log.warning("run %s marked: %s", uid, reason)
    return stop


class _MarkOnContinue:
    """RunEngine callback: marks a measurement's interrupted run at its continuation's start."""

    def __init__(self, runner, to_mark: dict):
        self.runner, self.to_mark = runner, dict(to_mark)

    def __call__(self, name, doc):
        if name != "start":
            return
        uid = self.to_mark.pop(doc.get("campaign", {}).get("index"), None)
        if uid is not None:
            try:
                mark_interrupted(self.runner.catalog, uid, REASON.format(uid=doc["uid"]))
            except Exception:  # noqa: BLE001 - the measurement goes on; the run stays 'interrupted'
                log.exception("could not mark the interrupted run %s", uid)


def resume_campaign(campaign, *, force: bool = False, data_root=None, **runner_options):
    """``(plan, result)``: :func:`plan_resume`, then the runner from the first unfinished
    measurement (``result`` None when every measurement is done). ``runner_options`` go to
    :class:`~spinlight.campaign_run.CampaignRunner`."""
    plan = plan_resume(campaign, data_root=data_root, force=force)
    if plan.complete:
        from .catalog import open_catalog

        with open_catalog(campaign_files(campaign, data_root).catalog) as catalog:
            for uid in plan.complete:
                n = _stored(catalog, catalog.client[uid])
                mark_interrupted(catalog, uid, REASON_COMPLETE.format(n=n))
    if plan.start_index is None:
        return plan, None
    runner = CampaignRunner(campaign, data_root=data_root, **runner_options)
    runner.callbacks.append(_MarkOnContinue(runner, plan.to_mark))
    overrides = {s.index: {"arguments": s.arguments, "md": s.md} for s in plan.states
                 if s.status == "partial"}
    log.info("resume: from measurement %d; skipping %s; continuing %s", plan.start_index,
             plan.skip or "none", {i: o["arguments"] or o["md"] for i, o in overrides.items()})
    return plan, runner.run(plan.start_index, skip=plan.skip, overrides=overrides)
