"""Quantum Design MPMS3 driver over the MultiPyVu 3.8.0 protocol (no Bluesky here).

Temperature, field and chamber go through MultiVu exactly as ``MultiPyVu.Client`` sends them.
Moments are not in MultiPyVu: on a real system a MultiVu sequence measures and writes the
``.dat`` file, which spinlight follows. Against the simulator, the ``SPINLIGHT_*`` actions (a
documented simulator extension, see ``docs/architecture.md``) request measurements; a real
MultiVu server rejects them.
"""

from __future__ import annotations

from .commands import Choice, Command, Driver, Param

NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"

#: MultiPyVu temperature approach codes.
TEMPERATURE_APPROACH = {"fast_settle": 0, "no_overshoot": 1}
#: MultiPyVu field approach and magnet mode codes.
FIELD_APPROACH = {"linear": 0, "no_overshoot": 1, "oscillate": 2}
MAGNET_MODE = {"persistent": 0, "driven": 1}
#: The MPMS3 magnet is always driven: MultiVu refuses persistent mode on it.
MPMS3_MAGNET_MODE = {"driven": 1}
CHAMBER_MODE = {"seal": 0, "purge_seal": 1, "vent_seal": 2, "pump_continuous": 3,
                "vent_continuous": 4, "high_vacuum": 5}

#: Instrument limits (MPMS3 with the 7 T magnet).
TEMPERATURE_RANGE_K = (1.8, 400.0)
TEMPERATURE_RATE_K_PER_MIN = (0.01, 20.0)  # what MultiPyVu's own client accepts
FIELD_RANGE_OE = (-70000.0, 70000.0)
FIELD_RATE_OE_PER_S = (0.1, 700.0)
VSM_AVERAGING_S = (0.5, 60.0)
VSM_LOG_INTERVAL_S = (1.0, 3600.0)
#: AC option (QD MPMS3 AC specification: 0.1 Hz-1 kHz, 0.1-10 Oe drive).
AC_FREQUENCY_HZ = (0.1, 1000.0)
AC_AMPLITUDE_OE = (0.1, 10.0)
AC_AVERAGING_S = (0.5, 600.0)
AC_CYCLES = (1, 1000)

#: State texts that mean "done" (MultiPyVu tables; codes 0/2/5/6/7 mean still moving).
TEMPERATURE_DONE = {"Stable"}
FIELD_DONE = {"Stable", "Holding (driven)", "Holding"}
FIELD_FAULT = {"Current Error", "Switch Error", "Quenching", "Charging Error", "PSU Error",
               "General Failure"}
TEMPERATURE_FAULT = {"Impedance Control Error", "General Failure", "Diagnostic"}


def _whole_cycles(v: float) -> str:
    """Wire text of a (range-checked) cycle count; fractions are refused before sending."""
    if not float(v).is_integer():
        raise ValueError(f"cycles={v!r} is not a whole number; allowed {AC_CYCLES[0]}..{AC_CYCLES[1]}")
    return str(int(v))


def _value_state(m):
    return float(m.group(1)), m.group(2)


def _int_state(m):
    return int(float(m.group(1))), m.group(2)


