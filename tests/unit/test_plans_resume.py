"""Continuations (``resume_after``/``continues``): each plan, run against the simulated lab,
measures exactly the tail of its full plan, with the same per-point metadata, and never sets a
setpoint of a skipped point; bad values are refused when the plan is made."""

from __future__ import annotations

import numpy as np
import pytest
from bluesky import RunEngine

from spinlight.instruments.mpms3_device import connect_mpms3, mpms3_ac_detector
from spinlight.instruments.ppms_device import connect_ppms, ppms_ac_detector
from spinlight.instruments.spectrofluorometer import connect_spectrofluorometer
from spinlight.plans import Sample, chi_t, m_h, mce_isotherms
from spinlight.plans.dc import sweep_continuation, sweep_finished
from spinlight.plans.ac import ac_field_scan, mpms3_ac_station, ppms_ac_station
from spinlight.plans.pl import emission_spectrum
from spinlight.plans.resume import blocks_left
from spinlight.simulators.lab import SimulatedLab

SAMPLE = Sample(name="mCB-Nd", mass_mg=20.0, molar_mass_g_per_mol=2361.0)
UID = "0f1e2d3c-interrupted-run"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with SimulatedLab(speed=20000, seed=3, sample="mCB-Nd", mass_mg=20.0,
                      data_dir=tmp_path_factory.mktemp("sim")) as lab:
        ep = lab.endpoints
        mpms3, vsm, ac = connect_mpms3(ep["mpms3"]["host"], ep["mpms3"]["port"], ac=True)
        ppms = connect_ppms(ep["ppms"]["resource"])
        pl = ep["pl"]
        fl = connect_spectrofluorometer(pl["excitation_mono"]["url"], pl["emission_mono"]["url"],
                                        pl["housing"]["url"])
        for mono in (fl.excitation, fl.emission):
            mono.wavelength.poll_interval_s.put(0.005)
        stations = [mpms3_ac_station(mpms3, mpms3_ac_detector(mpms3, name="mpms3_ac")),
                    ppms_ac_station(ppms, ppms_ac_detector(ppms))]
        try:
            yield {"mpms3": mpms3, "vsm": vsm, "stations": stations, "fl": fl}
        finally:
            for dev in (mpms3, ppms, fl):
                dev.close()


class Record:
    """One plan run: its start document, its events ``(stream, data)`` in order, and the
    ``set`` messages ``(device name, value)`` split at each event (``segments[0]`` before the
    first event, ``segments[i]`` between events i-1 and i, the last one after the last)."""

    def __init__(self, plan):
        RE = RunEngine(context_managers=[])
        msgs, docs = [], []
        RE.msg_hook = msgs.append
        RE.subscribe(lambda name, doc: docs.append((name, doc)))
        RE(plan)
        (self.start,) = [d for n, d in docs if n == "start"]
        streams = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
        self.events = [(streams[d["descriptor"]], d["data"]) for n, d in docs if n == "event"]
        self.segments = [[]]
        for m in msgs:
            if m.command == "set":
                self.segments[-1].append((m.obj.name, m.args[0]))
            elif m.command == "save":
                self.segments.append([])

    def sets(self, *names):
        return [(n, v) for seg in self.segments for n, v in seg if n in names]


def assert_continues(full: Record, cont: Record, k: int, approach: list, moved: tuple):
    """``cont`` is ``full`` after its first ``k`` points: same events (streams, setpoints,
    metadata) in order, same moves between points and after the last, and before its first
    point only ``approach`` among the ``moved`` setpoints (config and metadata may come too)."""
    assert len(full.events) > k
    assert [s for s, _ in cont.events] == [s for s, _ in full.events[k:]]
    assert [sorted(d) for _, d in cont.events] == [sorted(d) for _, d in full.events[k:]]
    assert cont.segments[1:] == full.segments[k + 1:]
    assert [(n, v) for n, v in cont.segments[0] if n in moved] == approach
    assert cont.start["plan_args"] == full.start["plan_args"]
    assert cont.start["plan_name"] == full.start["plan_name"]
    assert cont.start["num_points"] == len(full.events) - k
    assert cont.start["num_points_total"] == full.start["num_points"] == len(full.events)
    assert cont.start["resume_after"] == k and cont.start["continues"] == UID
    assert "continues" not in full.start


def column(rec: Record, *keys):
    return [tuple(float(d[key]) for key in keys) for _, d in rec.events]


