"""Campaign runs on the simulated lab: `spinlight plan` / `spinlight run`, campaign metadata in
every run, estimate = run, log + notifier, a failing measurement does not stop the campaign,
Ctrl-C (a pause) aborts with the instruments safe, real mode stops for a sample change."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import re
import shutil
import threading
import time
from types import SimpleNamespace

import pytest

from campaign_files import measurement_toml, sample_toml, small_m_h_toml, write_toml
from spinlight.campaign import load_campaign
from spinlight.campaign_devices import newest_dat
from spinlight.campaign_run import EXIT_ABORTED, EXIT_FAILED, EXIT_SAMPLE_CHANGE, CampaignRunner
from spinlight.campaign_store import campaign_files
from spinlight.catalog import open_catalog
from spinlight.cli import main
from spinlight.progress import format_duration
from spinlight.simulators.lab import SimulatedLab

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"

MD_KEYS = {"name", "file", "sha256", "campaign_id", "index", "label", "plan", "options", "sample",
           "sim"}

SAMPLES = sample_toml("mCB-Nd") + sample_toml("mCB-Yb")


def write_campaign(folder, name, body, *, speed=20000.0, instruments='mode = "sim"'):
    """A campaign sharing the quick campaign's catalog (one catalog creation per module); a
    lost connection is given up after one reconnection attempt."""
    return write_toml(folder, f"{name}.toml",
                      f'[campaign]\nname = "{name}"\ncatalog = "quick-campaign-data/catalog"\n'
                      f'log_file = "logs/{name}.log"\n\n[suspenders]\nreconnect_attempts = 1\n'
                      f"reconnect_backoff_s = 0.1\n\n[instruments]\n{instruments}\n\n"
                      f"[instruments.sim]\nspeed = {speed}\nseed = 3\n" + SAMPLES + body)


class StreamWatch:
    """RunEngine callback calling ``action(doc)`` once, at the first event of ``stream``."""

    def __init__(self, stream, action):
        self.stream, self.action, self.descriptors, self.fired = stream, action, set(), False

    def __call__(self, name, doc):
        if name == "descriptor" and doc.get("name") == self.stream:
            self.descriptors.add(doc["uid"])
        elif name == "event" and doc["descriptor"] in self.descriptors and not self.fired:
            self.fired = True
            self.action(doc)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """`spinlight plan` then `spinlight run --sim` on a copy of examples/quick_campaign.toml."""
    folder = tmp_path_factory.mktemp("campaign")
    path = folder / "quick_campaign.toml"
    shutil.copy(EXAMPLES / "quick_campaign.toml", path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        plan_code = main(["plan", str(path)])
    t0 = time.monotonic()
    campaign = load_campaign(path, sim=True)
    bar = io.StringIO()
    runner = CampaignRunner(campaign, progress=True, progress_file=bar)
    result = runner.run()
    wall = time.monotonic() - t0
    state = json.loads(runner.files.state.read_text())
    return SimpleNamespace(folder=folder, path=path, campaign=campaign, files=runner.files,
                           plan=out.getvalue(), plan_code=plan_code, result=result,
                           wall=wall, state=state, bar=bar.getvalue())


def test_plan_prints_points_and_hours_from_the_rehearsal(quick):
    assert quick.plan_code == 0
    rows = [line.split() for line in quick.plan.splitlines()
            if re.match(r"\s+\d+\s+\w+\s+mCB-Nd\s+\d+", line)]
    est = quick.state["estimates"]
    assert [r[1] for r in rows] == [m.plan for m in quick.campaign.measurements]
    assert [int(r[3]) for r in rows] == [e["points"] for e in est] == [6, 5, 9, 11, 2]
    assert [float(r[5]) for r in rows] == [round(e["instrument_s"] / 3600, 2) for e in est]
    total = next(line for line in quick.plan.splitlines() if line.strip().startswith("total"))
    hours = sum(e["instrument_s"] for e in est) / 3600
    assert total.split()[1] == "33" and float(total.split()[-1]) == round(hours, 2)
    assert 4.0 < hours < 8.0                 # chiT 300->1.8 K in settle mode + an ac sweep
    assert "simulated lab" in quick.plan and "rehearsal x1e+06" in quick.plan


def test_run_stores_every_measurement_with_the_campaign_metadata(quick):
    result = quick.result
    assert result.exit_code == 0 and result.status == "success" and quick.wall < 60.0
    assert [m.status for m in result.measurements] == ["success"] * 5
    assert result.campaign_id == quick.state["campaign_id"]
    summary = json.loads(quick.files.summary.read_text())
    assert summary["ended"] == "finished" and summary["points"] == 33
    assert summary["runs"] == {"success": 6, "fail": 0, "abort": 0, "interrupted": 0, "other": 0}
    cid = quick.state["campaign_id"]
    with open_catalog(quick.files.catalog) as catalog:
        runs = [r for r in catalog.client.values()
                if r.metadata["start"].get("campaign", {}).get("campaign_id") == cid]
        starts = [r.metadata["start"] for r in runs]
        assert [s["plan_name"] for s in starts] == ["chi_t", "m_h", "ac_frequency_sweep",
                                                   "emission_spectrum", "instrument_response",
                                                   "lifetime_decay"]
        for run, start in zip(runs, starts):
            md = start["campaign"]
            spec = quick.campaign.measurements[md["index"]]
            assert set(md) == MD_KEYS
            assert (md["plan"], md["sample"], md["label"]) == (spec.plan, spec.sample, spec.label)
            assert md["sha256"] == quick.files.sha256 and md["file"] == str(quick.path.resolve())
            assert md["options"] == json.loads(json.dumps(spec.arguments()))
            assert md["sim"] == {"speed": 20000.0, "seed": 1, "faults": 0}
            assert run.metadata["stop"]["exit_status"] == "success"
        # stored events = the rehearsal's points, measurement by measurement
        stored = {}
        for run, start in zip(runs, starts):
            n = sum(run.metadata["stop"]["num_events"].values())
            stored[start["campaign"]["index"]] = stored.get(start["campaign"]["index"], 0) + n
        assert [stored[i] for i in range(5)] == [e["points"] for e in quick.state["estimates"]]
        # the streaming analyses and the PHU export ran
        assert catalog.derived_runs(runs[0].metadata["start"]["uid"])
    assert len(list(quick.files.phu.glob("*.phu"))) == 2


def test_instrument_time_of_the_run_matches_the_estimate(quick):
    for e, m in zip(quick.state["estimates"], quick.result.measurements):
        assert m.points == e["points"]
        assert m.instrument_s == pytest.approx(e["instrument_s"], rel=0.10, abs=2.0)
    assert [e.to_dict() for e in quick.result.estimates] == quick.state["estimates"]


def test_progress_bar_counts_points_and_instrument_time_of_the_campaign(quick):
    last = quick.bar.replace("\r", "\n").strip().splitlines()[-1]
    total_s = sum(m.instrument_s for m in quick.result.measurements)
    assert last.startswith("[5/5] lifetime_decay mCB-Nd: 33/33 pts, instrument "
                           f"{format_duration(total_s)}, remaining 0s |")
    early = [line for line in quick.bar.replace("\r", "\n").splitlines()
             if line.startswith("[1/5] chi_t mCB-Nd: 0/33 pts")]
    assert early and "instrument 0s, remaining 5h" in early[0]


def test_log_has_start_and_end_of_every_measurement_with_both_clocks(quick):
    log = quick.files.log.read_text()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    for m in quick.campaign.measurements:
        assert re.search(rf"{stamp}  instr {stamp}  INFO .*measurement {m.index} start: "
                         rf"{m.plan} on mCB-Nd", log)
        assert re.search(rf"measurement {m.index} end: success", log)
    assert "RunEngine idle -> running" in log and "RunEngine running -> idle" in log
    assert "estimate: cached" in log                     # `plan` stored it, `run` reused it
    assert re.search(r"CAMPAIGN\s+quick", log) and re.search(r"SUMMARY\s+campaign 'quick'", log)
    # the instrument clock ran ahead of the wall clock by the campaign's 5 h
    last = re.findall(rf"({stamp})  instr ({stamp})  INFO .*measurement 4 end", log)[0]
    ahead = [time.mktime(time.strptime(t, "%Y-%m-%d %H:%M:%S")) for t in last]
    assert ahead[1] - ahead[0] > 4 * 3600


def test_a_failed_measurement_is_logged_and_the_next_one_runs(quick):
    body = measurement_toml("ac_frequency_sweep", "temperature_K = 2.0\nfield_Oe = 1000.0\n"
                            "frequencies_Hz = [100.0, 1000.0, 5000.0, 10000.0]",
                            stations=["ppms"]) + small_m_h_toml("mCB-Yb")
    path = write_campaign(quick.folder, "failing", body)
    runner = CampaignRunner(load_campaign(path), progress=False, estimate=False)
    # the PPMS goes away (its server stops) after the first ac point
    runner.callbacks.append(StreamWatch("ac_ppms", lambda doc: runner.session.lab.ppms.server.stop()))
    result = runner.run()
    failed, after = result.measurements
    assert (failed.status, after.status) == ("failed", "success")
    assert result.status == "failed" and result.exit_code == EXIT_FAILED
    assert failed.points == 1 and failed.error and after.points == 3
    log = runner.files.log.read_text()
    assert re.search(r"ERROR .*measurement 0 \(ac_frequency_sweep on mCB-Nd\) failed: ", log)
    assert "Traceback" in log and "RUN FAILED" in log and "FAULT" in log
    assert "sample change (simulated): mCB-Nd -> mCB-Yb" in log
    assert "measurement 1 end: success, 3 points" in log
    summary = json.loads(runner.files.summary.read_text())
    assert summary["runs"]["fail"] == 1 and summary["runs"]["success"] == 1
    assert failed.error.startswith("ConnectionLost: ")
    # the driver's outage and give-up, then the measurement's failure
    assert summary["faults"] == {"instrument_connection_lost": 1, "instrument_gave_up": 1,
                                 "ConnectionLost": 1}


def _pause(runner):
    threading.Thread(target=runner.RE.request_pause, daemon=True).start()


def _wait_then_pause(runner, condition):
    def go():
        deadline = time.monotonic() + 10.0
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.002)
        runner.RE.request_pause()
    threading.Thread(target=go, daemon=True).start()


@pytest.mark.parametrize("case", ["ac", "pl"])
def test_a_pause_request_aborts_the_campaign_with_the_instruments_safe(quick, case):
    if case == "ac":   # fields at 1200 Oe on both QD systems when the pause comes
        body = measurement_toml("ac_frequency_sweep", "temperature_K = 2.0\nfield_Oe = 1200.0\n"
                                "frequencies_Hz = [10.0, 100.0, 1000.0, 5000.0, 10000.0]")
        speed, stream = 20000.0, "ac_mpms3"
    else:              # the laser emitting, the detector shutter open, when the pause comes
        body = measurement_toml("lifetime_decay", "emission_nm = 1060.0\n"
                                "expected_lifetime_ns = 134.0\npeak_counts = 1000")
        speed, stream = 4.0, None
    path = write_campaign(quick.folder, f"ctrl-c-{case}", body + small_m_h_toml("mCB-Nd"),
                          speed=speed)
    runner = CampaignRunner(load_campaign(path), progress=False, estimate=False)
    labs = []

    def on_doc(name, doc):
        if name == "start" and not labs:
            labs.append(runner.session.lab)
            if case == "pl":
                _wait_then_pause(runner, lambda: labs[0].pl.laser.snapshot().emitting)
    runner.callbacks.append(on_doc)
    if stream:
        runner.callbacks.append(StreamWatch(stream, lambda doc: _pause(runner)))
    result = runner.run()
    assert result.status == "aborted" and result.exit_code == EXIT_ABORTED
    assert [m.status for m in result.measurements] == ["aborted", "not run"]
    assert result.next_index == 0
    (lab,) = labs
    t = lab.clock.now()
    if case == "ac":
        assert abs(lab.mpms3.magnet.reading(t)) < 1.0 and abs(lab.ppms.magnet.reading(t)) < 1.0
    snap = lab.pl.laser.snapshot()
    assert snap.soft_locked and not snap.emitting
    assert lab.pl.housing.shutters == {"LAMP": "CLOSED", "DETECTOR": "CLOSED"}
    log = runner.files.log.read_text()
    assert "measurement 0 paused (Ctrl-C or a pause request): aborting" in log
    assert "measurement 0 aborted; cleanup done" in log and "RUN ABORTED" in log
    assert "measurement 1 start" not in log
    with open_catalog(runner.files.catalog) as catalog:
        stops = [catalog.get_run(uid).metadata["stop"] for uid in result.measurements[0].uids]
    assert stops and stops[-1]["exit_status"] == "abort"


def test_real_mode_stops_for_a_sample_change(quick, tmp_path):
    with SimulatedLab(speed=20000.0, seed=2, sample="mCB-Nd", data_dir=tmp_path / "sim") as lab:
        ep = lab.endpoints["mpms3"]
        mpms3 = f'mode = "real"\n\n[instruments.mpms3]\nhost = "{ep["host"]}"\nport = {ep["port"]}\n'
        path = write_campaign(quick.folder, "real", small_m_h_toml("mCB-Nd")
                              + small_m_h_toml("mCB-Yb"), instruments=mpms3)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["run", str(path), "--no-progress", "--no-estimate"])
    assert code == EXIT_SAMPLE_CHANGE
    lines = out.getvalue().splitlines()
    assert re.match(r"\s+0\s+m_h\s+mCB-Nd\s+success\s+3 pts", lines[0])
    assert re.match(r"\s+1\s+m_h\s+mCB-Yb\s+not run\s+0 pts", lines[1])
    assert "campaign 'real': sample_change" in lines[2]
    assert lines[3].startswith("sample change: put sample 'mCB-Yb' in the mpms3 (now: 'mCB-Nd')")
    assert f"then run `spinlight resume {path}` (continues at measurement 1, m_h)" in lines[3]
    log = campaign_files(load_campaign(path)).log.read_text()
    assert "real instruments" in log and "put sample 'mCB-Yb'" in log
    assert "measurement 1 start" not in log


def test_real_qd_systems_follow_the_newest_dat_of_their_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dat_folder=.* holds no \.dat file"):
        newest_dat(tmp_path)
    for i, name in enumerate(["b.dat", "a.dat", "notes.txt"]):
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    assert newest_dat(tmp_path) == str(tmp_path / "a.dat")
