"""Generalised-Debye ac susceptibility of a MagneticSample with one or more relaxation processes.

    chi(omega) = chi_S + sum_k dchi_k / (1 + (i omega tau_k)^(1 - alpha_k)),  omega = 2 pi f,
    chi' = Re chi,  chi'' = -Im chi >= 0,   chi_S + sum_k dchi_k = chi_T.

Units: emu mol^-1 Oe^-1 per formula unit (multiply by mass/molar mass for emu/Oe), T in K,
H in Oe, f in Hz, tau in s.

Documented modelling choices
----------------------------
* chi_T is the isothermal dM/dH of the dc model at that (T, H): a central difference
  (+/- ``derivative_step_Oe`` = 10 Oe, truncation error ~1e-7) of
  ``sample.molar_magnetization_emu_per_mol``, mean field and diamagnetism included, so the
  f -> 0 limit is the slope of the M(H) that the VSM simulator measures. chi_T is even in H and
  cached per (T, |H|): a 30-frequency spectrum costs one evaluation, and the dc model is
  called once for all new (T, H) pairs of a grid.
* Instantaneous part chi_inst = diamagnetic + TIP (from the sample) never relaxes. The
  paramagnetic remainder chi_p = chi_T - chi_inst splits into an adiabatic part s(H) chi_p and
  the relaxing part (1 - s(H)) chi_p, with a Casimir-du Pre-like crossover in field
      s(H) = s_inf + (s_0 - s_inf) H_s^2 / (H_s^2 + H^2).
  Field-induced SMMs use s_0 = 1 (at zero field spin-spin processes keep the spins in
  equilibrium with the drive: no out-of-phase signal) and s_inf ~ 0.1; zero-field SMMs use
  s_0 = s_inf (constant fraction). chi_S = chi_inst + s(H) chi_p.
* The relaxing part is shared between processes in proportion to weights
  w_k(H) = weight_k (field independent) or weight_k H^2 / (H^2 + H_w,k^2) (a process that only
  exists in field, e.g. a phonon-bottlenecked direct process); dchi_k >= 0 sums to it.
* Distribution width alpha_k(T) = alpha_hi + (alpha_lo - alpha_hi) / (1 + (T / T_alpha)^2):
  broad at low T (QTM/inhomogeneous internal fields dominate), narrowing towards alpha_hi
  where a single activated process takes over; field independent.
* chi'' >= 0 always; chi' >= 0 wherever the paramagnetic dM/dH exceeds |chi_dia|, which holds
  for all presets at 1.8-300 K and |H| <= 7 T (Van Vleck terms keep dM/dH positive).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .relaxation_rates import RelaxationRates, checked_array, checked_T_H
from .sample import MagneticSample

__all__ = ["AcModel", "RelaxationProcess", "generalized_debye"]


def generalized_debye(omega_tau, alpha) -> tuple[np.ndarray, np.ndarray]:
    """Normalised GD response (Re, -Im) of 1 / (1 + (i omega tau)^(1 - alpha)), both in [0, 1].

    Written so that neither omega tau -> 0 nor -> inf overflows: with
    x = (omega tau)^(1 - alpha), phi = pi (1 - alpha) / 2 and y = min(x, 1/x),
    D = 1 + 2 y cos(phi) + y^2, Re = (1 + y cos)/D for x <= 1 and (y^2 + y cos)/D for x > 1,
    -Im = y sin(phi)/D in both cases.
    """
    beta = 1.0 - np.asarray(alpha, dtype=float)
    with np.errstate(divide="ignore"):
        u = beta * np.log(omega_tau)  # ln x; +inf when tau = inf
    y = np.exp(-np.abs(u))
    c, s = np.cos(0.5 * np.pi * beta), np.sin(0.5 * np.pi * beta)
    d = 1.0 + 2.0 * y * c + y * y
    re = np.where(u <= 0, 1.0 + y * c, y * y + y * c) / d
    return re, y * s / d


@dataclass(frozen=True)
class RelaxationProcess:
    """One relaxation process: its rate model, its share of the relaxing susceptibility and its
    alpha(T) (see the module docstring for the weight and alpha formulas)."""

    label: str
    rates: RelaxationRates
    weight: float = 1.0
    weight_field_Oe: float = 0.0   # H_w; 0 = field-independent weight
    alpha_low_T: float = 0.0
    alpha_high_T: float = 0.0
    alpha_crossover_K: float = 2.0

    def __post_init__(self):
        if not isinstance(self.rates, RelaxationRates):
            raise TypeError(f"rates must be a RelaxationRates, got {type(self.rates).__name__}")
        checked_array("weight", self.weight, low=0.0)
        checked_array("weight_field_Oe", self.weight_field_Oe, low=0.0, unit="Oe")
        checked_array("alpha_low_T", self.alpha_low_T, low=0.0, high=0.95)
        checked_array("alpha_high_T", self.alpha_high_T, low=0.0, high=0.95)
        checked_array("alpha_crossover_K", self.alpha_crossover_K, low=0.0, low_open=True, unit="K")

    def alpha(self, T: np.ndarray) -> np.ndarray:
        """alpha(T) in [0, 0.95] for T in K (already validated)."""
        lo, hi = self.alpha_low_T, self.alpha_high_T
        return hi + (lo - hi) / (1.0 + (T / self.alpha_crossover_K) ** 2)

    def raw_weight(self, H: np.ndarray) -> np.ndarray:
        """Un-normalised weight w_k(H) for H in Oe (already validated)."""
        if self.weight_field_Oe == 0.0:
            return np.full(np.shape(H), float(self.weight))
        h2 = np.asarray(H, dtype=float) ** 2
        return self.weight * h2 / (h2 + self.weight_field_Oe**2)


@dataclass(eq=False)
class AcModel:
    """ac response of ``sample``: chi_molar(T, H, f) -> (chi', chi'') in emu mol^-1 Oe^-1 per
    formula unit. ``published`` holds science.md reference values (for checks only)."""

    name: str
    sample: MagneticSample
    processes: tuple[RelaxationProcess, ...]
    adiabatic_fraction_zero_field: float = 1.0   # s_0
    adiabatic_fraction_high_field: float = 0.1   # s_inf
    adiabatic_field_Oe: float = 500.0            # H_s
    derivative_step_Oe: float = 10.0
    cache_size: int = 65536
    published: dict[str, float] = field(default_factory=dict)
    notes: str = ""
    _cache: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.sample, MagneticSample):
            raise TypeError(f"sample must be a MagneticSample, got {type(self.sample).__name__}")
        self.processes = tuple(self.processes)
        if not self.processes or not all(isinstance(p, RelaxationProcess) for p in self.processes):
            raise ValueError("processes must be a non-empty tuple of RelaxationProcess, "
                             f"got {self.processes!r}")
        labels = [p.label for p in self.processes]
        if len(set(labels)) != len(labels):
            raise ValueError(f"process labels must be unique, got {labels}")
        if not any(p.weight > 0 and p.weight_field_Oe == 0 for p in self.processes):
            raise ValueError("at least one process needs a field-independent weight > 0 "
                             "(weight_field_Oe=0), so the weights can be normalised at H = 0")
        checked_array("adiabatic_fraction_zero_field", self.adiabatic_fraction_zero_field, low=0, high=1)
        checked_array("adiabatic_fraction_high_field", self.adiabatic_fraction_high_field, low=0, high=1)
        checked_array("adiabatic_field_Oe", self.adiabatic_field_Oe, low=0.0, unit="Oe")
        checked_array("derivative_step_Oe", self.derivative_step_Oe, low=0.0, low_open=True,
                      high=1000.0, unit="Oe")

    @property
    def molar_mass_g_per_mol(self) -> float:
        return self.sample.molar_mass_g_per_mol

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(p.label for p in self.processes)

    # ------------------------------------------------------------ static susceptibilities
    def _chi_T_pairs(self, t: np.ndarray, h: np.ndarray) -> np.ndarray:
        """chi_T for 1-D arrays t (K) and h = |H| (Oe): cache first, one dc call for the rest."""
        keys = list(zip(t.tolist(), h.tolist()))
        with self._lock:
            got = [self._cache.get(k) for k in keys]
        missing = sorted({k for k, v in zip(keys, got) if v is None})
        if missing:
            mt, mh = np.array(missing).T
            d = self.derivative_step_Oe
            m = self.sample.molar_magnetization_emu_per_mol(np.r_[mt, mt], np.r_[mh + d, mh - d])
            vals = (m[: len(mt)] - m[len(mt):]) / (2.0 * d)
            new = dict(zip(missing, vals.tolist()))
            with self._lock:
                self._cache.update(new)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            got = [new[k] if v is None else v for k, v in zip(keys, got)]
        return np.array(got, dtype=float)

    def _chi_T_arrays(self, T: np.ndarray, H: np.ndarray) -> np.ndarray:
        """chi_T for validated, broadcast T, H of any shape (unique (T, |H|) pairs only)."""
        T, H = np.broadcast_arrays(T, H)
        pairs = np.stack([T.ravel(), np.abs(H.ravel())], axis=1)
        uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
        return self._chi_T_pairs(uniq[:, 0], uniq[:, 1])[inv.ravel()].reshape(T.shape)

    def _adiabatic_fraction(self, H: np.ndarray) -> np.ndarray:
        s0, s_inf, hs = (self.adiabatic_fraction_zero_field, self.adiabatic_fraction_high_field,
                         self.adiabatic_field_Oe)
        if hs == 0.0:
            return np.full(np.shape(H), float(s_inf))
        return s_inf + (s0 - s_inf) * hs**2 / (hs**2 + H**2)

    def _static(self, T: np.ndarray, H: np.ndarray):
        """(chi_T, chi_S, dchi (..., n)) for validated, broadcast T and H."""
        chi_t = self._chi_T_arrays(T, H)
        inst = self.sample.diamagnetic_emu_per_mol_Oe + self.sample.tip_emu_per_mol_Oe
        s = self._adiabatic_fraction(H)
        relaxing = (1.0 - s) * (chi_t - inst)
        w = np.stack([p.raw_weight(H) for p in self.processes], axis=-1)
        dchi = relaxing[..., None] * w / w.sum(-1, keepdims=True)
        return chi_t, chi_t - relaxing, dchi

    def _TH(self, T_K, H_Oe) -> tuple[np.ndarray, np.ndarray]:
        return np.broadcast_arrays(*checked_T_H(T_K, H_Oe))

    def chi_T(self, T_K, H_Oe) -> np.ndarray:
        """Isothermal susceptibility dM/dH, emu mol^-1 Oe^-1 per f.u. (broadcasts)."""
        return self._chi_T_arrays(*self._TH(T_K, H_Oe))

    def chi_S(self, T_K, H_Oe) -> np.ndarray:
        """Adiabatic (f -> inf) susceptibility, emu mol^-1 Oe^-1 per f.u. (broadcasts)."""
        return self._static(*self._TH(T_K, H_Oe))[1]

    def delta_chi(self, T_K, H_Oe) -> np.ndarray:
        """Relaxing susceptibility of each process, shape (..., n_processes), emu mol^-1 Oe^-1."""
        return self._static(*self._TH(T_K, H_Oe))[2]

    # ------------------------------------------------------------ dynamics
    def _tau_alpha(self, T: np.ndarray, H: np.ndarray):
        tau = np.stack([p.rates.tau_s(T, H) for p in self.processes], axis=-1)
        alpha = np.stack([p.alpha(T) for p in self.processes], axis=-1)
        return tau, alpha

    def tau_s(self, T_K, H_Oe) -> np.ndarray:
        """Relaxation times in s, shape (..., n_processes) in the order of ``processes``."""
        return self._tau_alpha(*self._TH(T_K, H_Oe))[0]

    def alpha(self, T_K, H_Oe) -> np.ndarray:
        """GD distribution parameters alpha, shape (..., n_processes)."""
        return self._tau_alpha(*self._TH(T_K, H_Oe))[1]

    def chi_molar(self, T_K, H_Oe, f_Hz) -> tuple[np.ndarray, np.ndarray]:
        """(chi', chi'') in emu mol^-1 Oe^-1 per f.u., broadcast over T_K (K), H_Oe (Oe) and
        f_Hz (Hz). The static part is computed on broadcast(T, H) only, so T and H of shape
        (N, 1) with f of shape (M,) cost N chi_T evaluations, not N x M."""
        T, H = self._TH(T_K, H_Oe)
        f = checked_array("f_Hz", f_Hz, low=0.0, low_open=True, unit="Hz")
        shape = np.broadcast_shapes(T.shape, f.shape)
        _, chi_s, dchi = self._static(T, H)
        tau, alpha = self._tau_alpha(T, H)
        omega = 2.0 * math.pi * f[..., None]
        re, im = generalized_debye(omega * tau, alpha)
        chi_p = np.broadcast_to(chi_s + (dchi * re).sum(-1), shape)
        chi_pp = np.broadcast_to((dchi * im).sum(-1), shape)
        return np.array(chi_p), np.array(chi_pp)
