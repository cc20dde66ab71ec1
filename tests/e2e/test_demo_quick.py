"""`spinlight demo --quick --skip-pl`: sweep-mode χT and isotherms on a simulator, stored and fitted."""

import json

from spinlight.cli import main


def test_demo_quick_one_compound(tmp_path):
    out = tmp_path / "demo"
    # the photoluminescence part has its own test (test_pl_end_to_end.py)
    assert main(["demo", "--out", str(out), "--quick", "--samples", "mCB-Yb", "--no-progress",
                 "--skip-pl"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    cells = summary["compounds"]["mCB-Yb"]
    # quick sweep starts at 60 K: the Curie–Weiss window is empty, low-T values exist
    low_t = cells["chi_t_min_T_emu_K_per_mol"]
    assert abs(low_t["simulated_measured_fitted"] - low_t["published"]) / low_t["published"] < 0.05
    assert 0 < cells["minus_delta_s_max_R"]["simulated_measured_fitted"] < 2.08
    assert summary["instrument_hours"] > 1.0
    assert (out / "figures" / "chi_t.png").stat().st_size > 10000
    assert main(["runs", "--data", str(out / "catalog")]) == 0
