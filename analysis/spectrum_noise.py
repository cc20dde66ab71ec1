"""The noise of a scanned photon-counting spectrum, estimated from the spectrum itself.

Photon counting gives σ² = σ0² + g·max(net, 0) (σ0: dark and baseline noise; g: 1/gate for
Poisson counts). σ0 and g are fitted to the squared fourth differences of the signal, which
cancel a smooth spectrum up to its cubic terms (bands sampled with ≥ ~3 points per σ), so no
gate time is needed and white (non-Poisson) noise gives g ≈ 0. Used by the spectrum analysis
(:mod:`.pl_spectra`) and, for a lamp scan without its gate, by :mod:`.spectral_correction`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import nnls

NOISE_ITERATIONS = 5       # reweighting steps of the noise-model fit
OUTLIER_FACTOR = 25.0      # Δ⁴y² above this × prediction: not noise
CHI2_1_MEDIAN = 0.4549     # median of χ²₁, for the start value


def count_noise(y) -> tuple[float, np.ndarray]:
    """Baseline noise σ0 (cps) and per-point noise σ_i = √(σ0² + g·max(y_i, 0)) (cps).

    Fourth differences d = Δ⁴y of independent noise have E[d_i²] = Σ_k c_k² σ²_(i+k) with
    c = (1, −4, 6, −4, 1), linear in (σ0², g): a weighted non-negative least-squares fit,
    iterated with weights 1/E[d²]² (var(d²) = 2E[d²]² for Gaussian d) and ignoring points
    above :data:`OUTLIER_FACTOR` × the prediction (spikes, undersampled sharp bands).
    """
    c2 = np.array([1.0, 16.0, 36.0, 16.0, 1.0])
    d2 = np.diff(y, 4) ** 2
    floor = 1e-9 * float(np.max(np.abs(y)))                  # noise-free (simulated) data
    if not np.any(d2 > 0):                                   # polynomial of degree ≤ 3
        return floor, np.full(y.size, floor)
    z = np.convolve(np.clip(y, 0.0, None), c2, mode="valid")
    design = np.column_stack([np.full(d2.size, c2.sum()), z])
    theta = np.array([np.median(d2) / (CHI2_1_MEDIAN * c2.sum()), 0.0])
    for _ in range(NOISE_ITERATIONS):
        pred = np.maximum(design @ theta, 1e-300)
        keep = d2 <= OUTLIER_FACTOR * pred
        w = 1.0 / pred[keep]
        theta, _ = nnls(design[keep] * w[:, None], d2[keep] * w)
    sigma0 = max(math.sqrt(theta[0]), floor)
    return sigma0, np.sqrt(sigma0 ** 2 + theta[1] * np.clip(y, 0.0, None))
