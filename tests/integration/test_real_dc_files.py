"""The dc analysis core on real Quantum Design files measured by others (MIT, qdsquid-dataplot).

Er(BAT)2 = K(18-c-6)[Er(hdcCOT)2]: 7.2 mg, MW 839.24 g/mol, one Er(III) per formula unit
(free-ion χT 11.48 emu K/mol, g_J·J = 9 μB). pb6051: MPMS-XL ZFC at 1000 Oe, 48.4 mg, no MW.
Run with ``-s`` to see the reports.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from spinlight.analysis import (analyze_dc_run, chi_t_summary, fit_curie_weiss, free_ion,
                                mh_summary, units, window_sensitivity)
from spinlight.instruments.qd_dat import read_dat

REAL = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
MASS_MG, MW = 7.2, 839.24



def test_real_data_folder_is_present():
    # CI clones the repository with shared/ beside it; a missing folder is a failure, not a skip
    assert REAL.is_dir(), f"real data folder {REAL} absent"


def _dc_columns(dat):
    """T (K), H (Oe), moment (emu), moment error (emu or None) of a dc .dat file."""
    err_col = dat.moment_error_column()
    return (dat.column("Temperature (K)"), dat.column("Magnetic Field (Oe)"),
            dat.column(dat.moment_column()), None if err_col is None else dat.column(err_col))


def test_erbat_chi_t_and_curie_weiss():
    dat = read_dat(REAL / "mpms3_dc_m_vs_t_ErBAT.dat")
    assert dat.sample_mass_mg == MASS_MG and dat.molecular_weight == MW
    assert dat.moment_column().startswith("DC Moment")
    t, h, m, err = _dc_columns(dat)
    s = chi_t_summary(t, h, m, mass_mg=MASS_MG, molar_mass_g_per_mol=MW, moment_err_emu=err,
                      ions={"Er": 1})
    print("\n" + s.report())
    chi_t_300 = s.values["chi_t_300K_emu_K_per_mol"]
    free = free_ion.free_ion_chi_t("Er")
    assert free == pytest.approx(11.48, rel=1e-3)
    assert chi_t_300 == pytest.approx(free, rel=0.15)            # measured 11.59
    assert s.values["t_min_K"] == pytest.approx(2.0, abs=0.05)
    assert 0.5 < s.values["chi_t_min_T_emu_K_per_mol"] < chi_t_300   # depopulation of CF levels
    cw = s.curie_weiss
    assert cw is not None and cw.n_points > 100
    assert cw.curie_constant_emu_K_per_mol == pytest.approx(free, rel=0.15)
    assert abs(cw.theta_K) < 20 and 0 < cw.stderr["theta"] < 2
    ws = window_sensitivity(s.t_K, s.chi_emu_per_mol_Oe)
    print(ws.report())
    assert np.isfinite(ws.theta_K).all() and ws.theta_spread_K < 10
    # the same data through the run-level entry point, as event columns
    start = {"uid": "erbat-mt", "plan_name": "chi_t",
             "sample": {"name": "Er(BAT)2", "mass_mg": MASS_MG, "molar_mass_g_per_mol": MW,
                        "ions": {"Er": 1}, "diamagnetic_emu_per_mol_Oe": 0.0}}
    cols = {"vsm_temperature": t, "vsm_field": h, "vsm_moment": m, "vsm_moment_err": err,
            "seq_num": np.arange(1, t.size + 1)}
    d = analyze_dc_run(start, cols).to_dict()
    json.dumps(d)
    assert d["chi_t_300K_emu_K_per_mol"] == pytest.approx(chi_t_300)
    assert d["theta_K"] == pytest.approx(cw.theta_K)


def test_erbat_m_vs_h_isotherms():
    dat = read_dat(REAL / "mpms3_dc_m_vs_h_ErBAT.dat")
    t, h, m, _ = _dc_columns(dat)
    sets = dat.measurement_sets("Temperature (K)")              # consecutive rows per setpoint
    assert [round(s.setpoint) for s in sets] == [2, 4, 6]
    key = np.empty(t.size)
    for s in sets:
        key[s.row_indices] = round(s.setpoint, 2)
    m_mol = units.molar_magnetization(m, mass_mg=MASS_MG, molar_mass_g_per_mol=MW)
    mh = mh_summary(t, h, m_mol, key, ions={"Er": 1})
    print("\n" + mh.report())
    m_max = mh.values["m_max_muB_per_fu"]                        # measured 4.98 μB
    assert 3.0 < m_max < 9.0                                     # below g_J·J = 9 μB for one Er
    assert mh.values["t_at_m_max_K"] == pytest.approx(2.0, abs=0.05)
    assert mh.values["b_at_m_max_T"] == pytest.approx(7.0, abs=0.01)
    # the run-level path: M(H) summary plus the (coarse, 2 K steps) Maxwell analysis
    start = {"uid": "erbat-mh", "plan_name": "m_h",
             "sample": {"name": "Er(BAT)2", "mass_mg": MASS_MG, "molar_mass_g_per_mol": MW,
                        "ions": {"Er": 1}}}
    res = analyze_dc_run(start, {"vsm_temperature": t, "vsm_field": h, "vsm_moment": m,
                                 "mpms3_temperature_setpoint": key})
    print(res.mce.report())
    d = res.to_dict()
    assert d["m_max_muB_per_fu"] == pytest.approx(m_max)
    assert d["mce_n_isotherms"] == 3 and d["delta_b_T"] == 2.0
    assert 0 < d["minus_delta_s_max_R"] < np.log(16)             # below R ln(2J+1) of Er(III)


def test_pb6051_mpmsxl_zfc_per_gram():
    dat = read_dat(REAL / "mpmsxl_dc_zfc_pb6051.dat")
    assert dat.flavor == "MPMS-XL" and dat.moment_column() == "Long Moment (emu)"
    assert dat.sample_mass_mg == pytest.approx(48.4) and dat.molecular_weight is None
    t, h = dat.column("Temperature (K)"), dat.column("Field (Oe)")
    m = dat.column("Long Moment (emu)")
    assert len(t) == 42 and np.allclose(h, 1000.0)
    chi_g = units.moment_to_chi_mass(m, h, mass_mg=48.4)         # emu g⁻¹ Oe⁻¹ (cm³/g)
    chi_g_t = chi_g * t
    print(f"\npb6051: chi_g(2 K) = {chi_g[0]:.4e} emu/g/Oe, chi_g*T(2 K) = {chi_g_t[0]:.4e}, "
          f"chi_g*T(15 K) = {chi_g_t[np.argmax(t)]:.4e} emu K/g/Oe")
    assert np.all(chi_g > 0) and chi_g[np.argmin(t)] > chi_g[np.argmax(t)]
    assert chi_g[0] == pytest.approx(m[0] / 0.0484 / 1000.0)
    # Curie-like paramagnet: χ_g·T nearly constant over 2–15 K; a per-gram Curie–Weiss fit
    assert np.ptp(chi_g_t) / np.mean(chi_g_t) < 0.1
    cw = fit_curie_weiss(t, chi_g, t_min_K=2.0, t_max_K=16.0)    # C here in emu K g⁻¹ Oe⁻¹
    print(f"pb6051 per-gram Curie–Weiss (2–15 K): C_g = {cw.curie_constant_emu_K_per_mol:.4e} "
          f"± {cw.stderr['curie_constant']:.1e} emu K/g/Oe, θ = {cw.theta_K:.3f} ± "
          f"{cw.stderr['theta']:.3f} K")
    assert cw.curie_constant_emu_K_per_mol == pytest.approx(np.mean(chi_g_t), rel=0.1)
    assert abs(cw.theta_K) < 2.0
