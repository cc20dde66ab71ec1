"""TCSPC detection chain for luminescence decays: IRF, periodic excitation, pile-up, dark counts,
Poisson counting, and the photon-counting detector (quantum efficiency, dark rate, saturation).

Time in ns, rates in Hz (= counts per second, cps), wavelengths in nm.

Instrument response (InstrumentResponse)
----------------------------------------
IRF = laser pulse (Gaussian, FWHM ``laser_fwhm_ns``) ⊗ detector transit-time spread (Gaussian core,
FWHM ``detector_tts_fwhm_ns``) ⊗ [(1 − f) δ + f · exponential tail (``tail_tau_ns``)], i.e. a
Gaussian of σ² = σ_L² + σ_D² plus an exponentially modified Gaussian (EMG) tail holding a
fraction f. Its convolution with a decay Σ w_j p_τj (p_τ(t) = e^(−t/τ)/τ, Σ w_j = 1) is again a
sum of EMGs, because p_τt ⊗ p_τ = (τ p_τ − τ_t p_τt)/(τ − τ_t). Every bin is then an exact
difference of EMG distribution functions (no fine grid, no FFT): a tail fit on a δ-IRF histogram
returns τ to rounding error.

Numbers (assumed unless marked): 375 nm ps diode laser (instruments.md §4) FWHM 0.060 ns (PicoQuant
LDH-class heads are specified at < 70 ps [MEM]). NIR-PMT (Hamamatsu H10330-type InP/InGaAs
photocathode, cooled [MEM, datasheet not at hand]): TTS FWHM 0.40 ns, 15 % slow diffusion tail
with τ = 1.5 ns, so the IRF is 0.41 ns FWHM; QE ≤ 2 % over 950–1600 nm and 0 over 500–900 nm
(science.md: "range > 900 nm", the Nd 880 nm band is invisible), plus a weak 1e-4 response at
300–450 nm (see ``NirPmt.qe_table``); dark count rate 5·10³ cps [ASSUMED: a thermoelectrically
cooled NIR-PMT module];
saturation count rate 1·10⁶ cps. Visible PMT (for comparison, ``NirPmt.visible_pmt()``):
230–920 nm, QE 25 % peak, 50 cps dark, TTS 0.15 ns, 5 % tail of 0.5 ns.

Histogram formation (``periodic_histogram``)
-------------------------------------------
Pulses arrive every P = 1/f_rep at histogram time ``pulse_time_ns`` (t0); the TCSPC records the
time since the last sync, so the per-cycle detection density on [0, P) is
    λ(t) = μ Σ_k s(t − t0 + kP) + d,
with μ = detected signal photons per pulse, s the IRF-convolved decay (unit area) and
d = dark rate · 1e-9 per ns. k = −1, 0, 1 are exact; the tails of all older pulses (k ≥ 2) are a
closed geometric sum. When P is not ≫ τ the earlier pulses raise the baseline before t0.
Bins beyond P receive nothing (time since the last sync is < P).

Pile-up (λ integrated over a bin = m_bin, Λ(a, b) = ∫_a^b λ):
* ``dead_time_ns=None``: first photon per sync cycle only (TAC / reverse start-stop, Coates 1968):
  counts = f_rep · e^(−Λ(0, a)) (1 − e^(−m_bin)); exact for that electronics. Late photons are
  lost when an earlier one was detected, so the decay looks shorter.
* ``dead_time_ns=τ_d`` (TDC electronics such as the PicoHarp 300, τ_d ≈ 95 ns [MEM]): a photon
  is lost when another arrived within τ_d before it (paralysable approximation, bin midpoint):
  counts = f_rep · m_bin · e^(−Λ(t − τ_d, t)). For μ ≲ 0.05 both agree to first order with the
  non-paralysable case. τ_d < τ suppresses photons shortly after the peak more than tail photons.
Both reduce to f_rep · m_bin when μ ≪ 1 (timing.md: count rate ≤ 1–5 % of f_rep).

Counting: ``sample_histogram`` draws independent Poisson counts per bin (the per-cycle multinomial
becomes Poisson over the ~10⁵–10⁷ cycles of an acquisition).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr, ndtr

from .relaxation_rates import checked_array

__all__ = ["InstrumentResponse", "NirPmt", "TDC_DEAD_TIME_NS", "periodic_histogram",
           "sample_histogram"]

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
MAX_REPETITION_RATE_HZ = 1e8      # ps diode lasers run at <= 80 MHz; also keeps P >> IRF width
# TDC dead times [MEM, vendor data sheets]: pass one as dead_time_ns for PicoQuant electronics.
TDC_DEAD_TIME_NS = {"PicoHarp 300": 95.0, "HydraHarp 400": 80.0, "TimeHarp 260 PICO": 25.0,
                    "MultiHarp 150": 0.65}


def _scalar(name, value, **limits) -> float:
    a = checked_array(name, value, **limits)
    if a.ndim:
        raise ValueError(f"{name} must be a scalar, got an array of shape {a.shape}")
    return float(a)


# ------------------------------------------------------------------ EMG distribution
def _cdf(x, sigma, tau):
    """P(X ≤ x) for X = Normal(0, σ) + Exp(mean τ); σ = 0 and/or τ = 0 allowed."""
    x = np.asarray(x, dtype=float)
    if sigma == 0.0 and tau == 0.0:
        return (x >= 0).astype(float)
    if tau == 0.0:
        return ndtr(x / sigma)
    if sigma == 0.0:
        return np.where(x > 0, -np.expm1(-np.maximum(x, 0.0) / tau), 0.0)
    z = x / sigma
    return ndtr(z) - np.exp(0.5 * (sigma / tau) ** 2 - x / tau + log_ndtr(z - sigma / tau))


def _sf(x, sigma, tau):
    """P(X > x), computed without cancellation in the tail."""
    x = np.asarray(x, dtype=float)
    if sigma == 0.0 and tau == 0.0:
        return (x < 0).astype(float)
    if tau == 0.0:
        return ndtr(-x / sigma)
    if sigma == 0.0:
        return np.exp(-np.maximum(x, 0.0) / tau)
    z = x / sigma
    return ndtr(-z) + np.exp(0.5 * (sigma / tau) ** 2 - x / tau + log_ndtr(z - sigma / tau))


def _mass(lo, hi, sigma, tau):
    """P(lo < X ≤ hi) elementwise, using the CDF left of 0 and the survival function right of it."""
    right = _sf(lo, sigma, tau) - _sf(hi, sigma, tau)
    left = _cdf(hi, sigma, tau) - _cdf(lo, sigma, tau)
    middle = 1.0 - _cdf(lo, sigma, tau) - _sf(hi, sigma, tau)
    return np.where(lo >= 0, right, np.where(hi <= 0, left, middle))


# ------------------------------------------------------------------ instrument response
@dataclass(frozen=True)
class InstrumentResponse:
    """Laser ⊗ detector response (see module docstring); all times in ns. Defaults: 375 nm ps
    diode (60 ps) on the NIR-PMT (0.40 ns TTS, 15 % tail of 1.5 ns)."""

    laser_fwhm_ns: float = 0.060
    detector_tts_fwhm_ns: float = 0.40
    tail_fraction: float = 0.15
    tail_tau_ns: float = 1.5

    def __post_init__(self):
        _scalar("laser_fwhm_ns", self.laser_fwhm_ns, low=0.0, high=1.0, unit="ns")
        _scalar("detector_tts_fwhm_ns", self.detector_tts_fwhm_ns, low=0.0, high=1.5, unit="ns")
        _scalar("tail_fraction", self.tail_fraction, low=0.0, high=0.9)
        _scalar("tail_tau_ns", self.tail_tau_ns, low=0.01, high=20.0, unit="ns")

    @property
    def sigma_ns(self) -> float:
        """σ of the Gaussian core (laser and TTS in quadrature), ns."""
        return math.hypot(self.laser_fwhm_ns, self.detector_tts_fwhm_ns) / FWHM_PER_SIGMA

    def terms(self, weights=(), taus_ns=()) -> list[tuple[float, float]]:
        """EMG terms (coefficient, τ) of this IRF convolved with Σ w_j p_τj; with no components,
        the IRF itself (τ = 0 is the bare Gaussian)."""
        f, tt = self.tail_fraction, self.tail_tau_ns
        if len(weights) == 0:
            return [(1.0 - f, 0.0), (f, tt)]
        out = []
        for w, tau in zip(weights, taus_ns):
            if abs(tau - tt) <= 1e-6 * tau:
                raise ValueError(f"decay lifetime {tau!r} ns equals the IRF tail_tau_ns={tt!r}; "
                                 "allowed: lifetimes different from the IRF tail")
            out += [((1.0 - f) * w + f * w * tau / (tau - tt), tau), (-f * w * tt / (tau - tt), tt)]
        return out

    def shape(self, bin_edges_ns, *, t0_ns: float = 0.0) -> np.ndarray:
        """IRF integrated over each bin (Gaussian centre at ``t0_ns``): unit area, so the values
        sum to 1 when the edges cover the response."""
        edges = _edges(bin_edges_ns, allow_negative=True)
        t0 = _scalar("t0_ns", t0_ns, unit="ns")
        lo, hi = edges[:-1] - t0, edges[1:] - t0
        return sum(c * _mass(lo, hi, self.sigma_ns, tau) for c, tau in self.terms())

    def fwhm_ns(self) -> float:
        """Full width at half maximum of the IRF density, ns (numerical, 1 ps grid)."""
        t = np.arange(-5.0, 5.0 + 10 * self.tail_tau_ns, 1e-3)
        y = self.shape(np.r_[t, t[-1] + 1e-3])
        above = np.flatnonzero(y >= 0.5 * y.max())
        return float((above[-1] - above[0] + 1) * 1e-3)


# ------------------------------------------------------------------ histograms
def _edges(bin_edges_ns, allow_negative=False) -> np.ndarray:
    e = checked_array("bin_edges_ns", bin_edges_ns, low=-math.inf if allow_negative else 0.0,
                      unit="ns")
    if e.ndim != 1 or e.size < 2:
        raise ValueError(f"bin_edges_ns must be a 1-D array of at least 2 edges, got shape {e.shape}")
    if np.any(np.diff(e) <= 0):
        i = int(np.flatnonzero(np.diff(e) <= 0)[0])
        raise ValueError(f"bin_edges_ns must increase strictly; bin_edges_ns[{i + 1}]={e[i + 1]!r} "
                         f"<= bin_edges_ns[{i}]={e[i]!r}")
    return e


def _signal_mass(lo, hi, terms, sigma, t0, period):
    """∫ Σ_k s(t − t0 + kP) dt over [lo, hi] ⊂ [0, P] (unit-area signal s given as EMG terms)."""
    total = np.zeros(np.shape(lo))
    for c, tau in terms:
        acc = sum(_mass(lo - t0 + k * period, hi - t0 + k * period, sigma, tau) for k in (-1, 0, 1))
        if tau > 0.0:  # k >= 2: pure exponential tails, geometric sum
            acc = acc + (np.exp(0.5 * (sigma / tau) ** 2 - (lo - t0 + 2.0 * period) / tau)
                         * -np.expm1(-(hi - lo) / tau) / -math.expm1(-period / tau))
        total += c * acc
    return total


def periodic_histogram(bin_edges_ns, weights, taus_ns, *, repetition_rate_hz, photons_per_pulse,
                       irf: InstrumentResponse | None = None, dark_count_rate_cps: float = 0.0,
                       pulse_time_ns: float = 0.0,
                       dead_time_ns: float | None = TDC_DEAD_TIME_NS["PicoHarp 300"]) -> np.ndarray:
    """Expected counts per bin in one second of acquisition for a decay Σ w_j e^(−t/τ_j)/τ_j
    (Σ w_j = 1; a negative w is a rise) excited periodically; see the module docstring.

    ``photons_per_pulse`` is the mean number of *detected* signal photons per laser pulse;
    ``irf=None`` is a δ response; ``dead_time_ns=None`` selects first-photon-per-cycle pile-up.
    """
    edges = _edges(bin_edges_ns)
    f_rep = _scalar("repetition_rate_hz", repetition_rate_hz, low=0.0, low_open=True,
                    high=MAX_REPETITION_RATE_HZ, unit="Hz")
    mu = _scalar("photons_per_pulse", photons_per_pulse, low=0.0, high=1e3)
    dark = _scalar("dark_count_rate_cps", dark_count_rate_cps, low=0.0, high=1e8, unit="cps")
    period = 1e9 / f_rep
    t0 = _scalar("pulse_time_ns", pulse_time_ns, low=0.0, high=period, unit="ns")
    if t0 == period:
        raise ValueError(f"pulse_time_ns={t0!r} ns is outside the allowed range [0, {period}) ns "
                         "(one laser period)")
    if dead_time_ns is not None:
        dead_time_ns = _scalar("dead_time_ns", dead_time_ns, low=0.0, high=1e6, unit="ns")
    w = checked_array("weights", weights).ravel()
    taus = checked_array("taus_ns", taus_ns, low=0.0, low_open=True, unit="ns").ravel()
    if w.size != taus.size:
        raise ValueError(f"weights ({w.size}) and taus_ns ({taus.size}) must have the same length")
    if w.size == 0 and mu > 0:
        raise ValueError(f"photons_per_pulse={mu!r} but nothing emits (no decay components); "
                         "allowed range: 0 when there is no signal")
    if irf is None:
        sigma, terms = 0.0, list(zip(w.tolist(), taus.tolist()))
    else:
        sigma, terms = irf.sigma_ns, irf.terms(w.tolist(), taus.tolist())
    d = dark * 1e-9  # dark counts per ns per cycle

    def cum(x):  # Λ(0, x) for any real x, the signal repeating with period P
        n, r = np.floor_divide(x, period), np.mod(x, period)
        one = mu + d * period  # the signal has unit area per period
        part = mu * _signal_mass(np.zeros_like(r), r, terms, sigma, t0, period) + d * r
        return n * one + part

    e = np.minimum(edges, period)
    lo, hi = e[:-1], e[1:]
    m = np.maximum(mu * _signal_mass(lo, hi, terms, sigma, t0, period), 0.0) + d * (hi - lo)
    if dead_time_ns is None:
        before = np.maximum(cum(lo[:1])[0] + np.r_[0.0, np.cumsum(m)[:-1]], 0.0)
        prob = np.exp(-before) * -np.expm1(-m)
    else:
        mid = 0.5 * (lo + hi)
        prob = m * np.exp(-np.maximum(cum(mid) - cum(mid - dead_time_ns), 0.0))
    return f_rep * prob


def sample_histogram(expected, rng: np.random.Generator) -> np.ndarray:
    """Poisson counts (int64) with the given expected values (counts per bin, ≥ 0)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    lam = checked_array("expected", expected, low=0.0, high=1e15, unit="counts")
    return rng.poisson(lam).astype(np.int64)


