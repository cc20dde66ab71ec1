"""``lifetime_decay`` on the PL bench over loopback (real drivers, bluesky RunEngine, virtual
clock at 1e5 x): the net peak count reached, the dark-only refusal, the total-count-rate rule
and the tail-fit cross-check of the streamed analysis.

Net peaks are measured here independently of the plan: the highest channel of the stored
histogram minus the simulator's true dark rate × the run's acquisition time / channels per
period.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from bluesky import RunEngine
from documents import runs_of
from spinlight.analysis.pl_streaming import make_pl_analysis_router
from spinlight.demo_pl import connect_pl
from spinlight.instruments import picoquant_defs as hh
from spinlight.plans import Sample
from spinlight.plans.lifetime import lifetime_decay
from spinlight.simulators.clock import VirtualClock
from spinlight.simulators.pl_bench import PLBench
from spinlight.simulators.samples import get_luminescence

SPEED = 1.0e5
TARGET = 1.0e4
#: (preset, emission nm, expected lifetimes ns, n_exp): the Yb emission of mCB-NdYb (weak, on a
#: large dark floor, rising with the Nd donor) and the Nd emission of mCB-Nd.
DECAYS = [("mCB-NdYb", 980.0, [122.0, 607.0], 2), ("mCB-Nd", 1060.0, [134.0], 1)]


@contextlib.contextmanager
def bench(preset: str, seed: int):
    clock = VirtualClock(SPEED, freeze_when_idle=True)
    pl = PLBench(clock, get_luminescence(preset), seed=seed)
    devices = []
    try:
        devices = connect_pl(pl.start())
        yield (pl, clock, *devices)
    finally:
        for dev in devices:
            dev.close()
        pl.stop()
        clock.stop()


def sample(preset: str) -> Sample:
    return Sample(name=preset, mass_mg=5.0, molar_mass_g_per_mol=2500.0, ions={"Nd": 3})


def run(plan, *callbacks):
    """(documents, messages) of ``plan`` on a fresh RunEngine."""
    docs, msgs = [], []
    RE = RunEngine(context_managers=[])
    RE.msg_hook = msgs.append
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    for cb in callbacks:
        RE.subscribe(cb)
    try:
        RE(plan)
    finally:
        RE.msg_hook = None
    return docs, msgs


def net_peak(pl, start, event) -> float:
    dec, acq = start["decay"], start["acquisition"]
    counts = np.asarray(event[dec["counts_key"]], dtype=float)
    floor = (pl.housing.pmt.dark_count_rate_cps * event[dec["acquisition_time_key"]]
             * acq["resolution_ps"] * 1e-12 * dec["repetition_rate_hz"])
    return float(counts.max() - floor)


def assert_safe(pl):
    snap = pl.laser.snapshot()
    assert snap.soft_locked and not snap.emitting
    assert pl.housing.shutters == {"LAMP": "CLOSED", "DETECTOR": "CLOSED"}


def laser_stages(msgs, laser) -> int:
    return sum(1 for m in msgs if m.command == "stage" and m.obj is laser)


@pytest.fixture(scope="module")
def decays():
    """Each of DECAYS (IRF measured first) with the streaming analysis subscribed."""
    out = {}
    for seed, (preset, nm, taus, n_exp) in enumerate(DECAYS, 21):
        derived = []
        with bench(preset, seed) as (pl, clock, fl, tcspc, laser):
            docs, _ = run(lifetime_decay(fl, laser, tcspc, sample(preset), emission_nm=nm,
                                         expected_lifetime_ns=taus, n_exp=n_exp,
                                         peak_counts=TARGET),
                          make_pl_analysis_router(lambda name, doc: derived.append((name, doc))))
            out[preset, nm] = (pl, runs_of(docs), derived)
            assert_safe(pl)
    return out


@pytest.mark.parametrize("preset, nm", [(p, nm) for p, nm, _, _ in DECAYS])
def test_the_net_peak_reaches_the_requested_count(decays, preset, nm):
    pl, runs, _ = decays[preset, nm]
    assert [s["measurement"] for s, _ in runs] == ["instrument_response", "lifetime_decay"]
    for start, events in runs:
        (event,) = events                                   # one summed histogram per run
        dec = start["decay"]
        assert event[dec["acquisitions_key"]] >= 1
        assert event[dec["acquisition_time_key"]] <= start["acquisition"]["max_acquisition_s"]
        assert start["acquisition"]["target_peak_counts"] == TARGET
        assert 0.85 * TARGET <= net_peak(pl, start, event) <= 1.15 * TARGET


def test_the_acquisition_stops_at_max_acquisition_s(caplog):
    with bench("mCB-Nd", 3) as (pl, clock, fl, tcspc, laser):
        docs, _ = run(lifetime_decay(fl, laser, tcspc, sample("mCB-Nd"), emission_nm=1060.0,
                                     expected_lifetime_ns=134.0, irf=None, peak_counts=1e6,
                                     max_acquisition_s=30.0))
    ((start, (event,)),) = runs_of(docs)
    assert event["tcspc_acquisition_time_s"] == pytest.approx(30.0, abs=0.01)
    assert net_peak(pl, start, event) < 0.1 * 1e6                 # short, but capped
    assert "of the 1e+06 requested after 30 s (max_acquisition_s=30)" in caplog.text


def test_a_dark_only_wavelength_is_refused_before_the_long_acquisition():
    with bench("mCB-Nd", 4) as (pl, clock, fl, tcspc, laser):
        t0 = clock.now()
        with pytest.raises(RuntimeError, match=r"no luminescence above the dark counts at "
                           r"emission_nm=1600 nm.*signal rate .*dark rate of \d+ counts/s"):
            run(lifetime_decay(fl, laser, tcspc, sample("mCB-Nd"), emission_nm=1600.0,
                               expected_lifetime_ns=134.0, irf=None))
        assert clock.now() - t0 < 30.0                 # dark + one 1 s preview, no 964 s
        assert tcspc.acquisitions.get() == 1 and tcspc.acquisition_time_s.get() == 1.0
        assert_safe(pl)                                # the simulator's own state


def test_the_total_count_rate_stays_within_max_count_fraction():
    # at 2 mm slit and full intensity the Yb signal alone is ~4.9 % of the repetition rate:
    # with the dark counts the total would be ~6.4 %, which the HydraHarp warns about
    with bench("mCB-Yb", 5) as (pl, clock, fl, tcspc, laser):
        docs, _ = run(lifetime_decay(fl, laser, tcspc, sample("mCB-Yb"), emission_nm=1000.0,
                                     expected_lifetime_ns=608.0, irf=None, peak_counts=2000,
                                     emission_slit_um=2000.0, max_count_fraction=0.05))
        assert_safe(pl)
    ((start, (event,)),) = runs_of(docs)
    acq, rep = start["acquisition"], start["decay"]["repetition_rate_hz"]
    assert acq["intensity_permille"] < 1000                         # the rule lowered it
    assert acq["count_fraction"] <= 0.05 and acq["count_fraction"] == pytest.approx(
        acq["total_rate_cps"] / rep)
    assert acq["total_rate_cps"] == pytest.approx(acq["signal_rate_cps"]
                                                  + start["decay"]["dark_cps"])
    assert 0 < acq["signal_fraction"] < acq["count_fraction"] - 0.01   # dark is ≥ 1.5 %
    ratio = event["tcspc_count_rate"] / event["tcspc_sync_rate"]      # the simulator's rates
    assert 0.03 < ratio <= 0.05
    assert not event["tcspc_warnings"] & hh.HH_WARNING["INPT_RATE_RATIO"]


def test_dark_counts_alone_above_the_limit_are_refused_before_any_light():
    # 608 ns → ≤ 329 kHz; 1 % of it is 3.3 kcps, below the NIR-PMT's 5 kcps dark rate
    with bench("mCB-Yb", 6) as (pl, clock, fl, tcspc, laser):
        msgs = []
        with pytest.raises(ValueError, match=r"max_count_fraction=0\.01 allows a total count "
                           r"rate of 3\d{3} counts/s at repetition_rate_hz=3\d{5} Hz, but "
                           r"the dark count rate alone is [45]\d{3}"):
            RE = RunEngine(context_managers=[])
            RE.msg_hook = msgs.append
            RE(lifetime_decay(fl, laser, tcspc, sample("mCB-Yb"), emission_nm=1000.0,
                              expected_lifetime_ns=608.0, irf=None, max_count_fraction=0.01))
        assert laser_stages(msgs, laser) == 0 and not [m for m in msgs if m.command == "open_run"]
        assert_safe(pl)


def test_the_streamed_analysis_carries_the_tail_cross_check(decays):
    for preset, nm, _, n_exp in DECAYS:
        _, runs, derived = decays[preset, nm]
        (start,) = [d for n, d in derived if n == "start" and d["plan_name"] == "lifetime_analysis"]
        (event,) = [d["data"] for n, d in derived if n == "event"]
        res = start["results"]
        assert start["derived_from"] == runs[1][0]["uid"] and res["fit_kind"] == "reconvolution"
        assert res["tail_compared"] == f"tau{n_exp}" and res["tail_agrees"] is True
        tau = res["taus_ns"][-1]
        assert abs(res["tail_tau_ns"] - tau) < 3 * np.hypot(res["tail_tau_err_ns"],
                                                            res["tau_errs_ns"][-1])
        assert event["tail_agrees"] is True and event["tail_tau_ns"] == res["tail_tau_ns"]
