"""Unit tests for spinlight.simulators.samples (Stevens operators, CF ions, presets, VSM noise)."""

from fractions import Fraction

import numpy as np
import pytest
from scipy.linalg import expm

from spinlight.simulators.samples import (
    CURIE_CONSTANT_EMU_K_PER_MOL,
    NA_MU_B_EMU_PER_MOL,
    SAMPLE_PRESETS,
    LanthanideIon,
    MagneticSample,
    get_sample,
    lande_g,
    spin_matrices,
    stevens_factor,
    stevens_operator,
)
from spinlight.simulators.samples.stevens import FREE_ION_TERMS

ALL_KQ = [(k, q) for k in (2, 4, 6) for q in range(-k, k + 1)]


# ----------------------------------------------------------------- angular momentum
@pytest.mark.parametrize("J", [0.5, 1, 3.5, 4.5, 7.5])
def test_spin_matrices_algebra(J):
    s = spin_matrices(J)
    jx, jy, jz = s["Jx"], s["Jy"], s["Jz"]
    d = round(2 * J) + 1
    assert jz.shape == (d, d)
    for a in s.values():
        assert np.all(np.isfinite(a))
    for a in (jx, jy, jz):
        np.testing.assert_allclose(a, a.conj().T, atol=1e-14)
    np.testing.assert_allclose(jx @ jy - jy @ jx, 1j * jz, atol=1e-12)
    np.testing.assert_allclose(jx @ jx + jy @ jy + jz @ jz, J * (J + 1) * np.eye(d), atol=1e-12)
    np.testing.assert_allclose(np.diag(jz).real, J - np.arange(d))
    np.testing.assert_allclose(s["J+"], jx + 1j * jy, atol=1e-14)


def test_spin_matrices_bad_J():
    with pytest.raises(ValueError, match="J"):
        spin_matrices(1.3)


# ----------------------------------------------------------------- Stevens operators
@pytest.mark.parametrize("J", [3.5, 4.5, 7.5])
def test_stevens_hermitian_and_traceless(J):
    for k, q in ALL_KQ:
        o = stevens_operator(k, q, J)
        np.testing.assert_allclose(o, o.conj().T, atol=1e-9 * max(1, np.abs(o).max()))
        assert abs(np.trace(o)) < 1e-8 * max(1, np.abs(o).max())


def test_o20_is_diagonal_3jz2():
    J = 4.5
    m = J - np.arange(10)
    o20 = stevens_operator(2, 0, J)
    np.testing.assert_allclose(o20, np.diag(3 * m**2 - J * (J + 1)), atol=1e-12)
    o22 = stevens_operator(2, 2, J)
    s = spin_matrices(J)
    np.testing.assert_allclose(o22, s["Jx"] @ s["Jx"] - s["Jy"] @ s["Jy"], atol=1e-12)


@pytest.mark.parametrize("J, pattern", [(4, [1, 2, 3, 3]), (4.5, [2, 4, 4]),
                                        (6, [1, 1, 2, 3, 3, 3]), (7.5, [2, 2, 4, 4, 4])])
def test_cubic_combinations_give_cubic_degeneracies(J, pattern):
    O = lambda k, q: stevens_operator(k, q, J)  # noqa: E731
    for h in (O(4, 0) + 5 * O(4, 4), O(6, 0) - 21 * O(6, 4),
              O(4, 0) - 20 * np.sqrt(2) * O(4, 3),  # z along a three-fold axis
              O(6, 0) + 35 * np.sqrt(2) / 4 * O(6, 3) + 77 / 8 * O(6, 6)):
        e = np.linalg.eigvalsh(h)
        e = np.round(e / np.abs(e).max(), 8)
        assert sorted(np.unique(e, return_counts=True)[1].tolist()) == pattern


