"""dc benchmarks, measured in one run and printed as ratios.

1. Simulated instrument hours per wall second for the dc campaign (quick version of the paper
   campaign for one compound, stored and analysed as ``spinlight demo`` does).
2. Per-point overhead of our stack (MultiPyVu client → simulator over loopback, Ophyd
   positioners with pollers, VSM detector following the .dat, m_h plan) against bluesky with
   ``ophyd.sim`` devices (``bp.scan`` of SynAxis + SynGauss), both with and without the
   production storage (Tiled TiledWriter batch_size=1 + fsynced JSON-lines log). The simulator
   runs at a speed where instrument time is negligible, so the ratio is software overhead.

Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_dc.py``.
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile
import time

N_POINTS = 40


def _our_points(RE, lab_speed: float, tmp: pathlib.Path, n: int) -> float:
    from spinlight.instruments.mpms3_device import connect_mpms3
    from spinlight.plans import Sample, m_h
    from spinlight.simulators.lab import SimulatedLab

    sample = Sample(name="bench", mass_mg=20.0, molar_mass_g_per_mol=2312.0)
    fields = [float(h) for h in range(0, 100 * n, 100)]
    with SimulatedLab(speed=lab_speed, seed=0, sample="mCB-Nd", mass_mg=20.0,
                      data_dir=tmp / f"sim{time.monotonic_ns()}") as lab:
        ep = lab.endpoints["mpms3"]
        mpms3, vsm = connect_mpms3(ep["host"], ep["port"])
        try:
            mpms3.field.poll_interval_s.put(0.002)
            mpms3.temperature.poll_interval_s.put(0.002)
            plan = m_h(mpms3, vsm, sample, temperatures_K=[300.0], fields_Oe=fields,
                       field_rate_Oe_per_s=700.0, averaging_time_s=0.5)
            t0 = time.perf_counter()
            RE(plan)
            return (time.perf_counter() - t0) / n
        finally:
            mpms3.close()


def _sim_points(RE, n: int) -> float:
    import bluesky.plans as bp
    from ophyd.sim import SynAxis, SynGauss

    motor = SynAxis(name="motor")
    det = SynGauss("det", motor, "motor", center=0, Imax=1, sigma=1)
    t0 = time.perf_counter()
    RE(bp.scan([det], motor, -1, 1, n))
    return (time.perf_counter() - t0) / n


def per_point_overhead(tmp: pathlib.Path, n: int) -> dict:
    from bluesky import RunEngine

    from spinlight.engine import make_run_engine

    out = {}
    RE = RunEngine({})
    out["bare_ours_s"] = _our_points(RE, 1e6, tmp, n)
    out["bare_ophyd_sim_s"] = _sim_points(RE, n)
    RE, catalog = make_run_engine(tmp / "catalog", progress=False)
    try:
        out["stored_ours_s"] = _our_points(RE, 1e6, tmp, n)
        out["stored_ophyd_sim_s"] = _sim_points(RE, n)
    finally:
        catalog.close()
    return out


def campaign_rate(tmp: pathlib.Path, speed: float) -> dict:
    from spinlight.analysis.streaming import make_dc_analysis_router
    from spinlight.cmd_demo import campaign_for, measure_sample
    from spinlight.engine import make_run_engine

    RE, catalog = make_run_engine(tmp / "campaign", progress=False)
    RE.subscribe(make_dc_analysis_router(catalog.store, delta_b_T=2.0))
    try:
        t0 = time.perf_counter()
        _, hours = measure_sample(RE, "mCB-Nd", out=tmp, speed=speed, seed=1, mass_mg=20.0,
                                  campaign=campaign_for(quick=True))
        wall = time.perf_counter() - t0
    finally:
        catalog.close()
    total_h = sum(hours.values())
    return {"instrument_hours": total_h, "wall_s": wall, "speed": speed}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", type=int, default=N_POINTS)
    p.add_argument("--speed", type=float, default=3000.0)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        tmp = pathlib.Path(d)
        rate = campaign_rate(tmp, args.speed)
        over = per_point_overhead(tmp, args.points)
    print(f"dc campaign (quick, mCB-Nd, simulator x{rate['speed']:g}): "
          f"{rate['instrument_hours']:.2f} instrument h in {rate['wall_s']:.1f} s wall = "
          f"{rate['instrument_hours'] / rate['wall_s']:.3f} instrument h per wall s "
          f"({rate['instrument_hours'] * 3600 / rate['wall_s']:.0f}x real time)")
    print(f"per-point time, {args.points} points, no storage: ours {over['bare_ours_s'] * 1e3:.1f} ms"
          f" vs bluesky+ophyd.sim {over['bare_ophyd_sim_s'] * 1e3:.1f} ms -> ratio "
          f"{over['bare_ours_s'] / over['bare_ophyd_sim_s']:.1f}")
    print(f"per-point time, {args.points} points, Tiled batch_size=1 + JSONL log: ours "
          f"{over['stored_ours_s'] * 1e3:.1f} ms vs bluesky+ophyd.sim "
          f"{over['stored_ophyd_sim_s'] * 1e3:.1f} ms -> ratio "
          f"{over['stored_ours_s'] / over['stored_ophyd_sim_s']:.2f}")
    print(f"our overhead per point beyond ophyd.sim: "
          f"{(over['stored_ours_s'] - over['stored_ophyd_sim_s']) * 1e3:.1f} ms "
          "(MultiPyVu round trips, pollers, .dat follow)")


if __name__ == "__main__":
    main()
