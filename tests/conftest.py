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


@pytest.fixture
def faults():
    """Fault events ``(kind, fields)`` reported on the ``spinlight.faults`` hook while the
    test runs (retries, lost connections, reconnections, give-ups)."""
    from spinlight.instruments.retry import add_fault_listener, remove_fault_listener

    seen = []
    handle = add_fault_listener(lambda kind, message, fields: seen.append((kind, fields)))
    yield seen
    remove_fault_listener(handle)


@pytest.fixture
def quiet_multipyvu(monkeypatch, tmp_path):
    """QD's MultiPyVu client reconfigures root logging and writes ``QdMultiVu.log`` in the
    working directory when it opens: a no-op ``setup_logging`` and the test's tmp_path as cwd."""
    import MultiPyVu.MultiVuClient_base as client_base

    monkeypatch.setattr(client_base, "setup_logging", lambda *a, **k: None)
    monkeypatch.chdir(tmp_path)
