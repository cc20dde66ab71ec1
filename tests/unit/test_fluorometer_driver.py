"""Housing driver and its Ophyd signals against (sent, reply) transcripts: every command, strict
reply parsing, ERR replies, and validation before anything is sent."""

import pytest

from spinlight.instruments.errors import InstrumentError
from spinlight.instruments.fluorometer import (GATE_RANGE_S, LAMP_RANGE_NM, CountResult,
                                               HighVoltage, HousingDriver, PhotonCounter,
                                               ReferenceDetector, SampleHolder, Shutter)
from spinlight.instruments.transports import TranscriptTransport

CONNECT = [("*IDN?", "spinlight,FT300-HOUSING,FT3-51234,1.0"), ("GATE?", "0.100")]


def driver(extra=()):
    t = TranscriptTransport(CONNECT + list(extra), name="housing")
    return HousingDriver(t).connect(), t


def test_constants():
    assert LAMP_RANGE_NM == (230.0, 1000.0) and GATE_RANGE_S == (0.001, 100.0)


def test_connect_and_every_command_on_the_wire():
    d, t = driver([("SHUTTER LAMP OPEN", "OK"), ("SHUTTER? LAMP", "OPEN"),
                   ("SHUTTER DETECTOR CLOSE", "OK"), ("SHUTTER? DETECTOR", "CLOSED"),
                   ("HOLDER SCATTERER", "OK"), ("HOLDER?", "SCATTERER"),
                   ("GATE 0.250", "OK"), ("GATE?", "0.250"),
                   ("HV OFF", "OK"), ("HV?", "OFF"), ("COUNT?", "1234,2")])
    assert d.identity == ("spinlight", "FT300-HOUSING", "FT3-51234", "1.0") and d.gate_s == 0.1
    assert d.set_shutter("lamp", "open") == "open"
    assert d.set_shutter("Detector", "CLOSED") == "closed"          # case-insensitive choices
    assert d.set_holder("scatterer") == "scatterer"
    assert d.set_gate(0.25) == 0.25 and d.gate_s == 0.25
    assert d.set_hv("off") == "off"
    r = d.count()
    assert r == CountResult(1234, 2, 0.25) and r.count_rate_cps == 4936.0
    assert r.detector_closed and not r.overload and not r.hv_off
    t.assert_done()


def test_gate_is_sent_with_millisecond_resolution():
    d, t = driver([("GATE 0.001", "OK"), ("GATE?", "0.001"), ("GATE 100.000", "OK"),
                   ("GATE?", "100.000")])
    assert d.set_gate(0.0014) == 0.001 and d.set_gate(100) == 100.0
    t.assert_done()


@pytest.mark.parametrize("call, match", [
    (lambda d: d.set_shutter("lamp", "ajar"), r"state='ajar' is not allowed; choose one of \['closed', 'open'\]"),
    (lambda d: d.set_shutter("monochromator", "open"), r"shutter='monochromator' is not allowed"),
    (lambda d: d.set_holder("cuvette"), r"position='cuvette' is not allowed; choose one of \['empty', 'lamp', 'sample', 'scatterer'\]"),
    (lambda d: d.set_gate(200.0), r"gate_s=200.0 s is outside the allowed range 0.001..100.0 s"),
    (lambda d: d.set_gate(0.0), r"gate_s=0.0 s is outside the allowed range 0.001..100.0 s"),
    (lambda d: d.set_gate("fast"), r"gate_s='fast' is not a number"),
    (lambda d: d.set_hv(True), r"hv='true' is not allowed; choose one of \['off', 'on'\]"),
])
def test_bad_input_raises_before_anything_is_sent(call, match):
    d, t = driver()
    with pytest.raises(ValueError, match=match):
        call(d)
    assert t.sent == [sent for sent, _ in CONNECT]
    t.assert_done()


def test_err_and_garbled_replies_raise_instrument_errors():
    d, t = driver([("HOLDER EMPTY", "ERR HOLDER 'EMPTY' jammed"), ("HV?", "MAYBE"),
                   ("COUNT?", "12;0")])
    with pytest.raises(InstrumentError, match=r"command refused.*'HOLDER EMPTY'.*jammed"):
        d.set_holder("empty")
    with pytest.raises(InstrumentError, match=r"unexpected reply.*'HV\?'.*'MAYBE'"):
        d.get_hv()
    with pytest.raises(InstrumentError, match=r"'COUNT\?'.*'12;0'"):
        d.count()
    t.assert_done()


