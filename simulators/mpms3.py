"""Simulated Quantum Design MPMS3 behind a MultiPyVu 3.8.0 server.

Actions and result strings follow QD's server (instruments.md §2.3, checked against the
scaffolding server of MultiPyVu 3.8.0 and its Command*.py): ``TEMP``/``TEMP?``,
``FIELD``/``FIELD?``, ``CHAMBER``/``CHAMBER?``, ``TEMP_SETPOINTS?``, ``WAITFOR``/``WAITFOR?``;
``FIELD_SETPOINTS?`` is refused as on a real MPMS3, and so is persistent magnet mode.
Beyond QD's argument checks the simulated instrument enforces its ranges (1.8-400 K,
0.01-20 K/min, +-70 000 Oe, 1-700 Oe/s), reported like MultiVu's own set errors:
``"MultiPyVuError: Error when setting the TEMP 500.0,5.0,0: <what and allowed range>"``.

Simulator extension (docs/architecture.md): ``SPINLIGHT_VSM``, ``SPINLIGHT_VSM_LOG``,
``SPINLIGHT_AC``, ``SPINLIGHT_DATAFILE?``, ``SPINLIGHT_CLOCK?``. Waits run on the virtual clock.
``SPINLIGHT_AC "<frequency Hz>,<amplitude Oe>,<averaging s>,<cycles>"`` queues one AC-option
point at the current T and H and replies ``"SPINLIGHT_AC Command Received,<Measurement
Number>"``; its row fills the AC columns and leaves the VSM columns empty, as on a real MPMS3.
VSM and AC points share one queue: one measurement at a time, one Measurement Number sequence.

Faults (:mod:`.faults`): :meth:`MPMS3Simulator.inject_fault` takes ``temperature_excursion``
and ``quench`` (state "Quenching", or "Current Error"); ``server.faults`` the wire faults
(:mod:`.wire_faults`).
No helium level: MultiPyVu 3.8.0 has no query for one.
"""

from __future__ import annotations

import re
import math
import threading
from pathlib import Path

from spinlight.instruments.qd_dat import DatWriter

from .ac_measurement import AcEngine, sample_ac_model
from .clock import VirtualClock
from .dynamics import TEMP_MOVING_CODES, Chamber, LimitError, Magnet, TemperatureControl
from .fault_kinds import CryostatFaults
from .measurement_queue import MeasurementQueue
from .mpms3_vsm import VsmEngine, status_columns
from .multivu_protocol import MultiVuCommandError, MultiVuServer

FLAVOR = "MPMS3"
WAIT_TEMPERATURE, WAIT_FIELD, WAIT_POSITION, WAIT_CHAMBER = 1, 2, 4, 8
WAIT_GOOD, WAIT_TIMED_OUT = 0, 258
_TEMP_MODES = "\n\t0: approach_mode.fast_settle\n\t1: approach_mode.no_overshoot"
_FIELD_APPROACHES = "\n\t0: linear\n\t1: no_overshoot\n\t2: oscillate"
_FIELD_MODES = "\n\t0: persistent\n\t1: driven"
_CHAMBER_MODES = ("\n\t0: seal\n\t1: purge_seal\n\t2: vent_seal\n\t3: pump_continuous"
                  "\n\t4: vent_continuous\n\t5: high_vacuum")
_MASK_TEXT = "\n\ttemperature = 1\n\tfield = 2\n\tchamber = 8"


def _num(x: float) -> str:
    """A reading as MultiVu's double would print through str(), without float noise."""
    return repr(float(round(x, 6)))


