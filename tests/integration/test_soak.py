"""Soak test, reduced for CI (the full one: ``benchmarks/soak_campaign.py``): a short simulated
campaign with faults (a seeded Poisson mix plus a few at fixed instrument times: helium low,
temperature excursion, quench, garbled, timeout, disconnect, laser interlock; >= 10 injected),
killed twice (SIGKILL at seeded random moments) and resumed, ends with exactly the planned
points, each once. Also the ``[[instruments.sim.faults]]`` campaign format and how the session
hands it to the lab."""

from __future__ import annotations

import importlib.util
import pathlib
import threading

import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky.suspenders import SuspendBoolHigh
from ophyd import Signal

from campaign_files import write_toml
from polling import wait_for
from spinlight.campaign import CampaignError, load_campaign
from spinlight.campaign_devices import InstrumentSession
from spinlight.cmd_campaign import summary
from spinlight.instruments.mpms3_device import connect_mpms3
from spinlight.plans import Sample, m_h
from spinlight.plans.suspenders import campaign_suspenders, install, remove
from spinlight.simulators.lab import SimulatedLab

BENCH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "soak_campaign.py"
_spec = importlib.util.spec_from_file_location("soak_campaign", BENCH)
soak = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(soak)

HEAD = """
[campaign]
name = "soak-ci"

[suspenders]
resume_wait_s = 120.0          # >= the longest point (instrument s)
reconnect_attempts = 6
reconnect_backoff_s = 0.2

[instruments]
mode = "sim"

[instruments.sim]
speed = 2000.0
seed = 3
"""

TIMEOUT_AT_S = 3700.0

# one [[instruments.sim.faults]] entry a row: kind, target, then the entry's other keys
FAULT_ROWS = [
    ("helium_low", "ppms", "rate_per_h = 1.5", "duration_s = 1200.0", "params = { percent = 10.0 }"),
    ("temperature_excursion", "mpms3", "rate_per_h = 1.5", "duration_s = 900.0",
     "params = { delta_K = 2.0 }"),
    ("quench", "ppms", "at_s = 2200.0"),
    ("quench", "mpms3", "rate_per_h = 1.5"),
    ("garbled", "mpms3", "rate_per_h = 1.5"),
    ("garbled", "ppms", "rate_per_h = 1.5"),
    # once per lab, late: its 5 s (wall) wait lets the lab clock run ~2000 s, and faults
    # that come due meanwhile all land on the operation being retried
    ("timeout", "ppms", f"at_s = {TIMEOUT_AT_S}"),
    ("disconnect", "mpms3", "at_s = 1000.0", "duration_s = 60.0"),
    ("disconnect", "ppms", "rate_per_h = 1.0", "duration_s = 60.0"),
    ("laser_interlock", "laser", "at_s = 1300.0", "duration_s = 600.0"),
]
FAULTS = "".join(f'\n[[instruments.sim.faults]]\nkind = "{kind}"\ntarget = "{target}"\n'
                 + "".join(f"{key}\n" for key in keys) for kind, target, *keys in FAULT_ROWS)

BODY = """
[[samples]]
name = "mCB-Nd"
mass_mg = 20.0
molar_mass_g_per_mol = 2312.0

[[measurements]]
plan = "ac_frequency_sweep"
sample = "mCB-Nd"
stations = ["mpms3", "ppms"]
temperature_K = 250.0
field_Oe = 1200.0
frequencies_Hz = { start = 10.0, stop = 10000.0, num = 8, spacing = "log" }

[[measurements]]
plan = "m_h"
sample = "mCB-Nd"
temperatures_K = [250.0]
fields_Oe = { start = 0.0, stop = 20000.0, step = 5000.0 }

[[measurements]]
plan = "emission_spectrum"
sample = "mCB-Nd"
excitation_nm = 300.0
start_nm = 1040.0
stop_nm = 1080.0
step_nm = 10.0
gate_s = 0.5
"""


def _write(tmp_path, text) -> pathlib.Path:
    return write_toml(tmp_path, "soak_ci.toml", text)


def _problems(text, tmp_path, **kw) -> list[str]:
    with pytest.raises(CampaignError) as err:
        load_campaign(_write(tmp_path, text), **kw)
    return [str(p) for p in err.value.problems]