# ------------------------------------------------------------------------------------- dc
DC_MOVES = ("mpms3_temperature", "mpms3_field")
MH = dict(temperatures_K=[2.0, 4.0], fields_Oe=[0.0, 1000.0, 2000.0], field_rate_Oe_per_s=300)


@pytest.mark.parametrize("k, approach", [
    (0, [("mpms3_field", 0.0), ("mpms3_temperature", 2.0), ("mpms3_field", 0.0)]),
    # inside an isotherm: its temperature, then straight to the next field (no zero-field trip)
    (2, [("mpms3_temperature", 2.0), ("mpms3_field", 2000.0)]),
    # at an isotherm's start: as the full plan does it, never through 2 K
    (3, [("mpms3_field", 0.0), ("mpms3_temperature", 4.0), ("mpms3_field", 0.0)]),
    (5, [("mpms3_temperature", 4.0), ("mpms3_field", 2000.0)]),
])
def test_m_h_continuation_is_the_tail_of_the_full_plan(lab, k, approach):
    mpms3, vsm = lab["mpms3"], lab["vsm"]
    full = Record(m_h(mpms3, vsm, SAMPLE, **MH))
    cont = Record(m_h(mpms3, vsm, SAMPLE, **MH, resume_after=k, continues=UID))
    assert_continues(full, cont, k, approach, DC_MOVES)
    keys = ("mpms3_temperature_setpoint", "mpms3_field_setpoint")
    assert column(cont, *keys) == column(full, *keys)[k:]
    if k >= 3:
        assert ("mpms3_temperature", 2.0) not in cont.sets(*DC_MOVES)


def test_mce_isotherms_continuation_keeps_its_metadata(lab):
    mpms3, vsm = lab["mpms3"], lab["vsm"]
    opts = dict(temperatures_K=[3.0, 2.0], fields_Oe=[0.0, 1000.0], field_rate_Oe_per_s=300)
    full = Record(mce_isotherms(mpms3, vsm, SAMPLE, **opts))
    cont = Record(mce_isotherms(mpms3, vsm, SAMPLE, **opts, resume_after=3, continues=UID))
    assert_continues(full, cont, 3, [("mpms3_temperature", 3.0), ("mpms3_field", 1000.0)], DC_MOVES)
    assert cont.start["delta_b_T"] == full.start["delta_b_T"] == [0.1]


def test_chi_t_settle_continuation_measures_the_remaining_temperatures(lab):
    mpms3, vsm = lab["mpms3"], lab["vsm"]
    opts = dict(field_Oe=1000.0, temperatures_K=[10.0, 8.0, 6.0, 4.0], rate_K_per_min=20.0)
    full = Record(chi_t(mpms3, vsm, SAMPLE, **opts))
    cont = Record(chi_t(mpms3, vsm, SAMPLE, **opts, resume_after=2, continues=UID))
    assert_continues(full, cont, 2, [("mpms3_field", 1000.0), ("mpms3_temperature", 6.0)], DC_MOVES)
    assert cont.sets("mpms3_temperature") == [("mpms3_temperature", 6.0), ("mpms3_temperature", 4.0)]


def test_chi_t_sweep_continues_one_step_past_the_last_logged_temperature(lab):
    mpms3, vsm = lab["mpms3"], lab["vsm"]
    # 12 K/min logged every 5 s: one point per 1.0 K, nominally 10, 9, ... 5 K
    opts = dict(mode="sweep", field_Oe=1000.0, t_start_K=10.0, t_stop_K=4.5, rate_K_per_min=12.0,
                log_interval_s=5.0)
    full = Record(chi_t(mpms3, vsm, SAMPLE, **opts))
    full_t = [d["vsm_temperature"] for _, d in full.events]
    assert full.start["num_points"] == 6
    np.testing.assert_allclose(full_t[:6], [10, 9, 8, 7, 6, 5], atol=0.05)
    last = full_t[1]                           # interrupted after 2 points
    cont = Record(chi_t(mpms3, vsm, SAMPLE, **opts, resume_after=2, continues=UID,
                        resume_from_K=last))
    cont_t = [d["vsm_temperature"] for _, d in cont.events]
    assert cont.sets("mpms3_temperature")[:2] == [("mpms3_temperature", pytest.approx(last - 1.0)),
                                                  ("mpms3_temperature", 4.5)]
    assert ("mpms3_temperature", 10.0) not in cont.sets("mpms3_temperature")
    np.testing.assert_allclose(cont_t[:4], full_t[2:6], atol=0.05)   # the remaining points
    assert max(cont_t) < last - 0.9                                  # none measured twice
    start = cont.start
    assert start["num_points"] == 4 and start["num_points_total"] == 6
    assert start["resume_from_K"] == last and start["sweep_from_K"] == pytest.approx(last - 1.0)
    assert start["plan_args"] == full.start["plan_args"]


