"""cgs-emu unit handling for dc magnetometry.

Conventions (as the molecular-magnetism literature publishes):

* moment ``m`` in emu (as the magnetometer reports), field ``H`` in Oe;
* molar magnetisation ``M`` in emu mol⁻¹ *per formula unit*;
* molar susceptibility ``χ = M/H`` in emu mol⁻¹ Oe⁻¹ (≡ cm³ mol⁻¹);
* ``χT`` in emu K mol⁻¹ (≡ cm³ K mol⁻¹);
* ``M`` in Bohr magnetons per formula unit: ``M[emu/mol] / 5585`` (N_A·μ_B = 5584.9 emu/mol);
* fields for the magnetocaloric analysis in tesla (``B = μ0·H``, 1 T ↔ 10⁴ Oe in cgs);
* entropy: with ``M`` in emu g⁻¹ and ``B`` in T, ``∫(∂M/∂T) dB`` is directly in J kg⁻¹ K⁻¹;
  with ``M`` in emu mol⁻¹ it is 10³ × J mol⁻¹ K⁻¹ (1 emu·Oe = 1 erg = 10⁻⁷ J, 1 T = 10⁴ Oe).
"""

from __future__ import annotations

import numpy as np

from . import _validate as check

#: Gas constant R in J mol⁻¹ K⁻¹ (CODATA 2018, exact).
R_J_PER_MOL_K = 8.314462618
#: N_A·μ_B in emu mol⁻¹: converts emu/mol to μ_B per formula unit (the customary 5585).
EMU_PER_MOL_PER_MUB = 5585.0
#: Oe per tesla (cgs: B = μ0·H, so 1 T corresponds to 10⁴ Oe in vacuum).
OE_PER_TESLA = 1.0e4


def moles_of_formula_units(mass_mg: float, molar_mass_g_per_mol: float) -> float:
    """Amount of substance in mol of formula units for a sample of ``mass_mg`` milligrams."""
    mass = check.positive("mass_mg", mass_mg)
    mw = check.positive("molar_mass_g_per_mol", molar_mass_g_per_mol)
    return mass * 1e-3 / mw


def molar_magnetization(moment_emu, *, mass_mg: float, molar_mass_g_per_mol: float) -> np.ndarray:
    """Moment (emu) → molar magnetisation (emu mol⁻¹ per formula unit)."""
    n = moles_of_formula_units(mass_mg, molar_mass_g_per_mol)
    return np.asarray(moment_emu, dtype=float) / n


def mass_magnetization(moment_emu, *, mass_mg: float) -> np.ndarray:
    """Moment (emu) → mass magnetisation (emu g⁻¹)."""
    mass_g = check.positive("mass_mg", mass_mg) * 1e-3
    return np.asarray(moment_emu, dtype=float) / mass_g


def subtract_diamagnetic(m_emu_per_mol, h_oe, chi_dia_emu_per_mol_oe: float) -> np.ndarray:
    """Paramagnetic part of the molar magnetisation: ``M − χ_dia·H``.

    ``chi_dia_emu_per_mol_oe`` is the (usually negative) diamagnetic molar susceptibility of the
    sample and holder, in emu mol⁻¹ Oe⁻¹; for Pascal-constant estimates ≈ −0.5·MW·10⁻⁶.
    """
    chi_dia = check.finite("diamagnetic_emu_per_mol_Oe", chi_dia_emu_per_mol_oe)
    return np.asarray(m_emu_per_mol, dtype=float) - chi_dia * np.asarray(h_oe, dtype=float)


def susceptibility(m_emu_per_mol, h_oe) -> np.ndarray:
    """χ = M/H in emu mol⁻¹ Oe⁻¹ (cm³ mol⁻¹). Every field value must be non-zero."""
    h = check.array("H_Oe", h_oe, nonzero=True)
    return np.asarray(m_emu_per_mol, dtype=float) / h


def chi_t(chi_emu_per_mol_oe, t_k) -> np.ndarray:
    """χT in emu K mol⁻¹ (cm³ K mol⁻¹)."""
    return np.asarray(chi_emu_per_mol_oe, dtype=float) * np.asarray(t_k, dtype=float)


def bohr_magnetons_per_formula_unit(m_emu_per_mol) -> np.ndarray:
    """Molar magnetisation (emu mol⁻¹) → μ_B per formula unit (÷ 5585)."""
    return np.asarray(m_emu_per_mol, dtype=float) / EMU_PER_MOL_PER_MUB


def oe_to_tesla(h_oe) -> np.ndarray:
    """Field in Oe → B in T (1 T = 10⁴ Oe)."""
    return np.asarray(h_oe, dtype=float) / OE_PER_TESLA


def maxwell_integral_to_J_per_mol_K(integral_emu_per_mol_T_per_K) -> np.ndarray:
    """∫(∂M/∂T) dB with M in emu mol⁻¹ and B in T → entropy in J mol⁻¹ K⁻¹ (× 10⁻³)."""
    return np.asarray(integral_emu_per_mol_T_per_K, dtype=float) * 1e-3


def maxwell_integral_to_J_per_kg_K(integral_emu_per_g_T_per_K) -> np.ndarray:
    """∫(∂M/∂T) dB with M in emu g⁻¹ and B in T → entropy in J kg⁻¹ K⁻¹ (factor 1)."""
    return np.asarray(integral_emu_per_g_T_per_K, dtype=float) * 1.0


def entropy_J_per_mol_K_to_J_per_kg_K(s_J_per_mol_K, molar_mass_g_per_mol: float) -> np.ndarray:
    """Molar entropy (J mol⁻¹ K⁻¹) → specific entropy (J kg⁻¹ K⁻¹): × 1000 / MW."""
    mw = check.positive("molar_mass_g_per_mol", molar_mass_g_per_mol)
    return np.asarray(s_J_per_mol_K, dtype=float) * 1e3 / mw


def entropy_J_per_kg_K_to_J_per_mol_K(s_J_per_kg_K, molar_mass_g_per_mol: float) -> np.ndarray:
    """Specific entropy (J kg⁻¹ K⁻¹) → molar entropy (J mol⁻¹ K⁻¹): × MW / 1000."""
    mw = check.positive("molar_mass_g_per_mol", molar_mass_g_per_mol)
    return np.asarray(s_J_per_kg_K, dtype=float) * mw / 1e3


def entropy_in_units_of_R(s_J_per_mol_K) -> np.ndarray:
    """Molar entropy (J mol⁻¹ K⁻¹) → units of R."""
    return np.asarray(s_J_per_mol_K, dtype=float) / R_J_PER_MOL_K


def moment_to_chi_molar(moment_emu, h_oe, *, mass_mg: float, molar_mass_g_per_mol: float,
                        diamagnetic_emu_per_mol_oe: float = 0.0) -> np.ndarray:
    """The whole chain moment (emu) → paramagnetic molar χ (emu mol⁻¹ Oe⁻¹)."""
    m = molar_magnetization(moment_emu, mass_mg=mass_mg, molar_mass_g_per_mol=molar_mass_g_per_mol)
    return susceptibility(subtract_diamagnetic(m, h_oe, diamagnetic_emu_per_mol_oe), h_oe)


def moment_to_chi_mass(moment_emu, h_oe, *, mass_mg: float) -> np.ndarray:
    """Moment (emu) → mass susceptibility χ_g (emu g⁻¹ Oe⁻¹ ≡ cm³ g⁻¹), uncorrected."""
    return susceptibility(mass_magnetization(moment_emu, mass_mg=mass_mg), h_oe)
