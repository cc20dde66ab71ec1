"""``spinlight sim serve``: run the simulated lab in the foreground.

Prints ONE JSON line with the endpoints once every server listens, then runs until SIGINT or
SIGTERM (or a client's MultiPyVu EXIT).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys


def register(subparsers) -> None:
    sim = subparsers.add_parser("sim", help="simulated instruments")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True)
    serve = sim_sub.add_parser("serve", help="start the simulated lab on loopback")
    serve.add_argument("--speed", type=float, default=1000.0,
                       help="instrument seconds per wall second (default 1000)")
    serve.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    serve.add_argument("--sample", default="mCB-Nd", help="sample preset (default mCB-Nd)")
    serve.add_argument("--mass-mg", type=float, default=20.0, help="sample mass in mg")
    serve.add_argument("--data-dir", default="sim-data", help="folder for the .dat files")
    serve.add_argument("--port", type=int, default=0,
                       help="MPMS3 MultiPyVu port (default 0 = any free port)")
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from spinlight.simulators.lab import SimulatedLab   # only the CLI wires simulators in

    if not args.speed > 0:
        print(f"spinlight sim serve: --speed must be > 0 (got {args.speed})", file=sys.stderr)
        return 2
    if not args.mass_mg > 0:
        print(f"spinlight sim serve: --mass-mg must be > 0 (got {args.mass_mg})",
              file=sys.stderr)
        return 2
    lab = SimulatedLab(speed=args.speed, seed=args.seed, sample=args.sample,
                       mass_mg=args.mass_mg, data_dir=args.data_dir, port=args.port)

    def _on_signal(signum, frame):
        lab.stop()

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        endpoints = lab.start()
        print(json.dumps(endpoints), flush=True)
        while not lab.wait(0.5):
            pass
    finally:
        lab.stop()
        for s, h in old.items():
            signal.signal(s, h)
    return 0
