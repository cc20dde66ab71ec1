"""Reading a list of (name, document) pairs collected from a RunEngine, for test checks."""

from __future__ import annotations


def runs_of(docs) -> list[tuple[dict, list[dict]]]:
    """[(start document, [event data, ...])] in run order."""
    out, desc = {}, {}
    for name, doc in docs:
        if name == "start":
            out[doc["uid"]] = (doc, [])
        elif name == "descriptor":
            desc[doc["uid"]] = doc["run_start"]
        elif name == "event":
            out[desc[doc["descriptor"]]][1].append(doc["data"])
    return list(out.values())
