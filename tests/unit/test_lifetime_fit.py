"""Unit tests of the TCSPC lifetime core (spinlight.analysis.lifetime_fit and its helpers).

Ground truth is a photon-level Monte Carlo written here, independent of the model code: each
photon gets an excitation time from a Gaussian IRF (100–300 ps FWHM) with a small transit-time
tail, an exponential emission delay, optionally the laser period folded in (tails of earlier
pulses), and is binned; a Poisson background is added. The IRF histogram is simulated the same
way (its own Poisson noise).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from spinlight.analysis.decay_models import ReconvolutionModel, TailModel, exp_kernel, \
    normalised_irf
from spinlight.analysis.lifetime_fit import energy_transfer_efficiency, fit_decay, tail_fit
from spinlight.analysis.lifetime_uncertainty import cramer_rao_factor

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def simulate(rng, taus_ns, amps, width_ns, n_channels, *, irf_fwhm_ns=0.2, t0_ns=20.37,
             shift_ns=0.0, background=5.0, period_ns=None, n_irf=200_000, n_photons=None):
    """(time_ns, counts, irf_counts); ``amps`` are peak heights (counts per channel)."""
    taus, amps = np.asarray(taus_ns, float), np.asarray(amps, float)
    photons_per_component = amps * taus / width_ns
    n = int(photons_per_component.sum()) if n_photons is None else int(n_photons)

    def excitation(k):
        t = t0_ns + rng.normal(0.0, irf_fwhm_ns * FWHM_TO_SIGMA, k)
        tail = rng.random(k) < 0.03                    # PMT/SPAD transit-time tail
        t[tail] += rng.exponential(0.8, int(tail.sum()))
        return t

    def histogram(t):
        idx = np.floor(t / width_ns).astype(np.int64)
        idx = idx[(idx >= 0) & (idx < n_channels)]
        return np.bincount(idx, minlength=n_channels).astype(float)

    comp = rng.choice(taus.size, size=n, p=photons_per_component / photons_per_component.sum())
    arrival = excitation(n) + shift_ns + rng.exponential(taus[comp])
    if period_ns is not None:
        arrival = np.mod(arrival, period_ns)
    counts = histogram(arrival) + rng.poisson(background, n_channels)
    return np.arange(n_channels) * width_ns, counts, histogram(excitation(n_irf))


# ---------------------------------------------------------------------------------------------
# model
@pytest.mark.parametrize("irf_model", ["delta", "box"])
@pytest.mark.parametrize("period", [None, 400.0])
def test_model_jacobian_matches_finite_differences(irf_model, period):
    k = 300
    irf = np.exp(-0.5 * ((np.arange(k) - 20.3) / 1.5) ** 2) + 1e-3
    model = ReconvolutionModel(k, 1.0, normalised_irf(irf), 2, period, irf_model)
    theta = np.array([math.log(40.0), math.log(150.0), 100.0, 300.0, 2.0, 0.37])
    _, jac = model.evaluate(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = 1e-6
        fd = (model.evaluate(theta + e)[0] - model.evaluate(theta - e)[0]) / 2e-6
        assert np.max(np.abs(fd - jac[:, i])) < 1e-6 * np.max(np.abs(jac[:, i])), model.names[i]


def test_tail_model_jacobian_matches_finite_differences():
    model = TailModel(np.arange(300.0), 30.0, 2)
    theta = np.array([math.log(40.0), math.log(150.0), 100.0, 300.0, 2.0])
    _, jac = model.evaluate(theta)
    after = np.arange(300) >= 30
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = 1e-6
        fd = (model.evaluate(theta + e)[0] - model.evaluate(theta - e)[0]) / 2e-6
        assert np.max(np.abs(fd - jac[:, i])[after]) < 1e-6 * np.max(np.abs(jac[after, i]))


@pytest.mark.parametrize("irf_model", ["delta", "box"])
def test_kernel_is_normalised_and_continuous(irf_model):
    tau, width = 134.0, 0.25
    x = np.arange(-10, 40000) * width - 0.137
    c = exp_kernel(x, tau, width, irf_model)[0]
    assert c.sum() * width / tau == pytest.approx(1.0, rel=1e-9)   # all photons land somewhere
    # no jumps across the switch between the closed form and the near-pulse branch
    for edge in (-width, -0.5 * width, 0.0, 0.5 * width, width):
        lo, hi = exp_kernel(np.array([edge - 1e-9, edge + 1e-9]), tau, width, irf_model)[0]
        assert abs(hi - lo) < 1e-6
    assert exp_kernel(np.array([500.0]), tau, width, irf_model)[0][0] == pytest.approx(
        math.exp(-500.0 / tau), rel=1e-5)


def test_cramer_rao_factor_matches_reference_table():
    """fitting.md §3.3: δ-IRF, no background, K channels over a window T."""
    for t_over_tau, k, expected in [(10, 64, 1.003), (2, 256, 1.904), (5, 4, 1.188),
                                    (20, 2, 14.84)]:
        width, j = t_over_tau / k, 3
        irf = np.zeros(k + j)
        irf[j] = 1.0
        model = ReconvolutionModel(k + j, width, irf, 1)
        theta = [0.0, 1.0, 0.0, -0.5 * width]       # pulse at the start of channel j
        f = cramer_rao_factor(model, theta, [True, True, False, False], 1e4,
                              np.arange(k + j) >= j)
        assert f == pytest.approx(expected, abs=1.5e-3 * expected)


# ---------------------------------------------------------------------------------------------
# recovery of the paper's lifetimes (science.md §1) at ~10⁴ peak counts
PAPER = {"mCB-Nd": (134.0, 0.25), "mCB-Yb": (608.0, 1.0), "NdYb-Nd": (122.0, 0.25),
         "NdYb-Yb": (607.0, 1.0)}


@pytest.fixture(scope="module")
def paper_fits():
    rng = np.random.default_rng(2026)
    out = {}
    for name, (tau, width) in PAPER.items():
        t, y, irf = simulate(rng, [tau], [1e4], width, 3072, shift_ns=0.1)
        out[name] = (tau, t, y, irf, fit_decay(t, y, irf))
    return out


@pytest.mark.parametrize("name", list(PAPER))
def test_recovers_paper_lifetimes(paper_fits, name):
    tau, t, y, irf, r = paper_fits[name]
    assert r.params["tau1"] == pytest.approx(tau, rel=0.02)
    assert abs(r.params["tau1"] - tau) < 5 * r.stderr["tau1"]
    assert r.params["background"] == pytest.approx(5.0, abs=5 * r.stderr["background"])
    lo, hi = r.profile_intervals_ns["tau1"]
    assert lo < r.params["tau1"] < hi
    assert (hi - lo) / 2 == pytest.approx(r.stderr["tau1"], rel=0.1)   # large N: near-Gaussian
    assert r.extras["deviance_red"] < 1.3 and r.extras["converged"]
    tail = tail_fit(t, y, irf_counts=irf)                # cross-check without reconvolution
    assert tail.params["tau1"] == pytest.approx(tau, rel=0.02)
    assert abs(tail.params["tau1"] - r.params["tau1"]) < 5 * tail.stderr["tau1"]


def test_energy_transfer_efficiency_from_fits_and_propagation(paper_fits):
    d, da = paper_fits["mCB-Nd"][4], paper_fits["NdYb-Nd"][4]
    eta = energy_transfer_efficiency(da.params["tau1"], da.stderr["tau1"], d.params["tau1"],
                                     d.stderr["tau1"])
    assert eta.efficiency == pytest.approx(1 - 122 / 134, abs=5 * eta.efficiency_err)
    assert 8.0 < eta.percent < 10.0
    # paper numbers with 1 % lifetime errors; first-order σ against a Monte Carlo of the ratio
    ref = energy_transfer_efficiency(122.0, 1.22, 134.0, 1.34)
    assert ref.efficiency == pytest.approx(0.08955, abs=1e-5)
    rng = np.random.default_rng(3)
    mc = 1 - rng.normal(122.0, 1.22, 200_000) / rng.normal(134.0, 1.34, 200_000)
    assert ref.efficiency_err == pytest.approx(mc.std(), rel=0.03)
    assert ref.to_dict()["eta_et_err"] == pytest.approx(ref.efficiency_err)
    assert "eta_ET" in ref.report()


def test_result_api(paper_fits):
    _, t, y, _, r = paper_fits["mCB-Nd"]
    d = r.to_dict(include_curve=True)
    for key in ("tau1_ns", "tau1_err_ns", "amp1_counts", "background_counts", "shift_ns",
                "shift_err_ns", "tau1_profile_low_ns", "tau_amp_ns", "tau_int_err_ns",
                "deviance_red", "chi2_neyman_red", "n_counts", "n_signal", "curve"):
        assert key in d, key
    json.dumps(d)
    assert "tau1_ns" in r.report()
    x, mu = r.curve()
    assert x.size == mu.size == r.n_points == r.residuals.size
    assert r.curve(full_range=True).x.size == t.size
    # MLE residuals are deviance residuals: their squares add up to the deviance
    assert np.sum(r.residuals ** 2) == pytest.approx(r.extras["deviance"], rel=1e-9)
    mu, yy = r.best_fit, y
    deviance = 2 * np.sum(mu - yy + np.where(yy > 0, yy * np.log(np.where(yy > 0, yy, 1) / mu), 0))
    assert r.extras["deviance"] == pytest.approx(deviance, rel=1e-9)
    assert r.tau_amp_ns == r.tau_int_ns == r.params["tau1"]


# ---------------------------------------------------------------------------------------------
def test_two_exponential_recovery_and_average_lifetimes():
    rng = np.random.default_rng(12)
    taus, amps = np.array([122.0, 607.0]), np.array([5e3, 5e3])
    t, y, irf = simulate(rng, taus, amps, 1.0, 4096, shift_ns=0.2)
    r = fit_decay(t, y, irf, n_exp=2)
    for i, tau in enumerate(taus):
        assert r.taus_ns[i] == pytest.approx(tau, rel=0.02)
        assert abs(r.taus_ns[i] - tau) < 4 * r.tau_errs_ns[i]
        assert r.amplitudes[i] == pytest.approx(amps[i], rel=0.03)
    tau_amp = (amps * taus).sum() / amps.sum()
    tau_int = (amps * taus ** 2).sum() / (amps * taus).sum()
    assert r.tau_amp_ns == pytest.approx(tau_amp, abs=4 * r.extras["tau_amp_err_ns"])
    assert r.tau_int_ns == pytest.approx(tau_int, abs=4 * r.extras["tau_int_err_ns"])
    assert r.extras["fraction_int_1"] == pytest.approx(122 / (122 + 607), abs=0.01)
    assert r.extras["deviance_red"] < 1.1
    one = fit_decay(t, y, irf, n_exp=1, profile=False)  # wrong model: visibly worse fit
    assert one.extras["deviance_red"] > 3 * r.extras["deviance_red"]


def test_sub_channel_irf_shift_is_recovered():
    rng = np.random.default_rng(4)
    # IRF resolved (0.3 ns FWHM in 0.1 ns channels): the absolute shift, to 10 % of a channel
    t, y, irf = simulate(rng, [134.0], [3e3], 0.1, 4096, irf_fwhm_ns=0.3, shift_ns=0.37)
    r = fit_decay(t, y, irf, profile=False)
    assert r.params["shift"] == pytest.approx(0.37, abs=0.01)
    # IRF narrower than a channel (0.2 ns in 0.25 ns): the sub-bin shape is unknown, so only the
    # change of the shift between two decays is meaningful, to ~0.1 channel
    t, y0, irf = simulate(rng, [134.0], [1e4], 0.25, 3072)
    _, y1, _ = simulate(rng, [134.0], [1e4], 0.25, 3072, shift_ns=0.37)
    r0, r1 = (fit_decay(t, y, irf, profile=False) for y in (y0, y1))
    assert r1.params["shift"] - r0.params["shift"] == pytest.approx(0.37, abs=0.03)
    fixed = fit_decay(t, y1, irf, shift=r0.params["shift"], profile=False)  # ignore the delay
    assert fixed.extras["deviance_red"] > r1.extras["deviance_red"] + 0.5
    assert math.isnan(fixed.stderr["shift"]) and "shift" in fixed.extras["fixed"]


def test_periodic_excitation_tails():
    """608 ns at 1 MHz (period 1.6 τ): earlier pulses' tails must be modelled."""
    rng = np.random.default_rng(8)
    period = 1000.0
    t, y, irf = simulate(rng, [608.0], [1e4], 1.0, 1000, period_ns=period, shift_ns=0.2)
    r = fit_decay(t, y, irf, repetition_period_ns=period, profile=False)
    assert r.params["tau1"] == pytest.approx(608.0, rel=0.02)
    assert r.extras["deviance_red"] < 1.3
    naive = fit_decay(t, y, irf, profile=False)
    assert abs(naive.params["tau1"] / 608.0 - 1) > 0.1
    assert naive.extras["deviance_red"] > 5
    tail = tail_fit(t, y, irf_counts=irf)     # tails are the same exponential: no period needed
    assert tail.params["tau1"] == pytest.approx(608.0, rel=0.02)


