"""Simulated FluoTime-300-like housing: lamp and detector shutters, sample changer, NIR-PMT
photon counter, on pyserial ``socket://``.

NOT protocol-faithful: the FluoTime 300 lamp, sample changer and PMT counter are driven only by
PicoQuant's closed EasyTau software (instruments.md §3.3, §7 item 6), so spinlight defines its
own line protocol. LF-terminated lines both ways (a trailing CR is ignored), one reply line per
command, words case-insensitive:

===============================================  ==============================================
``*IDN?``                                        ``spinlight,FT300-HOUSING,<serial>,1.0``
``SHUTTER LAMP|DETECTOR OPEN|CLOSE``             ``OK`` after :data:`SHUTTER_MOVE_S`
``SHUTTER? LAMP|DETECTOR``                       ``OPEN`` / ``CLOSED`` (both start CLOSED)
``HOLDER SAMPLE|SCATTERER|EMPTY|LAMP``          ``OK`` after :data:`HOLDER_MOVE_S`
``HOLDER?``                                      the position, e.g. ``SAMPLE``
``GATE <s>`` / ``GATE?``                         gate 0.001..100 s, kept to 1 ms / ``0.100``
``HV ON|OFF`` / ``HV?``                          ``OK`` / ``ON`` ``OFF`` (starts ON)
``COUNT?``                                       ``<counts>,<flags>`` after one gate
``REF?``                                         reference photocurrent, nA (``12.3456``), at once
anything bad                                     ``ERR <text>`` naming the value and what is allowed
===============================================  ==============================================

COUNT? flags: bit0 overload (the true count rate exceeds the PMT saturation rate: the
protection switches HV OFF after :data:`OVERLOAD_TRIP_S` of counting, the counts are invalid),
bit1 detector shutter closed (dark counts only), bit2 HV was off (nothing counted). Shutter,
holder and gate take instrument time on the :class:`.VirtualClock`, which keeps running
meanwhile; the light at the start of a gate holds for the whole gate. Counts are Poisson,
seeded by (seed, count number), so runs are reproducible whatever the wall-clock timing.

Photon-counter physics (:class:`FluorometerOptics`): signal rate = Σ QE(λ)·Φ(λ) through the
emission monochromator's slit function, plus the PMT dark rate, saturating as R/(1 + R/R_sat)
(:class:`~.samples.decay_physics.NirPmt`). Slit function: a triangle of unit peak and FWHM =
bandpass = widest motorized slit (mm) × reciprocal dispersion, 5.4 nm/mm for 1200 g/mm on a
150 mm SP-2150i, scaling as 1/(grooves/mm × focal length). Light: the Xe lamp (through the lamp
shutter and the excitation monochromator: L(λ_ex) × bandpass photons/s) and the laser when it
emits (average photons/s at its wavelength) fall on the holder: SAMPLE emits
``model.emission_spectrum`` (photons/nm per incident photon), SCATTERER scatters elastically
(the lamp's triangle-filtered spectrum, or the laser line), EMPTY gives nothing. LAMP is the
calibrated tungsten-halogen standard lamp (with its diffuser) in the sample position, always
lit there: a 3000 K grey body, :data:`STANDARD_LAMP_PHOTONS_PER_S_PER_NM` at 1000 nm into the
collection optics; the Xe beam and the laser add nothing in that position. Slit etendue, stray
light, second diffraction orders and sample self-scatter are not modelled.

Reference detector (``REF?``): a photodiode on a split-off of the Xe beam; its responsivity
and noise, and the standard lamp's spectrum, are in :mod:`.calibration_sources`.

ASSUMED numbers (no FluoTime data at hand; chosen for realistic count rates, see pl_bench.py):
the lamp is a 6000 K photon-Planck continuum with a UV cut-off near 245 nm (ozone-free window)
and a smooth bump for the 800-1000 nm Xe lines; :data:`LAMP_PEAK_PHOTONS_PER_S_PER_NM` onto the
sample per nm of excitation bandpass at the curve's maximum; :data:`COLLECTION_EFFICIENCY` of the
photons leaving the holder reach the photocathode at peak slit transmission;
the scatterer returns :data:`SCATTERER_REFLECTANCE` of the incident photons; the 375 nm laser
puts :data:`LASER_PHOTONS_PER_PULSE` photons per pulse on the sample at 1000 per mille; the
standard lamp gives ~5e4 cps at 1050-1500 nm through a 1 mm slit (600 g/mm), rates like the
samples' (so both see the same few % of PMT saturation).
"""

