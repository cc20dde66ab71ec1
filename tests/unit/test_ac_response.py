"""Unit tests for the ac-susceptibility sample physics (relaxation rates, generalised Debye, presets)."""

import dataclasses
import math

import numpy as np
import pytest
from scipy.integrate import trapezoid
from scipy.optimize import curve_fit

from spinlight.simulators.samples import (
    AC_PRESETS,
    AcModel,
    RelaxationProcess,
    RelaxationRates,
    generalized_debye,
    get_ac_model,
    get_sample,
)

MCB = ("mCB-Nd", "mCB-Yb", "mCB-NdYb")


def table_rate(T, H_T, B1, B2, D2, C, n, tau0, U):
    """science.md HF model, H in tesla (D1 = 0)."""
    return B1 / (1 + B2 * H_T**2) + D2 * H_T**2 * T + C * T**n + np.exp(-U / T) / tau0


def local_maxima(f, y):
    i = np.flatnonzero((y[1:-1] > y[:-2]) & (y[1:-1] >= y[2:])) + 1
    return f[i]


@pytest.fixture(scope="module")
def models():
    return {name: get_ac_model(name) for name in AC_PRESETS}


def single_debye(alpha=0.0, tau_s=1e-3, s=0.2):
    """One process with constant tau (B1 only) on the mCB-Yb dc model."""
    proc = RelaxationProcess("single", RelaxationRates(B1=1.0 / tau_s), alpha_low_T=alpha,
                             alpha_high_T=alpha)
    return AcModel("single", get_sample("mCB-Yb"), (proc,), adiabatic_fraction_zero_field=s,
                   adiabatic_fraction_high_field=s, adiabatic_field_Oe=0.0)


# ----------------------------------------------------------------- relaxation rates
def test_relaxation_rates_formula_and_broadcasting():
    r = RelaxationRates(B1=100.0, B2=50.0, D1=3.0, D2=20.0, C=0.5, n=4.0, tau0_s=1e-9, U_K=30.0,
                        direct_internal_field_T=0.2, zero_field_rate_per_s=1e6, zero_field_width_Oe=50.0)
    T = np.array([2.0, 5.0, 9.0])[:, None]
    H = np.array([0.0, 30.0, 2000.0, 20000.0])
    h = H / 1e4
    expected = (100 / (1 + 50 * h**2) + 3 * h**4 * T + 20 * (h**2 + 0.04) * T + 0.5 * T**4
                + np.exp(-30 / T) / 1e-9 + 1e6 * np.exp(-(H / 50) ** 2))
    rate = r.rate_per_s(T, H)
    assert rate.shape == (3, 4)
    np.testing.assert_allclose(rate, expected, rtol=1e-12)
    np.testing.assert_allclose(r.tau_s(T, H), 1 / expected, rtol=1e-12)
    np.testing.assert_allclose(r.rate_per_s(T, -H), rate)  # even in H
    terms = r.terms_per_s(2.0, 2000.0)
    assert set(terms) == {"qtm", "direct", "raman", "orbach", "zero_field"}
    assert sum(terms.values()) == pytest.approx(r.rate_per_s(2.0, 2000.0))
    assert RelaxationRates(C=1.0, n=2.0).tau_s(2.0, 0.0) == pytest.approx(0.25)  # no Orbach by default


def test_mcb_zero_field_channel_is_fast_at_zero_and_negligible_in_field(models):
    for name in MCB:
        m = models[name]
        assert np.all(m.tau_s([1.8, 5.0, 9.0], 0.0) < 1e-5), name
        for p in m.processes:
            zf = p.rates.terms_per_s(np.array([1.8, 9.0]), np.array([500.0, 5e4]))["zero_field"]
            total = p.rates.rate_per_s(np.array([1.8, 9.0]), np.array([500.0, 5e4]))
            assert np.all(zf < 0.02 * total), (name, p.label)


