"""Storage: Tiled catalog on SQLite, JSON-lines document log, persistent scan ids, kill -9
safety, the .dat importer and the catalog/fit CLI.

Runs use ophyd.sim devices and bluesky.plans for now; helpers (fresh catalog folders, the
subprocess writer/reader in ``_storage_*.py``) are reusable by the MPMS3 plan tests.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from processes import Child, logged_events
from spinlight.catalog import NotACatalogError, RunNotFoundError, open_catalog
from spinlight.doclog import read_log, reinsert, writer_alive
from spinlight.engine import EngineLockedError, make_run_engine

HERE = pathlib.Path(__file__).resolve().parent
REAL = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
MVT = REAL / "mpms3_dc_m_vs_t_ErBAT.dat"
ZFC = REAL / "mpmsxl_dc_zfc_pb6051.dat"
SUBPROCESS_TIMEOUT_S = 90


# -- helpers -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def empty_catalog(tmp_path_factory) -> pathlib.Path:
    """One initialised, empty catalog; tests copy it (Tiled's init runs a ~5-10 s subprocess)."""
    root = tmp_path_factory.mktemp("template") / "catalog"
    open_catalog(root, create=True).close()
    return root


@pytest.fixture
def fresh_root(empty_catalog, tmp_path):
    def make(name: str = "catalog") -> pathlib.Path:
        dest = tmp_path / name
        shutil.copytree(empty_catalog, dest)
        return dest
    return make


def run_python(script: str, *args, timeout=SUBPROCESS_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HERE / script), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, check=False)


def same_columns(a: dict, b: dict, keys) -> None:
    for k in keys:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


# -- write, read back in a second process, scan ids, document log, re-insert --------------------
def test_runs_persist_scan_ids_doclog_and_second_process_read(fresh_root, tmp_path):
    import bluesky.plans as bp
    from ophyd.sim import det, motor

    root = fresh_root()
    RE, cat = make_run_engine(root, progress=False)
    uid1, = RE(bp.scan([det], motor, -1, 1, 5, md={"sample": {"name": "Gd6"}}))
    uid2, = RE(bp.count([det], 3, md={"sample": "plain-string-sample"}))
    paths = dict(RE.spinlight_doclog.paths)
    cat.close()

    # a second RunEngine on the same folder continues the scan ids; only one may own it
    RE2, cat2 = make_run_engine(root, progress=False)
    with pytest.raises(EngineLockedError, match=str(root)):
        make_run_engine(root, progress=False)
    uid3, = RE2(bp.scan([det], motor, 0, 1, 4, md={"sample": {"name": "Gd6"}}))
    paths.update(RE2.spinlight_doclog.paths)
    local = {u: cat2.read_primary(cat2.get_run(u)) for u in (uid1, uid2, uid3)}
    assert [cat2.start_doc(cat2.get_run(u))["scan_id"] for u in (uid1, uid2, uid3)] == [1, 2, 3]
    assert cat2.get_run(-1).metadata["start"]["uid"] == uid3
    assert cat2.get_run("2").metadata["start"]["uid"] == uid2
    assert cat2.get_run(uid1[:8]).metadata["start"]["uid"] == uid1
    with pytest.raises(RunNotFoundError, match=f"scan_id 99 in catalog '{root}'"):
        cat2.get_run(99)
    assert [s.scan_id for s in cat2.runs(sample="Gd6")] == [1, 3]
    assert [s.scan_id for s in cat2.runs(limit=1)] == [3]
    cat2.close()

    # read back in another process
    proc = run_python("_storage_reader.py", root)
    assert proc.returncode == 0, proc.stderr
    remote = json.loads(proc.stdout)
    assert [(r["scan_id"], r["status"], r["num_events"], r["sample"]) for r in remote["runs"]] == [
        (1, "success", 5, "Gd6"), (2, "success", 3, "plain-string-sample"),
        (3, "success", 4, "Gd6")]
    for u in (uid1, uid2, uid3):
        same_columns(local[u], remote["data"][u], local[u].keys())
    np.testing.assert_allclose(remote["data"][uid1]["motor"], [-1, -0.5, 0, 0.5, 1])

    # one JSON-lines log per run, in doclog/<date>/<uid>.jsonl, complete, no lock left behind
    for u, n in ((uid1, 5), (uid2, 3), (uid3, 4)):
        p = paths[u]
        assert p.parent.parent == root / "doclog" and p.name == f"{u}.jsonl"
        names = [name for name, _ in read_log(p)]
        assert names[0] == "start" and names[-1] == "stop" and names.count("event") == n
        assert writer_alive(root, u) is False
    assert not list((root / "doclog").glob("*/*.lock"))

    # re-insert a run from its log into a fresh catalog: identical start and event data
    other = fresh_root("reinserted")
    with open_catalog(other) as cat3:
        assert reinsert(paths[uid1], cat3) == uid1
        run = cat3.get_run(uid1)
        assert cat3.start_doc(run) == remote["start"][uid1]
        assert cat3.summary(run).status == "success"
        same_columns(cat3.read_primary(run), local[uid1], ["seq_num", "time", "det", "motor"])


