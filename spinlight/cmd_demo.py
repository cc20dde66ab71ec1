"""``spinlight demo``: the paper campaign (dc, ac, photoluminescence) on simulators, stored,
fitted, plotted.

For each compound (mCB-Nd, mCB-Yb, mCB-NdYb): a simulated MPMS3 holding that powder is started
on loopback, spinlight connects to it with the real MultiPyVu client, runs χT(T) at 0.1 T
(sweep mode, 300 → 1.8 K) and the M(H) isotherm set 1.8–21 K up to 5 T; every run lands in the
embedded catalog; the streaming analysis stores its fits as linked runs; a table compares the
fitted numbers with the published ones and paper-style figures are written. The ac part
(``spinlight.demo_ac``: field scan at 2 K, temperature scan at the optimal field, MPMS3 below
1 kHz and PPMS ACMS above, sequential τ⁻¹ fit) follows on the same simulated lab, then the
photoluminescence part (``spinlight.demo_pl``: emission and excitation spectra, decays with
their IRFs fitted by reconvolution, η_ET of mCB-NdYb against mCB-Nd) on the lab's PL bench;
every decay is also written as a PicoQuant PHU file.
"""

from __future__ import annotations

import json
import pathlib
import time

PAPER_SAMPLES = ("mCB-Nd", "mCB-Yb", "mCB-NdYb")

#: (label, key in the analysis results, key in the preset's published values, format)
TABLE_ROWS = (
    ("chiT(300 K) emu K/mol", "chi_t_300K_emu_K_per_mol", "chi_t_300K_emu_K_per_mol", "{:.2f}"),
    ("chiT(1.8 K) emu K/mol", "chi_t_min_T_emu_K_per_mol", "chi_t_1p8K_emu_K_per_mol", "{:.2f}"),
    ("theta_CW (150-300 K) K", "theta_K", "theta_K", "{:.1f}"),
    ("M(1.8 K, 5 T) muB/f.u.", "m_max_muB_per_fu", "m_1p8K_5T_muB", "{:.2f}"),
    ("-dS_m max, dB=2 T (R)", "minus_delta_s_max_R", "minus_delta_s_max_2T_R", "{:.2f}"),
    ("-dS_m max, dB=2 T J/kg/K", "minus_delta_s_max_J_per_kg_K", "minus_delta_s_max_2T_J_per_kg_K", "{:.2f}"),
)


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the paper campaign on simulators and fit it")
    p.add_argument("--out", default="demo-output", help="folder for catalog, .dat files, figures")
    p.add_argument("--speed", type=float, default=3000.0, help="instrument time / wall time")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--samples", nargs="+", default=list(PAPER_SAMPLES))
    p.add_argument("--mass-mg", type=float, default=20.0)
    p.add_argument("--quick", action="store_true",
                   help="fewer points (for tests): 3 K/min sweep from 60 K, 5 isotherms to 2 T")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--skip-ac", action="store_true", help="no ac part")
    p.add_argument("--skip-dc", action="store_true", help="no dc part")
    p.add_argument("--skip-pl", action="store_true", help="no photoluminescence part")
    p.set_defaults(func=run)


def campaign_for(quick: bool) -> dict:
    """Plan arguments of the paper's dc campaign (or a short version for tests)."""
    if quick:
        return {"chi_t": dict(field_Oe=1000.0, t_start_K=60.0, t_stop_K=1.8, mode="sweep",
                              rate_K_per_min=3.0, log_interval_s=30.0),
                "mce": dict(temperatures_K=[1.8, 2.5, 3.5, 5.0, 7.0], max_field_Oe=20000.0,
                            fields_Oe=[0, 2500, 5000, 10000, 15000, 20000])}
    return {"chi_t": dict(field_Oe=1000.0, t_start_K=300.0, t_stop_K=1.8, mode="sweep",
                          rate_K_per_min=2.0, log_interval_s=30.0),
            "mce": dict(temperatures_K=[1.8, 2.5, 3, 4, 5, 6, 7, 8, 10, 12, 15, 18, 21],
                        max_field_Oe=50000.0, field_rate_Oe_per_s=200.0,
                        fields_Oe=[0, 1000, 2500, 5000, 7500, 10000, 15000, 20000, 25000,
                                   30000, 35000, 40000, 45000, 50000])}