def test_rank4_rotation_coefficients():
    # rotating z -> x maps O40 to 3/8 O40 - 5/2 O42 + 35/8 O44 (fixes the O42/O44 normalisation)
    J = 7.5
    u = expm(-1j * np.pi / 2 * spin_matrices(J)["Jy"])
    rot = u @ stevens_operator(4, 0, J) @ u.conj().T
    np.testing.assert_allclose(rot, 3 / 8 * stevens_operator(4, 0, J) - 5 / 2 * stevens_operator(4, 2, J)
                               + 35 / 8 * stevens_operator(4, 4, J), atol=1e-8)


def test_stevens_operator_bad_kq():
    with pytest.raises(ValueError, match="k=3"):
        stevens_operator(3, 0, 4.5)


def test_stevens_factors_and_lande():
    assert stevens_factor("Nd", 2) == pytest.approx(-7 / 1089)
    assert stevens_factor("Yb", 4) == pytest.approx(-2 / 1155)
    assert stevens_factor("Er", 6) == pytest.approx(8 / 3864861)
    assert stevens_factor("Dy", 2) == pytest.approx(-2 / 315)
    assert all(stevens_factor("Gd", k) == 0 for k in (2, 4, 6))
    for el, g in {"Nd": Fraction(8, 11), "Yb": Fraction(8, 7), "Gd": 2, "Er": Fraction(6, 5),
                  "Dy": Fraction(4, 3), "Ce": Fraction(6, 7)}.items():
        L, S, J = FREE_ION_TERMS[el]
        assert lande_g(L, S, J) == pytest.approx(float(g), rel=1e-12)
        assert LanthanideIon(el).g_J == pytest.approx(float(g), rel=1e-12)
    with pytest.raises(ValueError, match="Xx"):
        stevens_factor("Xx", 2)


# ----------------------------------------------------------------- crystal-field ions
@pytest.mark.parametrize("el", ["Nd", "Yb", "Er", "Gd"])
@pytest.mark.parametrize("shortcut", [True, False])
def test_free_ion_curie_limit(el, shortcut):
    ion = LanthanideIon(el, brillouin_shortcut=shortcut, quadrature_degree=11)
    T, H = 300.0, 100.0
    chit = ion.molar_magnetization_emu_per_mol(T, H) / H * T
    expected = ion.g_J**2 * ion.J * (ion.J + 1) / 8 * 1.0004
    assert chit == pytest.approx(expected, rel=5e-3)
    assert CURIE_CONSTANT_EMU_K_PER_MOL == pytest.approx(0.12505, rel=1e-4)


def test_saturation_and_oddness():
    gd = LanthanideIon("Gd")
    assert gd.moment_muB(1.8, 70000.0) == pytest.approx(7.0, rel=2e-3)
    gd_diag = LanthanideIon("Gd", brillouin_shortcut=False, quadrature_degree=11)
    T = np.array([1.8, 5.0, 50.0])[:, None]
    H = np.array([-5e4, 100.0, 2e4, 7e4])
    np.testing.assert_allclose(gd_diag.moment_muB(T, H), gd.moment_muB(T, H), rtol=1e-10)
    nd = get_sample("mCB-Nd").ion_models["Nd"]
    m = nd.moment_muB(1.8, 7e4)
    assert 0 < m < nd.g_J * nd.J
    assert nd.moment_muB(1.8, -7e4) == pytest.approx(-m)
    assert nd.moment_muB(5.0, 0.0) == 0.0


