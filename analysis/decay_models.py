"""Multi-exponential TCSPC decay models on the histogram time axis (counts per channel).

Reconvolution model (``reference/fitting.md`` §3.3), channels k of width Δ (ns):

    μ_k = b + Σ_i A_i · Σ_j irf_j · c_i((k − j)·Δ − s)

* ``irf_j`` is the measured IRF, background-subtracted and normalised to unit sum, so ``A_i`` is
  the height (counts per channel) component i would have right after a δ pulse and ``b`` is a
  constant background (counts per channel).
* ``c(x)`` is the exact channel-to-channel response of a unit exponential e^(−t/τ), counted in
  a channel Δ wide, for IRF photons either at their channel centre (``irf_model="delta"``:
  c = [F(x+Δ/2) − F(x−Δ/2)]/Δ, F the antiderivative of e^(−t/τ)·θ(t)) or spread uniformly over
  it (``"box"``: c = [G(x+Δ) − 2G(x) + G(x−Δ)]/Δ², G the second antiderivative). Both tend to
  e^(−x/τ) for x ≫ Δ and are continuous in the IRF shift ``s`` (ns, positive = decay later than
  the IRF): the IRF is moved by any fraction of a channel exactly, with no interpolation of its
  histogram. "delta" is exact for an IRF much narrower than a channel (the usual case for
  100–300 ps IRFs in 0.1–1 ns channels); for a broad IRF the two agree.
* Periodic excitation (``period_ns``, the laser period T): the tails of all earlier pulses add
  Σ_{m≥1} c(x + mT). m = 1 is evaluated exactly (it also fills the channels before the pulse) and
  m ≥ 2 as a closed geometric sum. Pile-up in the count-rate sense (dead time after the first
  photon) is not modelled: keep the count rate ≤ 1–5 % of the repetition rate
  (``reference/timing.md``).
* Analytic derivatives with respect to ln τ_i, A_i, b and s; the convolution is done by FFT
  (O(K log K) per call, K channels).

Tail model (no reconvolution, for fits after the IRF has died away):
``μ_k = b + Σ_i A_i·e^(−(t_k − t_start)/τ_i)``. An exponential integrated over a channel, or
summed over earlier laser pulses, is the same exponential times a constant, so bins and periodic
tails only rescale ``A_i`` here.

Internal parameter vector (both models): ``[ln τ_1..n, A_1..n, b(, s)]``.
"""

from __future__ import annotations

import numpy as np
from scipy.fft import irfft, next_fast_len, rfft


def _near(x, tau, width):
    """Second differences of G, F and ∂G/∂lnτ (scaled) used when the three points straddle 0."""
    u = np.stack([x + width, x, x - width]) / tau
    pos = u > 0
    up = np.where(pos, u, 0.0)
    f1 = np.where(pos, -np.expm1(-up), 0.0)            # F/τ  = 1 − e^(−u)
    g = np.where(pos, up + np.expm1(-up), 0.0)          # G/τ² = u − 1 + e^(−u)
    h = 2.0 * g - up * f1                               # (∂G/∂lnτ)/τ² = 2G − xF
    w = np.array([1.0, -2.0, 1.0])[:, None]
    return (w * g).sum(0), (w * f1).sum(0), (w * h).sum(0)


def _box_kernel(x, tau, width):
    """IRF photons uniform within their channel (see module docstring)."""
    a = width / tau
    c, dcx, dct = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    far = x >= width             # all three points after the pulse: closed form, no cancellation
    near = (x > -width) & ~far
    if far.any():
        u = x[far] / tau
        e = np.exp(-u)
        q = (np.sinh(0.5 * a) / (0.5 * a)) ** 2       # 4 sinh²(a/2)/a² → 1 for Δ ≪ τ
        c[far] = e * q
        dcx[far] = -c[far] / tau
        dct[far] = e * ((2.0 + u) * q - 2.0 * np.sinh(a) / a)
    if near.any():
        g2, f2, h2 = _near(x[near], tau, width)
        c[near] = g2 / a ** 2
        dcx[near] = f2 / (a ** 2 * tau)
        dct[near] = h2 / a ** 2
    return c, dcx, dct