from __future__ import annotations

import collections
import math
import random
import threading

import numpy as np

from .acton import SLIT_NAMES, ActonSimulator
from .calibration_sources import (_C2_NM_K, _HC_J_NM, REFERENCE_NOISE_FRACTION,  # noqa: F401 (API)
                                  REFERENCE_SPLIT_FRACTION, STANDARD_LAMP_PHOTONS_PER_S_PER_NM,
                                  reference_responsivity_a_per_w, standard_lamp_flux)
from .clock import VirtualClock
from .laser_sim import LaserState
from .samples.decay_physics import NirPmt
from .samples.luminescence import LuminescenceModel
from .serial_socket import SerialSocketServer, SocketServed

SHUTTER_MOVE_S = 0.05
HOLDER_MOVE_S = 5.0
GATE_RANGE_S = (0.001, 100.0)
#: The overload protection switches HV off after this much counting (simulator decision).
OVERLOAD_TRIP_S = 0.01
FLAG_OVERLOAD, FLAG_DETECTOR_CLOSED, FLAG_HV_OFF = 1, 2, 4
HOLDER_POSITIONS = ("SAMPLE", "SCATTERER", "EMPTY", "LAMP")
SHUTTERS = ("LAMP", "DETECTOR")

#: Reciprocal linear dispersion (nm per mm of slit) at 1200 g/mm and 150 mm focal length.
DISPERSION_NM_PER_MM_1200_150 = 5.4
FOCAL_LENGTH_MM = {"SP-2-150i": 150.0, "SP-2-300i": 300.0, "SP-2-500i": 500.0, "SP-2-750i": 750.0}

LAMP_PEAK_PHOTONS_PER_S_PER_NM = 4.0e12
LAMP_COLOR_TEMPERATURE_K = 6000.0
LAMP_UV_EDGE_NM, LAMP_UV_WIDTH_NM = 245.0, 6.0
LAMP_IR_BUMP = (880.0, 120.0, 0.6)        # centre nm, FWHM nm, height relative to the continuum
COLLECTION_EFFICIENCY = 0.025
SCATTERER_REFLECTANCE = 0.01
LASER_PHOTONS_PER_PULSE = 1.5e7           # ≈ 8 pJ at 375 nm
_GRID = 129                               # points per slit-function integral (odd: hits the apex)


def _lamp_shape(lam: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):      # deep UV: exp overflows to inf, the flux to 0
        planck = lam ** -4.0 / np.expm1(_C2_NM_K / (lam * LAMP_COLOR_TEMPERATURE_K))
    planck = planck / (610.0 ** -4.0 / math.expm1(_C2_NM_K / (610.0 * LAMP_COLOR_TEMPERATURE_K)))
    centre, fwhm, height = LAMP_IR_BUMP
    bump = height * np.exp(-4.0 * math.log(2.0) * ((lam - centre) / fwhm) ** 2)
    return (planck + bump) / (1.0 + np.exp(-(lam - LAMP_UV_EDGE_NM) / LAMP_UV_WIDTH_NM))


_LAMP_NORM = float(_lamp_shape(np.linspace(200.0, 1400.0, 2401)).max())


def xe_lamp_flux(wavelength_nm) -> np.ndarray:
    """Xe lamp photons/s per nm of excitation bandpass on the sample (0 at λ ≤ 0)."""
    lam = np.asarray(wavelength_nm, dtype=float)
    safe = np.where(lam > 0, lam, 1.0)
    return np.where(lam > 0, LAMP_PEAK_PHOTONS_PER_S_PER_NM * _lamp_shape(safe) / _LAMP_NORM, 0.0)


