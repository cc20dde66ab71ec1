"""MagneticSample: ions per formula unit + mean-field exchange + diamagnetism -> MPMS3 moments.

Units (cgs-emu, per formula unit unless stated):
* molar magnetisation M in emu/mol of formula units, fields H in Oe, T in K;
* mean field H_eff = H + lambda * M_para with lambda in mol/emu (molecular-field
  constant acting on the paramagnetic f.u. magnetisation; lambda < 0 is antiferromagnetic,
  theta_MF = lambda * C with C the Curie constant per f.u.);
* diamagnetic and TIP susceptibilities in emu/(mol Oe) per f.u. (diamagnetic < 0).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .crystal_field import NA_MU_B_EMU_PER_MOL, LanthanideIon, interpolate_node_table

__all__ = ["MagneticSample", "VSM_NOISE_FLOOR_EMU", "VSM_NOISE_RELATIVE"]

# MPMS3 VSM standard error: additive floor and a term proportional to |m|
# (real files: ~1.6e-8 emu std err at 6e-5 emu).
VSM_NOISE_FLOOR_EMU = 5e-9
VSM_NOISE_RELATIVE = 3e-4


@dataclass
class MagneticSample:
    """A powder sample whose moment is computed from crystal-field ions.

    ``ions`` maps element -> count per formula unit; ``ion_models`` maps the same keys
    to LanthanideIon objects. ``published`` holds science.md reference values
    **per formula unit** (keys carry units), for checks only; nothing here returns them.
    """

    name: str
    formula: str
    molar_mass_g_per_mol: float
    ions: dict[str, float]
    ion_models: dict[str, LanthanideIon]
    mean_field_lambda_mol_per_emu: float = 0.0
    diamagnetic_emu_per_mol_Oe: float = 0.0
    tip_emu_per_mol_Oe: float = 0.0
    published: dict[str, float] = field(default_factory=dict)
    notes: str = ""

    def __post_init__(self):
        if set(self.ions) != set(self.ion_models):
            raise ValueError(f"ions {sorted(self.ions)} and ion_models {sorted(self.ion_models)} differ")
        if self.molar_mass_g_per_mol <= 0:
            raise ValueError(f"molar_mass_g_per_mol must be > 0, got {self.molar_mass_g_per_mol!r}")
        if self.diamagnetic_emu_per_mol_Oe > 0:
            raise ValueError("diamagnetic_emu_per_mol_Oe must be <= 0, got "
                             f"{self.diamagnetic_emu_per_mol_Oe!r}")

    @property
    def ions_per_formula_unit(self) -> float:
        return float(sum(self.ions.values()))

    def curie_constant_emu_K_per_mol(self) -> float:
        """Free-ion Curie constant per formula unit (exact N_A mu_B^2/3k_B), emu K/mol."""
        return sum(n * self.ion_models[el].curie_constant_emu_K_per_mol() for el, n in self.ions.items())

    # ------------------------------------------------------------ magnetisation
    def _para0(self, T: np.ndarray, H: np.ndarray, exact: bool) -> np.ndarray:
        """Paramagnetic M per f.u. without exchange, emu/mol."""
        tot = np.zeros(np.broadcast(T, H).shape)
        for el, n in self.ions.items():
            ion = self.ion_models[el]
            mu = ion.moment_muB(T, H) if exact else ion.moment_interp_muB(T, H)
            tot += n * mu
        return NA_MU_B_EMU_PER_MOL * tot

    def paramagnetic_emu_per_mol(self, T_K, H_Oe) -> np.ndarray:
        """Self-consistent mean-field M = M0(T, H + lambda M), emu/mol per f.u."""
        T, H = np.broadcast_arrays(np.asarray(T_K, dtype=float), np.asarray(H_Oe, dtype=float))
        lam = self.mean_field_lambda_mol_per_emu
        if lam == 0.0:
            return self._para0(T, H, exact=True)
        # solve once per distinct (T, |H|) pair (repeated readings are common)
        pairs = np.stack([T.ravel(), np.abs(H.ravel())], axis=1)
        inv = np.arange(len(pairs))
        if len(pairs) > 1:
            pairs, inv = np.unique(pairs, axis=0, return_inverse=True)
        x = self._solve_mean_field(pairs[:, 0], pairs[:, 1], lam)
        return (np.sign(H.ravel()) * x[inv.ravel()]).reshape(T.shape)

    def _solve_mean_field(self, t, h, lam, tol=1e-10, max_iter=80):
        """Root of g(x) = x - M0(t, h + lam x) for h >= 0 (vectorised safeguarded secant).

        g is increasing for lam < 0 (g' = 1 - lam dM0/dH > 0); the root is bracketed by
        x in [0, M0(h)] (lam < 0) or [M0(h), M_sat] (lam > 0). With crystal-field ions, M0
        is tabulated once per point on the cached field nodes spanning the bracket and
        interpolated (cubic) inside the loop, so iterations cost no diagonalisation.
        """
        models = [(n, self.ion_models[el]) for el, n in self.ions.items()]
        m_sat = NA_MU_B_EMU_PER_MOL * sum(n * ion.g_J * ion.J for n, ion in models)
        m_h = self._para0(t, h, exact=all(ion.isotropic for _, ion in models))
        if lam < 0:
            lo, hi = np.zeros_like(h), np.minimum(m_h, h / -lam)
            h_lo, h_hi = h + lam * hi, h
        else:
            lo, hi = m_h.copy(), np.full_like(h, m_sat)
            h_lo, h_hi = h + lam * lo, h + lam * hi
        if all(ion.isotropic for _, ion in models):
            m0 = lambda heff: self._para0(t, heff, exact=True)  # noqa: E731
        else:
            dh = models[0][1].NODE_SPACING_OE
            k_lo = np.floor(np.maximum(h_lo, 0.0) / dh).astype(int) - 1
            width = int(np.max(np.floor(h_hi / dh).astype(int) + 2 - k_lo)) + 1
            nodes = k_lo[:, None] + np.arange(width)
            table = NA_MU_B_EMU_PER_MOL * sum(n * ion.node_moments_muB(t, nodes) for n, ion in models)
            m0 = lambda heff: interpolate_node_table(  # noqa: E731
                table, k_lo, np.clip(heff, np.maximum(h_lo, 0.0), h_hi), dh)
        g = lambda x: x - m0(h + lam * x)  # noqa: E731
        g_lo, g_hi = g(lo), g(hi)
        # start from the linear-response guess x = M0 / (1 - lam M0 / H)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(h > 0, m_h / (1.0 - lam * m_h / np.where(h > 0, h, 1.0)), 0.0)
        x = np.clip(np.nan_to_num(x), lo, hi)
        x_prev, g_prev = lo.copy(), g_lo.copy()
        scale = np.maximum(np.abs(m_h), 1e-12)
        for _ in range(max_iter):
            gx = g(x)
            pos = gx > 0
            hi, g_hi = np.where(pos, x, hi), np.where(pos, gx, g_hi)
            lo, g_lo = np.where(pos, lo, x), np.where(pos, g_lo, gx)
            if np.all((np.abs(gx) <= tol * scale) | (hi - lo <= tol * scale)):
                return x
            with np.errstate(divide="ignore", invalid="ignore"):
                x_new = x - gx * (x - x_prev) / (gx - g_prev)
            bad = ~np.isfinite(x_new) | (x_new <= lo) | (x_new >= hi)
            x_new = np.where(bad, 0.5 * (lo + hi), x_new)
            x_prev, g_prev, x = x, gx, x_new
        warnings.warn(f"{self.name}: mean-field solve did not converge in {max_iter} steps",
                      RuntimeWarning, stacklevel=3)
        return x

    def molar_magnetization_emu_per_mol(self, T_K, H_Oe) -> np.ndarray:
        """Total molar magnetisation per formula unit, emu/mol: paramagnetic (crystal field +
        mean field) + (diamagnetic + TIP) x H. Broadcasts T_K (K) and H_Oe (Oe)."""
        H = np.asarray(H_Oe, dtype=float)
        para = self.paramagnetic_emu_per_mol(T_K, H)
        return para + (self.diamagnetic_emu_per_mol_Oe + self.tip_emu_per_mol_Oe) * H

    def moment_emu(self, T_K, H_Oe, mass_mg) -> np.ndarray:
        """Sample moment in emu for a sample of mass_mg milligrams."""
        mass_g = np.asarray(mass_mg, dtype=float) * 1e-3
        if np.any(mass_g <= 0):
            raise ValueError(f"mass_mg must be > 0, got {mass_mg!r}")
        return self.molar_magnetization_emu_per_mol(T_K, H_Oe) * mass_g / self.molar_mass_g_per_mol

    def measure_vsm(self, T_K, H_Oe, mass_mg, rng: np.random.Generator):
        """One MPMS3 VSM reading: (moment_emu, std_err_emu).

        std err = sqrt(floor^2 + (rel * |m|)^2) with floor 5e-9 emu and rel 3e-4; the
        returned moment is drawn from N(true moment, std err) with ``rng``.
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        m = self.moment_emu(T_K, H_Oe, mass_mg)
        err = np.hypot(VSM_NOISE_FLOOR_EMU, VSM_NOISE_RELATIVE * np.abs(m))
        meas = m + err * rng.standard_normal(np.shape(m))
        if np.ndim(meas) == 0:
            return float(meas), float(err)
        return meas, err
