"""dc plans without hardware: field loops, MCE grids, start metadata, validation timing."""

import pytest
from bluesky.simulators import summarize_plan  # noqa: F401  (plans are message generators)

from spinlight.plans import Sample, full_loop, mce_field_grid
from spinlight.plans.dc import chi_t


def test_full_loop_goes_up_down_and_back():
    assert full_loop([0, 1000, 2000]) == [0.0, 1000.0, 2000.0, 1000.0, 0.0, -1000.0, -2000.0,
                                          -1000.0, 0.0, 1000.0, 2000.0]


def test_mce_grid_is_dense_at_low_field_and_reaches_max():
    grid = mce_field_grid(50000)
    assert grid[0] == 0 and grid[-1] == pytest.approx(50000)
    assert all(b > a for a, b in zip(grid, grid[1:]))
    assert sum(h <= 10000 for h in grid) >= 6
    with pytest.raises(ValueError, match="max_field_Oe"):
        mce_field_grid(90000)


def test_plan_validation_happens_at_call_time_not_at_run_time():
    sample = Sample(name="s", mass_mg=10, molar_mass_g_per_mol=500)
    # devices are never touched: the error comes from the call itself
    with pytest.raises(ValueError, match="log_interval_s"):
        chi_t(None, None, sample, mode="sweep", log_interval_s=0.01)
    with pytest.raises(ValueError, match="sample"):
        chi_t(None, None, "not a sample")


def test_sample_metadata_round_trip():
    s = Sample(name="mCB-NdYb", mass_mg=21.3, molar_mass_g_per_mol=2361,
               ions={"Nd": 1.32, "Yb": 1.68}, diamagnetic_emu_per_mol_Oe=-1.2e-3)
    md = s.to_md()
    assert md["ions_per_formula_unit"] == pytest.approx(3.0)
    assert Sample.from_md(md) == s
