"""Light on the simulated TCSPC input: from a sample's decay to expected counts per histogram
channel.

A *signal source* is any callable ``source(bin_edges_ns, laser) -> expected detected photons per
second in each bin`` for times after a laser pulse, under steady excitation at
``laser.repetition_rate_hz`` (tails of earlier pulses included), on edges spanning one period
``[0, laser.period_ns]``. :class:`LuminescenceSource` adapts a sample's
:class:`~.samples.luminescence.LuminescenceModel` to it; tests may pass a plain function.

:func:`channel_rates` maps that one-period curve onto the HydraHarp's histogram channels (see
:mod:`.harp_sim`): photons arrive ``shift_ns`` after the sync (cable delay plus channel
offsets), a sync divider d puts d pulses in the window and gives each channel 1/d of the photons
of its time, and times beyond d periods never occur. The curve is evaluated once on a fine grid
(at least one point per channel, at most :data:`MAX_FINE_BINS` per period) and integrated
exactly between channel edges through its cumulative sum.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .laser_sim import LaserSnapshot
from .samples.decay_physics import TDC_DEAD_TIME_NS, InstrumentResponse

SignalSource = Callable[[np.ndarray, LaserSnapshot], np.ndarray]
MAX_FINE_BINS = 1 << 20
MIN_FINE_BINS = 256


def total_rate(source: SignalSource, laser: LaserSnapshot) -> float:
    """All detected photons per second (the input count rate), from a coarse one-period grid
    (the source integrates each bin, so the total needs no fine grid)."""
    edges = np.linspace(0.0, laser.period_ns, MIN_FINE_BINS + 1)
    return float(np.sum(source(edges, laser)))


def channel_rates(source: SignalSource, laser: LaserSnapshot, *, n_channels: int,
                  resolution_ns: float, offset_ns: float = 0.0, sync_divider: int = 1,
                  shift_ns: float = 0.0) -> tuple[np.ndarray, float]:
    """(expected counts/s per channel, all detected photons/s) for a pulsed, emitting laser."""
    period = laser.period_ns
    m = int(min(MAX_FINE_BINS, max(MIN_FINE_BINS, math.ceil(period / resolution_ns))))
    fine = np.linspace(0.0, period, m + 1)
    f = np.asarray(source(fine, laser), dtype=float)
    if f.shape != (m,) or not np.all(np.isfinite(f)) or (f < 0).any():
        raise ValueError(f"signal_source returned shape {f.shape}; need {m} finite values >= 0 "
                         "(counts/s per bin)")
    cum = np.concatenate([[0.0], np.cumsum(f)])
    total = float(cum[-1])

    def cumulative(t):   # photons/s arriving in [0, t) after a pulse, the light being periodic
        k = np.floor(t / period)
        return k * total + np.interp(t - k * period, fine, cum)

    edges = offset_ns + resolution_ns * np.arange(n_channels + 1)
    edges = np.minimum(edges, sync_divider * period)
    rates = np.diff(cumulative(edges - shift_ns)) / sync_divider
    return np.clip(rates, 0.0, None), total


class LuminescenceSource:
    """A sample's luminescence seen by the TCSPC detector, as a signal source.

    ``detected_photons_per_pulse`` is the mean number of detected signal photons per pulse at
    1000 per mille; it scales with the laser intensity. ``emission_nm`` (the emission
    monochromator's setting) may be changed between acquisitions. ``dead_time_ns`` defaults to
    the HydraHarp 400's (pile-up as in ``decay_physics.periodic_histogram``).
    """

    def __init__(self, model, *, emission_nm: float, irf: InstrumentResponse | None = None,
                 detected_photons_per_pulse: float = 0.01, dark_count_rate_cps: float = 0.0,
                 dead_time_ns: float | None = TDC_DEAD_TIME_NS["HydraHarp 400"]):
        self.model, self.emission_nm, self.irf = model, float(emission_nm), irf
        self.detected_photons_per_pulse = float(detected_photons_per_pulse)
        self.dark_count_rate_cps = float(dark_count_rate_cps)
        self.dead_time_ns = dead_time_ns

    def __call__(self, bin_edges_ns: np.ndarray, laser: LaserSnapshot) -> np.ndarray:
        mu = self.detected_photons_per_pulse * laser.intensity_permille / 1000.0
        weights, _ = self.model.decay_components(self.emission_nm, excitation_nm=laser.wavelength_nm)
        if not weights:
            mu = 0.0    # nothing emits at this wavelength: dark counts only
        return self.model.expected_histogram(
            bin_edges_ns, emission_nm=self.emission_nm, excitation_nm=laser.wavelength_nm,
            repetition_rate_hz=laser.repetition_rate_hz, photons_per_pulse=mu, irf=self.irf,
            dark_count_rate_cps=self.dark_count_rate_cps, dead_time_ns=self.dead_time_ns)


class ExponentialSource:
    """A single exponential decay (``tau_ns``) with a δ instrument response, excited every
    laser period: ``photons_per_pulse`` detected photons per pulse at 1000 per mille (scaled by
    the intensity). Rate over ``[a, b)`` after a pulse, tails of all earlier pulses summed:
    ``f_rep · μ · (e^(−a/τ) − e^(−b/τ)) / (1 − e^(−P/τ))``. For tests and quick demos; samples
    use :class:`LuminescenceSource`."""

    def __init__(self, tau_ns: float = 100.0, photons_per_pulse: float = 0.01):
        self.tau_ns, self.photons_per_pulse = float(tau_ns), float(photons_per_pulse)

    def __call__(self, bin_edges_ns: np.ndarray, laser: LaserSnapshot) -> np.ndarray:
        tau, e = self.tau_ns, np.asarray(bin_edges_ns, dtype=float)
        mu = self.photons_per_pulse * laser.intensity_permille / 1000.0
        per_pulse = -np.diff(np.exp(-e / tau)) / -math.expm1(-laser.period_ns / tau)
        return laser.repetition_rate_hz * mu * per_pulse
