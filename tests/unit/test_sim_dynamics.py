"""Instrument dynamics and the virtual clock of the simulators (no sockets)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from spinlight.simulators.clock import ClockStopped, VirtualClock
from spinlight.simulators.dynamics import (DRIVEN, PERSISTENT, SWITCH_COOL_S, SWITCH_WARM_S,
                                           Chamber, LimitError, Magnet, TemperatureControl)


def codes_over(obj, t0, t1, n=4000):
    """Distinct consecutive state codes of ``obj`` sampled on [t0, t1]."""
    seq = []
    for t in np.linspace(t0, t1, n):
        c = obj.state_code(t)
        if not seq or seq[-1] != c:
            seq.append(c)
    return seq


# -- temperature ------------------------------------------------------------------------------
def test_temperature_ramp_timing_and_state_sequence():
    tc = TemperatureControl()
    assert tc.value(-10) == 300.0 and tc.state_text(-10) == "Stable"
    tc.set(0.0, 10.0, 10.0, 0)                      # 300 -> 10 K at 10 K/min, fast settle
    assert tc.value(60.0) == pytest.approx(290.0)   # one minute of ramp
    assert tc.state_text(60.0) == "Tracking"
    ramp_s = 290.0 / 10.0 * 60.0
    settle = TemperatureControl.settle_time_s(10.0, 290.0, 0)
    assert 60.0 < settle < 600.0                    # minutes, not seconds, after a big step
    assert tc.state_text(ramp_s + 1) == "Near"
    assert tc.settled_at(0.0) == pytest.approx(ramp_s + settle)
    assert codes_over(tc, 0, ramp_s + settle + 100) == [2, 5, 1]
    assert tc.value(ramp_s + settle + 1) == 10.0    # Stable means exactly at the set point
    assert tc.ppms_text(ramp_s + 1) == "within tolerance, waiting for equilibrium"


def test_fast_settle_overshoots_at_low_t_and_no_overshoot_does_not():
    fast, slow = TemperatureControl(), TemperatureControl()
    fast.set(0.0, 5.0, 5.0, 0)
    slow.set(0.0, 5.0, 5.0, 1)
    ts = np.linspace(0, 5000, 20001)
    Tf = np.array([fast.value(t) for t in ts])
    Ts = np.array([slow.value(t) for t in ts])
    undershoot = 5.0 - Tf.min()
    assert 0.0 < undershoot < 0.5                   # small overshoot past 5 K when cooling
    assert Ts.min() >= 5.0 - 1e-12                  # never past the set point
    assert slow.settled_at(0) > fast.settled_at(0)  # and it is slower to settle
    assert np.all(np.diff(Ts) <= 1e-12)             # monotonic approach


def test_fast_settle_has_no_overshoot_at_high_temperature():
    tc = TemperatureControl()
    tc.set(0.0, 200.0, 5.0, 0)
    assert max(tc.value(t) for t in np.linspace(0, 3000, 6001)) <= 300.0
    assert min(tc.value(t) for t in np.linspace(0, 3000, 6001)) >= 200.0 - 1e-12


def test_temperature_reading_noise_is_small_and_a_function_of_time():
    tc = TemperatureControl(seed=3)
    r = np.array([tc.reading(1000.0 + i) for i in range(400)])
    assert abs(r.mean() - 300.0) < 0.01 and 0.01 < r.std() < 0.2
    assert tc.reading(1234.5) == tc.reading(1234.5)
    assert TemperatureControl(seed=4).reading(1234.5) != tc.reading(1234.5)


@pytest.mark.parametrize("args", [(1.7, 5, 0), (400.1, 5, 0), (10, 0.0, 0), (10, 25, 0),
                                  (10, 5, 2)])
def test_temperature_limits(args):
    with pytest.raises(LimitError) as e:
        TemperatureControl().set(0.0, *args)
    assert "allowed range" in str(e.value)


def test_new_command_mid_ramp_starts_from_current_value_and_keeps_history():
    tc = TemperatureControl()
    tc.set(0.0, 100.0, 10.0, 0)
    tc.set(600.0, 250.0, 10.0, 0)                   # at 240 K, turn around
    assert tc.value(600.0) == pytest.approx(200.0)
    assert tc.value(300.0) == pytest.approx(250.0)  # the past is still the old ramp
    assert tc.value(660.0) == pytest.approx(210.0)


# -- magnet -----------------------------------------------------------------------------------
def test_magnet_persistent_switch_sequence():
    m = Magnet(has_switch=True)
    m.set(0.0, 10000.0, 100.0, 0, PERSISTENT)
    assert m.state_text(1.0) == "Switch Warming" and m.value(1.0) == 0.0
    ramp_end = SWITCH_WARM_S + 100.0
    assert m.state_code(SWITCH_WARM_S + 50) == 6 and m.ppms_text(SWITCH_WARM_S + 50) == "charging"
    assert m.value(SWITCH_WARM_S + 50) == pytest.approx(5000.0)
    assert m.state_text(ramp_end + 1) == "Switch Cooling"
    assert m.settled_at(0) == pytest.approx(ramp_end + SWITCH_COOL_S)
    assert codes_over(m, 0, 200) == [2, 6, 3, 1]
    m.set(300.0, 2000.0, 100.0, 0, PERSISTENT)      # back down: discharging
    assert codes_over(m, 300, 500) == [2, 7, 3, 1]
    m.set(600.0, 3000.0, 100.0, 0, DRIVEN)          # persistent -> driven
    assert codes_over(m, 600, 700) == [2, 6, 5, 4]
    assert m.state_text(700) == "Holding (driven)"
    m.set(800.0, 1000.0, 100.0, 0, DRIVEN)          # switch already warm: ramps at once
    assert codes_over(m, 800, 900) == [7, 5, 4]


def test_magnet_ramp_time_depends_on_field():
    m = Magnet(has_switch=False)
    m.set(0.0, 70000.0, 700.0, 0, DRIVEN)
    expected = 50000.0 / 700.0 + 20000.0 / 300.0    # slower above 50 kOe
    assert m.settled_at(0) == pytest.approx(expected + 2.0)
    assert m.value(50000.0 / 700.0) == pytest.approx(50000.0)
    assert m.value(m.settled_at(0)) == 70000.0


def test_magnet_approaches():
    osc, noo = Magnet(has_switch=False), Magnet(has_switch=False)
    osc.set(0.0, 1000.0, 100.0, 2, DRIVEN)
    noo.set(0.0, 1000.0, 100.0, 1, DRIVEN)
    ts = np.linspace(0, 40, 8001)
    Ho = np.array([osc.value(t) for t in ts])
    Hn = np.array([noo.value(t) for t in ts])
    assert Ho.max() > 1050 and Ho[ts > 11.2].min() < 1000  # overshoots and swings back
    assert osc.value(40) == 1000.0
    assert Hn.max() <= 1000.0 and noo.settled_at(0) > 1000.0 / 100.0


@pytest.mark.parametrize("args", [(70001, 100, 0, 1), (-70001, 100, 0, 1), (1000, 0.5, 0, 1),
                                  (1000, 701, 0, 1), (1000, 100, 3, 1), (1000, 100, 0, 0),
                                  (1000, 100, 0, 2)])
def test_magnet_limits_driven_only(args):
    with pytest.raises(LimitError):
        Magnet(has_switch=False).set(0.0, *args)


# -- chamber ----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode,transit,final", [
    (1, "Performing Purge/Seal", "Purged and Sealed"),
    (2, "Performing Vent/Seal", "Vented and Sealed"),
    (5, "Pre-HiVac", "HiVac"),
    (3, "Pumping Continuously", "Pumping Continuously"),
])
def test_chamber_transitions(mode, transit, final):
    c = Chamber(initial_mode=1)
    assert c.state_text(0) == "Purged and Sealed"
    c.set(10.0, mode)
    assert c.state_text(10.0) == transit
    assert c.state_text(c.settled_at(10.0) + 0.1) == final and c.is_done(1e4)


def test_chamber_bad_mode():
    with pytest.raises(LimitError):
        Chamber().set(0.0, 6)


# -- clock ------------------------------------------------------------------------------------
def test_clock_speed_and_sleep_without_busy_wait():
    clock = VirtualClock(speed=10000.0, start_unix=1.0e9)
    assert clock.now() == pytest.approx(1.0e9, abs=100.0)
    assert clock.wall_seconds(5000.0) == pytest.approx(0.5)
    w0, c0, i0 = time.monotonic(), time.process_time(), clock.now()
    clock.sleep(8000.0)                               # 0.8 s of wall time
    wall, cpu = time.monotonic() - w0, time.process_time() - c0
    assert clock.now() - i0 >= 8000.0
    assert 0.75 < wall < 2.0
    assert cpu < 0.1 * wall                           # waiting, not spinning


def test_clock_wait_until_uses_time_hints_and_notify():
    clock = VirtualClock(speed=1000.0)
    target = clock.now() + 300.0                      # due in 0.3 s wall
    c0 = time.process_time()
    assert clock.wait_until(lambda: clock.now() >= target or target, 10_000.0)
    assert time.process_time() - c0 < 0.05
    flag = []
    threading.Timer(0.1, lambda: (flag.append(1), clock.notify())).start()
    w0 = time.monotonic()
    assert clock.wait_until(lambda: bool(flag), 50_000.0)
    assert time.monotonic() - w0 < 1.0                # woken by notify, not by the timeout
    assert clock.wait_until(lambda: False, 100.0) is False


def test_clock_high_speed_and_stop():
    clock = VirtualClock(speed=1.0e5)
    a = clock.now()
    time.sleep(0.01)
    assert clock.now() - a >= 500.0
    threading.Timer(0.1, clock.stop).start()
    with pytest.raises(ClockStopped):
        clock.wait_until(lambda: False, None)
