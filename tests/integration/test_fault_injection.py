"""Scripted faults seen through the real client paths: the PPMS through pyvisa-py and
``PPMSDriver``, the MPMS3 through QD's MultiPyVu client and ``MPMS3Driver``, the laser through
``LaserState`` and the Taiko/PiLas drivers, all at the scripted instrument time."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from polling import wait_for
from spinlight.instruments.errors import ConnectionLost, InstrumentError, InstrumentTimeout
from spinlight.instruments.laser import connect_pilas, connect_taiko
from spinlight.instruments.mpms3 import MPMS3Driver
from spinlight.instruments.ppms import PPMSDriver
from spinlight.instruments.retry import RetryPolicy
from spinlight.instruments.transports import MultiVuTransport, VisaTransport
from spinlight.simulators.faults import FaultInjector, FaultScript
from spinlight.simulators.lab import SimulatedLab

SPEED = 1000.0
pytestmark = pytest.mark.usefixtures("quiet_multipyvu")   # see conftest.py


class StandIn:
    name = "stand-in"                       # no luminescence preset: no PL bench
    molar_mass_g_per_mol = 500.0

    def measure_vsm(self, T_K, H_Oe, mass_mg, rng):
        return 1e-6, 1e-9


def stand_in_lab(data_dir, **kw) -> SimulatedLab:
    return SimulatedLab(speed=SPEED, seed=5, sample=StandIn(), mass_mg=10.0, data_dir=data_dir,
                        **kw)


@pytest.fixture
def lab(tmp_path):
    with stand_in_lab(tmp_path / "data") as lab:
        yield lab


def inject(lab, script, seed=0):
    return FaultInjector.for_lab(lab, script, seed)


def elapsed(lab, t=None) -> float:
    return (lab.clock.now() if t is None else t) - lab.clock.start_unix


def ppms_driver(lab, timeout_s=0.3) -> PPMSDriver:
    return PPMSDriver(VisaTransport(lab.endpoints["ppms"]["resource"], name="ppms",
                                    timeout_s=timeout_s))


def mpms3_driver(lab, timeout_s=2.0) -> MPMS3Driver:
    ep = lab.endpoints["mpms3"]
    return MPMS3Driver(MultiVuTransport(ep["host"], ep["port"], timeout_s=timeout_s))


def refused(host, port) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except ConnectionRefusedError:
        return True
    return False


def phases(inj):
    return [(h.kind, h.phase, h.elapsed_s) for h in inj.history]


# -- PPMS over pyvisa-py --------------------------------------------------------------------------
def test_ppms_helium_excursion_and_quench_at_their_scripted_times(lab):
    inj = inject(lab, FaultScript()
                 .at("temperature_excursion", 40, target="ppms", duration_s=100, delta_K=3.0)
                 .at("helium_low", 40, target="ppms", duration_s=200, percent=4,
                     refill_percent=75)
                 .at("quench", 40, target="ppms"))
    drv = ppms_driver(lab)
    try:
        drv.set_field(1000.0, 100.0, "linear", "driven")       # 27 s, switch warming included
        drv.set_temperature(290.0, 10.0, "fast_settle")         # 60 s ramp: runs the clock
        seen, deadline = set(), time.monotonic() + 20.0
        while time.monotonic() < deadline:
            d = drv.getdat(0b111)
            t = elapsed(lab, d["timestamp"])
            st = d["status"]
            before = elapsed(lab)
            level, _ = drv.get_level()
            after = elapsed(lab)
            if 40 <= t < 140:
                seen.add("excursion")
                assert st.temperature == "outside tolerance" and st.magnet == "current error"
                assert d["field"] == pytest.approx(0.0, abs=0.2)
            elif t >= 140:
                assert st.temperature in ("stable", "within tolerance, waiting for equilibrium")
                assert st.magnet == "current error"          # latched
            else:
                assert st.magnet != "current error" and st.temperature != "outside tolerance"
            if 40 <= before and after < 240:
                seen.add("helium low")
                assert 3.8 < level <= 4.0       # 3 %/h boil-off (driven magnet) from 4 %
            elif before >= 240:
                seen.add("refilled")
                assert 74.9 < level <= 75.0
                break
        assert seen == {"excursion", "helium low", "refilled"}
        assert sorted(phases(inj), key=lambda p: (p[2], p[0])) == [
            ("helium_low", "start", 40.0), ("quench", "start", 40.0),
            ("temperature_excursion", "start", 40.0), ("temperature_excursion", "end", 140.0),
            ("helium_low", "end", 240.0)]
        drv.set_field(0.0, 100.0, "linear", "driven")          # the client clears the quench
        assert drv.get_field()[1] != "current error"
    finally:
        inj.stop()
        drv.close()


def test_ppms_garbled_reply_then_withheld_replies(lab):
    inj = inject(lab, FaultScript().at("garbled", 0, target="ppms")
                 .at("timeout", 0, target="ppms", count=2))
    drv = ppms_driver(lab)
    try:
        with pytest.raises(InstrumentError, match="unexpected reply") as exc:
            drv.get_level()
        assert not isinstance(exc.value, InstrumentTimeout)
        assert exc.value.reply != "80,2;" and len(exc.value.reply) == len("80,2;")
        # The set command is executed; only the read-back's reply is lost.
        with pytest.raises(InstrumentTimeout):
            drv.set_temperature(250.0, 10.0, "fast_settle")
        assert lab.ppms.temperature.setpoint_K == 250.0
        with pytest.raises(InstrumentTimeout):
            drv.get_level()
        assert drv.get_temperature_setpoint() == (250.0, 10.0, 0)   # back to normal
        assert [p[:2] for p in phases(inj)] == [("garbled", "start"), ("timeout", "start")]
    finally:
        inj.stop()
        drv.close()


def test_ppms_disconnect_refuses_then_accepts_after_the_duration(lab):
    inj = inject(lab, FaultScript().at("disconnect", 20, target="ppms", duration_s=800))
    host, port = lab.endpoints["ppms"]["host"], lab.endpoints["ppms"]["port"]
    drv = ppms_driver(lab)
    try:
        drv.set_temperature(290.0, 10.0, "fast_settle")         # 60 s ramp: runs the clock
        with pytest.raises((ConnectionLost, InstrumentTimeout)):
            for _ in range(10000):
                drv.get_level()
        assert refused(host, port) and elapsed(lab) < 820
        # pyvisa-py 0.8.1 does not check a non-blocking connect's result: opening "succeeds"
        # and the first query fails instead.
        # (the refusal surfaces at the first write, as a bare ConnectionRefusedError)
        with pytest.raises((InstrumentError, ConnectionRefusedError)):
            ppms_driver(lab).get_level()
        assert wait_for(lambda: ("disconnect", "end", 820.0) in phases(inj))
        again = ppms_driver(lab)
        assert elapsed(lab, again.getdat(1)["timestamp"]) >= 820.0 - 1e-3     # %.3f stamp
        again.close()
        assert phases(inj) == [("disconnect", "start", 20.0), ("disconnect", "end", 820.0)]
    finally:
        inj.stop()
        drv.close()


def test_poisson_faults_are_seeded_and_reproducible(lab, tmp_path):
    script = FaultScript().poisson("garbled", 6.0, target="ppms")
    inj = inject(lab, script, seed=11)
    with stand_in_lab(tmp_path / "other") as lab2:
        twin, other = inject(lab2, script, seed=11), inject(lab2, script, seed=12)
        assert twin.planned == inj.planned != other.planned
        twin.stop()
        other.stop()
    first = inj.planned[0][2]
    drv = ppms_driver(lab)
    try:
        assert first > 0 and drv.get_level()[0] > 0            # nothing due yet
        drv.set_temperature(10.0, 1.0, "fast_settle")           # 290 min ramp: runs the clock
        with pytest.raises(InstrumentError, match="unexpected reply"):
            for _ in range(100000):
                drv.get_level()
        assert inj.history[0].elapsed_s == first and inj.history[0].kind == "garbled"
    finally:
        inj.stop()
        drv.close()


# -- MPMS3 over MultiPyVu -------------------------------------------------------------------------
def test_mpms3_excursion_and_quench_through_multipyvu(lab):
    inj = inject(lab, FaultScript()
                 .at("temperature_excursion", 30, target="mpms3", duration_s=400, delta_K=5.0)
                 .at("quench", 30, target="mpms3"))
    drv = mpms3_driver(lab)
    try:
        drv.set_field(1000.0, 100.0, "linear", "driven")
        assert drv.wait_for(40, 0, 0) == 0                       # 40 s of instrument time
        T, state = drv.get_temperature()
        assert state == "Chasing" and T == pytest.approx(305.0, abs=0.3)
        H, mstate = drv.get_field()
        assert mstate == "Quenching" and H == pytest.approx(0.0, abs=0.2)
        assert drv.wait_for(0, 0, 1) == 0                        # waits the excursion out
        assert elapsed(lab, drv.get_clock()[0]) == pytest.approx(430.0, abs=1.0)
        assert drv.get_temperature()[1] == "Stable"
        assert drv.wait_for(0, 20, 2) == 258                     # a quenched magnet never settles
        drv.set_field(500.0, 100.0, "linear", "driven")
        assert drv.wait_for(0, 60, 2) == 0
        assert drv.get_field()[1] == "Holding (driven)"
    finally:
        inj.stop()
        drv.close()


def test_mpms3_garbled_then_timeout_through_multipyvu(lab):
    inj = inject(lab, FaultScript().at("garbled", 0, target="mpms3")
                 .at("timeout", 0, target="mpms3"))
    drv = mpms3_driver(lab, timeout_s=1.0)
    try:
        with pytest.raises(InstrumentError, match="unexpected reply") as exc:
            drv.get_temperature()
        assert not isinstance(exc.value, InstrumentTimeout)
        with pytest.raises(InstrumentTimeout):
            drv.set_temperature(250.0, 10.0, "fast_settle")
        assert lab.mpms3.temperature.setpoint_K == 250.0        # executed, answer withheld
        drv.close()                          # MultiVu serves one client: let this one go first
        assert wait_for(lambda: lab.mpms3.server.status() == "idle")
        fresh = mpms3_driver(lab)
        assert fresh.get_temperature_setpoints()[0] == 250.0
        fresh.close()
    finally:
        inj.stop()
        drv.close()


def test_mpms3_disconnect_drops_a_running_wait_and_refuses_until_the_end(lab):
    inj = inject(lab, FaultScript().at("disconnect", 20, target="mpms3", duration_s=800))
    ep = lab.endpoints["mpms3"]
    drv = mpms3_driver(lab)
    errors = []

    def waiter():
        try:
            drv.wait_for(0, 0, 1)
        except Exception as exc:            # noqa: BLE001 - inspected below
            errors.append(exc)

    try:
        drv.set_temperature(290.0, 10.0, "fast_settle")
        thread = threading.Thread(target=waiter, daemon=True)
        thread.start()
        assert wait_for(lambda: ("disconnect", "start", 20.0) in phases(inj))
        assert refused(ep["host"], ep["port"]) and elapsed(lab) < 820
        thread.join(10.0)
        # Dropped at 20 s, mid-wait. MultiPyVu returns its 'Close client' text as the result,
        # which the driver rejects as a reply (not yet a ConnectionLost: client side).
        assert len(errors) == 1 and isinstance(errors[0], InstrumentError)
        assert wait_for(lambda: ("disconnect", "end", 820.0) in phases(inj))
        again = mpms3_driver(lab)
        assert elapsed(lab, again.get_clock()[0]) >= 820.0 - 1e-3
        assert again.get_temperature()[1] == "Stable"
        again.close()
    finally:
        inj.stop()
        drv.close()


# -- laser ------------------------------------------------------------------------------------------
def test_laser_interlock_and_pilas_wire_faults_from_a_lab_script(tmp_path):
    with SimulatedLab(speed=SPEED, seed=5, sample="mCB-Nd", mass_mg=10.0,
                      data_dir=tmp_path / "data") as lab:
        ep = lab.endpoints["pl"]
        taiko = connect_taiko(ep["taiko"]["host"], ep["taiko"]["port"], name="taiko")
        pilas = connect_pilas(ep["pilas"]["url"], name="pilas", timeout_s=0.3,
                              retry=RetryPolicy.none())   # faults surface as they happen
        inj = inject(lab, FaultScript()
                     .at("laser_interlock", 10, target="laser", duration_s=50)
                     .at("garbled", 30, target="pilas").at("timeout", 30, target="pilas"))
        try:
            assert {"laser", "pilas", "mpms3", "ppms"} <= set(inj.targets)
            with taiko.acquisition():
                taiko.update_lock_state()
                assert not taiko.locked.get() and taiko.emission.get()
                lab.clock.sleep(20.0)                           # instrument time passes
                assert wait_for(lambda: lab.pl.laser.snapshot().hard_locked)
                taiko.update_lock_state()
                assert taiko.locked.get() and not taiko.emission.get()
                assert not taiko.soft_lock.get()                # the interlock, not the soft lock
                # The open interlock keeps instrument time running until it closes at 60 s.
                assert wait_for(lambda: not lab.pl.laser.snapshot().hard_locked)
                assert elapsed(lab) >= 60.0
                taiko.update_lock_state()
                assert not taiko.locked.get() and taiko.emission.get()
            with pytest.raises(InstrumentError, match="unexpected reply"):
                pilas.driver.get_emission()
            with pytest.raises(InstrumentTimeout):
                pilas.driver.get_emission()
            assert pilas.driver.get_emission() is False
            assert phases(inj)[:4] == [("laser_interlock", "start", 10.0),
                                       ("garbled", "start", 30.0), ("timeout", "start", 30.0),
                                       ("laser_interlock", "end", 60.0)]
        finally:
            inj.stop()
            taiko.close()
            pilas.close()


def test_simulated_lab_takes_a_fault_script_as_dicts(tmp_path):
    items = [{"kind": "helium_low", "target": "ppms", "at_s": 30.0, "duration_s": 60.0,
              "params": {"percent": 12.0}}]
    with stand_in_lab(tmp_path / "data", faults=items) as lab:
        assert lab.faults is not None and lab.faults.planned
        lab.clock.sleep(40.0)
        assert wait_for(lambda: lab.ppms.helium_percent() < 13.0)
        assert any(h.kind == "helium_low" for h in lab.faults.history)
    assert lab.faults is not None          # stopped with the lab, history kept
