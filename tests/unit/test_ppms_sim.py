"""The simulated PPMS: GETDAT? bit order and status word, magnet persistent-switch sequence on
the virtual clock, helium level, errors, extensions, and the GPIB-over-TCP framing."""

import math
import re
import socket
import threading
import time

import pytest

from spinlight.simulators.clock import VirtualClock
from spinlight.simulators.ppms import PPMSCommandError, PPMSSimulator

T0 = 1_700_000_000.0


class Sample:
    name = "stand-in"
    molar_mass_g_per_mol = 500.0


@pytest.fixture
def sim(tmp_path):
    clock = VirtualClock(speed=100.0, start_unix=T0, freeze_when_idle=True)
    s = PPMSSimulator(clock, Sample(), mass_mg=10.0, data_dir=tmp_path, seed=3)
    yield s
    clock.stop()
    s.stop()


def nibble(word: int, i: int) -> int:
    return word >> (4 * i) & 0xF


def test_getdat_bit_order_status_word_and_format(sim):
    assert sim.clock.now() == T0            # idle: the frozen clock stamps deterministically
    fields = sim.handle("GETDAT?", ["15"]).split(",")
    assert fields[:3] == ["15", f"{T0:.3f}", str(0x1111)]   # all four subsystems at rest
    T, H, pos = (float(v) for v in fields[3:])
    assert abs(T - 300.0) < 0.5 and abs(H) < 1.0 and pos == 0.0
    for v in fields[3:]:                     # %.7g: at most 7 significant digits
        assert len(re.sub(r"[^0-9]|e.*$", "", v).lstrip("0")) <= 7
    two = sim.handle("GETDAT?", ["6"]).split(",")        # T (bit 1) before H (bit 2)
    assert two[0] == "6" and len(two) == 4 and abs(float(two[2]) - 300) < 0.5
    assert abs(float(two[3])) < 1.0
    assert sim.handle("GETDAT?", ["4"]).split(",")[0] == "4"
    p = sim.handle("GETDAT?", [str(1 + 2 ** 19)]).split(",")
    assert len(p) == 4 and float(p[3]) == 5.0          # purged and sealed: a few Torr
    assert re.fullmatch(r"ERROR: .*bit\(s\) \[4\].*", sim.handle("GETDAT?", ["17"]))
    assert sim.handle("GETDAT?", ["0"]).startswith("ERROR: ")
    # Each nibble moves on its own: T, magnet, chamber, position.
    sim.handle("TEMP", ["290", "20", "0"])
    sim.handle("CHAMBER", ["2"])
    sim.handle("MOVE", ["90", "0", "0"])
    w = sim.status_word(T0 + 1.0)
    assert [nibble(w, i) for i in range(4)] == [2, 1, 5, 5]
    w = sim.status_word(T0 + 35.0)           # ramp over (30 s), settling
    assert [nibble(w, i) for i in range(4)] == [5, 1, 5, 1]
    w = sim.status_word(T0 + 50.0)
    assert [nibble(w, i) for i in range(4)] == [1, 1, 2, 1]
    assert sim.position.value(sim.position.t0 + 3.75) == pytest.approx(45.0)   # 12 deg/s


def magnet_codes(sim, t0, times):
    return [nibble(sim.status_word(t0 + dt), 1) for dt in times]


def test_persistent_switch_sequences_on_explicit_times(sim):
    t0 = sim.clock.now()
    sim.handle("FIELD", ["1000", "100", "0", "0"])   # persistent: warm, charge, cool
    assert magnet_codes(sim, t0, [0.5, 14.9, 15.1, 24.9, 25.1, 39.9, 40.1]) == \
        [2, 2, 6, 6, 3, 3, 1]
    assert sim.magnet.value(t0 + 20.0) == pytest.approx(500.0)
    assert sim.clock.wait_until(lambda: sim.clock.now() >= t0 + 41 or t0 + 41, 100)
    t1 = sim.clock.now()
    sim.handle("FIELD", ["1000", "100", "0", "1"])   # to driven: warm the switch, approach
    assert magnet_codes(sim, t1, [0.5, 15.5, 17.1]) == [2, 5, 4]
    assert sim.clock.wait_until(lambda: sim.clock.now() >= t1 + 18 or t1 + 18, 100)
    t2 = sim.clock.now()
    sim.handle("FIELD", ["0", "100", "0", "0"])      # driven -> persistent: switch is warm
    assert magnet_codes(sim, t2, [0.5, 9.9, 10.1, 24.9, 25.1]) == [7, 7, 3, 3, 1]
    assert sim.handle("FIELD?", []) == "0,100,0,0"


