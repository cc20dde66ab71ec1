"""HHLib abstraction and TCSPC driver: call sequences, error codes, validation, ctypes tables.

Transcripts list every library call ``(fn, input args, return code, pointer outputs)``; a call
that differs, or any call where the transcript is empty, fails the test.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import threading

import numpy as np
import pytest

from spinlight.instruments import picoquant_defs as hh
from spinlight.instruments.clib import c_signature
from spinlight.instruments.clib_ctypes import CtypesBackend, argtypes
from spinlight.instruments.errors import InstrumentError
from spinlight.instruments.harp import (HH_FUNCTIONS, CtypesHarpBackend, HarpLib,
                                        TranscriptHarpBackend)
from spinlight.instruments.laser import PDLM_FUNCTIONS, LaserLib
from spinlight.instruments.rpc_backend import decode_value, encode_value
from spinlight.instruments.tcspc import TCSPC, TCSPCDriver
from spinlight.simulators.rpc_socket import RpcServer

OPEN = [("HH_OpenDevice", [0], 0, ["1043210"]),
        ("HH_Initialize", [0, 0, 0], 0, []),
        ("HH_GetHardwareInfo", [0], 0, ["HydraHarp 400", "930003", "2.0"]),
        ("HH_GetBaseResolution", [0], 0, [1.0, 26]),
        ("HH_GetNumOfInputChannels", [0], 0, [2]),
        ("HH_Calibrate", [0], 0, [])]


def make(calls, **kw):
    backend = TranscriptHarpBackend(calls)
    return TCSPCDriver(HarpLib(backend), rate_settle_s=0.0, **kw), backend


def test_open_and_configure_follow_the_demo_sequence():
    calls = OPEN + [
        ("HH_SetSyncDiv", [0, 4], 0, []),
        ("HH_SetSyncCFD", [0, 120, 8], 0, []),
        ("HH_SetSyncChannelOffset", [0, -5000], 0, []),
        ("HH_SetInputCFD", [0, 0, 60, 12], 0, []),
        ("HH_SetInputChannelOffset", [0, 0, 250], 0, []),
        ("HH_SetHistoLen", [0, 3], 0, [8192]),
        ("HH_SetBinning", [0, 6], 0, []),
        ("HH_GetResolution", [0], 0, [64.0]),
        ("HH_SetOffset", [0, 100], 0, []),
        ("HH_SetStopOverflow", [0, 1, 10000], 0, [])]
    drv, backend = make(calls)
    drv.open(serial="1043210")
    settings = drv.configure(sync_divider=4, binning=6, offset_ns=100, histogram_length_code=3,
                             sync_cfd_mV=(120, 8), input_cfd_mV=(60, 12), sync_offset_ps=-5000,
                             input_offset_ps=250, stop_count=10000)
    backend.assert_done()
    assert (drv.serial, drv.model, drv.binsteps, drv.n_channels) == ("1043210", "HydraHarp 400", 26, 2)
    assert settings == {"sync_divider": 4, "binning": 6, "offset_ns": 100,
                        "histogram_length": 8192, "stop_count": 10000}


def test_acquisition_sequence_and_result():
    hist = np.zeros(hh.HH_MAXHISTLEN, np.uint32)
    hist[:6] = [0, 5, 100, 50, 25, 12]
    hist[2000] = 7                       # beyond the 1024-channel histogram: not returned
    calls = OPEN + [("HH_SetHistoLen", [0, 0], 0, [1024]),
                    ("HH_ClearHistMem", [0], 0, []),
                    ("HH_StartMeas", [0, 1500], 0, []),
                    ("HH_GetSyncRate", [0], 0, [1000000]),
                    ("HH_GetCountRate", [0, 0], 0, [60000]),
                    ("HH_GetWarnings", [0], 0, [0x0100]),
                    ("HH_CTCStatus", [0], 0, [0]),
                    ("HH_CTCStatus", [0], 0, [1]),
                    ("HH_StopMeas", [0], 0, []),
                    ("HH_GetHistogram", [0, 0, 0], 0, [hist]),
                    ("HH_GetElapsedMeasTime", [0], 0, [1234.0]),
                    ("HH_GetFlags", [0], 0, [hh.HH_FLAG_OVERFLOW]),
                    ("HH_GetResolution", [0], 0, [4.0])]
    drv, backend = make(calls, poll_interval_s=1e-4)
    drv.open()
    drv.set_histogram_length(0)
    r = drv.acquire(1.5)
    backend.assert_done()
    assert r.counts.dtype == np.uint32 and r.counts.shape == (1024,)
    assert r.counts[:6].tolist() == [0, 5, 100, 50, 25, 12] and r.counts.sum() == 192
    assert r.time_ns[:3].tolist() == [0.0, 0.004, 0.008] and r.resolution_ps == 4.0
    assert (r.acquisition_time_s, r.requested_time_s) == (1.234, 1.5)
    assert r.overflow and r.flag_names == ("OVERFLOW",)
    assert r.warning_names == ("WARNING_INPT_RATE_RATIO",)
    assert r.pile_up_ratio == pytest.approx(0.06)


def test_negative_return_code_raises_with_the_library_error_text():
    lib = HarpLib(TranscriptHarpBackend([
        ("HH_SetBinning", [0, 30], -17, []),
        ("HH_GetErrorString", [-17], 0, ["HH_ERROR_INVALID_ARGUMENT"])]))
    with pytest.raises(InstrumentError) as err:
        lib.HH_SetBinning(0, 30)
    e = err.value
    assert e.instrument == "hydraharp" and e.command == "HH_SetBinning(0, 30)" and e.reply == "-17"
    assert "HH_ERROR_INVALID_ARGUMENT" in str(e) and "returned -17" in str(e)
    lib.backend.assert_done()


def test_error_text_survives_a_failing_error_function():
    lib = HarpLib(TranscriptHarpBackend([("HH_OpenDevice", [3], -1, [""]),
                                         ("HH_GetErrorString", [-1], -17, [""])]))
    with pytest.raises(InstrumentError, match=r"returned -1: error -1"):
        lib.HH_OpenDevice(3)


@pytest.mark.parametrize("call, message", [
    (lambda d: d.set_sync_divider(3), r"sync_divider=3 is not allowed; choose one of \[1, 2, 4, 8, 16\]"),
    (lambda d: d.set_binning(26), r"binning=26 .*0\.\.25"),
    (lambda d: d.set_binning(2.5), r"binning=2\.5 must be a whole number"),
    (lambda d: d.set_offset_ns(-1), r"offset_ns=-1 ns .*0\.\.500000 ns"),
    (lambda d: d.set_histogram_length(7), r"histogram_length_code=7 .*0\.\.6"),
    (lambda d: d.set_sync_cfd(1001, 10), r"sync_cfd_level_mV=1001 mV .*0\.\.1000 mV"),
    (lambda d: d.set_input_cfd(50, 41), r"input_cfd_zero_cross_mV=41 mV .*0\.\.40 mV"),
    (lambda d: d.set_sync_offset_ps(100000), r"sync_offset_ps=100000 ps .*-99999\.\.99999 ps"),
    (lambda d: d.set_stop_count(2 ** 32), r"stop_count=4294967296 counts .*1\.\.4294967295"),
    (lambda d: d.start(0.0005), r"acquisition_time_s=0\.0005 s .*0\.001\.\.360000\.0 s"),
    (lambda d: d.start(1.2345), r"acquisition_time_s=1\.2345 s must be a whole number of ms"),
    (lambda d: d.configure(sync_divider=2, binning=99), r"binning=99"),
])
def test_bad_settings_are_refused_before_any_library_call(call, message):
    drv, backend = make([])           # an empty transcript: any call would fail the test
    with pytest.raises(ValueError, match=message):
        call(drv)
    assert backend.made == []


def test_library_checks_argument_count_and_integer_types_before_calling():
    lib = HarpLib(TranscriptHarpBackend([]))
    with pytest.raises(TypeError, match=r"int HH_SetSyncDiv\(int, int\) takes 2 input"):
        lib.HH_SetSyncDiv(0)
    with pytest.raises(TypeError):
        lib.HH_SetSyncDiv(0, 8.5)
    assert lib.backend.made == []


def test_ctypes_argtypes_table():
    p = ctypes.POINTER
    assert argtypes(HH_FUNCTIONS["HH_GetHistogram"]) == [ctypes.c_int, p(ctypes.c_uint),
                                                         ctypes.c_int, ctypes.c_int]
    assert argtypes(HH_FUNCTIONS["HH_GetErrorString"]) == [ctypes.c_char_p, ctypes.c_int]
    assert argtypes(HH_FUNCTIONS["HH_GetBaseResolution"]) == [ctypes.c_int, p(ctypes.c_double),
                                                              p(ctypes.c_int)]
    assert argtypes(HH_FUNCTIONS["HH_SetStopOverflow"]) == [ctypes.c_int, ctypes.c_int, ctypes.c_uint]
    assert argtypes(HH_FUNCTIONS["HH_SetHistoLen"]) == [ctypes.c_int, ctypes.c_int, p(ctypes.c_int)]
    assert c_signature("HH_GetHardwareInfo", HH_FUNCTIONS["HH_GetHardwareInfo"]) == \
        "int HH_GetHardwareInfo(int, char[16], char[8], char[8])"
    device_functions = set(HH_FUNCTIONS) - {"HH_GetLibraryVersion", "HH_GetErrorString"}
    assert all(argtypes(HH_FUNCTIONS[f])[0] is ctypes.c_int for f in device_functions)
    assert {f for f in dir(HarpLib) if f.startswith("HH_")} == set(HH_FUNCTIONS)


def test_ctypes_backend_reports_the_library_names_it_tried(tmp_path):
    with pytest.raises(OSError, match="cannot load the vendor library; tried .*nothing.so"):
        CtypesHarpBackend(str(tmp_path / "nothing.so"))


C_SOURCE = r"""
#include <string.h>
#include <stdio.h>
int HH_GetLibraryVersion(char *v) { strcpy(v, "3.0"); return 0; }
int HH_GetErrorString(char *s, int code) {
    if (code == -17) { strcpy(s, "HH_ERROR_INVALID_ARGUMENT"); return 0; }
    return -17; }
