"""PPMS driver against (sent, reply) transcripts: every command, read-back of settings,
validation before sending, status decoding, strict replies."""

import datetime

import pytest

from spinlight.instruments.errors import InstrumentError
from spinlight.instruments.ppms import PPMSDriver, decode_status
from spinlight.instruments.ppms_device import PPMS
from spinlight.instruments.transports import TranscriptTransport


def driver(pairs):
    return PPMSDriver(TranscriptTransport(pairs, name="ppms"))


def test_settings_are_written_then_read_back():
    d = driver([
        ("TEMP 10.0000,5.00,0", None), ("TEMP?", "10,5,0;"),
        ("TEMP 1.9000,0.50,1", None), ("TEMP?", "1.9,0.5,1"),
        ("FIELD 50000.00,100.0,0,0", None), ("FIELD?", "50000,100,0,0;"),
        ("FIELD -12345.67,10.5,2,1", None), ("FIELD?", "-12345.67,10.5,2,1;"),
        ("CHAMBER 1", None), ("CHAMBER?", "1;"),
        ("CHAMBER 4", None), ("CHAMBER?", "4;"),
    ])
    assert d.set_temperature(10, 5, "fast_settle") is None
    d.set_temperature(temperature_K=1.9, rate_K_per_min=0.5, approach="no_overshoot")
    d.set_field(50000, 100, "linear", "persistent")
    d.set_field(-12345.67, 10.5, "oscillate", "driven")
    d.set_chamber("purge_seal")
    d.set_chamber("vent_continuous")
    d.transport.assert_done()


def test_queries_parse_every_reply():
    d = driver([
        ("TEMP?", "300,10,0;"), ("FIELD?", "0,100,0,1;"), ("CHAMBER?", "2;"),
        ("LEVEL?", "71.25,2;"), ("LEVEL?", "70,0;"),
        ("LEVELON 2", None),
        ("MAGCNF?", "90000,1500,42,1.8,1.2,15,15;"),
        ("MOVE 90.000,0,3", None), ("MOVE?", "45.5,0,3;"),
        ("REV?", "spinlight-sim,1.0;"),
        ("*IDN?", "QUANTUM DESIGN,PPMS;"),
        ("DATE?", "11,21,26;"), ("TIME?", "13,5,9;"),
        ("SPINLIGHT_ERR?", "2,TEMP 500,10,0: out of range;"), ("SPINLIGHT_ERR?", "0,no error;"),
        ("SPINLIGHT_DATAFILE?", "/tmp/a;b/PPMS.dat;"),
        ("SPINLIGHT_CLOCK?", "1700000000.250,1000;"),
    ])
    assert d.get_temperature_setpoint() == (300.0, 10.0, 0)
    assert d.get_field_setpoint() == (0.0, 100.0, 0, 1)
    assert d.get_chamber_mode() == 2
    assert d.get_level() == (71.25, "continuous")
    assert d.get_level() == (70.0, ">1h")
    d.set_level_meter("hourly")
    cfg = d.get_magnet_config()
    assert cfg["max_field_Oe"] == 90000.0 and cfg["switch_cool_s"] == 15.0 and len(cfg) == 7
    d.move(90, "move", 3)
    assert d.get_move() == (45.5, 0, 3)
    assert d.get_revision() == "spinlight-sim,1.0"
    assert d.identify() == "QUANTUM DESIGN,PPMS"
    assert d.get_date() == datetime.date(2026, 11, 21)
    assert d.get_time() == datetime.time(13, 5, 9)
    assert d.next_error() == (2, "TEMP 500,10,0: out of range")
    assert d.next_error() == (0, "no error")
    assert d.get_datafile() == "/tmp/a;b/PPMS.dat"
    assert d.get_clock() == (1700000000.25, 1000.0)
    d.transport.assert_done()


