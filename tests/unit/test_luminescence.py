"""Luminescence sample physics: spectra, Nd→Yb kinetics, TCSPC histograms (IRF, periodic tails,
pile-up, dark counts), Poisson counting, detector, input checks."""

import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import curve_fit
from scipy.signal import find_peaks

from spinlight.simulators.samples import (
    LUMINESCENCE_PRESETS,
    InstrumentResponse,
    NirPmt,
    get_luminescence,
    sample_histogram,
)


def _peaks(x, y, rel=0.02):
    idx, _ = find_peaks(y, height=rel * y.max())
    return x[idx]


def _hist(name, edges, em, *, rate=2e4, mu=1e-4, irf=None, **kw):
    return get_luminescence(name).expected_histogram(
        edges, emission_nm=em, excitation_nm=375.0, repetition_rate_hz=rate,
        photons_per_pulse=mu, irf=irf, **kw)


# ------------------------------------------------------------------ spectra
@pytest.mark.parametrize("name, peaks", [("mCB-Nd", (880.0, 1060.0, 1334.0)), ("mCB-Yb", (1000.0,)),
                                         ("mCB-NdYb", (880.0, 998.0, 1060.0, 1334.0))])
def test_emission_band_positions(name, peaks):
    m = get_luminescence(name)
    lam = np.arange(820.0, 1450.0, 0.1)
    spec = m.emission_spectrum(lam, excitation_nm=375.0)
    found = _peaks(lam, spec)
    for p in peaks:
        assert np.min(np.abs(found - p)) <= 2.0, (p, found)
    if name == "mCB-Yb":  # Stark structure, maximum at the published 1000 nm
        assert abs(lam[spec.argmax()] - 1000.0) <= 2.0 and len(found) >= 2
    if name == "mCB-Nd":  # strongest band of Nd is 4I11/2
        assert abs(lam[spec.argmax()] - 1060.0) <= 2.0


def test_spectra_are_zero_where_nothing_emits():
    nd, yb = get_luminescence("mCB-Nd"), get_luminescence("mCB-Yb")
    assert np.all(nd.emission_spectrum([600.0, 950.0, 1200.0], excitation_nm=300.0) == 0.0)
    assert np.all(yb.emission_spectrum([880.0, 1334.0], excitation_nm=300.0) == 0.0)
    assert nd.emission_spectrum(1060.0, excitation_nm=300.0) > 0
    assert nd.lifetimes_ns(950.0) == () and nd.decay_components(950.0) == ((), ())


def test_excitation_spectra_ligand_band_and_ff_lines():
    ex = np.arange(250.0, 900.0, 0.5)
    cases = {"mCB-Nd": 1060.0, "mCB-NdYb": 980.0, "mCB-Yb": 1000.0}
    spectra = {n: get_luminescence(n).excitation_spectrum(ex, emission_nm=em) for n, em in cases.items()}
    for n, y in spectra.items():
        assert abs(ex[y.argmax()] - 300.0) <= 3.0, n           # ligand band
        assert y[ex == 375.0][0] > 0.1 * y.max()                # the 375 nm laser excites it
    for n in ("mCB-Nd", "mCB-NdYb"):                            # Nd lines (also on Yb via transfer)
        y = spectra[n]
        found = _peaks(ex, y, rel=0.01)
        for line in (580.0, 740.0, 800.0):
            assert np.min(np.abs(found - line)) <= 2.0, (n, line)
            assert y[ex == line][0] > 5 * y[ex == line - 30.0][0], (n, line)
    yb = spectra["mCB-Yb"]
    assert list(_peaks(ex, yb, rel=1e-9)) == [300.0]            # no f-f lines at all
    assert np.all(yb[ex >= 500.0] < 2e-3 * yb.max()) and np.all(yb[ex >= 780.0] == 0.0)


# ------------------------------------------------------------------ kinetics
def test_mixed_compound_transfer_kinetics():
    m = get_luminescence("mCB-NdYb")
    assert m.transfer_efficiency == pytest.approx(1 - 122 / 134)
    assert m.transfer_efficiency == pytest.approx(m.published["eta_ET"])
    assert 0.085 < m.transfer_efficiency < 0.095
    assert m.lifetimes_ns(1060.0) == (122.0,)
    assert m.lifetimes_ns(980.0) == (122.0, 607.0)
    w, taus = m.decay_components(980.0)
    assert taus == (122.0, 607.0) and w[0] < 0 < w[1]           # rise with the Nd donor lifetime
    t = np.linspace(0.0, 400.0, 4001)
    y = m.decay_shape(t, emission_nm=980.0)
    assert 40.0 < t[y.argmax()] < 100.0 and y.max() > 1.02 * y[0]
    y800 = m.decay_shape(t, emission_nm=980.0, excitation_nm=800.0)  # Nd f-f only: all via transfer
    assert y800[0] == 0.0 and y800.max() > 0
    pure = get_luminescence("mCB-Yb").decay_shape(t, emission_nm=1000.0)
    assert t[pure.argmax()] == 0.0
    assert get_luminescence("mCB-Nd").lifetimes_ns(1060.0) == (134.0,)
    assert get_luminescence("mCB-Yb").lifetimes_ns(1000.0) == (608.0,)


