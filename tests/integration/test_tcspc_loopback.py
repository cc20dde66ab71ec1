"""TCSPC driver and Ophyd devices <- newline-JSON RPC sockets <- HydraHarp and Taiko simulators.

The light is an exponential decay (τ = 100 ns, δ response) whose expected histogram this file
computes on its own (``expected_counts``), so the simulator's mapping onto channels, its
Poisson counting and its timing are checked against an independent formula. The virtual clock
freezes when the bench is idle, so the instrument time an acquisition takes is exact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from spinlight.analysis.lifetime_fit import tail_fit
from spinlight.instruments.errors import InstrumentError
from spinlight.instruments.harp import HarpLib, SocketRpcHarpBackend
from spinlight.instruments.laser import connect_taiko
from spinlight.instruments.tcspc import TCSPCDriver, connect_tcspc
from spinlight.simulators.clock import VirtualClock
from spinlight.simulators.tcspc_lab import TCSPCLab
from spinlight.simulators.tcspc_light import ExponentialSource

TAU_NS, MU_FULL, SYNC_DELAY_NS = 100.0, 0.02, 5.0
SETTINGS = dict(binning=8, histogram_length_code=2)       # 256 ps x 4096 channels = 1.05 µs


def expected_counts(t_ns, res_ns, *, rep_hz, mu, tacq_s, tau=TAU_NS, shift=SYNC_DELAY_NS,
                    divider=1):
    """Counts per channel [t, t + res) for an exponential excited every period (δ IRF); the
    sync marks every ``divider``-th pulse, so a channel sees 1/divider of the photons of its
    time and nothing arrives later than ``divider`` periods."""
    period = 1e9 / rep_hz

    def per_pulse(x):   # fraction of one pulse's photons in [0, x) after the sync, periodic
        k = np.floor(x / period)
        r = x - k * period
        return k + np.expm1(-r / tau) / np.expm1(-period / tau)

    t, end = np.asarray(t_ns), divider * period
    a, b = np.minimum(t, end) - shift, np.minimum(t + res_ns, end) - shift
    return rep_hz * mu * tacq_s * (per_pulse(b) - per_pulse(a)) / divider


def reduced_chi2(counts, expected) -> float:
    use = expected >= 5
    return float(np.sum((counts[use] - expected[use]) ** 2 / expected[use]) / use.sum())


def make_bench(speed=1000.0, seed=1, source=None):
    clock = VirtualClock(speed, freeze_when_idle=True)
    lab = TCSPCLab(clock, source or ExponentialSource(TAU_NS, MU_FULL), seed=seed)
    return clock, lab, lab.start()


@pytest.fixture
def bench():
    clock, lab, ep = make_bench()
    det = connect_tcspc(ep["hydraharp"]["host"], ep["hydraharp"]["port"], rate_settle_s=0.01,
                        **SETTINGS)
    laser = connect_taiko(ep["taiko"]["host"], ep["taiko"]["port"])
    yield clock, lab, det, laser
    det.close()
    laser.close()
    lab.stop()
    clock.stop()


def acquire(det, tacq_s, clock):
    det.tacq_s.put(tacq_s)
    t0 = clock.now()
    finished = []
    status = det.trigger()
    status.add_callback(lambda st: finished.append(clock.now()))
    status.wait(10)
    assert status.success
    return t0, finished[0]


def test_acquisition_takes_tacq_instrument_time_and_histogram_has_the_decay(bench):
    clock, lab, det, laser = bench
    assert laser.soft_lock.get() is True and lab.laser.snapshot().soft_locked     # default
    with laser.acquisition():
        assert not lab.laser.snapshot().soft_locked
        t0, done_at = acquire(det, 30.0, clock)
    assert lab.laser.snapshot().soft_locked                                        # relocked
    assert done_at >= t0 + 30.0 and clock.now() - t0 == pytest.approx(30.0, abs=1e-6)
    r = det.last_result
    assert r.acquisition_time_s == 30.0 and det.acquisition_time_s.get() == 30.0
    assert r.resolution_ps == 256.0 and r.counts.shape == (4096,)
    assert (r.sync_rate_hz, r.count_rate_cps) == (1e6, 1e4)       # μ = 0.02 × 500 per mille
    assert r.warnings == 0 and r.flags == 0 and r.pile_up_ratio == pytest.approx(0.01)
    mu = MU_FULL * 0.5
    expected = expected_counts(r.time_ns, 0.256, rep_hz=1e6, mu=mu, tacq_s=30.0)
    assert abs(r.counts.sum() - expected.sum()) < 4 * np.sqrt(expected.sum())     # 300 000
    assert r.counts[:19].sum() <= 5 and r.counts[20] > 500      # the pulse arrives at 5 ns
    assert 0.88 < reduced_chi2(r.counts, expected) < 1.12
    fit = tail_fit(r.time_ns, r.counts, start_ns=10.0, stop_ns=990.0)
    assert fit.stderr["tau1"] < 0.5 and abs(fit.params["tau1"] - TAU_NS) < 4 * fit.stderr["tau1"]


def test_no_counts_while_the_laser_is_locked_or_the_interlock_is_open(bench):
    clock, lab, det, laser = bench
    acquire(det, 5.0, clock)                                        # never unlocked
    r = det.last_result
    assert r.counts.sum() == 0 and r.count_rate_cps == 0 and r.sync_rate_hz == 1e6
    assert "WARNING_INPT_RATE_ZERO" in r.warning_names
    lab.laser.set_interlock(True)                                   # fault: hard lock
    with laser.acquisition():
        assert laser.locked.get() is True and laser.emission.get() is False
        acquire(det, 5.0, clock)
    assert det.total_counts.get() == 0


def test_count_rates_are_valid_only_400_ms_after_set_sync_div():
    clock, lab, ep = make_bench(speed=1.0)                          # real time: 400 ms window
    lib = HarpLib(SocketRpcHarpBackend(ep["hydraharp"]["host"], ep["hydraharp"]["port"]))
    try:
        drv = TCSPCDriver(lib).open()
        drv.configure(**SETTINGS)
        t_wall, t_instr = time.monotonic(), clock.now()
        drv.set_sync_divider(2)
        assert lib.HH_GetSyncRate(0) == 0 and lib.HH_GetCountRate(0, 0) == 0   # not yet valid
        sync, count, warnings = drv.rates()                         # waits out the 400 ms
        assert time.monotonic() - t_wall >= 0.4 and clock.now() - t_instr >= 0.4
        assert (sync, count) == (1e6, 0.0)                          # laser still locked
        assert warnings == 0x0410    # INPT_RATE_ZERO, TIME_SPAN_TOO_SMALL (2 µs > 1.05 µs)
    finally:
        lib.close()
        lab.stop()
        clock.stop()


def test_stop_on_overflow_sets_the_flag_and_ends_early(bench):
    clock, lab, det, laser = bench
    det.stop_count.put(200)
    with laser.acquisition():
        t0, done_at = acquire(det, 100.0, clock)
    r = det.last_result
    assert r.overflow and r.flag_names == ("OVERFLOW",) and det.flags.get() == 1
    assert r.counts.max() == 200 and int(np.argmax(r.counts)) in (19, 20)
    peak_rate = expected_counts(r.time_ns, 0.256, rep_hz=1e6, mu=0.01, tacq_s=1.0).max()
    assert r.acquisition_time_s == pytest.approx(200 / peak_rate, rel=1e-6)    # ~7.8 s
    assert clock.now() - t0 == pytest.approx(r.acquisition_time_s, abs=1e-6)


def test_divider_pile_up_and_time_span_warnings(bench):
    clock, lab, det, laser = bench
    det.sync_divider.put(2)                        # every 2nd pulse starts the clock
    with laser.acquisition():
        acquire(det, 20.0, clock)
        r2 = det.last_result
        det.sync_divider.put(1)
        acquire(det, 20.0, clock)
        r1 = det.last_result
    e2 = expected_counts(r2.time_ns, 0.256, rep_hz=1e6, mu=0.01, tacq_s=20.0, divider=2)
    e1 = expected_counts(r1.time_ns, 0.256, rep_hz=1e6, mu=0.01, tacq_s=20.0)
    assert 0.85 < reduced_chi2(r2.counts, e2) < 1.15 and 0.85 < reduced_chi2(r1.counts, e1) < 1.15
    second = r2.time_ns >= 1000.0 + SYNC_DELAY_NS   # the next pulse appears at 1005 ns
    assert r2.counts[second][:20].sum() > 10 * r2.counts[~second][-20:].sum()
    assert r1.counts[r1.time_ns >= 1000.0].sum() == 0     # d = 1: never later than a period
    assert r2.warnings == 0x0400 and "WARNING_TIME_SPAN_TOO_SMALL" in r2.warning_names
    lab.harp.signal_source.photons_per_pulse = 0.16   # 8 % of pulses give a photon: pile-up
    laser.repetition_rate_hz.put(100_000)             # 10 µs period > the 1.05 µs window
    with laser.acquisition():
        acquire(det, 2.0, clock)
    r = det.last_result
    assert r.sync_rate_hz == 1e5 and r.pile_up_ratio == pytest.approx(0.08)
    assert set(r.warning_names) == {"WARNING_INPT_RATE_RATIO", "WARNING_TIME_SPAN_TOO_SMALL"}


def test_library_errors_carry_the_library_text_over_rpc(bench):
    clock, lab, det, laser = bench
    lib = det.driver.lib
    with pytest.raises(InstrumentError, match=r"HH_SetBinning returned -17: HH_ERROR_INVALID_ARGUMENT"):
        lib.HH_SetBinning(0, 30)                  # bypassing the driver's validation
    with pytest.raises(ValueError, match="binning=30"):
        det.binning.put(30)                       # the driver refuses before calling
    with pytest.raises(InstrumentError, match="HH_Bogus is not exported"):
        lib.backend.call("HH_Bogus", [0])
    assert lab.harp.binning == 8                  # nothing changed on the instrument
    counts = lib.HH_GetHistogram(0, 0, 0)
    assert counts.dtype == np.uint32 and counts.shape == (65536,)     # always the full buffer
    with pytest.raises(InstrumentError, match="HH_ERROR_INVALID_MODE"):
        lib.HH_Initialize(0, 1, 0)                # modes: 0 histogram, 2 T2, 3 T3
    lib.HH_Initialize(0, 3, 0)                    # T3 is accepted, but only histograms are simulated
    with pytest.raises(InstrumentError, match="HH_StartMeas returned -18: HH_ERROR_INVALID_MODE"):
        lib.HH_StartMeas(0, 1000)
    with pytest.raises(InstrumentError, match="HH_ERROR_DEVICE_OPEN_FAIL"):
        lib.HH_OpenDevice(1)                      # only device index 0 exists


def test_same_seed_same_histograms():
    def run(seed):
        clock, lab, ep = make_bench(seed=seed)
        lib = HarpLib(SocketRpcHarpBackend(ep["hydraharp"]["host"], ep["hydraharp"]["port"]))
        try:
            drv = TCSPCDriver(lib, rate_settle_s=0.0).open()
            drv.configure(**SETTINGS)
            lab.laser.update(soft_locked=False)
            return [drv.acquire(2.0).counts for _ in range(2)]
        finally:
            lib.close()
            lab.stop()
            clock.stop()

    a, b, c = run(7), run(7), run(8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[0], c[0])


def test_simulator_in_a_separate_process():
    cmd = [sys.executable, "-m", "spinlight.simulators.tcspc_lab", "--speed", "1000",
           "--seed", "4", "--photons-per-pulse", str(MU_FULL)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(30.0)
        assert line and line[0].strip(), proc.stderr.read() if proc.poll() is not None else "no output"
        ep = json.loads(line[0])
        det = connect_tcspc(ep["hydraharp"]["host"], ep["hydraharp"]["port"], rate_settle_s=0.01,
                            **SETTINGS)
        laser = connect_taiko(ep["taiko"]["host"], ep["taiko"]["port"])
        try:
            det.tacq_s.put(10.0)
            with laser.acquisition():
                det.trigger().wait(10)
            r = det.last_result
            expected = expected_counts(r.time_ns, 0.256, rep_hz=1e6, mu=0.01, tacq_s=10.0)
            assert r.acquisition_time_s == 10.0 and r.sync_rate_hz == 1e6
            assert abs(r.counts.sum() - expected.sum()) < 4 * np.sqrt(expected.sum())
            assert 0.85 < reduced_chi2(r.counts, expected) < 1.15
        finally:
            det.close()
            laser.close()
        proc.stdin.close()                          # stdin EOF ends the server
        assert proc.wait(10.0) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5.0)


def test_luminescence_sample_decay_recovers_the_published_lifetime():
    """mCB-Nd at 1060 nm (τ = 134 ns, science.md) through the NIR-PMT IRF, pile-up included."""
    from spinlight.simulators.samples import InstrumentResponse, get_luminescence
    from spinlight.simulators.tcspc_light import LuminescenceSource

    model = get_luminescence("mCB-Nd")
    source = LuminescenceSource(model, emission_nm=1060.0, irf=InstrumentResponse(),
                                detected_photons_per_pulse=0.02)
    clock, lab, ep = make_bench(seed=3, source=source)
    det = connect_tcspc(ep["hydraharp"]["host"], ep["hydraharp"]["port"], rate_settle_s=0.01,
                        binning=7, histogram_length_code=4)        # 128 ps x 16384 = 2.1 µs
    laser = connect_taiko(ep["taiko"]["host"], ep["taiko"]["port"])
    try:
        laser.lifetime_ns.put(model.published["lifetime_1060nm_ns"])
        with pytest.raises(ValueError, match=r"repetition_rate_hz=2000000 Hz .*1\.\.1\.49254e\+06 Hz"):
            laser.repetition_rate_hz.put(2_000_000)                # > 1/(5 x 134 ns)
        laser.repetition_rate_hz.put(500_000)
        with laser.acquisition():
            acquire(det, 60.0, clock)
        r = det.last_result
        assert r.warnings == 0 and r.count_rate_cps == pytest.approx(5000, rel=0.02)
        fit = tail_fit(r.time_ns, r.counts, start_ns=15.0, stop_ns=1500.0)
        assert fit.params["tau1"] == pytest.approx(134.0, rel=0.02)
    finally:
        det.close()
        laser.close()
        lab.stop()
        clock.stop()
