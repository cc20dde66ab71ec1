"""Fault scripts and the fault injector against the simulators' own state, on the virtual clock
(no network except the small wire-fault checks on a real GPIB line server)."""

from __future__ import annotations

import socket
import time

import pytest

from polling import wait_for
from spinlight.simulators.clock import VirtualClock
from spinlight.simulators.dynamics import LimitError
from spinlight.simulators.faults import FaultInjector, FaultScript
from spinlight.simulators.gpib_socket import GpibSocketServer
from spinlight.simulators.mpms3 import MPMS3Simulator
from spinlight.simulators.ppms import PPMSSimulator
from spinlight.simulators.wire_faults import garble

T0 = 1_700_000_000.0


class Sample:
    name = "stand-in"
    molar_mass_g_per_mol = 500.0

    def measure_vsm(self, T_K, H_Oe, mass_mg, rng):
        return 1e-6, 1e-9


@pytest.fixture
def clock():
    c = VirtualClock(speed=2000.0, start_unix=T0, freeze_when_idle=True)
    yield c
    c.stop()


@pytest.fixture
def ppms(clock, tmp_path):
    sim = PPMSSimulator(clock, Sample(), mass_mg=10.0, data_dir=tmp_path, seed=3)
    yield sim
    sim.stop()


@pytest.fixture
def mpms3(clock, tmp_path):
    sim = MPMS3Simulator(clock, Sample(), mass_mg=10.0, data_dir=tmp_path, seed=3)
    yield sim
    sim.stop()



def nibble(word: int, i: int) -> int:
    return word >> (4 * i) & 0xF


# -- scripts -----------------------------------------------------------------------------------
def test_script_from_dicts_fills_defaults_and_round_trips():
    items = [{"kind": "helium_low", "target": "ppms", "at_s": 60, "duration_s": 600,
              "params": {"percent": 5}},
             {"kind": "garbled", "target": "mpms3", "rate_per_h": 2.0},
             {"kind": "quench", "target": "ppms", "at_s": 0, "params": {"state": "current_error"}}]
    script = FaultScript.from_dicts(items)
    assert len(script) == 3
    assert script.faults[0].params == {"percent": 5.0, "refill_percent": 80.0}
    assert script.faults[1].params == {"count": 1} and script.faults[1].at_s is None
    assert FaultScript.from_dicts(script.to_dicts()) == script
    built = (FaultScript().at("helium_low", 60, target="ppms", duration_s=600, percent=5)
             .poisson("garbled", 2.0, target="mpms3")
             .at("quench", 0, target="ppms", state="current_error"))
    assert built == script


@pytest.mark.parametrize("item, words", [
    ({"kind": "melt", "target": "ppms", "at_s": 1}, ["fault #0: kind", "'melt'", "helium_low"]),
    ({"kind": "quench", "target": "ppms", "at_s": 1, "when": 3}, ["key", "'when'", "rate_per_h"]),
    ({"target": "ppms", "at_s": 1}, ["kind", "required"]),
    ({"kind": "helium_low", "target": "ppms", "at_s": 1, "duration_s": 10},
     ["percent", "None", "required for helium_low"]),
    ({"kind": "helium_low", "target": "ppms", "at_s": 1, "duration_s": 10,
      "params": {"percent": 130}}, ["percent", "130", "0..100"]),
    ({"kind": "quench", "target": "ppms", "at_s": 1, "duration_s": 5},
     ["duration_s", "5", "0 for quench"]),
    ({"kind": "disconnect", "target": "ppms", "at_s": 1}, ["duration_s", "> 0 s"]),
    ({"kind": "quench", "target": "ppms", "at_s": 1, "rate_per_h": 1},
     ["at_s/rate_per_h", "exactly one"]),
    ({"kind": "timeout", "target": "ppms", "at_s": -1}, ["at_s", "-1", "0..inf s"]),
    ({"kind": "garbled", "target": "ppms", "at_s": 1, "params": {"count": 1.5}},
     ["count", "1.5", "whole number"]),
    ({"kind": "garbled", "target": "ppms", "at_s": 1, "params": {"bytes": 3}},
     ["garbled param", "'bytes'", "count"]),
    ({"kind": "quench", "target": "ppms", "at_s": 1, "params": {"state": "boom"}},
     ["state", "'boom'", "current_error"]),
])
def test_script_errors_name_key_value_and_allowed(item, words):
    with pytest.raises(LimitError) as exc:
        FaultScript.from_dicts([item])
    for w in words:
        assert w in str(exc.value)


