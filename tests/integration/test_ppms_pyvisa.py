"""The PPMS device over real pyvisa + pyvisa-py (``TCPIP0::127.0.0.1::PORT::SOCKET``) against the
simulated PPMS of a SimulatedLab, on a fast virtual clock."""

from __future__ import annotations

import math
import threading
import time

import pytest

from spinlight.instruments.errors import InstrumentError
from spinlight.instruments.ppms_device import PPMS, connect_ppms
from spinlight.simulators.lab import SimulatedLab

SPEED = 200.0          # a 40 s persistent field change takes 0.2 s of wall time


class StandIn:
    name = "stand-in"
    molar_mass_g_per_mol = 500.0


@pytest.fixture
def lab(tmp_path):
    with SimulatedLab(speed=SPEED, seed=11, sample=StandIn(), mass_mg=12.0,
                      data_dir=tmp_path / "data") as lab:
        yield lab


@pytest.fixture
def ppms(lab):
    dev = connect_ppms(lab.endpoints["ppms"]["resource"], timeout_s=2.0, monitor_interval_s=0.02)
    dev.temperature.poll_interval_s.put(0.01)
    dev.field.poll_interval_s.put(0.01)
    yield dev
    dev.close()


def wait_for(pred, timeout_s=5.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.005)
    return False


def moving_then(seen, final, moving) -> bool:
    """The poller saw moving states only (after any stale reading taken before the command),
    then ``final``. Which transient states it catches depends on wall-clock scheduling."""
    start = next(i for i, s in enumerate(seen) if s in moving)
    return set(seen[start:-1]) <= moving and seen[-1] == final


def test_lab_endpoint_and_identification(lab, ppms):
    ep = lab.endpoints["ppms"]
    assert ep["resource"] == f"TCPIP0::127.0.0.1::{ep['port']}::SOCKET"
    assert ep["host"] == "127.0.0.1" and ep["datafile"] == str(lab.ppms.datafile)
    assert lab.ppms.clock is lab.mpms3.clock                     # one lab, one clock
    assert isinstance(ppms, PPMS) and ppms.driver.identify().startswith("QUANTUM DESIGN")
    assert ppms.driver.get_datafile() == ep["datafile"]
    assert ppms.temperature_state.get() == "stable"
    assert ppms.magnet_state.get() == "persistent stable"
    assert ppms.chamber_state.get() == "purged and sealed" == ppms.chamber.get()
    assert ppms.helium_level.get() == pytest.approx(80.0, abs=0.01)


def test_temperature_move_completes_when_the_instrument_reports_stable(lab, ppms):
    sim = lab.ppms
    done_at, fractions = [], []
    st = ppms.temperature.set(285.0)
    st.add_callback(lambda status: done_at.append(sim.clock.now()))
    st.watch(lambda *a, fraction=None, **k: fractions.append(fraction))
    st.wait(10)
    assert st.success
    settled = sim.temperature.settled_at(math.inf)     # 45 s ramp + settling
    assert wait_for(lambda: done_at) and done_at[0] >= settled
    assert sim.temperature.state_code(done_at[0]) == 1
    assert ppms.temperature.state.get() == "stable"
    assert ppms.temperature.position == pytest.approx(285.0, abs=0.3)
    assert len(fractions) > 3 and fractions[-1] == pytest.approx(0.0, abs=0.01)
    assert ppms.driver.get_temperature_setpoint() == (285.0, 10.0, 0)


def test_field_persistent_then_driven(lab, ppms):
    sim = lab.ppms
    seen = []
    ppms.field.state.subscribe(lambda value, **k: seen.append(value), run=False)
    assert ppms.field.magnet_mode.get() == "persistent"
    st = ppms.field.set(2000.0)
    st.wait(10)
    now = sim.clock.now()
    assert st.success and sim.magnet.state_code(now) == 1 and sim.magnet.mode == 0
    assert now >= sim.magnet.settled_at(math.inf)
    assert ppms.field.state.get() == "persistent stable"
    assert ppms.field.position == pytest.approx(2000.0, abs=1.0)
    assert moving_then(seen, "persistent stable", {"persistent switch warming", "charging",
                                                    "switch cooling"})
    ppms.field.magnet_mode.put("driven")
    seen.clear()
    st = ppms.field.set(-1000.0)
    st.wait(10)
    now = sim.clock.now()
    assert st.success and sim.magnet.state_code(now) == 4 and sim.magnet.mode == 1
    assert ppms.field.state.get() == "driven stable"
    assert ppms.magnet_state.get() == "driven stable"
    assert moving_then(seen, "driven stable", {"persistent switch warming", "discharging",
                                                "charging", "driven final approach"})
    assert ppms.driver.get_field_setpoint() == (-1000.0, 100.0, 0, 1)


