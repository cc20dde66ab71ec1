"""Subprocess entry point for the storage tests: read every run of a catalog, print JSON.

    python _storage_reader.py ROOT

Output: ``{"runs": [RunSummary.to_dict()...], "data": {uid: {column: [values]}},
"start": {uid: start document}}``.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from spinlight.catalog import open_catalog

    out = {"runs": [], "data": {}, "start": {}}
    with open_catalog(argv[0]) as cat:
        for summary in cat.runs():
            out["runs"].append(summary.to_dict())
            run = cat.get_run(summary.uid)
            out["start"][summary.uid] = cat.start_doc(run)
            out["data"][summary.uid] = {k: v.tolist() for k, v in cat.read_primary(run).items()}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
