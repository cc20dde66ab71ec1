"""Quantum Design MultiVu .dat reader, writer and follower (spinlight.instruments.qd_dat)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from spinlight.instruments.qd_dat import (
    MPMS3_COLUMNS,
    DatFollower,
    DatFormatError,
    DatWriter,
    MissingColumnError,
    format_value,
    ole_to_datetime,
    ole_to_unix,
    read_dat,
    unix_to_ole,
)
from spinlight.instruments.qd_dat_format import split_csv

ERCOT = "mpms3_ac_vs_f_ErCOT.dat"
MVSH = "mpms3_dc_m_vs_h_ErBAT.dat"
MVST = "mpms3_dc_m_vs_t_ErBAT.dat"
XL_AC = "mpmsxl_ac_pb6051.dat"
XL_DC = "mpmsxl_dc_zfc_pb6051.dat"
EXAMPLE_OLE = 3874580582.29837        # instruments.md §2.4: 10/10/2022, 4:23 pm local

# ============================================================================ real files


@pytest.mark.parametrize(
    "name, n_rows, flavor, moment, moment_err, mass_mg, mw",
    [
        (ERCOT, 540, "MPMS3", None, None, 26.3, 542.53),
        (MVSH, 843, "MPMS3", "DC Moment Free Ctr (emu)", "DC Moment Err Free Ctr (emu)", 7.2, 839.24),
        (MVST, 300, "MPMS3", "DC Moment Free Ctr (emu)", "DC Moment Err Free Ctr (emu)", 7.2, 839.24),
        (XL_DC, 42, "MPMS-XL", "Long Moment (emu)", "Long Scan Std Dev", 48.4, None),
        (XL_AC, 13, "MPMS-XL", None, None, 21.3, None),
    ],
)
def test_real_file(real_data_dir, name, n_rows, flavor, moment, moment_err, mass_mg, mw):
    d = read_dat(real_data_dir / name)
    assert len(d.rows) == n_rows
    assert d.flavor == flavor
    assert d.sample_mass_mg == pytest.approx(mass_mg)
    assert d.molecular_weight == (None if mw is None else pytest.approx(mw))
    assert d.comments == []                    # none of the five files has comment rows
    if moment is None:
        # ac-only files: a clear error naming the file, not a silently empty column
        with pytest.raises(MissingColumnError, match=name.replace(".", r"\.")):
            d.moment_column()
    else:
        assert d.moment_column() == moment
        assert d.moment_error_column() == moment_err
        m = d.column(moment)
        assert np.isfinite(m).all() and np.count_nonzero(m) == n_rows
    t = d.timestamps_unix()
    assert t.shape == (n_rows,) and np.all(np.diff(t) > 0)
    # first row comes after the file was opened, within the same session
    assert 0 <= t[0] - d.file_open_time_unix < 3600


def test_mpms3_vsm_moment_column_is_empty_in_dc_files(real_data_dir):
    d = read_dat(real_data_dir / MVSH)
    assert np.isnan(d.column("Moment (emu)")).all()     # so the picker must skip it
    assert np.isfinite(d.column("DC Moment Fixed Ctr (emu)")).all()


def test_real_mpms3_values_and_header(real_data_dir):
    d = read_dat(real_data_dir / ERCOT)
    row = d.rows[0]
    assert row["Comment"] is None
    assert row["Moment (emu)"] is None                   # empty field -> None
    assert row["AC Moment (emu)"] == pytest.approx(5.675461762531e-5)
    assert row["AC Frequency (Hz)"] == pytest.approx(999.040954589844)
    assert d.title == ""
    assert d.byapp == "SQUID AC"
    assert d.header["BYAPP"] == "SQUID AC,0.9.1.0"
    # INFO,<value>,<KEY> where the value itself contains a comma
    assert d.info["APPNAME"] == "MPMS3 Measurement Release 1.1.16 Build 347, MultiVu Release 2.3.3.2"
    assert d.info["SAMPLE_MATERIAL"] == "Er(COT)I(THF)2"
    assert d.info["SAMPLE_SIZE"] == ""
    assert [g[0] for g in d.header["FIELDGROUP"]] == ["VSM", "DC", "AC"]
    assert d.header["STARTUPGROUP"] == "All"


def test_real_mpmsxl_header_and_unix_time(real_data_dir):
    d = read_dat(real_data_dir / XL_AC)
    assert d.title == "MPMS AC Measurement"
    # INFO, KEY, value form, values with commas, and "KEY: value" lines
    assert d.info["APPNAME"] == "MPMS MultiVu Application, Revision 1.60,  Build 081"
    assert d.info["NAME"] == "pb6051"
    assert d.info["SEQUENCE FILE"] == "pb6051_ac_2.seq"
    assert d.columns[-1] == "EC Comp. Running"          # trailing comma is not a column
    assert d.time_base == "unix"
    # header says "6/21/2017, 10:29:56 AM"; Unix seconds in California local time
    la = datetime.fromtimestamp(d.file_open_time_unix, ZoneInfo("America/Los_Angeles"))
    assert la.replace(tzinfo=None, microsecond=0) == datetime(2017, 6, 21, 10, 29, 56)
    np.testing.assert_array_equal(d.timestamps_unix(), d.column("Time"))
    dc = read_dat(real_data_dir / XL_DC)
    assert dc.info["BACKGROUND DATA FILE"] == "None"


def test_real_mpms3_time_base_is_ole(real_data_dir):
    for name, date in [(ERCOT, (2017, 11, 23)), (MVSH, (2019, 4, 24)), (MVST, (2019, 4, 18))]:
        d = read_dat(real_data_dir / name)
        assert d.time_base == "ole"
        raw = d.column("Time Stamp (sec)")
        assert raw[0] > 3.7e9                              # OLE-sized, not Unix
        # the date printed beside FILEOPENTIME is the OLE wall-clock date
        assert ole_to_datetime(float(d.header["FILEOPENTIME"].split(",")[0])).date() == \
            datetime(*date).date()
        np.testing.assert_allclose(d.timestamps_unix(), ole_to_unix(raw), rtol=0, atol=1e-6)
        assert datetime.fromtimestamp(d.timestamps_unix()[0]).date() == datetime(*date).date()


def test_ac_aliases_mpms3(real_data_dir):
    d = read_dat(real_data_dir / ERCOT)
    ac = d.ac_columns()
    assert ac == {
        "chi_real": "AC X' (emu/Oe)", "chi_imag": "AC X'' (emu/Oe)",
        "chi_real_err": "AC X' Std Err. (emu/Oe)", "chi_imag_err": "AC X'' Std Err. (emu/Oe)",
        # 'Frequency (Hz)' exists too but is the (empty) VSM frequency
        "frequency": "AC Frequency (Hz)", "drive": "AC Drive (Oe)",
        "temperature": "Temperature (K)", "field": "Magnetic Field (Oe)", "chi_unit": "emu/Oe",
    }
    np.testing.assert_array_equal(d.column("Field (Oe)"), d.column("Magnetic Field (Oe)"))
    np.testing.assert_array_equal(d.column('AC X" (emu/Oe)'), d.column("AC X'' (emu/Oe)"))


def test_ac_aliases_mpmsxl(real_data_dir):
    d = read_dat(real_data_dir / XL_AC)
    ac = d.ac_columns()
    assert ac["chi_real"] == "m' (emu)" and ac["chi_imag"] == 'm" (emu)'
    assert ac["chi_real_err"] == "m' Scan Std Dev" and ac["chi_imag_err"] == 'm" Scan Std Dev'
    assert ac["frequency"] == "Wave Frequency (Hz)" and ac["drive"] == "Drive Amplitude (Oe)"
    assert ac["field"] == "Field (Oe)" and ac["chi_unit"] == "emu"
    f = d.column("AC Frequency (Hz)")                       # alias of Wave Frequency
    assert f[0] == pytest.approx(0.100003) and f[-1] == pytest.approx(10.0, rel=0.01)
    assert d.column("M'' (emu)")[0] == pytest.approx(3.978727e-05)
    assert d.has_column("Magnetic Field (Oe)") and not d.has_column("Nonsense (K)")
    with pytest.raises(MissingColumnError, match="Nonsense"):
        d.column("Nonsense (K)")


def test_ercot_measurement_sets(real_data_dir):
    d = read_dat(real_data_dir / ERCOT)
    sets = d.measurement_sets()
    assert len(sets) == 18 and all(len(s) == 30 for s in sets)
    expected = [11.1, 11.0, 10.9, 10.8, 10.7, 10.6, 10.5, 10.0, 9.5, 9.0, 8.5, 8.0, 7.5, 7.0,
                6.5, 6.0, 5.5, 5.0]
    np.testing.assert_allclose([s.setpoint for s in sets], expected, atol=0.005)
    for s in sets:
        f = s.column("AC Frequency (Hz)")
        assert f[0] > 990 and f[-1] < 1.01 and np.all(np.diff(f) < 0)   # one whole sweep
    # each rule alone keeps the 0.1 K-spaced setpoints apart
    assert len(d.measurement_sets(sweep_key=None)) == 18                 # tolerance rule
    assert [len(s) for s in d.measurement_sets(tolerance=2.0)] == [30] * 18   # sweep rule
    # the pitfall the rules avoid: a loose temperature match without sweep detection merges
    assert len(d.measurement_sets(tolerance=0.3, sweep_key=None)) < 18


def test_measurement_sets_other_files(real_data_dir):
    mh = read_dat(real_data_dir / MVSH).measurement_sets()
    assert [len(s) for s in mh] == [281, 281, 281]
    np.testing.assert_allclose([s.setpoint for s in mh], [2, 4, 6], atol=0.01)
    xl = read_dat(real_data_dir / XL_DC).measurement_sets(tolerance=0.3)
    assert [len(s) for s in xl] == [3] * 14                          # 2..15 K, 3 points each
    ac = read_dat(real_data_dir / XL_AC).measurement_sets()
    assert [len(s) for s in ac] == [13]


def test_format_value_reproduces_every_number_in_real_files(real_data_dir):
    # MultiVu writes 15 significant digits, E exponents without '+' or zero padding
    count = 0
    for name in (ERCOT, MVSH, MVST):
        lines = (real_data_dir / name).read_text().splitlines()
        start = lines.index("[Data]") + 2
        for line in lines[start:]:
            for tok in split_csv(line)[1:]:
                if tok:
                    assert format_value(float(tok)) == tok
                    count += 1
    assert count > 60000


def test_format_value_special_cases():
    assert format_value(None) == "" and format_value(math.nan) == ""
    assert format_value(7) == "7" and format_value(np.int64(3)) == "3"
    assert format_value(True) == "1"
    assert format_value(1e20) == "1E20" and format_value(-2.5e-7) == "-2.5E-7"
    assert format_value(0.0001) == "0.0001" and format_value(1 / 3) == "0.333333333333333"
    assert format_value("a, b") == '"a, b"' and format_value('say "hi"') == '"say ""hi"""'