def test_getdat_values_in_ascending_bit_order():
    d = driver([
        ("GETDAT? 15", "15,1700000000.125,4369,299.98,0.25,12.5;"),
        ("GETDAT? 524294", "524294,12.0,300.1,-5,760;"),
        ("GETDAT? 3", "3,1.5,69,10.02"),
        ("GETDAT? 5", "5,1.5,98,1000.5;"),
        ("GETDAT? 1", "1,1.5,1809;"),
    ])
    r = d.getdat(15)
    assert r["timestamp"] == 1700000000.125
    assert (r["temperature"], r["field"], r["position"]) == (299.98, 0.25, 12.5)
    assert r["status"].word == 0x1111
    r = d.getdat(2 + 4 + 2 ** 19)
    assert list(r) == ["timestamp", "temperature", "field", "pressure"]
    assert r["pressure"] == 760.0 and r["field"] == -5.0
    assert d.get_temperature() == (10.02, "within tolerance, waiting for equilibrium")  # 69=0x45
    assert d.get_field() == (1000.5, "charging")                                     # 98=0x62
    assert d.get_chamber() == (7, "HiVac")                                           # 0x711
    d.transport.assert_done()


def test_decode_status_nibbles():
    st = decode_status(0x5F32)
    assert (st.temperature, st.magnet, st.chamber, st.position) == (
        "tracking", "switch cooling", "failure", "moving")
    assert (st.temperature_code, st.magnet_code, st.chamber_code, st.position_code) == (2, 3, 15, 5)
    st = decode_status(0x1841)
    assert (st.temperature, st.magnet, st.chamber, st.position) == (
        "stable", "driven stable", "pumping continuously", "stopped")
    assert decode_status(0x0013).magnet == "persistent stable"
    assert decode_status(0x0003).temperature == "undefined code 3"
    assert decode_status(0x0021).magnet == "persistent switch warming"
    assert decode_status(0x9000).position == "index" and decode_status(0).chamber == "unknown"
    for bad in (-1, 0x10000, 1.5):
        with pytest.raises(ValueError, match="status word"):
            decode_status(bad)


@pytest.mark.parametrize("call, words", [
    (lambda d: d.set_temperature(1.5, 5, "fast_settle"), ["temperature_K", "1.5", "1.9", "350"]),
    (lambda d: d.set_temperature(400, 5, "fast_settle"), ["temperature_K", "400"]),
    (lambda d: d.set_temperature(300, 25, "fast_settle"), ["rate_K_per_min", "25", "20"]),
    (lambda d: d.set_temperature(300, 5, "oscillate"), ["approach", "oscillate", "no_overshoot"]),
    (lambda d: d.set_field(95000, 100, "linear", "driven"), ["field_Oe", "95000", "90000"]),
    (lambda d: d.set_field(1000, 5, "linear", "driven"), ["rate_Oe_per_s", "5", "10.5", "196"]),
    (lambda d: d.set_field(1000, 200, "linear", "driven"), ["rate_Oe_per_s", "200"]),
    (lambda d: d.set_field(1000, 100, "sideways", "driven"), ["approach", "sideways"]),
    (lambda d: d.set_field(1000, 100, "linear", "superconducting"), ["mode", "persistent"]),
    (lambda d: d.set_chamber("high_vacuum"), ["mode", "high_vacuum", "purge_seal"]),
    (lambda d: d.getdat(0), ["mask", "0"]),
    (lambda d: d.getdat(2 ** 30), ["mask"]),
    (lambda d: d.getdat(1.5), ["mask", "integer"]),
    (lambda d: d.move(400, "move", 0), ["position_deg", "400", "360"]),
    (lambda d: d.move(10, "move", 15), ["slowdown", "15", "14"]),
    (lambda d: d.move(10, "move", 2.5), ["slowdown", "integer"]),
    (lambda d: d.set_level_meter("sometimes"), ["mode", "sometimes", "hourly"]),
    (lambda d: d.set_temperature(float("nan"), 5, "fast_settle"), ["temperature_K", "nan"]),
])
def test_bad_input_is_rejected_before_sending(call, words):
    d = driver([])  # an empty transcript: any send would fail the test
    with pytest.raises(ValueError) as err:
        call(d)
    for w in words:
        assert w in str(err.value)
    assert d.transport.sent == []


