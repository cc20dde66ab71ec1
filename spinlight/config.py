"""Where spinlight keeps its data, and how it finds instruments (defaults + environment)."""

from __future__ import annotations

import os
import pathlib

#: Environment variable naming the catalog/data folder (one per lab machine).
DATA_ENV = "SPINLIGHT_DATA"


def default_data_dir() -> pathlib.Path:
    """The catalog root: ``$SPINLIGHT_DATA`` or ``./spinlight-data``."""
    return pathlib.Path(os.environ.get(DATA_ENV, "spinlight-data")).resolve()