class MPMS3Driver(Driver):
    """Command table for the MPMS3 through MultiVu."""

    instrument = "MPMS3"

    set_temperature = Command(
        "TEMP {temperature_K},{rate_K_per_min},{approach}",
        (Param("temperature_K", *TEMPERATURE_RANGE_K, "K"),
         Param("rate_K_per_min", *TEMPERATURE_RATE_K_PER_MIN, "K/min"),
         Choice("approach", TEMPERATURE_APPROACH)),
        reply=r"TEMP Command Received(?:,SET_POINT_UNCONFIRMED)?",
        doc="Start a temperature approach (K, K/min, fast_settle|no_overshoot).")
    get_temperature = Command("TEMP?", reply=NUMBER + r",K,(.+)", parse=_value_state,
                              doc="(temperature K, state text)")
    get_temperature_setpoints = Command(
        "TEMP_SETPOINTS?", reply=r"\(" + NUMBER + r", " + NUMBER + r", (\d+)\),K,Call was successful",
        parse=lambda m: (float(m.group(1)), float(m.group(2)), int(m.group(3))),
        doc="(setpoint K, rate K/min, approach code) last sent to MultiVu")

    set_field = Command(
        "FIELD {field_Oe},{rate_Oe_per_s},{approach},{mode}",
        (Param("field_Oe", *FIELD_RANGE_OE, "Oe"),
         Param("rate_Oe_per_s", *FIELD_RATE_OE_PER_S, "Oe/s"),
         Choice("approach", FIELD_APPROACH), Choice("mode", MPMS3_MAGNET_MODE)),
        reply=r"FIELD Command Received", doc="Start a field ramp (Oe, Oe/s, approach, mode).")
    get_field = Command("FIELD?", reply=NUMBER + r",Oe,(.+)", parse=_value_state,
                        doc="(field Oe, state text)")

    set_chamber = Command("CHAMBER {mode}", (Choice("mode", CHAMBER_MODE),),
                          reply=r"CHAMBER Command Received")
    get_chamber = Command("CHAMBER?", reply=NUMBER + r",,(.+)", parse=_int_state,
                          doc="(chamber code, state text)")

    wait_for = Command(
        "WAITFOR {delay_s},{timeout_s},{mask}",
        (Param("delay_s", 0, 86400, "s"), Param("timeout_s", 0, 86400, "s"),
         Param("mask", 0, 15, "", fmt=lambda v: str(int(v)))),
        reply=r"WAITFOR Command Received,(\d+)", parse=lambda m: int(m.group(1)),
        doc="MultiVu WaitFor (mask 1 T, 2 H, 4 position, 8 chamber); returns 0 or 258 (timed out)")

    # -- simulator extension (documented; real MultiVu has no remote measurement call) -----
    request_vsm = Command(
        "SPINLIGHT_VSM {averaging_s}", (Param("averaging_s", *VSM_AVERAGING_S, "s"),),
        reply=r"SPINLIGHT_VSM Command Received,(\d+)", parse=lambda m: int(m.group(1)),
        doc="Simulator extension: request one VSM measurement; returns its measurement number")
    vsm_logging_on = Command(
        "SPINLIGHT_VSM_LOG 1,{interval_s}", (Param("interval_s", *VSM_LOG_INTERVAL_S, "s"),),
        reply=r"SPINLIGHT_VSM_LOG Command Received",
        doc="Simulator extension: continuous VSM logging every interval_s of instrument time")
    ac_measure = Command(
        "SPINLIGHT_AC {frequency_hz},{amplitude_oe},{averaging_s},{cycles}",
        (Param("frequency_hz", *AC_FREQUENCY_HZ, "Hz"), Param("amplitude_oe", *AC_AMPLITUDE_OE, "Oe"),
         Param("averaging_s", *AC_AVERAGING_S, "s"), Param("cycles", *AC_CYCLES, "", fmt=_whole_cycles)),
        reply=r"SPINLIGHT_AC Command Received,(\d+)", parse=lambda m: int(m.group(1)),
        doc="Simulator extension: queue one AC-option point at the current T and H (Hz, Oe, "
            "averaging s, minimum cycles); returns its measurement number")
    vsm_logging_off = Command("SPINLIGHT_VSM_LOG 0", reply=r"SPINLIGHT_VSM_LOG Command Received")
    get_datafile = Command("SPINLIGHT_DATAFILE?", reply=r"(.*),,OK", parse=lambda m: m.group(1),
                           doc="Simulator extension: path of the .dat the simulator writes")
    get_clock = Command("SPINLIGHT_CLOCK?", reply=NUMBER + r",s," + NUMBER,
                        parse=lambda m: (float(m.group(1)), float(m.group(2))),
                        doc="Simulator extension: (instrument time Unix s, speed factor)")
