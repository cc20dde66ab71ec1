"""Counting-loss (linearity) correction of a photon counter.

A photon-counting PMT and its discriminator lose counts at high rates: after each counted pulse
the chain is blind for a dead time τ_d, so the measured rate is m = R / (1 + R·τ_d) (the
non-paralysable model; its saturation count rate R_sat = 1/τ_d is the rate where half the
photons are lost). Inverted: R = m / (1 − m/R_sat). Dark and light counts share the dead time:
the net signal is R(m) − R(m_dark).

At the spectrofluorometer's usual 1e4-1e5 cps with R_sat = 1e6 cps the loss is 1-10 %: enough
to bend band ratios and the standard-lamp response by several %, which is why spectra and the
lamp scan are both corrected. The plans record the counter's ``saturation_count_rate_cps``
(configuration) in ``start["spectrum"]``; a run without it is left as measured.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from . import _validate as check


def _inputs(measured_cps, saturation_cps: float) -> tuple[np.ndarray, float]:
    sat = check.positive("saturation_count_rate_cps", saturation_cps)
    m = np.asarray(measured_cps, dtype=float)
    bad = ~np.isfinite(m) | (m < 0) | (m >= sat)
    if np.any(bad):
        v = float(m.ravel()[np.flatnonzero(bad.ravel())[0]])
        raise ValueError(f"measured count rate {v!r} cps is out of range; allowed range: 0 <= rate "
                         f"< saturation_count_rate_cps={sat:g} cps (a rate at or above it cannot "
                         "come from the counter: check the counter's saturation rate)")
    return m, sat


def true_count_rate(measured_cps, saturation_cps: float) -> np.ndarray:
    """R = m / (1 − m/R_sat) (cps): the rate reaching the detector for a measured rate ``m``."""
    m, sat = _inputs(measured_cps, saturation_cps)
    return m / (1.0 - m / sat)


def true_count_rate_slope(measured_cps, saturation_cps: float) -> np.ndarray:
    """dR/dm = 1 / (1 − m/R_sat)²: scales a measured rate's standard error."""
    m, sat = _inputs(measured_cps, saturation_cps)
    return 1.0 / (1.0 - m / sat) ** 2


def saturation_from_start(start: Mapping) -> float | None:
    """The counter's saturation rate (cps) a spectrum run recorded, or None (not recorded)."""
    value = (start.get("spectrum") or {}).get("saturation_count_rate_cps")
    return None if value is None else check.positive("saturation_count_rate_cps", value)


__all__ = ["saturation_from_start", "true_count_rate", "true_count_rate_slope"]
