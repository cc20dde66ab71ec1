"""Shared pytest fixtures."""

import pathlib

import pytest


@pytest.fixture(scope="session")
def real_data_dir() -> pathlib.Path:
    """The real Quantum Design files in shared/data/real (shared/ sits beside the repo)."""
    path = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
    # fail, not skip: a missing folder must not silently disable the real-data tests
    assert path.is_dir(), f"real data folder not found: {path}"
    return path