# ---------------------------------------------------------------------------------------------
# statistics over repeated simulations
def _low_count_set(rng, n_photons, repeats):
    tau, k = 134.0, 256
    width = 10 * tau / k                                # T = 10 τ, 256 channels (fitting.md)
    return [simulate(rng, [tau], [1.0], width, k, t0_ns=10.5 * width, background=0.0,
                     n_photons=n_photons, n_irf=5000) for _ in range(repeats)]


def test_mle_is_less_biased_than_neyman_at_100_photons():
    data = _low_count_set(np.random.default_rng(100), 100, 120)
    bias = {}
    for method in ("mle", "neyman"):
        taus = [fit_decay(t, y, irf, method=method, background=False, shift=False,
                          profile=False).params["tau1"] for t, y, irf in data]
        bias[method] = np.mean(taus) / 134.0 - 1
    assert abs(bias["mle"]) < 0.03                     # ±0.9 % statistical
    assert abs(bias["neyman"]) > 0.03 and abs(bias["neyman"]) > 2 * abs(bias["mle"])


def test_fisher_error_matches_scatter_and_profile_coverage():
    rng = np.random.default_rng(7)
    tau = 134.0
    fits = []
    for _ in range(120):
        t, y, irf = simulate(rng, [tau], [1.0], 1.5, 512, irf_fwhm_ns=0.3, background=1.0,
                             n_photons=10_000, n_irf=20_000)
        fits.append(fit_decay(t, y, irf))               # background and shift free
    taus = np.array([f.params["tau1"] for f in fits])
    fisher = np.mean([f.stderr["tau1"] for f in fits])
    assert fisher / taus.std(ddof=1) == pytest.approx(1.0, abs=0.2)
    covered = np.mean([lo <= tau <= hi for lo, hi in
                       (f.profile_intervals_ns["tau1"] for f in fits)])
    assert 0.55 <= covered <= 0.81                      # 68.3 % ± 3σ for 120 repeats


