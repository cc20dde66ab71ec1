"""Lifetime precision benchmark: photon-economy factor F = (σ_τ/τ)·√N of our TCSPC fitters.

Repeated simulated decays (τ = 134 ns, mCB-Nd) in the setting of ``reference/fitting.md`` §3.3:
256 channels over a window T = 10 τ, an IRF much narrower than a channel, no background,
amplitude and τ fitted. For N = 10², 10³, 10⁴ photons it prints, for the Poisson maximum-
likelihood fitter (``method="mle"``) and Neyman-weighted least squares (``"neyman"``): the
relative bias of τ, F from the scatter of τ over the repeats (± its sampling error F/√(2R)),
F predicted by the fit's own Fisher error, and the Cramér–Rao F of this exact setup (expected
Fisher information; ideal = 1, §3.3 table: 1.002 for T = 10 τ, K = 256).

Run: ``.venv/bin/python benchmarks/bench_lifetime_precision.py [--repeats 300]``.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

TAU_NS = 134.0
N_CHANNELS = 256
WINDOW_TAU = 10.0
PHOTONS = (100, 1_000, 10_000)
METHODS = ("mle", "neyman")


def simulate(rng, n_photons: int, width: float):
    """Photon counts for a δ-like IRF (0.2 ns FWHM) at the centre of channel 10, no background."""
    t0 = 10.5 * width
    arrival = t0 + rng.normal(0.0, 0.085, n_photons) + rng.exponential(TAU_NS, n_photons)
    idx = np.floor(arrival / width).astype(np.int64)
    counts = np.bincount(idx[idx < N_CHANNELS], minlength=N_CHANNELS).astype(float)
    irf = np.zeros(N_CHANNELS)
    irf[10] = 1.0
    return np.arange(N_CHANNELS) * width, counts, irf


def cramer_rao(width: float, n_photons: int) -> float:
    from spinlight.analysis.decay_models import ReconvolutionModel
    from spinlight.analysis.lifetime_uncertainty import cramer_rao_factor

    irf = np.zeros(N_CHANNELS)
    irf[10] = 1.0
    model = ReconvolutionModel(N_CHANNELS, width, irf, 1)
    theta = [math.log(TAU_NS), 1.0, 0.0, 0.0]
    return cramer_rao_factor(model, theta, [True, True, False, False], n_photons)


def run(repeats: int, seed: int = 0) -> list[dict]:
    from spinlight.analysis.lifetime_fit import fit_decay

    width = WINDOW_TAU * TAU_NS / N_CHANNELS
    rng = np.random.default_rng(seed)
    rows = []
    for n in PHOTONS:
        data = [simulate(rng, n, width) for _ in range(repeats)]
        f_cr = cramer_rao(width, n)
        for method in METHODS:
            t0 = time.perf_counter()
            fits = [fit_decay(t, y, irf, method=method, background=False, shift=False,
                              profile=False) for t, y, irf in data]
            wall = time.perf_counter() - t0
            taus = np.array([f.params["tau1"] for f in fits])
            errs = np.array([f.stderr["tau1"] for f in fits])
            f_mc = taus.std(ddof=1) / TAU_NS * math.sqrt(n)
            rows.append({"n": n, "method": method, "bias": taus.mean() / TAU_NS - 1.0,
                         "F": f_mc, "F_err": f_mc / math.sqrt(2.0 * repeats),
                         "F_fisher": float(np.mean(errs)) / TAU_NS * math.sqrt(n),
                         "F_cramer_rao": f_cr, "ms_per_fit": 1e3 * wall / repeats})
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rows = run(args.repeats, args.seed)
    print(f"TCSPC lifetime precision, tau = {TAU_NS:g} ns, {N_CHANNELS} channels over "
          f"{WINDOW_TAU:g} tau, delta IRF, no background, {args.repeats} repeats per row")
    print(f"{'N photons':>9} {'method':>7} {'bias':>8} {'F (scatter)':>14} {'F (Fisher)':>10} "
          f"{'F (Cramer-Rao)':>14} {'ms/fit':>7}")
    for r in rows:
        print(f"{r['n']:>9d} {r['method']:>7} {100 * r['bias']:>+7.2f}% "
              f"{r['F']:>7.3f} ± {r['F_err']:.3f} {r['F_fisher']:>10.3f} "
              f"{r['F_cramer_rao']:>14.3f} {r['ms_per_fit']:>7.1f}")
    by = {(r["n"], r["method"]): r for r in rows}
    print("MLE F / Cramer-Rao F: " + ", ".join(
        f"N={n}: {by[(n, 'mle')]['F'] / by[(n, 'mle')]['F_cramer_rao']:.2f}" for n in PHOTONS)
        + "; Neyman F / MLE F: " + ", ".join(
        f"N={n}: {by[(n, 'neyman')]['F'] / by[(n, 'mle')]['F']:.2f}" for n in PHOTONS))


if __name__ == "__main__":
    main()
