"""Unit tests of the ac-susceptibility fitting core: models and analytic Jacobians, the τ
distribution formulas, parameter recovery from noisy synthetic spectra, uncertainties, discard
rules, the one/two-process choice, bad input, and ac data sets (grouping, units, τ table)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.integrate import quad

from spinlight.analysis import ac_models as am
from spinlight.analysis.ac_dataset import fit_ac_dataset, spectra_from_arrays
from spinlight.analysis.ac_fit import fit_ac_spectrum

F_1K = np.geomspace(1.0, 1000.0, 30)          # Hz, 30 log-spaced points as on an MPMS3
F_WIDE = np.geomspace(0.1, 1.0e4, 30)
LN = math.log

# model -> (frequencies, true parameters in the model's order)
CASES = {
    "debye": (F_1K, [LN(1e-3), 0.5, 5.0]),
    "generalized_debye": (F_1K, [LN(2e-3), 0.5, 5.0, 0.2]),
    "havriliak_negami": (F_WIDE, [LN(1e-3), 0.5, 5.0, 0.15, 0.7]),
    "cole_davidson": (F_WIDE, [LN(5e-4), 0.5, 5.0, 0.6]),
    "double_generalized_debye": (F_WIDE, [0.3, LN(3e-2), 0.1, 3.0, LN(3e-4), 0.15, 2.0]),
}


def noisy(model: str, f, p, rel: float, seed: int):
    """χ', χ'' of ``model`` with Gaussian noise of ``rel`` × |value| on every point."""
    re, im = am.MODELS[model].chi_parts(f, np.asarray(p, float))
    rng = np.random.default_rng(seed)
    return (re * (1 + rel * rng.standard_normal(f.size)),
            im * (1 + rel * rng.standard_normal(f.size)))


def true_processes(model: str, p):
    """(ln τ, α, γ, Δχ) per process, slow → fast like AcFitResult.processes."""
    return sorted((pr.values(p) for pr in am.MODELS[model].processes), key=lambda v: -v[0])