def _delta_kernel(x, tau, width):
    """IRF photons at their channel centre: c = [F(x + Δ/2) − F(x − Δ/2)]/Δ."""
    a = width / tau
    c, dcx, dct = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    far = x >= 0.5 * width
    near = (x > -0.5 * width) & ~far
    if far.any():
        u = x[far] / tau
        e = np.exp(-u)
        s = np.sinh(0.5 * a) / (0.5 * a)
        c[far] = e * s
        dcx[far] = -c[far] / tau
        dct[far] = e * ((u + 1.0) * s - np.cosh(0.5 * a))
    if near.any():
        v = (x[near] + 0.5 * width) / tau
        e = np.exp(-v)
        c[near] = -np.expm1(-v) / a
        dcx[near] = e / (a * tau)
        dct[near] = (-np.expm1(-v) - v * e) / a
    return c, dcx, dct


IRF_MODELS = {"box": _box_kernel, "delta": _delta_kernel}


def exp_kernel(x_ns, tau_ns: float, width_ns: float, irf_model: str = "box"):
    """Channel response c(x) of a unit exponential and its derivatives.

    Parameters
    ----------
    x_ns : array, lag between the decay channel and the (shifted) IRF channel, ns.
    tau_ns : lifetime, ns.  width_ns : channel width Δ, ns.
    irf_model : ``"box"`` (IRF photons uniform within their channel; right for an IRF spanning
        several channels) or ``"delta"`` (at the channel centre; right for an IRF much narrower
        than a channel, where the shift then places it exactly).

    Returns
    -------
    c, dc/dx (1/ns), dc/dlnτ — arrays like ``x_ns``; c is dimensionless (≈ e^(−x/τ)).
    """
    return IRF_MODELS[irf_model](np.asarray(x_ns, dtype=float), tau_ns, width_ns)


def periodic_kernel(x_ns, tau_ns: float, width_ns: float, period_ns: float | None,
                    irf_model: str = "box"):
    """``exp_kernel`` plus the tails of all earlier pulses (period ``period_ns``; None = none).

    Requires x + 2T ≥ Δ for every lag, i.e. a histogram window not longer than the period.
    """
    c, dcx, dct = exp_kernel(x_ns, tau_ns, width_ns, irf_model)
    if period_ns is None:
        return c, dcx, dct
    x = np.asarray(x_ns, dtype=float)
    c1, dcx1, dct1 = exp_kernel(x + period_ns, tau_ns, width_ns, irf_model)
    c2, dcx2, dct2 = exp_kernel(x + 2.0 * period_ns, tau_ns, width_ns, irf_model)
    r = np.exp(-period_ns / tau_ns)
    geo = 1.0 / (1.0 - r)                               # Σ_{m≥2} c(x+mT) = c(x+2T)/(1 − r)
    dgeo = (period_ns / tau_ns) * r * geo ** 2          # d geo / d lnτ
    return (c + c1 + c2 * geo, dcx + dcx1 + dcx2 * geo,
            dct + dct1 + dct2 * geo + c2 * dgeo)


def normalised_irf(irf_counts, background_counts: float = 0.0) -> np.ndarray:
    """IRF minus a constant background (counts per channel), clipped at 0, scaled to unit sum."""
    irf = np.clip(np.asarray(irf_counts, dtype=float) - background_counts, 0.0, None)
    total = irf.sum()
    if not total > 0:
        raise ValueError(f"irf_counts sum to {float(total)!r} after subtracting irf_background="
                         f"{background_counts!r}; allowed: at least one channel above it")
    return irf / total


def fwhm_channels(profile) -> float:
    """Full width at half maximum of a peaked profile, channels (linear interpolation, ≥ 1)."""
    p = np.asarray(profile, dtype=float)
    k = int(np.argmax(p))
    half = 0.5 * p[k]
    lo = k
    while lo > 0 and p[lo - 1] > half:
        lo -= 1
    hi = k
    while hi < p.size - 1 and p[hi + 1] > half:
        hi += 1
    left = lo - (p[lo] - half) / (p[lo] - p[lo - 1]) if lo > 0 else lo - 0.5
    right = hi + (p[hi] - half) / (p[hi] - p[hi + 1]) if hi < p.size - 1 else hi + 0.5
    return float(max(right - left, 1.0))