@pytest.mark.parametrize("name, row", [
    ("mCB-Yb", (16085, 23, 42000, 0, 7, 8.7e-8, 18.4)),
    ("mCB-NdYb", (110395, 35, 21800, 14.9, 5.8, 1.01e-7, 18.8)),
])
def test_hf_tau_reproduces_table(models, name, row):
    T = np.linspace(1.8, 10.0, 9)[:, None]
    H_T = np.linspace(0.05, 2.5, 12)
    rate = 1 / models[name].tau_s(T, H_T * 1e4)[..., 0]
    np.testing.assert_allclose(rate, table_rate(T, H_T, *row), rtol=0.02)


def test_mcb_nd_gives_both_published_d2():
    hf = get_ac_model("mCB-Nd").processes[0].rates
    # temperature scan at 0.12 T: the row fitted vs 1/T (D2 = 102 400, C = 117)
    T = np.linspace(1.8, 9.0, 25)
    np.testing.assert_allclose(hf.rate_per_s(T, 1200.0),
                               table_rate(T, 0.12, 6380, 260, 102400, 117, 5, 8.2e-8, 19.8), rtol=0.02)
    # field scan at 2 K: the row fitted vs H (D2 = 14 100) plus an H-independent constant ...
    H_T = np.linspace(0.05, 2.5, 40)
    diff = hf.rate_per_s(2.0, H_T * 1e4) - table_rate(2.0, H_T, 6380, 260, 14100, 113, 5, 8.2e-8, 19.8)
    assert np.ptp(diff) < 0.02 * hf.rate_per_s(2.0, 1200.0)
    # ... so a tau^-1(H) fit with a free constant recovers B1, B2, D2
    model = lambda h, b1, b2, d2, k: b1 / (1 + b2 * h**2) + d2 * h**2 * 2.0 + k  # noqa: E731
    p, _ = curve_fit(model, H_T, hf.rate_per_s(2.0, H_T * 1e4), p0=[5000, 200, 10000, 5000])
    np.testing.assert_allclose(p[:3], [6380, 260, 14100], rtol=0.02)


# ----------------------------------------------------------------- generalised Debye
def test_generalized_debye_function_limits_and_no_overflow():
    wt = np.array([0.0, 1e-300, 1e-3, 1.0, 1e3, 1e300, np.inf])
    for a in (0.0, 0.3, 0.9):
        re, im = generalized_debye(wt, a)
        assert np.all(np.isfinite(re)) and np.all(np.isfinite(im))
        assert re[0] == pytest.approx(1.0) and im[0] == 0.0 and re[-1] == 0.0 and im[-1] == 0.0
        assert re[3] == pytest.approx(0.5)
        z = 1 / (1 + (1j * wt[2:5]) ** (1 - a))
        np.testing.assert_allclose(re[2:5], z.real, rtol=1e-12)
        np.testing.assert_allclose(im[2:5], -z.imag, rtol=1e-12)


def test_single_debye_limits_and_peak_at_omega_tau_one():
    m = single_debye(alpha=0.0, tau_s=1e-3, s=0.2)
    T, H = 3.0, 2000.0
    chi_t, chi_s = m.chi_T(T, H), m.chi_S(T, H)
    assert chi_s == pytest.approx(chi_t - 0.8 * (chi_t - m.sample.diamagnetic_emu_per_mol_Oe))
    lo, lo2 = m.chi_molar(T, H, 1e-6)
    hi, hi2 = m.chi_molar(T, H, 1e9)
    assert lo == pytest.approx(chi_t, rel=1e-6) and hi == pytest.approx(chi_s, rel=1e-4)
    assert lo2 < 1e-6 * chi_t and hi2 < 1e-4 * chi_t
    f = np.logspace(0, 4, 4001)
    c1, c2 = m.chi_molar(T, H, f)
    f_peak = local_maxima(f, c2)
    assert len(f_peak) == 1 and f_peak[0] == pytest.approx(1 / (2 * np.pi * 1e-3), rel=3e-3)
    assert c2.max() == pytest.approx((chi_t - chi_s) / 2, rel=1e-6)
    # Debye semicircle: (chi' - centre)^2 + chi''^2 = radius^2
    np.testing.assert_allclose(np.hypot(c1 - (chi_t + chi_s) / 2, c2), (chi_t - chi_s) / 2, rtol=1e-9)


