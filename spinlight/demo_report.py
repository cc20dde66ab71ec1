"""The demo's outputs: a measured-vs-published table and paper-style figures."""

from __future__ import annotations

import math
import pathlib


def _fmt(fmt: str, value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return fmt.format(value)


def comparison_table(analyses: dict, published: dict, rows) -> tuple[str, dict]:
    """Side-by-side text table; returns (text, JSON summary with both numbers per cell)."""
    names = list(analyses)
    values = {}
    for name in names:
        merged = {}
        for analysis in analyses[name].values():
            if analysis is not None:
                merged.update(analysis.to_dict())
        values[name] = merged
    width = max(len(r[0]) for r in rows) + 2
    head = "quantity".ljust(width) + "".join(f"{n + ' (sim | paper)':>26}" for n in names)
    lines = [head, "-" * len(head)]
    summary = {"compounds": {n: {} for n in names}}
    for label, key, pub_key, fmt in rows:
        cells = []
        for name in names:
            got = values[name].get(key)
            ref = published[name].get(pub_key)
            cells.append(f"{_fmt(fmt, got):>12} | {_fmt(fmt, ref):<11}")
            summary["compounds"][name][key] = {"simulated_measured_fitted": got, "published": ref}
        lines.append(label.ljust(width) + "".join(f"{c:>26}" for c in cells))
    return "\n".join(lines), summary


def write_figures(analyses: dict, outdir: pathlib.Path) -> list[pathlib.Path]:
    """χT with 1/χ inset, M(H) isotherms and −ΔS_m(T), one figure per quantity, all compounds."""
    from spinlight.analysis.figures import plot_chi_t, plot_m_h, plot_mce

    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    chi = [(n, a["chi_t"].chi_t) for n, a in analyses.items()
           if a.get("chi_t") is not None and a["chi_t"].chi_t is not None]
    if chi:
        written.append(plot_chi_t([c for _, c in chi], outdir / "chi_t.png",
                                  labels=[n for n, _ in chi]))
    for name, per in analyses.items():
        mce = per.get("mce_isotherms")
        if mce is None:
            continue
        if mce.mh is not None:
            written.append(plot_m_h(mce.mh, outdir / f"m_h_{name}.png", labels=[name]))
        if mce.mce is not None:
            written.append(plot_mce(mce.mce, outdir / f"minus_delta_s_{name}.png", labels=[name]))
    return written
