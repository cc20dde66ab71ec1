"""The photoluminescence bench: a FluoTime-300-like spectrofluorometer (excitation and emission
Acton monochromators, housing with lamp, shutters, sample changer and NIR-PMT) plus the TCSPC
bench (HydraHarp, Taiko and PiLas front ends of one 375 nm laser), on one virtual clock.

The TCSPC signal source (:class:`BenchLight`) follows the bench at every acquisition: holder
content, emission monochromator wavelength and bandpass, detector shutter, PMT high voltage,
lamp shutter and the laser snapshot.

- SAMPLE: the sample's decay at the emission wavelength (``LuminescenceSource``: IRF
  convolution, tails of earlier pulses, pile-up of the HydraHarp's dead time).
- SCATTERER: elastic scatter of the laser line seen through the emission slit function, i.e.
  the instrument response itself (a 1 ps "decay" stands in for the instantaneous scatter).
- EMPTY, LAMP (the standard lamp), or detector shutter closed: background only. HV off:
  nothing at all.
Background = PMT dark rate + (lamp shutter open) the lamp light the PMT sees + (LAMP) the
standard lamp's, uncorrelated with the laser, so flat in the histogram.

Scale (ASSUMED, fluorometer_sim.py): detected photons per pulse at 1000 per mille =
:data:`~.fluorometer_sim.LASER_PHOTONS_PER_PULSE` (1.5e7) × ``COLLECTION_EFFICIENCY`` (0.025) ×
∫ emission(λ) QE(λ) T_em(λ − λ_em) dλ. At the emission peaks, 375 nm excitation, 1 mm / 2 mm
emission slit (10.8 / 21.6 nm bandpass, 600 g/mm): mCB-Nd 1060 nm 0.126 / 0.180, 1334 nm
0.024 / 0.038; mCB-Yb 1000 nm 0.027 / 0.049; mCB-NdYb 1060 nm 0.065 / 0.093, 998 nm
0.016 / 0.028 (count rate / repetition rate, before pile-up). So 100-1000 per mille spans
~0.2-18 % of the repetition rate; the lifetime plan lowers the intensity to keep ≤ 5 %. The
scatterer at 375 nm gives 0.375 per pulse at 1000 per mille (≈ 130 per mille for 5 %).

``PLBench.start()`` returns the endpoints::

    {"excitation_mono": {"url"}, "emission_mono": {"url"}, "housing": {"url"},
     "hydraharp": {"host", "port"}, "taiko": {"host", "port"}, "pilas": {"url"}}
"""

from __future__ import annotations

import numpy as np

from .acton import ActonSimulator
from .clock import VirtualClock
from .fluorometer_sim import HousingSimulator
from .laser_sim import LaserSnapshot, LaserState
from .samples.decay_physics import TDC_DEAD_TIME_NS, NirPmt, periodic_histogram
from .samples.luminescence import LuminescenceModel
from .tcspc_lab import TCSPCLab
from .tcspc_light import LuminescenceSource

EXCITATION_GRATINGS = ((1200, 300.0), (600, 500.0))
EMISSION_GRATINGS = ((600, 1000.0), (1200, 500.0))
#: Lifetime (ns) standing in for instantaneous elastic scatter (≪ the 0.41 ns IRF).
SCATTER_RESPONSE_NS = 0.001
#: Pulse width (ns) of the 375 nm ps diode (decay_physics default).
LASER_FWHM_NS = 0.060


class BenchLight:
    """TCSPC signal source ``(bin_edges_ns, laser) -> counts/s per bin`` following the bench."""

    def __init__(self, housing: HousingSimulator, *,
                 dead_time_ns: float | None = TDC_DEAD_TIME_NS["HydraHarp 400"]):
        self.housing = housing
        self.irf = housing.pmt.irf(LASER_FWHM_NS)
        self.dead_time_ns = dead_time_ns

    def __call__(self, bin_edges_ns: np.ndarray, laser: LaserSnapshot) -> np.ndarray:
        h = self.housing
        with h.lock:
            holder, hv = h.holder, h.hv_on
            detector_open = h.shutters["DETECTOR"] == "OPEN"
            lamp_open = h.shutters["LAMP"] == "OPEN"
        if not hv:
            return np.zeros(len(bin_edges_ns) - 1)
        emission_nm = h.optics.emission.wavelength_nm
        dark = h.pmt.dark_count_rate_cps
        if detector_open and lamp_open:
            dark += h.optics.lamp_rate_cps(holder)
        if detector_open and holder == "LAMP":
            dark += h.optics.standard_lamp_rate_cps()
        mu = h.optics.photons_per_pulse(holder, laser.wavelength_nm) if detector_open else 0.0
        if holder == "SAMPLE" and mu > 0 and emission_nm > 0:
            source = LuminescenceSource(h.optics.model, emission_nm=emission_nm, irf=self.irf,
                                        detected_photons_per_pulse=mu, dark_count_rate_cps=dark,
                                        dead_time_ns=self.dead_time_ns)
            return source(bin_edges_ns, laser)
        scatter = holder == "SCATTERER" and mu > 0
        return periodic_histogram(
            bin_edges_ns, (1.0,) if scatter else (), (SCATTER_RESPONSE_NS,) if scatter else (),
            repetition_rate_hz=laser.repetition_rate_hz,
            photons_per_pulse=mu * laser.intensity_permille / 1000.0 if scatter else 0.0,
            irf=self.irf, dark_count_rate_cps=dark, dead_time_ns=self.dead_time_ns)


class PLBench:
    """Both monochromators, the housing and the TCSPC bench; ``start()``/``stop()`` (a context
    manager). ``housing``, ``excitation``, ``emission``, ``laser`` (:class:`LaserState`) and
    ``tcspc`` expose the true state for tests."""

    def __init__(self, clock: VirtualClock, model: LuminescenceModel, *, seed: int = 0,
                 host: str = "127.0.0.1", pmt: NirPmt | None = None):
        self.clock, self.model, self.host = clock, model, host
        self.laser = LaserState()
        self.excitation = ActonSimulator(clock, gratings=EXCITATION_GRATINGS, seed=seed)
        self.emission = ActonSimulator(clock, gratings=EMISSION_GRATINGS, seed=seed + 1)
        self.housing = HousingSimulator(clock, excitation=self.excitation, emission=self.emission,
                                        model=model, laser=self.laser, pmt=pmt, seed=seed)
        self.light = BenchLight(self.housing)
        self.tcspc = TCSPCLab(clock, self.light, seed=seed, host=host, laser=self.laser)
        self.endpoints: dict | None = None

    def start(self) -> dict:
        try:
            for sim in (self.excitation, self.emission, self.housing):
                sim.start_server(self.host)
            tcspc = self.tcspc.start()
        except Exception:
            self.stop()
            raise
        self.endpoints = {"excitation_mono": {"url": self.excitation.url},
                          "emission_mono": {"url": self.emission.url},
                          "housing": {"url": self.housing.url}, **tcspc}
        return self.endpoints

    def stop(self) -> None:
        for sim in (self.excitation, self.emission, self.housing, self.tcspc):
            sim.stop()

    def __enter__(self) -> "PLBench":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