class MPMS3Simulator(CryostatFaults):
    """A simulated MPMS3 (temperature, driven magnet, chamber, VSM, AC option) on a virtual
    clock.

    ``sample`` provides ``measure_vsm(T_K, H_Oe, mass_mg, rng) -> (moment_emu, std_err_emu)``
    (and ``name``, ``molar_mass_g_per_mol`` for the file header), or is an AcModel (``chi_molar``
    and ``sample``, its dc sample). The AC option uses ``ac_model``, else that AcModel, else the
    ac preset named like the sample (looked up at the first ``SPINLIGHT_AC``). The ``.dat`` is
    written in ``data_dir``. Call :meth:`start_server` to serve it, :meth:`stop` to shut down.
    """

    QUENCH_CODES = {"quench": 11, "current_error": 9}      # MultiVu "Quenching", "Current Error"

    def __init__(self, clock: VirtualClock, sample, *, mass_mg: float, data_dir,
                 seed: int = 0, title: str = "", ac_model=None):
        if not mass_mg > 0:
            raise ValueError(f"mass_mg must be > 0 (got {mass_mg!r})")
        if ac_model is None and hasattr(sample, "chi_molar"):
            ac_model = sample
        name = getattr(sample, "name", "sample")
        if hasattr(sample, "chi_molar"):
            sample = sample.sample                 # the AcModel's dc sample measures the VSM
        self.ac_model = ac_model
        self.clock, self.sample, self.mass_mg, self.seed = clock, sample, float(mass_mg), seed
        self.lock = threading.RLock()
        self.temperature = TemperatureControl(seed=seed)
        self.magnet = Magnet(has_switch=False, seed=seed)   # MultiPyVu: MPMS3 is driven only
        self.chamber = Chamber(initial_mode=1)
        self.title = title or f"spinlight simulated MPMS3 - {name}"
        self.datafile = self._new_path(Path(data_dir), name)
        self.writer = DatWriter(self.datafile, title=self.title, sample_material=name,
                                sample_mass_mg=self.mass_mg,
                                molecular_weight=getattr(sample, "molar_mass_g_per_mol", None),
                                app="MPMS3", open_time_unix=clock.now())
        self.queue = MeasurementQueue(clock, self.lock, self.writer, name="mpms3-measure")
        self.vsm = VsmEngine(self)
        self.ac = AcEngine(self.queue, "MPMS3", model=self._ac_model, mass_mg=self.mass_mg,
                           temperature=self.temperature, magnet=self.magnet, seed=seed,
                           extra_columns=lambda w: status_columns(self, w))
        clock.add_activity(self._busy_until)
        self.queue.start()
        self.server: MultiVuServer | None = None
        self._actions = {
            "TEMP?": self._get_temp, "TEMP": self._set_temp,
            "FIELD?": self._get_field, "FIELD": self._set_field,
            "CHAMBER?": self._get_chamber, "CHAMBER": self._set_chamber,
            "TEMP_SETPOINTS?": self._get_temp_setpoints,
            "WAITFOR": self._wait_for, "WAITFOR?": self._is_steady,
            "SPINLIGHT_VSM": self._vsm, "SPINLIGHT_VSM_LOG": self._vsm_log,
            "SPINLIGHT_AC": self._ac,
            "SPINLIGHT_DATAFILE?": lambda q: f"{self.datafile},,OK",
            "SPINLIGHT_CLOCK?": lambda q: f"{self.clock.now():.3f},s,{self.clock.speed:g}",
        }

    def _busy_until(self) -> float:
        """Instrument time until which T, H or the chamber are still moving (the clock runs
        until then). Pending measurements and log rows keep it running through the
        measurement queue's wait on the clock."""
        end = math.inf
        return max(self.temperature.settled_at(end), self.magnet.settled_at(end),
                   self.chamber.settled_at(end))

    @staticmethod
    def _new_path(data_dir: Path, name: str) -> Path:
        data_dir.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"MPMS3_sim_{name}")
        path, i = data_dir / f"{stem}.dat", 1
        while path.exists():
            i += 1
            path = data_dir / f"{stem}_{i}.dat"
        return path

    # -- lifecycle --------------------------------------------------------------------------------
    def start_server(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        self.server = MultiVuServer(self.handle, flavor=FLAVOR, host=host, port=port)
        return self.server.start()

    def stop(self) -> None:
        """Stop serving and measuring, then close the ``.dat`` (idempotent)."""
        if self.server is not None:
            self.server.stop()
        self.queue.stop()
        if not self.writer.closed:
            self.writer.close()

    # -- dispatch ---------------------------------------------------------------------------------
    def handle(self, action: str, query: str) -> str:
        """Answer one MultiPyVu action (the server's handler)."""
        fn = self._actions.get(action)
        if fn is not None:
            return fn(query)
        base = action.rstrip("?")
        if base in ("FIELD_SETPOINTS", "FIELD_SETPOINTS_X", "FIELD_SETPOINTS_Y"):
            raise MultiVuCommandError(f"{FLAVOR} does not support getting field set points")
        if base in ("POSITION", "SDO", "VECTOR_CART", "VECTOR_SPHERE"):
            raise MultiVuCommandError(f"the simulated {FLAVOR} has no {base} option")
        raise MultiVuCommandError(f'Unknown command: "{base}".')

    @staticmethod
    def _set_error(action: str, query: str, msg: str) -> MultiVuCommandError:
        return MultiVuCommandError(f"Error when setting the {action} {query}: {msg}")

    # -- temperature ----------------------------------------------------------------------------
    def _get_temp(self, query: str) -> str:
        t = self.clock.now()
        with self.lock:
            return f"{_num(self.temperature.reading(t))},K,{self.temperature.state_text(t)}"

    def _get_temp_setpoints(self, query: str) -> str:
        with self.lock:
            tc = self.temperature
            return f"({tc.setpoint_K}, {tc.rate_K_per_min}, {tc.approach}),K,Call was successful"

    def _set_temp(self, query: str) -> str:
        parts = query.split(",")
        if len(parts) != 3:
            raise self._set_error("TEMP", query, "Setting the temperature requires three "
                                  "numeric inputs, separated by a comma: Set Point (K), "
                                  "rate (K/min), approach:" + _TEMP_MODES)
        sp, rate, approach = float(parts[0]), float(parts[1]), int(parts[2])
        if sp < 0:
            raise self._set_error("TEMP", query, "Temperature must be a positive number.")
        if approach > 1:
            raise self._set_error("TEMP", query, f"The approach, {approach}, is out of bounds."
                                  "  Must be one of the following" + _TEMP_MODES)
        if approach < 0:
            raise ValueError(approach)               # QD: ApproachEnum(-1) -> ValueError
        self._command("TEMP", query, lambda t: self.temperature.set(t, sp, rate, approach))
        return "TEMP Command Received"

    # -- field ----------------------------------------------------------------------------------
    def _get_field(self, query: str) -> str:
        t = self.clock.now()
        with self.lock:
            return f"{_num(self.magnet.reading(t))},Oe,{self.magnet.state_text(t)}"

    def _set_field(self, query: str) -> str:
        parts = query.split(",")
        if len(parts) != 4:
            raise self._set_error("FIELD", query, "Setting the field requires four numeric "
                                  "inputs, separated by a comma: Set Point (Oe), rate (Oe/sec),"
                                  "approach (Linear (0); No O'Shoot (1); Oscillate (2)),"
                                  "magnetic state (persistent (0); driven (1))")
        sp, rate, approach, mode = float(parts[0]), float(parts[1]), int(parts[2]), int(parts[3])
        if approach > 2:
            raise MultiVuCommandError(f"The approach, {approach}, is out of bounds. Must be one"
                                      " of the following:" + _FIELD_APPROACHES)
        if approach < 0:
            raise ValueError(approach)
        if mode not in (0, 1):
            raise MultiVuCommandError(f"The driven mode, {mode}, is out of bounds. Must be one"
                                      " of the following:" + _FIELD_MODES)
        if mode == 0:
            raise MultiVuCommandError(f"{FLAVOR} can only drive the magnet in driven mode.")
        self._command("FIELD", query, lambda t: self.magnet.set(t, sp, rate, approach, mode))
        return "FIELD Command Received"

    # -- chamber --------------------------------------------------------------------------------
    def _get_chamber(self, query: str) -> str:
        with self.lock:
            return f"0.0,,{self.chamber.state_text(self.clock.now())}"

    def _set_chamber(self, query: str) -> str:
        if len(query.split(",")) != 1:
            raise self._set_error("CHAMBER", query, "Setting the chamber requires 1 input: mode")
        mode = int(query)
        if mode > 5:
            raise MultiVuCommandError(f"The selected mode, {mode}, is out of bounds.  Must be "
                                      "one of the following:" + _CHAMBER_MODES)
        self._command("CHAMBER", query, lambda t: self.chamber.set(t, mode))
        return "CHAMBER Command Received"

    def _command(self, action: str, query: str, apply) -> None:
        """Apply a set command at the current instrument time; re-anchor VSM logging."""
        try:
            with self.lock:
                t = self.clock.now()
                apply(t)
                if action in ("TEMP", "FIELD"):
                    self.vsm.new_sweep(t)
        except LimitError as e:
            raise self._set_error(action, query, str(e)) from e
        self.clock.notify()

    # -- wait-for -------------------------------------------------------------------------------
    @staticmethod
    def _check_mask(mask: int) -> None:
        if mask & WAIT_POSITION:
            raise MultiVuCommandError(
                "wait_for() cannot wait on the position subsystem.  MultiVu defines that bit, "
                "but MultiPyVu does not monitor the rotator, so waiting on it would return "
                "immediately.  Poll get_position() instead.")
        if mask & ~(WAIT_TEMPERATURE | WAIT_FIELD | WAIT_CHAMBER):
            raise MultiVuCommandError(f"The mask, {mask}, is out of bounds.{_MASK_TEXT}")

    def settled_at(self, t: float, mask: int) -> float:
        """Instrument time at which every subsystem in ``mask`` is settled (caller holds lock)."""
        times = [float("-inf")]
        if mask & WAIT_TEMPERATURE:
            times.append(self.temperature.settled_at(t))
        if mask & WAIT_FIELD:
            times.append(self.magnet.settled_at(t))
        if mask & WAIT_CHAMBER:
            times.append(self.chamber.settled_at(t))
        return max(times)

    def _steady(self, t: float, mask: int) -> bool:
        with self.lock:
            ok = True
            if mask & WAIT_TEMPERATURE:
                ok &= self.temperature.state_code(t) not in TEMP_MOVING_CODES
            if mask & WAIT_FIELD:
                ok &= self.magnet.state_code(t) in (1, 4) and t >= self.magnet.settled_at(t)
            if mask & WAIT_CHAMBER:
                ok &= self.chamber.is_done(t)
            return ok

    def _is_steady(self, query: str) -> str:
        mask = abs(int(query))
        self._check_mask(mask)
        return f"{int(self._steady(self.clock.now(), mask))},,Call was successful"

    def _wait_for(self, query: str) -> str:
        parts = query.split(",")
        if len(parts) > 3:
            raise self._set_error("WAITFOR", query, "CAN Error: Unknown error")
        delay = float(parts[0])
        timeout = float(parts[1]) if len(parts) > 1 else 0.0
        mask = abs(int(parts[2])) if len(parts) > 2 else 0
        self._check_mask(mask)
        t_start = self.clock.now()
        done = {"at": None}

        def ready():
            now = self.clock.now()
            if done["at"] is None:
                with self.lock:
                    settled = self.settled_at(now, mask)
                if not self._steady(now, mask):
                    # A latched fault (quench) never settles: wait for a command's notify.
                    return settled if settled > now else False
                # Count the delay from when the instrument settled, not from when this thread
                # happened to look, so waits do not depend on wall-clock scheduling.
                done["at"] = max(t_start, min(now, settled))
            return True if now >= done["at"] + delay else done["at"] + delay

        limit = timeout if timeout > 0 else None
        ok = self.clock.wait_until(ready, limit)
        return f"WAITFOR Command Received,{WAIT_GOOD if ok else WAIT_TIMED_OUT}"

    # -- simulator extension --------------------------------------------------------------------
    def _vsm(self, query: str) -> str:
        avg = float(query) if query.strip() else 1.0
        try:
            with self.lock:
                n = self.vsm.request(self.clock.now(), avg)
        except ValueError as e:
            raise MultiVuCommandError(f"SPINLIGHT_VSM {query}: {e}") from e
        self.clock.notify()
        return f"SPINLIGHT_VSM Command Received,{n}"

    def _vsm_log(self, query: str) -> str:
        parts = [p.strip() for p in query.split(",")]
        on = int(parts[0]) != 0
        interval = float(parts[1]) if on and len(parts) > 1 else 10.0
        avg = float(parts[2]) if on and len(parts) > 2 else None
        try:
            with self.lock:
                self.vsm.set_logging(self.clock.now(), on, interval, avg)
        except ValueError as e:
            raise MultiVuCommandError(f"SPINLIGHT_VSM_LOG {query}: {e}") from e
        self.clock.notify()
        return "SPINLIGHT_VSM_LOG Command Received"

    def _ac_model(self):
        """The AC option's sample model (resolved once, at the first ``SPINLIGHT_AC``)."""
        if self.ac_model is None:
            self.ac_model = sample_ac_model(self.sample)
        return self.ac_model

    def _ac(self, query: str) -> str:
        parts = [p.strip() for p in query.split(",")]
        try:
            if len(parts) != 4:
                raise ValueError("expected 4 values: frequency_hz (Hz), amplitude_oe (Oe), "
                                 "averaging_s (s), cycles")
            with self.lock:
                n = self.ac.request(self.clock.now(), *parts)
        except ValueError as e:
            raise MultiVuCommandError(f"SPINLIGHT_AC {query}: {e}") from e
        self.clock.notify()
        return f"SPINLIGHT_AC Command Received,{n}"
