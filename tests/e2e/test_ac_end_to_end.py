"""ac susceptibility end to end: ac plans → real drivers → simulated instruments over loopback
(MultiPyVu for the MPMS3 AC option) → catalog → streaming fits stored as linked runs."""

import numpy as np
import pytest

from spinlight.analysis.ac_streaming import RelaxationCampaign, make_ac_analysis_router
from spinlight.engine import make_run_engine
from spinlight.instruments.mpms3_device import connect_mpms3
from spinlight.plans import Sample
from spinlight.plans.ac import ac_field_scan, ac_frequency_sweep, ac_temperature_scan, mpms3_ac_station
from spinlight.simulators.lab import SimulatedLab
from spinlight.simulators.samples import get_sample


@pytest.fixture
def mpms3_lab(tmp_path):
    preset = get_sample("Dy-SMM")
    sample = Sample(name="Dy-SMM", mass_mg=20.0, molar_mass_g_per_mol=preset.molar_mass_g_per_mol,
                    ions=dict(preset.ions))
    with SimulatedLab(speed=20000, seed=5, sample="Dy-SMM", mass_mg=20.0,
                      data_dir=tmp_path / "sim") as lab:
        ep = lab.endpoints["mpms3"]
        mpms3, vsm, ac = connect_mpms3(ep["host"], ep["port"], ac=True)
        RE, catalog = make_run_engine(tmp_path / "catalog", progress=False)
        sets, results = [], []
        campaign = RelaxationCampaign(catalog.store)
        RE.subscribe(make_ac_analysis_router(
            catalog.store, on_set=sets.append,
            on_result=lambda r: (results.append(r), campaign(r))))
        try:
            yield lab, RE, catalog, mpms3_ac_station(mpms3, ac), sample, sets, results, campaign
        finally:
            catalog.close()
            mpms3.close()


FREQS = [0.3, 1, 3, 10, 30, 100, 300, 1000]


def test_temperature_scan_is_stored_fitted_per_set_and_linked(mpms3_lab):
    lab, RE, catalog, station, sample, sets, results, _ = mpms3_lab
    temps = [2.0, 2.5, 3.0, 3.5]
    (uid,) = RE(ac_temperature_scan([station], sample, temperatures_K=temps, field_Oe=0.0,
                                    frequencies_Hz=FREQS, averaging_time_s=2.0, cycles=2,
                                    rate_K_per_min=10.0))
    run = catalog.get_run(uid)
    start = catalog.start_doc(run)
    assert start["plan_name"] == "ac_temperature_scan" and start["num_points"] == 32
    assert start["ac_streams"] == ["ac_mpms3"]
    data = catalog.read_stream(run, "ac_mpms3")
    assert len(data["ac_chi_real"]) == 32
    np.testing.assert_allclose(np.unique(data["ac_set_index"]), [0, 1, 2, 3])
    np.testing.assert_allclose(data["ac_frequency_hz"][:8], FREQS)
    # every set was fitted when it completed (the callback saw 4 partial analyses)
    assert len(sets) == 4 and sets[0].dataset.spectra[0].set_id == 0
    # Dy-SMM relaxes slowly at zero field: τ from the fits falls with T
    final = results[-1]
    tau = final.fast["tau_s"]
    assert tau.size >= 3 and np.all(np.diff(tau) < 0)
    derived = catalog.derived_runs(uid)
    assert [d.metadata["start"]["plan_name"] for d in derived] == ["ac_analysis"]
    per_set = catalog.read_stream(derived[0], "primary")
    np.testing.assert_allclose(per_set["tau_s"], tau, rtol=1e-9)
    # safe state on the simulator itself: field zero, temperature held where the run ended
    sim = lab.mpms3
    t_now = lab.clock.now()
    assert sim.magnet.setpoint_Oe == 0.0
    assert sim.temperature.setpoint_K == pytest.approx(3.5)
    assert abs(sim.magnet.value(t_now)) < 1.0