def test_helium_level_follows_the_instrument_via_the_monitor(lab, ppms):
    sim = lab.ppms
    sim.refill(50.0)
    assert wait_for(lambda: ppms.helium_level.get() == pytest.approx(50.0, abs=1e-3))
    events = []
    ppms.helium_level.subscribe(lambda value, **k: events.append(value), run=False)
    ppms.field.magnet_mode.put("driven")        # driven leads: 1 + 2 %/h
    ppms.field.set(1000.0).wait(10)
    ppms.temperature.rate_K_per_min.put(20.0)
    ppms.temperature.set(200.0).wait(10)        # 300 s ramp + settling: ~0.3 % of helium
    level = sim.helium_percent()
    assert level < 49.75
    assert wait_for(lambda: ppms.helium_level.get() == pytest.approx(level, abs=1e-3))
    assert events and min(events) < 49.75 and ppms.helium_age.get() == "continuous"


def test_stop_holds_temperature_and_field(lab, ppms):
    sim = lab.ppms
    ppms.field.magnet_mode.put("driven")
    st_t = ppms.temperature.set(100.0)           # 20 min at 10 K/min: 6 s of wall time
    st_f = ppms.field.set(50000.0)               # 500 s at 100 Oe/s
    assert wait_for(lambda: ppms.temperature.position < 295 and ppms.field.position > 1000)
    ppms.stop()
    for st in (st_t, st_f):
        with pytest.raises(InstrumentError, match="stopped"):
            st.wait(5)
    held_T, held_H = sim.temperature.setpoint_K, sim.magnet.setpoint_Oe
    assert 100.0 < held_T < 295.0 and 1000.0 < held_H < 50000.0
    assert held_T == pytest.approx(ppms.temperature.setpoint.get(), abs=1e-3)
    assert held_H == pytest.approx(ppms.field.setpoint.get(), abs=0.01)
    end = max(sim.temperature.settled_at(math.inf), sim.magnet.settled_at(math.inf))
    assert end - sim.clock.now() < 300.0         # holding, not still heading for 100 K / 5 T


def test_bad_input_raises_before_anything_is_sent(lab, ppms):
    sim = lab.ppms
    before = (sim.temperature.setpoint_K, sim.magnet.setpoint_Oe, sim.chamber.mode)
    n_sets = sum(1 for _, cmd, _ in sim.received if not cmd.endswith("?"))
    with pytest.raises(ValueError, match=r"temperature_K=400.*1\.9\.\.350"):
        ppms.temperature.set(400.0)
    with pytest.raises(ValueError, match=r"field_Oe=95000.*90000"):
        ppms.field.set(95000.0)
    ppms.field.rate_Oe_per_s.put(300.0)
    with pytest.raises(ValueError, match=r"rate_Oe_per_s=300.*10\.5\.\.196"):
        ppms.field.set(1000.0)
    with pytest.raises(ValueError, match="high_vacuum"):
        ppms.chamber.put("high_vacuum")
    assert (sim.temperature.setpoint_K, sim.magnet.setpoint_Oe, sim.chamber.mode) == before
    assert sum(1 for _, cmd, _ in sim.received if not cmd.endswith("?")) == n_sets
    assert not sim.errors and not ppms.temperature.moving and not ppms.field.moving


def test_chamber_command_and_concurrent_sessions(lab, ppms):
    ppms.chamber.put("vent_seal")
    assert lab.ppms.chamber.mode == 2
    assert ppms.chamber.get() == "performing vent/seal"
    # A second pyvisa session (e.g. a MultiVu-side logger) works alongside the device's.
    other = connect_ppms(lab.endpoints["ppms"]["resource"], timeout_s=2.0, monitor_interval_s=None,
                         name="ppms2")
    try:
        results = []
        threads = [threading.Thread(target=lambda d=d: results.append(d.driver.get_level()[1]))
                   for d in (ppms, other) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        assert results == ["continuous"] * 10
    finally:
        other.close()