# ---------------------------------------------------------------------------- models
@pytest.mark.parametrize("name", sorted(am.MODELS))
def test_analytic_jacobian_equals_finite_differences(name):
    model = am.MODELS[name]
    rng = np.random.default_rng(7)
    f = np.geomspace(0.3, 3000.0, 17)
    for _ in range(3):
        p = np.array(CASES[name][1], float) + rng.uniform(-0.05, 0.05, model.n_params)
        analytic = model.jacobian(f, p)
        numeric = np.empty_like(analytic)
        for j in range(model.n_params):
            h = 1e-6 * max(1.0, abs(p[j]))
            up, dn = p.copy(), p.copy()
            up[j] += h
            dn[j] -= h
            numeric[:, j] = (model.chi(f, up) - model.chi(f, dn)) / (2 * h)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_debye_special_values():
    # at ωτ = 1: χ' = (χS + χT)/2, χ'' = Δχ/2; limits χT (ω→0) and χS (ω→∞)
    tau = 2e-3
    f0 = 1 / (2 * math.pi * tau)
    re, im = am.DEBYE.chi_parts([f0, 1e-6, 1e9], [LN(tau), 1.0, 5.0])
    np.testing.assert_allclose(re, [3.0, 5.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(im, [2.0, 0.0, 0.0], atol=1e-5)


def test_sigma_ln_tau_ccfit2_reference_value():
    # fitting.md §1.3: α = 0.2475 → σ_lnτ = 1.588, lograte_pm = 0.6894
    s = am.sigma_ln_tau(0.2475)
    assert s == pytest.approx(1.588, abs=1e-3)          # 1.5874; 0.6894 × ln 10 = 1.5874
    assert s / math.log(10) == pytest.approx(0.6894, abs=5e-5)
    assert am.sigma_ln_tau(0.0) == 0.0
    assert am.sigma_ln_tau(0.0, 0.5) == pytest.approx(math.sqrt(
        float(np.pi ** 2 / 2 - np.pi ** 2 / 6)), rel=1e-12)   # CD: ψ₁(½) = π²/2


def _hn_distribution(s, alpha, gamma):
    """Density of ln(τ/τ_HN) for a Havriliak–Negami relaxation (independent formula)."""
    b, y = 1 - alpha, math.exp(s)
    theta = math.atan2(math.sin(math.pi * b), y ** b + math.cos(math.pi * b))
    return (y ** (b * gamma) * math.sin(gamma * theta)
            / (y ** (2 * b) + 2 * y ** b * math.cos(math.pi * b) + 1) ** (gamma / 2) / math.pi)


@pytest.mark.parametrize("alpha,gamma", [(0.2475, 1.0), (0.1, 0.6), (0.0, 0.5), (0.3, 0.8)])
def test_distribution_moments_and_peak_match_the_hn_distribution(alpha, gamma):
    moment = [quad(lambda s: s ** k * _hn_distribution(s, alpha, gamma), -80, 80, limit=400,
                   points=[0])[0] for k in range(3)]
    mean = moment[1] / moment[0]
    sigma = math.sqrt(moment[2] / moment[0] - mean ** 2)
    assert moment[0] == pytest.approx(1.0, abs=1e-6)
    assert am.ln_tau_mean(0.0, alpha, gamma) == pytest.approx(mean, abs=1e-6)
    assert am.sigma_ln_tau(alpha, gamma) == pytest.approx(sigma, rel=1e-5)
    f = np.geomspace(1e-3, 1e2, 20001)
    _, im = am.HAVRILIAK_NEGAMI.chi_parts(f, [0.0, 0.0, 1.0, alpha, gamma])
    assert am.peak_frequency_hz(0.0, alpha, gamma) == pytest.approx(f[np.argmax(im)], rel=1e-3)


# ---------------------------------------------------------------------------- recovery
@pytest.mark.parametrize("name", sorted(CASES))
def test_recovers_parameters_from_noisy_spectrum(name):
    f, p = CASES[name]
    re, im = noisy(name, f, p, rel=0.005, seed=11)
    r = fit_ac_spectrum(f, re, im, model=name, chi_unit="cm3/mol")
    print("\n" + r.report())
    assert r.model == name and not r.discarded and r.flags == ()
    assert r.n_points == 30 and len(r.processes) == len(am.MODELS[name].processes)
    tau_tol = 0.06 if name == "havriliak_negami" else 0.03    # HN: τ, α, γ correlated
    for q, (lt, a, g, dchi) in zip(r.processes, true_processes(name, p)):
        assert math.exp(q.ln_tau_param) == pytest.approx(math.exp(lt), rel=tau_tol)
        assert q.tau_s == pytest.approx(math.exp(am.ln_tau_mean(lt, a, g)), rel=tau_tol)
        assert q.alpha == pytest.approx(a, abs=0.02)
        assert q.gamma == pytest.approx(g, abs=0.05)
        assert q.delta_chi == pytest.approx(dchi, rel=0.05)
        assert q.sigma_ln_tau == pytest.approx(am.sigma_ln_tau(q.alpha, q.gamma))
        assert abs(q.ln_tau_param - lt) < 4 * q.ln_tau_err
    assert "chi_s_cm3_per_mol" in r.to_dict()


def test_uncertainties_are_calibrated_with_absolute_sigma():
    # pulls (fit − truth)/stderr over independent noise draws have unit spread
    f, p = CASES["generalized_debye"]
    re0, im0 = am.GENERALIZED_DEBYE.chi_parts(f, np.array(p))
    sr, si = 0.005 * re0, 0.005 * im0
    pulls = []
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        r = fit_ac_spectrum(f, re0 + sr * rng.standard_normal(30),
                            im0 + si * rng.standard_normal(30), model="generalized_debye",
                            chi_real_err=sr, chi_imag_err=si, absolute_sigma=True)
        assert r.weighted and r.absolute_sigma
        pulls.append([(r.params[k] - v) / r.stderr[k] for k, v in zip(r.params, p)])
    spread = np.std(pulls, axis=0)
    assert np.all((spread > 0.7) & (spread < 1.35)), spread
    # the default rescales by χ²_red: with correct σ the errors barely change
    r2 = fit_ac_spectrum(f, re0 + sr * np.random.default_rng(1).standard_normal(30), im0,
                         model="generalized_debye", chi_real_err=sr, chi_imag_err=si)
    assert r2.stderr["ln_tau"] == pytest.approx(
        math.sqrt(r2.covariance[0, 0]), rel=1e-12)


def test_unweighted_errors_equal_uniform_weights_and_are_unit_free():
    # χ²_red rescaling: no error arrays ≡ any constant σ; χ in emu/Oe (1e-5) ≡ χ × 1e6
    f, p = CASES["generalized_debye"]
    re, im = noisy("generalized_debye", f, p, 0.005, seed=8)
    plain = fit_ac_spectrum(f, re, im, model="generalized_debye")
    const = fit_ac_spectrum(f, re, im, model="generalized_debye", chi_real_err=np.full(30, 0.3),
                            chi_imag_err=np.full(30, 0.3))
    tiny = fit_ac_spectrum(f, re * 1e-6, im * 1e-6, model="generalized_debye")
    for name in plain.params:
        assert const.stderr[name] == pytest.approx(plain.stderr[name], rel=1e-6)
        unit = 1e-6 if name.startswith("chi") else 1.0
        assert tiny.params[name] == pytest.approx(plain.params[name] * unit, rel=1e-6)
        assert tiny.stderr[name] == pytest.approx(plain.stderr[name] * unit, rel=1e-4)
    assert tiny.chi2_red == pytest.approx(plain.chi2_red * 1e-12, rel=1e-6)
    # and the errors are the right size: ln τ error ≈ spread over noise draws
    draws = [fit_ac_spectrum(f, *noisy("generalized_debye", f, p, 0.005, seed=50 + k),
                             model="generalized_debye").params["ln_tau"] for k in range(20)]
    assert 0.5 < np.std(draws) / plain.stderr["ln_tau"] < 2.0


def test_tau_bounds_and_log10_rate_follow_ccfit2():
    # noiseless GD with α = 0.2475: the distribution width dominates the bounds
    f = F_1K
    p = [LN(2e-3), 0.5, 5.0, 0.2475]
    re, im = am.GENERALIZED_DEBYE.chi_parts(f, np.array(p))
    r = fit_ac_spectrum(f, re * (1 + 1e-6 * np.sin(np.arange(30))), im,
                        model="generalized_debye")
    assert r.sigma_ln_tau == pytest.approx(1.588, abs=1e-3)
    assert r.log10_rate_err == pytest.approx(0.6894, abs=5e-4)
    assert r.log10_rate == pytest.approx(-math.log10(2e-3), abs=1e-4)
    lo, hi = r.tau_bounds_s
    assert lo == pytest.approx(2e-3 * math.exp(-1.588), rel=2e-3)
    assert hi == pytest.approx(2e-3 * math.exp(1.588), rel=2e-3)
    # Debye: no distribution, the bounds are the fit bounds τ ± sd_τ
    re, im = noisy("debye", f, CASES["debye"][1], 0.01, seed=3)
    d = fit_ac_spectrum(f, re, im, model="debye")
    sd = d.tau_s * d.stderr["ln_tau"]
    assert d.sigma_ln_tau == 0.0
    np.testing.assert_allclose(d.tau_bounds_s, (d.tau_s - sd, d.tau_s + sd), rtol=1e-9)
    assert d.log10_rate_err == pytest.approx(math.log10(d.tau_s) - math.log10(d.tau_s - sd))


def test_curve_report_and_dict():
    f, p = CASES["generalized_debye"]
    re, im = noisy("generalized_debye", f, p, 0.005, seed=5)
    r = fit_ac_spectrum(f[::-1], re[::-1], im[::-1], model="generalized_debye")   # any order
    model_re, model_im = r.curve(f)
    np.testing.assert_allclose(model_re, re, rtol=0.03)
    np.testing.assert_allclose(model_im, im, rtol=0.05, atol=0.02)
    x, y = r.curve
    assert x.size == 200 and x[0] == pytest.approx(1.0) and np.all(y > 0)
    text = r.report()
    assert "tau_s" in text and "alpha" in text and "log10_rate_per_s" in text
    d = json.loads(json.dumps(r.to_dict(include_curve=True)))
    assert d["processes"][0]["tau_s"] == pytest.approx(r.tau_s)
    assert d["discarded"] is False and len(d["curve"]["chi_real"]) == 200
    assert r.aic < r.bic and r.chi2_red > 0


# ---------------------------------------------------------------------------- discard rules
@pytest.mark.parametrize("tau,where", [(1e-5, "7"), (10.0, "0.0")])
def test_discard_when_peak_outside_window(tau, where):
    re, im = noisy("generalized_debye", F_1K, [LN(tau), 0.5, 5.0, 0.1], 0.005, seed=2)
    r = fit_ac_spectrum(F_1K, re, im, model="generalized_debye")
    assert r.discarded and any(fl.startswith("no peak measured") for fl in r.flags)
    assert "no peak measured" in r.discard_reason
    kept = fit_ac_spectrum(F_1K, re, im, model="generalized_debye", no_discard=True)
    assert not kept.discarded and kept.flags == r.flags and kept.discard_reason == ""
    inside = fit_ac_spectrum(F_1K, *noisy("generalized_debye", F_1K, [LN(1e-2), 0.5, 5.0, 0.1],
                                          0.005, seed=2), model="generalized_debye")
    assert not inside.discarded


def test_discard_when_chi_imag_is_flat():
    rng = np.random.default_rng(3)
    re = 2.0 * (1 + 0.002 * rng.standard_normal(30))
    im = 0.001 + 0.0005 * rng.standard_normal(30)
    r = fit_ac_spectrum(F_1K, re, im, model="generalized_debye")
    assert r.discarded
    assert any(fl.startswith("flat chi''") for fl in r.flags)
    assert any(fl.startswith("NaN tau bounds") for fl in r.flags)     # τ is undetermined
    assert not math.isfinite(r.tau_bounds_s[0])
    # a real but small relaxation (Δχ = 3 % of χT) is not flat
    re, im = noisy("generalized_debye", F_1K, [LN(1e-3), 4.85, 5.0, 0.1], 0.002, seed=3)
    assert not any("flat" in fl for fl in fit_ac_spectrum(F_1K, re, im).flags)


# ---------------------------------------------------------------------------- model choice
def test_auto_picks_two_processes_for_a_double_spectrum():
    f, p = CASES["double_generalized_debye"]
    re, im = noisy("double_generalized_debye", f, p, 0.005, seed=4)
    r = fit_ac_spectrum(f, re, im)
    assert r.model == "double_generalized_debye" and len(r.processes) == 2
    sel = r.selection
    assert sel["chosen"] == r.model and sel["reasons"] == []
    assert sel["p_value"] < 1e-3 and sel["delta_bic"] > 10
    assert r.processes[0].tau_s > r.processes[1].tau_s            # slow process first
    assert r.processes[0].tau_s == pytest.approx(3e-2, rel=0.03)
    assert r.processes[1].tau_s == pytest.approx(3e-4, rel=0.03)


@pytest.mark.parametrize("seed", [4, 5])
def test_auto_keeps_one_process_for_a_single_spectrum(seed):
    f, p = CASES["generalized_debye"]
    re, im = noisy("generalized_debye", f, p, 0.005, seed=seed)
    r = fit_ac_spectrum(f, re, im)
    assert r.model == "generalized_debye" and len(r.processes) == 1
    assert r.selection["chosen"] == "generalized_debye" and r.selection["reasons"]
    assert r.tau_s == pytest.approx(2e-3, rel=0.03)


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs,match", [
    ({"chi_imag": np.ones(29)}, r"chi_imag has 29 values; allowed: exactly 30"),
    ({"frequency_hz": np.r_[0.0, F_1K[1:]]}, r"frequency_hz\[0\]=0\.0 is out of range.*> 0"),
    ({"frequency_hz": np.r_[-5.0, F_1K[1:]]}, r"frequency_hz\[0\]=-5\.0 is out of range"),
    ({"frequency_hz": F_1K[:4], "chi_real": np.ones(4), "chi_imag": np.ones(4)},
     r"frequency_hz has 4 values; allowed: at least 5"),
    ({"chi_real": np.r_[1.0, 1.0, np.nan, np.ones(27)]}, r"chi_real\[2\]=nan is not finite"),
    ({"model": "cole"}, r"model='cole' is not allowed; allowed: auto, debye"),
    ({"chi_real_err": np.zeros(30), "chi_imag_err": np.ones(30)},
     r"chi_real_err\[0\]=0\.0 is out of range"),
    ({"chi_real_err": np.ones(30)}, r"chi_real_err and chi_imag_err must be given together"),
    ({"absolute_sigma": True}, r"absolute_sigma=True needs chi_real_err"),
    ({"flat_threshold": -1}, r"flat_threshold=-1\.0 is out of range"),
])
def test_bad_input_names_parameter_and_value(kwargs, match):
    args = {"frequency_hz": F_1K, "chi_real": np.linspace(5, 1, 30), "chi_imag": np.ones(30)}
    args.update(kwargs)
    f, re, im = args.pop("frequency_hz"), args.pop("chi_real"), args.pop("chi_imag")
    with pytest.raises(ValueError, match=match):
        fit_ac_spectrum(f, re, im, **args)


