"""ac-spectrum fit speed, measured in one run and printed as ratios.

A synthetic data set of 20 temperatures × 10 fields = 200 generalized-Debye spectra (30
log-spaced frequencies 1–1000 Hz, 0.5 % Gaussian noise, seeded) is fitted

1. by ``fit_ac_spectrum(model="generalized_debye")`` (analytic Jacobian, full result objects);
2. by the same least-squares problem alone (TRF, bounds, x_scale='jac', same starting values):
   with our analytic Jacobian, and with scipy's 2-point finite differences (the baseline);
3. by ``lmfit.minimize`` (leastsq, bounded Parameters) when lmfit is importable (it is not a
   dependency; the baseline is skipped otherwise);
4. by ``fit_ac_dataset(model="auto")`` (one- vs two-process choice, for information).

Methods 1–2 run round-robin ``--repeat`` times and the fastest run of each is reported, so
load from other processes on the machine biases no method.

All methods must reach the same optimum (max |Δ ln τ| is printed). Run:
``.venv/bin/python benchmarks/bench_ac_fit.py`` (``benchmarks/run_all.py`` picks it up).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy.optimize import least_squares

from spinlight.analysis import ac_models as am
from spinlight.analysis.ac_dataset import AcSpectrum, fit_ac_dataset
from spinlight.analysis.ac_fit import _bounds, _prepare, _start_single, fit_ac_spectrum

N_T, N_H, N_F = 20, 10, 30


def synthetic_dataset(seed: int = 0) -> list[AcSpectrum]:
    """200 GD spectra: τ from Orbach + field-suppressed QTM, α 0.05–0.25, χT = 10 cm³ K/mol."""
    rng = np.random.default_rng(seed)
    f = np.geomspace(1.0, 1000.0, N_F)
    out = []
    for t in np.linspace(2.0, 8.0, N_T):
        for h in np.linspace(0.0, 4500.0, N_H):
            rate = 1e4 * math.exp(-30.0 / t) + 300.0 / (1 + (h / 800.0) ** 2)   # s⁻¹
            tau = min(max(1.0 / rate, 3e-4), 5e-2)        # keep the χ'' peak in the window
            alpha = 0.05 + 0.2 * (h / 4500.0)
            chi_t = 10.0 / t
            p = np.array([math.log(tau), 0.1 * chi_t, chi_t, alpha])
            re, im = am.GENERALIZED_DEBYE.chi_parts(f, p)
            re = re * (1 + 0.005 * rng.standard_normal(N_F))
            im = im * (1 + 0.005 * rng.standard_normal(N_F))
            out.append(AcSpectrum((round(t, 3), round(h, 1)), f, re, im, np.full(N_F, t),
                                  np.full(N_F, h), t, "cm3/mol"))
    return out


def _core(spectra, jac_mode: str) -> tuple[float, np.ndarray]:
    """Bare least_squares on the same scaled problem; returns (seconds, ln τ per spectrum)."""
    model = am.GENERALIZED_DEBYE
    problems = []
    for s in spectra:
        d = _prepare(s.frequency_hz, s.chi_real, s.chi_imag, None, None)
        problems.append((d, _start_single(model, d), _bounds(model, d)))
    ln_tau = np.empty(len(spectra))
    t0 = time.perf_counter()
    for k, (d, x0, bounds) in enumerate(problems):
        def fun(p, d=d):
            c = model.chi(d.f, p)
            return np.concatenate([c.real - d.re, -c.imag - d.im])

        def jac(p, d=d):
            j = model.jacobian(d.f, p)
            return np.vstack([j.real, -j.imag])

        r = least_squares(fun, x0, jac=jac if jac_mode == "analytic" else "2-point",
                          bounds=bounds, method="trf", x_scale="jac")
        ln_tau[k] = r.x[0]
    return time.perf_counter() - t0, ln_tau


def _lmfit(spectra) -> tuple[float, np.ndarray] | None:
    try:
        import lmfit
    except ImportError:
        return None
    model = am.GENERALIZED_DEBYE
    ln_tau = np.empty(len(spectra))
    t0 = time.perf_counter()
    for k, s in enumerate(spectra):
        d = _prepare(s.frequency_hz, s.chi_real, s.chi_imag, None, None)
        x0, (lo, hi) = _start_single(model, d), _bounds(model, d)
        params = lmfit.Parameters()
        for name, v, a, b in zip(model.param_names, x0, lo, hi):
            params.add(name, value=v, min=a, max=b)

        def resid(pars, d=d):
            c = model.chi(d.f, [pars[n].value for n in model.param_names])
            return np.concatenate([c.real - d.re, -c.imag - d.im])

        ln_tau[k] = lmfit.minimize(resid, params, method="leastsq").params["ln_tau"].value
    return time.perf_counter() - t0, ln_tau


def _ours(spectra) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    res = [fit_ac_spectrum(s.frequency_hz, s.chi_real, s.chi_imag, model="generalized_debye")
           for s in spectra]
    return time.perf_counter() - t0, np.array([r.params["ln_tau"] for r in res])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=3,
                   help="round-robin repetitions; the fastest of each method is reported")
    args = p.parse_args(argv)
    spectra = synthetic_dataset(args.seed)
    n = len(spectra)
    fit_ac_spectrum(spectra[0].frequency_hz, spectra[0].chi_real, spectra[0].chi_imag)  # warm-up
    methods = {"ours": _ours, "analytic": lambda s: _core(s, "analytic"),
               "2-point": lambda s: _core(s, "2-point")}
    best: dict[str, tuple[float, np.ndarray]] = {}
    for _ in range(max(args.repeat, 1)):     # round robin: machine load hits every method alike
        for name, run in methods.items():
            t, ln = run(spectra)
            if name not in best or t < best[name][0]:
                best[name] = (t, ln)
    (t_ours, ln_ours), (t_an, ln_an), (t_fd, ln_fd) = best["ours"], best["analytic"], \
        best["2-point"]
    lm = _lmfit(spectra)
    t0 = time.perf_counter()
    auto = fit_ac_dataset(spectra, model="auto")
    t_auto = time.perf_counter() - t0

    print(f"ac fits: {n} GD spectra ({N_T} T x {N_H} H, {N_F} frequencies, 0.5 % noise)")
    print(f"fit_ac_spectrum (analytic jac, full results): {t_ours:.3f} s = "
          f"{t_ours / n * 1e3:.2f} ms per fit")
    print(f"least_squares TRF analytic jac: {t_an:.3f} s ({t_an / n * 1e3:.2f} ms/fit); "
          f"2-point jac: {t_fd:.3f} s ({t_fd / n * 1e3:.2f} ms/fit) -> finite-difference / "
          f"analytic = {t_fd / t_an:.2f}")
    print(f"2-point baseline / fit_ac_spectrum (incl. result objects) = {t_fd / t_ours:.2f}")
    if lm is None:
        print("lmfit baseline: skipped (lmfit not importable; it is not a dependency)")
    else:
        print(f"lmfit.minimize leastsq: {lm[0]:.3f} s ({lm[0] / n * 1e3:.2f} ms/fit) -> lmfit / "
              f"fit_ac_spectrum = {lm[0] / t_ours:.2f}")
    worst = max(np.abs(ln_fd - ln_ours).max(), np.abs(ln_an - ln_ours).max(),
                np.abs(lm[1] - ln_ours).max() if lm else 0.0)
    print(f"same optimum: max |delta ln tau| between methods = {worst:.2e}")
    n_two = int(sum(r is not None and r.model == "double_generalized_debye"
                    for r in auto.results))
    print(f"fit_ac_dataset(model='auto'): {t_auto:.3f} s = {t_auto / n * 1e3:.2f} ms per "
          f"spectrum; two processes chosen for {n_two}/{n} single-process spectra")


if __name__ == "__main__":
    main()
