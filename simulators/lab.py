"""SimulatedLab: starts every simulator on one virtual clock and reports their endpoints.

This is the only module that knows all simulators; the CLI (``spinlight sim serve``) and tests
use it. Everything binds to loopback; ports are ephemeral unless given.
"""

from __future__ import annotations

import pathlib
import threading

from .clock import VirtualClock
from .mpms3 import MPMS3Simulator
from .pl_bench import PLBench
from .ppms import PPMSSimulator


def _resolve_sample(sample):
    """A sample object as given, or a preset by name from ``simulators.samples``."""
    if not isinstance(sample, str):
        return sample
    from .samples import get_sample     # imported late: the physics is heavy
    return get_sample(sample)


def _luminescence(name):
    """The luminescence preset called ``name``, or None if there is none."""
    from .samples import LUMINESCENCE_PRESETS, get_luminescence
    return get_luminescence(name) if name in LUMINESCENCE_PRESETS else None


class SimulatedLab:
    """All simulated instruments of a lab on one virtual clock (``speed`` x wall time).

    ``start()`` returns the endpoints as a JSON-ready dict::

        {"mpms3": {"host": ..., "port": ..., "datafile": ..., "flavor": "MPMS3"},
         "ppms": {"resource": "TCPIP0::127.0.0.1::<port>::SOCKET", "host": ..., "port": ...,
                  "datafile": ...},
         "pl": {"excitation_mono": {"url": ...}, "emission_mono": {"url": ...},
                "housing": {"url": ...}, "hydraharp": {"host": ..., "port": ...},
                "taiko": {"host": ..., "port": ...}, "pilas": {"url": ...}},
         "speed": ..., "seed": ..., "sample": ...}

    Both instruments share one virtual clock and sample; ``port`` is the MPMS3's MultiPyVu
    port, ``ppms_port`` the PPMS GPIB-over-TCP port (0 = any free port). The PPMS ``.dat``
    (``datafile``) is created only when an ac engine opens it. The photoluminescence bench
    (:class:`~.pl_bench.PLBench`, ``lab.pl``) runs the luminescence preset named like the
    sample; without one (e.g. ``Dy-SMM``) there is no PL bench and ``endpoints["pl"]`` is None.
    """

    def __init__(self, *, speed: float = 1000.0, seed: int = 0, sample="mCB-Nd",
                 mass_mg: float = 20.0, data_dir, host: str = "127.0.0.1", port: int = 0,
                 start_unix: float | None = None, ppms_port: int = 0, faults=None):
        self.speed, self.seed, self.mass_mg = float(speed), int(seed), float(mass_mg)
        self.sample_spec = sample
        self.data_dir = pathlib.Path(data_dir)
        self.host, self.port, self.ppms_port = host, port, ppms_port
        self.start_unix = start_unix
        self.clock: VirtualClock | None = None
        self.mpms3: MPMS3Simulator | None = None
        self.ppms: PPMSSimulator | None = None
        self.pl: PLBench | None = None
        self.endpoints: dict | None = None
        self.fault_script = faults          # FaultScript, list of fault dicts, or None
        self.faults = None                  # the FaultInjector once started
        self._stopped = threading.Event()

    def start(self) -> dict:
        sample = _resolve_sample(self.sample_spec)
        self.clock = VirtualClock(self.speed, self.start_unix, freeze_when_idle=True)
        name = self.sample_spec if isinstance(self.sample_spec, str) else \
            getattr(sample, "name", str(sample))
        self.mpms3 = MPMS3Simulator(self.clock, sample, mass_mg=self.mass_mg,
                                    data_dir=self.data_dir, seed=self.seed)
        try:
            self.ppms = PPMSSimulator(self.clock, sample, mass_mg=self.mass_mg,
                                      data_dir=self.data_dir, seed=self.seed)
            host, port = self.mpms3.start_server(self.host, self.port)
            ppms_host, ppms_port = self.ppms.start_server(self.host, self.ppms_port)
            model = _luminescence(name)
            if model is not None:
                self.pl = PLBench(self.clock, model, seed=self.seed, host=self.host)
                pl_endpoints = self.pl.start()
            else:
                pl_endpoints = None
        except Exception:
            for sim in (self.mpms3, self.ppms, self.pl):
                if sim is not None:
                    sim.stop()
            raise
        # A MultiPyVu EXIT from a client ends the MPMS3 server, and with it the lab.
        self.mpms3.server.on_exit = self._stopped.set
        self.endpoints = {
            "mpms3": {"host": host, "port": port, "datafile": str(self.mpms3.datafile),
                      "flavor": "MPMS3"},
            "ppms": {"resource": f"TCPIP0::{ppms_host}::{ppms_port}::SOCKET",
                     "host": ppms_host, "port": ppms_port,
                     "datafile": str(self.ppms.datafile)},
            "pl": pl_endpoints,
            "speed": self.speed, "seed": self.seed, "sample": name,
        }
        if self.fault_script is not None:
            from .faults import FaultInjector, FaultScript
            script = self.fault_script if isinstance(self.fault_script, FaultScript) \
                else FaultScript.from_dicts(self.fault_script)
            self.faults = FaultInjector.for_lab(self, script, seed=self.seed)
        return self.endpoints

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the lab is stopped (stop() or a client's EXIT); True if it was."""
        return self._stopped.wait(timeout_s)

    def stop(self) -> None:
        if self.faults is not None:
            self.faults.stop()
        if self.clock is not None:
            self.clock.stop()          # aborts waits (WAITFOR) so threads can end
        if self.mpms3 is not None:
            self.mpms3.stop()
        if self.ppms is not None:
            self.ppms.stop()
        if self.pl is not None:
            self.pl.stop()
        self._stopped.set()

    def __enter__(self) -> "SimulatedLab":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