def test_gd_peak_symmetric_in_ln_f_and_kramers_kronig_sum_rule():
    m = single_debye(alpha=0.3, tau_s=1e-2)
    T, H = 2.5, 5000.0
    f0 = 1 / (2 * np.pi * 1e-2)
    x = np.linspace(-3, 3, 61)
    up = m.chi_molar(T, H, f0 * 10**x)[1]
    np.testing.assert_allclose(up, up[::-1], rtol=1e-10)
    assert np.argmax(up) == 30
    # (2/pi) int chi'' dln(omega) = chi_T - chi_S  (one process and the two-process preset)
    for model, t, h in ((m, T, H), (get_ac_model("mCB-Nd"), 2.0, 1200.0)):
        lnf = np.linspace(np.log(1e-10), np.log(1e14), 20001)
        c2 = model.chi_molar(t, h, np.exp(lnf))[1]
        integral = 2 / np.pi * trapezoid(c2, lnf)
        assert integral == pytest.approx(model.chi_T(t, h) - model.chi_S(t, h), rel=2e-3)


def test_preset_static_limits(models):
    for name, m in models.items():
        T, H = 2.0, 3000.0
        chi_t, chi_s, dchi = m.chi_T(T, H), m.chi_S(T, H), m.delta_chi(T, H)
        assert dchi.shape == (len(m.processes),) and np.all(dchi > 0)
        assert chi_s + dchi.sum() == pytest.approx(chi_t, rel=1e-12)
        assert m.chi_molar(T, H, 1e-9)[0] == pytest.approx(chi_t, rel=1e-4)
        assert m.chi_molar(T, H, 1e12)[0] == pytest.approx(chi_s, rel=1e-3)


# ----------------------------------------------------------------- chi_T from the dc model
@pytest.mark.parametrize("name", AC_PRESETS)
def test_chi_T_is_numerical_dM_dH(models, name):
    s = get_sample(name)
    T = np.array([1.8, 4.0, 20.0])[:, None]
    H = np.array([0.0, 1200.0, -3000.0, 25000.0])
    M = s.molar_magnetization_emu_per_mol
    diff = lambda d: (M(T, H + d) - M(T, H - d)) / (2 * d)  # noqa: E731
    ref = (4 * diff(20.0) - diff(40.0)) / 3  # Richardson: O(d^4), independent of the model's step
    got = models[name].chi_T(T, H)
    np.testing.assert_allclose(got, ref, rtol=2e-5)
    np.testing.assert_allclose(models[name].chi_T(T, 1.0), s.molar_magnetization_emu_per_mol(T, 1.0) / 1.0,
                               rtol=1e-4)
    assert np.all(got > 0)


def test_spectrum_costs_one_chi_T_evaluation():
    m = get_ac_model("mCB-Yb")
    calls = []
    dc = m.sample.molar_magnetization_emu_per_mol

    def counting(T, H):  # spy: counts calls and points, returns the real dc model
        calls.append(np.size(T))
        return dc(T, H)

    m.sample.molar_magnetization_emu_per_mol = counting
    f = np.logspace(-1, 4, 30)
    T, H = np.array([[2.0], [3.0], [4.0]]), np.array([[3000.0], [3000.0], [5000.0]])
    c1, c2 = m.chi_molar(T, H, f)
    assert c1.shape == (3, 30) and calls == [6]  # 3 (T, H) pairs x 2 derivative points
    for fj in f:  # a simulator asking one frequency at a time
        m.chi_molar(2.0, -3000.0, fj)
    m.chi_molar(np.repeat(T, 30), np.repeat(H, 30), np.tile(f, 3))  # flattened grid
    assert calls == [6]