def measure_sample(RE, name: str, *, out: pathlib.Path, speed: float, seed: int, mass_mg: float,
                   campaign: dict, ac_campaign: dict | None = None, ac_analyses: dict | None = None,
                   dc: bool = True, pl_campaign: dict | None = None) -> dict:
    """Start a simulated lab with this sample, run χT and the isotherms on the MPMS3, then (with
    ``ac_campaign``) the ac field and temperature scans and (with ``pl_campaign``) the
    photoluminescence part; return run uids and instrument hours."""
    from spinlight.instruments.mpms3_device import connect_mpms3
    from spinlight.plans import Sample, chi_t, mce_isotherms
    from spinlight.simulators.lab import SimulatedLab
    from spinlight.simulators.samples import get_sample

    preset = get_sample(name)
    sample = Sample(name=name, mass_mg=mass_mg, molar_mass_g_per_mol=preset.molar_mass_g_per_mol,
                    formula=preset.formula, ions=dict(preset.ions),
                    diamagnetic_emu_per_mol_Oe=preset.diamagnetic_emu_per_mol_Oe)
    with SimulatedLab(speed=speed, seed=seed, sample=name, mass_mg=mass_mg,
                      data_dir=out / "sim" / name) as lab:
        ep = lab.endpoints["mpms3"]
        uids, hours = {}, {}
        mpms3, vsm = connect_mpms3(ep["host"], ep["port"], mode="request")
        try:
            plans = (("chi_t", chi_t(mpms3, vsm, sample, **campaign["chi_t"])),
                     ("mce_isotherms", mce_isotherms(mpms3, vsm, sample, **campaign["mce"])))
            for kind, plan in plans if dc else ():
                t_start, _ = mpms3.driver.get_clock()
                uids[kind] = RE(plan)[0]
                hours[kind] = (mpms3.driver.get_clock()[0] - t_start) / 3600.0
        finally:
            mpms3.close()
        if ac_campaign is not None:
            from .demo_ac import measure_ac
            ac_uids, ac_hours = measure_ac(RE, lab, sample, ac_campaign,
                                           ac_analyses.setdefault(name, {}))
            uids.update(ac_uids)
            hours.update(ac_hours)
        if pl_campaign is not None and lab.pl is not None:   # no PL preset, no PL bench
            from .demo_pl import measure_pl
            pl_uids, pl_hours = measure_pl(RE, lab, sample, pl_campaign)
            uids.update(pl_uids)
            hours.update(pl_hours)
    return uids, hours


