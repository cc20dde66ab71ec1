"""Relaxation rate tau^-1(T, H) of one magnetic relaxation process (QTM, direct, Raman, Orbach).

    tau^-1 = B1 / (1 + B2 H^2)                QTM, field-suppressed (Brons-Van Vleck-like form)
           + D1 H^4 T + D2 (H^2 + H_int^2) T  direct process (without / with hyperfine mixing)
           + C T^n                            Raman
           + tau0^-1 exp(-U / T)              Orbach
           + G_zf exp(-(H / H_zf)^2)          zero-field tunnelling channel

Units: H in **tesla inside the formula** (the methods take H_Oe, 1 T = 1e4 Oe), T in K, U in K
(U/k_B), rates in s^-1; B1 s^-1, B2 T^-2, D1 s^-1 K^-1 T^-4, D2 s^-1 K^-1 T^-2, C s^-1 K^-n.

The first four lines are the published model (reference/science.md, Table of B1 ... U). Two
documented additions, both zero by default so the plain model is recovered:

* ``direct_internal_field_T`` (H_int): the direct process sees the external field plus a
  field-independent internal (Ln-Ln dipolar/exchange) contribution, D2 (H^2 + H_int^2) T. At
  fixed T this only adds a constant, so a tau^-1(H) fit (with a free constant) still returns D2;
  at fixed H the linear-in-T coefficient becomes D2_eff = D2 (1 + H_int^2 / H^2). This is how
  the mCB-Nd preset gives both published D2 values (14 100 from the field scan at 2 K,
  102 400 from the temperature scan at 0.12 T).
* ``zero_field_rate_per_s`` / ``zero_field_width_Oe`` (G_zf, H_zf): resonant tunnelling between
  the two halves of a Kramers doublet needs the external field to lie inside the distribution
  of internal (dipolar + hyperfine) fields, modelled as a Gaussian of width H_zf. With
  G_zf = 1e8 s^-1 and H_zf = 80 Oe (the mCB presets) it makes tau(H = 0) ~ 1e-8 s (no chi''
  at zero field, as measured), is still > 1e5 s^-1 at 200 Oe and < 1e-8 s^-1 for
  |H| >= 0.05 T, far below 2 % of any preset's rate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["RelaxationRates", "OE_PER_T"]

OE_PER_T = 1e4


def _describe(value) -> str:
    a = np.asarray(value)
    return repr(value) if a.ndim == 0 else f"array(shape={a.shape})"


def checked_array(name: str, value, *, low: float = -math.inf, high: float = math.inf,
                  low_open: bool = False, unit: str = "") -> np.ndarray:
    """Float array of ``value``; raise ValueError naming the parameter, the first bad value and
    the allowed range unless every element is finite and inside [low, high] ((low, high] when
    ``low_open``)."""
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={_describe(value)} is not numeric; allowed range: "
                         f"{'(' if low_open else '['}{low}, {high}] {unit}".rstrip()) from None
    bad = ~np.isfinite(a) | (a > high) | ((a <= low) if low_open else (a < low))
    if bad.any():
        v = float(a[np.unravel_index(int(np.flatnonzero(bad)[0]), a.shape)]) if a.ndim else float(a)
        rng = f"{'(' if low_open else '['}{low}, {high}]"
        if math.isinf(low) and math.isinf(high):
            rng = "finite"
        raise ValueError(f"{name}={v!r} {unit} is outside the allowed range {rng} {unit} "
                         f"({int(bad.sum())} bad value(s))".replace("  ", " "))
    return a


def checked_T_H(T_K, H_Oe) -> tuple[np.ndarray, np.ndarray]:
    """Validated (T_K > 0, finite H_Oe) float arrays, not broadcast."""
    return (checked_array("T_K", T_K, low=0.0, low_open=True, unit="K"),
            checked_array("H_Oe", H_Oe, unit="Oe"))


@dataclass(frozen=True)
class RelaxationRates:
    """tau^-1(T, H) of one process; see the module docstring for the formula and units.

    ``tau0_s = inf`` switches the Orbach term off. All coefficients must be >= 0.
    """

    B1: float = 0.0          # s^-1
    B2: float = 0.0          # T^-2
    D1: float = 0.0          # s^-1 K^-1 T^-4
    D2: float = 0.0          # s^-1 K^-1 T^-2
    C: float = 0.0           # s^-1 K^-n
    n: float = 0.0           # Raman exponent
    tau0_s: float = math.inf  # Orbach attempt time, s
    U_K: float = 0.0         # Orbach barrier U/k_B, K
    direct_internal_field_T: float = 0.0
    zero_field_rate_per_s: float = 0.0
    zero_field_width_Oe: float = 100.0

    def __post_init__(self):
        for key, v in asdict(self).items():
            if key == "tau0_s":
                if v != math.inf:  # inf = no Orbach term
                    checked_array(key, v, low=0.0, low_open=True, unit="s")
            elif key == "zero_field_width_Oe":
                checked_array(key, v, low=0.0, low_open=True, unit="Oe")
            else:
                checked_array(key, v, low=0.0)

    def terms_per_s(self, T_K, H_Oe) -> dict[str, np.ndarray]:
        """Each mechanism's rate (s^-1), broadcast over T_K and H_Oe: keys qtm, direct, raman,
        orbach, zero_field."""
        T, H = checked_T_H(T_K, H_Oe)
        T, H = np.broadcast_arrays(T, H)
        h2 = (H / OE_PER_T) ** 2
        orbach = (np.exp(-self.U_K / T) / self.tau0_s if math.isfinite(self.tau0_s)
                  else np.zeros_like(T))
        return {
            "qtm": self.B1 / (1.0 + self.B2 * h2),
            "direct": (self.D1 * h2**2 + self.D2 * (h2 + self.direct_internal_field_T**2)) * T,
            "raman": self.C * T**self.n,
            "orbach": orbach,
            "zero_field": self.zero_field_rate_per_s * np.exp(-(H / self.zero_field_width_Oe) ** 2),
        }

    def rate_per_s(self, T_K, H_Oe) -> np.ndarray:
        """Total relaxation rate tau^-1 in s^-1 (broadcasts T_K in K and H_Oe in Oe)."""
        return sum(self.terms_per_s(T_K, H_Oe).values())

    def tau_s(self, T_K, H_Oe) -> np.ndarray:
        """Relaxation time tau = 1 / rate in s (inf where every term vanishes)."""
        with np.errstate(divide="ignore"):
            return 1.0 / self.rate_per_s(T_K, H_Oe)
