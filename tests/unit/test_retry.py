"""RetryPolicy: garbled replies and timeouts retried (bounded), refusals never; a lost
connection reconnected on an exponential back-off shared by every thread, then given up; every
step reported on the ``spinlight.faults`` hook. Protocol cases run on transcripts; connection
cases on the PPMS and MPMS3 simulators' real servers (pyvisa-py, MultiPyVu)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

import MultiPyVu.MultiVuClient_base as _client_base

from spinlight.instruments.errors import ConnectionLost, InstrumentError, InstrumentTimeout
from spinlight.instruments.mpms3 import MPMS3Driver
from spinlight.instruments.ppms import PPMSDriver
from spinlight.instruments.retry import (GarbledReply, RetryPolicy, add_fault_listener,
                                         remove_fault_listener)
from spinlight.instruments.transports import MultiVuTransport, TranscriptTransport, VisaTransport
from spinlight.simulators.faults import wire_of
from spinlight.simulators.lab import SimulatedLab


class StandIn:
    name = "stand-in"                       # no luminescence preset: no PL bench
    molar_mass_g_per_mol = 500.0

    def measure_vsm(self, T_K, H_Oe, mass_mg, rng):
        return 1e-6, 1e-9


@pytest.fixture
def faults():
    seen = []
    handle = add_fault_listener(lambda kind, message, fields: seen.append((kind, message, fields)))
    yield seen
    remove_fault_listener(handle)


def kinds(faults):
    return [k for k, _, _ in faults]


# -- protocol: transcripts ------------------------------------------------------------------------
def test_policy_arguments_are_checked_and_the_budget_follows():
    for kwargs, text in [({"retries": 11}, r"retries=11 .*0\.\.10"),
                         ({"reconnect_attempts": -1}, r"reconnect_attempts=-1 .*0\.\.1000"),
                         ({"reconnect_backoff_s": 4000}, r"reconnect_backoff_s=4000 s .*0\.0\.\.3600\.0 s")]:
        with pytest.raises(ValueError, match=text):
            RetryPolicy(**kwargs)
    assert RetryPolicy().budget_s == 5 + 10 + 20 + 40          # 5 attempts, 5 s doubling
    assert RetryPolicy(reconnect_attempts=1).budget_s == 0.0


def test_a_garbled_reply_is_retried_and_reported(faults):
    t = TranscriptTransport([("LEVEL?", "8#,q;"), ("LEVEL?", "80.5,1;")], name="ppms")
    assert PPMSDriver(t, retry=RetryPolicy()).get_level() == (80.5, "<1h")
    t.assert_done()
    ((kind, message, fields),) = faults
    assert kind == "retry" and fields["reason"] == "garbled reply" and fields["command"] == "LEVEL?"
    assert "PPMS: garbled reply to 'LEVEL?'; retry 1/2" == message


def test_retries_are_bounded_and_without_a_policy_there_are_none():
    t = TranscriptTransport([("LEVEL?", "x;"), ("LEVEL?", "y;")])
    with pytest.raises(GarbledReply, match="unexpected reply") as err:
        PPMSDriver(t, retry=RetryPolicy(retries=1)).get_level()
    assert err.value.reply == "y;" and t.sent == ["LEVEL?", "LEVEL?"]
    t = TranscriptTransport([("LEVEL?", "x;")])
    with pytest.raises(GarbledReply):
        PPMSDriver(t).get_level()
    t.assert_done()


def test_refusals_and_bad_arguments_are_not_retried(faults):
    t = TranscriptTransport([("LEVEL?", "ERROR;")])
    drv = PPMSDriver(t, retry=RetryPolicy())
    with pytest.raises(InstrumentError, match="refused") as err:
        drv.get_level()
    assert not isinstance(err.value, GarbledReply)
    with pytest.raises(ValueError, match="temperature_K=1000"):
        drv.set_temperature(1000.0, 10.0, "fast_settle")
    t.assert_done()
    assert faults == []


def test_a_set_command_is_sent_again_with_its_read_back():
    t = TranscriptTransport([("FIELD 1000.00,100.0,0,1", None), ("FIELD?", "10!0,x;"),
                             ("FIELD 1000.00,100.0,0,1", None), ("FIELD?", "1000.00,100.0,0,1;")])
    PPMSDriver(t, retry=RetryPolicy()).set_field(1000.0, 100.0, "linear", "driven")
    t.assert_done()


def test_an_operation_of_several_calls_is_retried_once_as_a_whole():
    # getdat = GETDAT? + a check of the echoed mask: the whole operation is the retried unit
    t = TranscriptTransport([("GETDAT? 1", "2,100.0,1;"), ("GETDAT? 1", "1,100.0,17;")])
    assert PPMSDriver(t, retry=RetryPolicy(retries=1)).get_status().temperature == "stable"
    t = TranscriptTransport([("GETDAT? 1", "junk;"), ("GETDAT? 1", "junk;")])
    with pytest.raises(GarbledReply):
        PPMSDriver(t, retry=RetryPolicy(retries=1)).get_status()
    assert len(t.sent) == 2                      # 2 tries, not 2 x 2 (inner calls run once)


# -- connections: the simulators' servers ----------------------------------------------------------
@pytest.fixture
def lab(tmp_path, monkeypatch):
    monkeypatch.setattr(_client_base, "setup_logging", lambda *a, **k: None)
    monkeypatch.chdir(tmp_path)
    with SimulatedLab(speed=1000.0, seed=5, sample=StandIn(), mass_mg=10.0,
                      data_dir=tmp_path / "data") as lab:
        yield lab


def ppms(lab, **policy):
    transport = VisaTransport(lab.endpoints["ppms"]["resource"], name="ppms", timeout_s=0.3)
    return PPMSDriver(transport, retry=RetryPolicy(**policy) if policy else None)


def test_a_timeout_reopens_the_connection_before_the_retry(lab, faults):
    wire_of(lab.ppms).arm("timeout", 1)
    drv = ppms(lab, retries=1)
    gen = drv.transport.generation
    assert drv.get_level()[0] > 0
    assert drv.transport.generation == gen + 1
    assert [f["reason"] for k, _, f in faults if k == "retry"] == ["timeout"]
    wire_of(lab.ppms).arm("timeout", 1)
    with pytest.raises(InstrumentTimeout):
        ppms(lab).get_level()


def test_backoff_schedule_then_give_up_then_one_attempt_per_call(lab, faults):
    wire, policy = wire_of(lab.ppms), dict(retries=0, reconnect_attempts=3, reconnect_backoff_s=0.1)
    drv = ppms(lab, **policy)
    wire.begin_outage()
    t0 = time.monotonic()
    with pytest.raises(ConnectionLost, match=r"PPMS: connection lost and not restored after 3 "
                                             r"reconnection attempts"):
        drv.get_level()
    assert 0.3 <= time.monotonic() - t0 < 1.5                  # waits 0.1 + 0.2 s
    assert kinds(faults) == ["connection_lost", "reconnect_failed", "reconnect_failed", "gave_up"]
    assert [f["delay_s"] for k, _, f in faults if k == "reconnect_failed"] == [0.1, 0.2]
    assert drv.retry.gave_up(drv.transport)
    t0 = time.monotonic()
    with pytest.raises(ConnectionLost):                        # given up: one attempt, no wait
        drv.get_level()
    assert time.monotonic() - t0 < 0.1
    wire.end_outage()
    assert drv.get_level()[0] > 0
    assert kinds(faults)[-1] == "reconnected" and not drv.retry.gave_up(drv.transport)


def test_an_outage_shorter_than_the_budget_is_ridden_out_by_every_thread(lab, faults):
    wire = wire_of(lab.ppms)
    drv = ppms(lab, retries=0, reconnect_attempts=5, reconnect_backoff_s=0.1)   # 1.5 s budget
    wire.begin_outage()
    threading.Timer(0.25, wire.end_outage).start()
    results, errors = [], []

    def read():
        try:
            results.append(drv.get_level()[0])
        except Exception as exc:  # noqa: BLE001 - checked below
            errors.append(exc)
    threads = [threading.Thread(target=read) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(5.0)
    assert errors == [] and len(results) == 3
    # one outage, one schedule: the threads did not each start their own
    assert kinds(faults).count("connection_lost") == 1 and kinds(faults).count("reconnected") == 1
    (restored,) = [f for k, _, f in faults if k == "reconnected"]
    assert restored["attempts"] >= 2 and 0.2 <= restored["outage_s"] < 1.5


def test_no_backoff_mode_never_sleeps(lab):
    wire = wire_of(lab.ppms)
    drv = ppms(lab, retries=0, reconnect_attempts=3, reconnect_backoff_s=5.0)
    wire.begin_outage()
    try:
        with drv.retry.no_backoff():
            t0 = time.monotonic()
            with pytest.raises(ConnectionLost):       # one immediate attempt, then the next is due
                drv.get_level()                       # only in 5 s: raise now
            with pytest.raises(ConnectionLost, match=r"reconnecting: next attempt in \d"):
                drv.get_level()
            assert time.monotonic() - t0 < 1.0
    finally:
        wire.end_outage()


def test_visa_refused_connection_is_connection_lost_at_open():
    with socket.socket() as s:                      # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionLost, match="cannot open .*connection refused"):
        VisaTransport(f"TCPIP0::127.0.0.1::{port}::SOCKET", name="ppms", timeout_s=0.3)


def test_visa_8_bit_reply_is_a_garbled_reply_and_retried(faults):
    replies = [b"\xff\xfe8,1;\n", b"80.0,1;\n"]        # a line that flipped the top bit, then OK
    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = server.accept()
        with conn:
            for reply in replies:
                conn.recv(64)
                conn.sendall(reply)
    threading.Thread(target=serve, daemon=True).start()
    transport = VisaTransport(f"TCPIP0::127.0.0.1::{server.getsockname()[1]}::SOCKET",
                              name="ppms", timeout_s=1.0)
    try:
        assert PPMSDriver(transport, retry=RetryPolicy()).get_level() == (80.0, "<1h")
        ((kind, message, fields),) = faults
        assert "reply is not ASCII" in fields["error"]
    finally:
        transport.close()
        server.close()


def test_multivu_recovers_after_a_timeout(lab):
    ep = lab.endpoints["mpms3"]
    drv = MPMS3Driver(MultiVuTransport(ep["host"], ep["port"], timeout_s=0.5))
    try:
        wire_of(lab.mpms3).arm("timeout", 1)
        with pytest.raises(InstrumentTimeout):
            drv.get_temperature()
        gen = drv.transport.generation
        # a fresh worker and client: the one blocked in MultiPyVu's reply wait is abandoned
        assert drv.get_temperature()[1] == "Stable"
        assert drv.transport.generation == gen + 1
    finally:
        drv.close()


def test_multivu_drop_mid_request_is_connection_lost(lab):
    ep = lab.endpoints["mpms3"]
    drv = MPMS3Driver(MultiVuTransport(ep["host"], ep["port"], timeout_s=5.0))
    wire = wire_of(lab.mpms3)
    try:
        drv.set_temperature(200.0, 1.0, "fast_settle")      # 100 min: WAITFOR runs ~6 s wall
        threading.Timer(0.3, wire.begin_outage).start()
        with pytest.raises(ConnectionLost):                 # not a reply "Close client"
            drv.wait_for(0, 0, 1)
    finally:
        wire.end_outage()
        drv.close()