def test_connect_refuses_another_instrument():
    t = TranscriptTransport([("*IDN?", "ACME,SPECTROMETER,1,2")])
    with pytest.raises(InstrumentError, match="not a FT300-HOUSING"):
        HousingDriver(t).connect()


def test_signals_validate_at_set_and_show_the_read_back():
    d, t = driver([("SHUTTER LAMP OPEN", "OK"), ("SHUTTER? LAMP", "OPEN"),
                   ("HOLDER EMPTY", "OK"), ("HOLDER?", "EMPTY"),
                   ("HV ON", "OK"), ("HV?", "ON"),
                   ("SHUTTER LAMP CLOSE", "OK"), ("SHUTTER? LAMP", "OPEN")])   # stuck open
    lamp = Shutter(name="lamp", driver=d, which="lamp", value="closed")
    holder = SampleHolder(name="holder", driver=d, value="sample")
    hv = HighVoltage(name="hv", driver=d, value="off")
    with pytest.raises(ValueError, match="state='half' is not allowed"):
        lamp.set("half")
    with pytest.raises(ValueError, match="position='cuvette' is not allowed"):
        holder.set("cuvette")
    with pytest.raises(ValueError, match="which='laser' is not allowed"):
        Shutter(name="x", driver=d, which="laser")
    lamp.set("open").wait(5)
    assert lamp.get() == "open"
    holder.set("EMPTY").wait(5)
    assert holder.get() == "empty"
    hv.set("on").wait(5)
    assert hv.get() == "on"
    st = lamp.set("closed")
    with pytest.raises(InstrumentError, match="lamp is 'open' after setting 'closed'"):
        st.wait(5)
    t.assert_done()


def counter(replies):
    d, t = driver(replies)
    return PhotonCounter(name="counter", driver=d), t


def test_counter_reading_and_gate():
    c, t = counter([("GATE 0.500", "OK"), ("GATE?", "0.500"), ("COUNT?", "10000,0")])
    with pytest.raises(ValueError, match="gate_s=1000.0 s is outside"):
        c.gate_s.set(1000.0)
    c.gate_s.set(0.5).wait(5)
    assert c.read_configuration()["counter_gate_s"]["value"] == 0.5
    st = c.trigger()
    st.wait(5)
    reading = c.read()
    assert reading["counter_counts"]["value"] == 10000
    assert reading["counter_count_rate_cps"]["value"] == 20000.0
    assert reading["counter_overload"]["value"] is False and reading["counter_flags"]["value"] == 0
    assert c.hints == {"fields": ["counter_count_rate_cps"]}
    t.assert_done()


def test_overload_reading_then_hv_off_count_fails_naming_the_problem():
    c, t = counter([("COUNT?", "9100,1"), ("COUNT?", "0,4")])
    c.trigger().wait(5)
    assert c.overload.get() is True and c.flags.get() == 1
    st = c.trigger()
    with pytest.raises(InstrumentError, match="PMT high voltage is off"):
        st.wait(5)
    assert c.counts.get() == 9100                      # the failed count published nothing
    t.assert_done()


def test_reference_and_standard_lamp_on_the_wire():
    d, t = driver([("REF?", "48.1234"), ("HOLDER LAMP", "OK"), ("HOLDER?", "LAMP"),
                   ("REF?", "0.0000"), ("REF?", "ERR REF? takes 0 argument(s)"), ("REF?", "n/a")])
    assert d.get_reference_na() == 48.1234
    assert d.set_holder("Lamp") == "lamp"                       # the standard lamp position
    ref = ReferenceDetector(name="ref", driver=d)
    ref.trigger().wait(5)
    assert ref.read()["ref_current_nA"]["value"] == 0.0       # lamp shutter closed
    assert "ref_current_nA" not in ref.hints.get("fields", [])      # read, not plotted
    st = ref.trigger()
    with pytest.raises(InstrumentError, match=r"command refused.*'REF\?'"):
        st.wait(5)
    with pytest.raises(InstrumentError, match=r"'REF\?'.*'n/a'"):
        d.get_reference_na()
    t.assert_done()
