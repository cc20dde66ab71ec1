"""kill -9 of `spinlight run` in the middle of a measurement, then `spinlight resume`: every
point of the campaign is stored exactly once, the interrupted run is marked and the
continuation is linked to it; a changed file is refused."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib

from processes import Child, logged_events
from spinlight.campaign import load_campaign
from spinlight.campaign_estimate import MeasurementEstimate
from spinlight.campaign_run import left_of
from spinlight.campaign_store import cached_estimate, campaign_files
from spinlight.catalog import open_catalog
from spinlight.cli import main
from spinlight.doclog import read_log

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
AC = 2            # the measurement killed: ac_frequency_sweep, 9 points on two stations
KILL_AFTER = 3    # events of the ac run in its document log


def _ac_log(catalog: pathlib.Path) -> pathlib.Path | None:
    for path in catalog.glob("doclog/*/*.jsonl"):
        first = path.read_text().split("\n", 1)[0]
        if '"ac_frequency_sweep"' in first:
            return path
    return None


def _kill_mid_ac(path: pathlib.Path, catalog: pathlib.Path, tmp: pathlib.Path) -> None:
    def ac_started() -> bool:
        log = _ac_log(catalog)
        return log is not None and len(logged_events(log)) >= KILL_AFTER

    with Child("-m", "spinlight.cli", "run", path, "--no-progress", logs=tmp / "run", cwd=tmp,
               env={**os.environ, "MPLBACKEND": "Agg"}) as run:
        run.wait_until(ac_started, timeout_s=60, poll_s=0.02,
                       what="the ac measurement did not start")
        run.kill9()


def _resume(path, *extra) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["resume", str(path), "--no-progress", *extra])
    return code, out.getvalue(), err.getvalue()


def test_kill9_then_resume_stores_every_point_once(tmp_path):
    path = tmp_path / "quick_campaign.toml"
    # a tenth of the example's speed: the ac sweep takes seconds, so the kill lands inside it
    text = (EXAMPLES / "quick_campaign.toml").read_text().replace("speed = 20000.0", "speed = 2000.0")
    path.write_text(text)
    campaign = load_campaign(path)
    files = campaign_files(campaign)
    _kill_mid_ac(path, files.catalog, tmp_path)
    killed_log = _ac_log(files.catalog)
    with open_catalog(files.catalog) as catalog:
        killed = catalog.get_run(killed_log.stem)
        assert catalog.run_status(killed) == "interrupted"
        stored = sum(catalog.num_events(killed, s) for s in killed)
    logged = len(logged_events(killed_log))
    assert KILL_AFTER - 1 <= stored <= logged < 9          # at most the event in flight

    # a changed file is refused, naming the change; nothing is touched
    path.write_text(text.replace("field_Oe = 1200.0", "field_Oe = 1000.0"))
    code, out, err = _resume(path)
    assert code == 2 and "changed since its last run" in err
    assert "measurement 2 (ac_frequency_sweep): field_Oe was 1200.0, now 1000.0" in err
    assert "--force" in err
    path.write_text(text)

    code, out, err = _resume(path)
    assert code == 0, err
    rows = out.splitlines()
    assert [r.split()[2] for r in rows[:5]] == ["done", "done", "partial", "not", "not"]
    assert f"{stored}/9 pts" in rows[AC] and "(interrupted)" in rows[AC]

    estimates = [e["points"] for e in cached_estimate(files)[0]]      # the run's rehearsal
    assert estimates == [6, 5, 9, 11, 2]
    freqs = set(campaign.measurements[AC].arguments()["frequencies_Hz"])
    with open_catalog(files.catalog) as catalog:
        runs = [r for r in catalog.client.values()
                if r.metadata["start"].get("campaign", {}).get("file") == str(path.resolve())]
        per_index, ac_points = {}, []
        for run in runs:
            i = run.metadata["start"]["campaign"]["index"]
            per_index[i] = per_index.get(i, 0) + sum(catalog.num_events(run, s) for s in run)
            if i == AC:
                for stream in run:
                    data = catalog.read_stream(run, stream)
                    key = next(k for k in data if k.endswith("_frequency_hz"))
                    ac_points += [(stream, round(float(f), 6)) for f in data[key]]
        # every point of the campaign stored, none twice
        assert [per_index[i] for i in range(5)] == estimates
        assert len(ac_points) == len(set(ac_points)) == 9
        assert {f for _, f in ac_points} == {round(f, 6) for f in freqs}
        # the interrupted run is marked and the continuation linked to it
        killed = catalog.get_run(killed_log.stem)
        stop = killed.metadata["stop"]
        assert catalog.run_status(killed) == "abort" and stop["num_events"] == {"ac_mpms3": stored}
        (cont,) = [r.metadata["start"] for r in runs if r.metadata["start"]["campaign"]["index"]
                   == AC and r.metadata["start"]["uid"] != killed_log.stem]
        assert cont["continues"] == killed_log.stem and cont["resume_after"] == stored
        assert cont["num_points"] == 9 - stored and cont["num_points_total"] == 9
        assert stop["reason"] == f"interrupted: acquisition process died; continued by {cont['uid']}"
    # the document log got the stop document too, and no longer says "being written"
    docs = list(read_log(killed_log))
    assert docs[-1] == ("stop", json.loads(json.dumps(stop)))
    assert not killed_log.with_name(killed_log.name + ".lock").exists()

    code, out, _ = _resume(path)
    assert code == 0 and "nothing to resume" in out


def test_the_progress_of_a_continuation_counts_only_what_is_left():
    est = MeasurementEstimate(2, "ac", "ac_frequency_sweep", "mCB-Nd", points=9, instrument_s=900.0)
    left = left_of(est, {"arguments": {"resume_after": 3, "continues": "uid"}, "md": {}})
    assert (left.points, left.instrument_s, left.index) == (6, 600.0, 2)
    assert left_of(est, None) is est and left_of(est, {"md": {"continues": "uid"}}) is est
    assert left_of(est, {"arguments": {"resume_after": 12}}).points == 0