# ============================================================================ time base


def test_ole_unix_conversion_example_in_several_zones():
    wall = datetime(2022, 10, 10, 16, 23, 2, 298370)
    assert ole_to_datetime(EXAMPLE_OLE) == wall
    assert ole_to_unix(EXAMPLE_OLE) == pytest.approx(wall.timestamp(), abs=1e-5)   # local
    for zone in ("UTC", "America/Los_Angeles", "Europe/Berlin"):
        expected = wall.replace(tzinfo=ZoneInfo(zone)).timestamp()
        assert ole_to_unix(EXAMPLE_OLE, tz=zone) == pytest.approx(expected, abs=1e-5)
        assert unix_to_ole(expected, tz=ZoneInfo(zone)) == pytest.approx(EXAMPLE_OLE, abs=1e-5)
    utc = ole_to_unix(EXAMPLE_OLE, tz="UTC")
    assert ole_to_unix(EXAMPLE_OLE, tz="America/Los_Angeles") - utc == 7 * 3600   # PDT


def test_ole_unix_arrays_and_nan():
    t = np.array([1.5e9, 1.6e9 + 0.25, math.nan])
    ole = unix_to_ole(t, tz="Europe/Berlin")
    assert isinstance(ole, np.ndarray) and np.isnan(ole[2])
    np.testing.assert_allclose(ole_to_unix(ole, tz="Europe/Berlin")[:2], t[:2], atol=1e-6)
    assert isinstance(ole_to_unix(EXAMPLE_OLE), float)