def slit_function(offset_nm, bandpass_nm: float) -> np.ndarray:
    """Transmission (peak 1) of a monochromator at ``offset_nm`` from its setting: a triangle
    of FWHM ``bandpass_nm`` (equal entrance and exit slits)."""
    return np.clip(1.0 - np.abs(np.asarray(offset_nm, dtype=float)) / bandpass_nm, 0.0, None)


def bandpass_nm(mono: ActonSimulator) -> float:
    """FWHM bandpass (nm) of a simulated Acton: widest motorized slit (mm) × dispersion."""
    widths = [w for w in (mono.slit_um(s) for s in SLIT_NAMES) if w is not None]
    grooves = mono.gratings[mono.grating][0]
    dispersion = (DISPERSION_NM_PER_MM_1200_150 * 1200.0 / grooves
                  * 150.0 / FOCAL_LENGTH_MM[mono.model_text])
    return max(widths, default=100.0) / 1000.0 * dispersion


class FluorometerOptics:
    """Photon fluxes from lamp and laser through the monochromators to the PMT (counts/s)."""

    def __init__(self, excitation: ActonSimulator, emission: ActonSimulator,
                 model: LuminescenceModel | None, pmt: NirPmt):
        self.excitation, self.emission, self.model, self.pmt = excitation, emission, model, pmt

    def _seen(self, spectrum, lo: float, hi: float) -> float:
        """∫ spectrum(λ)·QE(λ)·T_em(λ − λ_em) dλ over [lo, hi] ∩ the emission slit (λ > 0)."""
        em, band = self.emission.wavelength_nm, bandpass_nm(self.emission)
        lo, hi = max(lo, em - band, 1e-3), min(hi, em + band)
        if hi <= lo:
            return 0.0
        lam = np.linspace(lo, hi, _GRID)
        y = spectrum(lam) * self.pmt.quantum_efficiency(lam) * slit_function(lam - em, band)
        return float(np.trapezoid(y, lam))

    def _emission(self, excitation_nm: float):
        return lambda lam: self.model.emission_spectrum(lam, excitation_nm=excitation_nm)

    def lamp_rate_cps(self, holder: str) -> float:
        """Detected counts/s (before saturation, no dark) from the lamp light on ``holder``."""
        ex, band = self.excitation.wavelength_nm, bandpass_nm(self.excitation)
        if holder == "SAMPLE" and self.model is not None and ex > 0:
            incident = float(xe_lamp_flux(ex)) * band
            return incident * COLLECTION_EFFICIENCY * self._seen(self._emission(ex), 0.0, math.inf)
        if holder == "SCATTERER":
            lamp = lambda lam: xe_lamp_flux(lam) * slit_function(lam - ex, band)   # noqa: E731
            return COLLECTION_EFFICIENCY * SCATTERER_REFLECTANCE * self._seen(lamp, ex - band, ex + band)
        return 0.0

    def standard_lamp_rate_cps(self) -> float:
        """Detected counts/s (before saturation, no dark) from the standard lamp at the holder."""
        return COLLECTION_EFFICIENCY * self._seen(standard_lamp_flux, 0.0, math.inf)

    def reference_current_na(self) -> float:
        """Reference photodiode current (nA, noise-free) for the Xe beam at the excitation
        monochromator's setting (lamp shutter open)."""
        ex = self.excitation.wavelength_nm
        if ex <= 0:
            return 0.0
        photons = REFERENCE_SPLIT_FRACTION * float(xe_lamp_flux(ex)) * bandpass_nm(self.excitation)
        return photons * _HC_J_NM / ex * float(reference_responsivity_a_per_w(ex)) * 1e9

    def photons_per_pulse(self, holder: str, laser_nm: float) -> float:
        """Detected photons per laser pulse at 1000 per mille (before pile-up, no dark)."""
        if holder == "SAMPLE" and self.model is not None:
            seen = self._seen(self._emission(laser_nm), 0.0, math.inf)
        elif holder == "SCATTERER":
            em, band = self.emission.wavelength_nm, bandpass_nm(self.emission)
            seen = SCATTERER_REFLECTANCE * float(slit_function(laser_nm - em, band)
                                                 * self.pmt.quantum_efficiency(laser_nm))
        else:
            return 0.0
        return LASER_PHOTONS_PER_PULSE * COLLECTION_EFFICIENCY * seen