# ------------------------------------------------------------------------------------- ac
def test_ac_continuation_counts_both_streams_in_plan_order(lab):
    stations = lab["stations"]
    # per set: MPMS3 at 1, 10, 100 Hz, then the PPMS at 2000, 5000 Hz; sets at 500 and 1000 Oe
    opts = dict(temperature_K=2.0, fields_Oe=[500.0, 1000.0], frequencies_Hz=[1, 10, 100, 2000, 5000],
                averaging_time_s=2.0, cycles=2)
    full = Record(ac_field_scan(stations, SAMPLE, **opts))
    assert [s for s, _ in full.events] == (["ac_mpms3"] * 3 + ["ac_ppms"] * 2) * 2
    moved = ("mpms3_field", "ppms_field", "mpms3_temperature", "ppms_temperature",
             "mpms3_ac_frequency_hz", "ppms_ac_frequency_hz", "ac_set_index")
    set0 = [("ac_set_index", 0), ("mpms3_field", 500.0), ("mpms3_temperature", 2.0),
            ("ppms_field", 500.0), ("ppms_temperature", 2.0)]
    set1 = [("ac_set_index", 1), ("mpms3_field", 1000.0), ("mpms3_temperature", 2.0),
            ("ppms_field", 1000.0), ("ppms_temperature", 2.0)]
    for k, approach in [(4, set0 + [("ppms_ac_frequency_hz", 5000.0)]),      # inside set 0
                        (5, set1 + [("mpms3_ac_frequency_hz", 1.0)])]:     # at set 1
        cont = Record(ac_field_scan(stations, SAMPLE, **opts, resume_after=k, continues=UID))
        assert_continues(full, cont, k, approach, moved)
        # per-point metadata the analysis merges by: set index and setpoints
        keys = ("ac_set_index", "ac_temperature_setpoint_K", "ac_field_setpoint_Oe")
        assert column(cont, *keys) == column(full, *keys)[k:]
        assert cont.start["ac_streams"] == full.start["ac_streams"] == ["ac_mpms3", "ac_ppms"]
        assert cont.start["num_sets"] == 2
    assert ("mpms3_field", 500.0) not in cont.sets(*moved)


# ------------------------------------------------------------------------------------- PL
def test_emission_spectrum_continuation_starts_at_the_next_wavelength(lab):
    fl = lab["fl"]
    opts = dict(excitation_nm=330.0, start_nm=1020.0, stop_nm=1060.0, step_nm=10.0, gate_s=0.05)
    full = Record(emission_spectrum(fl, SAMPLE, **opts))
    cont = Record(emission_spectrum(fl, SAMPLE, **opts, resume_after=3, continues=UID))
    scan = full.start["spectrum"]["wavelength_key"]
    # the monochromator goes straight to 1050 nm (before the dark count, then for the point)
    assert_continues(full, cont, 3, [(scan, 1050.0)] * 2, (scan,))
    assert column(cont, scan) == [(1050.0,), (1060.0,)]
    assert not {1020.0, 1030.0, 1040.0} & {v for _, v in cont.sets(scan)}
    assert cont.start["spectrum"]["dark_cps"] > 0                   # its own dark count


# ------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("make, words", [
    (lambda: m_h(None, None, SAMPLE, **MH, resume_after=6), ["resume_after=6", "0..5"]),
    (lambda: m_h(None, None, SAMPLE, **MH, resume_after=-1), ["resume_after=-1", "0..5"]),
    (lambda: m_h(None, None, SAMPLE, **MH, resume_after=2.5), ["resume_after=2.5", "whole", "0..5"]),
    (lambda: m_h(None, None, SAMPLE, **MH, continues=""), ["continues=''", "uid"]),
    (lambda: mce_isotherms(None, None, SAMPLE, temperatures_K=[2, 3], fields_Oe=[0, 1000],
                           resume_after=4), ["resume_after=4", "0..3"]),
    (lambda: chi_t(None, None, SAMPLE, temperatures_K=[5, 4], resume_after=2), ["resume_after=2", "0..1"]),
    (lambda: chi_t(None, None, SAMPLE, temperatures_K=[5, 4], resume_from_K=4.0),
     ["resume_from_K=4.0", "only to continuing a sweep"]),
    (lambda: chi_t(None, None, SAMPLE, mode="sweep", t_start_K=10, t_stop_K=4.5, rate_K_per_min=12,
                   log_interval_s=5, resume_after=2), ["resume_from_K is required", "10", "4.5"]),
    # the last point was within one step (1 K) + 0.1 K of the end: nothing left to sweep
    (lambda: chi_t(None, None, SAMPLE, mode="sweep", t_start_K=10, t_stop_K=4.5, rate_K_per_min=12,
                   log_interval_s=5, resume_after=5, resume_from_K=5.2),
     ["resume_from_K=5.2", "5.6..10"]),
    (lambda: chi_t(None, None, SAMPLE, mode="sweep", t_start_K=10, t_stop_K=4.5, rate_K_per_min=12,
                   log_interval_s=5, resume_after=1, resume_from_K=11.0), ["resume_from_K=11.0"]),
])
def test_bad_resume_arguments_are_refused_when_the_plan_is_made(make, words):
    with pytest.raises(ValueError) as err:
        make()
    for w in words:
        assert w in str(err.value)