def test_local_time_follows_machine_zone(monkeypatch):
    # MultiVu stamps in the PC's local time; "local" must mean the TZ in effect
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset not available")
    try:
        monkeypatch.setenv("TZ", "America/Los_Angeles")
        time.tzset()
        la = ole_to_unix(EXAMPLE_OLE)
        monkeypatch.setenv("TZ", "UTC")
        time.tzset()
        utc = ole_to_unix(EXAMPLE_OLE)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert la - utc == 7 * 3600

# ============================================================================ writer


def test_writer_header_layout_matches_real_file(tmp_path, real_data_dir):
    p = tmp_path / "w.dat"
    with DatWriter(p, title="chiT run", sample_material="Er(COT), batch 2", sample_mass_mg=26.3,
                   molecular_weight=542.53, open_time_unix=ole_to_unix(EXAMPLE_OLE)):
        pass
    lines = p.read_text().splitlines()
    real = (real_data_dir / MVST).read_text().splitlines()
    assert lines[:3] == real[:3]                      # [Header], MPMS3 + copyright comments
    assert lines[3] == "TITLE,chiT run"
    assert lines[4] == "FILEOPENTIME,3874580582.29837,10/10/2022,4:23 pm"
    assert lines[5] == "BYAPP,MPMS3 w/ AC,1.0,1.1"
    assert "INFO,26.3,SAMPLE_MASS" in lines and "INFO,542.53,SAMPLE_MOLECULAR_WEIGHT" in lines
    # DATATYPE ... [Data] and the full column header row are those of the real file
    tail = lines[lines.index("DATATYPE,COMMENT,1"):]
    assert tail == real[real.index("DATATYPE,COMMENT,1"):real.index("[Data]") + 2]
    assert split_csv(lines[-1]) == list(MPMS3_COLUMNS) and len(MPMS3_COLUMNS) == 89


