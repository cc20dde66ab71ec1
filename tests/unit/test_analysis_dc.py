"""Unit tests of the dc analysis core (spinlight.analysis): Curie–Weiss, free-ion values, units,
magnetocaloric effect against an exact Brillouin paramagnet, run analysis, streaming, figures."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from event_model import compose_run, pack_event_page
from scipy.special import logsumexp

from spinlight.analysis import (analyze_dc_run, chi_t_summary, fit_curie_weiss, free_ion,
                                group_isotherms, magnetic_entropy_change, mh_summary, units,
                                window_sensitivity)
from spinlight.analysis.figures import plot_chi_t, plot_m_h, plot_mce
from spinlight.analysis.streaming import DcAnalysisCallback, make_dc_analysis_router

R = units.R_J_PER_MOL_K
MU_B = 9.2740100783e-24   # J/T
K_B = 1.380649e-23        # J/K
N_A = 6.02214076e23


# ---------------------------------------------------------------------------------------------
# exact paramagnet used as ground truth
def brillouin(spin: float, g: float, t_k, b_t):
    """Exact molar M (emu/mol) and S/R of N_A independent spins, broadcast over T and B."""
    t, b = np.broadcast_arrays(np.asarray(t_k, float), np.asarray(b_t, float))
    m = np.arange(-spin, spin + 1)
    y = g * MU_B * b / (K_B * t)
    e = y[..., None] * m
    ln_z = logsumexp(e, axis=-1)
    mean_m = (np.exp(e - ln_z[..., None]) * m).sum(-1)
    return N_A * MU_B * g * mean_m * 1e3, ln_z - y * mean_m


def exact_minus_ds(spin, g, t_k, b_from, b_to):
    """Exact −ΔS (J/mol/K) for a field change b_from → b_to at temperature t_k."""
    return R * (brillouin(spin, g, t_k, b_from)[1] - brillouin(spin, g, t_k, b_to)[1])


SETPOINTS = np.array([1.8, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 18.0,
                      21.0])
FIELDS_T = np.concatenate([np.linspace(0, 1, 11), np.linspace(1.2, 3.0, 10),
                           np.linspace(3.25, 7.0, 15)])  # 36 uneven fields, 0–7 T


def gd_isotherm_points(rng, spin=3.5, g=2.0):
    """Points of M(H) isotherms with 2 mT field jitter and 5 mK temperature noise."""
    sp = np.repeat(SETPOINTS, FIELDS_T.size)
    t = sp + rng.normal(0, 0.005, sp.size)
    b = np.abs(np.tile(FIELDS_T, SETPOINTS.size) + rng.normal(0, 0.002, sp.size))
    m, _ = brillouin(spin, g, t, b)
    return sp, t, b, m


# ---------------------------------------------------------------------------------------------
# Curie–Weiss
def cw_data(rng, c=11.48, theta=-4.0, rel_noise=0.005, t=None):
    t = np.arange(2.0, 301.0, 4.0) if t is None else t
    chi = c / (t - theta)
    sigma = rel_noise * chi
    return t, chi + rng.normal(0, 1, t.size) * sigma, sigma


def test_curie_weiss_recovers_c_and_theta_within_2_sigma():
    t, chi, sigma = cw_data(np.random.default_rng(1))
    r = fit_curie_weiss(t, chi, sigma=sigma)
    assert abs(r.curie_constant_emu_K_per_mol - 11.48) < 2 * r.stderr["curie_constant"]
    assert abs(r.theta_K + 4.0) < 2 * r.stderr["theta"]
    assert 0 < r.stderr["theta"] < 3.0 and 0 < r.stderr["curie_constant"] < 0.2
    assert r.n_points == int(((t >= 150) & (t <= 300)).sum())
    assert r.extras["mu_eff_muB"] == pytest.approx(math.sqrt(8 * r.curie_constant_emu_K_per_mol))
    assert r.covariance.shape == (2, 2) and r.covariance[0, 1] == r.covariance[1, 0]
    d = r.to_dict()
    assert {"theta_K", "theta_err_K", "curie_constant_emu_K_per_mol",
            "curie_constant_err_emu_K_per_mol", "mu_eff_muB", "cw_t_min_K", "cw_t_max_K",
            "n_points", "chi2_red"} <= set(d)
    json.dumps(d)
    assert "theta_K" in r.report() and r.curve.x.size > 2


def test_curie_weiss_uncertainties_are_calibrated():
    """Over many noise realisations the scatter of θ matches the reported σ (pulls ~ N(0,1))."""
    rng = np.random.default_rng(7)
    pulls_t, pulls_c = [], []
    for _ in range(300):
        t, chi, sigma = cw_data(rng, c=2.57, theta=-45.3, rel_noise=0.01)
        r = fit_curie_weiss(t, chi, sigma=sigma)
        pulls_t.append((r.theta_K + 45.3) / r.stderr["theta"])
        pulls_c.append((r.curie_constant_emu_K_per_mol - 2.57) / r.stderr["curie_constant"])
    for pulls in (np.array(pulls_t), np.array(pulls_c)):
        assert abs(pulls.mean()) < 0.25
        assert 0.8 < pulls.std() < 1.2


def test_curie_weiss_unweighted_and_window_sensitivity():
    t, chi, _ = cw_data(np.random.default_rng(3), c=5.79, theta=-52.3)
    r = fit_curie_weiss(t, chi)
    assert r.theta_K == pytest.approx(-52.3, abs=4 * r.stderr["theta"])
    ws = window_sensitivity(t, chi, lower_bounds_K=(20, 100, 150, 200, 290, 299))
    assert np.isfinite(ws.theta_K[:4]).all()
    assert np.isnan(ws.theta_K[-1])          # a single point above 299 K: not fitted
    assert ws.n_points[-1] < 3
    assert np.ptp(ws.theta_K[:4]) < 3.0           # wide windows agree
    assert ws.theta_spread_K >= np.ptp(ws.theta_K[:4])
    assert "window_theta_K" in ws.to_dict() and "θ" in ws.report()


@pytest.mark.parametrize("kwargs, fragment", [
    ({"t_min_K": 300, "t_max_K": 150}, "t_min_K=300"),
    ({"t_min_K": 295, "t_max_K": 300}, "at least 3 points"),
])
def test_curie_weiss_bad_window_names_values(kwargs, fragment):
    t, chi, _ = cw_data(np.random.default_rng(0))
    with pytest.raises(ValueError, match=fragment) as err:
        fit_curie_weiss(t, chi, **kwargs)
    assert str(kwargs["t_max_K"]) in str(err.value)


def test_curie_weiss_bad_arrays():
    with pytest.raises(ValueError, match=r"chi_emu_per_mol_Oe has 2 values; allowed: exactly 3"):
        fit_curie_weiss([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match=r"T_K\[1\]=nan is not finite"):
        fit_curie_weiss([1, np.nan, 3], [1, 2, 3])


# ---------------------------------------------------------------------------------------------
# free ion
@pytest.mark.parametrize("ion, expected", [("Nd", 1.64), ("Yb", 2.57), ("Er", 11.48),
                                           ("Gd", 7.875), ("Dy", 14.17)])
def test_free_ion_chi_t(ion, expected):
    assert free_ion.free_ion_chi_t(ion) == pytest.approx(expected, rel=0.005)
    assert free_ion.free_ion_chi_t(ion, constant=free_ion.CURIE_CONSTANT_PAPER) == \
        pytest.approx(expected, rel=0.005)


def test_free_ion_constants_and_terms():
    assert free_ion.CURIE_CONSTANT_EXACT == pytest.approx(0.12505, abs=1e-5)
    assert free_ion.lande_g(6, 1.5, 7.5) == pytest.approx(6 / 5)
    assert free_ion.lande_g(6, 1.5, 4.5) == pytest.approx(8 / 11)
    assert set(free_ion.LN3_GROUND_TERMS) == {"Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb",
                                              "Dy", "Ho", "Er", "Tm", "Yb"}
    assert free_ion.free_ion_chi_t("Eu") == 0.0
    mixed = free_ion.free_ion_chi_t_sum({"Nd": 1.32, "Yb": 1.68})
    assert mixed == pytest.approx(1.32 * 1.637 + 1.68 * 2.572, rel=1e-3)
    assert free_ion.saturation_moment_muB("Er3+") == pytest.approx(9.0)
    assert free_ion.low_temperature_entropy_ceiling_R({"Gd": 6}) == pytest.approx(6 * math.log(8))
    assert free_ion.low_temperature_entropy_ceiling_R({"Nd": 3}) == pytest.approx(2.0794, 1e-4)
    with pytest.raises(ValueError, match="ion='Xx' is unknown"):
        free_ion.free_ion_chi_t("Xx")
    with pytest.raises(ValueError, match=r"composition\['Nd'\]=-1"):
        free_ion.free_ion_chi_t_sum({"Nd": -1})


# ---------------------------------------------------------------------------------------------
# units
def test_unit_conversions():
    m = units.molar_magnetization(1.0, mass_mg=10.0, molar_mass_g_per_mol=1000.0)
    assert m == pytest.approx(1e5)                                      # 1 emu / 1e-5 mol
    assert units.mass_magnetization(1.0, mass_mg=10.0) == pytest.approx(100.0)
    assert units.bohr_magnetons_per_formula_unit(5585.0) == pytest.approx(1.0)
    # diamagnetic correction: a negative χ_dia is *added back*
    assert units.subtract_diamagnetic(100.0, 1000.0, -1e-3) == pytest.approx(101.0)
    assert units.susceptibility([200.0], [1000.0])[0] == pytest.approx(0.2)
    assert units.chi_t(0.2, 300.0) == pytest.approx(60.0)
    chi = units.moment_to_chi_molar([1e-3], [1000.0], mass_mg=10.0, molar_mass_g_per_mol=1000.0,
                                    diamagnetic_emu_per_mol_oe=-1e-3)
    assert chi[0] == pytest.approx(0.1 + 1e-3)
    assert units.oe_to_tesla(7e4) == pytest.approx(7.0)
    assert units.maxwell_integral_to_J_per_mol_K(1000.0) == pytest.approx(1.0)
    assert units.maxwell_integral_to_J_per_kg_K(2.5) == pytest.approx(2.5)
    s_kg = units.entropy_J_per_mol_K_to_J_per_kg_K(R * 6 * math.log(8), 2589.0)
    assert s_kg == pytest.approx(40.06, abs=0.02)                       # Gd6, science.md
    assert units.entropy_J_per_kg_K_to_J_per_mol_K(s_kg, 2589.0) == pytest.approx(
        R * 6 * math.log(8))
    assert units.entropy_in_units_of_R(R) == pytest.approx(1.0)
    assert R == 8.314462618


@pytest.mark.parametrize("call, fragment", [
    (lambda: units.molar_magnetization(1.0, mass_mg=-1.0, molar_mass_g_per_mol=100.0),
     r"mass_mg=-1.0 is out of range; allowed range: finite and > 0"),
    (lambda: units.molar_magnetization(1.0, mass_mg=1.0, molar_mass_g_per_mol=0),
     r"molar_mass_g_per_mol=0.0 is out of range"),
    (lambda: units.susceptibility([1.0, 2.0], [1000.0, 0.0]),
     r"H_Oe\[1\]=0.0 is out of range; allowed range: non-zero"),
    (lambda: units.subtract_diamagnetic(1.0, 1.0, float("nan")),
     r"diamagnetic_emu_per_mol_Oe=nan is out of range"),
])
def test_unit_errors_name_parameter_value_range(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call()


# ---------------------------------------------------------------------------------------------
# magnetocaloric effect
def test_mce_midpoint_matches_exact_brillouin_s72():
    sp, t, b, m = gd_isotherm_points(np.random.default_rng(11))
    res = magnetic_entropy_change(t, b * 1e4, m, sp, molar_mass_g_per_mol=2589.0 / 6,
                                  delta_b_T=7.0, ceiling_R=math.log(8))
    assert res.values["mce_n_isotherms"] == 15 and res.t_mid_K.size == 14
    b0 = res.values["b_start_T"]
    assert b0 < 0.01
    for db in (1.0, 3.0, 7.0):
        got = res.at(db).y
        exact = exact_minus_ds(3.5, 2.0, res.t_mid_K, b0, b0 + db)
        assert np.max(np.abs(got - exact)) < 0.3, (db, np.max(np.abs(got - exact)))
    assert res.values["minus_delta_s_max_J_per_mol_K"] <= R * math.log(8)
    assert res.values["minus_delta_s_max_R"] == pytest.approx(
        res.values["minus_delta_s_max_J_per_mol_K"] / R)
    assert res.values["minus_delta_s_max_J_per_kg_K"] == pytest.approx(
        res.values["minus_delta_s_max_J_per_mol_K"] * 1000 / (2589.0 / 6))
    assert 0.8 < res.values["fraction_of_ceiling"] <= 1.0
    assert res.values["t_at_max_K"] == pytest.approx(res.t_mid_K[np.argmax(res.at(7.0).y)])
    assert res.values["minus_delta_s_ceiling_R"] == pytest.approx(math.log(8))
    json.dumps(res.to_dict(include_curve=True))


def test_mce_noise_free_grid_is_accurate():
    sp = np.repeat(SETPOINTS, FIELDS_T.size)
    b = np.tile(FIELDS_T, SETPOINTS.size)
    m, _ = brillouin(3.5, 2.0, sp, b)
    res = magnetic_entropy_change(sp, b * 1e4, m, sp, delta_b_T=7.0)
    for db in (1.0, 3.0, 7.0):
        assert np.max(np.abs(res.at(db).y - exact_minus_ds(3.5, 2.0, res.t_mid_K, 0, db))) < 0.05
    assert res.values["delta_b_actual_T"] == 7.0 and res.values["b_start_T"] == 0.0


def test_mce_groups_by_setpoint_not_measured_temperature():
    rng = np.random.default_rng(5)
    sp = np.repeat([10.5, 10.6], 20)
    t = sp + rng.uniform(-0.04, 0.04, sp.size)   # measured T ranges overlap-close
    b = np.tile(np.linspace(0, 5, 20), 2)
    m, _ = brillouin(3.5, 2.0, t, b)
    isos = group_isotherms(t, b * 1e4, m, sp)
    assert [i.key for i in isos] == [10.5, 10.6]
    res = magnetic_entropy_change(t, b * 1e4, m, sp, delta_b_T=5.0)
    assert res.t_mid_K.size == 1 and res.t_mid_K[0] == pytest.approx(10.55, abs=0.02)


def test_mce_bad_input_errors():
    sp, t, b, m = gd_isotherm_points(np.random.default_rng(2))
    one = sp == 2.0
    with pytest.raises(ValueError, match=r"group holds 1 isotherm.*at least 2 isotherms"):
        magnetic_entropy_change(t[one], b[one] * 1e4, m[one], sp[one])
    two = (sp == 2.0) | (sp == 3.0)
    swapped = np.where(sp[two] == 2.0, 3.0, 2.0)   # setpoint order contradicts measured T
    with pytest.raises(ValueError, match=r"non-monotonic.*key 2.0 has mean T 3.0"):
        magnetic_entropy_change(t[two], b[two] * 1e4, m[two], swapped)
    with pytest.raises(ValueError, match=r"delta_b_T=9.0 is out of range; allowed range: 0 < ΔB"):
        magnetic_entropy_change(t, b * 1e4, m, sp, delta_b_T=9.0)
    with pytest.raises(ValueError, match=r"M_emu_per_mol has 3 values; allowed: exactly"):
        magnetic_entropy_change(t, b * 1e4, m[:3], sp)


def test_mh_summary_uses_lowest_t_and_highest_field_and_loops():
    b = np.concatenate([np.linspace(7, -7, 29), np.linspace(-7, 7, 29)])  # hysteresis loop
    t = np.full(b.size, 2.0)
    m, _ = brillouin(3.5, 2.0, t, b)
    tt = np.concatenate([t, t + 2.0])
    mh = mh_summary(tt, np.tile(b, 2) * 1e4, np.tile(m, 2) * np.repeat([1.0, 0.5], b.size),
                    np.repeat([2.0, 4.0], b.size), ions={"Gd": 1})
    assert mh.values["t_at_m_max_K"] == pytest.approx(2.0)
    assert mh.values["b_at_m_max_T"] == pytest.approx(7.0)
    assert mh.values["m_max_muB_per_fu"] == pytest.approx(brillouin(3.5, 2.0, 2.0, 7.0)[0] / 5585,
                                                          rel=1e-9)
    assert 6.5 < mh.values["m_max_muB_per_fu"] < mh.values["m_sat_free_ion_muB_per_fu"] == 7.0


# ---------------------------------------------------------------------------------------------
# whole runs
SAMPLE = {"name": "Gd-test", "formula": "Gd", "mass_mg": 12.0, "molar_mass_g_per_mol": 431.5,
          "ions": {"Gd": 1}, "ions_per_formula_unit": 1.0, "diamagnetic_emu_per_mol_Oe": -2e-4}


def chi_t_columns(rng):
    t = np.concatenate([np.linspace(1.8, 10, 9), np.arange(20.0, 301.0, 10.0)])
    chi_para = 7.87 / (t + 0.6)
    n_mol = SAMPLE["mass_mg"] * 1e-3 / SAMPLE["molar_mass_g_per_mol"]
    h = np.full(t.size, 1000.0)
    moment = (chi_para + SAMPLE["diamagnetic_emu_per_mol_Oe"]) * h * n_mol
    moment *= 1 + rng.normal(0, 0.002, t.size)
    return {"vsm_moment": moment, "vsm_moment_err": 0.002 * np.abs(moment),
            "vsm_temperature": t, "vsm_field": h, "mpms3_temperature_setpoint": np.round(t, 1),
            "mpms3_field": h, "seq_num": np.arange(1, t.size + 1)}


def mce_columns(rng):
    sp, t, b, m = gd_isotherm_points(rng)
    n_mol = SAMPLE["mass_mg"] * 1e-3 / SAMPLE["molar_mass_g_per_mol"]
    h = b * 1e4
    moment = (m + SAMPLE["diamagnetic_emu_per_mol_Oe"] * h) * n_mol
    return {"vsm_moment": moment, "vsm_moment_err": 1e-6 + 0 * moment, "vsm_temperature": t,
            "vsm_field": h, "mpms3_temperature_setpoint": sp, "mpms3_field": h,
            "seq_num": np.arange(1, t.size + 1)}, m


def test_analyze_chi_t_run_and_duplicate_points():
    cols = chi_t_columns(np.random.default_rng(4))
    start = {"uid": "raw-1", "plan_name": "chi_t", "sample": SAMPLE}
    res = analyze_dc_run(start, cols)
    d = res.to_dict()
    json.dumps(d)
    assert d["analysis"] == "chi_t" and d["raw_uid"] == "raw-1"
    assert d["chi_t_300K_emu_K_per_mol"] == pytest.approx(7.87 * 300 / 300.6, rel=0.01)
    assert d["t_min_K"] == pytest.approx(1.8)
    assert d["chi_t_min_T_emu_K_per_mol"] == pytest.approx(7.87 * 1.8 / 2.4, rel=0.01)
    assert d["theta_K"] == pytest.approx(-0.6, abs=3 * d["theta_err_K"] + 0.5)
    assert d["curie_constant_emu_K_per_mol"] == pytest.approx(7.87, rel=0.01)
    for key in ("theta_err_K", "cw_n_points", "cw_chi2_red", "window_theta_K",
                "chi_t_free_ion_emu_K_per_mol"):
        assert key in d
    # a suspended point re-measured: same seq_num twice; the last one must win
    later = {k: np.append(v, v[5]) for k, v in cols.items()}
    later["vsm_moment"][5] *= 3.0                       # the first measurement was bad
    res2 = analyze_dc_run(start, later)
    assert res2.n_duplicates_dropped == 1
    assert res2.to_dict()["chi_t_300K_emu_K_per_mol"] == d["chi_t_300K_emu_K_per_mol"]
    assert res2.chi_t.chi_emu_per_mol_Oe == pytest.approx(res.chi_t.chi_emu_per_mol_Oe)
    assert "χT(T) summary" in res.report()


def test_analyze_mce_run_applies_diamagnetic_correction():
    cols, m_para = mce_columns(np.random.default_rng(8))
    start = {"uid": "raw-2", "plan_name": "mce_isotherms", "sample": SAMPLE}
    d = analyze_dc_run(start, cols, delta_b_T=2.0).to_dict()
    direct = magnetic_entropy_change(cols["vsm_temperature"], cols["vsm_field"], m_para,
                                     cols["mpms3_temperature_setpoint"],
                                     molar_mass_g_per_mol=431.5, delta_b_T=2.0)
    assert d["minus_delta_s_max_J_per_mol_K"] == pytest.approx(
        direct.values["minus_delta_s_max_J_per_mol_K"], rel=1e-9)
    assert d["delta_b_T"] == 2.0 and d["minus_delta_s_max_R"] <= math.log(8)
    assert d["minus_delta_s_ceiling_R"] == pytest.approx(math.log(8))
    coldest = cols["mpms3_temperature_setpoint"] == 1.8
    top = m_para[coldest][np.argmax(cols["vsm_field"][coldest])]
    assert d["m_max_muB_per_fu"] == pytest.approx(top / 5585, rel=0.01)
    assert d["t_at_m_max_K"] == pytest.approx(1.8, abs=0.01)
    json.dumps(d)


def test_analyze_run_errors():
    cols = chi_t_columns(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"plan_name'\]='count' is not a dc plan"):
        analyze_dc_run({"plan_name": "count", "sample": SAMPLE}, cols)
    with pytest.raises(ValueError, match=r"start\['sample'\]\['mass_mg'\] is missing"):
        analyze_dc_run({"plan_name": "chi_t", "sample": {"molar_mass_g_per_mol": 1.0}}, cols)
    with pytest.raises(ValueError, match=r"no column 'vsm_moment'"):
        analyze_dc_run({"plan_name": "chi_t", "sample": SAMPLE},
                       {k: v for k, v in cols.items() if k != "vsm_moment"})


# ---------------------------------------------------------------------------------------------
# streaming
def raw_run_documents(plan_name, cols, *, exit_status="success", duplicate_seq=None,
                      as_pages=False):
    bundle = compose_run(metadata={"plan_name": plan_name, "sample": SAMPLE})
    keys = [k for k in cols if k != "seq_num"]
    desc = bundle.compose_descriptor(name="primary", data_keys={
        k: {"dtype": "number", "shape": [], "source": "sim"} for k in keys})
    docs = [("start", bundle.start_doc), ("descriptor", desc.descriptor_doc)]
    baseline = bundle.compose_descriptor(name="baseline", data_keys={
        "vsm_moment": {"dtype": "number", "shape": [], "source": "sim"}})
    docs.append(("descriptor", baseline.descriptor_doc))
    docs.append(("event", baseline.compose_event(data={"vsm_moment": 99.0},
                                                 timestamps={"vsm_moment": 0.0}, seq_num=1)))
    events = []
    for i, seq in enumerate(cols["seq_num"]):
        data = {k: float(cols[k][i]) for k in keys}
        events.append(desc.compose_event(data=data, timestamps={k: 0.0 for k in keys},
                                         seq_num=int(seq)))
    if as_pages:
        docs += [("event_page", pack_event_page(*events[j:j + 7]))
                 for j in range(0, len(events), 7)]
    else:
        docs += [("event", e) for e in events]
    docs.append(("stop", bundle.compose_stop(exit_status=exit_status)))
    return docs


@pytest.mark.parametrize("as_pages", [False, True])
def test_streaming_callback_emits_derived_run_equal_to_batch(as_pages):
    cols = chi_t_columns(np.random.default_rng(9))
    later = {k: np.append(v, v[3]) for k, v in cols.items()}
    later["vsm_moment"][3] *= 5.0                            # superseded by the re-measurement
    docs = raw_run_documents("chi_t", later, as_pages=as_pages)
    out, results, partials = [], [], []
    cb = DcAnalysisCallback(lambda n, d: out.append((n, d)), on_result=results.append,
                            on_partial=partials.append)
    for name, doc in docs:
        cb(name, doc)
    names = [n for n, _ in out]
    assert names == ["start", "descriptor", "event", "stop"]
    start = out[0][1]
    raw_start = docs[0][1]
    assert start["derived_from"] == raw_start["uid"] and start["plan_name"] == "dc_analysis"
    assert start["analysis"] == "chi_t"
    expected = analyze_dc_run(raw_start, later).to_dict()
    assert start["results"] == expected
    assert out[-1][1]["exit_status"] == "success" and out[-1][1]["run_start"] == start["uid"]
    scalars = out[2][1]["data"]
    assert scalars["theta_K"] == expected["theta_K"]
    assert results and results[0].to_dict() == expected
    assert results[0].start["uid"] == raw_start["uid"]
    assert partials and partials[-1].chi_t.curie_weiss is not None
    json.dumps(start)


def test_streaming_aborted_mce_run_and_failures_do_not_raise():
    cols, _ = mce_columns(np.random.default_rng(3))
    n = 36 * 4 + 10                                          # aborted during the 5th isotherm
    part = {k: v[:n] for k, v in cols.items()}
    out, partials = [], []
    router = make_dc_analysis_router(lambda name, doc: out.append((name, doc)),
                                     on_partial=partials.append)
    for name, doc in raw_run_documents("mce_isotherms", part, exit_status="abort"):
        router(name, doc)
    # one partial result per completed isotherm: M(H) only after the 1st, MCE from the 2nd on
    assert [p.mh.values["n_isotherms"] for p in partials] == [1, 2, 3, 4]
    assert partials[0].mce is None and partials[-1].mce.values["mce_n_isotherms"] == 4
    start = out[0][1]
    assert start["raw_exit_status"] == "abort" and start["analysis"] == "mce_isotherms"
    assert start["results"]["n_isotherms"] == 5 and start["results"]["mce_n_isotherms"] == 4
    assert any("left out" in n for n in start["results"]["notes"])
    assert start["results"] == analyze_dc_run(
        {"plan_name": "mce_isotherms", "sample": SAMPLE}, part).to_dict() | {
        "raw_uid": start["derived_from"], "sample_name": "Gd-test"}
    assert out[-1][1]["exit_status"] == "success"
    # the derived run is not analysed again when fed back into the router
    for name, doc in list(out):
        router(name, doc)
    # bad metadata: analysis fails -> derived run with exit_status fail, nothing raised
    out.clear()
    bad = raw_run_documents("chi_t", chi_t_columns(np.random.default_rng(1)))
    bad[0][1]["sample"] = {"name": "no-mass"}
    for name, doc in bad:
        router(name, doc)
    assert [n for n, _ in out] == ["start", "stop"]
    assert out[-1][1]["exit_status"] == "fail" and "mass_mg" in out[-1][1]["reason"]
    assert "mass_mg" in out[0][1]["results"]["error"]
    # an emit that raises and a stop without start are swallowed
    cb = DcAnalysisCallback(lambda n, d: 1 / 0)
    for name, doc in raw_run_documents("chi_t", chi_t_columns(np.random.default_rng(2))):
        cb(name, doc)
    assert cb.result is not None
    DcAnalysisCallback(print)("stop", {"uid": "x", "exit_status": "success"})


def test_streaming_too_few_points_reports_fail():
    cols = {k: v[:2] for k, v in chi_t_columns(np.random.default_rng(1)).items()}
    out = []
    cb = DcAnalysisCallback(lambda n, d: out.append((n, d)))
    for name, doc in raw_run_documents("chi_t", cols, exit_status="fail"):
        cb(name, doc)
    assert out[-1][1]["exit_status"] == "fail" and "at least 3" in out[-1][1]["reason"]


# ---------------------------------------------------------------------------------------------
# figures
def test_figures_write_png(tmp_path):
    chi = analyze_dc_run({"plan_name": "chi_t", "sample": SAMPLE},
                         chi_t_columns(np.random.default_rng(1)))
    chi2 = analyze_dc_run({"plan_name": "chi_t", "sample": SAMPLE},
                          chi_t_columns(np.random.default_rng(2)))
    mce = analyze_dc_run({"plan_name": "mce_isotherms", "sample": SAMPLE},
                         mce_columns(np.random.default_rng(1))[0])
    paths = [plot_chi_t(chi.chi_t, tmp_path / "chit.png"),
             plot_chi_t([chi, chi2], tmp_path / "overlay.png", labels=["a", "b"]),
             plot_m_h(mce, tmp_path / "sub" / "mh.png"),
             plot_mce(mce.mce, tmp_path / "mce.png", unit="R"),
             plot_mce([mce, mce], tmp_path / "mce2.png", labels=["x", "y"], delta_b_T=[2, 5])]
    for p in paths:
        assert p.exists() and p.stat().st_size > 5000
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="labels has 1 entries"):
        plot_chi_t([chi, chi2], tmp_path / "x.png", labels=["a"])


def test_chi_t_summary_without_cw_window_keeps_going():
    t = np.linspace(2, 100, 30)
    s = chi_t_summary(t, np.full(30, 1000.0), 1e-3 * 10 / t, mass_mg=5.0,
                      molar_mass_g_per_mol=500.0)
    assert s.curie_weiss is None and any("Curie–Weiss fit not done" in n for n in s.notes)
    assert s.values["chi_t_300K_emu_K_per_mol"] is not None
    assert math.isnan(s.values["chi_t_300K_emu_K_per_mol"])
    assert s.to_dict()["chi_t_300K_emu_K_per_mol"] is None
