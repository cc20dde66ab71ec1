"""The PPMS ACMS option on the simulated PPMS: ac points written to an ACMS-layout ``.dat``.

Real ACMS measurements run from a MultiVu sequence and land in the ``.dat`` file (no GPIB
command measures ac). Against the simulator, spinlight requests points through a documented
extension query on the GPIB connection:

``SPINLIGHT_AC? <frequency Hz>,<amplitude Oe>,<averaging s>,<cycles>`` → ``<Measurement
Number>;`` — queues one point at the current temperature and field; the row appears in
:attr:`PPMSSimulator.datafile` when the point's instrument time has passed. Refused settings
reply ``ERROR: ...;`` naming the parameter, value and range (nothing is queued).

The engine is the shared :class:`~.ac_measurement.AcEngine` on a
:class:`~.measurement_queue.MeasurementQueue` (the same code as the MPMS3 AC option), created
at the first request so a PPMS used only for T and H leaves no empty file.
"""

from __future__ import annotations

import threading

from spinlight.instruments.qd_dat_format import PPMS_ACMS_COLUMNS

from .ac_measurement import AcEngine, sample_ac_model
from .measurement_queue import MeasurementQueue

EXTENSION = "SPINLIGHT_AC?"


def _status_columns(sim, w) -> dict:
    """ACMS status columns from the PPMS status word's nibbles (temperature, magnet, chamber)."""
    word = sim.status_word(w.t_mid)
    return {"Min. Temperature (K)": w.T_min, "Max. Temperature (K)": w.T_max,
            "Temp. Status (code)": word & 0xF, "Field Status (code)": (word >> 4) & 0xF,
            "Chamber Status (code)": (word >> 8) & 0xF}


class PpmsAcms:
    """Attach to a :class:`~.ppms.PPMSSimulator`: ``PpmsAcms(sim, ac_model=None)``."""

    def __init__(self, sim, ac_model=None):
        self.sim = sim
        self._model = ac_model
        self._lock = threading.Lock()
        self.engine: AcEngine | None = None
        self.queue: MeasurementQueue | None = None
        sim.extensions[EXTENSION] = self.handle
        sim.stop_hooks.append(self.stop)

    def _resolve_model(self):
        if self._model is None:
            self._model = sample_ac_model(self.sim.sample)
        return self._model

    def _ensure(self) -> AcEngine:
        with self._lock:
            if self.engine is None:
                sim = self.sim
                writer = sim.open_datafile(columns=PPMS_ACMS_COLUMNS)
                self.queue = MeasurementQueue(sim.clock, sim.lock, writer, name="ppms-acms")
                self.engine = AcEngine(self.queue, "PPMS", model=self._resolve_model,
                                       mass_mg=sim.mass_mg, temperature=sim.temperature,
                                       magnet=sim.magnet, seed=sim.seed,
                                       extra_columns=lambda w: _status_columns(sim, w))
                self.queue.start()
            return self.engine

    def handle(self, args: list) -> str:
        if len(args) != 4:
            raise ValueError(f"needs 4 values (frequency_hz Hz, amplitude_oe Oe, averaging_s s, "
                             f"cycles), got {len(args)}")
        engine = self._ensure()
        with self.sim.lock:
            n = engine.request(self.sim.clock.now(), *args)
        self.sim.clock.notify()
        return str(n)

    def stop(self) -> None:
        if self.queue is not None:
            self.queue.stop()