# ---------------------------------------------------------------------------------------------
# options and bad input
def test_fixed_background_and_tail_fit_start():
    rng = np.random.default_rng(5)
    t, y, irf = simulate(rng, [134.0], [2e3], 0.5, 1024, background=3.0)
    r = fit_decay(t, y, irf, background=3.0, fit_range=(10.0, 500.0), profile=False)
    assert r.params["background"] == 3.0 and "background" in r.extras["fixed"]
    assert r.extras["fit_range_ns"][0] >= 10.0 and r.extras["fit_range_ns"][1] <= 500.0
    assert r.params["tau1"] == pytest.approx(134.0, rel=0.03)
    tail = tail_fit(t, y, irf_counts=irf, profile=False)
    assert tail.extras["tail_start_ns"] > t[np.argmax(irf)]
    no_irf = tail_fit(t, y, profile=False)
    assert no_irf.params["tau1"] == pytest.approx(134.0, rel=0.05)


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(1)
    return simulate(rng, [134.0], [100.0], 2.0, 512)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"counts": "neg"}, r"counts\[3\]=-1\.0 .*>= 0"),
    ({"counts": "short"}, r"counts has 511 values; allowed: exactly 512"),
    ({"irf_counts": "zeros"}, r"irf_counts sum to 0\.0"),
    ({"n_exp": 4}, r"n_exp=4 is out of range; allowed: 1, 2 or 3"),
    ({"n_exp": 0}, r"n_exp=0 is out of range"),
    ({"method": "pearson"}, r"method='pearson' is not allowed"),
    ({"fit_range": (-50.0, 100.0)}, r"fit_range=\(-50\.0, 100\.0\) ns is out of range.*0 <= low"),
    ({"fit_range": (100.0, 5000.0)}, r"fit_range=\(100\.0, 5000\.0\) ns is out of range"),
    ({"fit_range": (100.0, 101.0)}, r"fit_range=\(100\.0, 101\.0\) ns holds 1 channels"),
    ({"repetition_period_ns": 500.0}, r"repetition_period_ns=500\.0 .*>= the histogram window"),
    ({"p0": {"tau9": 3.0}}, r"p0 key 'tau9' is not a parameter"),
    ({"p0": {"tau1": -3.0}}, r"p0\['tau1'\]=-3\.0 is out of range"),
    ({"background": False, "p0": {"background": 2.0}}, r"p0 key 'background' names a fixed"),
    ({"fit_range": (1.0,)}, r"fit_range=\(1\.0,\) is not allowed; allowed: a \(low, high\)"),
    ({"shift": "yes"}, r"shift='yes' is not a number"),
    ({"time_ns": "uneven"}, r"time_ns steps range"),
])
def test_bad_input_names_parameter_and_value(small, kwargs, pattern):
    t, y, irf = small
    args = {"time_ns": t, "counts": y, "irf_counts": irf}
    special = {"neg": lambda: np.where(np.arange(y.size) == 3, -1.0, y), "short": lambda: y[:-1],
               "zeros": lambda: np.zeros_like(irf), "uneven": lambda: t ** 1.01}
    for key, value in kwargs.items():
        args[key] = special[value]() if isinstance(value, str) and value in special else value
    with pytest.raises(ValueError, match=pattern):
        fit_decay(args.pop("time_ns"), args.pop("counts"), args.pop("irf_counts"), **args)