# -- the format -------------------------------------------------------------------------------------
def test_faults_are_read_normalised_and_checked_per_entry(tmp_path):
    campaign = load_campaign(_write(tmp_path, HEAD + FAULTS + BODY))
    faults = campaign.instruments.sim.faults
    assert len(faults) == 10
    assert faults[0] == {"kind": "helium_low", "target": "ppms", "rate_per_h": 1.5,
                         "duration_s": 1200.0, "params": {"percent": 10.0, "refill_percent": 80.0}}
    assert faults[6]["at_s"] == 3700.0 and faults[6]["params"] == {"count": 1}
    shown = summary(campaign)          # what `spinlight check` prints
    assert "scripted faults (10): helium_low on ppms 1.5/h, " in shown
    assert "quench on ppms at 2200 s, quench on mpms3 1.5/h" in shown

    bad = FAULTS.replace('kind = "quench"\ntarget = "ppms"', 'kind = "quenched"\ntarget = "ppms"') \
        .replace('kind = "helium_low"\ntarget = "ppms"', 'kind = "helium_low"\ntarget = "mpms3"') \
        .replace("rate_per_h = 1.0\nduration_s = 60.0", "rate_per_h = 1.0\nduration_s = 0.0", 1) \
        .replace("params = { delta_K = 2.0 }", "params = { delta = 2.0 }") \
        .replace("at_s = 3700.0", "at_s = 3700.0\nrate_per_h = 1.0")
    problems = _problems(HEAD + bad + BODY, tmp_path)
    lines = (HEAD + bad + BODY).splitlines()

    def line_of(text):
        return next(n for n, line in enumerate(lines, 1) if line.startswith(text))
    f = str(tmp_path / "soak_ci.toml")
    target, params = line_of('target = "mpms3"'), line_of("params = { delta ")
    kind, header, duration = line_of('kind = "quenched"'), line_of('kind = "timeout"') - 1, \
        line_of("duration_s = 0.0")
    assert problems == [
        f"{f}:{target}: instruments.sim.faults[0].target: target='mpms3' cannot take a "
        "helium_low fault; choose one of ['ppms']",
        f"{f}:{params}: instruments.sim.faults[1].params.delta: unknown parameter 'delta' is "
        "not allowed; allowed: one of ['delta_K']",
        f"{f}:{kind}: instruments.sim.faults[2].kind: kind='quenched' is not allowed; allowed: "
        "one of ['disconnect', 'garbled', 'helium_low', 'laser_interlock', 'quench', "
        "'temperature_excursion', 'timeout']",
        f"{f}:{header}: instruments.sim.faults[6]: at_s/rate_per_h=(3700.0, 1.0) is not "
        "allowed; allowed: exactly one of them (a time, or a Poisson rate)",
        f"{f}:{duration}: instruments.sim.faults[8].duration_s: duration_s=0.0 is not allowed; "
        "allowed: > 0 s for disconnect",
    ]


def test_faults_only_in_sim_mode_and_pl_targets_need_a_pl_bench(tmp_path):
    real = HEAD.replace('mode = "sim"', 'mode = "real"') + FAULTS + BODY.split("[[measurements]]")[0] \
        + '[[measurements]]\nplan = "m_h"\nsample = "mCB-Nd"\ntemperatures_K = [10.0]\n' \
          'fields_Oe = [0.0, 1000.0]\n[instruments.mpms3]\nhost = "localhost"\n'
    (problem,) = _problems(real, tmp_path)
    assert "instruments.sim.faults: faults are injected only into the simulated lab" in problem
    assert load_campaign(tmp_path / "soak_ci.toml", sim=True).instruments.sim.faults  # --sim

    dy = (HEAD + FAULTS + BODY).replace('name = "mCB-Nd"', 'name = "Dy-SMM"') \
        .replace('sample = "mCB-Nd"', 'sample = "Dy-SMM"')
    dy = dy[:dy.index('[[measurements]]\nplan = "emission_spectrum"')]
    (problem,) = _problems(dy, tmp_path)
    assert "instruments.sim.faults[9].target: target='laser' is on the PL bench" in problem
    assert "['Dy-SMM']" in problem


def test_the_session_gives_the_faults_to_each_lab_but_not_to_a_rehearsal(tmp_path):
    text = HEAD + FAULTS.replace("at_s = 3700.0", "at_s = 0.0") + BODY
    campaign = load_campaign(_write(tmp_path, text))
    spec = campaign.measurements[1]
    with InstrumentSession(campaign, data_dir=tmp_path / "sim") as session:
        session.load(spec)
        lab = session.lab
        assert [f.to_dict() for f in lab.faults.script] == list(campaign.instruments.sim.faults)
        assert ("timeout", "ppms") in [(h.kind, h.target) for h in lab.faults.history]
        assert session.monitor_s == pytest.approx(0.1)      # 1 instrument s, at least 0.1 wall s
    with InstrumentSession(campaign, data_dir=tmp_path / "sim2", speed=1e6) as rehearsal:
        rehearsal.load(spec)
        assert rehearsal.lab.faults is None


