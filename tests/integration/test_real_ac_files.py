"""The ac fitting core on real Quantum Design ac files measured by others (MIT, qdsquid-dataplot).

Er(COT)I(THF)2, MPMS3: 26.3 mg, MW 542.53 g/mol (both in the header), zero field, 1–1000 Hz ×
30, 18 setpoints 5.0–11.1 K with 0.1 K steps above 10.5 K. Reference numbers from ccfit2 5.12.4
on the same file (fitting.md §1.6). pb6051, MPMS-XL: 21.3 mg, no MW, 4 K, 0.1–10 Hz × 13,
moment-type ``m'``/``m"`` columns (emu) with a 6 Oe drive.
Run with ``-s`` to see the τ table.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from spinlight.analysis.ac_dataset import fit_ac_dataset, spectra_from_arrays
from spinlight.analysis.ac_fit import fit_ac_spectrum
from spinlight.instruments.qd_dat import read_dat

REAL = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
ERCOT_MASS_MG, ERCOT_MW = 26.3, 542.53
# setpoint (K) -> (τ / s, α) from ccfit2's generalized-Debye fits
CCFIT2 = {5.0: (2.331e-3, 0.141), 9.0: (1.430e-3, 0.085), 10.0: (6.271e-4, 0.051)}


def _spectra(path, **units):
    """Read a .dat file and build one spectrum per DatFile.measurement_sets() set."""
    dat = read_dat(path)
    ac = dat.ac_columns()
    sets = dat.measurement_sets()
    set_id = np.empty(len(dat), dtype=object)
    setpoint = np.empty(len(dat))
    for s in sets:
        set_id[s.row_indices] = s.index
        setpoint[s.row_indices] = s.setpoint
    col = {k: dat.column(ac[k]) for k in ("frequency", "chi_real", "chi_imag", "temperature",
                                         "field", "chi_real_err", "chi_imag_err", "drive")}
    spectra = spectra_from_arrays(
        set_id, col["frequency"], col["chi_real"], col["chi_imag"],
        temperature_K=col["temperature"], field_Oe=col["field"], setpoint_K=setpoint,
        chi_real_err=col["chi_real_err"], chi_imag_err=col["chi_imag_err"],
        chi_unit=ac["chi_unit"], drive_Oe=col["drive"], **units)
    return dat, spectra


def test_real_ac_data_folder_is_present():
    assert (REAL / "mpms3_ac_vs_f_ErCOT.dat").is_file()
    assert (REAL / "mpmsxl_ac_pb6051.dat").is_file()


def test_ercot_generalized_debye_matches_ccfit2():
    dat = read_dat(REAL / "mpms3_ac_vs_f_ErCOT.dat")
    mass = dat.sample_mass_mg or ERCOT_MASS_MG
    mw = dat.molecular_weight or ERCOT_MW
    assert (mass, mw) == (ERCOT_MASS_MG, ERCOT_MW)          # the header carries both
    assert dat.ac_columns()["chi_unit"] == "emu/Oe"
    _, spectra = _spectra(REAL / "mpms3_ac_vs_f_ErCOT.dat", mass_mg=mass, molar_mass_g_per_mol=mw)
    assert len(spectra) == 18 and all(len(s) == 30 and s.chi_unit == "cm3/mol" for s in spectra)
    result = fit_ac_dataset(spectra, model="generalized_debye")
    print("\n" + result.report())
    tab = result.as_arrays()
    assert not tab["discarded"].any()
    sp = np.round(tab["setpoint_K"], 2)
    for t_k, (tau, alpha) in CCFIT2.items():
        i = int(np.flatnonzero(sp == t_k)[0])
        assert tab["tau_s"][i] == pytest.approx(tau, rel=0.02), t_k
        assert tab["alpha"][i] == pytest.approx(alpha, abs=0.005), t_k
        assert tab["log10_rate_err"][i] == pytest.approx(tab["sigma_ln_tau"][i] / np.log(10),
                                                         rel=0.05)
    # χ' in cm³/mol: Er(III) χT at 11.1 K ≈ free-ion 11.48 emu K/mol within 20 %
    low_f = spectra[0].chi_real[np.argmin(spectra[0].frequency_hz)]
    assert 0.8 * 11.48 < low_f * 11.1 < 1.2 * 11.48
    # 10.5 … 11.1 K: seven separate sets (ccfit2 merged them) with τ falling as T rises
    hot = (sp >= 10.45)
    assert hot.sum() == 7
    order = np.argsort(tab["T_mean_K"][hot])
    np.testing.assert_allclose(np.diff(tab["T_mean_K"][hot][order]), 0.1, atol=0.01)
    assert np.all(np.diff(tab["tau_s"][hot][order]) < 0)
    assert tab["tau_s"][hot].min() > 1.0 / (2 * np.pi * 1000.0)       # peaks still measured


def test_ercot_weighted_fit_and_auto_choice_are_consistent():
    _, spectra = _spectra(REAL / "mpms3_ac_vs_f_ErCOT.dat", mass_mg=ERCOT_MASS_MG,
                          molar_mass_g_per_mol=ERCOT_MW)
    ten = next(s for s in spectra if abs(s.setpoint_k - 10.0) < 0.01)
    assert ten.chi_real_err is not None                       # MPMS3 Std. Err. columns used
    weighted = fit_ac_spectrum(ten.frequency_hz, ten.chi_real, ten.chi_imag,
                               chi_real_err=ten.chi_real_err, chi_imag_err=ten.chi_imag_err,
                               model="generalized_debye")
    assert weighted.weighted and weighted.tau_s == pytest.approx(6.271e-4, rel=0.05)
    auto = fit_ac_spectrum(ten.frequency_hz, ten.chi_real, ten.chi_imag)
    print("\n" + auto.report())
    assert auto.selection["chosen"] == auto.model
    # whichever model is chosen, the dominant process keeps the measured χ'' peak
    main = max(auto.processes, key=lambda p: p.delta_chi)
    assert main.tau_s == pytest.approx(6.271e-4, rel=0.1)


def test_mpmsxl_moment_columns_fit():
    dat, spectra = _spectra(REAL / "mpmsxl_ac_pb6051.dat", mass_mg=21.3)
    assert dat.molecular_weight is None and dat.sample_mass_mg == pytest.approx(21.3)
    assert dat.ac_columns()["chi_unit"] == "emu"
    assert len(spectra) == 1
    s = spectra[0]
    assert len(s) == 13 and s.chi_unit == "cm3/g" and s.chi_real_err is None  # XL errors are 0
    # m' (emu) / 6 Oe drive / 0.0213 g
    assert s.chi_real[0] == pytest.approx(1.181545e-04 / 6.0 / 0.0213, rel=1e-6)
    peak_f = s.frequency_hz[np.argmax(s.chi_imag)]
    gd = fit_ac_spectrum(s.frequency_hz, s.chi_real, s.chi_imag, model="generalized_debye")
    hn = fit_ac_spectrum(s.frequency_hz, s.chi_real, s.chi_imag, model="havriliak_negami")
    print("\n" + gd.report() + "\n" + hn.report())
    # a very broad, asymmetric distribution: the symmetric GD puts its peak just below the
    # 0.1 Hz window edge (discarded as "no peak measured"), Havriliak–Negami keeps it inside
    assert gd.alpha > 0.4 and gd.discarded
    assert any(f.startswith("no peak measured") for f in gd.flags)
    assert not hn.discarded and hn.processes[0].gamma < 0.7
    assert peak_f / 2 < hn.processes[0].peak_frequency_hz < peak_f * 2
    assert hn.chi2_red < gd.chi2_red / 5 and hn.bic < gd.bic
    model_re, model_im = hn.curve(s.frequency_hz)
    assert np.abs(model_im - s.chi_imag).max() < 0.01 * s.chi_imag.max()
    assert np.abs(model_re - s.chi_real).max() < 0.01 * s.chi_real.max()


def test_ercot_tau_table_and_arrhenius_fit():
    """The real Er(COT) file end to end: 18 setpoints (10.5 … 11.1 K kept apart) → τ(T) table
    → Arrhenius on the high-T linear part (the automatic window stays among those setpoints)."""
    from spinlight.analysis import arrhenius_fit, fit_ac_dataset, spectra_from_arrays
    from spinlight.instruments.qd_dat import read_dat

    d = read_dat(REAL / "mpms3_ac_vs_f_ErCOT.dat")
    c, sets = d.ac_columns(), d.measurement_sets()
    rows = np.concatenate([s.row_indices for s in sets])
    ids = np.concatenate([[s.index] * len(s) for s in sets])
    setpoints = np.concatenate([[s.setpoint] * len(s) for s in sets])
    col = lambda k: d.column(c[k])[rows]  # noqa: E731
    spectra = spectra_from_arrays(list(ids), col("frequency"), col("chi_real"), col("chi_imag"),
                                  temperature_K=col("temperature"), setpoint_K=setpoints,
                                  mass_mg=d.sample_mass_mg, molar_mass_g_per_mol=d.molecular_weight)
    table = fit_ac_dataset(spectra, model="generalized_debye").as_arrays(include_discarded=False)
    assert table["tau_s"].size == 18
    order = np.argsort(table["setpoint_K"])
    t, tau = table["setpoint_K"][order], table["tau_s"][order]
    assert np.all(np.diff(tau[t >= 7.0]) < 0)          # thermally activated above 7 K
    fit = arrhenius_fit(t, tau, log10_rate_err=table["log10_rate_err"][order])
    assert 100.0 < fit.U_K < 150.0 and 1e-10 < fit.tau0_s < 1e-7
    used_t = fit.temperature_K[fit.used]
    assert used_t.size >= 4 and used_t.min() >= 10.4   # only the 0.1 K-spaced top setpoints
