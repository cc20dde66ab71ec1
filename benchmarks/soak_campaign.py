"""Soak test: an overnight-like simulated campaign with injected faults, then kill -9 / resume.

Phase 1 runs ``examples/soak_campaign.toml`` (or ``--campaign``) with ``spinlight run`` in a
subprocess: > 50 Poisson faults (helium low with refills, temperature excursions, quenches,
garbled replies, timeouts, short disconnects, laser interlocks) over ~11 instrument hours.
Phase 2 runs a fresh copy and kills the process (SIGKILL) ``--kills`` times at seeded random
moments (once a random number of points is stored, plus a random delay), each time followed by
``spinlight resume``; the last resume runs to the end.

Checked after each phase / each kill (:func:`check_points`): per measurement, every stored point
once — dc and PL points by their place in the full plan (``resume_after`` + ``seq_num``, over
the original run and its continuations), ac points by (set index, stream, frequency), plans
measured again whole (lifetime decays) by their latest run — and, at the end, exactly the
points of the campaign's estimate. From the campaign log (:func:`log_stats`): every fault the
lab injected (``simulated fault start`` lines, their per-lab totals, none due but missed),
suspensions and resumes, driver retries and reconnections. Prints a summary and PASS/FAIL;
exits 1 on FAIL.

Run: ``.venv/bin/python benchmarks/soak_campaign.py [--kills 10] [--seed 0] [--keep DIR]``
(about 6-10 min wall on 2 cores). ``tests/integration/test_soak.py`` runs a reduced form in CI.
"""

from __future__ import annotations

import argparse
import collections
import inspect
import json
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
CAMPAIGN = ROOT / "examples" / "soak_campaign.toml"
MIN_FAULTS = 50


# -- processes ------------------------------------------------------------------------------------
def spinlight(command: str, path: pathlib.Path, *, kill_when=None, timeout_s: float = 3600.0):
    """Run ``spinlight COMMAND PATH --no-progress``; ``kill_when()`` (polled every 0.05 s)
    returning True sends SIGKILL. Returns (exit code, wall s, killed)."""
    with open(path.with_suffix(f".{command}.err"), "a") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "spinlight.cli", command, str(path),
                                 "--no-progress"], cwd=path.parent, stdout=subprocess.DEVNULL,
                                stderr=err, env={**os.environ, "MPLBACKEND": "Agg"})
        killed = False
        try:
            while proc.poll() is None and time.monotonic() - t0 < timeout_s:
                if kill_when is not None and kill_when():
                    os.kill(proc.pid, signal.SIGKILL)
                    killed = True
                    break
                time.sleep(0.05)
        finally:
            if proc.poll() is None and not killed:
                proc.kill()
            proc.wait(timeout=30)
    return proc.returncode, time.monotonic() - t0, killed


class DocLogEvents:
    """Events of the campaign's measurement runs in the catalog's document logs (fsynced
    before Tiled stores them): the progress a kill is timed on."""

    def __init__(self, catalog: pathlib.Path):
        self.catalog, self.raw = catalog, {}

    def __call__(self) -> int:
        total = 0
        for path in self.catalog.glob("doclog/*/*.jsonl"):
            if path not in self.raw:
                first = path.read_text().split("\n", 1)[0]
                if not first.endswith("}"):
                    continue                      # start document still being written
                self.raw[path] = "campaign" in json.loads(first)["doc"]
            if self.raw[path]:
                text = path.read_text()
                total += text.count('{"name": "event"')
        return total


# -- checks -----------------------------------------------------------------------------------------
def stored_points(campaign) -> dict[int, collections.Counter]:
    """Per measurement index, the stored points (key -> times stored); see the module
    docstring for the keys."""
    from spinlight.campaign_store import campaign_files
    from spinlight.catalog import open_catalog

    resumable = {s.index: "resume_after" in inspect.signature(s.kind.plan_function()).parameters
                 for s in campaign.measurements}
    points = {s.index: collections.Counter() for s in campaign.measurements}
    latest = {}                                   # (index, plan) -> run, for whole re-measures
    with open_catalog(campaign_files(campaign).catalog) as catalog:
        runs = [r for r in catalog.client.values()
                if r.metadata["start"].get("campaign", {}).get("file") == str(campaign.path.resolve())]
        for run in sorted(runs, key=lambda r: r.metadata["start"]["time"]):
            start = run.metadata["start"]
            i = start["campaign"]["index"]
            if not resumable[i]:
                latest[(i, start["plan_name"])] = run
                continue
            for stream in run:
                data = catalog.read_stream(run, stream)
                if "ac_set_index" in data:
                    key = next(k for k in data if k.endswith("_ac_frequency_hz"))
                    points[i].update((int(s), stream, round(float(f), 6))
                                     for s, f in zip(data["ac_set_index"], data[key]))
                elif data:
                    base = int(start.get("resume_after", 0))
                    points[i].update((stream, base + int(n)) for n in data["seq_num"])
        for (i, plan), run in latest.items():
            points[i].update((plan, stream, int(n)) for stream in run
                             for n in catalog.read_stream(run, stream).get("seq_num", []))
    return points


