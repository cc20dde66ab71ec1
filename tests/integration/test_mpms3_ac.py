"""MPMS3 AC option end to end: ACDetector → MPMS3Driver → QD's MultiPyVu client → simulator.

The simulated MPMS3 runs on a fast virtual clock with the Dy-SMM preset (ac model looked up by
the sample's name); each point is requested with the ``SPINLIGHT_AC`` extension and read back
from the ``.dat`` file the simulator writes.
"""

from __future__ import annotations

import numpy as np
import pytest
from bluesky import RunEngine
import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp

import MultiPyVu as mpv  # noqa: E402 - a pinned dependency: never skipped
import MultiPyVu.MultiVuClient_base as _client_base  # noqa: E402
from MultiPyVu.exceptions import MultiPyVuError  # noqa: E402

from spinlight.instruments.mpms3_device import connect_mpms3  # noqa: E402
from spinlight.instruments.qd_dat import read_dat  # noqa: E402
from spinlight.simulators.ac_measurement import (noise_sigma_emu, point_duration_s,  # noqa: E402
                                                 sample_chi_emu_per_oe)
from spinlight.simulators.lab import SimulatedLab  # noqa: E402
from spinlight.simulators.samples import get_ac_model  # noqa: E402

SPEED = 4000.0
MASS_MG = 20.0
T_K, H_OE, DRIVE_OE = 3.0, 0.0, 2.0
FREQS = [0.1, 0.3, 1.0, 3.0, 10.0, 31.6, 100.0, 316.0, 1000.0]
VSM_COLUMNS = ("Moment (emu)", "M. Std. Err. (emu)", "Averaging Time (sec)", "Frequency (Hz)",
               "Peak Amplitude (mm)")


@pytest.fixture(autouse=True)
def _quiet_multipyvu(monkeypatch, tmp_path):
    monkeypatch.setattr(_client_base, "setup_logging", lambda *a, **k: None)
    monkeypatch.chdir(tmp_path)


def _connect(lab):
    ep = lab.endpoints["mpms3"]
    mpms3, vsm, ac = connect_mpms3(ep["host"], ep["port"], ac=True)
    d = mpms3.driver
    d.set_temperature(T_K, 20.0, "fast_settle")
    d.set_field(H_OE, 100.0, "linear", "driven")
    assert d.wait_for(0, 0, 3) == 0
    return mpms3, vsm, ac


def _sweep(ac, freqs, averaging_s=2.0, cycles=2):
    """Plain Bluesky: set the drive once, then frequency point by point."""
    docs = []
    RE = RunEngine({})
    RE.subscribe(lambda name, doc: docs.append((name, doc)))

    @bpp.stage_decorator([ac])
    @bpp.run_decorator(md={"plan_name": "ac_sweep_test"})
    def plan():
        yield from bps.mv(ac.amplitude_oe, DRIVE_OE, ac.averaging_s, averaging_s, ac.cycles, cycles)
        for f in freqs:
            yield from bps.mv(ac.frequency_hz, f)
            yield from bps.trigger_and_read([ac])

    RE(plan())
    events = [d["data"] for n, d in docs if n == "event"]
    return {k: np.array([e[k] for e in events]) for k in events[0]}


@pytest.fixture
def lab(tmp_path):
    with SimulatedLab(speed=SPEED, seed=5, sample="Dy-SMM", mass_mg=MASS_MG,
                      data_dir=tmp_path / "sim") as lab:
        yield lab


