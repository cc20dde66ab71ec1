"""kill -9 of the acquisition in the middle of a real MPMS3 run: nothing measured is lost."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np

from spinlight.catalog import open_catalog

HERE = pathlib.Path(__file__).parent


def _logged_events(path: pathlib.Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:  # a torn last line
            continue
        if item["name"] == "event":
            out.append(item["doc"])
    return out


def test_kill9_mid_m_h_keeps_every_measured_point(tmp_path):
    root, sim = tmp_path / "catalog", tmp_path / "sim"
    err = open(tmp_path / "writer.err", "w")
    proc = subprocess.Popen([sys.executable, str(HERE / "_kill_mpms3_writer.py"), str(root),
                             str(sim)], stdout=subprocess.DEVNULL, stderr=err)
    deadline, log = time.monotonic() + 180, None
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "writer.err").read_text()
            logs = list(root.glob("doclog/*/*.jsonl"))
            if logs and len(_logged_events(logs[0])) >= 5:
                log = logs[0]
                break
            time.sleep(0.05)
        assert log is not None, "the plan did not measure 5 points in time"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        err.close()
    logged = _logged_events(log)
    assert 5 <= len(logged) < 60  # killed mid-run
    with open_catalog(root) as cat:
        run = cat.get_run(log.stem)
        summary = next(s for s in cat.runs() if s.uid == log.stem)
        assert summary.status == "interrupted" and summary.sample == "kill-mpms3"
        data = cat.read_primary(run)
    # the log is written just before Tiled: at most the event in flight may be missing there
    n = len(data["seq_num"])
    assert n >= len(logged) - 1
    by_seq = {e["seq_num"]: e["data"] for e in logged}
    for seq, moment in zip(data["seq_num"], data["vsm_moment"]):
        assert moment == by_seq[int(seq)]["vsm_moment"]
    # and every point is also in the simulator's .dat file, as on a real MPMS3
    dat_rows = list(sim.glob("*.dat"))[0].read_text().count("\n,")
    assert dat_rows >= n
    assert np.all(np.diff(data["mpms3_field"]) > 0)