@pytest.mark.parametrize("name, em, ex", [("mCB-Nd", 1060.0, 375.0), ("mCB-Yb", 980.0, 300.0),
                                          ("mCB-NdYb", 980.0, 375.0), ("mCB-NdYb", 1000.0, 800.0),
                                          ("mCB-NdYb", 1060.0, 580.0)])
def test_decay_shape_unit_area(name, em, ex):
    m = get_luminescence(name)
    f = lambda t: float(m.decay_shape(t, emission_nm=em, excitation_nm=ex))  # noqa: E731
    assert quad(f, 0.0, np.inf, limit=200)[0] == pytest.approx(1.0, abs=1e-6)
    assert m.decay_shape(-1.0, emission_nm=em, excitation_nm=ex) == 0.0


@pytest.mark.parametrize("name, em, tau, t_start", [("mCB-Nd", 1060.0, 134.0, 20.0),
                                                    ("mCB-Yb", 1000.0, 608.0, 20.0),
                                                    ("mCB-NdYb", 1060.0, 122.0, 20.0),
                                                    ("mCB-NdYb", 980.0, 607.0, 1300.0)])
def test_tail_fit_recovers_lifetime(name, em, tau, t_start):
    edges = np.arange(0.0, 6000.0 + 1e-9, 2.0)
    h = _hist(name, edges, em)
    t = 0.5 * (edges[1:] + edges[:-1])
    s = (t > t_start) & (t < t_start + 5 * tau) & (h > 0)
    p, _ = curve_fit(lambda x, a, k: a * np.exp(-(x - t_start) / k), t[s], h[s], p0=(h[s][0], 0.8 * tau))
    assert p[1] == pytest.approx(tau, rel=5e-3)


def test_biexponential_fit_of_yb_rise():
    edges = np.arange(0.0, 6000.0 + 1e-9, 2.0)
    h = _hist("mCB-NdYb", edges, 980.0)
    t = 0.5 * (edges[1:] + edges[:-1])

    def model(x, a1, k1, a2, k2):
        return a1 * np.exp(-x / k1) + a2 * np.exp(-x / k2)

    p, _ = curve_fit(model, t, h, p0=(-0.1 * h[0], 100.0, 1.2 * h[0], 500.0), maxfev=20000)
    assert p[1] == pytest.approx(122.0, rel=5e-3) and p[3] == pytest.approx(607.0, rel=5e-3)
    assert p[0] < 0 < p[2]


# ------------------------------------------------------------------ histogram physics
def test_previous_pulse_tails_raise_the_baseline():
    tau, t0 = 608.0, 100.0
    period = 2.0 * tau                                          # 1/rep < 5 tau
    edges = np.arange(0.0, period + 1e-9, period / 1216)
    h = _hist("mCB-Yb", edges, 1000.0, rate=1e9 / period, mu=1e-6, dead_time_ns=None, pulse_time_ns=t0)
    lo, hi = edges[:-1], edges[1:]
    pre = hi <= t0
    prev = np.exp(-(lo - t0 + period) / tau) - np.exp(-(hi - t0 + period) / tau)  # earlier pulses
    analytic = (1e9 / period) * 1e-6 * prev / -math.expm1(-period / tau)
    np.testing.assert_allclose(h[pre], analytic[pre], rtol=1e-5)
    assert h[pre].mean() > 0.1 * h.max()
    long_period = 1e5                                           # 1/rep = 164 tau
    edges = np.arange(0.0, long_period + 1e-9, 50.0)
    h = _hist("mCB-Yb", edges, 1000.0, rate=1e9 / long_period, mu=1e-6, pulse_time_ns=t0)
    assert h[edges[1:] <= t0].max() < 1e-30 * h.max()