def test_bad_resume_after_is_refused_by_ac_and_pl_plans(lab):
    opts = dict(temperature_K=2.0, fields_Oe=[500.0, 1000.0], frequencies_Hz=[1, 10, 2000])
    with pytest.raises(ValueError, match=r"resume_after=6 is outside the allowed range 0\.\.5"):
        ac_field_scan(lab["stations"], SAMPLE, **opts, resume_after=6)
    with pytest.raises(ValueError, match=r"continues=3 must be the uid"):
        ac_field_scan(lab["stations"], SAMPLE, **opts, continues=3)
    with pytest.raises(ValueError, match=r"resume_after=5 is outside the allowed range 0\.\.4"):
        emission_spectrum(lab["fl"], SAMPLE, excitation_nm=330.0, start_nm=1020.0, stop_nm=1060.0,
                          step_nm=10.0, resume_after=5)


def test_a_sweep_continuation_is_placed_by_temperature_not_by_count():
    # a sweep's count is nominal (rows come every ~log_interval_s): more points than the
    # nominal 6 may precede the interruption; the last logged temperature places the rest
    chi_t(None, None, SAMPLE, mode="sweep", t_start_K=10, t_stop_K=4.5, rate_K_per_min=12,
          log_interval_s=5, resume_after=9, resume_from_K=7.0)
    sweep = dict(rate_K_per_min=12, log_interval_s=5)
    assert sweep_continuation(t_start_K=10, t_stop_K=4.5, resume_from_K=7.0, **sweep) == (6.0, 2)
    assert sweep_continuation(t_start_K=2, t_stop_K=10, resume_from_K=4.0, **sweep) == (5.0, 6)



@pytest.mark.parametrize("t_start_K,t_stop_K", [(10.0, 4.5), (2.0, 10.0)])
def test_a_sweep_is_finished_exactly_when_it_cannot_be_continued(t_start_K, t_stop_K):
    """A sweep killed after its last logged point is done (the resume skips it); any other
    last temperature can be continued."""
    sweep = dict(t_start_K=t_start_K, t_stop_K=t_stop_K, rate_K_per_min=12, log_interval_s=5)
    for resume_from_K in np.linspace(t_start_K, t_stop_K, 57):
        finished = sweep_finished(resume_from_K=resume_from_K, **sweep)
        if finished:
            with pytest.raises(ValueError, match="resume_from_K"):
                sweep_continuation(resume_from_K=resume_from_K, **sweep)
        else:
            t_from, points = sweep_continuation(resume_from_K=resume_from_K, **sweep)
            assert points >= 1 and abs(t_from - resume_from_K) == pytest.approx(1.0)
    # the last point of the nominal grid (1 K steps) leaves nothing; one before it does
    last = t_stop_K - np.sign(t_stop_K - t_start_K) * 0.5
    assert sweep_finished(resume_from_K=last, **sweep)
    assert not sweep_finished(resume_from_K=last - np.sign(t_stop_K - t_start_K) * 1.0, **sweep)


def test_blocks_left_enters_a_partly_measured_block_at_its_next_point():
    assert blocks_left([3, 3, 3], 0) == [(0, 0), (1, 0), (2, 0)]
    assert blocks_left([3, 3, 3], 4) == [(1, 1), (2, 0)]
    assert blocks_left([3, 3, 3], 6) == [(2, 0)]
    assert blocks_left([3, 3, 3], 8) == [(2, 2)]
    assert blocks_left([3, 3, 3], 9) == []
