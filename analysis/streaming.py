"""Streaming dc analysis: an ``event_model.DocumentRouter`` that analyses a run as it arrives
and publishes the result as its own, derived run.

The derived run's start document carries ``plan_name="dc_analysis"``, ``derived_from`` (the raw
run uid), ``analysis`` (``chi_t`` / ``m_h`` / ``mce_isotherms``) and ``results``
(:meth:`DcRunAnalysis.to_dict`). Its ``primary`` stream holds one event with the scalar results;
the curves are not stored again: they are recomputed from the raw run (``spinlight fit``), which
keeps storing a result cheap (TiledWriter writes table rows one request at a time). The callback never raises
into the RunEngine: any failure is logged and published as a derived run with
``exit_status="fail"``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import numpy as np
from event_model import DocumentRouter, RunRouter, compose_run, unpack_event_page

from .dc import DC_PLANS, DcRunAnalysis, analyze_dc_run

logger = logging.getLogger(__name__)

#: Fewest points (after removing duplicates) for a final analysis.
MIN_POINTS = 3
#: Points in the Curie–Weiss window before a partial χT result is computed.
MIN_PARTIAL_CW_POINTS = 5


def _data_key(value: Any) -> dict | None:
    if isinstance(value, bool):
        return {"dtype": "boolean", "shape": [], "source": "spinlight.analysis"}
    if isinstance(value, int):
        return {"dtype": "integer", "shape": [], "source": "spinlight.analysis"}
    if isinstance(value, float):
        return {"dtype": "number", "shape": [], "source": "spinlight.analysis"}
    if isinstance(value, str):
        return {"dtype": "string", "shape": [], "source": "spinlight.analysis"}
    return None


class SafeRouter(DocumentRouter):
    """A ``DocumentRouter`` that never raises into the RunEngine and emits derived documents
    through ``self._emit_cb`` without letting an emit failure escape either."""

    _emit_cb: Callable[[str, dict], Any]

    def __call__(self, name: str, doc: dict, validate: bool = False):
        try:
            return super().__call__(name, doc, validate)
        except Exception:  # noqa: BLE001 - a callback must not kill the plan
            logger.exception("%s failed on %r document", type(self).__name__, name)
            return name, doc

    def _send(self, name: str, doc: dict) -> None:
        try:
            self._emit_cb(name, doc)
        except Exception:  # noqa: BLE001
            logger.exception("emit failed for derived %r document", name)


class DcAnalysisCallback(SafeRouter):
    """Collects one dc run's primary events, analyses it and emits a derived run.

    Parameters
    ----------
    emit : callable ``emit(name, doc)`` receiving the derived run's documents.
    on_result : optional ``on_result(DcRunAnalysis)``, called after a successful final analysis.
    on_partial : optional ``on_partial(DcRunAnalysis)``, called for each partial result
        (χT runs: once ≥ 5 points are in the Curie–Weiss window and again as more arrive; M(H)
        runs: each time an isotherm is completed).
    stream_name : the raw stream to analyse (default ``primary``).
    analysis_kwargs : passed to :func:`analyze_dc_run` (``delta_b_T``, ``cw_t_min_K`` ...).

    After the run: ``.result`` (final analysis or None), ``.partial``, ``.error``,
    ``.derived_uid``.
    """

    def __init__(self, emit: Callable[[str, dict], Any], *, on_result=None, on_partial=None,
                 stream_name: str = "primary", **analysis_kwargs: Any) -> None:
        super().__init__()
        self._emit_cb = emit  # strong reference (DocumentRouter keeps only a weak one)
        self._on_result, self._on_partial = on_result, on_partial
        self._stream_name = stream_name
        self._kwargs = analysis_kwargs
        self._start: dict | None = None
        self._descriptors: set[str] = set()
        self._rows: list[dict[str, Any]] = []
        self._partial_marker: Any = None
        self._in_window = 0
        self.result: DcRunAnalysis | None = None
        self.partial: DcRunAnalysis | None = None
        self.error: str | None = None
        self.derived_uid: str | None = None

    # -- collecting -----------------------------------------------------------------------------
    def start(self, doc):
        self._start = dict(doc)
        self._descriptors.clear()
        self._rows.clear()
        self.result = self.partial = self.error = self.derived_uid = None
        self._partial_marker = None
        self._in_window = 0

    def descriptor(self, doc):
        if doc.get("name") == self._stream_name:
            self._descriptors.add(doc["uid"])

    def event(self, doc):
        if doc.get("descriptor") not in self._descriptors:
            return
        row = {k: v for k, v in doc["data"].items()
               if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}
        row["seq_num"] = doc.get("seq_num", len(self._rows) + 1)
        self._rows.append(row)
        self._maybe_partial(row)

    def event_page(self, doc):
        for event in unpack_event_page(doc):
            self.event(event)

    def columns(self, n_rows: int | None = None) -> dict[str, np.ndarray]:
        """The first ``n_rows`` (default all) collected rows as arrays (NaN where a row lacks a
        key)."""
        rows = self._rows[:n_rows]
        keys = sorted({k for row in rows for k in row})
        return {k: np.array([row.get(k, np.nan) for row in rows], dtype=float) for k in keys}

    def _maybe_partial(self, row: dict) -> None:
        kind = (self._start or {}).get("plan_name")
        if kind == "chi_t":
            t = row.get("vsm_temperature", row.get("mpms3_temperature", np.nan))
            lo = self._kwargs.get("cw_t_min_K", 150.0)
            hi = self._kwargs.get("cw_t_max_K", 300.0)
            self._in_window += int(lo <= t <= hi)
            # Refit when the window has grown by half since the last partial fit: geometric
            # steps keep the streaming cost linear in the number of points.
            last = self._partial_marker or 0
            due = (self._in_window >= MIN_PARTIAL_CW_POINTS
                   and self._in_window >= max(MIN_PARTIAL_CW_POINTS, int(1.5 * last)))
            marker = self._in_window if due else self._partial_marker
        else:
            marker = row.get("mpms3_temperature_setpoint")
            due = self._partial_marker is not None
        due = due and marker != self._partial_marker
        if due:
            # M(H): the new row opens the next isotherm; analyse the completed ones only
            n_rows = None if kind == "chi_t" else len(self._rows) - 1
            try:
                self.partial = analyze_dc_run(self._start, self.columns(n_rows), **self._kwargs)
                if self._on_partial is not None:
                    self._on_partial(self.partial)
            except Exception as exc:  # noqa: BLE001 - partial results are best effort
                logger.debug("partial dc analysis skipped: %s", exc)
        self._partial_marker = marker

    # -- final analysis and publication ---------------------------------------------------------
    def stop(self, doc):
        if self._start is None:
            return
        raw_status = doc.get("exit_status", "success")
        cols = self.columns()
        n = int(np.unique(cols["seq_num"]).size) if cols else 0
        try:
            if n < MIN_POINTS:
                raise ValueError(f"run has {n} primary point(s); allowed: at least {MIN_POINTS}")
            self.result = analyze_dc_run(self._start, cols, **self._kwargs)
        except Exception as exc:  # noqa: BLE001
            self.error = f"{type(exc).__name__}: {exc}"
            logger.warning("dc analysis of run %s failed: %s", self._start.get("uid"), self.error)
        self._publish(raw_status)
        if self.result is not None and self._on_result is not None:
            try:
                self._on_result(self.result)
            except Exception:  # noqa: BLE001
                logger.exception("on_result callback failed")

    def _publish(self, raw_status: str) -> None:
        results = self.result.to_dict() if self.result is not None else {"error": self.error}
        bundle = compose_run(metadata={
            "plan_name": "dc_analysis", "derived_from": self._start.get("uid"),
            "analysis": self._start.get("plan_name"), "results": results,
            "raw_exit_status": raw_status, "sample_name": (self._start.get("sample") or {})
            .get("name")})
        self.derived_uid = bundle.start_doc["uid"]
        self._send("start", bundle.start_doc)
        now = time.time()
        if self.result is not None:
            scalars = {k: v for k, v in results.items() if _data_key(v) is not None}
            desc = bundle.compose_descriptor(
                name="primary", data_keys={k: _data_key(v) for k, v in scalars.items()},
                hints={"dc_analysis": {"fields": [k for k in scalars if k.startswith(
                    ("theta_K", "curie_constant_emu", "chi_t_300K", "minus_delta_s_max"))]}})
            self._send("descriptor", desc.descriptor_doc)
            self._send("event", desc.compose_event(
                data=scalars, timestamps={k: now for k in scalars}, seq_num=1))
        ok = self.result is not None
        self._send("stop", bundle.compose_stop(exit_status="success" if ok else "fail",
                                               reason="" if ok else str(self.error)))


def run_factory(emit: Callable[[str, dict], Any], plans, callback_cls, **kwargs: Any):
    """A ``RunRouter`` factory: a ``callback_cls(emit, **kwargs)`` for every run whose
    ``plan_name`` is in ``plans``, nothing for other runs (including derived ones)."""
    plans = frozenset(plans)

    def factory(name: str, start_doc: dict):
        if start_doc.get("plan_name") in plans:
            return [callback_cls(emit, **kwargs)], []
        return [], []

    return factory


def dc_analysis_factory(emit: Callable[[str, dict], Any], **kwargs: Any):
    """A ``RunRouter`` factory: a :class:`DcAnalysisCallback` for every dc run."""
    return run_factory(emit, DC_PLANS, DcAnalysisCallback, **kwargs)


def make_dc_analysis_router(emit: Callable[[str, dict], Any], **kwargs: Any) -> RunRouter:
    """``RE.subscribe(make_dc_analysis_router(emit))`` analyses every dc run it sees."""
    return RunRouter([dc_analysis_factory(emit, **kwargs)])
