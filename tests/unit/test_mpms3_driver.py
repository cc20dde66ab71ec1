"""MPMS3 driver against (sent, reply) transcripts: wire format, parsing, validation."""

import pytest

from spinlight.instruments.errors import InstrumentError
from spinlight.instruments.mpms3 import MPMS3Driver
from spinlight.instruments.transports import TranscriptTransport


def driver(pairs):
    return MPMS3Driver(TranscriptTransport(pairs, name="mpms3"))


def test_temperature_commands_and_readback():
    d = driver([
        ("TEMP 10.0,5.0,0", "TEMP Command Received"),
        ("TEMP?", "299.81,K,Tracking"),
        ("TEMP_SETPOINTS?", "(10.0, 5.0, 0),K,Call was successful"),
        ("TEMP 1.8,0.5,1", "TEMP Command Received,SET_POINT_UNCONFIRMED"),
    ])
    d.set_temperature(10, 5, "fast_settle")
    assert d.get_temperature() == (299.81, "Tracking")
    assert d.get_temperature_setpoints() == (10.0, 5.0, 0)
    d.set_temperature(temperature_K=1.8, rate_K_per_min=0.5, approach="no_overshoot")
    d.transport.assert_done()


def test_field_chamber_waitfor():
    d = driver([
        ("FIELD 50000.0,100.0,0,1", "FIELD Command Received"),
        ("FIELD?", "-1.5e+03,Oe,Holding (driven)"),
        ("CHAMBER 1", "CHAMBER Command Received"),
        ("CHAMBER?", "1.0,,Purged and Sealed"),
        ("WAITFOR 0.0,600.0,3", "WAITFOR Command Received,0"),
    ])
    d.set_field(50000, 100, "linear", "driven")
    assert d.get_field() == (-1500.0, "Holding (driven)")
    d.set_chamber("purge_seal")
    assert d.get_chamber() == (1, "Purged and Sealed")
    assert d.wait_for(0, 600, 3) == 0
    d.transport.assert_done()


def test_simulator_extension():
    d = driver([
        ("SPINLIGHT_VSM 2.0", "SPINLIGHT_VSM Command Received,17"),
        ("SPINLIGHT_VSM_LOG 1,10.0", "SPINLIGHT_VSM_LOG Command Received"),
        ("SPINLIGHT_VSM_LOG 0", "SPINLIGHT_VSM_LOG Command Received"),
        ("SPINLIGHT_DATAFILE?", "/tmp/a,b/run.dat,,OK"),
        ("SPINLIGHT_CLOCK?", "1700000000.5,s,1000.0"),
    ])
    assert d.request_vsm(2) == 17
    d.vsm_logging_on(10)
    d.vsm_logging_off()
    assert d.get_datafile() == "/tmp/a,b/run.dat"
    assert d.get_clock() == (1700000000.5, 1000.0)
    d.transport.assert_done()


@pytest.mark.parametrize("call, words", [
    (lambda d: d.set_temperature(1.0, 5, "fast_settle"), ["temperature_K", "1.0", "1.8", "400"]),
    (lambda d: d.set_temperature(300, 50, "fast_settle"), ["rate_K_per_min", "50", "20"]),
    (lambda d: d.set_temperature(300, 5, "slowly"), ["approach", "slowly", "fast_settle"]),
    (lambda d: d.set_field(80000, 100, "linear", "driven"), ["field_Oe", "80000", "70000"]),
    (lambda d: d.set_field(1000, 100, "linear", "superconducting"), ["mode", "driven"]),
    (lambda d: d.set_field(1000, 100, "linear", "persistent"), ["mode", "persistent", "driven"]),
    (lambda d: d.set_temperature(float("nan"), 5, "fast_settle"), ["temperature_K", "nan"]),
])
def test_bad_input_is_rejected_before_sending(call, words):
    d = driver([])  # an empty transcript: any send would fail the test
    with pytest.raises(ValueError) as err:
        call(d)
    for w in words:
        assert w in str(err.value)
    assert d.transport.sent == []


@pytest.mark.parametrize("reply", ["garbage", "300.0,Oe,Stable", "abc,K,Stable", ""])
def test_garbled_reply_names_instrument_command_and_reply(reply):
    d = driver([("TEMP?", reply)])
    with pytest.raises(InstrumentError) as err:
        d.get_temperature()
    e = err.value
    assert e.instrument == "MPMS3" and e.command == "TEMP?" and e.reply == reply
    assert "TEMP?" in str(e) and "MPMS3" in str(e)


def test_transcript_catches_wrong_command():
    d = driver([("TEMP?", "300.0,K,Stable")])
    with pytest.raises(AssertionError):
        d.get_field()
