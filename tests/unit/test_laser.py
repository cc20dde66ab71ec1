"""Laser drivers: PiLas ASCII transcripts, PDLM library transcripts, the repetition-rate rule
(from a lifetime) and the lock rule of the Ophyd device."""

from __future__ import annotations

import ctypes
import math

import pytest

from spinlight.instruments.clib_ctypes import argtypes
from spinlight.instruments.errors import InstrumentError
from spinlight.instruments.laser import (PDLM_FUNCTIONS, LaserLib, PdlmLaserDriver,
                                         PicosecondLaser, TranscriptLaserBackend,
                                         max_repetition_rate_hz)
from spinlight.instruments.pilas import PiLasDriver
from spinlight.instruments.transports import TranscriptTransport

VERSION = "\n".join([
    "controller serial: PLC375CW0F00000042", "laser head serial: PLH375CW0F00000042",
    "center wavelength: 375 nm", "CW laser option: no", "CW laser power: fixed",
    "software version: SW.PiLas.V1.1.AEb", "controller hardware version: PiLas_Control_PCB_Rev.2.1",
    "laser head hardware version: PiLas_Laser_Head_PCB_Rev.2.0"])
PILAS_OPEN = [("version?", VERSION), ("tm=0", "done"), ("ts=0", "done")]


def pilas(pairs):
    t = TranscriptTransport(pairs, name="pilas")
    return PiLasDriver(t), t


def test_pilas_open_settings_and_labelled_replies():
    drv, t = pilas(PILAS_OPEN + [
        ("f=100000", "done"), ("f?", "int. frequency:\t       100000 Hz"),
        ("tune=250", "done"), ("tune?", "tune value:\t\t     25.00 %"),
        ("ld=1", "done"), ("ld?", "pulsed laser emission: on"),
        ("lht?", "laser head temp.:\t     25.0 °C"), ("ldtemp?", "LD temp.:\t\tgood"),
        ("ld=0", "done"), ("ld?", "pulsed laser emission: off")])
    drv.open()
    assert drv.wavelength_nm == 375.0 and drv.identity["software version"] == "SW.PiLas.V1.1.AEb"
    drv.set_repetition_rate_hz(100000)
    assert drv.get_repetition_rate_hz() == 100000.0
    drv.set_intensity_permille(250)
    assert drv.get_intensity_permille() == 250
    drv.set_soft_lock(False)
    assert drv.get_soft_lock() is False
    assert drv.get_head_temperature_C() == 25.0 and drv.get_diode_temperature_status() == "good"
    drv.set_soft_lock(True)
    assert drv.get_locked() is True
    t.assert_done()


@pytest.mark.parametrize("call, message", [
    (lambda d: d.set_repetition_rate_hz(10), r"repetition_rate_hz=10 Hz .*25\.0\.\.40000000\.0 Hz"),
    (lambda d: d.set_repetition_rate_hz(1e5 + 0.5), r"repetition_rate_hz=100000\.5 must be a whole"),
    (lambda d: d.set_intensity_permille(1001), r"intensity_permille=1001 per mille .*0\.\.1000"),
    (lambda d: d.set_intensity_permille(250.5), r"intensity_permille=250\.5 must be a whole"),
    (lambda d: d.set_mode("cw"), r"mode='cw' is not allowed; choose one of \['pulsed'\]"),
    (lambda d: d.open(trigger="optical"), r"trigger='optical' is not allowed"),
])
def test_pilas_refuses_bad_values_before_sending(call, message):
    drv, t = pilas(PILAS_OPEN[:2] if "trigger" in message else [])
    with pytest.raises(ValueError, match=message):
        call(drv)
    assert t.sent == (["version?", "tm=0"] if "trigger" in message else [])


def test_pilas_unexpected_reply_names_command_and_reply():
    drv, _ = pilas([("ld?", "1")])                      # the bare-integer form of an old driver
    with pytest.raises(InstrumentError) as err:
        drv.get_emission()
    assert err.value.command == "ld?" and err.value.reply == "1"
    drv, _ = pilas([("version?", "controller serial: X")])
    with pytest.raises(InstrumentError, match="expected 8 identification lines"):
        drv.open()


TAIKO_OPEN = [("PDLM_OpenDevice", [0], 0, ["1032415"]),
              ("PDLM_GetLHWavelength", [0], 0, [375.0]),
              ("PDLM_GetFrequencyLimits", [0], 0, [1, 100000000])]


