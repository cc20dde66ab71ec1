"""Where a campaign run writes, and what it remembers between runs of the same file.

Folders (``C`` = the catalog folder)::

    C                   settings ``catalog`` (relative to the campaign file); default
                        ``<file folder>/<file stem>-data/catalog``; ``data_root`` given:
                        ``data_root/catalog`` (then everything below is under data_root)
    C-phu/              PicoQuant .phu of every decay (next to the catalog)
    C-sim/<id8>/        simulated labs' .dat files, one sub-folder per lab (sim mode)
    C/campaigns/<sha16>.json   campaign state for this exact file text (below)
    log                 settings ``log_file``; default ``C.log`` (``data_root/<name>`` with
                        data_root); the notifier's summary JSON next to it
                        (``<log stem>.summary.json``)

The state file is keyed by the SHA-256 of the campaign file's text: ``campaign_id`` (a uuid4
made on the first run of that text, so ``spinlight resume`` and replays find the runs of one
campaign with ``start.campaign.campaign_id``) and the estimate (``estimates``: one dict per
measurement, and the ``speed`` it was rehearsed at), so a resume does not rehearse again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import time
import uuid

STATE_DIR = "campaigns"


@dataclasses.dataclass(frozen=True)
class CampaignFiles:
    catalog: pathlib.Path
    phu: pathlib.Path
    sim: pathlib.Path
    log: pathlib.Path
    summary: pathlib.Path
    state: pathlib.Path
    sha256: str


def file_sha256(path) -> str:
    """SHA-256 (hex) of the campaign file's bytes."""
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def campaign_files(campaign, data_root=None) -> CampaignFiles:
    """The paths of this campaign (see the module docstring)."""
    path = pathlib.Path(campaign.path).resolve()
    sha = file_sha256(path)
    s = campaign.settings
    if data_root is not None:
        root = pathlib.Path(data_root).resolve()
        catalog = root / "catalog"
        log = root / (s.log_file.name if s.log_file else "campaign.log")
    else:
        catalog = pathlib.Path(s.catalog) if s.catalog else path.parent / f"{path.stem}-data" / "catalog"
        log = pathlib.Path(s.log_file) if s.log_file else catalog.with_name(catalog.name + ".log")
    return CampaignFiles(catalog=catalog, phu=catalog.with_name(catalog.name + "-phu"),
                         sim=catalog.with_name(catalog.name + "-sim"), log=log,
                         summary=log.with_name(log.stem + ".summary.json"),
                         state=catalog / STATE_DIR / f"{sha[:16]}.json", sha256=sha)


def read_state(files: CampaignFiles) -> dict:
    try:
        state = json.loads(files.state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) and state.get("sha256") == files.sha256 else {}


def write_state(files: CampaignFiles, state: dict) -> None:
    """Atomically (a reader never sees half a file)."""
    files.state.parent.mkdir(parents=True, exist_ok=True)
    tmp = files.state.with_name(files.state.name + ".tmp")
    tmp.write_text(json.dumps({**state, "sha256": files.sha256}, indent=1), encoding="utf-8")
    os.replace(tmp, files.state)


def campaign_id(files: CampaignFiles, campaign) -> str:
    """The uuid of this campaign text, made and stored on first use."""
    state = read_state(files)
    if not state.get("campaign_id"):
        state.update(campaign_id=str(uuid.uuid4()), name=campaign.name,
                     file=str(pathlib.Path(campaign.path).resolve()), created=time.time())
        write_state(files, state)
    return state["campaign_id"]


def cached_estimate(files: CampaignFiles) -> tuple[list[dict], float] | None:
    """(estimates as dicts, rehearsal speed) stored for this file text, or None."""
    state = read_state(files)
    est = state.get("estimates")
    return (est, float(state.get("estimate_speed", 0.0))) if isinstance(est, list) else None


def store_estimate(files: CampaignFiles, estimates: list[dict], speed: float) -> None:
    state = read_state(files)
    state.update(estimates=estimates, estimate_speed=float(speed), estimated=time.time())
    write_state(files, state)