class HousingSimulator(SocketServed):
    """The housing on the virtual clock; reads the monochromators' and the laser's true state."""

    def __init__(self, clock: VirtualClock, *, excitation: ActonSimulator, emission: ActonSimulator,
                 model: LuminescenceModel | None = None, laser: LaserState | None = None,
                 pmt: NirPmt | None = None, seed: int = 0):
        self.clock, self.laser, self.seed = clock, laser, int(seed)
        self.pmt = pmt or NirPmt()
        self.optics = FluorometerOptics(excitation, emission, model, self.pmt)
        self.serial_number = f"FT3-{random.Random(seed).randint(10000, 99999)}"
        self.lock = threading.RLock()
        self.shutters = {"LAMP": "CLOSED", "DETECTOR": "CLOSED"}
        self.holder = "SAMPLE"
        self.gate_s = 0.1
        self.hv_on = True
        self.n_counts = self.n_refs = 0
        self._busy = -math.inf                 # end of the running action (instrument time)
        self.received: collections.deque = collections.deque(maxlen=1000)
        self.server: SerialSocketServer | None = None
        self._commands = {"*IDN?": self._idn, "SHUTTER": self._shutter, "SHUTTER?": self._shutter_q,
                          "HOLDER": self._holder, "HOLDER?": self._holder_q, "GATE": self._gate,
                          "GATE?": self._gate_q, "HV": self._hv, "HV?": self._hv_q,
                          "COUNT?": self._count, "REF?": self._ref}
        clock.add_activity(lambda: self._busy)   # attribute read only (never clock.now())

    def start_server(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        self.server = SerialSocketServer(self.handle, host=host, port=port, eol=b"\n",
                                         name=f"housing-{self.serial_number}")
        return self.server.start()

    # -- physics --------------------------------------------------------------------------
    def signal_rate_cps(self) -> float:
        """True detected signal rate (counts/s, no dark, before saturation) now."""
        with self.lock:
            holder, open_ = self.holder, self.shutters["DETECTOR"] == "OPEN"
            lamp_open = self.shutters["LAMP"] == "OPEN"
        if not open_:
            return 0.0
        rate = self.optics.lamp_rate_cps(holder) if lamp_open else 0.0
        if holder == "LAMP":                     # the standard lamp is lit in its position
            rate += self.optics.standard_lamp_rate_cps()
        s = self.laser.snapshot() if self.laser is not None else None
        if s is not None and s.emitting:
            pulses_per_s = s.repetition_rate_hz * s.intensity_permille / 1000.0
            rate += self.optics.photons_per_pulse(holder, s.wavelength_nm) * pulses_per_s
        return rate

    def count_rate_cps(self) -> tuple[float, bool]:
        """(measured counts/s with dark and saturation, overload?) for the present light."""
        raw = self.signal_rate_cps() + self.pmt.dark_count_rate_cps
        sat = self.pmt.saturation_count_rate_cps
        return raw / (1.0 + raw / sat), raw > sat        # saturation as NirPmt.detected_rate

    # -- protocol -------------------------------------------------------------------------
    def handle(self, line: str, send) -> None:
        text = line.strip()
        if text:
            send((self.reply(text) + "\n").encode("latin-1"))

    def reply(self, line: str) -> str:
        """The reply to one command line (blocks for moves and gates, in instrument time)."""
        self.received.append((self.clock.now(), line))
        if not line.strip():
            return "ERR empty command line"
        word, *args = line.strip().upper().split()
        fn = self._commands.get(word)
        if fn is None:
            return f"ERR unknown command {word!r}; allowed: {', '.join(self._commands)}"
        return fn(args)

    def _busy_for(self, seconds: float) -> None:
        with self.lock:
            end = max(self.clock.now(), self._busy) + seconds
            self._busy = end
        self.clock.notify()
        self.clock.wait_until(lambda: self.clock.now() >= end or end, None)

    @staticmethod
    def _choice(what: str, args: list, allowed, n: int = 1) -> str | None:
        """The error text for a bad argument list, else None."""
        if len(args) != n:
            return f"ERR {what} takes {n} argument(s), got {len(args)}: {' '.join(args)!r}"
        if n and args[-1] not in allowed:
            return f"ERR {what} {args[-1]!r} is not allowed; choose one of {', '.join(allowed)}"
        return None

    def _idn(self, args) -> str:
        return f"spinlight,FT300-HOUSING,{self.serial_number},1.0"

    def _shutter(self, args) -> str:
        if len(args) != 2:
            return f"ERR SHUTTER takes 2 arguments (LAMP|DETECTOR OPEN|CLOSE), got {len(args)}"
        err = (self._choice("SHUTTER name", args[:1], SHUTTERS)
               or self._choice("SHUTTER state", args[1:], ("OPEN", "CLOSE")))
        if err:
            return err
        self._busy_for(SHUTTER_MOVE_S)
        with self.lock:
            self.shutters[args[0]] = "OPEN" if args[1] == "OPEN" else "CLOSED"
        return "OK"

    def _shutter_q(self, args) -> str:
        return self._choice("SHUTTER? name", args, SHUTTERS) or self.shutters[args[0]]

    def _holder(self, args) -> str:
        err = self._choice("HOLDER position", args, HOLDER_POSITIONS)
        if err:
            return err
        if args[0] != self.holder:
            self._busy_for(HOLDER_MOVE_S)
        with self.lock:
            self.holder = args[0]
        return "OK"

    def _holder_q(self, args) -> str:
        return self._choice("HOLDER?", args, (), n=0) or self.holder

    def _gate(self, args) -> str:
        lo, hi = GATE_RANGE_S
        if len(args) != 1:
            return f"ERR GATE takes 1 argument (s, {lo:g}..{hi:g}), got {len(args)}"
        try:
            gate = float(args[0])
        except ValueError:
            return f"ERR GATE {args[0]!r} is not a number; allowed range {lo:g}..{hi:g} s"
        if not lo <= gate <= hi:
            return f"ERR GATE {args[0]} s is outside the allowed range {lo:g}..{hi:g} s"
        self.gate_s = max(lo, round(gate, 3))
        return "OK"

    def _gate_q(self, args) -> str:
        return self._choice("GATE?", args, (), n=0) or f"{self.gate_s:.3f}"

    def _hv(self, args) -> str:
        err = self._choice("HV", args, ("ON", "OFF"))
        if err:
            return err
        self.hv_on = args[0] == "ON"
        return "OK"

    def _hv_q(self, args) -> str:
        return self._choice("HV?", args, (), n=0) or ("ON" if self.hv_on else "OFF")

    def _count(self, args) -> str:
        err = self._choice("COUNT?", args, (), n=0)
        if err:
            return err
        with self.lock:
            self.n_counts += 1
            rng = np.random.default_rng([self.seed, self.n_counts])
            gate, hv = self.gate_s, self.hv_on
            flags = FLAG_DETECTOR_CLOSED * (self.shutters["DETECTOR"] != "OPEN")
            rate, overload = self.count_rate_cps()
            if not hv:
                flags |= FLAG_HV_OFF
                expected = 0.0
            elif overload:
                flags |= FLAG_OVERLOAD
                self.hv_on = False                     # the protection trips
                expected = rate * min(gate, OVERLOAD_TRIP_S)
            else:
                expected = rate * gate
            counts = int(rng.poisson(expected))
        self._busy_for(gate)
        return f"{counts},{flags}"

    def _ref(self, args) -> str:
        err = self._choice("REF?", args, (), n=0)
        if err:
            return err
        with self.lock:
            self.n_refs += 1
            if self.shutters["LAMP"] != "OPEN":
                return f"{0.0:.4f}"
            rng = np.random.default_rng([self.seed, self.n_refs, 1])   # apart from COUNT?'s
        current = self.optics.reference_current_na()
        return f"{max(current * (1.0 + REFERENCE_NOISE_FRACTION * rng.standard_normal()), 0.0):.4f}"
