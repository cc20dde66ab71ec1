"""dc magnetometry end to end: real drivers → simulated MPMS3 over loopback → catalog → fit.

The MPMS3 simulator speaks the MultiPyVu wire protocol; spinlight talks to it with Quantum
Design's own MultiPyVu client, stores runs in the embedded Tiled catalog and fits them.
"""

import json

import numpy as np
import pytest

from spinlight.analysis.streaming import make_dc_analysis_router
from spinlight.cli import main as cli_main
from spinlight.engine import make_run_engine
from spinlight.instruments.mpms3_device import connect_mpms3
from spinlight.plans import Sample, chi_t, m_h, mce_isotherms
from spinlight.simulators.lab import SimulatedLab
from spinlight.simulators.samples import get_sample


@pytest.fixture
def lab_and_engine(tmp_path):
    preset = get_sample("mCB-Nd")
    sample = Sample(name="mCB-Nd", mass_mg=20.0, molar_mass_g_per_mol=preset.molar_mass_g_per_mol,
                    ions=dict(preset.ions),
                    diamagnetic_emu_per_mol_Oe=preset.diamagnetic_emu_per_mol_Oe)
    with SimulatedLab(speed=5000, seed=3, sample="mCB-Nd", mass_mg=20.0,
                      data_dir=tmp_path / "sim") as lab:
        ep = lab.endpoints["mpms3"]
        mpms3, vsm = connect_mpms3(ep["host"], ep["port"])
        RE, catalog = make_run_engine(tmp_path / "catalog", progress=False)
        RE.subscribe(make_dc_analysis_router(catalog.store, delta_b_T=2.0))
        try:
            yield RE, catalog, mpms3, vsm, sample, preset
        finally:
            catalog.close()
            mpms3.close()


def test_chi_t_settle_stored_and_fitted(lab_and_engine, tmp_path, capsys):
    RE, catalog, mpms3, vsm, sample, preset = lab_and_engine
    temps = [300, 280, 260, 240, 220, 200, 180, 160, 150, 50, 10, 1.8]
    (uid,) = RE(chi_t(mpms3, vsm, sample, field_Oe=1000, mode="settle", temperatures_K=temps,
                      rate_K_per_min=20))
    run = catalog.get_run(uid)
    start = catalog.start_doc(run)
    assert start["plan_name"] == "chi_t" and start["sample"]["mass_mg"] == 20.0
    assert start["hints"]["dimensions"] == [[["mpms3_temperature"], "primary"]]
    data = catalog.read_primary(run)
    assert len(data["vsm_moment"]) == len(temps)
    np.testing.assert_allclose(data["mpms3_temperature_setpoint"], temps)
    np.testing.assert_allclose(data["vsm_temperature"], temps, rtol=0.01, atol=0.02)
    assert np.all(data["vsm_moment"] > 0) and np.all(data["vsm_moment_err"] > 0)
    # instrument time (from the .dat rows) advances with the measurement, far faster than wall
    assert np.all(np.diff(data["vsm_time"]) > 0)
    # stored, linked fit result
    derived = catalog.derived_runs(uid)
    assert len(derived) == 1
    results = derived[0].metadata["start"]["results"]
    pub = preset.published
    assert results["chi_t_300K_emu_K_per_mol"] == pytest.approx(pub["chi_t_300K_emu_K_per_mol"], rel=0.05)
    assert results["theta_K"] == pytest.approx(pub["theta_K"], abs=5.0)
    # the CLI fits the stored raw run the same way
    assert cli_main(["fit", uid[:8], "--json", "--data", str(tmp_path / "catalog")]) == 0
    printed = json.loads(capsys.readouterr().out)
    fit = printed.get("fit", printed)
    assert fit["theta_K"] == pytest.approx(results["theta_K"], rel=1e-9)
    # safe state: field at zero, temperature held where the plan left it
    field, field_state = mpms3.driver.get_field()
    assert abs(field) < 1.0 and field_state in ("Holding (driven)", "Stable")