def run(args) -> int:
    from spinlight.analysis.ac_streaming import RelaxationCampaign, make_ac_analysis_router
    from spinlight.analysis.streaming import make_dc_analysis_router
    from spinlight.engine import make_run_engine
    from spinlight.simulators.samples import get_ac_model, get_sample

    from spinlight.analysis.pl_streaming import EnergyTransferTracker, make_pl_analysis_router
    from spinlight.simulators.samples import LUMINESCENCE_PRESETS, get_luminescence

    from .demo_ac import REFIT_D2, ac_campaign, ac_table, write_ac_demo_figures
    from .demo_pl import (ENERGY_TRANSFER, decay_histogram, pl_campaign, pl_key, pl_table,
                          write_pl_demo_figures)
    from .demo_report import comparison_table, write_figures
    from .phu_export import PhuExporter

    out = pathlib.Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    ac_analyses: dict[str, dict] = {}
    pl_analyses: dict[str, dict] = {}

    def on_result(analysis):
        results[analysis.start["uid"]] = analysis

    def on_ac_result(analysis):
        ac_analyses.setdefault(analysis.sample_name, {})[analysis.kind] = analysis
        relaxation(analysis)

    def on_pl_result(analysis):
        key = pl_key(analysis)
        if key is not None:
            pl_analyses.setdefault(key[0], {})[key[1]] = analysis

    RE, catalog = make_run_engine(out / "catalog", progress=not args.no_progress)
    RE.subscribe(make_dc_analysis_router(catalog.store, on_result=on_result, delta_b_T=2.0))
    relaxation = RelaxationCampaign(catalog.store, refit_D2_samples=REFIT_D2)
    RE.subscribe(make_ac_analysis_router(catalog.store, on_result=on_ac_result))
    eta_et = EnergyTransferTracker(*ENERGY_TRANSFER)
    RE.subscribe(make_pl_analysis_router(catalog.store, irf_lookup=lambda uid: decay_histogram(
        catalog, uid), energy_transfer=[eta_et], on_result=on_pl_result))
    phu = PhuExporter(out / "phu")
    RE.subscribe(phu)
    campaign = campaign_for(args.quick)
    ac = None if args.skip_ac else ac_campaign(args.quick)
    pl = None if args.skip_pl else pl_campaign(args.quick)
    t0 = time.monotonic()
    by_sample, instrument_hours = {}, {}
    try:
        for name in args.samples:
            parts = (([] if args.skip_dc else ["chi_t", "mce_isotherms (MPMS3 VSM)"])
                     + ([] if ac is None else
                        ["ac field scan + temperature scan (MPMS3 AC + PPMS ACMS)"])
                     + ([] if pl is None else ["PL spectra + decays (FluoTime 300 + HydraHarp)"]))
            print(f"== {name}: {', '.join(parts)} on simulators (x{args.speed:g})", flush=True)
            by_sample[name], instrument_hours[name] = measure_sample(
                RE, name, out=out, speed=args.speed, seed=args.seed, mass_mg=args.mass_mg,
                campaign=campaign, ac_campaign=ac, ac_analyses=ac_analyses, dc=not args.skip_dc,
                pl_campaign=pl)
        wall = time.monotonic() - t0
        analyses = {name: {kind: results.get(uid) for kind, uid in uids.items()
                           if not kind.startswith(("ac_", "pl_"))}
                    for name, uids in by_sample.items()}
        published = {name: get_sample(name).published for name in by_sample}
        summary: dict = {}
        figures = []
        if not args.skip_dc:
            table, summary = comparison_table(analyses, published, TABLE_ROWS)
            print(table)
            figures += write_figures(analyses, out / "figures")
        if ac is not None:
            ac_pub = {n: get_ac_model(n).published for n in by_sample}
            fits = {n: relaxation.fits.get(n) for n in by_sample}
            text, ac_summary = ac_table(fits, ac_analyses, ac_pub)
            print("\n" + text)
            summary["ac"] = ac_summary
            figures += write_ac_demo_figures(ac_analyses, fits, out / "figures")
        if pl is not None:
            results_pl = {n: pl_analyses.get(n, {}) for n in by_sample if n in LUMINESCENCE_PRESETS}
            text, pl_summary = pl_table(results_pl, {n: get_luminescence(n).published
                                                     for n in results_pl}, eta_et.result)
            print("\n" + text)
            summary["pl"] = {**pl_summary, "phu_files": [str(p) for p in phu.written]}
            figures += write_pl_demo_figures(results_pl, out / "figures")
        instrument_h = sum(sum(h.values()) for h in instrument_hours.values())
        summary.update({"wall_seconds": round(wall, 1), "instrument_hours": round(instrument_h, 2),
                        "figures": [str(f) for f in figures], "catalog": str(out / "catalog"),
                        "runs": by_sample,
                        "instrument_hours_per_run": instrument_hours})
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        for name, hours in instrument_hours.items():
            print(f"{name}: " + ", ".join(f"{k} {v:.1f} h" if v >= 0.1 else f"{k} {v * 60:.1f} min"
                                          for k, v in hours.items()))
        print(f"\n{instrument_h:.1f} instrument hours simulated in {wall:.0f} s wall "
              f"({instrument_h * 3600 / max(wall, 1e-9):.0f}x); figures in {out / 'figures'}; "
              f"catalog in {out / 'catalog'} (try: spinlight runs --data {out / 'catalog'})")
    finally:
        catalog.close()
    return 0