def test_tail_fit_and_energy_transfer_bad_input(small):
    t, y, _ = small
    with pytest.raises(ValueError, match=r"\(start_ns, stop_ns\)=\(2000\.0, 1022\.0\) ns"):
        tail_fit(t, y, start_ns=2000.0)
    with pytest.raises(ValueError, match=r"tau_d=0\.0 is out of range"):
        energy_transfer_efficiency(122.0, 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"tau_da_err=-1\.0 is out of range; allowed range: >= 0"):
        energy_transfer_efficiency(122.0, -1.0, 134.0, 1.0)


# ---------------------------------------------------------------------------------------------
# the tail-fit cross-check beside every reconvolution (spinlight.analysis.pl_run)
def test_reconvolution_runs_the_tail_cross_check_and_flags_a_disagreement():
    from dataclasses import replace

    from spinlight.analysis.pl_run import DecayData, analyze_decay, tail_cross_check
    rng = np.random.default_rng(8)
    t, y, irf = simulate(rng, [134.0], [1e4], 0.25, 3072, shift_ns=0.1)
    a = analyze_decay(DecayData(t, y, "sample"), (t, irf), profile=False)
    tail = a.tail
    assert a.fit_kind == "reconvolution" and tail["tail_compared"] == "tau1"
    assert tail["tail_tau_ns"] == pytest.approx(134.0, rel=0.02) and tail["tail_agrees"]
    assert tail["tail_delta_sigma"] < 3.0 and tail["tail_start_ns"] > t[np.argmax(irf)] + 2.0
    assert {"tail_tau_ns", "tail_tau_err_ns", "tail_agrees"} <= set(a.scalars())
    # a reconvolution τ 10 combined σ away from the tail's is flagged
    sigma = math.hypot(tail["tail_tau_err_ns"], a.fit.stderr["tau1"])
    off = replace(a.fit, params={**a.fit.params, "tau1": tail["tail_tau_ns"] + 10 * sigma})
    bad = tail_cross_check(t, y, a.irf_counts, off)
    assert not bad["tail_agrees"] and bad["tail_delta_sigma"] == pytest.approx(10.0, rel=1e-6)
    # two lifetimes: the tail starts after 5 of the shorter ones and is compared with the longer
    t, y, irf = simulate(rng, [20.0, 200.0], [4e3, 4e3], 0.5, 3072)
    two = analyze_decay(DecayData(t, y, "sample", n_exp=2), (t, irf), profile=False).tail
    assert two["tail_compared"] == "tau2" and two["tail_start_ns"] > t[np.argmax(y)] + 95.0
    assert two["tail_agrees"] and two["tail_tau_ns"] == pytest.approx(200.0, rel=0.03)
    # without an IRF the fit is a tail fit already: no cross-check
    assert analyze_decay(DecayData(t, y, "sample"), None, profile=False).tail == {}
