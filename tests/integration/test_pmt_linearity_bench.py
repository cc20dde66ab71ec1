"""The counting-loss correction on the PL bench over loopback: the mCB-Nd 1060 nm band scanned
at two lamp intensities (excitation slit 250 and 1000 µm, ~4x the light). The band's shape
cannot depend on the intensity, so the point-by-point ratio of the two scans must be flat: it
is after the correction, and it sags at the band peak (where the bright scan loses ~15 % of
its counts) without it. The counter's saturation rate is configuration, checked on put."""

from __future__ import annotations

import numpy as np
import pytest
from bluesky import RunEngine

from pl_benches import fluorometer_bench

from spinlight.analysis.pl_run import spectrum_from_columns
from spinlight.plans import Sample
from spinlight.plans.pl import emission_spectrum

SAMPLE = Sample(name="mCB-Nd", mass_mg=5.0, molar_mass_g_per_mol=2312.0, ions={"Nd": 3})


@pytest.fixture(scope="module")
def bench():
    with fluorometer_bench("mCB-Nd", seed=11) as pl_fl:
        yield pl_fl


def _scan(fl, excitation_slit_um):
    docs = []
    RE = RunEngine(context_managers=[])
    RE(emission_spectrum(fl, SAMPLE, excitation_nm=330.0, start_nm=1044.0, stop_nm=1076.0,
                         step_nm=4.0, gate_s=8.0, excitation_slit_um=excitation_slit_um),
       lambda name, doc: docs.append((name, doc)))
    (start,) = [d for n, d in docs if n == "start"]
    events = [d["data"] for n, d in docs if n == "event"]
    return start, spectrum_from_columns(start, {k: [e[k] for e in events] for k in events[0]})


def test_the_band_shape_does_not_depend_on_the_intensity_once_corrected(bench):
    pl, fl = bench
    start, dim = _scan(fl, 250.0)
    _, bright = _scan(fl, 1000.0)
    assert start["spectrum"]["saturation_count_rate_cps"] == pl.housing.pmt.saturation_count_rate_cps
    assert bright.linearity_scalars["linearity_correction_max_percent"] > 10.0
    peak, wing = int(np.argmax(bright.measured_cps)), -1         # 1060 nm, 1076 nm
    ratio_measured = (bright.measured_cps - bright.dark_cps) / (dim.measured_cps - dim.dark_cps)
    ratio = (bright.signal_cps - bright.dark_cps) / (dim.signal_cps - dim.dark_cps)
    # bright scan: ~13 % lost at the peak, ~6 % at 1076 nm; the dim one ~4 % and ~2 %. Poisson
    # σ of the peak/wing change with 8 s gates: ~0.5 %
    sag_measured = ratio_measured[peak] / ratio_measured[wing] - 1.0
    sag = ratio[peak] / ratio[wing] - 1.0
    print(f"peak/wing ratio change: measured {sag_measured:+.3%}, corrected {sag:+.3%}")
    assert sag_measured < -0.04
    assert abs(sag) < 0.02


def test_the_saturation_rate_is_checked_when_configured(bench):
    _, fl = bench
    signal = fl.counter.saturation_count_rate_cps
    with pytest.raises(ValueError, match=r"saturation_count_rate_cps=0 is out of range; allowed "
                                         r"range: 10000..1e\+10 cps"):
        signal.put(0)
    assert signal.get() == 1.0e6
    config = fl.counter.read_configuration()          # recorded with every run's descriptor
    assert config[signal.name]["value"] == 1.0e6