def test_bad_frequency_is_refused_before_anything_moves(mpms3_lab):
    lab, RE, catalog, station, sample, *_ = mpms3_lab
    before = (lab.mpms3.temperature.setpoint_K, lab.mpms3.magnet.setpoint_Oe)
    with pytest.raises(ValueError, match=r"frequencies_Hz\[1\]=5000.0 Hz is outside the allowed range 0.1..1000.0 Hz"):
        ac_frequency_sweep([station], sample, temperature_K=2.0, field_Oe=1000.0,
                           frequencies_Hz=[10, 5000])
    with pytest.raises(ValueError, match="amplitude_Oe"):
        ac_field_scan([station], sample, temperature_K=2.0, fields_Oe=[0, 1000],
                      frequencies_Hz=[10], amplitude_Oe=50.0)
    assert (lab.mpms3.temperature.setpoint_K, lab.mpms3.magnet.setpoint_Oe) == before


def test_mpms3_and_ppms_give_one_merged_spectrum(tmp_path):
    """0.1 Hz–10 kHz for one sample: MPMS3 AC (MultiPyVu) below 1 kHz, PPMS ACMS (pyvisa GPIB
    dialect over TCP) above; one fitted spectrum per set; both instruments left safe."""
    from spinlight.instruments.mpms3_device import mpms3_ac_detector
    from spinlight.instruments.ppms_device import connect_ppms, ppms_ac_detector
    from spinlight.plans.ac import ppms_ac_station

    preset = get_sample("mCB-Yb")
    sample = Sample(name="mCB-Yb", mass_mg=20.0, molar_mass_g_per_mol=preset.molar_mass_g_per_mol)
    with SimulatedLab(speed=20000, seed=2, sample="mCB-Yb", mass_mg=20.0,
                      data_dir=tmp_path / "sim") as lab:
        ep = lab.endpoints
        mpms3, _ = connect_mpms3(ep["mpms3"]["host"], ep["mpms3"]["port"])
        ppms = connect_ppms(ep["ppms"]["resource"])
        stations = [mpms3_ac_station(mpms3, mpms3_ac_detector(mpms3, name="mpms3_ac")),
                    ppms_ac_station(ppms, ppms_ac_detector(ppms))]
        RE, catalog = make_run_engine(tmp_path / "catalog", progress=False)
        results = []
        RE.subscribe(make_ac_analysis_router(catalog.store, on_result=results.append))
        freqs = [1, 10, 100, 300, 1000, 2000, 3000, 5000, 7000, 10000]
        try:
            (uid,) = RE(ac_frequency_sweep(stations, sample, temperature_K=2.0, field_Oe=2000.0,
                                           frequencies_Hz=freqs, averaging_time_s=2.0, cycles=2))
            run = catalog.get_run(uid)
            start = catalog.start_doc(run)
            assert start["ac_streams"] == ["ac_mpms3", "ac_ppms"]
            assert start["plan_args"]["frequencies_Hz"] == {"mpms3": freqs[:5], "ppms": freqs[5:]}
            m = catalog.read_stream(run, "ac_mpms3")
            p = catalog.read_stream(run, "ac_ppms")
            np.testing.assert_allclose(m["mpms3_ac_frequency_hz"], freqs[:5])
            np.testing.assert_allclose(p["ppms_ac_frequency_hz"], freqs[5:])
            # the PPMS rows came through its own ACMS .dat (moment-type columns / drive)
            assert lab.ppms.datafile.exists() and p["ppms_ac_measurement_number"][0] >= 1
            (analysis,) = results
            assert len(analysis.dataset.spectra) == 1 and len(analysis.dataset.spectra[0]) == 10
            tau = analysis.fast["tau_s"][0]
            true = get_ac_model_tau("mCB-Yb", 2.0, 2000.0)
            assert tau == pytest.approx(true, rel=0.1)
            t_now = lab.clock.now()
            for sim in (lab.mpms3, lab.ppms):       # safe state on the simulators themselves
                assert sim.magnet.setpoint_Oe == 0.0 and abs(sim.magnet.value(t_now)) < 1.0
                assert sim.temperature.setpoint_K == pytest.approx(2.0)
        finally:
            catalog.close()
            mpms3.close()
            ppms.close()


def get_ac_model_tau(name, t, h):
    from spinlight.simulators.samples import get_ac_model
    return float(np.min(get_ac_model(name).tau_s(t, h)))
