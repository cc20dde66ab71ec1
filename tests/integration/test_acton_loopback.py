"""Acton SpectraPro simulator <- pyserial socket:// <- driver and Ophyd Monochromator.

The virtual clock freezes when the instrument is idle, so the instrument time a move takes is
exact: it starts when the command arrives and the clock stops when the drive stops.
"""

import threading

import pytest
import serial

from spinlight.instruments.commands import Command
from spinlight.instruments.errors import InstrumentError
from spinlight.instruments.monochromator import connect_monochromator
from spinlight.simulators.acton import (GOTO_SPEED_NM_PER_S, GRATING_CHANGE_S, ActonSimulator)
from spinlight.simulators.clock import VirtualClock


@pytest.fixture
def clock():
    c = VirtualClock(speed=100.0, freeze_when_idle=True)
    yield c
    c.stop()


@pytest.fixture
def sim(clock):
    s = ActonSimulator(clock, seed=3)
    s.start_server()
    yield s
    s.stop()


@pytest.fixture
def mono(sim):
    m = connect_monochromator(sim.url, name="excitation", timeout_s=2.0)
    m.wavelength.poll_interval_s.put(0.005)
    yield m
    m.close()


def raw(port, line: bytes) -> bytes:
    port.write(line + b"\r")
    return port.read_until(b"ok\r\n") if not line.lower().startswith(b"bogus") else \
        port.read_until(b"? \r\n")


def test_wire_format_echo_errors_and_clamping(sim):
    p = serial.serial_for_url(sim.url, baudrate=9600, timeout=2.0)
    try:
        assert raw(p, b"?NM") == b"?NM 0.00 nm  ok\r\n"                 # echo by default
        assert raw(p, b"NO-ECHO") == b"NO-ECHO ok\r\n"
        assert raw(p, b"?nm") == b" 0.00 nm  ok\r\n"
        assert raw(p, b"model") == b" SP-2-150i  ok\r\n"
        assert raw(p, b"?gratings") == (
            b"\r\n\x1a1  1200 g/mm BLZ=  500NM \r\n 2  600 g/mm BLZ=  1.0UM \r\n"
            + b"".join(b" %d  Not Installed     \r\n" % n for n in range(3, 7)) + b" ok\r\n")
        assert raw(p, b"bogus") == b" bogus? \r\n"
        assert raw(p, b"5000 goto ?nm") == b" 1400.00 nm  ok\r\n"        # clamped to the range
        assert raw(p, b"5 grating ?grating") == b" 1  ok\r\n"           # not installed: no change
        assert raw(p, b"side-ent-slit 480 microns side-ent-slit ?microns") == b" 480 um  ok\r\n"
        assert raw(p, b"front-ent-slit ?microns") == b" no motor  ok\r\n"
    finally:
        p.close()


def test_move_completes_only_when_the_simulated_move_is_done(mono, sim, clock):
    mono.wavelength.scan_rate_nm_per_min.put(3000.0)
    t0 = clock.now()
    seen = []          # (readback, status done?) while moving
    finished_at = []
    mono.wavelength.subscribe(lambda value, **kw: seen.append((value, st.done)), run=False)
    st = mono.wavelength.set(500.0)
    st.add_callback(lambda status: finished_at.append(clock.now()))
    st.wait(10)
    assert st.success
    assert finished_at[0] - t0 >= 10.0 - 1e-6          # 500 nm at 3000 nm/min = 10 s
    assert clock.now() - t0 == pytest.approx(10.0, abs=1e-6)
    assert sim.wavelength_nm == 500.0 and sim.done
    assert mono.wavelength.position == 500.0
    intermediate = [(v, done) for v, done in seen if 0.0 < v < 500.0]
    assert intermediate and not any(done for _, done in intermediate)
    assert sim.received[-1][1] == "mono-stop"             # the >nm was closed


def test_goto_time_matches_max_speed_and_scan_rate(mono, sim, clock):
    t0 = clock.now()
    mono.driver.goto(500.0)
    assert clock.now() - t0 == pytest.approx(500.0 / GOTO_SPEED_NM_PER_S, abs=1e-6)   # 5 s
    mono.wavelength.scan_rate_nm_per_min.put(100.0)      # factory rate
    t0 = clock.now()
    mono.wavelength.set(510.0).wait(10)
    assert clock.now() - t0 == pytest.approx(6.0, abs=1e-6)                             # 10 nm