def test_not_a_catalog_errors_name_the_path(tmp_path):
    with pytest.raises(NotACatalogError, match=str(tmp_path / "missing")):
        open_catalog(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotACatalogError, match="no catalog.db"):
        open_catalog(tmp_path / "plain")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "catalog.db").write_text("not sqlite at all " * 100)
    with pytest.raises(NotACatalogError, match=str(tmp_path / "bad")):
        open_catalog(tmp_path / "bad")


# -- live read of a run in progress, then kill -9 ------------------------------------------------
def test_kill9_mid_run_keeps_every_written_event(fresh_root, tmp_path):
    root = fresh_root()
    min_events, live_rows, log = 10, 0, None

    def enough_logged_and_read_live(cat) -> bool:
        nonlocal live_rows, log
        logs = list((root / "doclog").glob("*/*.jsonl"))
        if not logs:
            return False
        log = logs[0]
        n_logged = len(logged_events(log))
        if n_logged >= 4 and not live_rows:   # concurrent read of the open run
            run = cat.get_run(-1)
            assert "stop" not in run.metadata or not run.metadata["stop"]
            assert cat.run_status(run) == "open"
            live_rows = len(cat.read_primary(run)["seq_num"])
        return n_logged >= min_events and bool(live_rows)

    with Child(HERE / "_storage_writer.py", root, 200, 0.15, "kill-sample",
               logs=tmp_path / "writer") as writer:
        with open_catalog(root) as cat:
            writer.wait_until(lambda: enough_logged_and_read_live(cat),
                              timeout_s=SUBPROCESS_TIMEOUT_S, poll_s=0.1,
                              what="writer did not log enough events")
        assert writer.kill9() == -signal.SIGKILL
    assert live_rows >= 3
    print(f"kill -9 after {len(logged_events(log))} logged events; {live_rows} rows read live")

    events = logged_events(log)
    uid = log.stem
    with open_catalog(root) as cat:
        run = cat.get_run(uid)
        assert not run.metadata.get("stop")
        summary = next(s for s in cat.runs() if s.uid == uid)
        assert summary.status == "interrupted" and summary.sample == "kill-sample"
        stored = cat.read_primary(run)
        n = len(stored["seq_num"])
        # The log is written before Tiled: at most the one event in flight is missing.
        assert len(events) - 1 <= n <= len(events) and n >= min_events - 1
        assert summary.num_events == n
        np.testing.assert_array_equal(stored["seq_num"], [e["seq_num"] for e in events[:n]])
        np.testing.assert_array_equal(stored["det"], [e["data"]["det"] for e in events[:n]])
        np.testing.assert_array_equal(stored["time"], [e["time"] for e in events[:n]])
        killed_scan_id = cat.start_doc(run)["scan_id"]
        print(f"after kill: {n} of {len(events)} logged events readable from the catalog")

    # the log restores every logged event into a fresh catalog
    with open_catalog(fresh_root("from_log")) as cat2:
        reinsert(log, cat2)
        restored = cat2.read_primary(cat2.get_run(uid))
        assert len(restored["seq_num"]) == len(events)
        assert cat2.run_status(cat2.get_run(uid)) == "interrupted"
        assert len(logged_events(next(cat2.root.glob(f"doclog/*/{uid}.jsonl")))) == len(events)

    # after the crash, a new process continues the scan ids
    import bluesky.plans as bp
    from ophyd.sim import det

    RE, cat3 = make_run_engine(root, progress=False)
    try:
        RE(bp.count([det], 2))
        statuses = [(s.scan_id, s.status) for s in cat3.runs()]
    finally:
        cat3.close()
    assert statuses == [(killed_scan_id, "interrupted"), (killed_scan_id + 1, "success")]


