"""Free-ion (Russell–Saunders ground multiplet) values for trivalent lanthanides.

χT (emu K mol⁻¹, cgs) = g_J² J(J+1) · C with C = N_A μ_B² / (3 k_B) = 0.12505 emu K mol⁻¹.
The papers this project serves (and most of the literature) write ``g_J² J(J+1)/8``, i.e.
C = 0.125; the difference is 0.04 %. spinlight uses the exact constant by default
(:data:`CURIE_CONSTANT_EXACT`); pass ``constant=CURIE_CONSTANT_PAPER`` to reproduce the "/8"
numbers.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Mapping

from . import _validate as check

# CODATA 2018 (exact SI definitions except μ_B), cgs units.
_N_A = 6.02214076e23            # mol⁻¹
_MU_B_ERG_PER_G = 9.2740100783e-21  # erg G⁻¹ (emu)
_K_B_ERG_PER_K = 1.380649e-16   # erg K⁻¹

#: N_A μ_B² / (3 k_B) in emu K mol⁻¹ = 0.125049...
CURIE_CONSTANT_EXACT = _N_A * _MU_B_ERG_PER_G ** 2 / (3 * _K_B_ERG_PER_K)
#: The literature's rounded constant ("χT = g_J² J(J+1)/8").
CURIE_CONSTANT_PAPER = 0.125


@dataclass(frozen=True)
class GroundTerm:
    """Hund's-rule ground multiplet ^{2S+1}L_J of an Ln(III) ion."""

    ion: str
    n_f: int
    L: int
    S: float
    J: float
    term: str


LN3_GROUND_TERMS: dict[str, GroundTerm] = {t.ion: t for t in (
    GroundTerm("Ce", 1, 3, 0.5, 2.5, "2F5/2"),
    GroundTerm("Pr", 2, 5, 1.0, 4.0, "3H4"),
    GroundTerm("Nd", 3, 6, 1.5, 4.5, "4I9/2"),
    GroundTerm("Pm", 4, 6, 2.0, 4.0, "5I4"),
    GroundTerm("Sm", 5, 5, 2.5, 2.5, "6H5/2"),
    GroundTerm("Eu", 6, 3, 3.0, 0.0, "7F0"),
    GroundTerm("Gd", 7, 0, 3.5, 3.5, "8S7/2"),
    GroundTerm("Tb", 8, 3, 3.0, 6.0, "7F6"),
    GroundTerm("Dy", 9, 5, 2.5, 7.5, "6H15/2"),
    GroundTerm("Ho", 10, 6, 2.0, 8.0, "5I8"),
    GroundTerm("Er", 11, 6, 1.5, 7.5, "4I15/2"),
    GroundTerm("Tm", 12, 5, 1.0, 6.0, "3H6"),
    GroundTerm("Yb", 13, 3, 0.5, 3.5, "2F7/2"),
)}


def ground_term(ion: str) -> GroundTerm:
    """Ground term of ``ion`` ("Dy", "Dy3+", "Dy(III)" and case variants are accepted)."""
    key = str(ion).strip().replace("(III)", "").replace("3+", "").replace("+3", "")
    key = key[:1].upper() + key[1:].lower()
    try:
        return LN3_GROUND_TERMS[key]
    except KeyError:
        raise ValueError(f"ion={ion!r} is unknown; allowed: one of "
                         f"{', '.join(LN3_GROUND_TERMS)}") from None


def lande_g(L: float, S: float, J: float) -> float:
    """Landé factor g_J = 1 + [J(J+1) + S(S+1) − L(L+1)] / [2J(J+1)] (J > 0)."""
    if J <= 0:
        raise ValueError(f"J={J!r} is out of range; allowed range: J > 0 "
                         "(g_J is undefined at J = 0)")
    jj = J * (J + 1)
    return 1.0 + (jj + S * (S + 1) - L * (L + 1)) / (2.0 * jj)


def _ion_g_j(ion: str) -> tuple[float, float]:
    t = ground_term(ion)
    return (lande_g(t.L, t.S, t.J) if t.J > 0 else 0.0), t.J


def free_ion_chi_t(ion: str, *, constant: float = CURIE_CONSTANT_EXACT) -> float:
    """Free-ion χT of one Ln(III) ion, emu K mol⁻¹: g_J² J(J+1) · constant (0 for Eu, J = 0)."""
    g, j = _ion_g_j(ion)
    return g * g * j * (j + 1) * check.positive("constant", constant)


def _composition(composition: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(composition, Mapping) or not composition:
        raise ValueError(f"composition={composition!r} is invalid; allowed: a non-empty dict "
                         "ion -> number of ions per formula unit, e.g. {'Nd': 1.32, 'Yb': 1.68}")
    out = {}
    for ion, n in composition.items():
        ground_term(ion)
        if not (isinstance(n, numbers.Real) and math.isfinite(n) and n >= 0):
            raise ValueError(f"composition[{ion!r}]={n!r} is out of range; allowed range: >= 0")
        out[ion] = float(n)
    return out


def free_ion_chi_t_sum(composition: Mapping[str, float], *,
                       constant: float = CURIE_CONSTANT_EXACT) -> float:
    """Σ n_i · χT_i over a composition per formula unit, e.g. ``{"Nd": 1.32, "Yb": 1.68}``."""
    return sum(n * free_ion_chi_t(ion, constant=constant)
               for ion, n in _composition(composition).items())


def saturation_moment_muB(ion: str) -> float:
    """Free-ion saturation moment g_J·J in μ_B (upper bound of powder M at high field)."""
    g, j = _ion_g_j(ion)
    return g * j


def saturation_moment_sum_muB(composition: Mapping[str, float]) -> float:
    """Σ n_i g_J J over a composition, μ_B per formula unit."""
    return sum(n * saturation_moment_muB(ion) for ion, n in _composition(composition).items())


def entropy_ceiling_R(n_spins: float, spin: float) -> float:
    """Magnetic entropy ceiling n·ln(2S+1), in units of R."""
    n = check.positive("n_spins", n_spins)
    s = check.positive("spin", spin)
    return n * math.log(2 * s + 1)


def low_temperature_entropy_ceiling_R(composition: Mapping[str, float]) -> float:
    """Ceiling of −ΔS_m in the 2–20 K range, in units of R, per formula unit.

    Gd(III) (L = 0, no crystal-field splitting) contributes ln 8 (S = 7/2); every other Ln(III)
    contributes ln 2, the entropy of its isolated ground (pseudo-)doublet (S_eff = 1/2). This is
    the convention of the papers: 3R ln 2 for Ln3 of Nd/Yb, 6R ln 8 for Gd6.
    """
    return sum(n * math.log(8.0 if ground_term(ion).L == 0 else 2.0)
               for ion, n in _composition(composition).items())