# ---------------------------------------------------------------------------- data sets
def _rows_for(taus, temps, fields, f=F_1K, seed=0):
    """Rows of several GD spectra (emu/Oe), concatenated like a .dat file."""
    cols = {k: [] for k in ("f", "re", "im", "t", "h", "id")}
    for k, (tau, t, h) in enumerate(zip(taus, temps, fields)):
        re, im = noisy("generalized_debye", f, [LN(tau), 2e-6, 1e-5, 0.1], 0.003, seed + k)
        cols["f"].append(f)
        cols["re"].append(re)
        cols["im"].append(im)
        cols["t"].append(np.full(f.size, t))
        cols["h"].append(np.full(f.size, h))
        cols["id"].append(np.full(f.size, f"sp{k}", dtype=object))
    return {k: np.concatenate(v) for k, v in cols.items()}


def test_dataset_groups_by_set_id_never_by_measured_temperature():
    # measured T 0.01 K apart and even identical: separate sets because the ids differ
    taus = [4e-3, 3e-3, 2e-3]
    c = _rows_for(taus, [10.50, 10.51, 10.51], [0.0, 0.0, 1000.0])
    spectra = spectra_from_arrays(c["id"], c["f"], c["re"], c["im"], temperature_K=c["t"],
                                  field_Oe=c["h"], mass_mg=26.3, molar_mass_g_per_mol=542.53)
    assert [s.set_id for s in spectra] == ["sp0", "sp1", "sp2"]
    assert all(len(s) == 30 for s in spectra)
    assert spectra[0].chi_unit == "cm3/mol"
    # emu/Oe → cm³/mol: × MW / (mass_mg / 1000)
    np.testing.assert_allclose(spectra[0].chi_real, c["re"][:30] * 542.53 / 0.0263)
    res = fit_ac_dataset(spectra, model="generalized_debye")
    tab = res.as_arrays()
    np.testing.assert_allclose(tab["tau_s"], taus, rtol=0.03)
    np.testing.assert_allclose(tab["H_mean_Oe"], [0.0, 0.0, 1000.0])
    np.testing.assert_allclose(tab["setpoint_K"], [10.50, 10.51, 10.51])
    assert list(tab["model"]) == ["generalized_debye"] * 3 and not tab["discarded"].any()
    np.testing.assert_allclose(tab["log10_rate_per_s"], -np.log10(tab["tau_s"]))
    assert tab["sigma_ln_tau"][0] == pytest.approx(am.sigma_ln_tau(tab["alpha"][0]))
    assert len(res.results) == 3 and res.results[1].tau_s == pytest.approx(tab["tau_s"][1])
    json.dumps(res.to_dict(include_fits=True))
    assert "sp2" in res.report()
    # (T setpoint, H setpoint) tuples are ids too
    pairs = [(10.5, 0.0)] * 30 + [(10.5, 1000.0)] * 60
    by_pair = spectra_from_arrays(pairs, c["f"], c["re"], c["im"], temperature_K=c["t"])
    assert [s.set_id for s in by_pair] == [(10.5, 0.0), (10.5, 1000.0)]
    assert [len(s) for s in by_pair] == [30, 60]