def test_broadcasting_matches_pointwise(models):
    m = models["mCB-Nd"]
    T, H, f = np.array([2.0, 3.0])[:, None, None], np.array([1200.0, 5000.0])[None, :, None], \
        np.array([1.0, 100.0, 1000.0])
    c1, c2 = m.chi_molar(T, H, f)
    assert c1.shape == c2.shape == (2, 2, 3)
    assert m.tau_s(T[..., 0], H[..., 0]).shape == (2, 2, 2)
    assert m.alpha(T[..., 0], H[..., 0]).shape == (2, 2, 2)
    for i, j, k in np.ndindex(2, 2, 3):
        p1, p2 = m.chi_molar(T[i, 0, 0], H[0, j, 0], f[k])
        assert (p1, p2) == (pytest.approx(c1[i, j, k], rel=1e-12), pytest.approx(c2[i, j, k], rel=1e-12))
    assert np.all(c1 > 0) and np.all(c2 >= 0)


# ----------------------------------------------------------------- preset behaviour
@pytest.mark.parametrize("name", MCB)
def test_mcb_no_chi2_at_zero_field(models, name):
    f = np.logspace(-1, 4, 30)
    T = np.array([1.8, 2.0, 4.0, 9.0])[:, None]
    m = models[name]
    # even if the adiabatic fraction did not go to 1 at H = 0, fast zero-field QTM kills chi''
    leaky = dataclasses.replace(m, adiabatic_fraction_zero_field=0.1)
    for model in (m, leaky):
        c1, c2 = model.chi_molar(T, 0.0, f)
        assert np.all(c2 < 2e-3 * c1)
    c1, c2 = leaky.chi_molar(2.0, 3000.0, f)  # in field the slow relaxation is switched on
    assert c2.max() > 0.1 * c1.max()


def test_mcb_nd_two_peaks_at_2K_0p12T(models):
    f = np.logspace(-2, 5, 1401)
    peaks = local_maxima(f, models["mCB-Nd"].chi_molar(2.0, 1200.0, f)[1])
    assert len(peaks) == 2
    assert 0.5 < peaks[0] < 2.0  # LF, phonon bottleneck
    assert 500.0 < peaks[1] < 3000.0  # HF


def test_mcb_yb_lf_peak_below_10_mHz_with_visible_tail(models):
    m = models["mCB-Yb"]
    f = np.logspace(-4, 5, 901)
    c2 = m.chi_molar(2.0, 3000.0, f)[1]
    peaks = local_maxima(f, c2)
    assert len(peaks) == 2 and peaks[0] < 0.01 and 1e3 < peaks[1] < 5e3
    tail = m.chi_molar(2.0, 3000.0, [0.1, 1.0])[1]
    assert tail[0] > tail[1] > 0  # rising towards low f inside the measured window: the LF tail
    assert tail[0] > 0.04 * c2.max()


def test_lf_weight_switches_on_with_field_and_alpha_grows_at_low_T(models):
    m = models["mCB-Nd"]
    assert np.all(m.delta_chi(2.0, 0.0) == 0.0)  # adiabatic fraction 1 at H = 0: nothing relaxes
    d = m.delta_chi(2.0, np.array([100.0, 1200.0, 20000.0]))
    share = d[:, 1] / d.sum(-1)
    assert share[0] < 0.01 and 0.2 < share[1] < share[2] < 0.5
    a = m.alpha(np.array([1.8, 3.0, 9.0]), 1200.0)
    assert np.all(np.diff(a[:, 0]) < 0) and np.all((a >= 0) & (a < 0.5))