def check_points(campaign, expected: dict[int, int], *, complete: bool) -> list[str]:
    """Problems with the stored points: duplicates, more than planned, and (``complete``)
    fewer than the estimate."""
    problems = []
    for i, counter in stored_points(campaign).items():
        twice = sorted(k for k, n in counter.items() if n > 1)
        if twice:
            problems.append(f"measurement {i}: {len(twice)} points stored twice: {twice[:5]}")
        if len(counter) > expected[i] or (complete and len(counter) != expected[i]):
            problems.append(f"measurement {i}: {len(counter)} distinct points stored, the "
                            f"estimate has {expected[i]}")
    return problems


_FAULT = re.compile(r"simulated fault start: (\w+) on (\w+)")
_LAB = re.compile(r"simulated faults on this lab: (\d+) injected .*?, (\d+) due but not injected")
_REACH = re.compile(r"\(\+(\d+) s on this lab\)|due but not injected, \+(\d+) s")
_END = re.compile(r"spinlight\.campaign: campaign '.*' (\w+): .*; (\d+) points, ([\d.]+) h "
                  r"instrument time")


def log_stats(log: pathlib.Path) -> dict:
    """Counts from a campaign log (see the module docstring)."""
    text = log.read_text(encoding="utf-8") if log.exists() else ""
    kinds = collections.Counter(f"{k} on {t}" for k, t in _FAULT.findall(text))
    labs = [(int(a), int(b)) for a, b in _LAB.findall(text)]
    ends = _END.findall(text)
    return {"faults": sum(kinds.values()), "by_kind": dict(sorted(kinds.items())),
            "lab_totals": sum(a for a, _ in labs), "labs_closed": len(labs),
            "missed": sum(b for _, b in labs),
            "suspended": len(re.findall(r"spinlight\.campaign: suspended:", text)),
            "resumed": len(re.findall(r"spinlight\.campaign: resumed after:", text)),
            "retries": len(re.findall(r"spinlight\.faults: .*; retry \d", text)),
            "reconnected": len(re.findall(r"spinlight\.faults: .*reconnected after", text)),
            "failed": len(re.findall(r"ERROR +spinlight\.campaign: measurement \d+ .* failed", text)),
            "failures": re.findall(r"ERROR +spinlight\.campaign: (measurement \d+ .* failed.*)", text),
            "instrument_h": sum(float(h) for _, _, h in ends),
            "status": ends[-1][0] if ends else None,
            "lab_reach_s": max((float(a or b) for a, b in _REACH.findall(text)), default=0.0)}


def expected_points(campaign) -> dict[int, int]:
    """Points of each measurement in the campaign's estimate (cached by the first run)."""
    from spinlight.campaign_store import cached_estimate, campaign_files

    cached = cached_estimate(campaign_files(campaign))
    if cached is None:
        raise RuntimeError("no cached estimate: the campaign was never run")
    return {e["index"]: e["points"] for e in cached[0]}


# -- phases -----------------------------------------------------------------------------------------
def _copy(campaign_file: pathlib.Path, folder: pathlib.Path) -> pathlib.Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / campaign_file.name
    shutil.copy(campaign_file, path)
    return path


def run_phase(campaign_file, folder, *, min_faults: int) -> tuple[list[str], dict]:
    """``spinlight run`` to the end, then every check; ``stats["estimate"]``: the run's
    cached estimate (for :func:`kill_phase`)."""
    from spinlight.campaign import load_campaign
    from spinlight.campaign_store import cached_estimate, campaign_files

    path = _copy(campaign_file, folder)
    code, wall, _ = spinlight("run", path)
    campaign = load_campaign(path)
    stats = {**log_stats(campaign_files(campaign).log), "wall_s": wall, "exit": code}
    problems = [f"spinlight run exited with {code}"] if code else []
    expected = expected_points(campaign)
    problems += check_points(campaign, expected, complete=True)
    stats["estimate"] = cached_estimate(campaign_files(campaign))
    stats["points"], stats["expected"] = sum(len(c) for c in stored_points(campaign).values()), \
        sum(expected.values())
    problems += _fault_problems(stats, min_faults, closed_labs=1)
    if stats["faults"] != stats["lab_totals"]:
        problems.append(f"{stats['faults']} faults logged, the labs injected {stats['lab_totals']}")
    if stats["suspended"] != stats["resumed"]:
        problems.append(f"{stats['suspended']} suspensions but {stats['resumed']} resumes")
    return problems, stats


def _tail(path: pathlib.Path, chars: int = 600) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return text[-chars:].replace("\n", " / ")


