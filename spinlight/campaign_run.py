"""Run a campaign file: every measurement in order, stored, analysed, logged and notified.

    result = CampaignRunner(load_campaign("paper.toml", sim=True)).run()
    result.exit_code      # 0 all ok, 1 a measurement failed, 3 sample change, 130 aborted

Per measurement: the sample is mounted (:class:`~spinlight.campaign_devices.InstrumentSession`:
a simulated lab with the sample's preset, or in real mode a stop for the operator when the
sample changes), the devices it uses are connected, its plan is built with
``spec.kind.plan_function()`` (:func:`~spinlight.campaign_devices.measurement_plan`) and run on
one RunEngine storing into the campaign's catalog (:func:`spinlight.engine.make_run_engine`),
with the streaming dc / ac (+ sequential relaxation fits) / PL analyses, a PHU exporter for
decays, the notifier feed and the campaign progress bar subscribed.

Start-document metadata of every run a measurement makes (resume and replay rely on exactly
these keys)::

    start["campaign"] = {
        "name":        campaign name ([campaign] name, default the file stem)
        "file":        absolute path of the campaign file
        "sha256":      SHA-256 (hex) of the campaign file's bytes
        "campaign_id": uuid of this file text (<catalog>/campaigns/<sha16>.json)
        "index":       0-based index of the [[measurements]] entry in the file
        "label":       its label ("" if none)
        "plan":        its plan name (a key of campaign_schema.REGISTRY)
        "options":     spec.arguments(), JSON-safe (options as written + the plan's defaults)
        "sample":      the [[samples]] name
        "sim":         on simulators only: {"speed", "seed", "faults": scripted fault count}
    }

Outcomes (:class:`MeasurementResult` ``status``): ``success``; ``failed`` (an exception —
logged, notified as a fault, its devices closed, the campaign goes on with the next
measurement); ``aborted`` (Ctrl-C — the RunEngine pauses on SIGINT — or any pause request:
the runner calls ``RE.abort()`` so the plan's ``finalize_wrapper`` puts the instruments in
their safe state, logs it and stops the campaign); ``not run``. :class:`CampaignResult`
``exit_code``: 0 every measurement succeeded, 1 one failed, 3 stopped for a sample change (real
mode; continue with ``spinlight resume FILE`` = ``run(start_index=result.next_index)``), 130
aborted.

Interlocks: for each measurement the campaign's suspenders for its devices are installed
(:meth:`~spinlight.campaign_devices.InstrumentSession.suspenders`, from ``[suspenders]``) and
removed after it; the QD drivers reconnect with the ``[suspenders]`` back-off.

The log file (paths: :mod:`spinlight.campaign_store`) gets every runner line with wall and
instrument time (measurement start/end, sample changes, RunEngine state changes through
``RE.state_hook``, suspensions and resumes, driver faults and reconnections from
``spinlight.faults``, measurement failures with tracebacks, warnings of the ``spinlight``
loggers) and, from the notifier process, run starts/stops, faults and the summary.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading

import numpy as np

from spinlight.plans.suspenders import install, remove

from .campaign import CampaignError
from .campaign_devices import InstrumentSession, SampleChangeRequired, measurement_plan
from .campaign_estimate import ESTIMATE_SPEED, EventCounter, MeasurementEstimate, estimate_campaign
from .campaign_log import CampaignLog, log, watch_engine
from .campaign_progress import CampaignProgress
from .campaign_store import cached_estimate, campaign_files, campaign_id, store_estimate

_instruments_log = logging.getLogger("spinlight.campaign.instruments")

EXIT_OK, EXIT_FAILED, EXIT_SAMPLE_CHANGE, EXIT_ABORTED = 0, 1, 3, 130


@dataclasses.dataclass
class MeasurementResult:
    index: int
    label: str
    plan: str
    sample: str
    status: str = "not run"          # success | failed | aborted | not run | skipped
    uids: list = dataclasses.field(default_factory=list)
    points: int = 0                   # events, all streams, all runs of the measurement
    instrument_s: float = 0.0
    error: str = ""


@dataclasses.dataclass
class CampaignResult:
    name: str
    campaign_id: str
    file: str
    sha256: str
    status: str                       # success | failed | aborted | sample_change
    exit_code: int
    measurements: list
    next_index: int | None            # where a resume continues (None: nothing left)
    message: str = ""
    estimates: list | None = None
    catalog: str = ""
    log: str = ""


def _json_safe(value):
    return json.loads(json.dumps(value, default=lambda o: o.item() if isinstance(o, np.generic)
                                 else list(o) if isinstance(o, (set, frozenset)) else str(o)))


def _irf_lookup(catalog):
    """``irf_lookup(uid) -> (time_ns, counts)`` from a stored IRF run (e.g. after a resume)."""
    def lookup(uid):
        run = catalog.get_run(uid)
        decay = catalog.start_doc(run)["decay"]
        data = catalog.read_primary(run)
        return np.asarray(data[decay["time_key"]])[0], np.asarray(data[decay["counts_key"]])[0]
    return lookup


def left_of(estimate: MeasurementEstimate, override: dict | None) -> MeasurementEstimate:
    """What is left of a measurement continued after ``resume_after`` points (the points
    and, in proportion, the instrument time of its estimate)."""
    done = int(((override or {}).get("arguments") or {}).get("resume_after", 0))
    if not done or estimate.points <= 0:
        return estimate
    left = max(0, estimate.points - done)
    return dataclasses.replace(estimate, points=left,
                               instrument_s=estimate.instrument_s * left / estimate.points)


def describe_error(exc: BaseException) -> str:
    """``Type: message``, with the cause when there is one: bluesky's ``FailedStatus`` names
    only the status (``MoveStatus(...)``), its cause says what the instrument reported."""
    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__
    return text if cause is None else f"{text} (cause: {type(cause).__name__}: {cause})"


class CampaignRunner:
    """Runs a loaded :class:`~spinlight.campaign.Campaign` (see the module docstring).

    ``progress``: the campaign bar on stderr; ``data_root``: write everything under this
    folder instead of the campaign's own paths; ``estimate``: rehearse first (or reuse the
    estimate cached for this file text) for the bar's totals; ``callbacks``: extra RunEngine
    callbacks; ``suspenders``: extra bluesky suspenders, installed for every measurement next
    to the campaign's own (``[suspenders]``: helium, temperature band, magnet fault, laser
    interlock, lost connection — :meth:`InstrumentSession.suspenders`); ``md``: extra
    start-document metadata of every run (e.g. ``{"replay_of": uid}``)."""

    def __init__(self, campaign, *, progress: bool = True, data_root=None, estimate: bool = True,
                 estimate_speed: float = ESTIMATE_SPEED, callbacks=(), suspenders=(),
                 progress_file=None, md: dict | None = None):
        self.campaign = campaign
        self.md = dict(md or {})
        self.files = campaign_files(campaign, data_root)
        self.progress, self.estimate, self.estimate_speed = progress, estimate, estimate_speed
        self.callbacks, self.suspenders = list(callbacks), list(suspenders)
        self.progress_file = progress_file
        self.RE = self.catalog = self.session = self.feed = self._unwatch = None

    # -- estimate -------------------------------------------------------------------------
    def estimates(self) -> list[MeasurementEstimate] | None:
        """The rehearsal of this file text: cached in the catalog folder, else run now."""
        cached = cached_estimate(self.files)
        if cached is not None:
            log.info("estimate: cached for this campaign file (rehearsed at x%g)", cached[1])
            return [MeasurementEstimate.from_dict(d) for d in cached[0]]
        log.info("estimate: rehearsing the campaign on simulators (x%g)", self.estimate_speed)
        try:
            est = estimate_campaign(self.campaign, speed=self.estimate_speed)
        except CampaignError as exc:    # a real campaign whose samples have no sim preset
            log.warning("no estimate: the campaign cannot be rehearsed on simulators:\n%s", exc)
            return None
        store_estimate(self.files, [e.to_dict() for e in est], self.estimate_speed)
        return est

    # -- run ------------------------------------------------------------------------------
    def run(self, start_index: int = 0, *, skip=(), overrides: dict | None = None
            ) -> CampaignResult:
        """Run measurements ``start_index``.. in file order; see the module docstring.

        For ``spinlight resume`` (:mod:`spinlight.campaign_resume`): measurements whose index
        is in ``skip`` are not run (status ``skipped``); ``overrides`` maps a measurement index
        to ``{"arguments": {...}, "md": {...}}``: extra plan keyword arguments (e.g.
        ``resume_after``, ``continues``) and start-document metadata for that measurement
        (``start["campaign"]["options"]`` stays the file's options)."""
        from spinlight.instruments.errors import check_range

        c = self.campaign
        check_range("start_index", start_index, 0, len(c.measurements) - 1, "")
        cid = campaign_id(self.files, c)
        self.session = InstrumentSession(c, data_dir=self.files.sim / cid[:8],
                                         log=_instruments_log)
        campaign_log = CampaignLog(self.files.log, lambda: self.session.now())
        results = [MeasurementResult(m.index, m.label, m.plan, m.sample)
                   for m in c.measurements[start_index:]]
        status, next_index, message, estimates, progress = "success", None, "", None, None
        try:
            log.info("campaign %r start: %s (sha256 %s, id %s), measurements %d..%d of %d, %s",
                     c.name, c.path, self.files.sha256[:16], cid, start_index,
                     len(c.measurements) - 1, len(c.measurements),
                     "simulated lab" if self.session.sim else "real instruments")
            estimates = self.estimates() if self.estimate else None
            counter = self._open_engine()
            if self.progress:
                todo = {e.index: left_of(e, (overrides or {}).get(e.index)) for e in estimates
                        if e.index >= start_index and e.index not in skip} \
                    if estimates else None
                progress = CampaignProgress(todo, len(c.measurements), self.session.now,
                                            file=self.progress_file)
                self.RE.subscribe(progress)
            self.feed.campaign_event(
                "campaign_start", f"{c.name}: measurements {start_index}..{len(c.measurements) - 1}",
                campaign=c.name, campaign_id=cid, file=str(c.path),
                estimated_h=round(sum(left_of(e, (overrides or {}).get(e.index)).instrument_s
                                      for e in estimates if e.index >= start_index
                                      and e.index not in skip) / 3600, 3) if estimates else None)
            for r, spec in zip(results, c.measurements[start_index:]):
                if spec.index in skip:
                    r.status = "skipped"
                    continue
                outcome = self._measure(spec, r, cid, counter, progress,
                                        first=spec.index == start_index,
                                        override=(overrides or {}).get(spec.index) or {})
                if outcome == "sample_change":
                    status, next_index = "sample_change", spec.index
                    message = self._sample_change_message(spec)
                    break
                if outcome == "aborted":
                    status, next_index = "aborted", spec.index
                    message = f"aborted during measurement {spec.index} ({spec.plan})"
                    break
                if outcome == "failed":
                    status = "failed"
        except KeyboardInterrupt:
            status, message = "aborted", "aborted (Ctrl-C) outside a measurement"
            log.warning(message)
        except BaseException as exc:
            status, message = "failed", f"campaign stopped: {type(exc).__name__}: {exc}"
            log.error(message, exc_info=exc)
            raise
        finally:
            result = self._finish(cid, status, next_index, message, results, estimates, progress,
                                  campaign_log)
        return result

    def _measure(self, spec, r: MeasurementResult, cid: str, counter, progress, *, first,
                 override) -> str:
        from bluesky.utils import RunEngineInterrupted

        c, session = self.campaign, self.session
        try:
            session.load(spec, first=first)
        except SampleChangeRequired:
            return "sample_change"
        except Exception as exc:  # noqa: BLE001 - e.g. a simulated lab that cannot start
            return self._failed(spec, r, exc)
        counter.begin()
        t0 = None
        md = {**self.md, **override.get("md", {}),
              "campaign": {"name": c.name, "file": str(c.path.resolve()),
                           "sha256": self.files.sha256, "campaign_id": cid, "index": spec.index,
                           "label": spec.label, "plan": spec.plan,
                           "options": _json_safe(spec.arguments()), "sample": spec.sample}}
        if session.sim:
            md["campaign"]["sim"] = {"speed": session.speed, "seed": session.seed,
                                     "faults": len(session.faults)}
        try:
            devices = session.connect(spec)
            t0 = session.now()
            if progress is not None:
                progress.begin(spec, t0)
            log.info("measurement %d start: %s on %s [%s]%s", spec.index, spec.plan, spec.sample,
                     "+".join(session.needed(spec)), f" ({spec.label})" if spec.label else "")
            plan_spec = dataclasses.replace(spec, options={**spec.options,
                                                           **override.get("arguments", {})})
            plan = measurement_plan(plan_spec, c.samples[spec.sample], devices, md)
            suspenders = session.suspenders(devices) + self.suspenders
            install(self.RE, suspenders)
            try:
                self.RE(plan)
            finally:
                remove(self.RE, suspenders)
            r.status = "success"
        except RunEngineInterrupted:
            r.status = "aborted"
            log.warning("measurement %d paused (Ctrl-C or a pause request): aborting; the plan's "
                        "cleanup puts the instruments in their safe state", spec.index)
            try:
                self.RE.abort(reason="campaign aborted (Ctrl-C / pause request)")
                log.warning("measurement %d aborted; cleanup done", spec.index)
            except Exception as exc:  # noqa: BLE001
                log.error("measurement %d: cleanup after the abort failed: %s: %s", spec.index,
                          type(exc).__name__, exc, exc_info=True)
                session.discard(session.needed(spec))
        except KeyboardInterrupt:
            r.status = "aborted"
            log.warning("measurement %d interrupted (Ctrl-C) before its plan ran", spec.index)
        except Exception as exc:  # noqa: BLE001 - logged, notified, the campaign goes on
            self._failed(spec, r, exc)
        finally:
            r.uids, r.points = list(counter.uids), counter.points
            r.instrument_s = round(session.now() - t0, 3) if t0 is not None else 0.0
            if progress is not None and t0 is not None:
                progress.end(r.instrument_s)
            log.info("measurement %d end: %s, %d points, %.0f s (%.2f h) instrument time%s",
                     spec.index, r.status, r.points, r.instrument_s, r.instrument_s / 3600,
                     f", runs {', '.join(u[:8] for u in r.uids)}" if r.uids else "")
        return r.status

    def _failed(self, spec, r: MeasurementResult, exc: Exception) -> str:
        r.status, r.error = "failed", describe_error(exc)
        log.error("measurement %d (%s on %s) failed: %s", spec.index, spec.plan, spec.sample,
                  r.error, exc_info=exc)
        self.feed.campaign_event("fault", f"measurement {spec.index} ({spec.plan} on "
                                 f"{spec.sample}) failed; the campaign goes on", exc=exc,
                                 measurement=spec.index, plan=spec.plan)
        self.session.discard(self.session.needed(spec))
        return "failed"

    def _sample_change_message(self, spec) -> str:
        msg = (f"sample change: put sample {spec.sample!r} in the "
               f"{' / '.join(self.session.needed(spec))} (now: {self.session.sample!r}), then "
               f"run `spinlight resume {self.campaign.path}` (continues at measurement "
               f"{spec.index}, {spec.plan})")
        log.warning(msg)
        self.feed.campaign_event("info", msg, measurement=spec.index, sample=spec.sample)
        return msg

    # -- assembly -------------------------------------------------------------------------
    def _open_engine(self) -> EventCounter:
        from spinlight.analysis.ac_streaming import RelaxationCampaign, make_ac_analysis_router
        from spinlight.analysis.pl_streaming import make_pl_analysis_router
        from spinlight.analysis.streaming import make_dc_analysis_router
        from spinlight.engine import make_run_engine
        from spinlight.notify_feed import NotifierFeed
        from spinlight.phu_export import PhuExporter

        main = threading.current_thread() is threading.main_thread()
        self.RE, self.catalog = make_run_engine(self.files.catalog, progress=False,
                                                context_managers=None if main else [])
        store = self.catalog.store
        counter = EventCounter()
        self.feed = NotifierFeed(self.files.log, hook=self.campaign.settings.notify_command,
                                 summary=self.files.summary)
        for cb in [counter, make_dc_analysis_router(store),
                   make_ac_analysis_router(store, on_result=RelaxationCampaign(store)),
                   make_pl_analysis_router(store, _irf_lookup(self.catalog)),
                   PhuExporter(self.files.phu), self.feed, *self.callbacks]:
            self.RE.subscribe(cb)
        self._unwatch = watch_engine(self.RE, self.feed)
        return counter

    def _finish(self, cid, status, next_index, message, results, estimates, progress,
                campaign_log) -> CampaignResult:
        c = self.campaign
        codes = {"success": EXIT_OK, "failed": EXIT_FAILED, "sample_change": EXIT_SAMPLE_CHANGE,
                 "aborted": EXIT_ABORTED}
        counts = {k: sum(r.status == k for r in results)
                  for k in ("success", "failed", "aborted", "not run")}
        hours = sum(r.instrument_s for r in results) / 3600
        text = (f"campaign {c.name!r} {status}: {counts['success']} ok, {counts['failed']} "
                f"failed, {counts['aborted']} aborted, {counts['not run']} not run; "
                f"{sum(r.points for r in results)} points, {hours:.2f} h instrument time")
        if progress is not None:
            progress.close()
        if status in ("aborted", "sample_change") and next_index is None:
            next_index = next((r.index for r in results if r.status in ("aborted", "not run")),
                              None)
        (log.warning if status != "success" else log.info)(text)
        for close in (lambda: self.feed and self.feed.campaign_event(
                          "campaign_end", text + (f" — {message}" if message else ""),
                          status=status, measurements=counts, instrument_h=round(hours, 3)),
                      lambda: self._unwatch and self._unwatch(),
                      lambda: self.feed and self.feed.close(),
                      lambda: self.session.close(),
                      lambda: self.catalog and self.catalog.close()):
            try:
                close()
            except Exception:  # noqa: BLE001 - close the rest anyway
                log.exception("error while closing the campaign")
        campaign_log.close()
        return CampaignResult(c.name, cid, str(c.path), self.files.sha256, status, codes[status],
                              results, next_index, message, estimates, str(self.files.catalog),
                              str(self.files.log))

