"""PicoQuant PHU writer (spinlight.instruments.phu), checked with the independent reader ptufile."""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest
from ptufile import PhuFile, PhuMeasurementMode, PhuMeasurementSubMode, PqFileType

from spinlight.instruments.phu import PHU_MAGIC, PHU_VERSION, PhuCurve, write_phu
from spinlight.instruments.tcspc import TCSPCResult
from spinlight.simulators.samples.decay_physics import (
    InstrumentResponse,
    periodic_histogram,
    sample_histogram,
)

RES_PS = 32.0                     # channel width, ps
EDGES_NS = np.arange(2049) * RES_PS / 1000.0
SYNC_HZ = 20e6                    # 50 ns period inside the 65.5 ns histogram
ACQ_S = 2.0


def _decay_and_irf(seed=7):
    """Seeded counts of a 5 ns decay (with dark counts) and of the IRF, both at t0 = 5 ns."""
    rng = np.random.default_rng(seed)
    irf = InstrumentResponse()
    rate = periodic_histogram(EDGES_NS, [1.0], [5.0], repetition_rate_hz=SYNC_HZ,
                              photons_per_pulse=0.01, irf=irf, dark_count_rate_cps=2e4,
                              pulse_time_ns=5.0)
    decay = sample_histogram(rate * ACQ_S, rng)
    prompt = sample_histogram(irf.shape(EDGES_NS, t0_ns=5.0) * 2e5, rng)
    return decay, prompt


@pytest.fixture
def reader_log(caplog):
    """ptufile logs layout problems (misaligned tag, index out of order, duplicate) instead of
    raising; any such record fails the test."""
    caplog.set_level(logging.INFO, logger="ptufile")
    yield caplog
    logged = [r.getMessage() for r in caplog.get_records("call") if r.name == "ptufile"]
    assert not logged, logged


def test_simulated_decay_and_irf_read_back_by_ptufile(tmp_path, reader_log):
    decay, prompt = _decay_and_irf()
    assert decay.sum() > 100_000 and decay[:150].sum() > 0 and prompt.max() > 1000
    curves = [PhuCurve(decay, RES_PS, SYNC_HZ, ACQ_S, label="decay", emission_nm=1000.0,
                       excitation_nm=375.0, count_rate_cps=decay.sum() / ACQ_S),
              PhuCurve(prompt, RES_PS, SYNC_HZ, 0.25, label="IRF", emission_nm=375.0,
                       excitation_nm=375.0)]
    before = datetime.now()
    path = write_phu(tmp_path / "yb_decay.phu", curves, comment="Yb decay, 375 nm",
                     sample="Yb(trensal)", tags={"Spl_Temperature_K": 4.2, "Spl_Run": [3, 4]})
    raw = path.read_bytes()
    assert raw[:16] == PHU_MAGIC + PHU_VERSION == b"PQHISTO\0" + b"1.1.00\0\0"
    with PhuFile(path) as phu:
        str(phu), phu.attrs          # every property the reader offers must evaluate
        assert phu.type == PqFileType.PHU and phu.version == "1.1.00"
        assert phu.measurement_mode == PhuMeasurementMode.HISTOGRAM
        assert phu.measurement_submode == PhuMeasurementSubMode.INTEGRATING
        assert phu.number_histograms == 2
        h = phu.histograms()
        assert [x.dtype for x in h] == [np.uint32, np.uint32]
        np.testing.assert_array_equal(h[0], decay)
        np.testing.assert_array_equal(h[1], prompt)
        np.testing.assert_array_equal(phu.histograms(1)[0], prompt)
        t = phu.tags
        assert t["HistResDscr_MDescResolution"] == [RES_PS * 1e-12] * 2
        assert phu.tcspc_resolution == RES_PS * 1e-12
        assert phu.histogram_resolutions == (RES_PS * 1e-12,) * 2      # binning 0: base = width
        assert t["HistResDscr_SyncRate"] == [20_000_000] * 2
        assert t["HistResDscr_MDescStopAfter"] == [2000, 250]           # ms
        assert t["MeasDesc_AcquisitionTime"] == 2000
        assert t["HistResDscr_IntegralCount"] == [int(decay.sum()), int(prompt.sum())]
        assert t["HistResDscr_InputRate"] == [round(decay.sum() / ACQ_S), 0]
        assert t["HistResDscr_HistogramBins"] == [2048, 2048]
        assert t["HistResDscr_DataOffset"][1] == t["HistResDscr_DataOffset"][0] + 4 * 2048
        assert t["HistResDscr_DataOffset"][1] + 4 * 2048 == len(raw)
        assert t["SpinLight_CurveLabel"] == ["decay", "IRF"]
        assert t["SpinLight_Emission_nm"] == [1000.0, 375.0]
        assert t["SpinLight_Excitation_nm"] == [375.0, 375.0]
        assert t["SpinLight_Sample"] == "Yb(trensal)"
        assert t["Spl_Temperature_K"] == 4.2 and t["Spl_Run"] == [3, 4]
        assert phu.comment == "Yb decay, 375 nm" and t["CreatorSW_Name"] == "spinlight"
        assert isinstance(phu.guid, uuid.UUID)
        assert before - timedelta(seconds=1) <= phu.datetime <= datetime.now() + timedelta(seconds=1)


