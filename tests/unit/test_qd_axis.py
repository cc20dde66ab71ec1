"""Temperature/field positioners against transcripts: completion on 'Stable', progress, stop."""

import threading

import pytest
from ophyd.status import MoveStatus

from spinlight.instruments.errors import InstrumentError
from spinlight.instruments.mpms3 import MPMS3Driver
from spinlight.instruments.mpms3_device import MPMS3
from spinlight.instruments.qd_axis import MAX_FAILED_POLLS
from spinlight.instruments.retry import GarbledReply
from spinlight.instruments.transports import TranscriptTransport


def make(pairs):
    dev = MPMS3(name="mpms3", driver=MPMS3Driver(TranscriptTransport(pairs, name="mpms3")))
    dev.temperature.poll_interval_s.put(0.001)
    dev.field.poll_interval_s.put(0.001)
    return dev


def test_temperature_set_completes_on_stable_with_progress():
    dev = make([
        ("TEMP 10.0,10.0,0", "TEMP Command Received"),
        ("TEMP?", "200.0,K,Tracking"),
        ("TEMP?", "100.0,K,Tracking"),
        ("TEMP?", "10.02,K,Near"),
        ("TEMP?", "10.0,K,Stable"),
    ])
    dev.temperature.readback.put(300.0)
    # slow poller: the watcher below must be registered before the move can finish
    dev.temperature.poll_interval_s.put(0.05)
    fractions = []
    st = dev.temperature.set(10.0)
    assert isinstance(st, MoveStatus)
    st.watch(lambda *a, fraction=None, **k: fractions.append(fraction))
    st.wait(5)
    assert st.success
    assert dev.temperature.position == 10.0
    assert dev.temperature.setpoint.get() == 10.0
    assert dev.temperature.state.get() == "Stable"
    assert fractions[-1] == pytest.approx(0.0)
    dev.driver.transport.assert_done()
    r = dev.read()
    assert r["mpms3_temperature"]["value"] == 10.0 and "mpms3_temperature_setpoint" in r
    assert "mpms3_temperature_rate_K_per_min" in dev.read_configuration()
    assert "mpms3_temperature" in dev.hints["fields"]


def test_stale_stable_before_command_is_ignored():
    # MultiVu may still say 'Stable' at the old temperature right after the command.
    dev = make([
        ("TEMP 50.0,10.0,0", "TEMP Command Received"),
        ("TEMP?", "300.0,K,Stable"),
        ("TEMP?", "200.0,K,Tracking"),
        ("TEMP?", "50.0,K,Stable"),
    ])
    st = dev.temperature.set(50.0)
    st.wait(5)
    assert dev.temperature.position == 50.0
    dev.driver.transport.assert_done()


def test_magnet_fault_fails_the_status():
    dev = make([
        ("FIELD 10000.0,100.0,0,1", "FIELD Command Received"),
        ("FIELD?", "5000.0,Oe,Charging"),
        ("FIELD?", "5200.0,Oe,Quenching"),
    ])
    st = dev.field.set(10000.0)
    with pytest.raises(InstrumentError, match="Quenching"):
        st.wait(5)


@pytest.mark.parametrize("success", [False, True])
def test_stop_holds_temperature(success):
    """stop() holds the temperature; the pending move fails, except for stop(success=True)
    (the RunEngine suspending: it re-issues the move on resume, so the status finishes)."""
    gate = threading.Event()

    class Slow(TranscriptTransport):
        def query(self, cmd):
            if cmd == "TEMP?" and not gate.is_set():
                gate.wait(5)
            return super().query(cmd)

    pairs = [("TEMP 2.0,10.0,0", "TEMP Command Received"),
             ("TEMP?", "150.0,K,Tracking"),   # poller, released below
             ("TEMP?", "149.5,K,Tracking"),   # stop(): where are we?
             ("TEMP 149.5,10.0,0", "TEMP Command Received")]
    dev = MPMS3(name="mpms3", driver=MPMS3Driver(Slow(pairs, name="mpms3")))
    st = dev.temperature.set(2.0)
    gate.set()
    # wait until the poller consumed its reply, then stop
    for _ in range(1000):
        if len(dev.driver.transport.sent) >= 2:
            break
        threading.Event().wait(0.001)
    dev.temperature.stop(success=success)
    if success:
        st.wait(5)
        assert st.success
    else:
        with pytest.raises(Exception):
            st.wait(5)
    assert dev.driver.transport.sent[-1] == "TEMP 149.5,10.0,0"
    assert dev.temperature.setpoint.get() == 149.5


def test_bad_setpoint_raises_before_sending():
    dev = make([])
    with pytest.raises(ValueError, match="temperature_K"):
        dev.temperature.set(0.5)
    with pytest.raises(ValueError, match="field_Oe"):
        dev.field.set(1e6)
    assert dev.driver.transport.sent == []


@pytest.mark.parametrize("bad_polls", [MAX_FAILED_POLLS, MAX_FAILED_POLLS + 1])
def test_a_burst_of_unreadable_polls_does_not_end_a_move_unless_it_persists(bad_polls):
    # the driver has no retries here: every garbled reply reaches the poller
    dev = make([("TEMP 10.0,10.0,0", "TEMP Command Received"),
                ("TEMP?", "200.0,K,Tracking")]
               + [("TEMP?", "#\x01garbage")] * bad_polls
               + [("TEMP?", "10.0,K,Stable")])
    st = dev.temperature.set(10.0)
    if bad_polls <= MAX_FAILED_POLLS:
        st.wait(5)
        assert st.success and dev.temperature.position == 10.0
        dev.driver.transport.assert_done()
    else:
        with pytest.raises(GarbledReply):
            st.wait(5)
        assert "GarbledReply" in str(st)          # what a stop document's reason shows
