"""Peaks and integrated intensities of PL spectra (spinlight.analysis.pl_spectra).

Ground truth: mCB-Nd emission and excitation from LuminescenceModel (published emission peaks
1060 and 1334 nm; Nd f–f excitation lines at 580 and 800 nm), and analytic Gaussians whose
position, FWHM and area are known in closed form. Integrals are checked against a 0.01 nm
trapezoid of the noise-free curve; the reported integral error against the scatter of many
noisy copies.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from spinlight.analysis.pl_spectra import analyze_spectrum
from spinlight.simulators.samples import get_luminescence

SIGMA_PER_FWHM = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def gauss(x, centre, fwhm, height):
    return height * np.exp(-0.5 * ((x - centre) / (fwhm * SIGMA_PER_FWHM)) ** 2)


@pytest.fixture(scope="module")
def nd_emission():
    model = get_luminescence("mCB-Nd")
    return lambda x: model.emission_spectrum(x, excitation_nm=375.0) * 1e11     # → ~2e5 cps


def test_mcb_nd_emission_peaks_and_band_integrals(nd_emission):
    x = np.arange(950.0, 1400.1, 1.0)
    rng = np.random.default_rng(0)
    dark = 2.0e4
    y = rng.poisson(nd_emission(x) + dark).astype(float)
    r = analyze_spectrum(x, y, dark_cps=dark)
    main = r.main_peak
    assert main.position_nm == pytest.approx(1060.0, abs=0.5)
    assert main.height_cps == pytest.approx(nd_emission(np.array([1060.0]))[0], rel=0.02)
    assert any(abs(p.position_nm - 1334.0) < 0.5 for p in r.peaks)
    assert len(r.bands) == 2
    fine = np.arange(950.0, 1400.0, 0.01)
    for band, (lo, hi) in zip(r.bands, ((1000.0, 1150.0), (1250.0, 1400.0))):
        assert lo < band.lo_nm and band.hi_nm < hi
        sel = (fine >= lo) & (fine <= hi)
        true = np.trapezoid(nd_emission(fine[sel]), fine[sel])
        assert band.integral_cps_nm == pytest.approx(true, rel=0.01)
        assert abs(band.integral_cps_nm - true) < 4 * band.integral_err_cps_nm
    true_total = np.trapezoid(nd_emission(fine), fine)
    assert r.total_integral_cps_nm == pytest.approx(true_total, rel=0.01)
    # FWHM of the 1060 nm band (main Stark line + red satellite) from the noise-free curve
    f = nd_emission(fine)
    above = fine[f >= 0.5 * f[np.argmin(np.abs(fine - 1060.0))]]
    above = above[(above > 1000) & (above < 1150)]
    assert main.fwhm_nm == pytest.approx(above[-1] - above[0], abs=0.5)


def test_excitation_spectrum_finds_the_nd_ff_lines():
    model = get_luminescence("mCB-Nd")
    x = np.arange(250.0, 900.1, 2.0)
    s = model.excitation_spectrum(x, emission_nm=1060.0)
    rng = np.random.default_rng(1)
    y = rng.poisson(s / s.max() * 1e4 + 2e3).astype(float)
    r = analyze_spectrum(x, y, dark_cps=2e3, scan="excitation")
    for line in (580.0, 740.0, 800.0):
        assert min(abs(r.peak_positions_nm - line)) < 1.0, line
    assert r.scan == "excitation" and r.to_dict()["scan"] == "excitation"


def test_position_height_fwhm_and_area_of_gaussians_between_samples():
    x = np.arange(500.0, 700.0, 2.0)
    y = gauss(x, 571.3, 12.0, 1e4) + gauss(x, 640.7, 20.0, 4e3)
    r = analyze_spectrum(x, y)
    assert [p.position_nm for p in r.peaks] == [pytest.approx(571.3, abs=0.1),
                                                 pytest.approx(640.7, abs=0.1)]
    assert [p.height_cps for p in r.peaks] == [pytest.approx(1e4, rel=0.01),
                                               pytest.approx(4e3, rel=0.01)]
    assert [p.fwhm_nm for p in r.peaks] == [pytest.approx(12.0, rel=0.02),
                                            pytest.approx(20.0, rel=0.02)]
    area = [h * w * SIGMA_PER_FWHM * math.sqrt(2 * math.pi) for h, w in ((1e4, 12.0), (4e3, 20.0))]
    assert [b.integral_cps_nm for b in r.bands] == [pytest.approx(a, rel=0.01) for a in area]


@pytest.mark.parametrize("step_nm", [1.0, 2.0, 4.0])
def test_the_peak_of_an_asymmetric_band_is_not_pulled_to_its_long_flank(step_nm):
    # the mCB-Yb band (steep blue edge, long red tail), noise-free, at 8 grid offsets: the
    # maximum of the symmetric-window fit (a cubic: the asymmetry is resolved) is within 0.15
    # step of the model maximum (a parabola: up to 0.28 step)
    model = get_luminescence("mCB-Yb")
    fine = np.arange(950.0, 1100.0, 0.005)
    true_nm = fine[np.argmax(model.emission_spectrum(fine, excitation_nm=375.0))]
    for offset in np.arange(8) / 8.0:
        x = np.arange(900.0 + offset * step_nm, 1150.0, step_nm)
        y = model.emission_spectrum(x, excitation_nm=375.0)
        pos = analyze_spectrum(x, y / y.max() * 1e5).main_peak.position_nm
        assert abs(pos - true_nm) < 0.15 * step_nm, (offset, pos, true_nm)


def split_gauss(x, x0, sigma_blue, sigma_red, height):
    return height * np.exp(-0.5 * ((x - x0) / np.where(x < x0, sigma_blue, sigma_red)) ** 2)


def test_a_skewed_top_is_fitted_by_a_cubic_and_a_symmetric_one_by_a_parabola():
    # split Gaussian 8 / 16 nm, 2 nm steps, noise-free: the parabola's vertex is 0.6 step
    # towards the long flank, the cubic's 0.3 (the kink at the top limits any polynomial)
    errs = []
    for offset in np.arange(8) / 8.0:
        x = np.arange(900.0 + 2.0 * offset, 1100.0, 2.0)
        errs.append(analyze_spectrum(x, split_gauss(x, 1000.0, 8.0, 16.0, 1e5))
                    .main_peak.position_nm - 1000.0)
    assert 0.0 < np.mean(errs) < 0.4 * 2.0
    # a symmetric band under Poisson noise keeps the parabola: σ 0.13 nm (a cubic: 0.21)
    rng = np.random.default_rng(7)
    x = np.arange(900.0, 1100.0, 1.0)
    spread = [analyze_spectrum(x, rng.poisson(split_gauss(x, 1000.3, 8.0, 8.0, 1e4)).astype(float))
              .main_peak.position_nm - 1000.3 for _ in range(100)]
    assert abs(np.mean(spread)) < 0.05 and np.std(spread) < 0.17


def test_dark_rate_is_subtracted_before_integrating():
    x = np.linspace(900.0, 1100.0, 201)
    y = gauss(x, 1000.0, 15.0, 5e3)
    clean = analyze_spectrum(x, y)
    dark = analyze_spectrum(x, y + 300.0, dark_cps=300.0)
    ignored = analyze_spectrum(x, y + 300.0)
    assert dark.total_integral_cps_nm == pytest.approx(clean.total_integral_cps_nm)
    assert ignored.total_integral_cps_nm == pytest.approx(clean.total_integral_cps_nm
                                                          + 300.0 * 200.0)
    assert dark.to_dict()["dark_cps"] == 300.0


def test_explicit_bands_and_reported_error_match_the_scatter_of_noisy_copies():
    x = np.linspace(900.0, 1100.0, 201)
    truth = gauss(x, 1000.0, 15.0, 2e3)
    rng = np.random.default_rng(7)
    values, errors = [], []
    for _ in range(60):
        r = analyze_spectrum(x, truth + rng.normal(0.0, 50.0, x.size),
                             bands=[(960.5, 1040.5)])
        (band,) = r.bands
        values.append(band.integral_cps_nm)
        errors.append(band.integral_err_cps_nm)
    assert not band.detected and (band.lo_nm, band.hi_nm) == (960.5, 1040.5)
    assert r.to_dict()["bands_source"] == "explicit"
    fine = np.linspace(960.5, 1040.5, 8001)
    true = np.trapezoid(gauss(fine, 1000.0, 15.0, 2e3), fine)
    assert np.mean(values) == pytest.approx(true, abs=3 * np.std(values) / math.sqrt(60))
    assert np.mean(errors) == pytest.approx(np.std(values), rel=0.3)
    assert np.mean(errors) == pytest.approx(50.0 * math.sqrt(80.0), rel=0.2)   # σ·√(N·Δ²)


def test_noise_alone_gives_no_peaks_and_poisson_noise_no_spurious_peaks():
    rng = np.random.default_rng(3)
    x = np.arange(1000.0, 1300.0, 1.0)
    r = analyze_spectrum(x, rng.poisson(2000.0, x.size).astype(float), dark_cps=2000.0)
    assert r.peaks == [] and r.bands == []
    strong = rng.poisson(gauss(x, 1150.0, 30.0, 4e5) + 2e3).astype(float)
    r = analyze_spectrum(x, strong, dark_cps=2e3)
    assert len(r.peaks) == 1 and r.peaks[0].position_nm == pytest.approx(1150.0, abs=0.3)
    assert len(r.bands) == 1


def test_min_prominence_drops_the_weaker_peaks():
    x = np.arange(500.0, 700.0, 1.0)
    y = gauss(x, 550.0, 10.0, 1e4) + gauss(x, 640.0, 10.0, 1e3)
    assert len(analyze_spectrum(x, y).peaks) == 2
    (p,) = analyze_spectrum(x, y, min_prominence=5e3).peaks
    assert p.position_nm == pytest.approx(550.0, abs=0.05)


def test_scan_direction_does_not_matter_and_results_serialise():
    x = np.arange(950.0, 1150.0, 1.0)
    y = gauss(x, 1060.0, 14.0, 1e4)
    up, down = analyze_spectrum(x, y), analyze_spectrum(x[::-1], y[::-1])
    assert up.to_dict() == down.to_dict()
    d = json.loads(json.dumps(up.to_dict()))
    assert d["peak_positions_nm"] == [pytest.approx(1060.0, abs=0.01)]
    assert d["peak1_nm"] == d["main_peak_nm"] and d["n_bands"] == 1
    assert "1060.00 nm" in up.report() and "band1" in up.report()


@pytest.mark.parametrize("kwargs, words", [
    ({"scan": "raman"}, ["scan='raman'", "emission", "excitation"]),
    ({"dark_cps": -1.0}, ["dark_cps=-1.0", ">= 0"]),
    ({"bands": [(900.0, 960.0)]}, ["bands[0]=(900.0, 960.0)", "950", "1149"]),
    ({"bands": [(1000.0,)]}, ["bands[0]=(1000.0,)", "(lo_nm, hi_nm)"]),
    ({"bands": 3}, ["bands=3", "(lo_nm, hi_nm)"]),
    ({"min_prominence": 0.0}, ["min_prominence=0.0", "> 0"]),
])
def test_bad_options_name_parameter_value_and_range(kwargs, words):
    x = np.arange(950.0, 1150.0, 1.0)
    with pytest.raises(ValueError) as err:
        analyze_spectrum(x, gauss(x, 1060.0, 14.0, 1e4), **kwargs)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_bad_arrays_name_parameter_value_and_range():
    x = np.arange(950.0, 960.0, 1.0)
    with pytest.raises(ValueError, match="signal_cps has 9 values; allowed: exactly 10"):
        analyze_spectrum(x, np.ones(9))
    with pytest.raises(ValueError, match=r"wavelength_nm has the value 951.0 twice"):
        analyze_spectrum(np.r_[x[:-1], 951.0], np.ones(10))
    with pytest.raises(ValueError, match=r"signal_cps\[2\]=nan is not finite"):
        analyze_spectrum(x, np.r_[1.0, 1.0, np.nan, np.ones(7)])
    with pytest.raises(ValueError, match="wavelength_nm has 3 values; allowed: at least 5"):
        analyze_spectrum(x[:3], np.ones(3))
    with pytest.raises(ValueError, match=r"wavelength_nm\[0\]=-1.0 is out of range"):
        analyze_spectrum(np.r_[-1.0, x[1:]], np.ones(10))
