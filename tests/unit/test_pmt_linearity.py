"""Counting-loss correction of the photon counter (analysis.pmt_linearity), checked against
the simulated NIR-PMT's own forward model, and the counter's configuration signal."""

import numpy as np
import pytest

from analysis.pl_run import spectrum_from_columns
from analysis.pmt_linearity import saturation_from_start, true_count_rate, true_count_rate_slope
from simulators.samples.decay_physics import NirPmt


def test_the_correction_inverts_the_detector_model():
    pmt = NirPmt()
    true = np.array([0.0, 1e3, 5e4, 2e5, 8e5, 5e6])
    # the simulator's counter: photons/s at 1050 nm, through its QE, saturating
    measured = pmt.detected_rate(true / pmt.quantum_efficiency(1050.0), 1050.0, include_dark=False)
    assert measured[-1] < pmt.saturation_count_rate_cps
    np.testing.assert_allclose(true_count_rate(measured, pmt.saturation_count_rate_cps), true,
                               rtol=1e-10, atol=1e-9)
    m = np.array([1e4, 3e5])
    h = 1.0
    numeric = (true_count_rate(m + h, 1e6) - true_count_rate(m - h, 1e6)) / (2 * h)
    np.testing.assert_allclose(true_count_rate_slope(m, 1e6), numeric, rtol=1e-6)


@pytest.mark.parametrize("measured, saturation, match", [
    ([1e3, 1e6], 1e6, r"measured count rate 1000000.0 cps is out of range; allowed range: 0 <= "
                      r"rate < saturation_count_rate_cps=1e\+06 cps"),
    ([-5.0], 1e6, r"measured count rate -5.0 cps is out of range"),
    ([1.0], 0.0, r"saturation_count_rate_cps=0.0 is out of range; allowed range: finite and > 0"),
])
def test_impossible_rates_are_refused(measured, saturation, match):
    with pytest.raises(ValueError, match=match):
        true_count_rate(measured, saturation)


def _start(saturation):
    spectrum = {"scan": "emission", "wavelength_key": "wl", "signal_key": "cps", "dark_cps": 1e4}
    if saturation is not None:
        spectrum["saturation_count_rate_cps"] = saturation
    return {"uid": "u", "spectrum": spectrum}


def test_a_spectrum_run_is_read_with_its_losses_corrected():
    cols = {"wl": [1000.0, 1010.0], "cps": [5e4, 2e5]}
    data = spectrum_from_columns(_start(1e6), cols)
    np.testing.assert_allclose(data.signal_cps, [5e4 / 0.95, 2e5 / 0.8])
    assert data.dark_cps == pytest.approx(1e4 / 0.99)
    np.testing.assert_array_equal(data.measured_cps, [5e4, 2e5])
    assert data.linearity_scalars == {"linearity_corrected": True, "saturation_count_rate_cps": 1e6,
                                      "linearity_correction_max_percent": pytest.approx(25.0)}
    old = spectrum_from_columns(_start(None), cols)                 # runs from before: as counted
    np.testing.assert_array_equal(old.signal_cps, [5e4, 2e5])
    assert old.dark_cps == 1e4 and old.linearity_scalars == {"linearity_corrected": False}
    with pytest.raises(ValueError, match=r"saturation_count_rate_cps=-1.0 is out of range"):
        saturation_from_start(_start(-1.0))
