"""spinlight.analysis — the fitting core: pure functions on arrays (cgs-emu), result objects,
streaming document callbacks and paper-style figures. Imports nothing else from spinlight.

dc magnetometry:

* :func:`fit_curie_weiss`, :func:`window_sensitivity` — 1/χ = (T − θ)/C
* :func:`chi_t_summary` — χT(T), χT at 300 K and at the lowest T, nested Curie–Weiss fit
* :func:`mh_summary`, :func:`magnetic_entropy_change` — M(H) and −ΔS_m by the Maxwell relation
* :func:`analyze_dc_run` — one run (start document + primary columns) → :class:`DcRunAnalysis`
* :class:`DcAnalysisCallback`, :func:`make_dc_analysis_router` — streaming, derived runs
* modules ``units``, ``free_ion``, ``figures`` and ``ac_figures``

ac susceptibility:

* :func:`fit_ac_spectrum` — Debye, generalized Debye, double generalized Debye,
  Havriliak–Negami, Cole–Davidson on χ'(f), χ''(f) together (ln τ, analytic Jacobians)
* :func:`spectra_from_arrays`, :func:`fit_ac_dataset` — spectra grouped by measurement set → τ table
* :func:`fit_rate_vs_field`, :func:`fit_rate_vs_temperature`, :func:`fit_rate_global`,
  :func:`sequential_fit` — τ⁻¹ = B1/(1+B2H²) + D1H⁴T + D2H²T + CTⁿ + τ0⁻¹exp(−U/T) in log10(rate)
* :func:`arrhenius_fit` — ln τ vs 1/T on the high-T linear part, with a window-sensitivity table

photoluminescence (TCSPC):

* :func:`fit_decay` — 1–3 exponentials reconvolved with the measured IRF (Poisson MLE or
  Neyman least squares), Fisher and profile-likelihood errors; :func:`tail_fit` cross-check
* :func:`energy_transfer_efficiency` — η_ET = 1 − τ_DA/τ_D; :func:`cramer_rao_factor`
* :func:`analyze_spectrum` — peaks and integrated intensities of emission/excitation spectra
* :func:`decay_from_columns`, :func:`spectrum_from_columns`, :func:`analyze_decay` — PL runs
* :class:`PLAnalysisCallback`, :func:`make_pl_analysis_router`, :class:`EnergyTransferTracker`
  — streaming, derived runs; module ``pl_figures`` (spectra, decays with residuals)
"""

from .ac_dataset import AcDatasetResult, AcSpectrum, fit_ac_dataset, spectra_from_arrays
from .ac_fit import fit_ac_spectrum
from .ac_result import AcFitResult, AcProcess
from .arrhenius import ArrheniusResult, ArrheniusWindowTable, arrhenius_fit
from .relaxation import (RelaxationModel, RelaxationResult, SequentialResult, fit_rate_global,
                         fit_rate_vs_field, fit_rate_vs_temperature,
                         log10_rate_err_from_sigma_ln_tau, sequential_fit)
from .lifetime_fit import DecayFitResult, energy_transfer_efficiency, fit_decay, tail_fit
from .lifetime_uncertainty import EnergyTransferResult, cramer_rao_factor
from .pl_run import (DecayData, LifetimeRunAnalysis, SpectrumData, SpectrumRunAnalysis,
                     analyze_decay, decay_from_columns, spectrum_from_columns)
from .pl_spectra import SpectrumBand, SpectrumPeak, SpectrumResult, analyze_spectrum
from .pl_streaming import (EnergyTransferTracker, IrfCache, PLAnalysisCallback,
                           make_pl_analysis_router)
from .chi_t import ChiTSummary, chi_t_summary
from .curie_weiss import CurieWeissResult, WindowSensitivity, fit_curie_weiss, window_sensitivity
from .dc import DC_PLANS, DcRunAnalysis, analyze_dc_run
from .free_ion import (CURIE_CONSTANT_EXACT, CURIE_CONSTANT_PAPER, LN3_GROUND_TERMS,
                       free_ion_chi_t, free_ion_chi_t_sum, lande_g)
from .mce import Isotherm, MceResult, MhSummary, group_isotherms, magnetic_entropy_change, \
    mh_summary
from .results import Curve, FitResult

__all__ = [
    "AcDatasetResult", "AcFitResult", "AcProcess", "AcSpectrum", "fit_ac_dataset",
    "fit_ac_spectrum", "spectra_from_arrays", "ArrheniusResult", "ArrheniusWindowTable",
    "arrhenius_fit", "RelaxationModel", "RelaxationResult", "SequentialResult",
    "fit_rate_global", "fit_rate_vs_field", "fit_rate_vs_temperature",
    "log10_rate_err_from_sigma_ln_tau", "sequential_fit", "DecayFitResult",
    "EnergyTransferResult", "cramer_rao_factor", "energy_transfer_efficiency", "fit_decay",
    "tail_fit", "DecayData", "LifetimeRunAnalysis", "SpectrumData", "SpectrumRunAnalysis",
    "analyze_decay", "decay_from_columns", "spectrum_from_columns", "SpectrumBand",
    "SpectrumPeak", "SpectrumResult", "analyze_spectrum", "EnergyTransferTracker", "IrfCache",
    "PLAnalysisCallback", "make_pl_analysis_router",
    "CURIE_CONSTANT_EXACT", "CURIE_CONSTANT_PAPER", "ChiTSummary", "Curve", "CurieWeissResult",
    "DC_PLANS", "DcRunAnalysis", "FitResult", "Isotherm", "LN3_GROUND_TERMS", "MceResult",
    "MhSummary", "WindowSensitivity", "analyze_dc_run", "chi_t_summary", "fit_curie_weiss",
    "free_ion_chi_t", "free_ion_chi_t_sum", "group_isotherms", "lande_g",
    "magnetic_entropy_change", "mh_summary", "window_sensitivity",
]

