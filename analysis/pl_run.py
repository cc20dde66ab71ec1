"""One finished photoluminescence run → analysis inputs and results.

The PL plans describe their data in the start document (``pl_design.md``):

* ``lifetime_decay`` / ``instrument_response``: ``start["decay"]`` names the data keys of the
  histogram (``counts_key``), its time axis in ns (``time_key``) and channel width
  (``resolution_key``, ps), the IRF run (``irf_uid``), ``emission_nm``, ``excitation_nm``,
  ``repetition_rate_hz``, ``n_exp`` and ``dark_cps``.
* ``emission_spectrum`` / ``excitation_spectrum``: ``start["spectrum"]`` names the scanned
  wavelength readback (``wavelength_key``, nm) and the count rate (``signal_key``, cps), with
  ``scan``, ``fixed_nm``, ``dark_cps`` and the counter's ``saturation_count_rate_cps``: the
  rates (signal and dark) are corrected for counting losses (:mod:`.pmt_linearity`) on reading.

``columns`` maps each primary data key to its values per event (a histogram column is a list of
arrays, or one array for a single event). :func:`analyze_decay` fits a decay by reconvolution
with its IRF (Poisson MLE) or, with no IRF, by a tail fit, and says which in the result; after
a reconvolution it also runs the tail fit as a cross-check (:func:`tail_cross_check`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .lifetime_fit import TAIL_START_FWHM, DecayFitResult, fit_decay, tail_fit
from .pl_spectra import SpectrumResult, analyze_spectrum
from .pmt_linearity import saturation_from_start, true_count_rate
from .results import json_safe

DECAY_PLANS = ("lifetime_decay", "instrument_response")
SPECTRUM_PLANS = ("emission_spectrum", "excitation_spectrum")
PL_PLANS = DECAY_PLANS + SPECTRUM_PLANS


def _section(start: Mapping, name: str) -> Mapping:
    sec = start.get(name)
    if not isinstance(sec, Mapping):
        raise ValueError(f"start[{name!r}]={sec!r} is not allowed; allowed: the {name} metadata "
                         "dict written by the PL plans (pl_design.md)")
    return sec


def _column(columns: Mapping, sec: Mapping, role: str, section: str):
    key = sec.get(role)
    if key not in columns:
        raise ValueError(f"start[{section!r}][{role!r}]={key!r} is not a data key of the run; "
                         f"allowed: one of {sorted(columns)}")
    return columns[key]


def _sample_name(start: Mapping) -> str:
    return str((start.get("sample") or {}).get("name") or "")


def _opt_float(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@dataclass
class DecayData:
    """A TCSPC histogram (``counts`` per channel on ``time_ns``) and its acquisition metadata."""

    time_ns: np.ndarray
    counts: np.ndarray
    kind: str
    uid: str | None = None
    irf_uid: str | None = None
    n_exp: int = 1
    emission_nm: float | None = None
    excitation_nm: float | None = None
    repetition_rate_hz: float | None = None
    resolution_ps: float | None = None
    dark_cps: float | None = None
    expected_lifetime_ns: list = field(default_factory=list)
    sample_name: str = ""

    @property
    def window_ns(self) -> float:
        return float(self.time_ns[-1] - self.time_ns[0] + (self.time_ns[1] - self.time_ns[0]))

    @property
    def period_ns(self) -> float | None:
        """Laser period (ns) from ``repetition_rate_hz``, None if unknown."""
        rate = self.repetition_rate_hz
        return 1e9 / rate if rate else None

    def one_period(self) -> tuple[np.ndarray, np.ndarray]:
        """(time_ns, counts) of the channels that lie wholly within one laser period after the
        sync. A histogram longer than the period (the plans choose the binning so that the
        channels cover a whole period) has empty channels after it, which no decay model has."""
        t, y, period = self.time_ns, self.counts, self.period_ns
        if period is None or self.time_ns[-1] + (t[1] - t[0]) <= period * (1 + 1e-9):
            return t, y
        keep = t + (t[1] - t[0]) <= period * (1 + 1e-9)
        return t[keep], y[keep]


def decay_from_columns(start: Mapping, columns: Mapping[str, Any]) -> DecayData:
    """The histogram of a decay or IRF run; several events on one time axis are summed."""
    sec = _section(start, "decay")
    counts = np.atleast_2d(np.asarray(_column(columns, sec, "counts_key", "decay"), float))
    time = np.atleast_2d(np.asarray(_column(columns, sec, "time_key", "decay"), float))
    if counts.ndim != 2 or time.shape != counts.shape:
        raise ValueError(f"decay histogram has shape {counts.shape} and time axis {time.shape}; "
                         "allowed: equal shapes, one histogram per event")
    if not np.allclose(time, time[:1], rtol=0.0, atol=1e-9 * max(float(np.ptp(time[0])), 1.0)):
        raise ValueError("decay events have different time axes; allowed: one axis for all "
                         "events (their histograms are summed)")
    res = sec.get("resolution_key")
    resolution = _opt_float(np.ravel(columns[res])[-1]) if res in columns else None
    n_exp = sec.get("n_exp", 1)
    return DecayData(
        time_ns=time[0], counts=counts.sum(axis=0), kind=str(sec.get("kind", "sample")),
        uid=start.get("uid"), irf_uid=sec.get("irf_uid"),
        n_exp=int(n_exp) if isinstance(n_exp, (int, np.integer)) else n_exp,
        emission_nm=_opt_float(sec.get("emission_nm")),
        excitation_nm=_opt_float(sec.get("excitation_nm")),
        repetition_rate_hz=_opt_float(sec.get("repetition_rate_hz")), resolution_ps=resolution,
        dark_cps=_opt_float(sec.get("dark_cps")),
        expected_lifetime_ns=list(sec.get("expected_lifetime_ns") or []),
        sample_name=_sample_name(start))


@dataclass
class SpectrumData:
    """A scanned spectrum: wavelength (nm), count rate (cps) and its metadata. ``signal_cps``
    and ``dark_cps`` are corrected for the counter's losses when the run recorded its
    ``saturation_count_rate_cps``; ``measured_cps`` keeps the rates as counted."""

    wavelength_nm: np.ndarray
    signal_cps: np.ndarray
    scan: str
    dark_cps: float = 0.0
    fixed_nm: float | None = None
    uid: str | None = None
    sample_name: str = ""
    measured_cps: np.ndarray | None = None
    saturation_count_rate_cps: float | None = None

    @property
    def linearity_scalars(self) -> dict:
        """The counting-loss correction applied: saturation rate and largest correction (%)."""
        if self.saturation_count_rate_cps is None or self.measured_cps is None:
            return {"linearity_corrected": False}
        gain = self.signal_cps / np.where(self.measured_cps > 0, self.measured_cps, np.inf)
        return {"linearity_corrected": True,
                "saturation_count_rate_cps": self.saturation_count_rate_cps,
                "linearity_correction_max_percent": float(100.0 * max(gain.max() - 1.0, 0.0))}

    def analyze(self, **kwargs) -> SpectrumResult:
        """:func:`analyze_spectrum` on this scan (``bands``, ``min_prominence`` pass through)."""
        return analyze_spectrum(self.wavelength_nm, self.signal_cps, dark_cps=self.dark_cps,
                                scan=self.scan, **kwargs)


def spectrum_from_columns(start: Mapping, columns: Mapping[str, Any]) -> SpectrumData:
    """The (wavelength, rate) points of an emission or excitation scan."""
    sec = _section(start, "spectrum")
    dark = _opt_float(sec.get("dark_cps"))
    dark = 0.0 if dark is None else dark
    wavelength = np.asarray(_column(columns, sec, "wavelength_key", "spectrum"), float)
    measured = np.asarray(_column(columns, sec, "signal_key", "spectrum"), float)
    saturation = saturation_from_start(start)
    signal = measured
    if saturation is not None:
        signal, dark = true_count_rate(measured, saturation), float(true_count_rate(dark, saturation))
    return SpectrumData(
        wavelength_nm=wavelength, signal_cps=signal, scan=str(sec.get("scan")), dark_cps=dark,
        fixed_nm=_opt_float(sec.get("fixed_nm")), uid=start.get("uid"),
        sample_name=_sample_name(start), measured_cps=measured,
        saturation_count_rate_cps=saturation)


@dataclass
class SpectrumRunAnalysis:
    """One analysed spectrum run: the scan and its :class:`SpectrumResult`."""

    data: SpectrumData
    result: SpectrumResult
    derived_uid: str | None = None

    def scalars(self) -> dict:
        return json_safe({**self.result.scalars(), "sample_name": self.data.sample_name,
                          "fixed_nm": self.data.fixed_nm, **self.data.linearity_scalars})

    def to_dict(self) -> dict:
        return json_safe({**self.result.to_dict(), "sample_name": self.data.sample_name,
                          "fixed_nm": self.data.fixed_nm, **self.data.linearity_scalars})


def rebin_irf(irf_time_ns, irf_counts, time_ns) -> np.ndarray:
    """IRF counts moved onto the channels of ``time_ns`` (cumulative counts interpolated at the
    channel edges: exact for the same axis, count-conserving for shifted or other widths)."""
    ti, ci = np.asarray(irf_time_ns, float).ravel(), np.asarray(irf_counts, float).ravel()
    t = np.asarray(time_ns, float).ravel()
    if ti.size != ci.size or ti.size < 2:
        raise ValueError(f"IRF time axis has {ti.size} values and counts {ci.size}; allowed: "
                         "equal lengths ≥ 2")
    wi, w = ti[1] - ti[0], t[1] - t[0]
    edges_i = np.append(ti, ti[-1] + wi)
    edges = np.append(t, t[-1] + w)
    if edges_i[0] >= edges[-1] or edges_i[-1] <= edges[0]:
        raise ValueError(f"IRF axis {ti[0]:g}..{ti[-1]:g} ns does not overlap the decay axis "
                         f"{t[0]:g}..{t[-1]:g} ns; allowed: overlapping axes")
    cum = np.concatenate([[0.0], np.cumsum(ci)])
    return np.diff(np.interp(edges, edges_i, cum))


#: IRF channels whose net counts are below this many σ of the background (Poisson, √b) end
#: the IRF peak region (:func:`crop_irf`).
IRF_CROP_SIGMA = 3.0


def crop_irf(irf_counts, background: float) -> tuple[np.ndarray, tuple[int, int]]:
    """The IRF with every channel outside its peak region set to ``background`` (counts per
    channel), and that region (first, last channel).

    The peak region is the contiguous run of channels around the maximum whose net counts
    (counts − background) exceed :data:`IRF_CROP_SIGMA` × √background. Why: the fit subtracts
    the background and clips at 0, so the positive half of the background noise in the
    thousands of channels away from the peak would survive as a flat pedestal (≈ 0.4 √b per
    channel: ~10 % of the IRF area for an IRF measured next to a NIR-PMT's dark counts) and
    bias τ low by ~1–2 %.
    """
    c = np.asarray(irf_counts, float).ravel()
    b = float(background)
    net = c - b
    k = int(np.argmax(net))
    above = net > IRF_CROP_SIGMA * math.sqrt(max(b, 1.0))
    lo = hi = k
    while lo > 0 and above[lo - 1]:
        lo -= 1
    while hi < c.size - 1 and above[hi + 1]:
        hi += 1
    out = np.full_like(c, b)
    out[lo:hi + 1] = c[lo:hi + 1]
    return out, (lo, hi)


#: Tail cross-check: reconvolution and tail τ agree when |Δτ| < this × their combined σ.
TAIL_AGREEMENT_SIGMA = 3.0
#: A multi-exponential's tail starts this many of its shorter lifetimes after the decay peak.
TAIL_SHORT_LIFETIMES = 5.0


def tail_cross_check(t, y, irf_counts, fit: DecayFitResult) -> dict:
    """The tail fit beside a reconvolution ``fit`` (fitting.md §3.3; τ ≫ IRF).

    One exponential + background (MLE, no profile: cheap) from the IRF maximum +
    ``TAIL_START_FWHM`` IRF FWHM, and for several exponentials also from
    :data:`TAIL_SHORT_LIFETIMES` × the shorter fitted lifetimes after the decay maximum, so
    only the longest remains; compared with the fit's longest τ. Returns ``tail_tau_ns``,
    ``tail_tau_err_ns``, ``tail_start_ns``, ``tail_compared`` (which τ), ``tail_delta_sigma``
    (|Δτ| / combined σ) and ``tail_agrees`` (< :data:`TAIL_AGREEMENT_SIGMA`); a tail fit that
    cannot run gives ``tail_error`` instead.
    """
    n = fit.n_exp
    width = float(t[1] - t[0])
    start = float(t[int(np.argmax(irf_counts))]) + TAIL_START_FWHM * fit.extras["irf_fwhm_ns"]
    if n > 1:
        start = max(start, float(t[int(np.argmax(y))])
                    + TAIL_SHORT_LIFETIMES * float(np.max(fit.taus_ns[:-1])))
    start = min(start, float(t[-1]) - 8 * width)
    compared = f"tau{n}"
    try:
        tail = tail_fit(t, y, n_exp=1, start_ns=start, method="mle", profile=False)
    except (ValueError, RuntimeError, FloatingPointError) as exc:
        return {"tail_compared": compared, "tail_error": f"{type(exc).__name__}: {exc}"}
    tau, err = float(tail.taus_ns[0]), float(tail.tau_errs_ns[0])
    ref, ref_err = float(fit.taus_ns[-1]), float(fit.tau_errs_ns[-1])
    sigma = math.hypot(err, ref_err)
    delta = abs(tau - ref) / sigma if sigma > 0 else math.inf
    return {"tail_tau_ns": tau, "tail_tau_err_ns": err,
            "tail_start_ns": float(tail.extras["tail_start_ns"]), "tail_compared": compared,
            "tail_delta_sigma": delta, "tail_agrees": bool(delta < TAIL_AGREEMENT_SIGMA)}


@dataclass
class LifetimeRunAnalysis:
    """One fitted decay run: the data, the fit, which fit (``fit_kind`` ``"reconvolution"`` or
    ``"tail"``), the IRF used (aligned counts), a note on how the IRF was obtained and, after
    a reconvolution, the tail-fit cross-check (``tail``: :func:`tail_cross_check`)."""

    decay: DecayData
    fit: DecayFitResult
    fit_kind: str
    irf_uid: str | None = None
    irf_counts: np.ndarray | None = None
    note: str = ""
    derived_uid: str | None = None
    tail: dict = field(default_factory=dict)

    @property
    def tau_ns(self) -> float:
        """τ for η_ET: τ1 of a one-exponential fit, else the amplitude-weighted average."""
        return float(self.fit.taus_ns[0]) if self.fit.n_exp == 1 else self.fit.tau_amp_ns

    @property
    def tau_err_ns(self) -> float:
        return float(self.fit.tau_errs_ns[0]) if self.fit.n_exp == 1 else \
            self.fit.extras["tau_amp_err_ns"]

    def scalars(self) -> dict:
        """Flat scalar results for the derived run's event (units in the keys)."""
        d = self.decay
        fitd = {k: v for k, v in self.fit.to_dict().items()
                if isinstance(v, (int, float, str, bool)) and k not in ("fixed", "uncertainty")}
        return json_safe({**fitd, "sample_name": d.sample_name, "fit_kind": self.fit_kind,
                          "method": self.fit.method, "irf_uid": self.irf_uid or "",
                          "emission_nm": d.emission_nm, "excitation_nm": d.excitation_nm,
                          "tau_ns": self.tau_ns, "tau_err_ns": self.tau_err_ns,
                          "note": self.note, **self.tail})

    def to_dict(self) -> dict:
        """JSON-safe results: the scalars, lists per component and the fit's full dict."""
        f = self.fit
        return json_safe({**f.to_dict(), **self.scalars(), "taus_ns": f.taus_ns,
                          "tau_errs_ns": f.tau_errs_ns, "amplitudes_counts": f.amplitudes,
                          "expected_lifetime_ns": self.decay.expected_lifetime_ns,
                          "repetition_rate_hz": self.decay.repetition_rate_hz,
                          "resolution_ps": self.decay.resolution_ps})


def analyze_decay(decay: DecayData, irf=None, *, irf_note: str = "", **fit_kwargs
                  ) -> LifetimeRunAnalysis:
    """Fit ``decay`` with ``decay.n_exp`` exponentials by Poisson MLE.

    ``irf``: ``(time_ns, counts)`` of the IRF run → :func:`fit_decay` (reconvolution; the IRF
    is moved onto the decay channels, its background is the median channel, only its peak
    region is kept (:func:`crop_irf`), and the tails of earlier pulses are modelled with the
    laser period), then the tail fit as a cross-check (:func:`tail_cross_check`, in
    ``tail``). None → :func:`tail_fit` from 10 channels after the decay maximum, noted in
    the result together with ``irf_note``. Only the channels within one laser period are
    fitted (:meth:`DecayData.one_period`). ``fit_kwargs`` pass through (``fit_range``,
    ``profile`` …).
    """
    t, y = decay.one_period()
    cut = "" if t.size == decay.time_ns.size else \
        f"; fitted {t.size} of {decay.time_ns.size} channels (one laser period)"
    kwargs = {"n_exp": decay.n_exp, "method": "mle", **fit_kwargs}
    if irf is None:
        fit = tail_fit(t, y, **kwargs)
        note = (f"no IRF ({irf_note or f'irf_uid={decay.irf_uid!r}'}): tail fit from "
                f"{fit.extras['tail_start_ns']:.4g} ns, no reconvolution{cut}")
        return LifetimeRunAnalysis(decay, fit, "tail", None, None, note)
    counts = rebin_irf(irf[0], irf[1], t)
    kwargs.setdefault("repetition_period_ns", decay.period_ns)
    background = kwargs.setdefault("irf_background", float(np.median(counts)))
    counts, (lo, hi) = crop_irf(counts, background)
    fit = fit_decay(t, y, counts, **kwargs)
    return LifetimeRunAnalysis(decay, fit, "reconvolution", decay.irf_uid, counts,
                               (irf_note or "reconvolution with the measured IRF")
                               + f"; IRF cropped to {t[lo]:.4g}..{t[hi]:.4g} ns" + cut,
                               tail=tail_cross_check(t, y, counts, fit))
