"""Streaming photoluminescence analysis: each decay is fitted when its run completes, each
spectrum gets its peaks and integrated intensities; results are stored as linked derived runs.

* :class:`PLAnalysisCallback` — one PL run (``pl_run.PL_PLANS``). ``instrument_response``: the
  IRF histogram is remembered under the run uid (:class:`IrfCache`). ``lifetime_decay``: fitted
  with ``start["decay"]["n_exp"]`` exponentials by Poisson MLE, reconvolved with the IRF of
  ``start["decay"]["irf_uid"]`` (remembered, or fetched by ``irf_lookup(uid) → (time_ns,
  counts)``, e.g. from the catalog); with no IRF a tail fit, said so in ``note`` and
  ``fit_kind``. Published as ``lifetime_analysis``. Spectra → ``spectrum_analysis``.
  ``emission_correction`` (standard-lamp scan): its :class:`~.spectral_correction.
  SpectralResponse` becomes the router's current emission response (:class:`ResponseStore`,
  which may also start from a given response or file; a completed lamp scan replaces it) and
  is published as ``spectral_response_analysis``. Emission spectra are analysed with the
  current response, excitation spectra normalised by their reference column
  (``reference_key``); the ``spectrum_analysis`` start says ``correction`` (``none`` /
  ``emission_response`` / ``reference``), ``correction_uid`` and ``correction_file``, and its
  results hold the corrected peaks plus ``uncorrected_*`` ones. A correction that cannot apply
  (scan outside the usable range, reference 0) falls back to the uncorrected analysis, the
  reason in ``results["correction_refused"]``. A response measured with another emission slit
  is used, with a note (the relative shape hardly depends on the slit).
* :class:`EnergyTransferTracker` — for one donor-only / donor–acceptor pair at the donor
  emission: η_ET = 1 − τ_DA/τ_D from the latest lifetime results of both, published as
  ``energy_transfer_analysis`` linked to both raw runs; recomputed when either is remeasured.

Derived runs: start metadata ``plan_name``, ``derived_from`` (raw uid), ``analysis`` (raw plan),
``results`` (JSON dict), ``sample_name``; one ``primary`` event with the scalar results. Nothing
here raises into the RunEngine: failures are logged and a failed analysis is published with
``exit_status="fail"``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

import numpy as np
from event_model import RunRouter, unpack_event_page

from . import _validate as check
from .ac_streaming import _publish
from .lifetime_uncertainty import EnergyTransferResult, energy_transfer_efficiency
from .pl_run import (PL_PLANS, LifetimeRunAnalysis, SpectrumRunAnalysis, analyze_decay,
                     decay_from_columns, spectrum_from_columns)
from .spectral_correction import RESPONSE_PLANS, SpectralResponse, response_from_run
from .streaming import SafeRouter, run_factory

logger = logging.getLogger(__name__)


def _call_safely(fn, *args) -> None:
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - listeners must not break the acquisition
        logger.exception("PL result listener %r failed", fn)


class IrfCache:
    """IRF histograms ``(time_ns, counts)`` by run uid: those seen in this session, else
    ``lookup(uid)`` (its result is remembered)."""

    def __init__(self, lookup: Callable[[str], Any] | None = None) -> None:
        self._lookup = lookup
        self._irfs: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def remember(self, uid: str, time_ns, counts) -> None:
        self._irfs[uid] = (np.asarray(time_ns, float), np.asarray(counts, float))

    def __contains__(self, uid) -> bool:
        return uid in self._irfs

    def get(self, uid: str | None) -> tuple[tuple | None, str]:
        """(IRF or None, how it was found or why not)."""
        if uid is None:
            return None, "irf_uid=None: the run names no IRF"
        if uid in self._irfs:
            return self._irfs[uid], f"IRF of run {uid} (seen in this session)"
        if self._lookup is None:
            return None, f"IRF run {uid} not seen and no irf_lookup"
        try:
            found = self._lookup(uid)
            if found is None:
                return None, f"irf_lookup({uid!r}) found nothing"
            time_ns, counts = found
            self.remember(uid, time_ns, counts)
        except Exception as exc:  # noqa: BLE001 - fall back to a tail fit
            return None, f"irf_lookup({uid!r}) failed: {type(exc).__name__}: {exc}"
        return self._irfs[uid], f"IRF of run {uid} (irf_lookup)"


class ResponseStore:
    """The emission response the router applies: ``initial`` (a :class:`SpectralResponse` or
    the path of a response file) until a standard-lamp run is seen, then the last one seen."""

    def __init__(self, initial=None, certificate=None) -> None:
        if initial is not None and not isinstance(initial, SpectralResponse):
            initial = SpectralResponse.from_file(initial)
        self.current: SpectralResponse | None = initial
        self.certificate = certificate

    def remember(self, response: SpectralResponse) -> None:
        self.current = response


class PLAnalysisCallback(SafeRouter):
    """Analyses one PL run at its stop document and publishes the linked derived run.

    emit : ``emit(name, doc)`` for the derived documents (e.g. ``catalog.store``).
    irfs : shared :class:`IrfCache` (one per router, so decays find earlier IRF runs).
    on_result : optional ``on_result(LifetimeRunAnalysis | SpectrumRunAnalysis)``.
    fit_kwargs : passed to :func:`~.pl_run.analyze_decay` (``fit_range``, ``profile`` …).
    spectrum_kwargs : passed to :func:`~.pl_spectra.analyze_spectrum` (``bands`` …).
    responses : shared :class:`ResponseStore` (the emission correction for emission spectra).

    After the run: ``.result``, ``.error``, ``.derived_uid``.
    """

    def __init__(self, emit: Callable[[str, dict], Any], *, irfs: IrfCache | None = None,
                 on_result=None, fit_kwargs: dict | None = None,
                 spectrum_kwargs: dict | None = None, responses: ResponseStore | None = None
                 ) -> None:
        super().__init__()
        self._emit_cb = emit
        self._irfs = irfs if irfs is not None else IrfCache()
        self._responses = responses if responses is not None else ResponseStore()
        self._on_result = on_result
        self._fit_kwargs, self._spectrum_kwargs = fit_kwargs or {}, spectrum_kwargs or {}
        self._start: dict | None = None
        self._descriptors: set[str] = set()
        self._rows: list[dict] = []
        self.result: LifetimeRunAnalysis | SpectrumRunAnalysis | SpectralResponse | None = None
        self.error: str | None = None
        self.derived_uid: str | None = None

    def start(self, doc):
        self._start = dict(doc)
        self._descriptors.clear()
        self._rows.clear()

    def descriptor(self, doc):
        if doc.get("name") == "primary":
            self._descriptors.add(doc["uid"])

    def event(self, doc):
        if doc.get("descriptor") in self._descriptors:
            self._rows.append(dict(doc["data"]))

    def event_page(self, doc):
        for event in unpack_event_page(doc):
            self.event(event)

    def columns(self) -> dict[str, list]:
        keys = {k for row in self._rows for k in row}
        return {k: [row.get(k) for row in self._rows] for k in keys}

    def stop(self, doc):
        if self._start is None:
            return
        plan = self._start.get("plan_name")
        status = doc.get("exit_status", "success")
        try:
            if not self._rows:
                raise ValueError(f"run has 0 primary events; allowed: at least 1 ({plan})")
            if plan in RESPONSE_PLANS:
                self.result = response_from_run(self._start, self.columns(),
                                                certificate=self._responses.certificate)
                if status == "success":        # a scan cut short is stored, not applied
                    self._responses.remember(self.result)
            elif "decay" in self._start:
                decay = decay_from_columns(self._start, self.columns())
                if decay.kind == "irf" or plan == "instrument_response":
                    self._irfs.remember(self._start["uid"], decay.time_ns, decay.counts)
                    return                      # an IRF is an input, not a result
                irf, note = self._irfs.get(decay.irf_uid)
                self.result = analyze_decay(decay, irf, irf_note=note, **self._fit_kwargs)
            else:
                self.result = self._spectrum()
        except Exception as exc:  # noqa: BLE001
            self.error = f"{type(exc).__name__}: {exc}"
            logger.warning("PL analysis of run %s (%s) failed: %s", self._start.get("uid"), plan,
                           self.error)
        self._publish(plan, status)
        if self.result is not None and self._on_result is not None:
            _call_safely(self._on_result, self.result)

    def _spectrum(self) -> SpectrumRunAnalysis:
        """The spectrum analysed with its correction (emission: the current response;
        excitation: the reference column), or uncorrected with the reason why not."""
        columns = self.columns()
        data = spectrum_from_columns(self._start, columns)
        sec = self._start.get("spectrum") or {}
        correction: dict = {}
        if data.scan == "emission" and self._responses.current is not None:
            response = self._responses.current
            correction["response"] = response
            slit = (self._start.get("plan_args") or {}).get("emission_slit_um")
            if None not in (slit, response.emission_slit_um) and slit != response.emission_slit_um:
                correction["correction_md"] = {"note": (
                    f"response measured with emission_slit_um={response.emission_slit_um:g}, "
                    f"spectrum with {slit:g}")}
        elif data.scan == "excitation" and sec.get("reference_key") in columns:
            correction["reference_nA"] = np.asarray(columns[sec["reference_key"]], float)
        if not correction:
            return SpectrumRunAnalysis(data, data.analyze(**self._spectrum_kwargs))
        try:
            return SpectrumRunAnalysis(data, data.analyze(**self._spectrum_kwargs, **correction))
        except ValueError as exc:
            result = data.analyze(**self._spectrum_kwargs)
            result.extras["correction_refused"] = str(exc)
            return SpectrumRunAnalysis(data, result)

    def _publish(self, plan: str, raw_status: str) -> None:
        res = self.result
        derived = ("spectrum_analysis" if plan in ("emission_spectrum", "excitation_spectrum")
                   else "spectral_response_analysis" if plan in RESPONSE_PLANS
                   else "lifetime_analysis")
        meta = {"plan_name": derived, "derived_from": self._start.get("uid"), "analysis": plan,
                "raw_exit_status": raw_status,
                "sample_name": (self._start.get("sample") or {}).get("name"),
                "results": res.to_dict() if res is not None else {"error": self.error}}
        if isinstance(res, LifetimeRunAnalysis):
            meta.update({"irf_uid": res.irf_uid, "fit_kind": res.fit_kind,
                         "method": res.fit.method, "emission_nm": res.decay.emission_nm})
        elif isinstance(res, SpectrumRunAnalysis):
            c = res.result.correction or {}
            meta.update({"correction": c.get("kind", "none"), "correction_uid": c.get("uid"),
                         "correction_file": c.get("file")})
        ok = res is not None
        self.derived_uid = _publish(self._send, meta,
                                    {"primary": [res.scalars()] if ok else []}, ok,
                                    "" if ok else str(self.error))
        if ok:
            res.derived_uid = self.derived_uid


class EnergyTransferTracker:
    """η_ET of ``mixed_sample`` (donor + acceptor) against ``donor_sample`` (donor only) at
    the donor emission ``emission_nm`` (± ``tolerance_nm``).

    Call it with each :class:`LifetimeRunAnalysis` (``on_result``, or pass it to
    :func:`make_pl_analysis_router` via ``energy_transfer=``, which also sets ``emit``). τ is τ1
    of a one-exponential fit, else the amplitude-weighted τ_amp (stated in the result).
    After an update: ``.result`` (:class:`EnergyTransferResult`), ``.derived_uid``, ``.error``.
    """

    def __init__(self, donor_sample: str, mixed_sample: str, emission_nm: float, *,
                 emit: Callable[[str, dict], Any] | None = None, tolerance_nm: float = 2.0,
                 on_result=None) -> None:
        if donor_sample == mixed_sample:
            raise ValueError(f"donor_sample={donor_sample!r} equals mixed_sample; allowed: two "
                             "different samples")
        self.donor_sample, self.mixed_sample = str(donor_sample), str(mixed_sample)
        self.emission_nm = check.positive("emission_nm", emission_nm)
        self.tolerance_nm = check.positive("tolerance_nm", tolerance_nm)
        self.emit, self._on_result = emit, on_result
        self.latest: dict[str, LifetimeRunAnalysis] = {}
        self.result: EnergyTransferResult | None = None
        self.derived_uid: str | None = None
        self.error: str | None = None

    def __call__(self, analysis) -> None:
        try:
            self._add(analysis)
        except Exception as exc:  # noqa: BLE001 - never break the acquisition
            self.error = f"{type(exc).__name__}: {exc}"
            logger.exception("energy-transfer update failed")

    def _role(self, analysis) -> str | None:
        if not isinstance(analysis, LifetimeRunAnalysis):
            return None
        em = analysis.decay.emission_nm
        if em is None or abs(em - self.emission_nm) > self.tolerance_nm:
            return None
        return {self.donor_sample: "donor", self.mixed_sample: "mixed"}.get(
            analysis.decay.sample_name)

    def _add(self, analysis) -> None:
        role = self._role(analysis)
        if role is None:
            return
        self.latest[role] = analysis
        if len(self.latest) < 2:
            return
        d, m = self.latest["donor"], self.latest["mixed"]
        self.result = energy_transfer_efficiency(m.tau_ns, m.tau_err_ns, d.tau_ns, d.tau_err_ns)
        which = {r: "tau1" if a.fit.n_exp == 1 else "tau_amp" for r, a in self.latest.items()}
        data = {**self.result.to_dict(), "eta_et_percent": self.result.percent,
                "donor_sample": self.donor_sample, "mixed_sample": self.mixed_sample,
                "emission_nm": self.emission_nm, "tau_d_source": which["donor"],
                "tau_da_source": which["mixed"]}
        if self.emit is not None:
            self.derived_uid = _publish(self.emit, {
                "plan_name": "energy_transfer_analysis", "analysis": "energy_transfer",
                "derived_from": [d.decay.uid, m.decay.uid],
                "lifetime_analysis_uids": [d.derived_uid, m.derived_uid],
                "sample_name": self.mixed_sample, "results": data}, {"primary": [data]}, True)
        if self._on_result is not None:
            _call_safely(self._on_result, self.result)


def pl_analysis_factory(emit: Callable[[str, dict], Any], irf_lookup=None, *,
                        energy_transfer: Iterable[EnergyTransferTracker] = (), on_result=None,
                        spectral_response=None, certificate=None, **kwargs: Any):
    """A ``RunRouter`` factory: a :class:`PLAnalysisCallback` for every PL run and standard-lamp
    run, all sharing one :class:`IrfCache` and one :class:`ResponseStore` (starting from
    ``spectral_response``: a :class:`SpectralResponse` or a response file path; standard-lamp
    runs are read against ``certificate``, default the bench's lamp); results go to
    ``on_result`` and to each tracker of ``energy_transfer`` (whose ``emit`` defaults to this
    ``emit``)."""
    irfs = IrfCache(irf_lookup)
    responses = ResponseStore(spectral_response, certificate)
    trackers = list(energy_transfer)
    for tracker in trackers:
        if tracker.emit is None:
            tracker.emit = emit
    listeners = ([on_result] if on_result is not None else []) + trackers

    def dispatch(result) -> None:
        for fn in listeners:
            _call_safely(fn, result)

    return run_factory(emit, PL_PLANS + RESPONSE_PLANS, PLAnalysisCallback, irfs=irfs,
                       responses=responses, on_result=dispatch, **kwargs)


def make_pl_analysis_router(emit: Callable[[str, dict], Any], irf_lookup=None, **kwargs: Any
                            ) -> RunRouter:
    """``RE.subscribe(make_pl_analysis_router(catalog.store, irf_lookup, energy_transfer=[
    EnergyTransferTracker("mCB-Nd", "mCB-NdYb", 1060.0)]))`` analyses every PL run it sees."""
    return RunRouter([pl_analysis_factory(emit, irf_lookup, **kwargs)])