# -- what the first soak runs found -----------------------------------------------------------------
def test_a_suspension_landing_between_save_and_checkpoint_does_not_store_the_point_twice():
    """A suspender's request reaches the RunEngine a few messages after it tripped: tripped at
    a point's ``create`` it lands after that point's ``save`` (before the next checkpoint
    message). ``install`` makes ``save`` take the checkpoint itself, so nothing is replayed."""
    def plan(reading):
        yield from bps.open_run()
        for _ in range(4):
            yield from bps.trigger_and_read([reading])
        yield from bps.close_run()

    trip, reading = Signal(name="trip", value=False), Signal(name="reading", value=1.0)
    RE = RunEngine(context_managers=[])
    suspender = SuspendBoolHigh(trip, sleep=0.01)
    install(RE, [suspender])
    creates, seq = [0], []

    def hook(msg):
        if msg.command == "create":
            creates[0] += 1
            if creates[0] == 3:
                trip.put(True)
                threading.Timer(0.1, trip.put, (False,)).start()
    RE.msg_hook = hook
    RE.record_interruptions = True
    RE(plan(reading), lambda name, doc: seq.append(doc["seq_num"]) if name == "event"
       and doc["data"].get("interruption") is None else None)
    assert seq == [1, 2, 3, 4]
    remove(RE, [suspender])
    assert RE._command_registry["save"] == RE._save


def test_a_quench_latched_before_the_run_is_cleared_not_waited_for(tmp_path, quiet_multipyvu):
    """bluesky waits for a suspender tripped before a plan starts without running its
    pre_plan; a latched quench (one between measurements) would be waited for forever."""
    with SimulatedLab(speed=200.0, seed=5, sample="mCB-Nd", data_dir=tmp_path / "sim") as lab:
        ep = lab.endpoints["mpms3"]
        mpms3, vsm = connect_mpms3(ep["host"], ep["port"], timeout_s=2.0, monitor_interval_s=0.02)
        try:
            lab.mpms3.inject_fault("quench")
            assert wait_for(mpms3.magnet_fault.get, timeout_s=5.0, poll_s=0.01)
            suspenders = campaign_suspenders([mpms3], resume_wait_s=0.05)
            RE = RunEngine(context_managers=[])
            install(RE, suspenders)
            (magnet,) = [x for x in suspenders if "magnet" in x._tripped_message]
            assert magnet.tripped
            magnet.get_futures()                       # what RE(plan) does first
            assert mpms3.driver.get_field()[1] != "Quenching"
            events = []
            RE(m_h(mpms3, vsm, Sample(name="x", mass_mg=20.0, molar_mass_g_per_mol=2312.0),
                   temperatures_K=[300.0], fields_Oe=[1000.0], averaging_time_s=1.0),
               lambda name, doc: events.append(doc) if name == "event" else None)
            assert len(events) == 1 and not mpms3.magnet_fault.get()
            remove(RE, suspenders)
        finally:
            mpms3.close()


# -- the soak -----------------------------------------------------------------------------------------
def test_soak_with_faults_killed_twice_and_resumed_stores_every_point_once(tmp_path):
    """The campaign with its faults, killed (SIGKILL) twice at seeded random moments and
    resumed each time; checked after each kill and at the end (``kill_phase``). The
    unattended run of the full benchmark's phase 1 is left to ``benchmarks/soak_campaign.py``
    (CI time): here the last resume runs unattended to the end."""
    path = _write(tmp_path, HEAD + FAULTS + BODY)
    problems, stats = soak.kill_phase(path, tmp_path / "kills", kills=2, seed=1, max_delay_s=0.3,
                                      min_faults=10)
    assert not problems, (problems, stats)
    assert stats["kills"] == 2 and stats["points"] == stats["expected"] == 18
    assert stats["status"] == "success" and stats["missed"] == 0
    assert stats["suspended"] >= 2 and stats["reconnected"] >= 1 and stats["retries"] >= 1
    kinds = {k.split(" on ")[0] for k in stats["by_kind"]}
    # fault times are per lab: the timeout is due only on a lab that ran past TIMEOUT_AT_S (a
    # resume for the last few points can end before); a lab that did reports it (missed == 0)
    due = {"helium_low", "temperature_excursion", "quench", "garbled", "disconnect",
           "laser_interlock"} | ({"timeout"} if stats["lab_reach_s"] >= TIMEOUT_AT_S else set())
    assert kinds == due, stats["lab_reach_s"]