def _fault_problems(stats, min_faults: int, closed_labs: int) -> list[str]:
    out = []
    if stats["faults"] < min_faults:
        out.append(f"only {stats['faults']} faults injected (want >= {min_faults})")
    if stats["labs_closed"] < closed_labs:
        out.append(f"{stats['labs_closed']} labs reported their faults (want >= {closed_labs})")
    if stats["missed"]:
        out.append(f"{stats['missed']} faults were due but never injected")
    if stats["failed"]:
        out.append(f"{stats['failed']} measurement failures in the log: "
                   + " | ".join(f[:300] for f in stats["failures"]))
    return out


def kill_phase(campaign_file, folder, *, kills: int, seed: int, max_delay_s: float,
               min_faults: int = 1, estimate=None) -> tuple[list[str], dict]:
    """``run``, then ``kills`` times: SIGKILL at a random moment and ``resume``; the last
    resume runs to the end. Checks after every kill and at the end. ``estimate``: the cached
    estimate of the same file text (``cached_estimate``), stored for this copy so its first
    run skips the rehearsal."""
    from spinlight.campaign import load_campaign
    from spinlight.campaign_store import campaign_files, store_estimate

    rng = random.Random(seed)
    path = _copy(campaign_file, folder)
    campaign = load_campaign(path)
    files = campaign_files(campaign)
    if estimate is not None:
        store_estimate(files, *estimate)
    events = DocLogEvents(files.catalog)
    problems, done, expected, t0 = [], 0, None, time.monotonic()
    wall_kills = []
    for n in range(kills + 1):
        command = "run" if n == 0 else "resume"
        if n == kills:
            code, wall, killed = spinlight(command, path)
        else:
            total = sum(expected.values()) if expected else None
            have = events()
            room = (total - 2 if total else have + 20) - have
            target = have + rng.randint(1, max(1, room // max(1, kills - n)))
            delay = rng.uniform(0.0, max_delay_s)
            reached = []

            def kill_when():
                if not reached and events() >= target:
                    reached.append(time.monotonic())
                return bool(reached) and time.monotonic() - reached[0] >= delay
            code, wall, killed = spinlight(command, path, kill_when=kill_when)
            if not killed:
                problems.append(f"kill {n + 1}: the process ended (exit {code}) before the kill; "
                                f"its stderr ends: {_tail(path.with_suffix(f'.{command}.err'))}")
                break
            wall_kills.append(round(wall, 1))
            done += 1
        if expected is None:
            expected = expected_points(campaign)
        for p in check_points(campaign, expected, complete=n == kills):
            problems.append(f"after {'the last resume' if n == kills else f'kill {n + 1}'}: {p}")
    if code:
        problems.append(f"the last resume exited with {code}")
    stats = {**log_stats(files.log), "kills": done, "kill_after_wall_s": wall_kills,
             "wall_s": time.monotonic() - t0,
             "points": sum(len(c) for c in stored_points(campaign).values()),
             "expected": sum(expected.values())}
    if done < kills:
        problems.append(f"only {done} of {kills} kills happened")
    problems += _fault_problems(stats, min_faults, closed_labs=1)
    return problems, stats


def _print(name: str, problems: list[str], stats: dict) -> None:
    print(f"== {name}: {'PASS' if not problems else 'FAIL'}")
    print(f"   points {stats['points']} stored / {stats['expected']} planned; "
          f"{stats['instrument_h']:.2f} h instrument time"
          f"{' (last process only)' if 'kills' in stats else ''}, {stats['wall_s']:.0f} s wall")
    print(f"   faults injected {stats['faults']} (per-lab totals {stats['lab_totals']}, "
          f"{stats['labs_closed']} labs, {stats['missed']} missed): "
          + ", ".join(f"{k} x{n}" for k, n in stats["by_kind"].items()))
    print(f"   suspensions {stats['suspended']}, resumes {stats['resumed']}, driver retries "
          f"{stats['retries']}, reconnections {stats['reconnected']}")
    if "kills" in stats:
        print(f"   kills {stats['kills']} (wall s after each process start: "
              f"{stats['kill_after_wall_s']})")
    for p in problems:
        print(f"   problem: {p}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--campaign", type=pathlib.Path, default=CAMPAIGN)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    p.add_argument("--max-delay", type=float, default=1.0,
                   help="random wall delay (s) after the chosen point before a kill")
    p.add_argument("--keep", type=pathlib.Path, default=None,
                   help="work in this folder and keep it (default: a temporary one)")
    args = p.parse_args(argv)
    work = args.keep or pathlib.Path(tempfile.mkdtemp(prefix="spinlight-soak-"))
    try:
        p1, s1 = run_phase(args.campaign, work / "run", min_faults=MIN_FAULTS)
        _print("phase 1: unattended run with faults", p1, s1)
        p2, s2 = kill_phase(args.campaign, work / "kills", kills=args.kills, seed=args.seed,
                            max_delay_s=args.max_delay, estimate=s1["estimate"])
        _print(f"phase 2: {args.kills} x kill -9 + resume", p2, s2)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    ok = not p1 and not p2
    print("SOAK", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