def test_grating_change_and_per_grating_limit(mono, sim, clock):
    mono.wavelength.set(700.0).wait(10)
    with pytest.raises(ValueError, match="1400"):
        mono.wavelength.set(1500.0)
    t0 = clock.now()
    mono.grating.set(2).wait(10)
    assert clock.now() - t0 == pytest.approx(GRATING_CHANGE_S, abs=1e-6)
    assert sim.grating == 2 and mono.grating.get() == 2
    assert sim.wavelength_nm == 700.0 and mono.wavelength.position == 700.0
    mono.wavelength.set(1500.0).wait(10)                  # fine on 600 g/mm
    assert sim.wavelength_nm == 1500.0
    n = len(sim.received)
    with pytest.raises(ValueError, match=r"grating=3.*\[1, 2\]"):
        mono.grating.set(3)
    with pytest.raises(ValueError, match="width_um"):
        mono.slit_um.set(5000)
    assert len(sim.received) == n                         # nothing was sent
    mono.slit_um.set(480).wait(10)
    assert sim.slit_um("SIDE-ENT-SLIT") == sim.slit_um("FRONT-EXIT-SLIT") == 480.0
    assert mono.read_configuration()["excitation_slit_um"]["value"] == 480.0


def test_unknown_command_error_through_the_socket(mono):
    with pytest.raises(InstrumentError) as err:
        mono.driver.execute(Command("frobnicate", reply=""))
    e = err.value
    assert (e.instrument, e.command, e.reply) == ("excitation", "frobnicate", "frobnicate?")
    assert mono.driver.get_wavelength() == 0.0            # the line is usable afterwards


def test_stop_really_stops_the_drive(mono, sim, clock):
    mono.wavelength.scan_rate_nm_per_min.put(600.0)       # 1000 nm: 100 s = 1 s wall
    st = mono.wavelength.set(1000.0)
    threading.Event().wait(0.3)
    mono.stop()
    with pytest.raises(InstrumentError, match="stopped"):
        st.wait(5)
    here = sim.wavelength_nm
    assert 0.0 < here < 1000.0 and sim.done
    assert mono.wavelength.position == pytest.approx(here, abs=0.01)
    t = clock.now()
    threading.Event().wait(0.1)
    assert clock.now() == t                                # drive stopped: clock frozen


def test_excitation_and_emission_on_two_ports_at_once(clock, sim):
    emission_sim = ActonSimulator(clock, seed=4, gratings=((600, 1000.0), (300, 1200.0)))
    emission_sim.start_server()
    exc = connect_monochromator(sim.url, name="excitation")
    em = connect_monochromator(emission_sim.url, name="emission")
    try:
        assert sim.url != emission_sim.url
        assert exc.driver.serial_number != em.driver.serial_number
        assert em.driver.gratings[1].max_nm == pytest.approx(2800.0)
        for m in (exc, em):
            m.wavelength.poll_interval_s.put(0.005)
            m.wavelength.scan_rate_nm_per_min.put(3000.0)
        t0 = clock.now()
        s1, s2 = exc.wavelength.set(375.0), em.wavelength.set(1000.0)
        s1.wait(10)
        s2.wait(10)
        assert sim.wavelength_nm == 375.0 and emission_sim.wavelength_nm == 1000.0
        # the drives ran together: the emission move (1000 nm, 20 s) started while the
        # excitation one (375 nm, 7.5 s) was running, and the clock stopped when it ended
        exc_start, _, exc_end, _ = sim.last_move
        em_start, em_from, em_end, em_to = emission_sim.last_move
        assert (em_from, em_to) == (0.0, 1000.0)
        assert exc_end - exc_start == pytest.approx(7.5, abs=1e-6)
        assert em_end - em_start == pytest.approx(20.0, abs=1e-6)
        assert t0 <= em_start < exc_end
        assert clock.now() == pytest.approx(em_end, abs=1e-6)
        assert exc.read()["excitation_wavelength"]["value"] == 375.0
        assert em.read()["emission_wavelength"]["value"] == 1000.0
    finally:
        exc.close()
        em.close()
        emission_sim.stop()


def test_blocking_goto_longer_than_the_line_timeout_with_echo_on():
    # 1000 nm at 100 nm/s = 10 s instrument = 0.5 s wall, longer than the 0.2 s line timeout:
    # the echo arrives at once, " ok" only when the drive stops.
    slow = VirtualClock(speed=20.0, freeze_when_idle=True)
    s = ActonSimulator(slow, seed=5)
    s.start_server()
    m = connect_monochromator(s.url, name="slow", timeout_s=0.2)
    try:
        m.driver.echo_on()
        t0 = slow.now()
        m.driver.goto(1000.0)
        assert slow.now() - t0 == pytest.approx(10.0, abs=1e-6)
        assert m.driver.get_wavelength() == 1000.0      # echo stripped
        assert s.received[-2][1] == "1000.000 goto" and s.echo
    finally:
        m.close()
        s.stop()
        slow.stop()
