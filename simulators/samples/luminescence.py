"""NIR luminescence of lanthanide samples: emission and excitation spectra, decay kinetics with
donor → acceptor energy transfer (Nd → Yb), and the TCSPC histograms they give.

Wavelengths in nm, wavenumbers in cm⁻¹, times in ns. Spectra are absolute yields: photons emitted
(into 4π) per nm of emission wavelength per *incident* excitation photon, i.e. the sample's
steady-state response to a spectrally flat, lamp-corrected source.

Model
-----
1. Absorption at λ_ex: a broad ligand band (decadic optical density OD_L(λ), Gaussian in
   wavenumber) plus narrow f–f lines of the ions (OD per ion per formula unit × ions per f.u.).
   Absorbed fraction 1 − 10^(−OD_total), shared between absorbers in proportion to their OD.
2. Ligand → ion sensitisation competes with the ligand's own decay (rate 1): ion X receives
   η_X = k_X n_X / (1 + Σ_Y k_Y n_Y) of the ligand excitations (k_X per ion, n_X ions per f.u.).
   An f–f absorption relaxes to the emitting level with unit efficiency.
3. Initial excited populations p_X(λ_ex). Each ion decays with its observed lifetime τ_X. With
   energy transfer from donor D (observed τ_DA, τ_D without acceptor) to acceptor A:
       k_ET = 1/τ_DA − 1/τ_D,   η_ET = k_ET τ_DA = 1 − τ_DA/τ_D,
       n_A(t) = p_A e^(−t/τ_A) + p_D k_ET/(1/τ_DA − 1/τ_A) (e^(−t/τ_A) − e^(−t/τ_DA)),
   so the acceptor emission rises with the donor lifetime (negative amplitude on τ_DA).
4. Emission rate per nm: I(λ_em, t) = Σ_X g_X(λ_em) n_X(t) / τ_rad,X (g_X: unit-area band shape,
   τ_rad,X: radiative lifetime). The steady-state spectrum is ∫ I dt, so emission spectrum,
   excitation spectrum and decay shape come from one set of amplitudes and are consistent.

Spectroscopic constants below are typical room-temperature values for Nd³⁺/Yb³⁺ in organic
hosts, ASSUMED (not from the paper); published numbers (peaks, lifetimes, η_ET) enter through
the presets (presets.py).
* Nd³⁺ ⁴F3/2 branching to ⁴I9/2 : ⁴I11/2 : ⁴I13/2 = 0.33 : 0.53 : 0.14 (Judd–Ofelt-like); each
  band = main Stark component at the published peak (70 %) + a red satellite 180 cm⁻¹ lower (30 %),
  FWHM 120 cm⁻¹ each (≈ 16 nm at 1060 nm).
* Yb³⁺ ²F5/2 → ²F7/2: zero-phonon line 250 cm⁻¹ above the main peak (15 %, FWHM 150 cm⁻¹, ≈ 976
  nm for a 1000 nm peak), main (55 %, 250 cm⁻¹), red component 250 cm⁻¹ below (30 %, 200 cm⁻¹).
  The band is negligible (< 1e-4 of the Nd signal) at 1060 nm and the Nd bands are zero at 980 nm.
* Radiative lifetimes: Nd ⁴F3/2 250 µs, Yb ²F5/2 1.0 ms (intrinsic quantum yields ~ 5e-4).
* Nd³⁺ f–f absorption from ⁴I9/2 (centre nm, OD per Nd per f.u.), FWHM 300 cm⁻¹:
  ⁴G7/2 525 (0.012), ⁴G5/2+²G7/2 580 (0.040, hypersensitive), ⁴F9/2 680 (0.004),
  ⁴F7/2+⁴S3/2 740 (0.020), ⁴F5/2+²H9/2 800 (0.030), ⁴F3/2 870 (0.008).
  Yb³⁺ absorbs only at ²F5/2 (≈ 900–1000 nm, under its own emission), so no Yb lines are modelled.
* Gaussians are cut at ±6σ, so spectra are exactly 0 where nothing emits or absorbs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .decay_physics import TDC_DEAD_TIME_NS, InstrumentResponse, periodic_histogram
from .relaxation_rates import checked_array

__all__ = ["EnergyTransfer", "Emitter", "GaussianBands", "LuminescenceModel", "nd_emission",
           "nd_ff_absorption", "yb_emission", "ND_RADIATIVE_LIFETIME_NS", "YB_RADIATIVE_LIFETIME_NS",
           "VISIBLE_FRACTION"]

NM_CM1 = 1e7                        # ν (cm⁻¹) = 1e7 / λ (nm)
TRUNCATE_SIGMA = 6.0
MAX_WAVELENGTH_NM = 5000.0          # catches unit slips (m, µm) while covering UV–NIR
VISIBLE_FRACTION = 0.01             # a lifetime is "visible" above 1 % of the photons at λ_em
ND_RADIATIVE_LIFETIME_NS = 250e3
YB_RADIATIVE_LIFETIME_NS = 1.0e6
ND_BRANCHING = (0.33, 0.53, 0.14)   # ⁴F3/2 → ⁴I9/2, ⁴I11/2, ⁴I13/2
ND_FF_LINES = ((525.0, 0.012), (580.0, 0.040), (680.0, 0.004), (740.0, 0.020), (800.0, 0.030),
               (870.0, 0.008))


def _wavelength(name, value) -> np.ndarray:
    return checked_array(name, value, low=0.0, low_open=True, high=MAX_WAVELENGTH_NM, unit="nm")


def _scalar_wavelength(name, value) -> float:
    a = _wavelength(name, value)
    if a.ndim:
        raise ValueError(f"{name} must be a scalar wavelength in nm, got an array of shape {a.shape}")
    return float(a)


@dataclass(frozen=True)
class GaussianBands:
    """Sum of Gaussians in wavenumber: centres (nm), FWHM (cm⁻¹) and weights (≥ 0)."""

    centres_nm: tuple[float, ...]
    fwhm_cm1: tuple[float, ...]
    weights: tuple[float, ...]

    def __post_init__(self):
        n = len(self.centres_nm)
        if not (len(self.fwhm_cm1) == len(self.weights) == n):
            raise ValueError("centres_nm, fwhm_cm1 and weights must have the same length, got "
                             f"{n}, {len(self.fwhm_cm1)}, {len(self.weights)}")
        _wavelength("centres_nm", self.centres_nm)
        checked_array("fwhm_cm1", self.fwhm_cm1, low=0.0, low_open=True, high=5e4, unit="cm^-1")
        checked_array("weights", self.weights, low=0.0)

    @classmethod
    def stark(cls, peak_nm, offsets_cm1, fwhm_cm1, fractions, scale=1.0) -> GaussianBands:
        """Components at ν_peak + offset (cm⁻¹) carrying ``scale`` × fraction each."""
        nu0 = NM_CM1 / _scalar_wavelength("peak_nm", peak_nm)
        return cls(tuple(NM_CM1 / (nu0 + o) for o in offsets_cm1), tuple(fwhm_cm1),
                   tuple(scale * f for f in fractions))

    def __add__(self, other: GaussianBands) -> GaussianBands:
        return GaussianBands(self.centres_nm + other.centres_nm, self.fwhm_cm1 + other.fwhm_cm1,
                             self.weights + other.weights)

    def _gauss(self, wavelength_nm):
        """exp(−Δν²/2σ²) per component, shape (..., n), 0 beyond ±6σ; and σ (cm⁻¹)."""
        nu = NM_CM1 / np.asarray(wavelength_nm, dtype=float)[..., None]
        sig = np.asarray(self.fwhm_cm1) / (2.0 * math.sqrt(2.0 * math.log(2.0)))
        u = (nu - NM_CM1 / np.asarray(self.centres_nm)) / sig
        return np.where(np.abs(u) <= TRUNCATE_SIGMA, np.exp(-0.5 * u * u), 0.0), sig

    def profile(self, wavelength_nm) -> np.ndarray:
        """Σ w_i × (peak-normalised Gaussian): the weights are the peak heights (e.g. ODs)."""
        g, _ = self._gauss(wavelength_nm)
        return g @ np.asarray(self.weights, dtype=float)

    def density_per_nm(self, wavelength_nm) -> np.ndarray:
        """Σ w_i × unit-area Gaussian in ν, per nm (Jacobian 1e7/λ²): area Σ w_i."""
        g, sig = self._gauss(wavelength_nm)
        per_cm1 = g @ (np.asarray(self.weights, dtype=float) / (sig * math.sqrt(2.0 * math.pi)))
        return per_cm1 * NM_CM1 / np.asarray(wavelength_nm, dtype=float) ** 2


def nd_emission(peaks_nm=(880.0, 1060.0, 1334.0)) -> GaussianBands:
    """Unit-area Nd³⁺ ⁴F3/2 emission; main peaks of the three bands at ``peaks_nm``."""
    bands = [GaussianBands.stark(p, (0.0, -180.0), (120.0, 120.0), (0.7, 0.3), b)
             for p, b in zip(peaks_nm, ND_BRANCHING)]
    return bands[0] + bands[1] + bands[2]


def yb_emission(peak_nm=1000.0) -> GaussianBands:
    """Unit-area Yb³⁺ ²F5/2 → ²F7/2 emission with its main peak at ``peak_nm``."""
    return GaussianBands.stark(peak_nm, (250.0, 0.0, -250.0), (150.0, 250.0, 200.0), (0.15, 0.55, 0.30))


def nd_ff_absorption() -> GaussianBands:
    """Nd³⁺ f–f absorption lines, OD per Nd per formula unit (peak heights)."""
    return GaussianBands(tuple(c for c, _ in ND_FF_LINES), (300.0,) * len(ND_FF_LINES),
                         tuple(od for _, od in ND_FF_LINES))


@dataclass(frozen=True)
class Emitter:
    """One emitting ion in a compound; times in ns, ``ligand_transfer`` in units of the ligand's
    intrinsic decay rate (per ion), ``absorption`` = f–f ODs per ion per f.u. (or None)."""

    ion: str
    per_formula_unit: float
    lifetime_ns: float
    radiative_lifetime_ns: float
    emission: GaussianBands
    ligand_transfer: float
    absorption: GaussianBands | None = None

    def __post_init__(self):
        checked_array("per_formula_unit", self.per_formula_unit, low=0.0, low_open=True)
        checked_array("lifetime_ns", self.lifetime_ns, low=0.0, low_open=True, unit="ns")
        checked_array("radiative_lifetime_ns", self.radiative_lifetime_ns, low=self.lifetime_ns, unit="ns")
        checked_array("ligand_transfer", self.ligand_transfer, low=0.0)


@dataclass(frozen=True)
class EnergyTransfer:
    """Donor → acceptor transfer; ``donor_lifetime_without_acceptor_ns`` = τ_D (ns)."""

    donor: str
    acceptor: str
    donor_lifetime_without_acceptor_ns: float


@dataclass(eq=False)
class LuminescenceModel:
    """Luminescence of one compound (see the module docstring). ``published`` holds the
    science.md values (for checks only; nothing here returns them)."""

    name: str
    emitters: tuple[Emitter, ...]
    ligand_absorption: GaussianBands   # decadic OD of the ligand band (peak heights)
    transfer: EnergyTransfer | None = None
    published: dict = field(default_factory=dict)
    notes: str = ""

    def __post_init__(self):
        self.emitters = tuple(self.emitters)
        ions = [e.ion for e in self.emitters]
        if not ions or len(set(ions)) != len(ions):
            raise ValueError(f"emitters must be a non-empty tuple with unique ions, got {ions}")
        self._index = {ion: i for i, ion in enumerate(ions)}
        self.taus_ns = tuple(sorted({float(e.lifetime_ns) for e in self.emitters}))
        t = self.transfer
        if t is not None:
            for role in ("donor", "acceptor"):
                if getattr(t, role) not in self._index:
                    raise ValueError(f"transfer {role}={getattr(t, role)!r} is not one of the "
                                     f"emitters {ions}")
            d = self.emitters[self._index[t.donor]]
            a = self.emitters[self._index[t.acceptor]]
            checked_array("donor_lifetime_without_acceptor_ns", t.donor_lifetime_without_acceptor_ns,
                          low=d.lifetime_ns, low_open=True, unit="ns")
            if d.lifetime_ns == a.lifetime_ns:
                raise ValueError(f"donor and acceptor lifetimes must differ, both {d.lifetime_ns!r} ns")

    # ------------------------------------------------------------ energy transfer
    @property
    def transfer_efficiency(self) -> float:
        """η_ET = 1 − τ_DA/τ_D (0 without transfer)."""
        if self.transfer is None:
            return 0.0
        d = self.emitters[self._index[self.transfer.donor]]
        return 1.0 - d.lifetime_ns / self.transfer.donor_lifetime_without_acceptor_ns

    # ------------------------------------------------------------ kinetics
    def _populations(self, ex):
        """Initial excitations per incident photon, shape (..., n_emitters)."""
        od_l = self.ligand_absorption.profile(ex)
        od_x = np.stack([e.per_formula_unit * e.absorption.profile(ex) if e.absorption is not None
                         else np.zeros_like(od_l) for e in self.emitters], axis=-1)
        od = od_l + od_x.sum(-1)
        absorbed = -np.expm1(-math.log(10.0) * od)
        share = np.divide(absorbed, od, out=np.zeros_like(od), where=od > 0)
        k = np.array([e.ligand_transfer * e.per_formula_unit for e in self.emitters])
        eta = k / (1.0 + k.sum())
        return share[..., None] * (od_l[..., None] * eta + od_x)

    def _amplitudes(self, em, ex):
        """Amplitudes a_j (photons ns⁻¹ nm⁻¹ per incident photon) on ``self.taus_ns``."""
        em, ex = np.broadcast_arrays(np.asarray(em, dtype=float), np.asarray(ex, dtype=float))
        p = self._populations(ex)
        amp = np.zeros(em.shape + (len(self.taus_ns),))
        col = {e.ion: self.taus_ns.index(float(e.lifetime_ns)) for e in self.emitters}
        for i, e in enumerate(self.emitters):
            rate = e.emission.density_per_nm(em) / e.radiative_lifetime_ns
            amp[..., col[e.ion]] += rate * p[..., i]
            if self.transfer is not None and e.ion == self.transfer.acceptor:
                d = self.emitters[self._index[self.transfer.donor]]
                k_et = 1.0 / d.lifetime_ns - 1.0 / self.transfer.donor_lifetime_without_acceptor_ns
                fed = rate * p[..., self._index[d.ion]] * k_et / (1.0 / d.lifetime_ns - 1.0 / e.lifetime_ns)
                amp[..., col[e.ion]] += fed
                amp[..., col[d.ion]] -= fed
        return amp

    def _yield(self, em, ex):
        return self._amplitudes(em, ex) @ np.asarray(self.taus_ns)

    def emission_spectrum(self, emission_nm, *, excitation_nm) -> np.ndarray:
        """Steady-state emission, photons per nm per incident photon at ``excitation_nm``."""
        return self._yield(_wavelength("emission_nm", emission_nm),
                           _scalar_wavelength("excitation_nm", excitation_nm))

    def excitation_spectrum(self, excitation_nm, *, emission_nm) -> np.ndarray:
        """Emission at ``emission_nm`` (photons per nm per incident photon) vs excitation."""
        return self._yield(_scalar_wavelength("emission_nm", emission_nm),
                           _wavelength("excitation_nm", excitation_nm))

    def decay_components(self, emission_nm, *, excitation_nm=375.0):
        """(weights, taus_ns): the impulse response is Σ w_j e^(−t/τ_j)/τ_j with Σ w_j = 1
        (a negative weight is a rise); empty tuples where nothing emits."""
        a = self._amplitudes(_scalar_wavelength("emission_nm", emission_nm),
                             _scalar_wavelength("excitation_nm", excitation_nm))
        area = a * np.asarray(self.taus_ns)
        total = area.sum()
        if total <= 0.0:
            return (), ()
        keep = np.flatnonzero(area != 0.0)
        return tuple((area[keep] / total).tolist()), tuple(self.taus_ns[j] for j in keep)

    def lifetimes_ns(self, emission_nm, *, excitation_nm=375.0) -> tuple[float, ...]:
        """Lifetimes (ns, ascending) carrying ≥ 1 % of |photons| at ``emission_nm``, rises included."""
        w, taus = self.decay_components(emission_nm, excitation_nm=excitation_nm)
        norm = sum(abs(x) for x in w)
        return tuple(t for x, t in zip(w, taus) if abs(x) >= VISIBLE_FRACTION * norm)

    def decay_shape(self, t_ns, *, emission_nm, excitation_nm=375.0) -> np.ndarray:
        """Impulse response (1/ns), unit area over t ≥ 0, 0 for t < 0 and where nothing emits."""
        t = checked_array("t_ns", t_ns, unit="ns")
        w, taus = self.decay_components(emission_nm, excitation_nm=excitation_nm)
        out = np.zeros(t.shape)
        tp = np.maximum(t, 0.0)
        for x, tau in zip(w, taus):
            out += x / tau * np.exp(-tp / tau)
        return np.where(t >= 0, np.maximum(out, 0.0), 0.0)

    def expected_histogram(self, bin_edges_ns, *, emission_nm, excitation_nm, repetition_rate_hz,
                           photons_per_pulse, irf: InstrumentResponse | None,
                           dark_count_rate_cps: float = 0.0, pulse_time_ns: float = 0.0,
                           dead_time_ns: float | None = TDC_DEAD_TIME_NS["PicoHarp 300"]) -> np.ndarray:
        """Expected counts per bin for one second of acquisition (decay_physics.periodic_histogram):
        IRF convolution, tails of earlier pulses, pile-up, uniform dark counts.
        ``photons_per_pulse`` = mean detected signal photons per laser pulse."""
        w, taus = self.decay_components(emission_nm, excitation_nm=excitation_nm)
        return periodic_histogram(bin_edges_ns, w, taus, repetition_rate_hz=repetition_rate_hz,
                                  photons_per_pulse=photons_per_pulse, irf=irf,
                                  dark_count_rate_cps=dark_count_rate_cps,
                                  pulse_time_ns=pulse_time_ns, dead_time_ns=dead_time_ns)