def test_cubic_crystal_field_is_isotropic_at_low_field():
    b4, b6 = -0.02, 3e-4  # cm^-1
    ion = LanthanideIon("Nd", {(4, 0): b4, (4, 4): 5 * b4, (6, 0): b6, (6, 4): -21 * b6})
    for T in (2.0, 20.0):
        e, m = ion.eigensystem([10.0])
        p = np.exp(-(e[0] - e[0][:, :1]) / T)
        per_dir = (p * m[0]).sum(-1) / p.sum(-1)  # one value per field direction
        assert np.ptp(per_dir) < 1e-6 * per_dir.mean()
    # the same cubic field written along a three-fold axis has the same powder average
    trig = LanthanideIon("Nd", {(4, 0): -2 / 3 * b4, (4, 3): 2 / 3 * 20 * np.sqrt(2) * b4,
                                (6, 0): 16 / 9 * b6, (6, 3): 16 / 9 * 35 * np.sqrt(2) / 4 * b6,
                                (6, 6): 16 / 9 * 77 / 8 * b6})
    np.testing.assert_allclose(np.sort(trig.levels_cm1()), np.sort(ion.levels_cm1()), atol=1e-8)
    T, H = np.array([1.8, 5.0, 30.0])[:, None], np.array([1e3, 3e4, 7e4])
    np.testing.assert_allclose(trig.moment_muB(T, H), ion.moment_muB(T, H), rtol=2e-4)


def test_interpolated_moment_matches_exact():
    ion = get_sample("mCB-Yb").ion_models["Yb"]
    rng = np.random.default_rng(3)
    T, H = rng.uniform(1.8, 30, 50), rng.uniform(-7e4, 7e4, 50)
    np.testing.assert_allclose(ion.moment_interp_muB(T, H), ion.moment_muB(T, H), rtol=1e-5)


# ----------------------------------------------------------------- samples and presets
def _dc_metrics(s):
    """chi*T at 300 K and 1.8 K, theta from 1/chi vs T (150-300 K), all at 0.1 T, and
    M(1.8 K, 5 T) in mu_B per f.u.; diamagnetic correction removed as the analysis does."""
    H = 1000.0
    t_cw = np.arange(150.0, 301.0, 10.0)
    T = np.r_[t_cw, 1.8]
    chi = s.molar_magnetization_emu_per_mol(T, H) / H - s.diamagnetic_emu_per_mol_Oe
    slope, icpt = np.polyfit(t_cw, 1.0 / chi[:-1], 1)
    m5 = s.molar_magnetization_emu_per_mol(1.8, 5e4) - s.diamagnetic_emu_per_mol_Oe * 5e4
    return chi[len(t_cw) - 1] * 300, chi[-1] * 1.8, -icpt / slope, m5 / NA_MU_B_EMU_PER_MOL


@pytest.mark.parametrize("name", ["mCB-Nd", "mCB-Yb", "mCB-NdYb"])
def test_presets_reproduce_published_dc_values(name):
    s = get_sample(name)
    pub = s.published
    chit300, chit18, theta, m5 = _dc_metrics(s)
    assert chit300 == pytest.approx(pub["chi_t_300K_emu_K_per_mol"], rel=0.05)
    assert chit18 == pytest.approx(pub["chi_t_1p8K_emu_K_per_mol"], rel=0.05)
    assert theta == pytest.approx(pub["theta_K"], abs=3.0)
    assert m5 == pytest.approx(pub["m_1p8K_5T_muB"], rel=0.05)


def test_gd6_preset():
    s = get_sample("Gd6")
    assert s.ions == {"Gd": 6.0} and s.ions_per_formula_unit == 6.0
    chit300, chit18, theta, m5 = _dc_metrics(s)
    assert chit300 == pytest.approx(6 * 7.875, rel=0.05)
    assert theta < 0  # antiferromagnetic mean field
    assert m5 < 6 * 7.0


def test_preset_mce_is_physical():
    s = get_sample("mCB-Nd")
    T = np.array([1.8, 2.2, 2.6, 3.0, 3.5, 4.0, 5.0, 6.0])
    B = np.linspace(0.0, 2.0, 41)
    M = s.molar_magnetization_emu_per_mol(T[:, None], B[None, :] * 1e4) - \
        s.diamagnetic_emu_per_mol_Oe * B * 1e4
    dmdt = np.diff(M, axis=0) / np.diff(T)[:, None]
    minus_ds_R = -np.trapezoid(dmdt, B, axis=1) * 1e-3 / 8.314462618
    assert np.all(minus_ds_R > 0)
    assert minus_ds_R.max() < 3 * np.log(2)