# -- import of real .dat files through the CLI, runs, fit, derived runs -------------------------
def cli(*argv) -> int:
    from spinlight.cli import main

    return main([str(a) for a in argv])


def test_cli_import_runs_and_fit_real_files(fresh_root, capsys):
    from spinlight.instruments.qd_dat import read_dat

    root = fresh_root()
    assert cli("import", MVT, "--sample", "ErBAT", "--mass-mg", 7.2, "--molar-mass", 839.24,
               "--ions", "Er=1", "--diamagnetic", "-4.2e-4", "--data", root) == 0
    # MPMS-XL file: no molar mass in the header; a placeholder value is given here
    assert cli("import", ZFC, "--sample", "pb6051", "--mass-mg", 48.4, "--molar-mass", 1000,
               "--data", root) == 0
    capsys.readouterr()
    assert cli("runs", "--json", "--data", root) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [(r["plan_name"], r["measurement"], r["sample"], r["num_events"], r["status"])
            for r in runs] == [("import_dat", "chi_t", "ErBAT", 300, "success"),
                               ("import_dat", "chi_t", "pb6051", 42, "success")]
    assert cli("runs", "--sample", "pb6051", "--data", root) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:6] == ["scan_id", "time", "plan", "sample", "points", "status"]
    assert len(table) == 2 and "pb6051" in table[1] and " 42 " in table[1]

    dat = read_dat(MVT)
    with open_catalog(root) as cat:
        run = cat.get_run(runs[0]["uid"])
        start = cat.start_doc(run)
        assert start["sample"]["mass_mg"] == 7.2 and start["sample"]["ions"] == {"Er": 1.0}
        assert start["sample"]["diamagnetic_emu_per_mol_Oe"] == -4.2e-4
        assert start["imported_from"]["path"] == str(MVT.resolve())
        assert len(start["imported_from"]["sha256"]) == 64
        data = cat.read_primary(run)
        np.testing.assert_array_equal(data["vsm_moment"], dat.column(dat.moment_column()))
        np.testing.assert_array_equal(data["vsm_temperature"], dat.column("Temperature (K)"))
        np.testing.assert_allclose(data["time"], dat.timestamps_unix())
        np.testing.assert_allclose(data["vsm_time"], dat.timestamps_unix())
        assert "dat_dc_moment_fixed_ctr_emu" in data
        log = next((root / "doclog").glob(f"*/{start['uid']}.jsonl"))
        assert len(logged_events(log)) == 300

        # a derived result run linked to the raw run, stored as the streaming analysis does
        from event_model import compose_run

        from spinlight.analysis.dc import analyze_dc_run

        results = analyze_dc_run({**start, "plan_name": "chi_t"}, data).to_dict()
        bundle = compose_run(metadata={"plan_name": "dc_analysis", "derived_from": start["uid"],
                                       "analysis": "chi_t", "results": results})
        cat.store("start", bundle.start_doc)
        cat.store("stop", bundle.compose_stop())
        assert [cat.start_doc(r)["uid"] for r in cat.derived_runs(start["uid"])] == [
            bundle.start_doc["uid"]]

    capsys.readouterr()
    assert cli("fit", runs[0]["scan_id"], "--json", "--data", root) == 0
    fit = json.loads(capsys.readouterr().out)
    assert fit["run"]["analysis"] == "chi_t" and fit["n_points"] == 300
    assert 11.0 < fit["chi_t_300K_emu_K_per_mol"] < 12.2     # Er(III) free ion: 11.48
    assert np.isfinite(fit["theta_K"])
    assert len(fit["derived_results"]) == 1
    assert fit["derived_results"][0]["results"]["chi_t_300K_emu_K_per_mol"] == pytest.approx(
        fit["chi_t_300K_emu_K_per_mol"], rel=1e-6)
    assert cli("fit", "-1", "--data", root) == 2          # the last stored run is the derived one
    assert "derived result run" in capsys.readouterr().err


