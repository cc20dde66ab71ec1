"""Streaming ac analysis: every frequency sweep is fitted as soon as its set completes; τ(H) /
τ(T) and their mechanism fits update as the campaign proceeds; results are stored as linked
derived runs.

* :class:`AcAnalysisCallback` — one ac run. A set is complete when an event of the next set
  arrives (or at stop). Its spectrum (all ac streams merged: MPMS3 below 1 kHz, PPMS above) is
  fitted once; the derived ``ac_analysis`` run (``derived_from`` = raw uid) gets one
  ``primary`` event per set (τ, α, log10 rate ± error of the fast process, setpoints) while
  the raw run is still going, and a ``summary`` event (optimal field, τ⁻¹(H) or Arrhenius and
  τ⁻¹(T) parameters) at the end.
* :class:`RelaxationCampaign` — across runs of one sample: when a field scan and a temperature
  scan exist, the paper's sequential fit is run and stored as a ``relaxation_analysis`` run
  linked to both raw runs; it is refitted whenever a newer scan completes.

Callbacks never raise into the RunEngine: failures are logged (and a failed final analysis is
published with ``exit_status="fail"``).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable

import numpy as np
from event_model import RunRouter, compose_run, unpack_event_page

from .ac_dataset import AcDatasetResult, fit_ac_dataset
from .ac_run import (AC_PLANS, SET_KEY, AcRunAnalysis, analysis_from_dataset, field_setpoints,
                     merged_columns, relaxation_from_runs, run_spectra)
from .streaming import SafeRouter, _data_key, run_factory

logger = logging.getLogger(__name__)

SET_FIELDS = ("set_id", "T_set_K", "T_mean_K", "H_set_Oe", "tau_s", "log10_rate_err", "alpha",
              "n_processes")


def _publish(emit, metadata: dict, streams: dict[str, list[dict]], ok: bool, reason: str = ""):
    """Emit a complete derived run: start, one descriptor per stream, events, stop."""
    bundle = compose_run(metadata=metadata)
    emit("start", bundle.start_doc)
    now = time.time()
    for name, events in streams.items():
        if not events:
            continue
        keys = {k: _data_key(v) for k, v in events[0].items() if _data_key(v) is not None}
        desc = bundle.compose_descriptor(name=name, data_keys=keys)
        emit("descriptor", desc.descriptor_doc)
        for i, data in enumerate(events, 1):
            row = {k: data.get(k) for k in keys}
            emit("event", desc.compose_event(data=row, timestamps={k: now for k in row}, seq_num=i))
    emit("stop", bundle.compose_stop(exit_status="success" if ok else "fail", reason=reason))
    return bundle.start_doc["uid"]


def _scalar(v) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v) if math.isfinite(float(v)) else float("nan")
    return v


class AcAnalysisCallback(SafeRouter):
    """Fits one ac run set by set and publishes a linked ``ac_analysis`` run.

    emit : ``emit(name, doc)`` for the derived run's documents (e.g. ``catalog.store``).
    on_set : optional ``on_set(AcRunAnalysis)`` after each completed set (partial result:
        τ table so far, and τ⁻¹(H) / Arrhenius once enough sets exist).
    on_result : optional ``on_result(AcRunAnalysis)`` after the final analysis.
    model : ac model for :func:`fit_ac_dataset` (default ``"auto"``).
    """

    def __init__(self, emit: Callable[[str, dict], Any], *, on_set=None, on_result=None,
                 model: str = "auto") -> None:
        super().__init__()
        self._emit_cb = emit
        self._on_set, self._on_result, self._model = on_set, on_result, model
        self._start: dict | None = None
        self._wanted: set[str] = set()
        self._streams: dict[str, str] = {}         # descriptor uid -> stream name
        self._rows: dict[int, dict[str, list[dict]]] = {}
        self._current: int | None = None
        self._datasets: list[AcDatasetResult] = []
        self._setpoints: dict[int, float] = {}
        self.partial: AcRunAnalysis | None = None
        self.result: AcRunAnalysis | None = None
        self.error: str | None = None
        self.derived_uid: str | None = None

    # -- collecting -----------------------------------------------------------------------------
    def start(self, doc):
        self._start = dict(doc)
        self._wanted = set(doc.get("ac_streams") or [])

    def descriptor(self, doc):
        if doc.get("name") in self._wanted:
            self._streams[doc["uid"]] = doc["name"]

    def event(self, doc):
        stream = self._streams.get(doc.get("descriptor"))
        if stream is None:
            return
        data = doc["data"]
        k = int(data[SET_KEY])
        if self._current is not None and k != self._current:
            self._complete(self._current)
        self._current = k
        self._rows.setdefault(k, {}).setdefault(stream, []).append(dict(data))

    def event_page(self, doc):
        for event in unpack_event_page(doc):
            self.event(event)

    def _complete(self, k: int) -> None:
        """Fit set ``k`` (once) and report the partial run analysis."""
        rows = self._rows.pop(k, None)
        if not rows:
            return
        streams = {name: {key: [r.get(key, math.nan) for r in rs] for key in rs[0]}
                   for name, rs in rows.items()}
        cols = merged_columns(streams)
        self._setpoints.update(field_setpoints(cols))
        self._datasets.append(fit_ac_dataset(run_spectra(self._start, cols), model=self._model))
        self.partial = analysis_from_dataset(self._start, self._dataset(), self._setpoints)
        if self._on_set is not None:
            try:
                self._on_set(self.partial)
            except Exception:  # noqa: BLE001
                logger.exception("on_set callback failed")

    def _dataset(self) -> AcDatasetResult:
        ds = self._datasets
        return AcDatasetResult([s for d in ds for s in d.spectra], [r for d in ds for r in d.results],
                               [e for d in ds for e in d.errors], self._model,
                               [r for d in ds for r in d.rows])

    # -- final analysis and publication ---------------------------------------------------------
    def stop(self, doc):
        if self._start is None:
            return
        if self._current is not None:
            self._complete(self._current)
        try:
            if not self._datasets:
                raise ValueError("run has no ac events; allowed: at least one completed set")
            self.result = analysis_from_dataset(self._start, self._dataset(), self._setpoints)
        except Exception as exc:  # noqa: BLE001
            self.error = f"{type(exc).__name__}: {exc}"
            logger.warning("ac analysis of run %s failed: %s", self._start.get("uid"), self.error)
        self._publish(doc.get("exit_status", "success"))
        if self.result is not None and self._on_result is not None:
            try:
                self._on_result(self.result)
            except Exception:  # noqa: BLE001
                logger.exception("on_result callback failed")

    def _publish(self, raw_status: str) -> None:
        res = self.result
        summary = res.to_dict() if res is not None else {"error": self.error}
        table = summary.pop("tau_table", None) if res is not None else None
        sets = [] if table is None else [
            {k: _scalar(table[k][i]) for k in SET_FIELDS} for i in range(len(table["set_id"]))]
        scalars = {k: _scalar(v) for k, v in summary.items() if _data_key(_scalar(v)) is not None}
        self.derived_uid = _publish(self._send, {
            "plan_name": "ac_analysis", "derived_from": self._start.get("uid"),
            "analysis": self._start.get("plan_name"), "results": summary,
            "raw_exit_status": raw_status,
            "sample_name": (self._start.get("sample") or {}).get("name")},
            {"primary": sets, "summary": [scalars] if res is not None else []},
            res is not None, "" if res is not None else str(self.error))


class RelaxationCampaign:
    """Across ac runs of each sample: the latest field scan and temperature scan → sequential
    τ⁻¹ fit, stored as a ``relaxation_analysis`` run linked to both raw runs.

    Feed it with ``on_result`` of :class:`AcAnalysisCallback`. ``terms_by_sample`` optionally
    maps a sample name to the mechanisms to fit (default: all but D1); ``refit_D2_samples``
    lists samples whose H and T dependences need separate D2 (mCB-Nd in the paper).
    """

    def __init__(self, emit: Callable[[str, dict], Any], *, terms_by_sample=None,
                 refit_D2_samples=(), on_fit=None) -> None:
        self._emit = emit
        self._terms = dict(terms_by_sample or {})
        self._refit = set(refit_D2_samples)
        self._on_fit = on_fit
        self.runs: dict[str, dict[str, AcRunAnalysis]] = {}
        self.fits: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.derived_uids: dict[str, str] = {}

    def __call__(self, analysis: AcRunAnalysis) -> None:
        try:
            self._add(analysis)
        except ValueError as exc:   # e.g. too few fitted sets for the free parameters
            self.errors[analysis.sample_name] = str(exc)
            logger.warning("relaxation fit of %s not possible yet: %s", analysis.sample_name, exc)
        except Exception:  # noqa: BLE001 - never break the acquisition
            logger.exception("relaxation campaign update failed")

    def _add(self, analysis: AcRunAnalysis) -> None:
        name = analysis.sample_name
        self.runs.setdefault(name, {})[analysis.kind] = analysis
        runs = self.runs[name]
        if "ac_field_scan" not in runs or "ac_temperature_scan" not in runs:
            return
        fr, tr = runs["ac_field_scan"], runs["ac_temperature_scan"]
        fit = relaxation_from_runs(fr, tr, terms=self._terms.get(name),
                                   refit_D2=name in self._refit)
        self.fits[name] = fit
        params = {f"{k}": _scalar(v) for k, v in fit.params.items()}
        errors = {f"{k}_err": _scalar(v) for k, v in fit.stderr.items()}
        data = {k: v for k, v in {**params, **errors}.items() if _data_key(v) is not None}
        self.derived_uids[name] = _publish(self._emit, {
            "plan_name": "relaxation_analysis", "analysis": "sequential_fit",
            "derived_from": [fr.start.get("uid"), tr.start.get("uid")], "sample_name": name,
            "results": fit.to_dict()}, {"primary": [data]}, True)
        if self._on_fit is not None:
            self._on_fit(name, fit)


def ac_analysis_factory(emit: Callable[[str, dict], Any], **kwargs: Any):
    """A ``RunRouter`` factory: an :class:`AcAnalysisCallback` for every ac run."""
    return run_factory(emit, AC_PLANS, AcAnalysisCallback, **kwargs)


def make_ac_analysis_router(emit: Callable[[str, dict], Any], **kwargs: Any) -> RunRouter:
    """``RE.subscribe(make_ac_analysis_router(catalog.store, on_result=campaign))``."""
    return RunRouter([ac_analysis_factory(emit, **kwargs)])