def test_tcspc_result_round_trips(tmp_path, reader_log):
    n, res = 1024, 8.0                                     # HydraHarp 1 ps base, binning 3
    counts = np.random.default_rng(3).poisson(50, n).astype(np.uint32)
    counts[100] = 2**32 - 1                                 # a full uint32 bin survives
    result = TCSPCResult(counts=counts, time_ns=20 + np.arange(n) * res / 1000, resolution_ps=res,
                         acquisition_time_s=1.5, requested_time_s=1.5, sync_rate_hz=40e6,
                         count_rate_cps=1.2e5, flags=0, warnings=0,
                         settings={"binning": 3, "offset_ns": 20, "sync_divider": 2,
                                   "histogram_length": n, "stop_count": None})
    path = write_phu(tmp_path / "one.phu", result)
    with PhuFile(path) as phu:
        assert phu.number_histograms == 1
        np.testing.assert_array_equal(phu.histograms()[0], counts)
        t = phu.tags
        assert t["HistResDscr_MDescResolution"] == [8e-12]
        assert t["HistResDscr_HWBaseResolution"] == [1e-12] and phu.histogram_resolutions == (1e-12,)
        assert t["HistResDscr_MDescBinningFactor"] == [8] and t["MeasDesc_BinningFactor"] == 8
        assert t["HistResDscr_MDescOffset"] == [20] and t["MeasDesc_Offset"] == 20
        assert t["HistResDscr_HWSyncDivider"] == [2] and t["HWSync_Divider"] == 2
        assert t["HistResDscr_SyncRate"] == [40_000_000]
        assert t["HistResDscr_InputRate"] == [120_000]
        assert t["HistResDscr_MDescStopAfter"] == [1500]
        assert t["HistResDscr_IntegralCount"] == [int(counts.sum(dtype=np.uint64))] != [0]
        assert "SpinLight_CurveLabel" not in t                 # no metadata, no empty tags
    # a sequence mixing a result and a curve; overwrite only when asked
    with pytest.raises(FileExistsError, match="one.phu.*overwrite=True"):
        write_phu(path, [result])
    write_phu(path, [result, PhuCurve.from_result(result, label="again")], overwrite=True)
    with PhuFile(path) as phu:
        h = phu.histograms()
        np.testing.assert_array_equal(h[0], h[1])
        assert phu.tags["SpinLight_CurveLabel"] == ["", "again"]