def test_dy_smm_arrhenius_and_zero_field_peaks(models):
    m = models["Dy-SMM"]
    T = np.linspace(8.0, 12.0, 9)
    tau = m.tau_s(T, 0.0)[:, 0]
    slope, icpt = np.polyfit(1 / T, np.log(tau), 1)
    assert slope == pytest.approx(55.0, abs=1.0)
    assert 1e-10 <= np.exp(icpt) <= 1e-8
    f = np.logspace(-2, 5, 701)
    peak_f = [local_maxima(f, m.chi_molar(t, 0.0, f)[1]) for t in (2.0, 4.0, 6.0)]
    assert all(len(p) == 1 for p in peak_f)
    assert 0.1 < peak_f[0][0] < 1.0 < 10 < peak_f[1][0] < 100 < 1e3 < peak_f[2][0] < 1e4
    assert m.tau_s(2.0, 5000.0)[0] > 100.0  # in-field QTM suppressed: open hysteresis at 2 K


def test_dy_smm_dc_preset():
    s = get_sample("Dy-SMM")
    ion = s.ion_models["Dy"]
    levels_K = np.unique(np.round(ion.levels_cm1() * 1.438776877, 6))
    assert len(levels_K) == 8 and levels_K[1] == pytest.approx(55.0, rel=1e-6)
    chit_2K = s.molar_magnetization_emu_per_mol(2.0, 1000.0) / 1000.0 * 2.0
    assert 11.0 < chit_2K < 13.5  # Ising doublet g_z = 20: 0.125 * 400/3 * 3/4 = 12.5
    assert s.published["U_eff_K"] == 55.0


# ----------------------------------------------------------------- errors and registry
def test_registry():
    assert AC_PRESETS == ("mCB-Nd", "mCB-Yb", "mCB-NdYb", "Dy-SMM")
    a, b = get_ac_model("mCB-Nd"), get_ac_model("mCB-Nd")
    assert a is not b and a.sample is not b.sample
    assert a.molar_mass_g_per_mol == 2312.0 and a.labels == ("HF", "LF")
    assert a.published["D2_temperature_scan_per_s_K_T2"] == 102400


def test_bad_input_errors_name_parameter_and_range(models):
    m = models["mCB-Nd"]
    cases = [((-1.0, 1000.0, 10.0), "T_K=-1.0"), ((0.0, 1000.0, 10.0), "T_K=0.0"),
             ((2.0, np.nan, 10.0), "H_Oe=nan"), ((2.0, 1000.0, 0.0), "f_Hz=0.0"),
             ((2.0, 1000.0, [10.0, -5.0]), "f_Hz=-5.0")]
    for args, text in cases:
        with pytest.raises(ValueError) as err:
            m.chi_molar(*args)
        assert text in str(err.value) and "allowed range" in str(err.value)
    with pytest.raises(ValueError, match=r"T_K=-2.0 K is outside the allowed range \(0.0, inf\]"):
        m.tau_s(-2.0, 0.0)
    with pytest.raises(ValueError, match=r"unknown ac preset name='mCB-Dy'.*mCB-NdYb.*Dy-SMM"):
        get_ac_model("mCB-Dy")
    with pytest.raises(ValueError, match=r"B1=-1.0 .*allowed range \[0.0, inf\]"):
        RelaxationRates(B1=-1.0)
    with pytest.raises(ValueError, match=r"tau0_s=0.0"):
        RelaxationRates(tau0_s=0.0)
    with pytest.raises(ValueError, match=r"alpha_low_T=1.2 .*\[0.0, 0.95\]"):
        RelaxationProcess("x", RelaxationRates(B1=1.0), alpha_low_T=1.2)
    with pytest.raises(ValueError, match="field-independent weight"):
        AcModel("x", get_sample("mCB-Nd"), (RelaxationProcess("x", RelaxationRates(B1=1.0), 1.0, 500.0),))
    assert math.isfinite(m.chi_molar(2.0, -1e4, 1e3)[0])  # negative fields are allowed
