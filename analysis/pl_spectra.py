"""Steady-state photoluminescence spectra (emission or excitation scans): peak positions,
heights, widths and integrated intensities.

Input: the scanned wavelength (nm) and the photon-counter rate (cps) of each point, and the
dark rate (cps) measured with the detector shutter closed; the net signal is ``signal − dark``.

* Noise: σ² = σ0² + g·max(net, 0), fitted to the spectrum itself (:mod:`.spectrum_noise`).
  σ0 sets the band threshold; the per-point σ_i sets the peak thresholds (noise on top of a
  strong band is not taken for a peak) and the integral errors.
* Peaks: local maxima whose prominence and net height are ≥ ``min_prominence`` (default
  :data:`PROMINENCE_SIGMA` × σ_i; the height condition rejects the extremes of pure noise).
  Position and height from a weighted least-squares fit through the highest sample and k ≥ 1
  points on each side, all ≥ :data:`TOP_FRACTION` of the maximum: a satellite band 2–3 widths
  away does not pull it, nor (symmetric window) an asymmetric band's long flank. A parabola,
  or for a skewed band (half widths differing by > :data:`SKEW_FRACTION` of the FWHM) a cubic:
  noise-free mCB-Yb band < 0.09 step off (parabola: 0.28). FWHM: where the net signal crosses half the height (linear
  interpolation); None if it does not within the scan or if a higher peak lies above half
  height on the way (a shoulder).
* Bands: explicit (lo, hi) nm pairs, or by default the contiguous regions above
  max(:data:`BAND_SIGMA` × σ0, :data:`BAND_FLOOR` × maximum) that hold a peak (gaps ≤
  :data:`BAND_GAP` points closed), widened by one point on each side. Integrated intensity:
  trapezoid of the net signal over the band (cps·nm), end points interpolated; its error from
  σ_i (independent points).
* Correction (:mod:`.spectral_correction`): with ``response`` (emission) the net signal is
  divided by the spectral response on the part of the scan inside its usable range; with
  ``reference_nA`` (excitation) it is normalised by the reference photodiode current. The noise
  is then the raw model's σ_i propagated through the correction (baseline σ0/S per point), and
  peaks, bands and integrals are those of the corrected spectrum. Decision: the result's main
  fields (``net_cps``, ``peaks``, ``bands``, ``main_peak_nm`` …) are the corrected ones when a
  correction was applied; the uncorrected analysis of the whole scan stays in
  ``result.uncorrected`` (scalars ``uncorrected_main_peak_nm`` …) and ``correction`` says what
  was applied (``corrected`` flag in the scalars).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import find_peaks

from . import _validate as check
from .results import format_table, format_value, json_safe
from .spectral_correction import SpectralResponse, correct_spectrum, normalise_by_reference
from .spectrum_noise import count_noise

SCANS = ("emission", "excitation")
MIN_POINTS = 5
PROMINENCE_SIGMA = 5.0     # default peak threshold, × σ_i
BAND_SIGMA = 3.0           # default band threshold, × σ0
BAND_FLOOR = 1e-3          # … but at least this × the highest net signal (noise-free data)
BAND_GAP = 2               # below-threshold points closed inside a band
TOP_FRACTION = 0.8         # peak top used for the parabola
SKEW_FRACTION = 0.1        # |red − blue half width| / FWHM above which a band is skewed


@dataclass(frozen=True)
class SpectrumPeak:
    """One band maximum: position (nm), net height (cps), FWHM (nm, None if not measurable),
    prominence (cps) and the noise σ_i (cps) it was judged against."""

    position_nm: float
    height_cps: float
    fwhm_nm: float | None
    prominence_cps: float
    noise_cps: float


@dataclass(frozen=True)
class SpectrumBand:
    """An integration window (nm) with the integrated net signal (cps·nm) and its error."""

    lo_nm: float
    hi_nm: float
    integral_cps_nm: float
    integral_err_cps_nm: float
    detected: bool


@dataclass
class SpectrumResult:
    """Result of :func:`analyze_spectrum`: ``net_cps`` = signal − dark on the ascending
    ``wavelength_nm``; ``noise_cps`` = baseline noise σ0; ``peaks`` sorted by position, ``bands``
    by lo_nm; integrals in cps·nm."""

    scan: str
    wavelength_nm: np.ndarray
    net_cps: np.ndarray
    dark_cps: float
    noise_cps: float
    peaks: list[SpectrumPeak]
    bands: list[SpectrumBand]
    total_integral_cps_nm: float
    total_integral_err_cps_nm: float
    min_prominence_cps: float | None = None
    extras: dict = field(default_factory=dict)
    correction: dict | None = None
    uncorrected: SpectrumResult | None = None

    @property
    def main_peak(self) -> SpectrumPeak | None:
        """The highest peak (None if no peak was found)."""
        return max(self.peaks, key=lambda p: p.height_cps) if self.peaks else None

    @property
    def peak_positions_nm(self) -> np.ndarray:
        return np.array([p.position_nm for p in self.peaks])

    def scalars(self) -> dict:
        """Flat scalar results (``peak1_nm``, ``band1_integral_cps_nm`` …) for event data."""
        main = self.main_peak
        out = {"scan": self.scan, "n_points": int(self.wavelength_nm.size),
               "range_lo_nm": float(self.wavelength_nm[0]),
               "range_hi_nm": float(self.wavelength_nm[-1]), "dark_cps": self.dark_cps,
               "noise_cps": self.noise_cps, "n_peaks": len(self.peaks), "n_bands": len(self.bands),
               "main_peak_nm": main.position_nm if main else None,
               "total_integral_cps_nm": self.total_integral_cps_nm,
               "total_integral_err_cps_nm": self.total_integral_err_cps_nm,
               **self._correction_scalars()}
        for i, p in enumerate(self.peaks, 1):
            out.update({f"peak{i}_nm": p.position_nm, f"peak{i}_height_cps": p.height_cps,
                        f"peak{i}_fwhm_nm": p.fwhm_nm, f"peak{i}_prominence_cps": p.prominence_cps})
        for i, b in enumerate(self.bands, 1):
            out.update({f"band{i}_lo_nm": b.lo_nm, f"band{i}_hi_nm": b.hi_nm,
                        f"band{i}_integral_cps_nm": b.integral_cps_nm,
                        f"band{i}_integral_err_cps_nm": b.integral_err_cps_nm})
        return json_safe(out)

    def _correction_scalars(self) -> dict:
        c, raw = self.correction or {}, self.uncorrected
        out = {"corrected": bool(c), "correction": c.get("kind", "none"),
               "correction_uid": c.get("uid") or "", "correction_file": c.get("file") or ""}
        if raw is not None:
            main = raw.main_peak
            out.update({"uncorrected_main_peak_nm": main.position_nm if main else None,
                        "uncorrected_n_peaks": len(raw.peaks)})
        return out

    def to_dict(self) -> dict:
        """JSON-safe results: the scalars plus lists per peak and per band (and the
        uncorrected peaks and the correction applied, if any)."""
        out = self.scalars()
        out.update({
            "peak_positions_nm": [p.position_nm for p in self.peaks],
            "peak_heights_cps": [p.height_cps for p in self.peaks],
            "peak_fwhm_nm": [p.fwhm_nm for p in self.peaks],
            "bands_nm": [[b.lo_nm, b.hi_nm] for b in self.bands],
            "band_integrals_cps_nm": [b.integral_cps_nm for b in self.bands],
            "band_integral_errs_cps_nm": [b.integral_err_cps_nm for b in self.bands],
            "min_prominence_cps": self.min_prominence_cps, **self.extras})
        raw = self.uncorrected
        if raw is not None:
            out.update({"correction_applied": self.correction,
                        "uncorrected_peak_positions_nm": raw.peak_positions_nm,
                        "uncorrected_peak_heights_cps": [p.height_cps for p in raw.peaks]})
        return json_safe(out)

    def report(self) -> str:
        c = self.correction
        rows = [("scan", self.scan), ("correction", "none" if not c else
                                       f"{c['kind']} ({c.get('uid') or c.get('file') or ''})"),
                ("range_nm", f"{self.wavelength_nm[0]:g}..{self.wavelength_nm[-1]:g}"),
                ("dark_cps", format_value(self.dark_cps)),
                ("noise_cps", format_value(self.noise_cps))]
        for i, p in enumerate(self.peaks, 1):
            width = "n/a" if p.fwhm_nm is None else f"{p.fwhm_nm:.3g} nm"
            rows.append((f"peak{i}", f"{p.position_nm:.2f} nm, {p.height_cps:.4g} cps, "
                                     f"FWHM {width}"))
        for i, b in enumerate(self.bands, 1):
            rows.append((f"band{i} {b.lo_nm:.1f}-{b.hi_nm:.1f} nm",
                         format_value(b.integral_cps_nm, b.integral_err_cps_nm) + " cps nm"))
        rows.append(("total_cps_nm", format_value(self.total_integral_cps_nm,
                                                  self.total_integral_err_cps_nm)))
        if self.uncorrected is not None:
            rows.append(("uncorrected peaks", ", ".join(
                f"{p.position_nm:.2f}" for p in self.uncorrected.peaks) + " nm"))
        return format_table(f"Spectrum: {self.scan}", rows)

    __str__ = report


# -- input checks ----------------------------------------------------------------------------
def _inputs(wavelength_nm, signal_cps, dark_cps, scan):
    if scan not in SCANS:
        raise ValueError(f"scan={scan!r} is not allowed; choose one of {list(SCANS)}")
    x = check.array("wavelength_nm", wavelength_nm, min_length=MIN_POINTS, positive_values=True)
    y = check.array("signal_cps", signal_cps, length=x.size)
    dark = check.finite("dark_cps", dark_cps)
    if dark < 0:
        raise ValueError(f"dark_cps={dark!r} is out of range; allowed range: >= 0 (cps)")
    order = np.argsort(x, kind="stable")          # scans may run either way
    x, y = x[order], y[order]
    if (np.diff(x) <= 0).any():
        i = int(np.flatnonzero(np.diff(x) <= 0)[0])
        raise ValueError(f"wavelength_nm has the value {float(x[i])!r} twice; allowed: distinct "
                         "wavelengths (one point per wavelength)")
    return x, y - dark, dark, order


def _bands_arg(bands, x) -> list[tuple[float, float]]:
    try:
        pairs = [tuple(b) for b in bands]
    except TypeError:
        raise ValueError(f"bands={bands!r} is not allowed; allowed: None or a list of "
                         "(lo_nm, hi_nm) pairs") from None
    out = []
    for i, pair in enumerate(pairs):
        if len(pair) != 2:
            raise ValueError(f"bands[{i}]={pair!r} is not allowed; allowed: a (lo_nm, hi_nm) pair")
        lo, hi = (check.finite(f"bands[{i}]", v) for v in pair)
        if not x[0] <= lo < hi <= x[-1]:
            raise ValueError(f"bands[{i}]=({lo!r}, {hi!r}) nm is out of range; allowed: "
                             f"{x[0]:g} <= lo < hi <= {x[-1]:g} nm (the scanned range)")
        out.append((lo, hi))
    return out


# -- peaks, integrals -----------------------------------------------------------------
def _vertex(x, y, i, *, skewed: bool) -> tuple[float, float]:
    """Least-squares fit through the top of the peak at index ``i``: (position, height).
    Symmetric window (k ≥ 1 points each side: a one-sided window follows an asymmetric band's
    flank); a parabola, or for a ``skewed`` band with ≥ 5 points a cubic (its odd term follows
    the skew: half the parabola's bias, at some cost in noise, hence only when skewed)."""
    if i == 0 or i == y.size - 1:                 # at the scan's edge: keep the sample
        return float(x[i]), float(y[i])
    level, k = TOP_FRACTION * y[i], 1
    while i - k > 0 and i + k < y.size - 1 and min(y[i - k - 1], y[i + k + 1]) >= level:
        k += 1
    xs, ys = x[i - k:i + k + 1] - x[i], y[i - k:i + k + 1]
    fit = np.polyfit(xs, ys, 3 if skewed and xs.size >= 5 else 2)
    slope = np.polyder(fit)
    roots = np.roots(slope)
    roots = roots[np.isreal(roots)].real
    roots = roots[(roots >= xs[0]) & (roots <= xs[-1]) & (np.polyval(np.polyder(slope), roots) < 0)]
    if roots.size == 0:                           # flat or noisy top: keep the sample
        return float(x[i]), float(y[i])
    v = float(roots[np.argmin(np.abs(roots))])
    return float(x[i] + v), float(np.polyval(fit, v))


def _half_edges(x, y, i, height, higher: set[int]) -> tuple[float, float] | None:
    """(blue, red) wavelengths (nm) where the band falls to half ``height``; None past the scan
    or where the walk reaches a higher accepted peak (index in ``higher``)."""
    half = 0.5 * height
    edges = []
    for step in (-1, 1):
        k = i
        while 0 <= k + step < y.size and y[k + step] >= half:
            k += step
            if k in higher:            # a shoulder of a higher band has no FWHM of its own
                return None
        j = k + step
        if not 0 <= j < y.size:
            return None
        edges.append(float(np.interp(half, (y[j], y[k]), (x[j], x[k]))))   # y[j] < half
    return edges[0], edges[1]


def _peaks(x, y, local, min_prominence) -> list[SpectrumPeak]:
    idx, props = find_peaks(y, prominence=0.0)
    limit = PROMINENCE_SIGMA * local[idx] if min_prominence is None else min_prominence
    keep = (props["prominences"] >= limit) & (y[idx] >= limit)
    idx, prom = idx[keep], props["prominences"][keep]
    out = []
    for i, p in zip(idx, prom):
        higher = {int(k) for k in idx if y[k] > y[i]}
        rough = _half_edges(x, y, i, y[i], higher)
        skewed = rough is not None and abs((rough[1] - x[i]) - (x[i] - rough[0])) \
            > SKEW_FRACTION * (rough[1] - rough[0])
        pos, height = _vertex(x, y, i, skewed=skewed)
        edges = _half_edges(x, y, i, height, higher)
        out.append(SpectrumPeak(pos, height, None if edges is None else edges[1] - edges[0],
                                float(p), float(local[i])))
    return out


def _weights(x, lo, hi) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid on [lo, hi] (data points plus interpolated ends), its trapezoid weights and, per
    grid point, the index j of the data interval [x[j−1], x[j]] it lies in."""
    inner = x[(x > lo) & (x < hi)]
    grid = np.concatenate([[lo], inner, [hi]])
    w = np.zeros(grid.size)
    d = np.diff(grid)
    w[:-1] += 0.5 * d
    w[1:] += 0.5 * d
    return grid, w, np.clip(np.searchsorted(x, grid), 1, x.size - 1)


def _integral(x, y, local, lo, hi) -> tuple[float, float]:
    grid, w, j = _weights(x, lo, hi)
    f = (grid - x[j - 1]) / (x[j] - x[j - 1])          # interpolation fractions
    value = float(np.sum(w * ((1 - f) * y[j - 1] + f * y[j])))
    # each data point's total weight (ends split between neighbours), noise independent
    coef = np.zeros(x.size)
    np.add.at(coef, j - 1, w * (1 - f))
    np.add.at(coef, j, w * f)
    return value, float(math.sqrt(np.sum((coef * local) ** 2)))


def _detected_bands(x, y, noise, peaks) -> list[tuple[float, float]]:
    above = y > np.maximum(BAND_SIGMA * noise, BAND_FLOOR * float(np.max(y)))
    idx = np.flatnonzero(above)
    if idx.size == 0:
        return []
    splits = np.flatnonzero(np.diff(idx) > BAND_GAP + 1)
    runs = np.split(idx, splits + 1)
    out = []
    for run in runs:
        a, b = max(run[0] - 1, 0), min(run[-1] + 1, x.size - 1)
        if any(x[a] <= p.position_nm <= x[b] for p in peaks):
            out.append((float(x[a]), float(x[b])))
    return out


def _analyze(scan, x, y, dark, local, base, windows, min_prominence, extras) -> SpectrumResult:
    """Peaks, bands and integrals of net ``y`` with per-point noise ``local`` and baseline
    noise ``base`` (cps, arrays); ``windows``: explicit (lo, hi) bands or None."""
    peaks = _peaks(x, y, local, min_prominence)
    detected = windows is None
    windows = _detected_bands(x, y, base, peaks) if detected else windows
    band_objs = [SpectrumBand(lo, hi, *_integral(x, y, local, lo, hi), detected=detected)
                 for lo, hi in sorted(windows)]
    total, total_err = _integral(x, y, local, float(x[0]), float(x[-1]))
    return SpectrumResult(scan, x, y, dark, float(np.median(base)), peaks, band_objs, total,
                          total_err, min_prominence,
                          {"bands_source": "detected" if detected else "explicit", **extras})


def analyze_spectrum(wavelength_nm, signal_cps, *, dark_cps: float = 0.0, scan: str = "emission",
                     bands=None, min_prominence: float | None = None,
                     response: SpectralResponse | None = None, reference_nA=None,
                     correction_md: dict | None = None) -> SpectrumResult:
    """Peaks and integrated intensities of one emission or excitation spectrum:
    ``wavelength_nm`` scanned (nm, distinct, either order, ≥ 5 points), ``signal_cps`` the
    photon-counter rate at each (cps), ``dark_cps`` (cps, ≥ 0) subtracted from every point,
    ``scan`` ``"emission"`` or ``"excitation"`` (which monochromator scanned). ``bands``: None
    (detected: regions above noise that hold a peak) or (lo_nm, hi_nm) pairs (clipped to the
    corrected range when a response restricts it). ``min_prominence``: fixed peak threshold
    (cps, > 0), or None for :data:`PROMINENCE_SIGMA` × σ_i. ``response``: a
    :class:`~.spectral_correction.SpectralResponse` to divide by (the scan's points inside its
    usable range, at least 5); ``reference_nA``: reference photodiode current per point (nA,
    > 0, signal order) to normalise by; ``correction_md``: extra ``result.correction`` entries.
    """
    x, y, dark, order = _inputs(wavelength_nm, signal_cps, dark_cps, scan)
    min_prominence = None if min_prominence is None else check.positive("min_prominence",
                                                                        min_prominence)
    explicit = None if bands is None else _bands_arg(bands, x)
    noise, local = count_noise(y)
    raw = _analyze(scan, x, y, dark, local, np.full(x.size, noise), explicit, min_prominence, {})
    if response is None and reference_nA is None:
        return raw
    base, kinds, corr = np.full(x.size, noise), [], {}
    if reference_nA is not None:
        ref = check.array("reference_nA", reference_nA, length=x.size)[order]
        y, local, mean_ref = normalise_by_reference(y, ref, signal_err_cps=local)
        base = base * mean_ref / ref
        kinds.append("reference")
        corr["reference_mean_nA"] = mean_ref
    if response is not None:
        lo, hi = response.usable_range_nm
        keep = (x >= lo - 1e-9) & (x <= hi + 1e-9)
        if keep.sum() < MIN_POINTS:
            raise ValueError(f"wavelength_nm covers {x[0]:g}..{x[-1]:g} nm, {int(keep.sum())} "
                             f"points inside the response's usable range {lo:g}..{hi:g} nm; "
                             f"allowed: at least {MIN_POINTS} (response {response.label})")
        x, y, local, base = x[keep], y[keep], local[keep], base[keep]
        y, local = correct_spectrum(x, y, response, signal_err_cps=local)
        base = base / response.at(x)[0]
        if explicit is not None:
            explicit = [(max(a, x[0]), min(b, x[-1])) for a, b in explicit
                        if min(b, x[-1]) > max(a, x[0])]
        kinds.insert(0, f"{response.kind}_response")
        corr.update({"uid": response.uid, "file": response.file, "source": response.source,
                     "standard": response.standard, "usable_range_nm": [lo, hi],
                     "response_emission_slit_um": response.emission_slit_um})
    result = _analyze(scan, x, y, dark, local, base, explicit, min_prominence, {})
    result.correction = {"kind": "+".join(kinds), **corr, **(correction_md or {})}
    result.uncorrected = raw
    return result