def test_irf_shape_tail_and_reconvolution():
    irf = NirPmt().irf()
    fine = np.arange(-5.0, 60.0, 0.002)
    shape = irf.shape(fine)
    assert shape.sum() == pytest.approx(1.0, abs=1e-9)
    assert 0.3 <= irf.fwhm_ns() <= 1.0
    centres = 0.5 * (fine[1:] + fine[:-1])
    assert shape[centres > centres[shape.argmax()] + 2.0].sum() > 0.03   # slow detector tail
    edges = np.arange(0.0, 50_000.0 + 1e-9, 1.0)
    kw = dict(rate=2e4, mu=1e-6, pulse_time_ns=30.0, dead_time_ns=None)
    with_irf = _hist("mCB-Nd", edges, 1060.0, irf=irf, **kw)
    ideal = _hist("mCB-Nd", edges, 1060.0, **kw)
    assert with_irf.sum() == pytest.approx(ideal.sum(), rel=1e-6)         # IRF conserves photons
    tau, s, f, tt = 134.0, irf.sigma_ns, irf.tail_fraction, irf.tail_tau_ns
    mgf = math.exp(0.5 * (s / tau) ** 2) * ((1 - f) + f / (1 - tt / tau))  # E[e^(t'/tau)] of the IRF
    tail = (edges[:-1] > 60.0) & (edges[1:] < 1000.0)
    np.testing.assert_allclose(with_irf[tail] / ideal[tail], mgf, rtol=1e-8)
    assert with_irf[:20].max() < 1e-12 * with_irf.max()                   # nothing before the pulse
    assert 30.0 <= edges[with_irf.argmax()] <= 36.0          # IRF tail delays the maximum
    at_zero = _hist("mCB-Nd", edges, 1060.0, irf=irf, **{**kw, "pulse_time_ns": 0.0})
    assert at_zero.sum() == pytest.approx(ideal.sum(), rel=1e-6)  # early IRF half wraps to the end
    assert at_zero[-1] > 1e-3 * at_zero.max()


def test_pile_up_first_photon_and_dead_time():
    period = 1e4
    edges = np.linspace(0.0, period, 5001)
    t = 0.5 * (edges[1:] + edges[:-1])
    early = t < 3000.0

    def mean_time(h):
        return (h[early] * t[early]).sum() / h[early].sum()

    ref = mean_time(_hist("mCB-Nd", edges, 1060.0, rate=1e5, mu=1e-6, dead_time_ns=None))
    assert ref == pytest.approx(134.0, rel=1e-3)
    for mu, dark in [(0.01, 0.0), (1.0, 2e4)]:                  # first photon per sync cycle
        h = _hist("mCB-Nd", edges, 1060.0, rate=1e5, mu=mu, dead_time_ns=None, dark_count_rate_cps=dark)
        assert h.sum() == pytest.approx(1e5 * -math.expm1(-(mu + dark * period * 1e-9)), rel=1e-9)
    low = mean_time(_hist("mCB-Nd", edges, 1060.0, rate=1e5, mu=0.01, dead_time_ns=None))
    high = mean_time(_hist("mCB-Nd", edges, 1060.0, rate=1e5, mu=1.0, dead_time_ns=None))
    assert abs(low / ref - 1) < 5e-3 and high < 0.9 * ref        # early-photon bias
    lin = _hist("mCB-Nd", edges, 1060.0, rate=1e5, mu=1e-6)      # TDC with 95 ns dead time
    for mu, bound in [(0.01, 0.01), (1.0, None)]:
        h = _hist("mCB-Nd", edges, 1060.0, rate=1e5, mu=mu)
        dev = np.max(np.abs(h[early] / h.sum() - lin[early] / lin.sum())) / (lin.max() / lin.sum())
        assert dev < bound if bound else dev > 0.1
        assert h.sum() < 1e5 * mu


def test_dark_counts_flat():
    edges = np.arange(0.0, 8000.0 + 1e-9, 4.0)
    h = _hist("mCB-Nd", edges, 950.0, rate=1e5, mu=0.0, dark_count_rate_cps=2e4, pulse_time_ns=20.0)
    # 2e4 cps x 4 ns / 10 us per bin, less the dark counts lost in the 95 ns TDC dead time
    np.testing.assert_allclose(h, 2e4 * 4.0 / 1e4 * math.exp(-2e4 * 95e-9), rtol=1e-12)
    h = _hist("mCB-Nd", edges, 950.0, rate=1e5, mu=0.0, dark_count_rate_cps=2e4, dead_time_ns=0.0)
    np.testing.assert_allclose(h, 2e4 * 4.0 / 1e4, rtol=1e-12)
    h = _hist("mCB-Nd", edges, 1060.0, rate=1e5, mu=1e-3, dark_count_rate_cps=2e4, pulse_time_ns=20.0)
    assert h[-100:].std() < 1e-6 * h[-100:].mean()             # signal gone: flat dark floor
    with pytest.raises(ValueError, match="photons_per_pulse=0.01 but nothing emits"):
        _hist("mCB-Nd", edges, 950.0, mu=0.01)


