"""The HydraHarp Ophyd detector (spinlight.instruments.tcspc_device) against the HydraHarp
simulator over loopback: acquisition-time validation in ``set()`` and summed acquisitions
(``accumulate``), which the lifetime plan uses to top a decay up to its peak count."""

from __future__ import annotations

import numpy as np
import pytest

from spinlight.instruments import picoquant_defs as hh
from spinlight.instruments.laser import connect_taiko
from spinlight.instruments.tcspc import connect_tcspc
from spinlight.simulators.clock import VirtualClock
from spinlight.simulators.tcspc_lab import TCSPCLab
from spinlight.simulators.tcspc_light import ExponentialSource


@pytest.fixture
def bench():
    clock = VirtualClock(1000.0, freeze_when_idle=True)
    lab = TCSPCLab(clock, ExponentialSource(100.0, 0.02), seed=3)
    ep = lab.start()
    det = connect_tcspc(ep["hydraharp"]["host"], ep["hydraharp"]["port"], rate_settle_s=0.01,
                        binning=8, histogram_length_code=2)
    laser = connect_taiko(ep["taiko"]["host"], ep["taiko"]["port"])
    yield det, laser
    det.close()
    laser.close()
    lab.stop()
    clock.stop()


def acquire(det, tacq_s, accumulate=False):
    det.accumulate.set(accumulate).wait(5)
    det.tacq_s.set(tacq_s).wait(5)
    status = det.trigger()
    status.wait(10)
    assert status.success
    return det.last_result


@pytest.mark.parametrize("value, pattern", [
    (1e-5, r"acquisition_time_s=1e-05 s is outside the allowed range 0\.001\.\.360000\.0 s"),
    (4e5, r"acquisition_time_s=400000\.0 s is outside the allowed range 0\.001\.\.360000\.0 s"),
    (1.2345, r"acquisition_time_s=1\.2345 s must be a whole number of ms"),
])
def test_tacq_set_refuses_at_once(bench, value, pattern):
    det, _ = bench
    det.tacq_s.put(2.0)
    with pytest.raises(ValueError, match=pattern):
        det.tacq_s.set(value)                         # raises here, no status returned
    assert det.tacq_s.get() == 2.0


def test_accumulated_acquisitions_read_as_one_histogram(bench):
    det, laser = bench
    with laser.acquisition():
        first = acquire(det, 2.0)
        held = det.histogram.get().copy()
        assert det.acquisitions.get() == 1 and np.array_equal(held, first.counts)
        second = acquire(det, 3.0, accumulate=True)
    assert not np.array_equal(second.counts, first.counts)             # a new measurement
    np.testing.assert_array_equal(det.histogram.get(), first.counts.astype(np.int64)
                                  + second.counts)
    assert det.acquisitions.get() == 2 and det.acquisition_time_s.get() == pytest.approx(5.0)
    assert det.total_counts.get() == int(first.counts.sum()) + int(second.counts.sum())
    assert det.count_rate.get() == pytest.approx(
        (2.0 * first.count_rate_cps + 3.0 * second.count_rate_cps) / 5.0)
    with laser.acquisition():
        acquire(det, 1.0)                                               # accumulate=False
    assert det.acquisitions.get() == 1 and det.acquisition_time_s.get() == pytest.approx(1.0)


def test_accumulate_refuses_changed_settings_and_bad_values(bench):
    det, _ = bench
    acquire(det, 1.0)
    det.binning.put(9)
    det.accumulate.put(True)
    with pytest.raises(ValueError, match=r"accumulate=True but the settings changed"):
        det.trigger()
    with pytest.raises(ValueError, match=r"accumulate='yes' is not allowed; choose one of"):
        det.accumulate.set("yes")
    det.channels.put(1024)                         # a new histogram length: nothing is held
    assert det.acquisitions.get() == 0
    acquire(det, 1.0, accumulate=True)
    assert det.acquisitions.get() == 1 and det.histogram.get().shape == (1024,)


def test_summed_counts_clip_at_32_bits_and_set_the_overflow_flag():
    from spinlight.instruments.tcspc import TCSPCResult
    from spinlight.instruments.tcspc_device import accumulated
    top = np.iinfo(np.uint32).max
    a = TCSPCResult(np.array([top - 1, 5], np.uint32), np.array([0.0, 1.0]), 1.0, 1.0, 1.0,
                    1e6, 100.0, 0, 0)
    b = TCSPCResult(np.array([3, 7], np.uint32), np.array([0.0, 1.0]), 1.0, 3.0, 3.0, 1e6,
                    200.0, 0, hh.HH_WARNING["INPT_RATE_RATIO"])
    s = accumulated(a, b)
    assert s.counts.tolist() == [top, 12] and s.overflow and s.acquisition_time_s == 4.0
    assert s.count_rate_cps == pytest.approx(175.0) and s.warnings == b.warnings
