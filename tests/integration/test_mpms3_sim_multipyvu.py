"""The simulated MPMS3 against QD's real MultiPyVu 3.8.0 client, over loopback.

MultiPyVu's client reconfigures root logging and writes ``QdMultiVu.log`` in the working
directory when it opens; both are neutralised (conftest's ``quiet_multipyvu``).
"""

from __future__ import annotations

import json
import re
import signal
import socket
import time
import uuid

import numpy as np
import pytest

import MultiPyVu as mpv  # noqa: E402 - a pinned dependency: never skipped
from MultiPyVu.exceptions import MultiPyVuError  # noqa: E402

from processes import server  # noqa: E402
from spinlight.instruments.qd_dat import read_dat  # noqa: E402
from spinlight.simulators.lab import SimulatedLab  # noqa: E402
from spinlight.simulators.multivu_protocol import MessageReader, encode_message  # noqa: E402

SPEED = 1000.0
pytestmark = pytest.mark.usefixtures("quiet_multipyvu")   # see conftest.py


class CurieSample:
    """Stand-in for a preset: Curie law, C = 1.5 emu K/mol, molar mass 500 g/mol."""
    name = "curie-stand-in"
    molar_mass_g_per_mol = 500.0

    def moment_emu(self, T_K, H_Oe, mass_mg):
        return 1.5 * H_Oe / T_K * mass_mg * 1e-3 / self.molar_mass_g_per_mol

    def measure_vsm(self, T_K, H_Oe, mass_mg, rng):
        m = self.moment_emu(T_K, H_Oe, mass_mg)
        err = float(np.hypot(5e-9, 3e-4 * abs(m)))
        return m + err * rng.standard_normal(), err


def curie_lab(data_dir, seed: int = 7) -> SimulatedLab:
    return SimulatedLab(speed=SPEED, seed=seed, sample=CurieSample(), mass_mg=20.0,
                        data_dir=data_dir)


@pytest.fixture
def lab(tmp_path):
    with curie_lab(tmp_path / "data") as lab:
        yield lab


def client(lab) -> "mpv.Client":
    ep = lab.endpoints["mpms3"]
    return mpv.Client(ep["host"], ep["port"])