def test_dataset_units_drops_and_unfittable_sets():
    c = _rows_for([2e-3, 1e-3], [5.0, 6.0], [0.0, 0.0])
    drive = 2.0
    moment_re, moment_im = c["re"] * drive, c["im"] * drive           # emu, as m' / m" columns
    moment_im[3] = -1e-9                                              # negative χ'' → dropped
    ids = np.r_[np.zeros(30, int), np.ones(5, int), np.full(4, 2), np.full(21, 3)]
    sp = spectra_from_arrays(ids, c["f"], moment_re, moment_im, temperature_K=c["t"],
                             chi_unit="emu", drive_Oe=drive, mass_mg=21.3)
    assert [s.set_id for s in sp] == [0, 1, 2, 3] and sp[0].n_dropped == 1
    assert sp[0].chi_unit == "cm3/g"
    np.testing.assert_allclose(sp[0].chi_real, np.delete(c["re"][:30], 3) / 0.0213)
    dia = spectra_from_arrays(ids, c["f"], c["re"], c["im"], temperature_K=c["t"],
                              mass_mg=26.3, molar_mass_g_per_mol=542.53,
                              diamagnetic_emu_per_mol_Oe=-3e-4)
    np.testing.assert_allclose(dia[0].chi_real, c["re"][:30] * 542.53 / 0.0263 + 3e-4)
    np.testing.assert_allclose(dia[0].chi_imag[:3], c["im"][:3] * 542.53 / 0.0263)
    res = fit_ac_dataset(sp, model="generalized_debye")
    tab = res.as_arrays()
    assert list(tab["n_points"]) == [29, 5, 4, 21]
    assert tab["discarded"][2] and "not fitted" in tab["reason"][2]
    assert "frequency_hz has 4 values; allowed: at least 5" in tab["reason"][2]
    assert res.results[2] is None and np.isnan(tab["tau_s"][2])
    assert not tab["discarded"][[0, 3]].any()
    assert len(res.as_arrays(include_discarded=False)["tau_s"]) == 4 - tab["discarded"].sum()
    with pytest.raises(ValueError, match=r"drive_Oe=None"):
        spectra_from_arrays(ids, c["f"], moment_re, moment_im, temperature_K=c["t"],
                            chi_unit="emu")
    with pytest.raises(ValueError, match=r"chi_unit='SI'"):
        spectra_from_arrays(ids, c["f"], c["re"], c["im"], temperature_K=c["t"], chi_unit="SI")
    with pytest.raises(ValueError, match=r"set_id has 59 values"):
        spectra_from_arrays(ids[:59], c["f"], c["re"], c["im"], temperature_K=c["t"])
    with pytest.raises(ValueError, match=r"mass_mg=-1\.0 is out of range"):
        spectra_from_arrays(ids, c["f"], c["re"], c["im"], temperature_K=c["t"], mass_mg=-1.0)
