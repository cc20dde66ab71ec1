"""Paper-style ac-susceptibility figures: χ'(f), χ''(f) and Cole–Cole families
(:mod:`.ac_spectrum_figures`), τ⁻¹ vs H and ln τ vs 1/T with the fitted mechanism terms
(:mod:`.ac_relaxation_figures`), and :func:`write_ac_figures`, every figure the inputs allow
written as PNGs (the demo's).

Markers are data, lines are fits; spectra the fit discarded (and their τ points) are drawn with
alpha :data:`FADED_ALPHA`. Every function returns the Figure and writes a PNG when ``path`` is
given. Figures are ``matplotlib.figure.Figure`` objects on Agg, never registered with pyplot, so
there is nothing to close (freed with their last reference). Artists carry a ``gid``
(``data:<set>``, ``fit:<set>``, ``term:<name>``, ``arrhenius``) for callers and tests.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import numpy as np

from .ac_dataset import AcDatasetResult
from .ac_figure_base import FADED_ALPHA
from .ac_relaxation_figures import FIXED_SPREAD, plot_ln_tau_vs_inverse_t, plot_rate_vs_field
from .ac_spectrum_figures import COLOR_BY, plot_ac_spectra, plot_cole_cole
from .arrhenius import ArrheniusResult
from .figures import _save
from .relaxation import RelaxationResult, SequentialResult

__all__ = ["COLOR_BY", "FADED_ALPHA", "FIXED_SPREAD", "plot_ac_spectra", "plot_cole_cole",
           "plot_ln_tau_vs_inverse_t", "plot_rate_vs_field", "write_ac_figures"]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "sample"


def _relaxation_parts(name: str, value) -> dict:
    """{"field": …, "temperature": …, "arrhenius": …} from one relaxation_by_name value."""
    if isinstance(value, Mapping):
        if set(value) - {"field", "temperature", "sequential", "arrhenius"}:
            raise ValueError(f"relaxation_by_name[{name!r}] has keys {sorted(value)}; allowed: "
                             "field, temperature, sequential, arrhenius")
        out = _relaxation_parts(name, value.get("sequential"))
        return {**out, **{k: v for k, v in value.items() if k != "sequential" and v is not None}}
    if value is None:
        return {}
    if isinstance(value, SequentialResult):
        return {"field": value, "temperature": value}
    if isinstance(value, ArrheniusResult):
        return {"arrhenius": value}
    if isinstance(value, RelaxationResult):     # a global fit (H and T vary) has no scan
        scan = "field" if np.ptp(value.temperature_K) == 0 else \
            "temperature" if np.ptp(value.field_Oe) == 0 else None
        return {scan: value} if scan else {}
    raise TypeError(f"relaxation_by_name[{name!r}]={type(value).__name__}; allowed: "
                    "SequentialResult, RelaxationResult, ArrheniusResult or a mapping")


def write_ac_figures(dataset_by_name: Mapping, relaxation_by_name: Mapping, out_dir
                     ) -> list[Path]:
    """Write every figure that the inputs allow; return the PNG paths.

    ``dataset_by_name``: sample → :class:`AcDatasetResult` or {label → AcDatasetResult}
    (e.g. a field scan and a temperature scan): ``ac_spectra_<sample>[_<label>].png`` (coloured
    by H for a field scan, else by T) and ``cole_cole_…png``.
    ``relaxation_by_name``: sample → :class:`SequentialResult`, :class:`RelaxationResult`,
    :class:`ArrheniusResult` or a mapping with keys ``field``, ``temperature``,
    ``sequential``, ``arrhenius``: ``rate_vs_field_<sample>.png`` and
    ``ln_tau_vs_inv_T_<sample>.png``. Missing or None entries are skipped.
    """
    for arg, value in (("dataset_by_name", dataset_by_name),
                       ("relaxation_by_name", relaxation_by_name)):
        if not isinstance(value, Mapping):
            raise TypeError(f"{arg}={type(value).__name__}; allowed: a dict name → result")
    out = Path(out_dir)
    written: list[Path] = []
    for name, value in dataset_by_name.items():
        items = value.items() if isinstance(value, Mapping) else [("", value)]
        for label, ds in items:
            if ds is None or (isinstance(ds, AcDatasetResult) and not ds.spectra):
                continue
            tag = _safe(name) + (f"_{_safe(label)}" if label else "")
            head = f"{name} {label}".strip()
            for kind, plot in (("ac_spectra", plot_ac_spectra), ("cole_cole", plot_cole_cole)):
                written.append(_save(plot(ds, color_by="auto", title=head),
                                     out / f"{kind}_{tag}.png"))
    for name, value in relaxation_by_name.items():
        parts = _relaxation_parts(name, value)
        if parts.get("field") is not None:
            written.append(_save(plot_rate_vs_field(parts["field"], title=str(name)),
                                 out / f"rate_vs_field_{_safe(name)}.png"))
        if parts.get("temperature") is not None or parts.get("arrhenius") is not None:
            fig = plot_ln_tau_vs_inverse_t(parts.get("temperature"),
                                           arrhenius=parts.get("arrhenius"), title=str(name))
            written.append(_save(fig, out / f"ln_tau_vs_inv_T_{_safe(name)}.png"))
    return written