class _Model:
    """Shared bookkeeping: names, a one-entry cache (least_squares asks for f then J at one x)."""

    n_exp: int
    names: list[str]

    def __init__(self, n_exp: int):
        self.n_exp = n_exp
        self._key = None
        self._val = None

    def evaluate(self, theta) -> tuple[np.ndarray, np.ndarray]:
        """Model counts μ on the whole axis and ∂μ/∂θ (channels × parameters)."""
        key = np.asarray(theta, dtype=float).tobytes()
        if key != self._key:
            self._val = self._compute(np.asarray(theta, dtype=float))
            self._key = key
        return self._val

    def _compute(self, theta):  # pragma: no cover - abstract
        raise NotImplementedError


class ReconvolutionModel(_Model):
    """n-exponential decay ⊛ measured IRF on a uniform histogram axis (see module docstring).

    Parameters
    ----------
    n_channels : number of channels K.  width_ns : channel width Δ, ns.
    irf : normalised IRF (``normalised_irf``), K values.
    n_exp : 1–3.  period_ns : laser repetition period T (ns) or None for isolated pulses.
    irf_model : "delta" or "box" (see ``exp_kernel``).
    """

    def __init__(self, n_channels: int, width_ns: float, irf, n_exp: int,
                 period_ns: float | None = None, irf_model: str = "delta"):
        super().__init__(n_exp)
        self.irf_model = irf_model
        self.k, self.width_ns, self.period_ns = int(n_channels), float(width_ns), period_ns
        self.irf = np.asarray(irf, dtype=float)
        self._lags = np.arange(-(self.k - 1), self.k) * self.width_ns
        # circular convolution of length ≥ 2K−1 leaves the wanted outputs K−1..2K−2 unaliased
        self._nfft = next_fast_len(2 * self.k - 1, real=True)
        self._irf_f = rfft(self.irf, self._nfft)
        n = n_exp
        self.names = ([f"tau{i + 1}" for i in range(n)] + [f"amp{i + 1}" for i in range(n)]
                      + ["background", "shift"])

    def convolve(self, kernels: np.ndarray) -> np.ndarray:
        """IRF ⊛ each row of ``kernels`` (rows on the lag grid −(K−1)..K−1), K outputs per row."""
        out = irfft(rfft(kernels, self._nfft, axis=-1) * self._irf_f, self._nfft, axis=-1)
        return out[..., self.k - 1:2 * self.k - 1]

    def _compute(self, theta):
        n = self.n_exp
        taus, amps = np.exp(theta[:n]), theta[n:2 * n]
        background, shift = theta[2 * n], theta[2 * n + 1]
        x = self._lags - shift
        rows = [periodic_kernel(x, tau, self.width_ns, self.period_ns, self.irf_model)
                for tau in taus]
        conv = self.convolve(np.array([r for trio in rows for r in trio]))  # (3n, K)
        c, dcx, dct = conv[0::3], conv[1::3], conv[2::3]
        mu = background + amps @ c
        jac = np.empty((self.k, 2 * n + 2))
        jac[:, :n] = (amps[:, None] * dct).T
        jac[:, n:2 * n] = c.T
        jac[:, 2 * n] = 1.0
        jac[:, 2 * n + 1] = -(amps @ dcx)
        return mu, jac


class TailModel(_Model):
    """Σ A_i e^(−(t − t_start)/τ_i) + b for channels t ≥ t_start (NaN before), no IRF."""

    def __init__(self, time_ns, start_ns: float, n_exp: int):
        super().__init__(n_exp)
        self.dt = np.asarray(time_ns, dtype=float) - float(start_ns)
        self._after = self.dt >= 0
        self.names = ([f"tau{i + 1}" for i in range(n_exp)]
                      + [f"amp{i + 1}" for i in range(n_exp)] + ["background"])

    def _compute(self, theta):
        n = self.n_exp
        taus, amps = np.exp(theta[:n]), theta[n:2 * n]
        dt = np.where(self._after, self.dt, np.nan)
        e = np.exp(-dt[None, :] / taus[:, None])                 # (n, K)
        mu = theta[2 * n] + amps @ e
        jac = np.empty((dt.size, 2 * n + 1))
        jac[:, :n] = (amps[:, None] * e * dt[None, :] / taus[:, None]).T
        jac[:, n:2 * n] = e.T
        jac[:, 2 * n] = 1.0
        return mu, jac