class RawClient:
    """Minimal hand-written MultiPyVu peer, to see the exact bytes and results."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5.0)
        self.reader = MessageReader()
        self.pending: list[dict] = []

    def recv(self, timeout_s: float = 5.0) -> dict | None:
        self.sock.settimeout(timeout_s)
        while not self.pending:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not data:
                return None
            self.pending.extend(self.reader.feed(data))
        return self.pending.pop(0)

    def request(self, action: str, query: str = "", confirm: bool = True) -> tuple[dict, dict]:
        req = {"id": str(uuid.uuid4()), "action": action, "query": query, "result": ""}
        self.sock.sendall(encode_message(req))
        confirmed, completed = self.recv(), self.recv(30.0)
        assert confirmed == {**req, "message_type": "confirmed"}
        if confirm and completed:
            self.sock.sendall(encode_message({**completed, "message_type": "confirmed"}))
        return confirmed, completed

    def close(self):
        self.sock.close()


def ext(c, action: str, query: str = "") -> str:
    """Send a simulator-extension action through the real client."""
    return c._query_server(action, query)["result"]


def wait_rows(path, predicate, timeout_s: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = [r for r in read_dat(path).rows if predicate(r)]
        if rows:
            return rows
        time.sleep(0.02)
    raise AssertionError(f"no matching row in {path} after {timeout_s} s")


# -- the real client ----------------------------------------------------------------------------
def test_real_client_temperature_field_chamber_waitfor(lab):
    with client(lab) as c:
        assert c.instrument_name == "MPMS3" and c.get_version() == "3.8.0"
        T, state = c.get_temperature()
        assert T == pytest.approx(300.0, abs=0.3) and state == "Stable"
        assert c.get_field()[1] == "Stable" and c.get_chamber() == "Purged and Sealed"
        assert c.get_temperature_setpoints() == (300.0, 1.0, "fast_settle")

        c.set_temperature(10.0, 20.0, c.temperature.approach_mode.fast_settle)
        T, state = c.get_temperature()
        assert state == "Tracking" and 10.0 < T < 300.0
        assert c.get_temperature_setpoints() == (10.0, 20.0, "fast_settle")
        assert c.is_steady(c.temperature.waitfor) is False
        assert c.wait_for(0, 0, c.temperature.waitfor) == c.wait_status.good
        T, state = c.get_temperature()
        assert T == pytest.approx(10.0, abs=0.05) and state == "Stable"

        c.set_field(5000.0, 50.0, c.field.approach_mode.linear)
        assert c.get_field()[1] == "Ramping"
        assert c.wait_for(1.0, 0, c.field.waitfor) == c.wait_status.good
        H, state = c.get_field()
        assert H == pytest.approx(5000.0, abs=1.0) and state == "Holding (driven)"

        c.set_chamber(c.chamber.mode.purge_seal)
        assert c.get_chamber() == "Performing Purge/Seal"
        assert c.wait_for(0, 0, c.chamber.waitfor) == c.wait_status.good
        assert c.get_chamber() == "Purged and Sealed"

        c.set_temperature(300.0, 10.0, c.temperature.approach_mode.no_overshoot)
        assert c.wait_for(0, 30, c.temperature.waitfor) == c.wait_status.timed_out
        assert c.get_temperature()[1] == "Tracking"


def test_second_client_is_rejected(lab):
    port = lab.endpoints["mpms3"]["port"]
    with client(lab) as c:
        raw = RawClient(port)
        _, done = raw.request("START")
        local = raw.sock.getsockname()
        assert done["result"] == (f"Connection attempt rejected from ('127.0.0.1', {local[1]}): "
                                  "another client is connected.")
        assert raw.recv(2.0) is None            # and the server hangs up
        raw.close()
        with pytest.raises(ConnectionRefusedError):
            client(lab).open()
        assert c.get_temperature()[1] == "Stable"  # the first client is unaffected
    with client(lab) as c2:                     # the slot is free again after CLOSE
        assert c2.get_temperature()[1] == "Stable"


@pytest.mark.parametrize("call,text", [
    (lambda c: c.set_temperature(500.0, 5.0, c.temperature.approach_mode.fast_settle),
     "Error when setting the TEMP 500.0,5.0,0: temperature set point (K) = 500.0 is outside"),
    (lambda c: c.set_temperature(1.0, 5.0, c.temperature.approach_mode.fast_settle),
     "1.8-400.0 K"),
    (lambda c: c.set_field(80000.0, 100.0, c.field.approach_mode.linear),
     "Error when setting the FIELD 80000.0,100.0,0,1: field set point (Oe)"),
    (lambda c: c.set_field(1000.0, 900.0, c.field.approach_mode.linear), "1-700 Oe/s"),
    (lambda c: c.set_field(1000.0, 10.0, c.field.approach_mode.linear,
                           c.field.driven_mode.persistent),
     "MPMS3 can only drive the magnet in driven mode."),
    (lambda c: c.get_field_setpoints(), "MPMS3 does not support getting field set points"),
])
def test_limits_and_unsupported_raise_multipyvu_error(lab, call, text):
    c = client(lab).open()
    try:
        with pytest.raises(MultiPyVuError) as e:
            call(c)               # the client closes its connection on this error
        assert str(e.value).startswith("MultiPyVuError: ") and text in str(e.value)
    finally:
        c.close_client() if c._message else None
    with client(lab) as c2:       # the instrument did not move
        assert c2.get_temperature() == (pytest.approx(300.0, abs=0.3), "Stable")


# -- the wire itself --------------------------------------------------------------------------
def test_wire_format_handshake_and_errors(lab):
    port = lab.endpoints["mpms3"]["port"]
    raw = RawClient(port)
    req = {"id": str(uuid.uuid4()), "action": "START", "query": "", "result": ""}
    raw.sock.sendall(encode_message(req))
    raw.sock.settimeout(5.0)
    data = b""
    while data.count(b'"message_type"') < 2:
        data += raw.sock.recv(65536)
    hlen = int.from_bytes(data[:2], "big")
    header = json.loads(data[2:2 + hlen])
    assert set(header) == {"byteorder", "message-type", "message-encoding", "message-length"}
    assert header["message-type"] == "text/json" and header["message-encoding"] == "utf-8"
    msgs = MessageReader().feed(data)
    assert [m["message_type"] for m in msgs] == ["confirmed", "completed"]
    local = raw.sock.getsockname()[1]
    assert msgs[1]["query"] == "3.8.0;mv=sim;s;t"
    assert msgs[1]["result"] == f"Connected to MPMS3 MultiVuServer at ('127.0.0.1', {local})"
    raw.sock.sendall(encode_message({**msgs[1], "message_type": "confirmed"}))

    assert re.fullmatch(r"\d+\.\d+,K,Stable", raw.request("TEMP?")[1]["result"])
    assert raw.request("CHAMBER?")[1]["result"] == "0.0,,Purged and Sealed"
    assert raw.request("TEMP_SETPOINTS?")[1]["result"] == "(300.0, 1.0, 0),K,Call was successful"
    assert raw.request("WAITFOR?", "3")[1]["result"] == "1,,Call was successful"
    assert raw.request("WAITFOR", "0,0,1")[1]["result"] == "WAITFOR Command Received,0"
    assert raw.request("CHAMBER", "9")[1]["result"].startswith(
        "MultiPyVuError: The selected mode, 9, is out of bounds.")
    assert raw.request("WAITFOR", "0,0,4")[1]["result"].startswith(
        "MultiPyVuError: wait_for() cannot wait on the position subsystem.")
    assert raw.request("BOGUS")[1]["result"] == 'MultiPyVuError: Unknown command: "BOGUS".'
    assert raw.request("TEMP", "abc,1,0")[1]["result"] == \
        "The command 'TEMP' has not been implemented."
    alive = raw.request("ALIVE")[1]
    assert alive["query"] == "ALIVE" and alive["result"].startswith("Connected to MPMS3")
    assert raw.request("STATUS")[1]["result"] == "connected"
    clock = raw.request("SPINLIGHT_CLOCK?")[1]["result"].split(",")
    assert clock[1:] == ["s", "1000"] and abs(float(clock[0]) - lab.clock.now()) < 100.0

    # no confirmation -> "completed" is sent SOCKET_RETRIES = 3 times, 1 s apart
    rid = str(uuid.uuid4())
    raw.sock.sendall(encode_message({"id": rid, "action": "FIELD?", "query": "", "result": ""}))
    got = [raw.recv(2.0) for _ in range(4)]
    assert [m["message_type"] if m else None for m in got] == \
        ["confirmed", "completed", "completed", "completed"]
    closed = raw.request("CLOSE")[1]
    assert closed["query"] == "CLOSE" and closed["result"] == \
        f"Client ('127.0.0.1', {local}) disconnected."
    raw.close()


def test_abrupt_disconnect_frees_the_slot_and_exit_stops_the_lab(lab):
    port = lab.endpoints["mpms3"]["port"]
    raw = RawClient(port)
    assert raw.request("START")[1]["result"].startswith("Connected to MPMS3")
    raw.close()                                  # no CLOSE: the peer just vanishes
    server = lab.mpms3.server                    # the server notices the EOF on its own thread
    deadline = time.monotonic() + 5.0
    while any(c.read_write for c in list(server._conns)) and time.monotonic() < deadline:
        time.sleep(0.01)
    with client(lab) as c:
        assert c.get_temperature()[1] == "Stable"
    raw = RawClient(port)
    done = raw.request("EXIT")[1]
    assert (done["query"], done["result"]) == ("EXIT", "Closing client and exiting server.")
    assert lab.wait(5.0)                         # the lab notices the server exited
    raw.close()


# -- simulator extension: the .dat file ------------------------------------------------------
def test_vsm_measurement_rows_appear_after_their_instrument_time(lab):
    with client(lab) as c:
        path, _, ok = ext(c, "SPINLIGHT_DATAFILE?").split(",")
        assert ok == "OK" and path == lab.endpoints["mpms3"]["datafile"]
        c.set_temperature(10.0, 20.0, c.temperature.approach_mode.fast_settle)
        c.set_field(1000.0, 100.0, c.field.approach_mode.linear)
        c.wait_for(0, 0, c.temperature.waitfor | c.field.waitfor)

        t_req = float(ext(c, "SPINLIGHT_CLOCK?").split(",")[0])
        res = ext(c, "SPINLIGHT_VSM", "300")
        assert res.startswith("SPINLIGHT_VSM Command Received,")
        n = int(res.rsplit(",", 1)[1])
        assert not [r for r in read_dat(path).rows if r["Measurement Number"] == n]
        row = wait_rows(path, lambda r: r["Measurement Number"] == n)[0]
        t_seen = float(ext(c, "SPINLIGHT_CLOCK?").split(",")[0])
        assert t_seen >= t_req + 300.0 + 4.0                # averaging + overhead

    dat = read_dat(path)
    assert dat.flavor == "MPMS3" and dat.sample_mass_mg == pytest.approx(20.0)
    assert row["Temperature (K)"] == pytest.approx(10.0, abs=0.01)
    assert row["Magnetic Field (Oe)"] == pytest.approx(1000.0, abs=0.5)
    expected = CurieSample().moment_emu(10.0, 1000.0, 20.0)
    assert abs(row["Moment (emu)"] - expected) < 5 * row["M. Std. Err. (emu)"]
    assert row["Averaging Time (sec)"] == 300.0 and row["Mass (grams)"] == pytest.approx(0.02)
    assert row["Min. Temperature (K)"] <= row["Temperature (K)"] <= row["Max. Temperature (K)"]
    assert (row["Temp. Status (code)"], row["Field Status (code)"]) == (1, 4)
    assert dat.timestamps_unix()[-1] == pytest.approx(t_req + 2.0 + 150.0, abs=60.0)


def run_script(tmp_path, seed: int, tag: str):
    """Same command sequence on a fresh lab: settle-mode points, then a logged sweep."""
    with curie_lab(tmp_path / tag, seed) as lab, client(lab) as c:
        c.set_temperature(10.0, 20.0, c.temperature.approach_mode.fast_settle)
        c.set_field(1000.0, 100.0, c.field.approach_mode.linear)
        c.wait_for(0, 0, c.temperature.waitfor | c.field.waitfor)
        numbers = [int(ext(c, "SPINLIGHT_VSM", "2").rsplit(",", 1)[1]) for _ in range(3)]
        path = lab.endpoints["mpms3"]["datafile"]
        wait_rows(path, lambda r: r["Measurement Number"] == numbers[-1])
        ext(c, "SPINLIGHT_VSM_LOG", "1,30")
        c.set_temperature(20.0, 2.0, c.temperature.approach_mode.fast_settle)   # 300 s ramp
        c.wait_for(0, 0, c.temperature.waitfor)
        ext(c, "SPINLIGHT_VSM_LOG", "0")
        sweep = wait_rows(path, lambda r: r["Temp. Status (code)"] == 2)
        rows = read_dat(path).rows
    single = [r for r in rows if r["Measurement Number"] in numbers]
    sweep = [r for r in rows if r["Temp. Status (code)"] == 2]
    cols = ("Temperature (K)", "Magnetic Field (Oe)", "Moment (emu)", "M. Std. Err. (emu)")
    return ([tuple(r[k] for k in cols) for r in single],
            [tuple(r[k] for k in cols) for r in sweep])


def test_same_seed_gives_identical_values(tmp_path):
    single_a, sweep_a = run_script(tmp_path, 11, "a")
    single_b, sweep_b = run_script(tmp_path, 11, "b")
    assert len(single_a) == 3 and single_a == single_b
    assert len(sweep_a) == 9 and sweep_a == sweep_b      # k = 1..9 of the 300 s ramp
    temps = [s[0] for s in sweep_a]
    assert temps == sorted(temps) and 10.5 < temps[0] < temps[-1] < 20.0
    single_c, _ = run_script(tmp_path, 12, "c")
    assert single_c != single_a                           # the seed matters


# -- the CLI ------------------------------------------------------------------------------------
def test_cli_sim_serve_prints_endpoints_and_serves(tmp_path):
    with server("-m", "spinlight.cli", "sim", "serve", "--speed", "1000", "--seed", "3",
                "--sample", "mCB-Nd", "--data-dir", tmp_path / "d", "--port", "0",
                announce_timeout_s=60.0) as (proc, ep):
        assert ep["mpms3"]["flavor"] == "MPMS3" and ep["sample"] == "mCB-Nd"
        with mpv.Client(ep["mpms3"]["host"], ep["mpms3"]["port"]) as c:
            assert c.get_temperature()[1] == "Stable"
            n = int(ext(c, "SPINLIGHT_VSM", "1").rsplit(",", 1)[1])
            row = wait_rows(ep["mpms3"]["datafile"], lambda r: r["Measurement Number"] == n)[0]
            assert row["Moment (emu)"] > 0 and row["M. Std. Err. (emu)"] > 0   # preset physics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10.0) == 0