def test_cli_bad_input_names_parameter_and_value(fresh_root, tmp_path, capsys):
    root = fresh_root()
    assert cli("import", MVT, "--sample", "x", "--mass-mg", -7.2, "--molar-mass", 839.24,
               "--data", root) == 2
    err = capsys.readouterr().err
    assert "--mass-mg" in err and "-7.2" in err
    assert cli("import", MVT, "--sample", "x", "--mass-mg", 7.2, "--molar-mass", 0,
               "--data", root) == 2
    assert "--molar-mass" in capsys.readouterr().err
    missing = tmp_path / "nope.dat"
    assert cli("import", missing, "--sample", "x", "--mass-mg", 7.2, "--molar-mass", 839.24,
               "--data", root) == 2
    err = capsys.readouterr().err
    assert "FILE" in err and str(missing) in err
    assert cli("runs", "--data", tmp_path / "not-a-catalog") == 2
    assert str(tmp_path / "not-a-catalog") in capsys.readouterr().err
    assert cli("fit", "77", "--data", root) == 2
    err = capsys.readouterr().err
    assert "RUN '77'" in err and "scan_id 77" in err
    with pytest.raises(SystemExit):
        cli("runs", "--limit", "many", "--data", root)


# -- progress bar -----------------------------------------------------------------------------
def test_progress_eta_from_instrument_time_and_never_raises():
    import io

    from event_model import compose_run

    from spinlight.progress import ProgressCallback

    buf = io.StringIO()
    cb = ProgressCallback(file=buf)
    b = compose_run(metadata={"plan_name": "chi_t", "scan_id": 7, "num_points": 10})
    d = b.compose_descriptor(name="primary", data_keys={
        "vsm_time": {"source": "x", "dtype": "number", "shape": []}})
    cb("start", b.start_doc)
    cb("descriptor", d.descriptor_doc)
    for i in range(4):  # instrument time: 30 s per point, wall time: now
        cb("event", d.compose_event(data={"vsm_time": 1e9 + 30.0 * i},
                                    timestamps={"vsm_time": 0.0}))
    elapsed, remaining = cb.last.estimate()
    assert elapsed == pytest.approx(120.0) and remaining == pytest.approx(180.0)
    assert cb.last.postfix() == "instrument 2m00s, ETA 3m00s"
    assert "4/10, instrument 2m00s, ETA 3m00s" in buf.getvalue()
    cb("event", {"garbage": True})            # never raises into the RunEngine
    cb("stop", b.compose_stop())

    # no num_points, no vsm_time: indeterminate bar on event time
    b = compose_run(metadata={"plan_name": "count"})
    d = b.compose_descriptor(name="primary", data_keys={
        "det": {"source": "x", "dtype": "number", "shape": []}})
    cb("start", b.start_doc)
    cb("descriptor", d.descriptor_doc)
    for i in range(3):
        cb("event", d.compose_event(data={"det": 1.0}, timestamps={"det": 0.0}, time=100.0 + 2 * i))
    assert cb.last.estimate() == (pytest.approx(6.0), None)
    cb("stop", b.compose_stop(exit_status="abort"))


# -- document log details ------------------------------------------------------------------------
def test_doclog_numpy_values_lock_and_torn_last_line(tmp_path):
    from event_model import compose_run

    from spinlight.doclog import DocLog

    log = DocLog(tmp_path)
    b = compose_run(metadata={"plan_name": "count", "arr": np.arange(3)})
    d = b.compose_descriptor(name="primary", data_keys={
        "x": {"source": "x", "dtype": "number", "shape": []},
        "trace": {"source": "x", "dtype": "array", "shape": [4]}})
    log("start", b.start_doc)
    uid = b.start_doc["uid"]
    assert writer_alive(tmp_path, uid) is True          # lock held while the run is open
    log("descriptor", d.descriptor_doc)
    log("event", d.compose_event(data={"x": np.float32(1.5), "trace": np.linspace(0, 1, 4)},
                                 timestamps={"x": 0.0, "trace": 0.0}, seq_num=1))
    path = log.paths[uid]
    with open(path, "a") as fh:                          # a writer killed mid-line
        fh.write('{"name": "event", "doc": {"uid": "abc", "da')
    docs = list(read_log(path))
    assert [n for n, _ in docs] == ["start", "descriptor", "event"]
    assert docs[0][1]["arr"] == [0, 1, 2]
    assert docs[2][1]["data"] == {"x": 1.5, "trace": [0.0, 1 / 3, 2 / 3, 1.0]}
    log.close()                                          # closed without a stop document
    assert writer_alive(tmp_path, uid) is False
    assert writer_alive(tmp_path, "no-such-uid") is None