def test_sample_histogram_poisson():
    expected = np.full(20000, 50.0)
    a = sample_histogram(expected, np.random.default_rng(3))
    b = sample_histogram(expected, np.random.default_rng(3))
    assert a.dtype == np.int64 and np.array_equal(a, b)
    assert a.mean() == pytest.approx(50.0, abs=0.2) and a.var() == pytest.approx(50.0, rel=0.05)
    assert np.all(sample_histogram(np.zeros(10), np.random.default_rng(0)) == 0)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        sample_histogram(expected, 3)
    with pytest.raises(ValueError, match=r"expected=-1.0 counts is outside the allowed range"):
        sample_histogram([1.0, -1.0], np.random.default_rng(0))


def test_detectors():
    nir, vis = NirPmt(), NirPmt.visible_pmt()
    assert nir.spectral_range_nm == (290.0, 1700.0)
    qe = nir.quantum_efficiency([880.0, 1060.0, 1334.0])
    assert qe[0] == 0.0 and qe[1] > 0.01 and qe[2] > 0.01     # Nd 880 nm band not detected
    assert vis.quantum_efficiency(1060.0) == 0.0 and vis.quantum_efficiency(580.0) > 0.1
    low = nir.detected_rate(1e4, 1060.0)
    assert low == pytest.approx(nir.quantum_efficiency(1060.0) * 1e4 + nir.dark_count_rate_cps, rel=0.05)
    assert nir.detected_rate(1e4, 1060.0, include_dark=False) < low
    huge = nir.detected_rate(1e12, 1060.0)
    assert 0.9 * nir.saturation_count_rate_cps < huge < nir.saturation_count_rate_cps
    irf = nir.irf()
    assert isinstance(irf, InstrumentResponse) and irf.detector_tts_fwhm_ns == nir.tts_fwhm_ns
    assert vis.irf().fwhm_ns() < irf.fwhm_ns()


# ------------------------------------------------------------------ input checks
def test_bad_input_errors():
    m = get_luminescence("mCB-Nd")
    edges = np.arange(0.0, 100.0, 1.0)
    kw = dict(emission_nm=1060.0, excitation_nm=375.0, repetition_rate_hz=1e5, photons_per_pulse=0.01,
              irf=None)
    with pytest.raises(ValueError, match=r"emission_nm=-5.0 nm is outside the allowed range \(0.0, 5000.0\]"):
        m.emission_spectrum(-5.0, excitation_nm=375.0)
    with pytest.raises(ValueError, match=r"excitation_nm=-1.0 nm is outside the allowed range \(0.0, 5000"):
        m.excitation_spectrum([300.0, -1.0], emission_nm=1060.0)
    with pytest.raises(ValueError, match=r"repetition_rate_hz=0.0 Hz is outside the allowed range \(0.0, "):
        m.expected_histogram(edges, **{**kw, "repetition_rate_hz": 0.0})
    with pytest.raises(ValueError, match=r"repetition_rate_hz=-10.0 Hz is outside the allowed range"):
        m.expected_histogram(edges, **{**kw, "repetition_rate_hz": -10.0})
    with pytest.raises(ValueError, match=r"photons_per_pulse=-0.1 is outside the allowed range \[0.0, 1000"):
        m.expected_histogram(edges, **{**kw, "photons_per_pulse": -0.1})
    with pytest.raises(ValueError, match=r"pulse_time_ns=10000.0 ns is outside the allowed range \[0, 1"):
        m.expected_histogram(edges, **kw, pulse_time_ns=1e4)
    with pytest.raises(ValueError, match=r"bin_edges_ns must increase strictly"):
        m.expected_histogram([0.0, 2.0, 1.0], **kw)
    with pytest.raises(ValueError, match=r"unknown luminescence preset name='mCB-Dy'; allowed: \['mCB-Nd'"):
        get_luminescence("mCB-Dy")
    with pytest.raises(ValueError, match=r"tail_fraction=1.5 is outside the allowed range \[0.0, 0.9\]"):
        InstrumentResponse(tail_fraction=1.5)
    assert LUMINESCENCE_PRESETS == ("mCB-Nd", "mCB-Yb", "mCB-NdYb")