def test_persistent_sequence_over_getdat_on_the_running_clock(sim):
    t0 = sim.clock.now()
    sim.handle("FIELD", ["1000", "100", "0", "0"])
    end = sim.magnet.settled_at(math.inf)
    assert end == pytest.approx(t0 + 40.0)

    def expected(dt):
        return 2 if dt < 15 else 6 if dt < 25 else 3 if dt < 40 else 1

    seen = []
    while True:
        mask, ts, word, field = sim.handle("GETDAT?", ["5"]).split(",")
        dt, code = float(ts) - t0, nibble(int(word), 1)
        if min(abs(dt - b) for b in (15, 25, 40)) > 0.01:     # %.3f stamps at a boundary
            assert code == expected(dt), (dt, code)
        seen.append(code)
        if code == 1:
            break
        sim.clock.sleep(0.5)
    assert [c for i, c in enumerate(seen) if i == 0 or c != seen[i - 1]] == [2, 6, 3, 1]
    assert float(field) == pytest.approx(1000.0, abs=0.5)
    # The clock ran for the move and now stands still (helium falling keeps nothing busy).
    now = sim.clock.now()
    time.sleep(0.05)
    assert sim.clock.now() == now and end <= now <= end + 0.5


def test_clock_freezes_exactly_where_a_temperature_approach_ends(sim):
    sim.handle("TEMP", ["290", "20", "0"])
    settled = sim.temperature.settled_at(math.inf)
    assert sim.clock.wait_until(lambda: sim.clock.now() >= settled or settled, 100)
    time.sleep(0.02)
    assert sim.clock.now() == settled
    assert sim.handle("TEMP?", []) == "290,20,0"
    assert nibble(int(sim.handle("GETDAT?", ["1"]).split(",")[2]), 0) == 1


def test_helium_falls_faster_while_driven_and_refills(sim):
    t0 = sim.clock.now()
    assert sim.helium_percent(t0) == 80.0
    assert sim.helium_percent(t0 + 3600) == pytest.approx(79.0)          # 1 %/h
    sim.handle("FIELD", ["1000", "100", "0", "1"])                      # driven: +2 %/h
    assert sim.helium_percent(t0 + 3600) == pytest.approx(77.0)
    sim.handle("FIELD", ["1000", "100", "0", "0"])  # persistent: leads on until switch cold
    t1 = sim.magnet.last_command_time()    # still warming at 0 Oe: ramp 10 s, cool 15 s
    assert 0 <= t1 - t0 < 15 and sim.magnet.settled_at(math.inf) == t1 + 25
    assert sim.helium_percent(t0 + 3600) == pytest.approx(80 - 1 - 2 * (t1 + 25 - t0) / 3600)
    level, age = sim.handle("LEVEL?", []).split(",")                   # continuous meter
    assert age == "2" and 79.99 < float(level) < 80.0     # the switch keeps the clock running
    sim.refill(95.5)
    level, age = sim.handle("LEVEL?", []).split(",")
    assert age == "2" and 95.49 < float(level) <= 95.5
    with pytest.raises(ValueError, match=r"helium level = 120 % is outside .*0-100"):
        sim.refill(120)


def test_level_meter_reports_falling_level_and_reading_age(tmp_path):
    clock = VirtualClock(speed=36000.0, start_unix=T0)     # an hour in 0.1 s, always running
    s = PPMSSimulator(clock, Sample(), mass_mg=1.0, data_dir=tmp_path,
                      helium_percent=60.0, helium_boiloff_percent_per_h=4.0)
    try:
        time.sleep(0.05)
        level, age = s.handle("LEVEL?", []).split(",")
        assert age == "2" and float(level) == pytest.approx(60 - 4 * (clock.now() - T0) / 3600,
                                                            abs=0.05)
        assert float(level) < 59.9
        s.handle("LEVELON", ["0"])              # one reading, then its age is reported
        first = s.handle("LEVEL?", [])
        time.sleep(0.02)
        assert s.handle("LEVEL?", []) == first and first.endswith(",1")
        time.sleep(0.12)                        # > 1 h of instrument time
        assert s.handle("LEVEL?", []) == first[:-1] + "0"
        s.handle("LEVELON", ["1"])
        assert s.handle("LEVEL?", []).endswith(",2")
        s.handle("LEVELON", ["7"])
        assert "level meter mode = 7" in s.handle("SPINLIGHT_ERR?", [])
    finally:
        clock.stop()
        s.stop()


def test_refused_settings_change_nothing_and_are_queued(sim, tmp_path):
    assert sim.handle("TEMP", ["500", "10", "0"]) is None          # a write gets no reply
    assert sim.temperature.setpoint_K == 300.0
    assert sim.handle("FIELD", ["1000", "300", "0", "0"]) is None
    assert sim.handle("FIELD", ["95000", "100", "0", "0"]) is None
    assert sim.handle("TEMP", ["10"]) is None
    assert sim.handle("CHAMBER", ["5"]) is None                     # no high vacuum here
    assert sim.handle("FOO", ["1"]) is None
    assert sim.magnet.setpoint_Oe == 0.0 and sim.chamber.mode == 1
    errors = [sim.handle("SPINLIGHT_ERR?", []) for _ in range(7)]
    assert errors[0].startswith("6,TEMP 500,10,0: ") and "1.9-350" in errors[0]
    assert "field rate (Oe/s) = 300.0" in errors[1] and "10.5-196" in errors[1]
    assert "-90000 to 90000 Oe" in errors[2]
    assert "needs 3 arguments" in errors[3]
    assert "chamber mode = 5" in errors[4]
    assert errors[5] == "1,FOO 1: unknown command 'FOO'" and errors[6] == "0,no error"
    assert sim.handle("TEMP?", ["1"]).startswith("ERROR: TEMP? 1: takes no arguments")
    assert sim.handle("GETDAT?", ["abc"]).startswith("ERROR: GETDAT? abc: argument 'abc'")
    assert sim.handle("BOGUS?", []) == "ERROR: BOGUS?: unknown command 'BOGUS?'"
    clock = VirtualClock(speed=100.0, start_unix=T0, freeze_when_idle=True)
    hv = PPMSSimulator(clock, Sample(), mass_mg=1.0, data_dir=tmp_path, high_vacuum=True)
    hv.handle("CHAMBER", ["5"])
    assert hv.handle("CHAMBER?", []) == "5" and not hv.errors


