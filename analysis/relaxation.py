"""Relaxation-mechanism fits: τ⁻¹(H, T) = QTM + direct + Raman + Orbach.

    τ⁻¹ = B1/(1 + B2·H²) + D1·H⁴·T + D2·H²·T + C·Tⁿ + τ0⁻¹·exp(−U/T)

Terms ``qtm``, ``direct_h4``, ``direct_h2``, ``raman``, ``orbach``; H in T inside the model
(every public function takes ``field_Oe``, 1 T = 10⁴ Oe), T and U in K (U also in cm⁻¹,
1 cm⁻¹ = 1.4388 K), B1 s⁻¹, B2 T⁻², D1 s⁻¹K⁻¹T⁻⁴, D2 s⁻¹K⁻¹T⁻², C s⁻¹K⁻ⁿ, τ0 s.

* :class:`RelaxationModel` — terms on/off, fixed parameters, starting values, bounds;
* :func:`fit_rate_vs_field`, :func:`fit_rate_vs_temperature`, :func:`fit_rate_global` — one
  fit each, returning a :class:`RelaxationResult` (fitting conventions in
  :mod:`.relaxation_fit`: log10-rate residuals weighted by σ = σ_lnτ/ln10, log10 parameters,
  analytic Jacobian, grid + NNLS multi-starts, covariance scaled by χ²_red by default);
* :func:`sequential_fit` — the paper's workflow (J. Mater. Chem. C 2026, d5tc03820k): τ⁻¹(H)
  at fixed T gives B1, B2, D2 (D1 = 0 by default); τ⁻¹(T) at fixed H with B1, B2 (and D2,
  unless ``refit_D2``) held at the step-1 values gives C, n, τ0, U.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .relaxation_fit import (FIELD_SCAN_TERMS, fit_rate_global, fit_rate_vs_field,
                             fit_rate_vs_temperature, fit_relaxation,
                             log10_rate_err_from_sigma_ln_tau)
from .relaxation_result import ModelCurve, RelaxationResult, format_param
from .relaxation_terms import (DEFAULT_TERMS, FIELD_TERMS, K_PER_CM1, PARAMS, TEMPERATURE_TERMS,
                               TERMS, RelaxationModel)
from .results import format_table, format_value, json_safe

#: Relative parameter change below which the sequential cycles stop.
CYCLE_TOLERANCE = 1e-4


@dataclass
class SequentialResult:
    """Both steps of :func:`sequential_fit`.

    ``params``/``stderr``: field-dependent parameters (B1, B2, D1, D2) from the field scan and
    temperature-only ones (C, n, τ0, U) from the temperature scan; with ``refit_D2`` the
    temperature scan's own D2 is ``D2_temperature``. ``history``: per cycle,
    ``{"field": params, "temperature": params, "fit_time_s": s}``. ``term_rates``, ``rate``
    and ``tau`` use the temperature-scan model (the full parameter set; with ``refit_D2`` its
    D2 is the refitted one).
    """

    field_result: RelaxationResult
    temperature_result: RelaxationResult
    params: dict[str, float]
    stderr: dict[str, float]
    cycles: int
    converged: bool
    refit_D2: bool
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def chi2_red(self) -> float:
        """χ² of both steps over their total degrees of freedom."""
        f, t = self.field_result, self.temperature_result
        dof = (f.n_points - len(f.free_names)) + (t.n_points - len(t.free_names))
        return (f.chi2 + t.chi2) / dof

    @property
    def fit_time_s(self) -> float:
        return sum(r.get("fit_time_s", 0.0) for r in self.history)

    def term_rates(self, field_Oe, temperature_K) -> dict[str, np.ndarray]:
        return self.temperature_result.term_rates(field_Oe, temperature_K)

    def rate(self, field_Oe, temperature_K) -> np.ndarray:
        return self.temperature_result.rate(field_Oe, temperature_K)

    def tau(self, field_Oe, temperature_K) -> np.ndarray:
        return self.temperature_result.tau(field_Oe, temperature_K)

    def _key(self, name: str, err: bool = False) -> str:
        unit = PARAMS["D2" if name == "D2_temperature" else name].unit
        return f"{name}{'_err' if err else ''}{'_' + unit if unit else ''}"

    def source(self, name: str) -> RelaxationResult:
        """The step whose fit produced parameter ``name``."""
        if name != "D2_temperature" and PARAMS[name].term in FIELD_TERMS:
            return self.field_result
        return self.temperature_result

    def report(self) -> str:
        rows = []
        for name, value in self.params.items():
            status = self.source(name).status("D2" if name == "D2_temperature" else name)
            rows.append((self._key(name), format_param(value, self.stderr.get(name))
                         + (f" ({status})" if status else "")))
        if "U" in self.params:
            rows.append(("U_cm-1", format_value(self.params["U"] / K_PER_CM1,
                                                self.stderr["U"] / K_PER_CM1)))
        rows += [("cycles", f"{self.cycles} ({'converged' if self.converged else 'max'})"),
                 ("refit_D2", str(self.refit_D2)), ("chi2_red (both)", format_value(self.chi2_red)),
                 ("fit_time_s", f"{self.fit_time_s:.3g}")]
        return "\n".join([format_table("Sequential relaxation fit", rows),
                          self.field_result.report(), self.temperature_result.report()])

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"model": "sequential_relaxation"}
        for name, v in self.params.items():
            out[self._key(name)] = v
            out[self._key(name, err=True)] = self.stderr.get(name)
        if "U" in self.params:
            out["U_cm1"] = self.params["U"] / K_PER_CM1
            out["U_err_cm1"] = self.stderr["U"] / K_PER_CM1
        out.update(cycles=self.cycles, converged=self.converged, refit_D2=self.refit_D2,
                   chi2_red=self.chi2_red, field_fit=self.field_result.to_dict(),
                   temperature_fit=self.temperature_result.to_dict())
        return json_safe(out)

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.report()


def _scan(arg: str, scan) -> tuple:
    if not isinstance(scan, (tuple, list)) or len(scan) != 4:
        raise ValueError(f"{arg}={type(scan).__name__}: allowed: a 4-tuple (x, tau_s, "
                         "log10_rate_err or None, fixed value)")
    if np.ndim(scan[3]) != 0:
        raise ValueError(f"{arg}[3] has shape {np.shape(scan[3])}; allowed: one scalar (the "
                         "fixed temperature in K or field in Oe of that scan)")
    return tuple(scan)


def sequential_fit(field_scan: Sequence, temperature_scan: Sequence, *,
                   terms=DEFAULT_TERMS, fixed: Mapping | None = None,
                   initial: Mapping | None = None, bounds: Mapping | None = None,
                   refit_D2: bool = False, cycles: int = 2, n_starts: int = 4,
                   absolute_sigma: bool = False) -> SequentialResult:
    """The paper's two-step relaxation fit.

    field_scan : (field_Oe, tau_s, log10_rate_err or None, T_fixed_K)
    temperature_scan : (temperature_K, tau_s, log10_rate_err or None, H_fixed_Oe)
    terms : the mechanisms of the compound (default: all but ``direct_h4``, i.e. D1 = 0);
        e.g. ``("qtm", "direct_h2", "orbach")`` for a compound without Raman (mCB-Yb, C = 0).
    fixed, initial, bounds : physical values per parameter name (validated against ``terms``).
    refit_D2 : free D2 again in step 2 (mCB-Nd: the H and T dependences need different D2).
    cycles : cycle 1 is exactly the paper's workflow: the field scan is fitted without the
        Raman and Orbach terms (unless all their parameters are in ``fixed``: known terms are
        always included). Each further cycle refits the field scan with those terms held
        at the previous step-2 values at T_fixed (there they are a constant: ≈ 7 % of the
        mCB-Yb rate at 2 K, ≈ 50 % for mCB-Nd), then repeats step 2; the loop stops early
        when no parameter moves by more than 1e-4 (relative). On synthetic mCB-Yb data (20
        seeds, σ_lnτ = 0.05; tests/unit/test_relaxation.py) U came out 19.6 ± 0.7 K with
        cycles=1 (biased by the neglected Orbach rate at 2 K), 18.45 ± 0.8 K with the
        default cycles=2 and 17.9 ± 0.9 K at the self-consistent point (many cycles: the
        feedback amplifies noise), against 18.4 K; :func:`fit_rate_global` gave 18.1 ± 0.6 K.
    Errors of step 2 do not include the uncertainty of the parameters held from step 1.
    """
    h1, tau1, err1, t_fixed = _scan("field_scan", field_scan)
    t2, tau2, err2, h_fixed = _scan("temperature_scan", temperature_scan)
    full = RelaxationModel(terms, fixed=fixed, initial=initial, bounds=bounds)
    cycles = int(cycles)
    if cycles < 1:
        raise ValueError(f"cycles={cycles!r} is out of range; allowed: >= 1")
    if refit_D2 and ("direct_h2" not in full.terms or "D2" in full.fixed):
        raise ValueError(f"refit_D2=True needs a free D2 (terms={full.terms}, "
                         f"fixed={full.fixed}); allowed: refit_D2=False")
    field_terms = tuple(t for t in full.terms if t in FIELD_TERMS)
    temp_terms = tuple(t for t in full.terms if t in TEMPERATURE_TERMS)
    if not field_terms:
        raise ValueError(f"terms={full.terms!r} has no field-dependent term; allowed: at least "
                         f"one of {FIELD_TERMS}")

    def sub(model_terms, extra_fixed):
        mine = {k: v for k, v in full.fixed.items() if PARAMS[k].term in model_terms}
        mine.update(extra_fixed)
        start = {k: v for k, v in full.initial.items()
                 if PARAMS[k].term in model_terms and k not in mine}
        bnd = {k: b for k, b in full.bounds.items() if PARAMS[k].term in model_terms}
        return RelaxationModel(model_terms, fixed=mine, initial=start, bounds=bnd)

    history: list[dict[str, Any]] = []
    previous = None
    converged = False
    # temperature terms whose parameters are all given in `fixed` are known from the start
    known = tuple(t for t in temp_terms
                  if all(n in full.fixed for n in full.param_names if PARAMS[n].term == t))
    for _ in range(cycles):
        step1_terms = known if previous is None else temp_terms
        t_params = {} if previous is None else {
            k: v for k, v in previous.params.items() if PARAMS[k].term in temp_terms}
        m1 = sub(field_terms + step1_terms, t_params)
        r1 = fit_rate_vs_field(h1, tau1, t_fixed, log10_rate_err=err1, model=m1,
                               n_starts=n_starts, absolute_sigma=absolute_sigma)
        hold = {k: r1.params[k] for k in ("B1", "B2", "D1", "D2") if k in r1.params}
        if refit_D2:
            hold.pop("D2", None)
        m2 = sub(full.terms, hold)
        r2 = fit_rate_vs_temperature(t2, tau2, h_fixed, log10_rate_err=err2, model=m2,
                                     n_starts=n_starts, absolute_sigma=absolute_sigma)
        snapshot = {"field": r1.params, "temperature": r2.params,
                    "fit_time_s": r1.fit_time_s + r2.fit_time_s}
        if history and all(_close(history[-1][step][k], v)
                           for step in ("field", "temperature")
                           for k, v in snapshot[step].items() if k in history[-1][step]):
            converged = True
        history.append(snapshot)
        previous = r2
        if converged or not temp_terms:
            converged = True
            break
    params, stderr = _merge(r1, r2, refit_D2)
    return SequentialResult(r1, r2, params, stderr, len(history), converged, bool(refit_D2),
                            history)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= CYCLE_TOLERANCE * max(abs(a), abs(b), 1e-300)


def _merge(r1: RelaxationResult, r2: RelaxationResult, refit_d2: bool):
    params, stderr = {}, {}
    for name in r2.params:
        src = r1 if PARAMS[name].term in FIELD_TERMS else r2
        params[name], stderr[name] = src.params[name], src.stderr[name]
    if refit_d2:
        params["D2_temperature"] = r2.params["D2"]
        stderr["D2_temperature"] = r2.stderr["D2"]
    return params, stderr


__all__ = ["DEFAULT_TERMS", "FIELD_SCAN_TERMS", "ModelCurve", "RelaxationModel",
           "RelaxationResult", "SequentialResult", "TERMS", "fit_rate_global",
           "fit_rate_vs_field", "fit_rate_vs_temperature", "fit_relaxation",
           "log10_rate_err_from_sigma_ln_tau", "sequential_fit"]