def test_pdlm_driver_calls_and_error_text():
    backend = TranscriptLaserBackend(TAIKO_OPEN + [
        ("PDLM_SetFrequency", [0, 200000], 0, []), ("PDLM_GetFrequency", [0], 0, [200000]),
        ("PDLM_SetPulsePowerPermille", [0, 50], 0, []),
        ("PDLM_SetLaserMode", [0, 1], 0, []), ("PDLM_GetLaserMode", [0], 0, [1]),
        ("PDLM_SetSoftLock", [0, 0], 0, []), ("PDLM_GetLocked", [0], 0, [1]),
        ("PDLM_SetSoftLock", [0, 7], -6, []), ("PDLM_DecodeError", [-6], 0, ["PDLM_ERROR_ILLEGAL_VALUE"])])
    drv = PdlmLaserDriver(LaserLib(backend)).open()
    assert (drv.serial, drv.wavelength_nm, drv.frequency_limits_hz) == ("1032415", 375.0, (1.0, 1e8))
    drv.set_repetition_rate_hz(200000)
    assert drv.get_repetition_rate_hz() == 200000.0
    drv.set_intensity_permille(50)
    drv.set_mode("pulsed")
    assert drv.get_mode() == "pulsed"
    drv.set_soft_lock(False)
    assert drv.get_locked() is True                     # e.g. the key switch is off
    with pytest.raises(InstrumentError, match="PDLM_SetSoftLock returned -6: PDLM_ERROR_ILLEGAL_VALUE"):
        drv.lib.PDLM_SetSoftLock(0, 7)
    backend.assert_done()
    with pytest.raises(ValueError, match=r"repetition_rate_hz=200000000 Hz .*1\.0\.\.100000000\.0 Hz"):
        drv.set_repetition_rate_hz(200_000_000)
    with pytest.raises(ValueError, match=r"mode='burst' is not allowed"):
        drv.set_mode("burst")


def test_pdlm_ctypes_argtypes_table():
    p = ctypes.POINTER
    assert argtypes(PDLM_FUNCTIONS["PDLM_DecodeError"]) == [ctypes.c_int, ctypes.c_char_p,
                                                            p(ctypes.c_uint32)]
    assert argtypes(PDLM_FUNCTIONS["PDLM_GetLibraryVersion"]) == [ctypes.c_char_p, ctypes.c_uint32]
    assert argtypes(PDLM_FUNCTIONS["PDLM_GetFrequencyLimits"]) == [ctypes.c_int, p(ctypes.c_uint32),
                                                                   p(ctypes.c_uint32)]
    assert argtypes(PDLM_FUNCTIONS["PDLM_GetLHWavelength"]) == [ctypes.c_int, p(ctypes.c_float)]
    assert argtypes(PDLM_FUNCTIONS["PDLM_SetSoftLock"]) == [ctypes.c_int, ctypes.c_uint32]
    assert {f for f in dir(LaserLib) if f.startswith("PDLM_")} == set(PDLM_FUNCTIONS)


def test_max_repetition_rate_from_lifetime():
    assert max_repetition_rate_hz(1000.0) == pytest.approx(200e3)          # 1 µs, 5 periods
    assert max_repetition_rate_hz(134.0, periods=10) == pytest.approx(1e9 / 1340.0)
    for bad in (0.0, -5.0, math.nan):
        with pytest.raises(ValueError, match=r"lifetime_ns=.* ns .*allowed range"):
            max_repetition_rate_hz(bad)
    with pytest.raises(ValueError, match=r"lifetime_periods=0\.5 .*1\.0\.\.1000\.0"):
        max_repetition_rate_hz(100.0, periods=0.5)


def laser_device(extra):
    """A PicosecondLaser on a PiLas transcript; creation locks and reads everything."""
    start = PILAS_OPEN + [("ld=0", "done"), ("f?", "int. frequency:\t       1000000 Hz"),
                          ("tune?", "tune value:\t\t     50.00 %"),
                          ("ld?", "pulsed laser emission: off"), ("ld?", "pulsed laser emission: off")]
    drv, t = pilas(start + extra)
    return PicosecondLaser(name="laser", driver=drv.open()), t


LOCK = [("ld?", "pulsed laser emission: off")] * 2
UNLOCK = [("ld?", "pulsed laser emission: on")] * 2


def test_laser_is_locked_by_default_and_unlocked_only_inside_an_acquisition():
    laser, t = laser_device([("f?", "int. frequency:\t       1000000 Hz"), ("ld=1", "done")] + UNLOCK
                            + [("ld=0", "done")] + LOCK)
    assert laser.soft_lock.get() is True and laser.emission.get() is False
    assert laser.repetition_rate_hz.get() == 1e6 and laser.intensity_permille.get() == 500
    with pytest.raises(ValueError, match=r"soft_lock=False is not allowed outside an acquisition"):
        laser.soft_lock.put(False)
    sent = len(t.sent)
    with laser.acquisition():
        assert laser.acquiring and laser.soft_lock.get() is False and laser.emission.get() is True
    assert t.sent[sent:] == ["f?", "ld=1", "ld?", "ld?", "ld=0", "ld?", "ld?"]
    assert laser.soft_lock.get() is True and not laser.acquiring
    t.assert_done()


def test_repetition_rate_rule_from_the_lifetime():
    laser, t = laser_device([("f=100000", "done"), ("f?", "int. frequency:\t       100000 Hz")])
    with pytest.raises(ValueError, match=r"repetition_rate_hz=1000000\.0 Hz .*\.\.200000 Hz "
                                         r"for lifetime_ns=1000\.0 ns"):
        laser.lifetime_ns.put(1000.0)                  # the current 1 MHz is too fast
    laser.repetition_rate_hz.put(100000)
    laser.lifetime_ns.put(1000.0)
    with pytest.raises(ValueError, match=r"repetition_rate_hz=250000 Hz is outside the allowed "
                                         r"range 25\.\.200000 Hz \(lifetime_ns=1000\.0 ns x 5 periods\)"):
        laser.repetition_rate_hz.put(250000)
    with pytest.raises(ValueError, match="repetition_rate_hz=250000"):
        laser.repetition_rate_hz.set(250000)
    assert laser.repetition_rate_hz.get() == 100000.0
    t.assert_done()
