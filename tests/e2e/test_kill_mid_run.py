"""kill -9 of the acquisition in the middle of a real MPMS3 run: nothing measured is lost."""

import pathlib

import numpy as np

from processes import Child, logged_events
from spinlight.catalog import open_catalog

HERE = pathlib.Path(__file__).parent


def test_kill9_mid_m_h_keeps_every_measured_point(tmp_path):
    root, sim = tmp_path / "catalog", tmp_path / "sim"

    def measured_5() -> bool:
        logs = list(root.glob("doclog/*/*.jsonl"))
        return bool(logs) and len(logged_events(logs[0])) >= 5

    with Child(HERE / "_kill_mpms3_writer.py", root, sim, logs=tmp_path / "writer") as writer:
        writer.wait_until(measured_5, timeout_s=180, poll_s=0.05,
                          what="the plan did not measure 5 points")
        writer.kill9()
    (log,) = root.glob("doclog/*/*.jsonl")
    logged = logged_events(log)
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
