"""Automatic starting values for relaxation-rate fits (grid + non-negative least squares).

The model is *linear* in the term amplitudes (B1, D1, D2, C, 1/τ0) once the three shape
parameters B2, n and U are set. So the starting values come from a small grid over the free
shape parameters (B2: 12 log-spaced values over 0.1/H_max² … 10/H_min²; n: 1 to 11.5 in steps
of 1.5; U: 16 log-spaced values over T_min/2 … 50·T_max; a fixed value is used as is);
at each grid point the free amplitudes are a weighted non-negative least-squares solution
(rows weighted by 1/(rate·σ·ln10), the linearisation of the log10-rate residual). Every grid
point is then scored by the true log10-rate χ², and the best few grid points that are not
neighbours of each other become the multi-starts of the nonlinear fit. This replaces guesses
such as "Arrhenius on the high-T points" and "low-field plateau" by their exact common
generalisation, and it cannot start a fit with a term stuck at zero.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import nnls

from .relaxation_terms import AMPLITUDE_OF, LN10, RelaxationModel, term_basis, to_internal

#: A term that the linear solution switches off starts at this fraction of the smallest rate.
ZERO_AMPLITUDE_FRACTION = 1e-2


def _shape_grid(name: str, model: RelaxationModel, field_T, temperature_K) -> np.ndarray:
    lo, hi = model.bounds[name]
    if name == "B2":
        h2 = field_T[field_T > 0] ** 2
        if h2.size == 0:
            return np.array([np.clip(1.0, lo, hi)])
        grid = np.geomspace(0.1 / h2.max(), 10.0 / h2.min(), 12)
    elif name == "n":
        grid = np.arange(1.0, 12.5, 1.5)
        if grid[(grid >= lo) & (grid <= hi)].size < 4:
            grid = np.linspace(lo, hi, 6)
    else:  # U
        grid = np.geomspace(0.5 * temperature_K.min(), 50.0 * temperature_K.max(), 16)
    grid = np.unique(np.clip(grid, lo, hi))
    return grid


#: Shape parameter of each term (None: the term has no shape parameter).
SHAPE_OF = {"qtm": "B2", "direct_h4": None, "direct_h2": None, "raman": "n", "orbach": "U"}


class _LinearSolver:
    """Free amplitudes by weighted NNLS for given shape parameters, and the log10 χ²."""

    def __init__(self, model: RelaxationModel, field_T, temperature_K, log10_rate, sigma):
        self.model, self.h, self.t = model, field_T, temperature_K
        self.y, self.sigma = log10_rate, sigma
        self.rate = 10.0 ** log10_rate
        self.row_w = 1.0 / (self.rate * sigma * LN10)
        self.free_terms = [t for t in model.terms if AMPLITUDE_OF[t] not in model.fixed]
        self.fixed_amp = {t: _amplitude(AMPLITUDE_OF[t], model.fixed[AMPLITUDE_OF[t]])
                          for t in model.terms if t not in self.free_terms}
        self._cache: dict = {}

    def column(self, term: str, shape_value) -> np.ndarray:
        key = (term, shape_value)
        if key not in self._cache:  # each term shape depends on one value: evaluate it once
            shape = SHAPE_OF[term]
            self._cache[key] = term_basis(term, self.h, self.t,
                                          {shape: shape_value} if shape else {})
        return self._cache[key]

    def solve(self, shapes: dict) -> tuple[float, dict, dict]:
        """(χ², {term: amplitude}, {term: column}) for shape values ``shapes``."""
        col = {t: self.column(t, shapes.get(SHAPE_OF[t])) for t in self.model.terms}
        model_rate = sum((amp * col[t] for t, amp in self.fixed_amp.items()),
                         np.zeros_like(self.rate))
        amps = np.zeros(len(self.free_terms))
        if self.free_terms:
            a = np.column_stack([col[t] for t in self.free_terms])
            amps, _ = nnls(a * self.row_w[:, None], (self.rate - model_rate) * self.row_w)
            model_rate = a @ amps + model_rate
        resid = (np.log10(np.maximum(model_rate, 1e-300)) - self.y) / self.sigma
        return float(resid @ resid), dict(zip(self.free_terms, amps)), col

    def vector(self, shapes: dict, amps: dict, col: dict, override: dict) -> np.ndarray:
        """Internal free-parameter vector; ``override`` (physical values) wins."""
        values = {**self.model.fixed, **shapes}
        for term, amp in amps.items():
            if amp <= 0:  # switched off by the linear solution: start small but alive
                amp = ZERO_AMPLITUDE_FRACTION * self.rate.min() / max(float(col[term].max()),
                                                                      1e-300)
            values[AMPLITUDE_OF[term]] = _amplitude(AMPLITUDE_OF[term], amp)
        values.update(override)
        x = []
        for name in self.model.free_names:
            lo, hi = self.model.bounds[name]
            x.append(to_internal(name, float(np.clip(values[name], lo, hi))))
        return np.array(x)


def starting_points(model: RelaxationModel, field_T, temperature_K, log10_rate, sigma,
                    n_starts: int) -> list[np.ndarray]:
    """Up to ``n_starts`` internal free-parameter vectors, best first.

    With ``model.initial`` the first start is the best grid point with those values put in
    (shape values given there also set the linear amplitudes); the others come from the grid.
    """
    solver = _LinearSolver(model, field_T, temperature_K, log10_rate, sigma)
    names = [SHAPE_OF[t] for t in model.terms if SHAPE_OF[t]]
    grids = [np.array([model.fixed[n]]) if n in model.fixed
             else _shape_grid(n, model, field_T, temperature_K) for n in names]
    scored = []
    for idx in itertools.product(*(range(g.size) for g in grids)):
        shapes = {n: float(g[i]) for n, g, i in zip(names, grids, idx)}
        scored.append((solver.solve(shapes)[0], idx, shapes))
    scored.sort(key=lambda s: s[0])
    starts = []
    if model.initial:
        shapes = {**scored[0][2], **{n: v for n, v in model.initial.items() if n in names}}
        starts.append(solver.vector(shapes, *solver.solve(shapes)[1:], model.initial))
    chosen: list[tuple] = []
    for cand in scored:
        if len(starts) >= n_starts:
            break
        # multi-starts must come from different regions of the grid, not neighbouring cells
        if all(max((abs(i - j) for i, j in zip(cand[1], c[1])), default=0) >= 2
               for c in chosen):
            chosen.append(cand)
            starts.append(solver.vector(cand[2], *solver.solve(cand[2])[1:], {}))
    return starts


def _amplitude(name: str, value: float) -> float:
    return 1.0 / value if name == "tau0" else value
