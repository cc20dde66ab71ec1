"""Sample physics for the simulators: crystal-field lanthanide ions and magnetic samples.

    >>> from spinlight.simulators.samples import get_sample
    >>> s = get_sample("mCB-Nd")
    >>> s.molar_magnetization_emu_per_mol(300.0, 1000.0)   # emu/mol per formula unit
    >>> ac = get_ac_model("mCB-Nd")
    >>> chi1, chi2 = ac.chi_molar(2.0, 1200.0, [1.0, 10.0, 1000.0])  # emu/(mol Oe) per f.u.
    >>> lum = get_luminescence("mCB-NdYb")
    >>> lum.lifetimes_ns(980.0)                                      # (122.0, 607.0): Yb rise
    >>> h = lum.expected_histogram(edges_ns, emission_nm=1060.0, excitation_nm=375.0,
    ...     repetition_rate_hz=1e5, photons_per_pulse=0.01, irf=NirPmt().irf())  # counts/s/bin

numpy/scipy only; no other spinlight layer is imported here.
"""

from .ac_response import AcModel, RelaxationProcess, generalized_debye
from .decay_physics import (
    TDC_DEAD_TIME_NS,
    InstrumentResponse,
    NirPmt,
    periodic_histogram,
    sample_histogram,
)
from .crystal_field import (
    CURIE_CONSTANT_EMU_K_PER_MOL,
    NA_MU_B_EMU_PER_MOL,
    LanthanideIon,
    brillouin_moment_muB,
    hemisphere_lebedev,
)
from .luminescence import Emitter, EnergyTransfer, GaussianBands, LuminescenceModel
from .presets import (
    AC_PRESETS,
    LUMINESCENCE_PRESETS,
    SAMPLE_PRESETS,
    get_ac_model,
    get_luminescence,
    get_sample,
)
from .relaxation_rates import RelaxationRates
from .sample import VSM_NOISE_FLOOR_EMU, VSM_NOISE_RELATIVE, MagneticSample
from .stevens import (
    FREE_ION_TERMS,
    STEVENS_FACTORS,
    lande_g,
    spin_matrices,
    stevens_factor,
    stevens_operator,
)

__all__ = [
    "AC_PRESETS",
    "AcModel",
    "CURIE_CONSTANT_EMU_K_PER_MOL",
    "Emitter",
    "EnergyTransfer",
    "GaussianBands",
    "InstrumentResponse",
    "LUMINESCENCE_PRESETS",
    "LuminescenceModel",
    "NirPmt",
    "TDC_DEAD_TIME_NS",
    "NA_MU_B_EMU_PER_MOL",
    "FREE_ION_TERMS",
    "STEVENS_FACTORS",
    "LanthanideIon",
    "MagneticSample",
    "RelaxationProcess",
    "RelaxationRates",
    "SAMPLE_PRESETS",
    "VSM_NOISE_FLOOR_EMU",
    "VSM_NOISE_RELATIVE",
    "brillouin_moment_muB",
    "generalized_debye",
    "get_ac_model",
    "get_luminescence",
    "get_sample",
    "hemisphere_lebedev",
    "lande_g",
    "periodic_histogram",
    "sample_histogram",
    "spin_matrices",
    "stevens_factor",
    "stevens_operator",
]