def test_writer_morning_clock_format(tmp_path):
    wall = datetime(2019, 4, 24, 9, 7, 30)
    p = tmp_path / "m.dat"
    DatWriter(p, app="SQUID AC", open_time_unix=wall.timestamp()).close()
    text = p.read_text()
    assert f"FILEOPENTIME,{format_value(unix_to_ole(wall.timestamp()))},04/24/2019,9:07 am\n" in text
    assert "BYAPP,SQUID AC,0.9.1.0\n" in text


def test_writer_round_trip(tmp_path):
    p = tmp_path / "rt.dat"
    t0 = 1_700_000_000.125
    w = DatWriter(p, title="rt", sample_material="Gd6", sample_mass_mg=3.25,
                  molecular_weight=2345.6, open_time_unix=t0)
    w.write_comment('ZFC, 100 Oe "fast"', time_unix=t0 + 1)
    rows = []
    for i in range(5):
        row = {"Temperature (K)": 2.0 + i * 0.1 + 1e-13, "Magnetic Field (Oe)": 1000.0,
               "Moment (emu)": 5.90135797363434e-5 * (i + 1), "M. Std. Err. (emu)": math.nan,
               "Measurement Number": i + 1, "time_unix": t0 + 10 + i}
        w.write_row(row)
        rows.append(row)
    w.write_comment("warm up", time_unix=t0 + 100)
    w.write_row({"Temperature (K)": 300.0, "Comment": "note, with comma",
                 "Time Stamp (sec)": unix_to_ole(t0 + 200)})
    w.close()
    assert w.rows_written == 6
    d = read_dat(p)
    assert d.flavor == "MPMS3" and d.time_base == "ole"
    assert (d.title, d.sample_mass_mg, d.molecular_weight) == ("rt", 3.25, 2345.6)
    assert d.file_open_time_unix == pytest.approx(t0, abs=1e-5)
    assert len(d.rows) == 6
    for got, want in zip(d.rows, rows):
        assert got["Temperature (K)"] == float(f"{want['Temperature (K)']:.15g}")
        assert got["Moment (emu)"] == pytest.approx(want["Moment (emu)"], rel=1e-14)
        assert got["M. Std. Err. (emu)"] is None and got["AC Moment (emu)"] is None
        assert got["Measurement Number"] == want["Measurement Number"]
    assert d.rows[5]["Comment"] == "note, with comma"
    np.testing.assert_allclose(d.timestamps_unix(), [t0 + 10 + i for i in range(5)] + [t0 + 200],
                               atol=1e-5)
    assert [c.text for c in d.comments] == ['ZFC, 100 Oe "fast"', "warm up"]
    assert d.comments[0].time_unix == pytest.approx(t0 + 1, abs=1e-5)
    assert d.comment_positions == [0, 5]
    assert d.moment_column() == "Moment (emu)"
    # comment-only rows are short, like the real '"ZFC, 100",3874580582.41911'
    comment_line = p.read_text().splitlines()[d.row_lines[0] - 2]
    assert comment_line == f'"ZFC, 100 Oe ""fast""",{format_value(unix_to_ole(t0 + 1))}'


