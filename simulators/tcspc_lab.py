"""The photon-counting bench: HydraHarp, Taiko laser (RPC) and PiLas laser (serial) simulators
on one virtual clock and one :class:`~.laser_sim.LaserState`.

``TCSPCLab.start()`` returns the endpoints as a JSON-ready dict::

    {"hydraharp": {"host": ..., "port": ...}, "taiko": {"host": ..., "port": ...},
     "pilas": {"url": "socket://127.0.0.1:<port>"}}

Both laser front ends drive the same laser (use one of them). ``python -m
spinlight.simulators.tcspc_lab --speed 1000 --seed 0 [--sample mCB-Nd --emission-nm 1060]``
serves the bench in the foreground (an exponential test decay without ``--sample``), prints the
endpoints as one JSON line and runs until SIGTERM/SIGINT or until stdin closes.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .clock import VirtualClock
from .harp_sim import HydraHarpSimulator
from .laser_sim import LaserState, PdlmSimulator, PiLasSimulator
from .tcspc_light import ExponentialSource, LuminescenceSource, SignalSource


class TCSPCLab:
    """Start/stop the three simulators (a context manager)."""

    def __init__(self, clock: VirtualClock, signal_source: SignalSource, *, seed: int = 0,
                 host: str = "127.0.0.1", laser: LaserState | None = None):
        self.clock, self.host = clock, host
        self.laser = laser or LaserState()
        self.harp = HydraHarpSimulator(clock, self.laser, signal_source, seed=seed)
        self.taiko = PdlmSimulator(self.laser)
        self.pilas = PiLasSimulator(self.laser)
        self.endpoints: dict | None = None

    def start(self) -> dict:
        try:
            harp = self.harp.start_server(self.host)
            taiko = self.taiko.start_server(self.host)
            self.pilas.start_server(self.host)
        except Exception:
            self.stop()
            raise
        self.endpoints = {"hydraharp": {"host": harp[0], "port": harp[1]},
                          "taiko": {"host": taiko[0], "port": taiko[1]},
                          "pilas": {"url": self.pilas.url}}
        return self.endpoints

    def stop(self) -> None:
        for sim in (self.harp, self.taiko, self.pilas):
            sim.stop()

    def __enter__(self) -> "TCSPCLab":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m spinlight.simulators.tcspc_lab")
    p.add_argument("--speed", type=float, default=1000.0, help="instrument s per wall s")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample", default=None, help="luminescence preset (default: test decay)")
    p.add_argument("--emission-nm", type=float, default=1060.0)
    p.add_argument("--tau-ns", type=float, default=100.0, help="test decay lifetime (ns)")
    p.add_argument("--photons-per-pulse", type=float, default=0.01)
    args = p.parse_args(argv)
    if args.sample:
        from .samples import get_luminescence
        from .samples.decay_physics import InstrumentResponse
        source = LuminescenceSource(get_luminescence(args.sample), emission_nm=args.emission_nm,
                                    irf=InstrumentResponse(),
                                    detected_photons_per_pulse=args.photons_per_pulse)
    else:
        source = ExponentialSource(args.tau_ns, args.photons_per_pulse)
    clock = VirtualClock(args.speed, freeze_when_idle=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *a: done.set())
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    with TCSPCLab(clock, source, seed=args.seed) as lab:
        print(json.dumps(lab.endpoints), flush=True)
        while not done.wait(0.5):
            pass
    clock.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
