"""Subprocess entry point for the storage tests: run a (slow) ophyd.sim scan into a catalog.

    python _storage_writer.py ROOT NUM DELAY_S [SAMPLE]

Prints ``START <uid> <scan_id>`` as soon as the run starts and ``DONE`` when it finished.
"""

from __future__ import annotations

import sys


def slow_scan(num: int, delay_s: float, sample: str):
    import bluesky.plan_stubs as bps
    import bluesky.plans as bp
    from ophyd.sim import det, motor

    def per_step(detectors, step, pos_cache):
        yield from bps.sleep(delay_s)
        yield from bps.one_nd_step(detectors, step, pos_cache)

    return bp.scan([det], motor, -1.0, 1.0, num, per_step=per_step,
                   md={"sample": {"name": sample}})


def main(argv: list[str]) -> int:
    root, num, delay = argv[0], int(argv[1]), float(argv[2])
    sample = argv[3] if len(argv) > 3 else "writer-sample"
    from spinlight.engine import make_run_engine

    RE, catalog = make_run_engine(root, progress=False)

    def announce(name, doc):
        if name == "start":
            print(f"START {doc['uid']} {doc['scan_id']}", flush=True)

    RE.subscribe(announce)
    try:
        RE(slow_scan(num, delay, sample))
    finally:
        catalog.close()
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