def test_injector_checks_targets(clock, ppms, mpms3):
    targets = {"ppms": ppms, "mpms3": mpms3}
    with pytest.raises(LimitError, match=r"helium_low\).*'mpms3'.*\['ppms'\]"):
        FaultInjector(clock, targets, FaultScript().at("helium_low", 1, target="mpms3",
                                                       duration_s=5, percent=3))
    with pytest.raises(LimitError, match=r"target.*'dewar'.*\['mpms3', 'ppms'\]"):
        FaultInjector(clock, targets, FaultScript().at("quench", 1, target="dewar"))
    # Wire faults need a running server.
    with pytest.raises(LimitError, match=r"garbled\).*'ppms'.*running server"):
        FaultInjector(clock, targets, FaultScript().at("garbled", 1, target="ppms"))
    with pytest.raises(LimitError, match=r"kind.*'helium_low'.*on this instrument"):
        mpms3.inject_fault("helium_low", duration_s=5, percent=3)


def test_poisson_arrivals_are_seeded_reproducible_and_have_the_rate(clock, ppms):
    script = FaultScript().poisson("quench", 2.0, target="ppms") \
        .poisson("temperature_excursion", 0.5, target="ppms", duration_s=60, delta_K=1.0)

    def planned(seed):
        inj = FaultInjector(clock, {"ppms": ppms}, script, seed, horizon_h=100.0, start=False)
        out = inj.planned
        inj.stop()
        return out

    a, b, c = planned(5), planned(5), planned(6)
    assert a == b and a != c
    quenches = [p[2] for p in a if p[0] == "quench"]
    # 2/h over 100 h: 200 arrivals expected, Poisson sigma 14.
    assert 160 < len(quenches) < 240 and all(0 <= t <= 360000 for t in quenches)
    assert quenches == sorted(quenches)
    assert 25 <= sum(p[0] == "temperature_excursion" for p in a) <= 75


# -- physical faults on the simulators' state ----------------------------------------------------
def test_pending_fault_never_runs_the_clock_and_active_one_runs_it_to_its_end(clock, ppms):
    inj = FaultInjector(clock, {"ppms": ppms}, FaultScript()
                        .at("helium_low", 0, target="ppms", duration_s=120, percent=4,
                            refill_percent=70)
                        .at("quench", 500, target="ppms"))
    try:
        # helium_low is due at once: in force, it keeps instrument time running to the refill.
        assert wait_for(lambda: clock.now() == T0 + 120.0)
        time.sleep(0.05)
        assert clock.now() == T0 + 120.0          # then frozen: the quench at 500 s waits
        assert [(h.kind, h.phase, h.elapsed_s) for h in inj.history] == [
            ("helium_low", "start", 0.0), ("helium_low", "end", 120.0)]
        assert ppms.helium_percent(T0 + 60.0) == pytest.approx(4.0 - 1.0 / 60, abs=1e-9)   # 1 %/h
        assert ppms.handle("LEVEL?", []) == "70,2"
        assert nibble(ppms.status_word(T0 + 499.0), 1) == 1
        assert nibble(ppms.status_word(T0 + 500.0), 1) == 8     # scheduled, exact in time
    finally:
        inj.stop()


def test_temperature_excursion_and_quench_on_the_ppms(clock, ppms):
    ppms.handle("FIELD", ["5000", "100", "0", "1"])               # driven, 50 s ramp
    inj = FaultInjector(clock, {"ppms": ppms}, FaultScript()
                        .at("temperature_excursion", 100, target="ppms", duration_s=50,
                            delta_K=-4.0)
                        .at("quench", 200, target="ppms"))
    try:
        clock.sleep(160.0)                    # a waiter runs the clock; the faults fire on the way
        assert [(h.kind, h.phase, h.elapsed_s) for h in inj.history] == [
            ("temperature_excursion", "start", 100.0), ("temperature_excursion", "end", 150.0)]
        w = ppms.status_word(T0 + 120.0)
        assert (nibble(w, 0), nibble(w, 1)) == (6, 4)               # outside tolerance
        assert ppms.temperature.value(T0 + 120.0) == pytest.approx(296.0)
        assert ppms.temperature.value(T0 + 150.0) == pytest.approx(300.0)
        assert nibble(ppms.status_word(T0 + 150.0), 0) == 1
        assert ppms.magnet.value(T0 + 199.0) == pytest.approx(5000.0)
        # The quench is latched: nothing keeps the clock running, the state stays.
        assert nibble(ppms.status_word(T0 + 1e6), 1) == 8
        assert ppms.magnet.value(T0 + 1e6) == 0.0
    finally:
        inj.stop()