int HH_SetSyncDiv(int dev, int div) { return (div & (div - 1)) == 0 && div <= 16 ? 0 : -17; }
int HH_GetBaseResolution(int dev, double *res, int *steps) { *res = 1.0; *steps = 26; return 0; }
int HH_GetHardwareInfo(int dev, char *model, char *partno, char *version) {
    strcpy(model, "HydraHarp 400"); strcpy(partno, "930003"); strcpy(version, "2.0"); return 0; }
int HH_SetStopOverflow(int dev, int stop, unsigned int count) {
    return stop == 1 && count == 4294967295u ? 0 : -17; }
int HH_GetHistogram(int dev, unsigned int *buf, int ch, int clear) {
    for (int i = 0; i < 65536; i++) buf[i] = (unsigned int)(3 * i + ch);
    buf[65535] = 4294967295u; return 0; }
int PDLM_GetLibraryVersion(char *v, unsigned int len) {
    if (len < 8) return -13; strcpy(v, "2.0.0.1"); return 0; }
int PDLM_DecodeError(int code, char *buf, unsigned int *len) {
    snprintf(buf, *len, "PDLM error %d", code); *len = (unsigned int)strlen(buf); return 0; }
int PDLM_GetFrequencyLimits(int idx, unsigned int *lo, unsigned int *hi) {
    *lo = 1; *hi = 100000000u; return 0; }