def test_writer_rejects_bad_input_and_existing_file(tmp_path):
    p = tmp_path / "x.dat"
    w = DatWriter(p)
    with pytest.raises(KeyError, match="Temprature"):
        w.write_row({"Temprature (K)": 2.0})
    with pytest.raises(ValueError, match="not both"):
        w.write_row({"time_unix": 1.7e9, "Time Stamp (sec)": 3.9e9})
    w.close()
    with pytest.raises(ValueError, match="closed"):
        w.write_row({"Temperature (K)": 2.0})
    with pytest.raises(FileExistsError):
        DatWriter(p)                                  # never clobber measured data
    with pytest.raises(ValueError, match="Time Stamp"):
        DatWriter(tmp_path / "y.dat", columns=["Comment", "Temperature (K)"])


def test_writer_append_resumes_after_crash(tmp_path):
    p = tmp_path / "a.dat"
    with DatWriter(p) as w:
        w.write_row({"Temperature (K)": 2.0, "time_unix": 1.7e9})
    with open(p, "a") as fh:
        fh.write(",3874580582.5,2.1,100")             # a row cut off by a kill
    with DatWriter(p, if_exists="append") as w:
        assert w.rows_written == 1
        w.write_row({"Temperature (K)": 3.0, "time_unix": 1.7e9 + 5})
    d = read_dat(p)
    assert list(d.column("Temperature (K)")) == [2.0, 3.0]
    with pytest.raises(DatFormatError, match="other columns"):
        DatWriter(p, if_exists="append", columns=["Comment", "Time Stamp (sec)", "X"])


def test_writer_threads_do_not_interleave(tmp_path):
    p = tmp_path / "t.dat"
    w = DatWriter(p)

    def worker(k):
        for i in range(50):
            w.write_row({"Temperature (K)": k, "Measurement Number": i, "Comment": f"w{k}, {i}"})

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.close()
    d = read_dat(p)
    assert len(d.rows) == 200 and w.rows_written == 200
    for k in range(4):   # every row intact: comment matches its own fields
        mine = [r for r in d.rows if r["Temperature (K)"] == k]
        assert [r["Comment"] for r in mine] == [f"w{k}, {int(r['Measurement Number'])}" for r in mine]
        assert [r["Measurement Number"] for r in mine] == list(range(50))