def test_mce_isotherms_grouped_by_setpoint(lab_and_engine):
    RE, catalog, mpms3, vsm, sample, _ = lab_and_engine
    (uid,) = RE(mce_isotherms(mpms3, vsm, sample, temperatures_K=[1.8, 2.2, 3.0, 4.0],
                              fields_Oe=[0, 2500, 5000, 10000, 20000], field_rate_Oe_per_s=300))
    data = catalog.read_primary(catalog.get_run(uid))
    assert len(data["vsm_moment"]) == 20
    assert sorted(set(np.round(data["mpms3_temperature_setpoint"], 3))) == [1.8, 2.2, 3.0, 4.0]
    results = catalog.derived_runs(uid)[0].metadata["start"]["results"]
    assert results["mce_n_isotherms"] == 4
    assert 0 < results["minus_delta_s_max_R"] < 3 * np.log(2)


@pytest.mark.parametrize("make_plan, words", [
    (lambda m, v, s: chi_t(m, v, s, t_stop_K=0.5), ["t_stop_K", "0.5", "1.8", "400"]),
    (lambda m, v, s: chi_t(m, v, s, field_Oe=90000), ["field_Oe", "90000", "70000"]),
    (lambda m, v, s: chi_t(m, v, s, mode="warp"), ["mode", "warp", "settle", "sweep"]),
    (lambda m, v, s: m_h(m, v, s, temperatures_K=[2, 500], fields_Oe=[0, 1000]),
     ["temperatures_K[1]", "500"]),
    (lambda m, v, s: m_h(m, v, s, temperatures_K=[2], fields_Oe=[0, 1000],
                         field_rate_Oe_per_s=5000), ["field_rate_Oe_per_s", "5000", "700"]),
    (lambda m, v, s: mce_isotherms(m, v, s, temperatures_K=[2]), ["temperatures_K", "2 isotherms"]),
])
def test_bad_input_moves_nothing(lab_and_engine, make_plan, words):
    RE, catalog, mpms3, vsm, sample, _ = lab_and_engine
    before_t = mpms3.driver.get_temperature_setpoints()
    before_h = mpms3.driver.get_field()[0]
    n_runs = len(catalog)
    with pytest.raises(ValueError) as err:
        make_plan(mpms3, vsm, sample)  # the error comes when the plan is made, before RE runs it
    for w in words:
        assert w in str(err.value)
    assert mpms3.driver.get_temperature_setpoints() == before_t
    assert mpms3.driver.get_field()[0] == pytest.approx(before_h, abs=0.5)
    assert len(catalog) == n_runs


def test_bad_sample_metadata_is_rejected():
    with pytest.raises(ValueError, match="mass_mg"):
        Sample(name="x", mass_mg=-3, molar_mass_g_per_mol=100)
    with pytest.raises(ValueError, match="molar_mass_g_per_mol"):
        Sample(name="x", mass_mg=3, molar_mass_g_per_mol=0)


def test_failure_mid_run_leaves_field_zero_and_keeps_data(lab_and_engine):
    RE, catalog, mpms3, vsm, sample, _ = lab_and_engine
    seen = []

    def fault(name, doc):
        if name == "event":
            seen.append(doc["seq_num"])
            if len(seen) == 3:
                raise RuntimeError("injected fault after 3 points")

    token = RE.subscribe(fault)
    with pytest.raises(Exception, match="injected fault"):
        RE(m_h(mpms3, vsm, sample, temperatures_K=[5.0], fields_Oe=[0, 5000, 10000, 20000, 30000],
               field_rate_Oe_per_s=300))
    RE.unsubscribe(token)
    field, state = mpms3.driver.get_field()
    assert abs(field) < 1.0 and state in ("Holding (driven)", "Stable")
    temperature, t_state = mpms3.driver.get_temperature()
    assert temperature == pytest.approx(5.0, abs=0.1)
    runs = [r for r in catalog.runs() if r.plan_name == "m_h"]
    assert runs and runs[-1].status == "fail"
    data = catalog.read_primary(catalog.get_run(runs[-1].uid))
    assert len(data["vsm_moment"]) == 3  # every event before the fault is on disk
