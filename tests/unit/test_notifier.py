"""Notifications: a real RunEngine feeding the notifier subprocess (spinlight.notify_feed)."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.utils import RunEngineInterrupted
from event_model import compose_run
from ophyd import Signal

from spinlight.instruments.errors import ConnectionLost
from spinlight.notify_feed import NotifierFeed

pytestmark = pytest.mark.skipif(os.name != "posix", reason="uses POSIX signals")

HOOK = """\
import json, sys, time
out, delay = sys.argv[1], float(sys.argv[2])
payload = json.loads(sys.stdin.read())
time.sleep(delay)
with open(out, "a") as fh:
    fh.write(json.dumps({"argv": sys.argv[3:], "stdin": payload}) + "\\n")
"""


@pytest.fixture
def hook(tmp_path):
    """A hook command appending its argv and stdin (JSON) to ``calls.jsonl``."""
    script = tmp_path / "hook.py"
    script.write_text(HOOK)
    out = tmp_path / "calls.jsonl"

    def command(delay_s: float = 0.0) -> str:
        return shlex.join([sys.executable, str(script), str(out), str(delay_s)])

    def calls() -> list[dict]:
        return [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []

    command.calls = calls
    return command


@pytest.fixture
def RE():
    return RunEngine({}, context_managers=[])


@pytest.fixture
def det():
    return Signal(name="det", value=1.5)


def tags(log) -> list[str]:
    """The tag column of each log line (after the 'YYYY-MM-DD HH:MM:SS  ' stamp)."""
    if not log.exists():
        return []
    return [line[21:36].strip() for line in log.read_text().splitlines()]


def lines_with(log, tag: str) -> list[str]:
    return [line[37:] for line in log.read_text().splitlines() if line[21:36].strip() == tag]


def wait_for(predicate, timeout_s: float = 5.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def fail_on_shot(n: int):
    """A count ``per_shot`` that raises on shot ``n`` (0-based): a failing measurement."""
    shots = iter(range(1000))

    def per_shot(detectors):
        if next(shots) == n:
            raise RuntimeError("simulated detector fault")
        yield from bps.one_shot(detectors)

    return per_shot


def pause_on_shot(n: int):
    shots = iter(range(1000))

    def per_shot(detectors):
        if next(shots) == n:
            yield from bps.pause()
        yield from bps.one_shot(detectors)

    return per_shot


def test_campaign_log_hooks_and_summary(tmp_path, RE, det, hook):
    log, summary = tmp_path / "logs" / "notify.log", tmp_path / "summary.json"
    feed = NotifierFeed(log, hook=hook(), summary=summary)
    RE.subscribe(feed)
    feed.campaign_event("campaign_start", "overnight test", campaign="unit", plans=3)
    md = {"temperatures_K": np.linspace(2, 300, 500), "field_Oe": np.float64(1000.0),
          "holder": object()}  # arrays, numpy scalars, odd objects: JSON-safe, cheaply
    RE(bp.count([det], num=3, md=md))
    with pytest.raises(RuntimeError, match="simulated detector fault"):
        RE(bp.count([det], num=4, per_shot=fail_on_shot(2)))
    feed.campaign_event("suspend", "helium low", level_percent=8.5)
    feed.campaign_event("resume", "helium refilled")
    feed.campaign_event("fault", "lost the PPMS", exc=ConnectionLost("ppms", "TEMP?", None,
                                                                      "connection lost"))
    with pytest.raises(RunEngineInterrupted):
        RE(bp.count([det], num=3, per_shot=pause_on_shot(1)))
    RE.abort(reason="operator abort")
    feed.campaign_event("campaign_end", "all plans done", plans_done=3)
    assert feed.close(timeout=10)
    assert feed.dropped == 0

    assert tags(log) == ["NOTIFIER", "CAMPAIGN", "RUN START", "RUN OK", "RUN START",
                         "RUN FAILED", "SUSPENDED", "RESUMED", "FAULT", "RUN START",
                         "RUN ABORTED", "SUMMARY", "NOTIFIER"]
    ok, = lines_with(log, "RUN OK")
    assert ok.startswith("scan 1 count (") and ": success, 3 points in " in ok
    failed, = lines_with(log, "RUN FAILED")
    assert ": fail, 2 points in " in failed and "simulated detector fault" in failed
    # (bluesky 1.15 leaves the reason of RE.abort() after a pause empty)
    assert ": abort, 1 points in " in lines_with(log, "RUN ABORTED")[0]
    fault, = lines_with(log, "FAULT")
    assert fault.startswith("[ConnectionLost] lost the PPMS (") and "instrument=ppms" in fault
    text, = lines_with(log, "SUMMARY")
    assert text.startswith("campaign 'unit' finished after ")
    assert ("runs 1 ok, 1 failed, 1 aborted, 0 interrupted; 6 points; faults: "
            "ConnectionLost×1; 1 suspensions") in text and "plans_done=3" in text

    calls = hook.calls()
    assert [c["stdin"]["kind"] for c in calls] == ["run_failed", "fault", "run_aborted",
                                                  "summary"]
    assert calls[0]["argv"][0].startswith("RUN FAILED scan 2 count (")
    assert calls[0]["stdin"]["run"]["exit_status"] == "fail"
    assert calls[0]["stdin"]["run"]["points"] == 2
    assert calls[1]["stdin"]["fields"]["command"] == "TEMP?"
    s = calls[3]["stdin"]["summary"]
    assert s["runs"] == {"success": 1, "fail": 1, "abort": 1, "interrupted": 0, "other": 0}
    assert (s["points"], s["faults"], s["suspensions"]) == (6, {"ConnectionLost": 1}, 1)
    assert s["reported"] == {"plans_done": 3}
    assert json.loads(summary.read_text()) == s


def test_killed_consumer_does_not_disturb_the_run_engine(tmp_path, RE, det, caplog):
    log = tmp_path / "notify.log"
    feed = NotifierFeed(log)
    RE.subscribe(feed)
    RE(bp.count([det], num=2))
    wait_for(lambda: "RUN OK" in tags(log))
    os.kill(feed.pid, signal.SIGKILL)
    wait_for(lambda: feed._proc.poll() is not None)
    stops = []
    RE.subscribe(lambda name, doc: stops.append(doc) if name == "stop" else None)
    for _ in range(2):   # the first write finds the broken pipe, the second the dead feed
        RE(bp.count([det], num=3))
    assert [d["exit_status"] for d in stops] == ["success", "success"]
    assert not feed.alive and feed.dropped > 0
    gone = [r for r in caplog.records if r.name == "spinlight.notify_feed"]
    assert len(gone) == 1 and "is gone" in gone[0].getMessage()   # logged once
    assert feed.close(timeout=5)
    assert tags(log).count("RUN OK") == 1


def test_restarted_consumer_gets_open_runs_again(tmp_path):
    log = tmp_path / "notify.log"
    feed = NotifierFeed(log, restart=True)
    feed.campaign_event("campaign_start", "c", campaign="restart-test")
    run = compose_run(metadata={"scan_id": 7, "plan_name": "chi_t", "num_points": 5})
    feed("start", run.start_doc)
    desc = run.compose_descriptor(name="primary", data_keys={
        "m": {"source": "sim", "dtype": "number", "shape": []}})
    feed("descriptor", desc.descriptor_doc)
    feed("event", desc.compose_event(data={"m": 1.0}, timestamps={"m": 0.0}))
    wait_for(lambda: "RUN START" in tags(log))
    os.kill(feed.pid, signal.SIGKILL)
    wait_for(lambda: feed._proc.poll() is not None)
    for i in range(4):
        feed("event", desc.compose_event(data={"m": 2.0 + i}, timestamps={"m": 0.0}))
    feed("stop", run.compose_stop())
    assert feed.close(timeout=10)
    assert feed.restarts == 1
    assert tags(log).count("RUN START") == 1  # the re-sent start is not logged again
    ok, = lines_with(log, "RUN OK")
    assert ok.startswith("scan 7 chi_t (") and ": success, 5 points" in ok
    assert "consumer restarted" in log.read_text()
    assert lines_with(log, "SUMMARY")[0].startswith("campaign 'restart-test' ended without")


KILLED_ACQUISITION = """\
import os, signal, sys, time
from event_model import compose_run
from spinlight.notify_feed import NotifierFeed
feed = NotifierFeed(sys.argv[1], hook=sys.argv[2])
feed.campaign_event("campaign_start", "night", campaign="killed")
run = compose_run(metadata={"scan_id": 4, "plan_name": "m_h", "num_points": 10})
feed("start", run.start_doc)
desc = run.compose_descriptor(name="primary", data_keys={
    "m": {"source": "sim", "dtype": "number", "shape": []}})