@pytest.mark.parametrize("sync", [True, False])
def test_writer_flushes_and_fsyncs_every_row(tmp_path, monkeypatch, sync):
    import spinlight.instruments.qd_dat_writer as writer_mod

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(writer_mod.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    p = tmp_path / "s.dat"
    w = DatWriter(p, fsync=sync)
    n0 = len(synced)
    w.write_row({"Measurement Number": 1})
    assert len(read_dat(p).rows) == 1               # visible to readers before close()
    w.write_comment("c")
    assert len(synced) - n0 == (2 if sync else 0)
    w.close()


def test_writer_returned_rows_survive_kill_9(tmp_path):
    p = tmp_path / "k.dat"
    code = (
        "import sys\n"
        "from spinlight.instruments.qd_dat import DatWriter\n"
        f"w = DatWriter({str(p)!r})\n"
        "i = 0\n"
        "while True:\n"
        "    i += 1\n"
        "    w.write_row({'Temperature (K)': 2.0, 'Measurement Number': i})\n"
        "    print(i, flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        acknowledged = 0
        while acknowledged < 20:
            acknowledged = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
    data = p.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    p.write_bytes(complete)                            # drop any half line cut by the kill
    d = read_dat(p)
    assert len(d.rows) >= acknowledged
    assert list(d.column("Measurement Number")[:acknowledged]) == list(range(1, acknowledged + 1))

# ============================================================================ reader edge cases

MPMS3_SMALL = (
    "[Header]\n"
    "; MPMS3 Data File (default extension .dat)\n"
    "TITLE,small\n"
    "FILEOPENTIME,3874580582.29837,10/10/2022,4:23 pm\n"
    "BYAPP,MPMS3 w/ AC,1.0,1.1\n"
    "INFO,1.38,SAMPLE_MASS\n"
    "[Data]\n"
    "Comment,Time Stamp (sec),Temperature (K),Moment (emu)\n"
    '"ZFC, 100",3874580582.41911\n'
    ",3874581498.28627,4.998610496521,5.90135797363434E-5\n"
    ",3874581500.5,5.1,\n"
    '"FC, 100",3874581600\n'
    ",3874581700,5.0,1E-3,\n"
)


def test_comment_rows_with_commas_and_sets(tmp_path):
    p = tmp_path / "c.dat"
    p.write_text(MPMS3_SMALL)
    d = read_dat(p)
    assert len(d.rows) == 3
    assert [c.text for c in d.comments] == ["ZFC, 100", "FC, 100"]
    assert d.comments[0].time_unix == pytest.approx(ole_to_unix(3874580582.41911), abs=1e-5)
    assert d.rows[1]["Moment (emu)"] is None
    assert np.isnan(d.column("Moment (emu)")[1])
    assert d.column("Moment (emu)")[0] == pytest.approx(5.90135797363434e-5)
    sets = d.measurement_sets(tolerance=1.0)
    # same temperature range, but the comment rows separate the ZFC and FC sets
    assert [(s.label, len(s)) for s in sets] == [("ZFC, 100", 2), ("FC, 100", 1)]
    assert len(d.measurement_sets(tolerance=1.0, split_on_comments=False)) == 1


def test_mpmsxl_style_blank_line_after_data_and_quoted_columns(tmp_path):
    p = tmp_path / "xl.dat"
    p.write_text(
        "[Header]\nTITLE,MPMS DC Measurement\nBYAPP,MPMS Measurement,2.1,Summary\n"
        "FILEOPENTIME, 1480485262.746000 11/29/2016, 9:54:22 PM\n\n"
        "INFO, WEIGHT, 48.400\nINFO, COMMENT, \n\n[Data]\n\n"
        '"Time","Comment","Field (Oe)","Temperature (K)","Long Moment (emu)",\n'
        "1480485262.746,,1.000000e+003,1.999682e+000,5.397742e-002,\n"
        '1480485275.036,"at 2 K, again",1.000000e+003,2.000037e+000,,\n'
    )
    d = read_dat(p)
    assert d.flavor == "MPMS-XL" and d.time_base == "unix"
    assert d.columns == ["Time", "Comment", "Field (Oe)", "Temperature (K)", "Long Moment (emu)"]
    assert d.sample_mass_mg == pytest.approx(48.4) and d.info["COMMENT"] == ""
    assert d.rows[0]["Field (Oe)"] == 1000.0 and d.rows[1]["Comment"] == "at 2 K, again"
    assert d.moment_column() == "Long Moment (emu)"
    np.testing.assert_array_equal(d.timestamps_unix(), [1480485262.746, 1480485275.036])


def test_multipyvu_written_file_is_unix_time(tmp_path):
    mvdf = pytest.importorskip("MultiPyVu.MultiVuDataFile.MultiVuDataFile")
    p = tmp_path / "mpv.dat"
    f = mvdf.MultiVuDataFile()
    f.add_multiple_columns(["Temperature (K)", "Field (Oe)"])
    f.create_file_and_write_header(str(p), "Using Python")
    before = time.time()
    f.set_value("Temperature (K)", 2.5)
    f.set_value("Field (Oe)", 100)
    f.write_data()
    d = read_dat(p)
    assert d.flavor == "MultiPyVu" and d.time_base == "unix"
    assert d.columns == ["Comment", "Time Stamp (sec)", "Temperature (K)", "Field (Oe)"]
    assert d.timestamps_unix()[0] == pytest.approx(before, abs=5)
    assert d.rows[0]["Field (Oe)"] == 100.0


@pytest.mark.parametrize(
    "text, lineno, match",
    [
        ("hello\n", 1, "expected '\\[Header\\]'"),
        ("[Header]\nTITLE,x\n[Data]\nComment,Time Stamp (sec),T\n,3.8e9,1\n,3.8e9,1,2,3\n", 6,
         "5 fields but only 3 columns"),
        ("[Header]\n[Data]\nComment,T,T\n", 3, "duplicate column"),
        ("[Header]\n[Data]\nComment,,T\n", 3, "bad column header"),
    ],
)
def test_malformed_file_errors_name_file_and_line(tmp_path, text, lineno, match):
    p = tmp_path / "bad.dat"
    p.write_text(text)
    with pytest.raises(DatFormatError, match=match) as exc:
        read_dat(p)
    assert exc.value.lineno == lineno
    assert f"{p}, line {lineno}:" in str(exc.value)


def test_missing_sections_and_text_in_numeric_column(tmp_path):
    p = tmp_path / "nodata.dat"
    p.write_text("[Header]\nTITLE,x\n")
    with pytest.raises(DatFormatError, match="no \\[Data\\] section") as exc:
        read_dat(p)
    assert str(p) in str(exc.value)
    p.write_text("[Header]\n[Data]\n")
    with pytest.raises(DatFormatError, match="no column header"):
        read_dat(p)
    p.write_text("[Header]\n[Data]\nComment,Time,T (K)\n,1.5e9,2\n,1.5e9,oops\n")
    d = read_dat(p)
    assert d.rows[1]["T (K)"] == "oops"
    with pytest.raises(DatFormatError, match="line 5: column 'T \\(K\\)' holds non-numeric"):
        d.column("T (K)")


def test_unterminated_last_line(tmp_path):
    p = tmp_path / "u.dat"
    base = "[Header]\n[Data]\nComment,Time Stamp (sec),A,B\n,3874581498.2,1,2\n"
    p.write_text(base + ",3874581499,1")           # writer still busy: skipped
    with pytest.warns(UserWarning, match="line 5: incomplete"):
        assert len(read_dat(p).rows) == 1
    p.write_text(base + ",3874581499,3,4")         # every column present: kept
    assert list(read_dat(p).column("A")) == [1.0, 3.0]

# ============================================================================ follower


def _new_writer(path, **kw):
    return DatWriter(path, open_time_unix=1_700_000_000.0, **kw)


def test_follower_missing_file_then_header_in_pieces(tmp_path, real_data_dir):
    p = tmp_path / "f.dat"
    fol = DatFollower(p)
    assert fol.poll() == []                           # file does not exist yet
    real = (real_data_dir / ERCOT).read_bytes()
    head_end = real.index(b"\n", real.index(b"[Data]") + 7) + 1       # header + column row
    first_row_end = real.index(b"\n", head_end) + 1
    with open(p, "wb") as fh:
        for a, b in [(0, 40), (40, 700), (700, head_end - 5), (head_end - 5, head_end + 100)]:
            fh.write(real[a:b])
            fh.flush()
            assert fol.poll() == []                   # header / partial row only
        fh.write(real[head_end + 100:first_row_end])
        fh.flush()
        rows = fol.poll()
    assert len(rows) == 1 and fol.header_complete and len(fol.columns) == 89
    assert rows[0]["AC Moment (emu)"] == pytest.approx(5.675461762531e-5)
    assert fol.flavor == "MPMS3"
    assert fol.time_unix(rows[0]) == pytest.approx(ole_to_unix(3720610041.02044), abs=1e-5)


def test_follower_partial_line_in_two_chunks(tmp_path):
    p = tmp_path / "f.dat"
    _new_writer(p).close()
    fol = DatFollower(p)
    assert fol.poll() == [] and fol.header_complete
    line = ",3874581498.28627,4.998610496521,100.07," + "," * 85 + "\n"
    with open(p, "a") as fh:
        fh.write(line[:30])
        fh.flush()
        assert fol.poll() == []                       # half a row is never returned
        fh.write(line[30:])
        fh.flush()
    rows = fol.poll()
    assert len(rows) == 1 and rows[0]["Temperature (K)"] == pytest.approx(4.998610496521)
    assert rows[0]["Magnetic Field (Oe)"] == pytest.approx(100.07)


def test_follower_with_writer_thread(tmp_path):
    p = tmp_path / "f.dat"
    w = _new_writer(p)
    fol = DatFollower(p, poll_interval_s=0.01)

    def produce():
        for i in range(1, 31):
            if i == 11:
                w.write_comment("second block, 5 K")
            w.write_row({"Temperature (K)": 5.0, "Measurement Number": i})
            time.sleep(0.002)

    th = threading.Thread(target=produce)
    th.start()
    try:
        first = fol.wait_for_rows(5, timeout_s=5)
        even = fol.wait_for_rows(3, timeout_s=5, predicate=lambda r: r["Measurement Number"] % 2 == 0)
        rest = fol.wait_for_rows(20, timeout_s=5)
    finally:
        th.join()
        w.close()
    assert [r["Measurement Number"] for r in first] == [1, 2, 3, 4, 5]
    assert [r["Measurement Number"] for r in even] == [6, 8, 10]   # 7, 9 consumed
    assert [r["Measurement Number"] for r in rest] == list(range(11, 31))
    assert [r["Measurement Number"] for r in fol.rows_since_start] == list(range(1, 31))
    assert [c[1] for c in fol.comments] == ["second block, 5 K"]
    assert fol.poll() == []


def test_follower_reads_only_new_bytes(tmp_path):
    p = tmp_path / "f.dat"
    w = _new_writer(p)
    fol = DatFollower(p)
    fol.poll()
    header_lines = fol.lines_parsed
    assert fol.offset == p.stat().st_size
    for i in range(3):
        w.write_row({"Measurement Number": i})
    assert len(fol.poll()) == 3
    assert fol.lines_parsed == header_lines + 3          # old lines never re-parsed
    fol.poll()
    assert fol.lines_parsed == header_lines + 3 and fol.offset == p.stat().st_size
    w.close()


def test_follower_timeout_from_end_and_replaced_file(tmp_path):
    p = tmp_path / "f.dat"
    w = _new_writer(p)
    w.write_row({"Measurement Number": 1})
    fol = DatFollower(p, from_end=True)                 # ignores the row already there
    with pytest.raises(TimeoutError, match=str(p.name)):
        fol.wait_for_rows(1, timeout_s=0.1)
    w.write_row({"Measurement Number": 2})
    w.write_row({"Measurement Number": 3})
    assert [r["Measurement Number"] for r in fol.wait_for_rows(1, timeout_s=2)] == [2]
    w.close()
    p.unlink()                                          # a new file replaces the old one
    w2 = _new_writer(p)
    w2.write_row({"Measurement Number": 7})
    w2.close()
    # row 3 (read, still queued) is kept; the new file is read from its start
    assert [r["Measurement Number"] for r in fol.poll()] == [3, 7]
    assert [r["Measurement Number"] for r in fol.rows_since_start] == [2, 3, 7]
    with pytest.raises(ValueError, match="timeout_s"):
        fol.wait_for_rows(1, timeout_s=math.inf)
    with pytest.raises(TimeoutError, match="no complete \\[Data\\] header"):
        DatFollower(tmp_path / "never.dat").wait_for_rows(1, timeout_s=0.05)


def test_follower_detects_file_overwritten_in_place(tmp_path):
    # same inode, bigger than before: only the changed first bytes reveal the new file
    p = tmp_path / "f.dat"
    with DatWriter(p, open_time_unix=1_700_000_000.0) as w:
        w.write_row({"Measurement Number": 1})
    fol = DatFollower(p)
    assert [r["Measurement Number"] for r in fol.poll()] == [1]
    ino = p.stat().st_ino
    with DatWriter(p, open_time_unix=1_700_000_100.0, if_exists="overwrite") as w:
        for i in range(10, 15):
            w.write_row({"Measurement Number": i})
    assert p.stat().st_ino == ino
    assert [r["Measurement Number"] for r in fol.poll()] == [10, 11, 12, 13, 14]


def test_follower_reports_malformed_line_once(tmp_path):
    p = tmp_path / "f.dat"
    _new_writer(p).close()
    fol = DatFollower(p)
    fol.poll()
    with open(p, "a") as fh:
        fh.write(",1,2" + ",9" * 100 + "\n" + ",3874581498,7" + "," * 87 + "\n")
    with pytest.raises(DatFormatError, match=r"line \d+: 103 fields but only 89 columns"):
        fol.poll()
    rows = fol.poll()                                  # the good row after it still arrives
    assert len(rows) == 1 and rows[0]["Temperature (K)"] == 7.0