def test_identification_config_and_clock_queries(sim):
    assert sim.handle("*IDN?", []).startswith("QUANTUM DESIGN,PPMS MODEL 6000")
    assert sim.handle("MAGCNF?", []) == "90000,1500,42,1.8,1.2,15,15"
    assert re.fullmatch(r"[^,]+,[^,]+", sim.handle("REV?", []))
    tm = time.localtime(T0)
    assert sim.handle("DATE?", []) == f"{tm.tm_mon},{tm.tm_mday},{tm.tm_year % 100:02d}"
    assert sim.handle("TIME?", []) == f"{tm.tm_hour},{tm.tm_min},{tm.tm_sec}"
    assert sim.handle("SPINLIGHT_CLOCK?", []) == f"{T0:.3f},100"
    assert sim.handle("MOVE?", []) == "0,0,0"
    sim.handle("MOVE", ["30", "2", "0"])                   # redefine: no motion
    assert sim.handle("MOVE?", []) == "30,2,0" and sim.position.state_code(T0) == 1


def test_extensions_datafile_and_stop_hooks(sim):
    sim.extensions["ACMS_PING?"] = lambda args: "pong," + ",".join(args)

    def refuse(args):
        raise PPMSCommandError("drive amplitude = 30 Oe is outside 0.002-17 Oe")
    sim.extensions["ACMS_MEASURE"] = refuse
    sim.extensions["ACMS_MEASURE?"] = refuse
    assert sim.handle("ACMS_PING?", ["1", "2"]) == "pong,1,2"
    assert sim.handle("ACMS_MEASURE?", ["30"]) == \
        "ERROR: ACMS_MEASURE? 30: drive amplitude = 30 Oe is outside 0.002-17 Oe"
    assert sim.handle("ACMS_MEASURE", ["30"]) is None and len(sim.errors) == 2
    assert not sim.datafile.exists()                       # created only when opened
    assert sim.handle("SPINLIGHT_DATAFILE?", []) == str(sim.datafile)
    w = sim.open_datafile(fsync=False)
    assert sim.open_datafile() is w and sim.datafile.exists()
    header = sim.datafile.read_text()
    assert "BYAPP,ACMS II" in header and "INFO,10,SAMPLE_MASS" in header
    hooks = []
    sim.stop_hooks.append(lambda: hooks.append("stopped"))
    sim.stop()
    assert hooks == ["stopped"] and w.closed


class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=2.0)
        self.buf = b""

    def send(self, data: bytes):
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            assert chunk, "server closed the connection"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def silent(self, wait_s=0.1) -> bool:
        self.sock.settimeout(wait_s)
        try:
            return not self.sock.recv(4096)
        except socket.timeout:
            return True
        finally:
            self.sock.settimeout(2.0)


def test_framing_over_tcp_and_clean_stop(sim):
    host, port = sim.start_server()
    c = Client(port)
    c.send(b"TEMP? ;getdat? 2\r\nLEVEL?\n")                 # three commands, one packet
    assert c.line() == b"300,1,0;\n"
    assert re.fullmatch(rb"2,1700000000\.000,[0-9.]+;\n", c.line())
    assert c.line() == b"80,2;\n"
    c.send(b"temp 10 5 0\ntemp?\n")                          # spaces, lower case
    assert c.line() == b"10,5,0;\n"
    c.send(b"FIE")
    time.sleep(0.05)
    c.send(b"LD 500, 100 0,1\r\nFIELD?")                     # split, mixed separators
    assert c.silent()                                         # no terminator yet
    c.send(b";CHAMBER 2;CHAMBER?;")
    assert c.line() == b"500,100,0,1;\n" and c.line() == b"2;\n"
    c.send(b"FOO 1\nBAR?\n")
    assert c.line() == b"ERROR: BAR?: unknown command 'BAR?';\n"
    assert c.silent()
    sim.extensions["ECHO?"] = lambda args: "a;b\nc"
    c.send(b"ECHO?\n")                                        # one reply stays one line
    assert c.line() == b"a;b c;\n"
    c2 = Client(port)                                         # a second session works too
    c2.send(b"*IDN?\n")
    assert c2.line().startswith(b"QUANTUM DESIGN")
    sim.stop()
    assert not any(t.name.startswith("ppms-") and t.is_alive() for t in threading.enumerate())
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5)
