"""The simulated fluorometer's calibration light: the standard lamp and the reference photodiode.

Standard lamp (holder position ``LAMP``, :mod:`.fluorometer_sim`): a calibrated
tungsten-halogen lamp with its diffuser, a 3000 K grey body giving
:data:`STANDARD_LAMP_PHOTONS_PER_S_PER_NM` at 1000 nm into the collection optics.

Reference detector (``REF?``): a quartz plate after the excitation monochromator sends
:data:`REFERENCE_SPLIT_FRACTION` of the beam (L(λ_ex) × bandpass photons/s) to a UV-enhanced Si
photodiode; photocurrent = fraction × photons/s × hc/λ × R(λ) (A/W, a PCHIP-smooth curve
through :data:`REFERENCE_RESPONSIVITY_A_PER_W`), with a relative Gaussian noise of
:data:`REFERENCE_NOISE_FRACTION` (seeded by (seed, reading number)); 0 with the lamp shutter
closed (the amplifier's offset is nulled). Quantum efficiency R·hc/(λe): 0.55 at 250 nm, 0.79 at
600-800 nm, 0.62 at 1000 nm, so the ratio signal/reference removes the lamp profile, its drift and
the excitation bandpass but keeps this gentle tilt.

ASSUMED numbers: the reference diode responsivity follows a typical UV-enhanced Si photodiode
datasheet shape (peak 0.60 A/W at 960 nm): ~50 nA at 600 nm for a 500 µm excitation slit.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import PchipInterpolator

STANDARD_LAMP_TEMPERATURE_K = 3000.0
STANDARD_LAMP_PHOTONS_PER_S_PER_NM = 1.0e7   # at 1000 nm, into the collection optics
REFERENCE_SPLIT_FRACTION = 0.05
REFERENCE_NOISE_FRACTION = 0.002
REFERENCE_RESPONSIVITY_A_PER_W = (
    (190.0, 0.0), (200.0, 0.10), (250.0, 0.11), (300.0, 0.14), (350.0, 0.17), (400.0, 0.21),
    (500.0, 0.30), (600.0, 0.38), (700.0, 0.45), (800.0, 0.51), (900.0, 0.57), (960.0, 0.60),
    (1000.0, 0.50), (1050.0, 0.34), (1100.0, 0.17), (1150.0, 0.04), (1200.0, 0.0))
_C2_NM_K = 1.4388e7                       # second radiation constant hc/k, nm K
_HC_J_NM = 1.98644586e-16                 # h c, J nm (photon energy = hc/λ)


def grey_body_photons(wavelength_nm, temperature_k: float) -> np.ndarray:
    """Photon spectral radiance of a grey body, relative to its value at 1000 nm (λ > 0)."""
    lam = np.asarray(wavelength_nm, dtype=float)
    shape = lambda x: x ** -4.0 / np.expm1(_C2_NM_K / (x * temperature_k))   # noqa: E731
    with np.errstate(over="ignore"):
        return shape(lam) / shape(1000.0)


def standard_lamp_flux(wavelength_nm) -> np.ndarray:
    """Standard lamp photons/s per nm into the collection optics (0 at λ ≤ 0)."""
    lam = np.asarray(wavelength_nm, dtype=float)
    safe = np.where(lam > 0, lam, 1.0)
    return np.where(lam > 0, STANDARD_LAMP_PHOTONS_PER_S_PER_NM
                    * grey_body_photons(safe, STANDARD_LAMP_TEMPERATURE_K), 0.0)


_RESPONSIVITY = PchipInterpolator(*np.asarray(REFERENCE_RESPONSIVITY_A_PER_W).T, extrapolate=False)


def reference_responsivity_a_per_w(wavelength_nm) -> np.ndarray:
    """The reference photodiode's responsivity (A/W), 0 outside its table."""
    return np.nan_to_num(_RESPONSIVITY(np.asarray(wavelength_nm, dtype=float)), nan=0.0)
