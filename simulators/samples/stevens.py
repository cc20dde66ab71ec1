"""Angular-momentum matrices, Stevens operator equivalents and Stevens factors.

Conventions
-----------
* Basis |J, m>, ordered m = J, J-1, ..., -J (row/column 0 is m = +J).
* Stevens operator equivalents O_k^q in the normalisation of Hutchings (1964) /
  Abragam & Bleaney (1970), Table 16, extended to all q by Rudowicz (1985):

      O_k^0        polynomial in Jz (listed below),
      O_k^q  (q>0) = 1/4 {f_kq(Jz), J+^q + J-^q}       (cosine type),
      O_k^-q (q>0) = 1/(4i) {f_kq(Jz), J+^q - J-^q}    (sine type),

  with {A, B} = AB + BA and X = J(J+1). For example O_2^2 = (J+^2 + J-^2)/2 and
  O_4^3 = {Jz, J+^3 + J-^3}/4.
* Stevens factors alpha_J, beta_J, gamma_J (theta_2, theta_4, theta_6) for the
  Hund's-rule ground multiplet of the trivalent ions, as tabulated by Stevens (1952)
  and Hutchings (1964). A crystal-field Hamiltonian is H = sum B_k^q O_k^q with
  B_k^q = theta_k A_k^q <r^k>.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np

__all__ = [
    "spin_matrices",
    "stevens_operator",
    "STEVENS_FACTORS",
    "stevens_factor",
    "FREE_ION_TERMS",
    "lande_g",
]


def _check_j(J: float) -> float:
    twoJ = 2.0 * J
    if J < 0 or abs(twoJ - round(twoJ)) > 1e-9:
        raise ValueError(f"J must be a non-negative integer or half-integer, got {J!r}")
    return round(twoJ) / 2.0


@lru_cache(maxsize=64)
def _spin_matrices_cached(twoJ: int):
    J = twoJ / 2.0
    m = J - np.arange(twoJ + 1)  # J, J-1, ..., -J
    jz = np.diag(m).astype(complex)
    # <m+1|J+|m> = sqrt(J(J+1) - m(m+1)); J+ raises m, i.e. moves one row up.
    jp = np.zeros((twoJ + 1, twoJ + 1), dtype=complex)
    for col in range(1, twoJ + 1):
        mm = m[col]
        jp[col - 1, col] = np.sqrt(J * (J + 1) - mm * (mm + 1))
    jm = jp.conj().T
    jx = 0.5 * (jp + jm)
    jy = -0.5j * (jp - jm)
    for a in (jz, jp, jm, jx, jy):
        a.setflags(write=False)
    return jz, jp, jm, jx, jy


def spin_matrices(J: float) -> dict[str, np.ndarray]:
    """Return {"Jz", "J+", "J-", "Jx", "Jy"} as (2J+1)x(2J+1) complex read-only arrays."""
    jz, jp, jm, jx, jy = _spin_matrices_cached(round(2 * _check_j(J)))
    return {"Jz": jz, "J+": jp, "J-": jm, "Jx": jx, "Jy": jy}


def _poly_jz(coeffs: list[float], jz_diag: np.ndarray) -> np.ndarray:
    """Diagonal matrix sum_n c_n Jz^n (coeffs lowest power first)."""
    return np.diag(sum(c * jz_diag**n for n, c in enumerate(coeffs))).astype(complex)


def _f_kq(k: int, q: int, X: float) -> list[float]:
    """Coefficients (lowest power first) of the Jz polynomial f_kq for q >= 1."""
    table = {
        (2, 1): [0, 1],
        (2, 2): [1],
        (4, 1): [0, -(3 * X + 1), 0, 7],
        (4, 2): [-X - 5, 0, 7],
        (4, 3): [0, 1],
        (4, 4): [1],
        (6, 1): [0, 5 * X**2 - 10 * X + 12, 0, -(30 * X - 15), 0, 33],
        (6, 2): [X**2 + 10 * X + 102, 0, -(18 * X + 123), 0, 33],
        (6, 3): [0, -(3 * X + 59), 0, 11],
        (6, 4): [-X - 38, 0, 11],
        (6, 5): [0, 1],
        (6, 6): [1],
    }
    return table[(k, q)]


def _f_k0(k: int, X: float) -> list[float]:
    table = {
        2: [-X, 0, 3],
        4: [3 * X**2 - 6 * X, 0, -(30 * X - 25), 0, 35],
        6: [-5 * X**3 + 40 * X**2 - 60 * X, 0, 105 * X**2 - 525 * X + 294, 0,
            -(315 * X - 735), 0, 231],
    }
    return table[k]


@lru_cache(maxsize=512)
def _stevens_cached(twoJ: int, k: int, q: int) -> np.ndarray:
    J = twoJ / 2.0
    X = J * (J + 1)
    jz, jp, jm, _, _ = _spin_matrices_cached(twoJ)
    jz_diag = np.real(np.diag(jz))
    if q == 0:
        op = _poly_jz(_f_k0(k, X), jz_diag)
    else:
        aq = abs(q)
        f = _poly_jz(_f_kq(k, aq, X), jz_diag)
        jpq = np.linalg.matrix_power(jp, aq)
        jmq = np.linalg.matrix_power(jm, aq)
        if q > 0:
            t = jpq + jmq
            op = 0.25 * (f @ t + t @ f)
        else:
            t = jpq - jmq
            op = (f @ t + t @ f) / 1j * 0.25
    op.setflags(write=False)
    return op


def stevens_operator(k: int, q: int, J: float) -> np.ndarray:
    """Stevens operator equivalent O_k^q for angular momentum J (k = 2, 4, 6; |q| <= k).

    Returned as a read-only Hermitian (2J+1)x(2J+1) complex matrix (dimensionless).
    """
    if k not in (2, 4, 6) or not (-k <= q <= k):
        raise ValueError(f"Stevens operator O_k^q needs k in (2, 4, 6) and |q| <= k, got k={k}, q={q}")
    return _stevens_cached(round(2 * _check_j(J)), k, q)


# (L, S, J) of the Hund's-rule ground multiplet of Ln(III), 4f^1 (Ce) ... 4f^13 (Yb).
FREE_ION_TERMS: dict[str, tuple[int, Fraction, Fraction]] = {
    "Ce": (3, Fraction(1, 2), Fraction(5, 2)),
    "Pr": (5, Fraction(1), Fraction(4)),
    "Nd": (6, Fraction(3, 2), Fraction(9, 2)),
    "Pm": (6, Fraction(2), Fraction(4)),
    "Sm": (5, Fraction(5, 2), Fraction(5, 2)),
    "Eu": (3, Fraction(3), Fraction(0)),
    "Gd": (0, Fraction(7, 2), Fraction(7, 2)),
    "Tb": (3, Fraction(3), Fraction(6)),
    "Dy": (5, Fraction(5, 2), Fraction(15, 2)),
    "Ho": (6, Fraction(2), Fraction(8)),
    "Er": (6, Fraction(3, 2), Fraction(15, 2)),
    "Tm": (5, Fraction(1), Fraction(6)),
    "Yb": (3, Fraction(1, 2), Fraction(7, 2)),
}

F = Fraction
# (alpha_J, beta_J, gamma_J) for the ground multiplet (Stevens 1952; Hutchings 1964, Table VI).
STEVENS_FACTORS: dict[str, tuple[Fraction, Fraction, Fraction]] = {
    "Ce": (F(-2, 35), F(2, 315), F(0)),
    "Pr": (F(-52, 2475), F(-4, 5445), F(272, 4459455)),
    "Nd": (F(-7, 1089), F(-136, 467181), F(-1615, 42513471)),
    "Pm": (F(14, 1815), F(952, 2335905), F(2584, 3864861)),
    "Sm": (F(13, 315), F(26, 10395), F(0)),
    "Eu": (F(0), F(0), F(0)),
    "Gd": (F(0), F(0), F(0)),
    "Tb": (F(-1, 99), F(2, 16335), F(-1, 891891)),
    "Dy": (F(-2, 315), F(-8, 135135), F(4, 3864861)),
    "Ho": (F(-1, 450), F(-1, 30030), F(-5, 3864861)),
    "Er": (F(4, 1575), F(2, 45045), F(8, 3864861)),
    "Tm": (F(1, 99), F(8, 49005), F(-5, 891891)),
    "Yb": (F(2, 63), F(-2, 1155), F(4, 27027)),
}
del F


def stevens_factor(element: str, k: int) -> float:
    """theta_k of the Ln(III) ground multiplet: alpha_J (k=2), beta_J (k=4), gamma_J (k=6)."""
    if element not in STEVENS_FACTORS:
        raise ValueError(f"element must be one of {sorted(STEVENS_FACTORS)}, got {element!r}")
    if k not in (2, 4, 6):
        raise ValueError(f"k must be 2, 4 or 6, got {k!r}")
    return float(STEVENS_FACTORS[element][k // 2 - 1])


def lande_g(L: float, S: float, J: float) -> float:
    """Lande factor g_J = 1 + [J(J+1) + S(S+1) - L(L+1)] / [2J(J+1)] (g_s = 2 approximation)."""
    if J == 0:
        raise ValueError("g_J is undefined for J = 0")
    return 1.0 + (J * (J + 1) + S * (S + 1) - L * (L + 1)) / (2.0 * J * (J + 1))