@pytest.mark.parametrize("pairs, call", [
    ([("TEMP?", "garbage;")], lambda d: d.get_temperature_setpoint()),
    ([("TEMP?", "300,10;")], lambda d: d.get_temperature_setpoint()),
    ([("TEMP?", "300,10,0;;")], lambda d: d.get_temperature_setpoint()),
    ([("LEVEL?", "50,7;")], lambda d: d.get_level()),
    ([("GETDAT? 3", "2,1.5,300;")], lambda d: d.getdat(3)),             # wrong mask echoed
    ([("GETDAT? 3", "3,1.5,4369;")], lambda d: d.getdat(3)),            # a value missing
    ([("GETDAT? 1", "1,1.5,70000;")], lambda d: d.getdat(1)),           # not a status word
    ([("GETDAT? 2", "ERROR: GETDAT? 2: busy;")], lambda d: d.getdat(2)),
    ([("TEMP 10.0000,5.00,0", None), ("TEMP?", "300,5,0;")],            # setting refused
     lambda d: d.set_temperature(10, 5, "fast_settle")),
    ([("FIELD 100.00,50.0,0,1", None), ("FIELD?", "100,50,0;")],        # read-back too short
     lambda d: d.set_field(100, 50, "linear", "driven")),
    ([("CHAMBER 0", None), ("CHAMBER?", "ERROR: busy;")], lambda d: d.set_chamber("seal")),
])
def test_bad_replies_raise_instrument_error(pairs, call):
    d = driver(pairs)
    with pytest.raises(InstrumentError) as err:
        call(d)
    e = err.value
    assert e.instrument == "PPMS" and e.reply is not None and e.command is not None
    assert "PPMS" in str(e)
    d.transport.assert_done()


def test_error_payload_is_named_as_a_refusal():
    d = driver([("MOVE?", "ERROR: MOVE?: no rotator;")])
    with pytest.raises(InstrumentError, match="refused the command: ERROR: MOVE[?]: no rotator"):
        d.get_move()


def make_device(pairs):
    dev = PPMS(name="ppms", driver=driver(pairs))
    dev.field.poll_interval_s.put(0.001)
    dev.temperature.poll_interval_s.put(0.001)
    return dev


def test_field_move_ends_only_in_the_state_of_its_magnet_mode():
    # Driven mode: a stale "persistent stable" at the target must not end the move.
    dev = make_device([
        ("FIELD 1000.00,100.0,0,1", None), ("FIELD?", "1000,100,0,1;"),
        ("GETDAT? 5", "5,1.0,17,1000;"),      # 0x11: persistent stable (stale)
        ("GETDAT? 5", "5,2.0,33,1000;"),      # 0x21: switch warming
        ("GETDAT? 5", "5,3.0,81,1000;"),      # 0x51: driven final approach
        ("GETDAT? 5", "5,4.0,65,1000;"),      # 0x41: driven stable
    ])
    dev.field.magnet_mode.put("driven")
    st = dev.field.set(1000)
    st.wait(5)
    assert st.success and dev.field.state.get() == "driven stable"
    assert dev.magnet_state.get() == "driven stable"   # mirrored for suspenders
    dev.driver.transport.assert_done()


def test_persistent_field_move_and_temperature_move_on_ppms_states():
    dev = make_device([
        ("FIELD 0.00,100.0,0,0", None), ("FIELD?", "0,100,0,0;"),
        ("GETDAT? 5", "5,1.0,113,20;"),       # 0x71: discharging
        ("GETDAT? 5", "5,2.0,49,0;"),         # 0x31: switch cooling
        ("GETDAT? 5", "5,3.0,17,0;"),         # 0x11: persistent stable
        ("TEMP 5.0000,10.00,0", None), ("TEMP?", "5,10,0;"),
        ("GETDAT? 3", "3,1.0,2,100;"),        # tracking
        ("GETDAT? 3", "3,2.0,5,5.01;"),       # within tolerance
        ("GETDAT? 3", "3,3.0,1,5.0;"),        # stable
    ])
    assert dev.field.magnet_mode.get() == "persistent"      # the PPMS default
    dev.field.readback.put(20.0)
    dev.field.set(0).wait(5)
    assert dev.field.position == 0.0
    dev.temperature.set(5).wait(5)
    assert dev.temperature.state.get() == "stable" and dev.temperature_state.get() == "stable"
    dev.driver.transport.assert_done()


def test_failure_state_fails_the_move():
    dev = make_device([
        ("TEMP 5.0000,10.00,0", None), ("TEMP?", "5,10,0;"),
        ("GETDAT? 3", "3,1.0,2,100;"),
        ("GETDAT? 3", "3,2.0,15,100;"),       # failure
    ])
    with pytest.raises(InstrumentError, match="failure"):
        dev.temperature.set(5).wait(5)
