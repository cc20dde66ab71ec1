"""Write every TCSPC decay (``lifetime_decay``, ``instrument_response``) as a PicoQuant PHU file,
from the document stream, so EasyTau / FluoFit / ``ptufile`` users open spinlight data directly.

Plans stay free of file I/O: this callback is subscribed to the RunEngine (or fed a stored run's
documents) and writes ``<folder>/<sample>_<measurement>_<emission>nm_<uid8>.phu`` when the run
stops. The keys come from ``start["decay"]`` (see ``spinlight.plans.lifetime``); one curve per
event. A failure is logged, never raised into the RunEngine.
"""

from __future__ import annotations

import logging
import pathlib
import re

import numpy as np
from event_model import DocumentRouter, unpack_event_page

from spinlight.instruments.phu import PhuCurve, write_phu

logger = logging.getLogger(__name__)

DECAY_PLANS = ("lifetime_decay", "instrument_response")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-") or "run"


class PhuExporter(DocumentRouter):
    """Document callback: PHU files for decay runs in ``folder``; ``written`` lists them."""

    def __init__(self, folder):
        super().__init__()
        self.folder = pathlib.Path(folder)
        self.written: list[pathlib.Path] = []
        self._runs: dict[str, dict] = {}          # start uid -> state
        self._descriptors: dict[str, str] = {}     # descriptor uid -> start uid

    def __call__(self, name, doc, validate=False):
        try:
            return super().__call__(name, doc, validate)
        except Exception:                          # never into the RunEngine
            logger.exception("PHU export failed on a %s document", name)

    def start(self, doc):
        decay = doc.get("decay")
        if doc.get("measurement") in DECAY_PLANS and isinstance(decay, dict):
            self._runs[doc["uid"]] = {"start": doc, "curves": []}

    def descriptor(self, doc):
        if doc["run_start"] in self._runs and doc.get("name") == "primary":
            self._descriptors[doc["uid"]] = doc["run_start"]

    def event(self, doc):
        uid = self._descriptors.get(doc["descriptor"])
        if uid is None:
            return
        run = self._runs[uid]
        decay, acq, data = run["start"]["decay"], run["start"].get("acquisition", {}), doc["data"]
        counts = np.asarray(data[decay["counts_key"]])
        time_ns = np.asarray(data[decay["time_key"]], dtype=float)
        resolution_ps = float(data[decay["resolution_key"]])
        run["curves"].append(PhuCurve(
            counts=counts.astype(np.uint32), resolution_ps=resolution_ps,
            sync_rate_hz=float(decay["repetition_rate_hz"]),
            acquisition_time_s=float(data.get(decay.get("acquisition_time_key"),
                                               acq.get("acquisition_time_s", 0.0))),  # with top-ups
            offset_ns=int(round(time_ns[0])) if time_ns.size else 0,
            binning=int(acq.get("binning", 0)),
            label=f"{run['start']['measurement']} {doc['seq_num']}",
            emission_nm=decay.get("emission_nm"), excitation_nm=decay.get("excitation_nm")))

    def event_page(self, doc):
        for event in unpack_event_page(doc):
            self.event(event)

    def stop(self, doc):
        run = self._runs.pop(doc["run_start"], None)
        if run is None or not run["curves"]:
            return
        start = run["start"]
        sample = (start.get("sample") or {}).get("name", "")
        nm = start["decay"].get("emission_nm")
        name = f"{_safe(sample)}_{start['measurement']}_{nm:.0f}nm_{start['uid'][:8]}.phu" \
            if nm is not None else f"{_safe(sample)}_{start['measurement']}_{start['uid'][:8]}.phu"
        self.folder.mkdir(parents=True, exist_ok=True)
        path = write_phu(self.folder / name, run["curves"], sample=sample or None,
                         comment=f"spinlight {start['measurement']} run {start['uid']} "
                                 f"({doc.get('exit_status')})", overwrite=True)
        self.written.append(path)
        logger.info("wrote %s", path)
