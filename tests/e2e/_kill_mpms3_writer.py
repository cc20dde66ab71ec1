"""Subprocess for the kill -9 test: a real M(H) plan against a simulated MPMS3 into a catalog.

    python _kill_mpms3_writer.py CATALOG_ROOT SIM_DIR
"""

import sys


def main(root: str, sim_dir: str) -> None:
    from spinlight.engine import make_run_engine
    from spinlight.instruments.mpms3_device import connect_mpms3
    from spinlight.plans import Sample, m_h
    from spinlight.simulators.lab import SimulatedLab

    RE, catalog = make_run_engine(root, progress=False)
    # speed 20: about 1 s of wall time per point, so the kill lands mid-run
    with SimulatedLab(speed=20, seed=5, sample="mCB-Yb", mass_mg=15.0, data_dir=sim_dir) as lab:
        ep = lab.endpoints["mpms3"]
        mpms3, vsm = connect_mpms3(ep["host"], ep["port"])
        sample = Sample(name="kill-mpms3", mass_mg=15.0, molar_mass_g_per_mol=2428)
        RE(m_h(mpms3, vsm, sample, temperatures_K=[300.0],
               fields_Oe=[float(h) for h in range(0, 60000, 1000)], field_rate_Oe_per_s=700))
    catalog.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