def test_sample_interface_and_units():
    s = get_sample("mCB-NdYb")
    assert s.ions == {"Nd": 1.32, "Yb": 1.68}
    assert s.ions_per_formula_unit == pytest.approx(3.0)
    assert s.molar_mass_g_per_mol == pytest.approx(2361)
    assert s.diamagnetic_emu_per_mol_Oe < 0
    T = np.array([2.0, 10.0, 300.0])[:, None]
    H = np.array([1e3, -1e3, 5e4])
    M = s.molar_magnetization_emu_per_mol(T, H)
    assert M.shape == (3, 3)
    np.testing.assert_allclose(M[:, 1], -M[:, 0], rtol=1e-12)
    m = s.moment_emu(2.0, 1e3, 10.0)
    assert m == pytest.approx(s.molar_magnetization_emu_per_mol(2.0, 1e3) * 0.010 / 2361)
    with pytest.raises(ValueError, match="mass_mg"):
        s.moment_emu(2.0, 1e3, 0.0)


def test_mean_field_is_self_consistent():
    s = get_sample("mCB-NdYb")
    lam = s.mean_field_lambda_mol_per_emu
    assert lam != 0
    T, H = np.array([1.8, 4.0, 50.0, 300.0]), np.array([1e3, 2e4, 5e4, 7e4])
    M = s.paramagnetic_emu_per_mol(T, H)
    m0 = sum(n * s.ion_models[el].moment_muB(T, H + lam * M) for el, n in s.ions.items())
    np.testing.assert_allclose(M, NA_MU_B_EMU_PER_MOL * m0, rtol=1e-5)


def test_get_sample_errors_and_names():
    assert set(SAMPLE_PRESETS) == {"mCB-Nd", "mCB-Yb", "mCB-NdYb", "Gd6", "Dy-SMM"}
    for name in SAMPLE_PRESETS:
        s = get_sample(name)
        assert isinstance(s, MagneticSample) and s.name == name and s.published
    with pytest.raises(ValueError) as err:
        get_sample("mCB-Dy")
    assert "mCB-Dy" in str(err.value) and "mCB-NdYb" in str(err.value)


# ----------------------------------------------------------------- VSM noise
def test_measure_vsm_noise_statistics():
    s = get_sample("mCB-Yb")
    rng = np.random.default_rng(42)
    n = 20000
    T, H, mass = np.full(n, 10.0), 1000.0, 5.0
    true = s.moment_emu(10.0, H, mass)
    meas, err = s.measure_vsm(T, H, mass, rng)
    expected_err = np.hypot(5e-9, 3e-4 * abs(true))
    np.testing.assert_allclose(err, expected_err)
    assert abs(meas.mean() - true) < 5 * expected_err / np.sqrt(n)
    assert meas.std() == pytest.approx(expected_err, rel=0.03)
    # real-file scale: ~1.6e-8 emu at 6e-5 emu
    assert np.hypot(5e-9, 3e-4 * 6e-5) == pytest.approx(1.6e-8, rel=0.2)


def test_measure_vsm_deterministic_for_seed():
    s = get_sample("mCB-Nd")
    a = s.measure_vsm(2.0, 1000.0, 8.0, np.random.default_rng(7))
    b = s.measure_vsm(2.0, 1000.0, 8.0, np.random.default_rng(7))
    c = s.measure_vsm(2.0, 1000.0, 8.0, np.random.default_rng(8))
    assert a == b and a != c
    assert isinstance(a[0], float) and isinstance(a[1], float)
    with pytest.raises(TypeError, match="rng"):
        s.measure_vsm(2.0, 1000.0, 8.0, 7)
