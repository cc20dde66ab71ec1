"""ac-susceptibility relaxation models χ(ω) = χ' − iχ'' with analytic Jacobians.

Every model is a sum of Havriliak–Negami-type terms Δχ·g(ω) on a constant χS, with

    g(ω) = 1 / (1 + (iωτ)^(1−α))^γ,    ω = 2π·f (rad s⁻¹), τ in s,

parametrised in ln τ (well scaled: one e-fold of τ is one unit whatever the decade). Special
cases: Debye (α=0, γ=1), generalized Debye / Cole–Cole (γ=1), Cole–Davidson (α=0), and the sum
of two generalized Debye processes. χ values are in whatever unit the caller uses (emu Oe⁻¹,
cm³ mol⁻¹ ...); the models are linear in the χ parameters.

Derivatives (z = (iωτ)^(1−α), D = 1 + z, L = ln(iωτ) = ln(ωτ) + iπ/2):
∂g/∂lnτ = −γ(1−α)·z·g/D,  ∂g/∂α = γ·L·z·g/D,  ∂g/∂γ = −ln(D)·g.

Distribution of ln τ (the quantities ccfit2 reports, fitting.md §1.2–1.3; formulas of the HN
relaxation-time distribution, own implementation):

* σ_lnτ = sqrt((ψ₁(γ) + π²/6)/(1−α)² − π²/3): GD sqrt((1/(1−α)² − 1)·π²/3), CD sqrt(ψ₁(γ) − π²/6);
* ⟨ln τ⟩ = ln τ + (ψ(γ) + γ_E)/(1−α): equal to ln τ for Debye and GD, shorter for CD/HN;
* loss peak ω_p·τ = [sin((1−α)π/(2γ+2)) / sin((1−α)γπ/(2γ+2))]^(1/(1−α)) (= 1 for γ = 1).

:class:`AcCurve` is a fitted model as a curve: a dense grid for plotting that can also be called
at any frequency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import polygamma, psi

from .results import Curve, json_safe

EULER_GAMMA = 0.5772156649015329
HALF_PI_I = 0.5j * math.pi


def hn_term(omega, ln_tau: float, alpha: float = 0.0, gamma: float = 1.0, *,
            derivatives: bool = False):
    """g(ω) = (1 + (iωτ)^(1−α))^(−γ); with ``derivatives`` also (∂g/∂lnτ, ∂g/∂α, ∂g/∂γ)."""
    beta = 1.0 - alpha
    log_iwt = np.log(omega) + ln_tau + HALF_PI_I
    z = np.exp(beta * log_iwt)
    d = 1.0 + z
    g = 1.0 / d if gamma == 1.0 else np.exp(-gamma * np.log(d))
    if not derivatives:
        return g
    common = gamma * z * g / d
    return g, -beta * common, log_iwt * common, -np.log(d) * g


@dataclass(frozen=True)
class Process:
    """Where one relaxation process lives in a model's parameter vector.

    ``delta_chi`` lists (index, coefficient) pairs: Δχ = Σ coef·p[index] (χT − χS for the
    single-process models, Δχ_k for the double model). ``alpha``/``gamma`` are indices or None
    (fixed at 0 / 1).
    """

    ln_tau: int
    alpha: int | None
    gamma: int | None
    delta_chi: tuple[tuple[int, float], ...]

    def values(self, p) -> tuple[float, float, float, float]:
        """(ln τ, α, γ, Δχ) of this process for parameter vector ``p``."""
        a = 0.0 if self.alpha is None else float(p[self.alpha])
        g = 1.0 if self.gamma is None else float(p[self.gamma])
        dchi = float(sum(c * p[i] for i, c in self.delta_chi))
        return float(p[self.ln_tau]), a, g, dchi

    def delta_chi_vector(self, n_params: int) -> np.ndarray:
        v = np.zeros(n_params)
        for i, c in self.delta_chi:
            v[i] = c
        return v


@dataclass(frozen=True)
class AcModel:
    """One ac model: parameter names and kinds, χ(ω), its Jacobian and its processes.

    ``kinds`` is one of ``"ln_tau"``, ``"chi"``, ``"alpha"``, ``"gamma"`` per parameter (the fit
    uses it for bounds and χ scaling). ``chi_s`` is the index of the constant term.
    """

    name: str
    param_names: tuple[str, ...]
    kinds: tuple[str, ...]
    processes: tuple[Process, ...]
    chi_s: int

    @property
    def n_params(self) -> int:
        return len(self.param_names)

    def chi(self, frequency_hz, p) -> np.ndarray:
        """Complex χ(ω) = χ' − iχ'' at ``frequency_hz`` (Hz) for parameters ``p``."""
        omega = 2.0 * math.pi * np.asarray(frequency_hz, dtype=float)
        out = np.full(omega.shape, complex(p[self.chi_s]))
        for proc in self.processes:
            ln_tau, a, g, dchi = proc.values(p)
            out = out + dchi * hn_term(omega, ln_tau, a, g)
        return out

    def jacobian(self, frequency_hz, p) -> np.ndarray:
        """Complex ∂χ/∂p, shape (n_frequencies, n_params)."""
        omega = 2.0 * math.pi * np.asarray(frequency_hz, dtype=float)
        jac = np.zeros((omega.size, self.n_params), dtype=complex)
        jac[:, self.chi_s] = 1.0
        for proc in self.processes:
            ln_tau, a, gam, dchi = proc.values(p)
            g, d_lt, d_a, d_g = hn_term(omega, ln_tau, a, gam, derivatives=True)
            for i, c in proc.delta_chi:
                jac[:, i] += c * g
            jac[:, proc.ln_tau] += dchi * d_lt
            if proc.alpha is not None:
                jac[:, proc.alpha] += dchi * d_a
            if proc.gamma is not None:
                jac[:, proc.gamma] += dchi * d_g
        return jac

    def chi_parts(self, frequency_hz, p) -> tuple[np.ndarray, np.ndarray]:
        """(χ', χ'') with χ'' = −Im χ ≥ 0 for a physical parameter set."""
        c = self.chi(frequency_hz, p)
        return c.real, -c.imag