feed("descriptor", desc.descriptor_doc)
for i in range(2):
    feed("event", desc.compose_event(data={"m": 1.0}, timestamps={"m": 0.0}))
while not os.path.exists(sys.argv[1]) or "RUN START" not in open(sys.argv[1]).read():
    time.sleep(0.01)
time.sleep(0.2)   # let the writer send the events too
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_acquisition_still_gets_its_summary(tmp_path, hook):
    log = tmp_path / "notify.log"
    proc = subprocess.run([sys.executable, "-c", KILLED_ACQUISITION, str(log), hook()],
                          capture_output=True, timeout=15)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    wait_for(lambda: "input closed" in log.read_text(), 10)
    interrupted, = lines_with(log, "RUN INTERRUPTED")
    assert interrupted.startswith("scan 4 m_h (") and "(2 points seen)" in interrupted
    summary, = lines_with(log, "SUMMARY")
    assert summary.startswith("campaign 'killed' ended without campaign_end")
    assert "0 failed, 0 aborted, 1 interrupted; 2 points" in summary
    assert [c["stdin"]["kind"] for c in hook.calls()] == ["summary"]


def test_stalled_consumer_never_blocks_and_keeps_the_stop_document(tmp_path):
    log = tmp_path / "notify.log"
    feed = NotifierFeed(log, maxsize=50, drop="newest")  # the stop must still get in
    run = compose_run(metadata={"scan_id": 1, "plan_name": "m_h"})
    feed("start", run.start_doc)
    desc = run.compose_descriptor(name="primary", data_keys={
        "m": {"source": "sim", "dtype": "array", "shape": [1000]}})
    feed("descriptor", desc.descriptor_doc)
    os.kill(feed.pid, signal.SIGSTOP)   # reads nothing: the pipe fills, then the queue
    try:
        worst = total = 0.0
        for i in range(5000):
            ev = desc.compose_event(data={"m": np.full(1000, float(i))}, timestamps={"m": 0.0},
                                    validate=False)
            t = time.perf_counter()
            feed("event", ev)
            worst = max(worst, time.perf_counter() - t)
            total += time.perf_counter() - t
        feed("stop", run.compose_stop())
    finally:
        os.kill(feed.pid, signal.SIGCONT)
    assert feed.close(timeout=10)
    assert worst < 0.25 and total < 2.5, (worst, total)   # blocking would hang here
    assert feed.dropped > 1000    # ~64 kB pipe + 50 queued of 5000 reduced events
    ok, = lines_with(log, "RUN OK")
    assert ": success, 5000 points" in ok   # from the stop document: exact despite drops
    summary, = lines_with(log, "SUMMARY")
    assert f"{feed.dropped} messages dropped by the feed" in summary
    assert "messages dropped so far" in lines_with(log, "FEED")[0]