def test_frequency_sweep_matches_model_timing_and_file(lab):
    mpms3, vsm, ac = _connect(lab)
    try:
        n_vsm = mpms3.driver.request_vsm(1.0)         # a VSM row first: numbers are shared
        data = _sweep(ac, FREQS)
        model = get_ac_model("Dy-SMM")

        # chi'(f), chi''(f) match the model at the measured T and H within the noise
        f = data["ac_frequency_hz"]
        np.testing.assert_allclose(f, FREQS)
        true1, true2 = sample_chi_emu_per_oe(model, data["ac_temperature"], data["ac_field"], f,
                                             MASS_MG)
        sigma = np.array([noise_sigma_emu("MPMS3", fi, 2.0, 2, np.hypot(a, b) * DRIVE_OE)
                          for fi, a, b in zip(f, true1, true2)]) / DRIVE_OE
        assert np.all(np.abs(data["ac_chi_real"] - true1) < 5 * sigma)
        assert np.all(np.abs(data["ac_chi_imag"] - true2) < 5 * sigma)
        assert np.all(data["ac_chi_real_err"] > 0.2 * sigma) and np.all(data["ac_chi_real_err"] < 3 * sigma)
        assert np.all(np.diff(data["ac_chi_real"]) < 0)              # chi' falls with f
        peak = FREQS[int(np.argmax(data["ac_chi_imag"]))]
        assert peak == FREQS[int(np.argmax(true2))] and 0.1 < peak < 100
        np.testing.assert_allclose(data["ac_temperature"], T_K, atol=0.01)
        np.testing.assert_allclose(data["ac_amplitude_oe"], DRIVE_OE)

        # instrument time per point: the model's, and timing.md's medians (2 s, 2 cycles)
        steps = np.diff(data["ac_time"])
        expected = np.array([point_duration_s("MPMS3", fi, 2.0, 2) for fi in FREQS[1:]])
        np.testing.assert_allclose(steps, expected, rtol=0.05)
        by_freq = dict(zip(FREQS[1:], steps))
        assert by_freq[0.3] > 150 and by_freq[1.0] == pytest.approx(83, rel=0.2)
        assert by_freq[3.0] == pytest.approx(64, rel=0.2)
        assert by_freq[31.6] == pytest.approx(39, rel=0.2)
        assert by_freq[316.0] == pytest.approx(39, rel=0.2)
        assert data["ac_time"][-1] - data["ac_time"][0] > 500          # ~9 instrument minutes

        # the .dat: AC rows fill the AC columns and leave the VSM columns empty
        dat = read_dat(ac.datafile.get())
        numbers = list(data["ac_measurement_number"])
        assert numbers == list(range(n_vsm + 1, n_vsm + 1 + len(FREQS)))
        rows = {int(r["Measurement Number"]): r for r in dat.rows}
        assert all(rows[n_vsm][c] is not None for c in VSM_COLUMNS)
        assert rows[n_vsm]["AC X' (emu/Oe)"] is None
        for n, chi1 in zip(numbers, data["ac_chi_real"]):
            r = rows[n]
            assert all(r[c] is None for c in VSM_COLUMNS)
            assert r["AC X' (emu/Oe)"] == chi1 and r["AC Drive (Oe)"] == DRIVE_OE
            assert r["AC Moment (emu)"] == pytest.approx(
                np.hypot(r["AC X' (emu/Oe)"], r["AC X'' (emu/Oe)"]) * DRIVE_OE)
            assert r["Temp. Status (code)"] == 1 and r["Mass (grams)"] == pytest.approx(0.02)
        cols = dat.ac_columns()
        assert (cols["chi_real"], cols["frequency"], cols["chi_unit"]) == \
            ("AC X' (emu/Oe)", "AC Frequency (Hz)", "emu/Oe")
        assert [rows[n]["AC Cycles"] for n in numbers[:3]] == [2, 2, 2]
        assert rows[numbers[-1]]["AC Cycles"] == 2000                 # 2 s at 1000 Hz
    finally:
        mpms3.close()


def test_bad_settings_are_rejected_before_sending(lab):
    mpms3, vsm, ac = _connect(lab)
    queue = lab.mpms3.queue
    try:
        before = queue.last_number
        for signal, value, words in [(ac.frequency_hz, 5000.0, ["frequency_hz", "5000", "1000"]),
                                     (ac.amplitude_oe, 0.01, ["amplitude_oe", "0.01", "0.1"]),
                                     (ac.cycles, 2.5, ["cycles", "2.5", "whole"])]:
            old = signal.get()
            with pytest.raises(ValueError) as err:
                signal.put(value)
            assert all(w in str(err.value) for w in words)
            assert signal.get() == old
        with pytest.raises(ValueError, match="frequency_hz"):
            mpms3.driver.ac_measure(0.05, 2.0, 2.0, 2)
        assert queue.last_number == before and queue.pending == 0   # nothing reached the sim
    finally:
        mpms3.close()
    # the simulator checks too, and names parameter, value and range
    with mpv.Client(lab.endpoints["mpms3"]["host"], lab.endpoints["mpms3"]["port"]) as c:
        with pytest.raises(MultiPyVuError) as err:
            c._query_server("SPINLIGHT_AC", "5000,2,2,2")
    assert "SPINLIGHT_AC 5000,2,2,2: frequency_hz='5000' Hz is outside the MPMS3 range " \
        "0.1..1000 Hz" in str(err.value)
    assert queue.last_number == before


def test_same_seed_same_points(tmp_path):
    out = []
    for tag in ("a", "b", "c"):
        seed = 9 if tag != "c" else 10
        with SimulatedLab(speed=SPEED, seed=seed, sample="Dy-SMM", mass_mg=MASS_MG,
                          data_dir=tmp_path / tag) as lab:
            mpms3, _, ac = _connect(lab)
            try:
                data = _sweep(ac, [1.0, 10.0, 100.0])
            finally:
                mpms3.close()
        out.append((tuple(data["ac_chi_real"]), tuple(data["ac_chi_imag"]),
                    tuple(data["ac_temperature"])))
    assert out[0] == out[1]
    assert out[2] != out[0]