# ------------------------------------------------------------------ detector
@dataclass(frozen=True)
class NirPmt:
    """Photon-counting PMT: QE(λ) by linear interpolation of ``qe_table`` ((nm, QE) pairs, 0
    outside), dark count rate (cps), saturation count rate (cps) and timing (→ ``irf()``).
    Defaults: the NIR-PMT of the FluoTime 300 (assumed numbers, module docstring)."""

    name: str = "NIR-PMT"
    # InP/InGaAs photocathodes also respond weakly in the near UV (photon energy far above the
    # band gap); the 1e-4 at 300-450 nm [ASSUMED] is what lets a scatterer at the 375 nm laser
    # line record the IRF, as done on NIR-PMT systems. 500-900 nm stays 0 (880 nm band invisible).
    qe_table: tuple[tuple[float, float], ...] = (
        (290.0, 0.0), (300.0, 1e-4), (450.0, 1e-4), (500.0, 0.0),
        (900.0, 0.0), (950.0, 0.004), (1000.0, 0.012), (1050.0, 0.02), (1500.0, 0.02),
        (1600.0, 0.012), (1650.0, 0.005), (1700.0, 0.0))
    dark_count_rate_cps: float = 5.0e3      # [ASSUMED] TE-cooled NIR-PMT module (docstring)
    saturation_count_rate_cps: float = 1.0e6
    tts_fwhm_ns: float = 0.40
    tail_fraction: float = 0.15
    tail_tau_ns: float = 1.5

    def __post_init__(self):
        tab = checked_array("qe_table", self.qe_table, low=0.0)
        if tab.ndim != 2 or tab.shape[1] != 2 or tab.shape[0] < 2 or np.any(np.diff(tab[:, 0]) <= 0):
            raise ValueError("qe_table must be >= 2 (wavelength_nm, QE) pairs with increasing "
                             f"wavelength, got {self.qe_table!r}")
        checked_array("qe_table QE", tab[:, 1], low=0.0, high=1.0)
        _scalar("dark_count_rate_cps", self.dark_count_rate_cps, low=0.0, high=1e8, unit="cps")
        _scalar("saturation_count_rate_cps", self.saturation_count_rate_cps, low=0.0,
                low_open=True, high=1e10, unit="cps")
        self.irf()  # validates the timing fields

    @classmethod
    def visible_pmt(cls) -> NirPmt:
        """A visible photon-counting PMT (230–920 nm) for comparison; assumed numbers."""
        return cls(name="PMT (visible)", qe_table=((230.0, 0.0), (250.0, 0.15), (400.0, 0.25),
                                                   (600.0, 0.15), (800.0, 0.05), (920.0, 0.0)),
                   dark_count_rate_cps=50.0, saturation_count_rate_cps=1e7, tts_fwhm_ns=0.15,
                   tail_fraction=0.05, tail_tau_ns=0.5)

    @property
    def spectral_range_nm(self) -> tuple[float, float]:
        """Shortest and longest wavelength (nm) with QE > 0."""
        tab = np.asarray(self.qe_table, dtype=float)
        idx = np.flatnonzero(tab[:, 1] > 0)
        return float(tab[max(idx[0] - 1, 0), 0]), float(tab[min(idx[-1] + 1, len(tab) - 1), 0])

    def quantum_efficiency(self, wavelength_nm) -> np.ndarray:
        """Detection probability per photon reaching the photocathode (0..1)."""
        lam = checked_array("wavelength_nm", wavelength_nm, low=0.0, low_open=True, high=1e5, unit="nm")
        tab = np.asarray(self.qe_table, dtype=float)
        return np.interp(lam, tab[:, 0], tab[:, 1], left=0.0, right=0.0)

    def detected_rate(self, photon_rate_cps, wavelength_nm, *, include_dark: bool = True) -> np.ndarray:
        """Count rate (cps) for a photon flux (photons/s at the photocathode): QE·Φ (+ dark),
        saturating as R/(1 + R/R_sat) (non-paralysable)."""
        phi = checked_array("photon_rate_cps", photon_rate_cps, low=0.0, unit="photons/s")
        r = self.quantum_efficiency(wavelength_nm) * phi + (self.dark_count_rate_cps if include_dark else 0.0)
        return r / (1.0 + r / self.saturation_count_rate_cps)

    def irf(self, laser_fwhm_ns: float = 0.060) -> InstrumentResponse:
        """IRF of this detector with a laser of the given pulse FWHM (ns)."""
        return InstrumentResponse(laser_fwhm_ns=laser_fwhm_ns, detector_tts_fwhm_ns=self.tts_fwhm_ns,
                                  tail_fraction=self.tail_fraction, tail_tau_ns=self.tail_tau_ns)
