"""`spinlight demo --quick --skip-dc --skip-ac`: the photoluminescence part on the simulated lab's
PL bench, stored, fitted, exported as PHU and plotted; one compound to stay fast."""

import json

import numpy as np
import pytest
from ptufile import PhuFile

from spinlight.analysis.pl_run import analyze_decay, decay_from_columns
from spinlight.analysis.pl_streaming import IrfCache
from spinlight.catalog import open_catalog
from spinlight.cli import main
from spinlight.demo_pl import decay_histogram


def test_demo_pl_part_measures_fits_stores_and_exports_mcb_nd(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quick", "--skip-dc", "--skip-ac",
                 "--samples", "mCB-Nd", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "tau Nd, 1060 nm (ns)" in printed and "emission peaks (nm)" in printed
    summary = json.loads((out / "summary.json").read_text())
    cells = summary["pl"]["mCB-Nd"]
    tau = cells["tau_Nd_1060nm_ns"]
    assert tau["published"] == 134.0
    assert abs(tau["relative_deviation"]) < 0.02 and tau["error"] < 0.01 * 134.0
    peaks = cells["emission_peaks_nm"]["simulated_measured_fitted"]
    assert any(abs(p - 1060) < 5 for p in peaks) and any(abs(p - 1334) < 5 for p in peaks)
    assert not any(p < 950 for p in peaks)               # 880 nm band: below the NIR-PMT
    for name in ("pl_spectra_mCB-Nd.png", "decay_mCB-Nd_1060nm.png"):
        assert (out / "figures" / name).stat().st_size > 10000
    irf_uid, decay_uid = summary["runs"]["mCB-Nd"]["pl_lifetime_1060nm"]
    phu = {p.split("_")[-1][:8]: p for p in summary["pl"]["phu_files"]}
    assert set(phu) == {irf_uid[:8], decay_uid[:8]}

    with open_catalog(out / "catalog") as catalog:
        # the PHU files hold what the catalog stored
        for uid in (irf_uid, decay_uid):
            time_ns, counts = decay_histogram(catalog, uid)
            with PhuFile(phu[uid[:8]]) as f:
                np.testing.assert_array_equal(f.histograms()[0], counts)
        # the decay is refitted from the catalog alone, its IRF found by the lookup
        run = catalog.get_run(decay_uid)
        decay = decay_from_columns(catalog.start_doc(run), catalog.read_primary(run))
        irf, note = IrfCache(lambda uid: decay_histogram(catalog, uid)).get(decay.irf_uid)
        assert "irf_lookup" in note
        refit = analyze_decay(decay, irf, irf_note=note)
        (derived,) = catalog.derived_runs(decay_uid)
        stored = catalog.start_doc(derived)["results"]
        assert stored["fit_kind"] == "reconvolution" and stored["irf_uid"] == irf_uid
        assert refit.tau_ns == pytest.approx(stored["tau_ns"], rel=1e-6)
        assert stored["tau_ns"] == tau["simulated_measured_fitted"]
        runs = summary["runs"]["mCB-Nd"]
        (spectrum,) = catalog.derived_runs(runs["pl_excitation_spectrum_1060nm"])
        # excitation at 1060 nm: the ligand band near 300 nm and the Nd 580 nm line
        positions = catalog.start_doc(spectrum)["results"]["peak_positions_nm"]
        assert any(abs(p - 320) < 30 for p in positions)
        assert any(abs(p - 580) < 5 for p in positions)


def test_yb_emission_of_mcb_ndyb_at_980_nm_shows_the_nd_lines():
    """science.md: the Yb emission monitored at 980 nm in mCB-NdYb shows the Nd f-f lines
    (Nd -> Yb transfer, η_ET ≈ 9 %): with the demo's settings for that monitor, the streamed
    analysis of the reference-normalised excitation spectrum finds the ligand band and the
    ⁴G5/2 (≈580 nm) and ⁴F5/2 (≈800 nm) lines as peaks."""
    from bluesky import RunEngine

    from spinlight.analysis.pl_run import SpectrumRunAnalysis
    from spinlight.analysis.pl_streaming import make_pl_analysis_router
    from spinlight.demo_pl import (EXCITATION_MONITOR_NM, connect_pl, excitation_arguments,
                                   pl_campaign)
    from spinlight.plans import Sample
    from spinlight.plans.pl import excitation_spectrum
    from spinlight.simulators.clock import VirtualClock
    from spinlight.simulators.pl_bench import PLBench
    from spinlight.simulators.samples import get_luminescence

    assert 980.0 in EXCITATION_MONITOR_NM["mCB-NdYb"]
    results = []
    RE = RunEngine(context_managers=[])
    RE.subscribe(make_pl_analysis_router(lambda name, doc: None, on_result=results.append))
    clock = VirtualClock(1.0e5, freeze_when_idle=True)
    bench = PLBench(clock, get_luminescence("mCB-NdYb"), seed=0)
    devices = []
    try:
        fl, tcspc, laser = devices = connect_pl(bench.start())
        sample = Sample(name="mCB-NdYb", mass_mg=5.0, molar_mass_g_per_mol=2361.0,
                        ions={"Nd": 1.32, "Yb": 1.68})
        RE(excitation_spectrum(fl, sample, emission_nm=980.0, laser=laser,
                               **excitation_arguments(pl_campaign(True), 980.0)))
    finally:
        for dev in devices:
            dev.close()
        bench.stop()
        clock.stop()
    (spectrum,) = [a for a in results if isinstance(a, SpectrumRunAnalysis)]
    assert spectrum.data.scan == "excitation" and spectrum.data.fixed_nm == 980.0
    positions = [p.position_nm for p in spectrum.result.peaks]
    assert abs(spectrum.result.main_peak.position_nm - 300.0) < 30.0       # ligand band
    for line_nm in (580.0, 800.0):
        assert any(abs(p - line_nm) <= 10.0 for p in positions), (line_nm, positions)