def _single(name: str, alpha: bool, gamma: bool) -> AcModel:
    names = ["ln_tau", "chi_s", "chi_t"] + (["alpha"] if alpha else []) + \
        (["gamma"] if gamma else [])
    kinds = ["ln_tau", "chi", "chi"] + (["alpha"] if alpha else []) + \
        (["gamma"] if gamma else [])
    proc = Process(0, 3 if alpha else None, names.index("gamma") if gamma else None,
                   ((2, 1.0), (1, -1.0)))
    return AcModel(name, tuple(names), tuple(kinds), (proc,), chi_s=1)


DEBYE = _single("debye", alpha=False, gamma=False)
GENERALIZED_DEBYE = _single("generalized_debye", alpha=True, gamma=False)
HAVRILIAK_NEGAMI = _single("havriliak_negami", alpha=True, gamma=True)
COLE_DAVIDSON = _single("cole_davidson", alpha=False, gamma=True)
DOUBLE_GENERALIZED_DEBYE = AcModel(
    "double_generalized_debye",
    ("chi_s", "ln_tau1", "alpha1", "delta_chi1", "ln_tau2", "alpha2", "delta_chi2"),
    ("chi", "ln_tau", "alpha", "chi", "ln_tau", "alpha", "chi"),
    (Process(1, 2, None, ((3, 1.0),)), Process(4, 5, None, ((6, 1.0),))),
    chi_s=0)

MODELS: dict[str, AcModel] = {m.name: m for m in (DEBYE, GENERALIZED_DEBYE, HAVRILIAK_NEGAMI,
                                                  COLE_DAVIDSON, DOUBLE_GENERALIZED_DEBYE)}


def sigma_ln_tau(alpha: float = 0.0, gamma: float = 1.0) -> float:
    """Standard deviation of the ln τ distribution (dimensionless), as ccfit2 computes it."""
    if gamma == 1.0:     # ψ₁(1) = π²/6 exactly: GD form, 0 for Debye without rounding
        var = (1.0 / (1.0 - alpha) ** 2 - 1.0) * math.pi ** 2 / 3
    else:
        var = (float(polygamma(1, gamma)) + math.pi ** 2 / 6) / (1.0 - alpha) ** 2 \
            - math.pi ** 2 / 3
    return math.sqrt(max(var, 0.0))    # Debye: 0 up to rounding


def ln_tau_mean(ln_tau: float, alpha: float = 0.0, gamma: float = 1.0) -> float:
    """⟨ln τ⟩ of the distribution: ln τ + (ψ(γ) + γ_E)/(1−α) (= ln τ for γ = 1)."""
    if gamma == 1.0:
        return float(ln_tau)
    return float(ln_tau + (psi(gamma) + EULER_GAMMA) / (1.0 - alpha))


def peak_ln_omega_tau(alpha: float = 0.0, gamma: float = 1.0) -> float:
    """ln(ω_p·τ) of the χ'' maximum of one HN term (0 for Debye and generalized Debye)."""
    if gamma == 1.0:
        return 0.0
    beta = 1.0 - alpha
    ratio = math.sin(beta * math.pi / (2 * gamma + 2)) / \
        math.sin(beta * gamma * math.pi / (2 * gamma + 2))
    return math.log(ratio) / beta


def peak_frequency_hz(ln_tau: float, alpha: float = 0.0, gamma: float = 1.0) -> float:
    """Frequency (Hz) of the χ'' maximum of one HN term with time constant exp(ln_tau) s."""
    return math.exp(peak_ln_omega_tau(alpha, gamma) - ln_tau) / (2.0 * math.pi)


@dataclass(frozen=True)
class AcCurve(Curve):
    """Model curve on a dense grid (``x`` Hz, ``y`` χ'', ``y_real`` χ'); call it for any f."""

    y_real: np.ndarray | None = None
    model_name: str = ""
    param_values: tuple = ()

    def __call__(self, frequency_hz) -> tuple[np.ndarray, np.ndarray]:
        """(χ', χ'') of the fitted model at ``frequency_hz`` (Hz)."""
        return MODELS[self.model_name].chi_parts(frequency_hz, np.asarray(self.param_values))

    def to_dict(self) -> dict:
        return {**super().to_dict(), "chi_real": json_safe(self.y_real)}