def test_slow_hook_does_not_slow_the_run_engine(tmp_path, RE, det, hook):
    log = tmp_path / "notify.log"
    feed = NotifierFeed(log, hook=hook(delay_s=30), hook_timeout_s=1.5)
    RE.subscribe(feed)
    t0 = time.perf_counter()
    for _ in range(2):
        with pytest.raises(RuntimeError):
            RE(bp.count([det], num=3, per_shot=fail_on_shot(1)))
    assert time.perf_counter() - t0 < 1.0   # each hook call takes 1.5 s (its timeout)
    # both failures are logged while the first hook call is still running
    wait_for(lambda: tags(log).count("RUN FAILED") == 2)
    assert "HOOK FAILED" not in tags(log)
    assert feed.close(timeout=15)
    failures = lines_with(log, "HOOK FAILED")
    assert failures == ["run_failed: timed out after 1.5 s (killed)"] * 2 + [
        "summary: timed out after 1.5 s (killed)"]
    assert hook.calls() == []


def test_consumer_survives_malformed_input_and_a_failing_hook(tmp_path):
    log = tmp_path / "notify.log"
    run = compose_run(metadata={"scan_id": 3, "plan_name": "count"})
    good = [json.dumps({"name": "start", "doc": run.start_doc}),
            json.dumps({"name": "stop", "doc": run.compose_stop(exit_status="fail",
                                                                reason="boom")})]
    bad = ["not json", "[1, 2]", '{"name": "stop"}', '{"name": "campaign", "doc": '
           '{"kind": "bogus"}}', '{"name": "st']   # ... and a line of invalid UTF-8
    unknown = json.dumps({"name": "stop", "doc": {"run_start": "abcdef123", "exit_status": "fail",
                                                  "num_events": {"primary": 4}}})
    stdin = "\n".join([bad[0], good[0], *bad[1:4], unknown, good[1], bad[4]]).encode() \
        + b"\n\xff\xfe\n"
    hook = shlex.join([sys.executable, "-c", "import sys; sys.exit(3)"])
    proc = subprocess.run([sys.executable, "-m", "spinlight.notifier", "--log", str(log),
                           "--hook", hook, "--hook-on", "summary"], input=stdin,
                          capture_output=True, timeout=15)
    assert proc.returncode == 0, proc.stderr
    assert tags(log).count("BAD INPUT") == 6
    assert "bogus" in log.read_text()
    # a stop of a run whose start never came is still reported and counted
    assert lines_with(log, "RUN FAILED") == [
        "run (abcdef12, start document not received): fail, 4 points in ?",
        lines_with(log, "RUN FAILED")[1]]
    assert lines_with(log, "RUN FAILED")[1].startswith("scan 3 count (")
    assert lines_with(log, "RUN FAILED")[1].endswith(": boom")
    summary, = lines_with(log, "SUMMARY")
    assert summary.startswith("session ended without campaign_end")
    assert "2 failed" in summary and "6 malformed input lines" in summary
    assert lines_with(log, "HOOK FAILED") == ["summary: exit code 3"]


def test_bad_arguments_name_the_parameter(tmp_path):
    with pytest.raises(ValueError, match="maxsize"):
        NotifierFeed(tmp_path / "x.log", maxsize=0)
    with pytest.raises(ValueError, match="hook="):
        NotifierFeed(tmp_path / "x.log", hook='mail "unclosed')
    with pytest.raises(ValueError, match="hook_on"):
        NotifierFeed(tmp_path / "x.log", hook_on=("everything",))
    with NotifierFeed(tmp_path / "x.log", hook=["my mailer", "--to", "lab"]) as feed:
        assert feed.argv[feed.argv.index("--hook") + 1] == "'my mailer' --to lab"
        with pytest.raises(ValueError, match="kind"):
            feed.campaign_event("coffee_break", "")