int PDLM_GetLHWavelength(int idx, float *wl) { *wl = 375.5f; return 0; }
int PDLM_SetFrequency(int idx, unsigned int f) { return f > 100000000u ? -16 : 0; }
"""


@pytest.fixture(scope="module")
def c_library(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the ctypes test library")
    d = tmp_path_factory.mktemp("clib")
    (d / "fake.c").write_text(C_SOURCE)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(d / "libpq.so"), str(d / "fake.c")],
                   check=True, capture_output=True, timeout=60)
    return ctypes.CDLL(str(d / "libpq.so"))


def test_ctypes_backend_marshals_inputs_outputs_and_errors(c_library):
    """A C library with the HHLib/PDLM signatures, compiled here: the real ctypes path."""
    hh_lib = HarpLib(CtypesBackend(c_library, HH_FUNCTIONS))
    assert hh_lib.HH_GetLibraryVersion() == "3.0"
    assert hh_lib.HH_GetBaseResolution(0) == (1.0, 26)
    assert hh_lib.HH_GetHardwareInfo(0) == ("HydraHarp 400", "930003", "2.0")
    hh_lib.HH_SetStopOverflow(0, 1, 4294967295)           # uint32 max passes unchanged
    counts = hh_lib.HH_GetHistogram(0, 2, 0)
    assert counts.dtype == np.uint32 and counts.shape == (65536,)
    assert counts[:3].tolist() == [2, 5, 8] and int(counts[-1]) == 4294967295
    hh_lib.HH_SetSyncDiv(0, 8)
    with pytest.raises(InstrumentError, match="HH_SetSyncDiv returned -17: HH_ERROR_INVALID_ARGUMENT"):
        hh_lib.HH_SetSyncDiv(0, 3)
    with pytest.raises(InstrumentError, match="not exported"):
        hh_lib.HH_Calibrate(0)                            # absent from this library
    laser = LaserLib(CtypesBackend(c_library, PDLM_FUNCTIONS))
    assert laser.PDLM_GetLibraryVersion() == "2.0.0.1"    # BufLen(32) passed automatically
    assert laser.PDLM_GetFrequencyLimits(0) == (1, 100000000)
    assert laser.PDLM_GetLHWavelength(0) == pytest.approx(375.5)
    with pytest.raises(InstrumentError, match="returned -16: PDLM error -16"):
        laser.PDLM_SetFrequency(0, 200000000)             # text via PDLM_DecodeError, InOutLen


def test_rpc_wire_format_round_trip_and_refusals():
    a = np.arange(65536, dtype=np.uint32) * 65537
    enc = encode_value(a)
    assert enc["ndarray"] == "<u4" and enc["shape"] == [65536]
    assert np.array_equal(decode_value(enc), a) and decode_value(7) == 7

    class Target:
        def HH_Double(self, dev, x):
            return 0, [2 * x, np.arange(3, dtype=np.uint32)]

        def helper(self):
            raise AssertionError("not exported")

    server = RpcServer(Target(), prefix="HH_")
    reply = server.dispatch({"fn": "HH_Double", "args": [0, 21]})
    assert reply["ret"] == 0 and reply["out"][0] == 42
    assert decode_value(reply["out"][1]).tolist() == [0, 1, 2]
    assert "not exported" in server.dispatch({"fn": "HH_Nothing", "args": []})["error"]
    assert "malformed" in server.dispatch({"fn": "helper", "args": []})["error"]
    assert "bad arguments" in server.dispatch({"fn": "HH_Double", "args": [0]})["error"]


def test_tcspc_device_describes_the_histogram_and_completes_on_ctc_status():
    hist = np.zeros(hh.HH_MAXHISTLEN, np.uint32)
    hist[10:14] = [9, 7, 5, 3]
    calls = OPEN + [("HH_SetHistoLen", [0, 1], 0, [2048]),
                    ("HH_ClearHistMem", [0], 0, []), ("HH_StartMeas", [0, 250], 0, []),
                    ("HH_GetSyncRate", [0], 0, [200000]), ("HH_GetCountRate", [0, 0], 0, [2000]),
                    ("HH_GetWarnings", [0], 0, [0]), ("HH_CTCStatus", [0], 0, [1]),
                    ("HH_StopMeas", [0], 0, []), ("HH_GetHistogram", [0, 0, 0], 0, [hist]),
                    ("HH_GetElapsedMeasTime", [0], 0, [250.0]), ("HH_GetFlags", [0], 0, [0]),
                    ("HH_GetResolution", [0], 0, [1.0])]
    drv, backend = make(calls)
    drv.open()
    drv.set_histogram_length(1)
    det = TCSPC(name="tcspc", driver=drv)
    desc = det.describe()
    assert desc["tcspc_histogram"]["dtype"] == "array" and desc["tcspc_histogram"]["shape"] == [2048]
    assert desc["tcspc_time_ns"]["shape"] == [2048]
    assert "tcspc_binning" in det.read_configuration() and "tcspc_tacq_s" in det.read_configuration()
    det.tacq_s.put(0.25)
    done = threading.Event()
    status = det.trigger()
    status.add_callback(lambda st: done.set())
    status.wait(5)
    assert status.success and done.is_set()
    backend.assert_done()
    reading = det.read()
    assert reading["tcspc_total_counts"]["value"] == 24
    assert reading["tcspc_acquisition_time_s"]["value"] == 0.25
    assert reading["tcspc_sync_rate"]["value"] == 200000.0
    assert reading["tcspc_histogram"]["value"].shape == (2048,)
    with pytest.raises(ValueError, match="acquisition_time_s"):
        det.tacq_s.put(0.0)