def test_mpms3_quench_latches_until_the_next_field_command(clock, mpms3):
    mpms3.handle("FIELD", "1000.0,100.0,0,1")                      # 10 s ramp
    t_q = mpms3.inject_fault("quench", at=T0 + 5.0)
    clock.sleep(12.0)
    assert mpms3.magnet.value(T0 + 4.9) == pytest.approx(490.0)   # the ramp, until the quench
    assert mpms3.magnet.state_text(T0 + 5.0) == "Quenching"
    value, unit, state = mpms3.handle("FIELD?", "").split(",")
    assert abs(float(value)) < 0.2 and state == "Quenching"
    # A field wait cannot succeed; with a timeout MultiVu reports 258 at the deadline.
    t = clock.now()
    assert mpms3.handle("WAITFOR", "0,30,2") == "WAITFOR Command Received,258"
    assert clock.now() == pytest.approx(t + 30.0, abs=0.5)
    mpms3.handle("FIELD", "200.0,100.0,0,1")                       # the client recovers
    t = mpms3.magnet.last_command_time()
    assert mpms3.magnet.value(t) == pytest.approx(0.0, abs=1e-9)   # ramps from 0 Oe
    assert mpms3.handle("WAITFOR", "0,60,2") == "WAITFOR Command Received,0"
    assert mpms3.handle("FIELD?", "").endswith(",Oe,Holding (driven)")
    assert t_q == T0 + 5.0
    t_e = mpms3.inject_fault("quench", state="current_error")
    assert mpms3.magnet.state_text(t_e) == "Current Error"


def test_mpms3_waitfor_temperature_waits_out_an_excursion(clock, mpms3):
    t0 = mpms3.inject_fault("temperature_excursion", at=T0 + 10.0, duration_s=40.0, delta_K=2.5)
    assert mpms3.handle("TEMP?", "").endswith(",K,Stable")
    mpms3.handle("WAITFOR", "15,0,0")                              # 15 s: inside the excursion
    value, unit, state = mpms3.handle("TEMP?", "").split(",")
    assert state == "Chasing" and float(value) == pytest.approx(302.5, abs=0.3)
    assert mpms3.handle("WAITFOR", "0,0,1") == "WAITFOR Command Received,0"
    assert clock.now() == pytest.approx(t0 + 40.0, abs=1e-6)       # woke at the excursion's end
    assert mpms3.handle("TEMP?", "").endswith(",K,Stable")


# -- wire faults on a real line server ------------------------------------------------------------
def test_garble_keeps_terminators_and_length_and_is_seeded():
    import random
    data = b"7,1700000000.000,4369,300.0001;\n"
    g1, g2 = garble(data, random.Random("s")), garble(data, random.Random("s"))
    assert g1 == g2 != data and len(g1) == len(data) and g1.endswith(b";\n")
    assert all(32 <= b < 127 for b in g1[:-2]) and b";" not in g1[:-2]
    assert garble("1.0,K,Stable", random.Random(1)) != "1.0,K,Stable"


def test_line_server_garbles_withholds_and_drops_on_request():
    server = GpibSocketServer(lambda cmd, args: f"ok {cmd}" if cmd.endswith("?") else None)
    host, port = server.start()
    try:
        s = socket.create_connection((host, port), timeout=0.3)
        server.faults.arm("garbled", 1, seed="x")
        server.faults.arm("timeout", 1)
        s.sendall(b"SET 1\nA?\n")                     # the write is not a reply: not counted
        first = s.recv(100)
        assert first.endswith(b";\n") and first != b"ok A?;\n" and len(first) == len(b"ok A?;\n")
        s.sendall(b"B?\n")
        with pytest.raises(socket.timeout):
            s.recv(100)                               # withheld
        s.sendall(b"C?\n")
        assert s.recv(100) == b"ok C?;\n"
        server.faults.begin_outage()
        server.faults.begin_outage()                  # nested: needs two ends
        assert s.recv(100) == b""                     # our connection was closed
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, port), timeout=0.3)
        server.faults.end_outage()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, port), timeout=0.3)
        server.faults.end_outage()
        s2 = socket.create_connection((host, port), timeout=0.3)
        s2.sendall(b"D?\n")
        assert s2.recv(100) == b"ok D?;\n"
        assert server.faults.counts == {"garble": 1, "withhold": 1, "drop": 0}
        s2.close()
    finally:
        server.stop()