GOOD = PhuCurve(np.arange(10), 16.0, 1e7, 1.0)
BAD_CURVES = [
    ({"counts": np.r_[0, 1, 2, -1]}, r"curves\[1\]\.counts\[3\]=-?1 .*0\.\.4294967295"),
    ({"counts": np.r_[0, 2**32]}, r"curves\[1\]\.counts\[1\]=4294967296 .*0\.\.4294967295"),
    ({"counts": np.r_[0.0, np.nan]}, r"curves\[1\]\.counts\[1\]=.*nan.*whole counts"),
    ({"counts": np.r_[0.0, 1.5]}, r"curves\[1\]\.counts\[1\]=.*1\.5.*whole counts"),
    ({"counts": np.zeros((2, 3))}, r"curves\[1\]\.counts must be 1-D .*1\.\.65536.*\(2, 3\)"),
    ({"counts": np.zeros(0)}, r"curves\[1\]\.counts must be 1-D .*1\.\.65536"),
    ({"counts": np.zeros(65537)}, r"curves\[1\]\.counts must be 1-D .*65537"),
    ({"counts": np.array(["1", "2"])}, r"curves\[1\]\.counts has dtype <U1"),
    ({"resolution_ps": 0.0}, r"curves\[1\]\.resolution_ps=0\.0 ps is outside .*0\.001\.\.1"),
    ({"sync_rate_hz": -5.0}, r"curves\[1\]\.sync_rate_hz=-5\.0 Hz is outside"),
    ({"acquisition_time_s": float("nan")}, r"curves\[1\]\.acquisition_time_s=nan s is outside"),
    ({"binning": 26}, r"curves\[1\]\.binning=26 is outside .*0\.\.25"),
    ({"offset_ns": 2.5}, r"curves\[1\]\.offset_ns=2\.5 must be a whole number"),
    ({"sync_divider": 3}, r"curves\[1\]\.sync_divider=3 is not allowed; .*\[1, 2, 4, 8, 16\]"),
    ({"emission_nm": 50.0}, r"curves\[1\]\.emission_nm=50\.0 nm is outside .*100\.0\.\.10000"),
    ({"label": "τ decay"}, r"curves\[1\]\.label='τ decay' has a character outside Windows-1252"),
]


@pytest.mark.parametrize("change, message", BAD_CURVES, ids=[str(c) for c, _ in BAD_CURVES])
def test_invalid_curve_is_refused_before_writing(tmp_path, change, message):
    path = tmp_path / "bad.phu"
    with pytest.raises(ValueError, match=message):
        write_phu(path, [GOOD, replace(GOOD, **change)])       # the second curve is bad
    assert not path.exists()


@pytest.mark.parametrize("kwargs, error, message", [
    ({"curves": []}, ValueError, r"curves=\[\] must be a TCSPCResult, a PhuCurve or a non-empty"),
    ({"curves": [GOOD, np.arange(3)]}, TypeError, r"curves\[1\] is a ndarray; allowed: TCSPCResult"),
    ({"tags": {"HistoResult_NumberOfCurves": 5}}, ValueError,
     r"tags\['HistoResult_NumberOfCurves'\] is written by write_phu itself"),
    ({"tags": {"HistResDscr_Foo": 1}}, ValueError, r"tags\['HistResDscr_Foo'\] is written by"),
    ({"tags": {"x" * 32: 1}}, ValueError, r"tags key 'x{32}' is not allowed; .*1\.\.31"),
    ({"tags": {"Spl_Big": 2**63}}, ValueError, r"tags\['Spl_Big'\]=9223372036854775808 is outside"),
    ({"tags": {"Spl_Dict": {"a": 1}}}, TypeError, r"tag 'Spl_Dict': value \{'a': 1\} of type dict"),
    ({"comment": "Ω → x"}, ValueError, r"comment='Ω → x' has a character outside Windows-1252"),
    ({"sample": 42}, TypeError, r"sample=42 must be a str"),
])
def test_invalid_arguments_are_refused(tmp_path, kwargs, error, message):
    path = tmp_path / "bad.phu"
    kwargs = {"curves": [GOOD], **kwargs}
    with pytest.raises(error, match=message):
        write_phu(path, kwargs.pop("curves"), **kwargs)
    assert not path.exists()
