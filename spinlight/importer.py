"""Import a legacy MultiVu ``.dat`` file as a Bluesky run, stored exactly like a live one.

The file is read with :func:`spinlight.instruments.qd_dat.read_dat`; documents are composed with
``event_model.compose_run`` and fed through the JSON-lines document log and a
``bluesky_tiled_plugins.TiledWriter``. The primary stream uses the live plans' field names —
``vsm_moment``, ``vsm_moment_err`` (emu), ``vsm_temperature`` (K), ``vsm_field`` (Oe),
``vsm_time`` (instrument Unix s) — plus every filled numeric column of the file under a
sanitised name (``dat_<column>``, mapping in ``start["imported_from"]["columns"]``). Each
event's ``time`` is the row's instrument time stamp. For M(H) files an
``mpms3_temperature_setpoint`` column is added: the median temperature of each measurement set
(``DatFile.measurement_sets``, consecutive rows, never clustering) on a 0.05 K grid.
"""

from __future__ import annotations

import hashlib
import math
import pathlib
import re
from typing import Any

import numpy as np

from spinlight.catalog import Catalog

#: Events per Tiled append while importing. The .dat file itself is the durable record and the
#: document log is fsynced per document, so an import need not pay one request per row.
IMPORT_BATCH_SIZE = 1000
SETPOINT_GRID_K = 0.05
MEASUREMENT_KINDS = ("chi_t", "m_h", "ac", "unknown")


class DatImportError(ValueError):
    """Bad import input; the message names the parameter and the value."""


def _positive(name: str, value: Any) -> float:
    """The analysis layer's check, raised as an import error (names parameter, value, range)."""
    from spinlight.analysis._validate import positive

    try:
        return positive(name, value)
    except ValueError as exc:
        raise DatImportError(str(exc)) from None


def parse_ions(text: str | None) -> dict[str, float] | None:
    """``"Er=1"`` / ``"Nd=0.5,Yb=0.5"`` -> ``{"Er": 1.0}``; None for None/empty."""
    if not text:
        return None
    out: dict[str, float] = {}
    for part in text.split(","):
        m = re.fullmatch(r"\s*([A-Z][a-z]?)\s*[=:]\s*([0-9.eE+-]+)\s*", part)
        if not m:
            raise DatImportError(f"--ions must look like 'Er=1' or 'Nd=1,Yb=1', got {text!r}")
        out[m.group(1)] = _positive(f"--ions count of {m.group(1)}", m.group(2))
    return out


def sample_metadata(name: str, *, mass_mg: float, molar_mass: float,
                    diamagnetic: float = 0.0, formula: str | None = None,
                    ions: dict[str, float] | None = None) -> dict[str, Any]:
    """Validated ``start["sample"]`` dict (docs/architecture.md)."""
    if not name or not str(name).strip():
        raise DatImportError(f"--sample must be a non-empty name, got {name!r}")
    mass = _positive("--mass-mg", mass_mg)
    mw = _positive("--molar-mass", molar_mass)
    try:
        dia = float(diamagnetic)
    except (TypeError, ValueError):
        raise DatImportError(f"--diamagnetic must be a number <= 0 (emu/mol/Oe), "
                           f"got {diamagnetic!r}") from None
    if not math.isfinite(dia) or dia > 0 or dia < -1.0:
        raise DatImportError(f"--diamagnetic must be a diamagnetic correction in emu/mol/Oe, "
                           f"-1 <= X <= 0, got {diamagnetic!r}")
    return {"name": str(name).strip(), "formula": formula, "mass_mg": mass,
            "molar_mass_g_per_mol": mw, "ions": ions,
            "ions_per_formula_unit": float(sum(ions.values())) if ions else None,
            "diamagnetic_emu_per_mol_Oe": dia}


def sanitize(column: str) -> str:
    """``"M. Std. Err. (emu)"`` -> ``"dat_m_std_err_emu"``; ``X'``/``X"`` keep distinct names."""
    text = column.replace("''", "_pp").replace('"', "_pp").replace("'", "_p")
    text = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    return "dat_" + (text or "column")


def _units(column: str) -> str | None:
    m = re.search(r"\(([^()]*)\)\s*$", column)
    return m.group(1) if m else None


def guess_measurement(dat) -> str:
    """``ac`` if ac susceptibility columns are filled; ``chi_t`` if the field is ~constant and
    T varies; ``m_h`` if T is ~constant within measurement sets and H varies; else unknown."""
    if dat.ac_columns().get("chi_real"):
        return "ac"
    try:
        t = dat.column("Temperature (K)")
        h = dat.column("Field (Oe)")
    except KeyError:
        return "unknown"
    ok = np.isfinite(t) & np.isfinite(h)
    if ok.sum() < 2:
        return "unknown"
    t, h = t[ok], h[ok]
    h_const = np.ptp(h) <= max(10.0, 0.02 * float(np.max(np.abs(h))))
    if h_const and np.ptp(t) > 1.0:
        return "chi_t"
    if not h_const:
        sets = dat.measurement_sets("Temperature (K)")
        for s in sets:
            hs = s.column("Field (Oe)")
            hs = hs[np.isfinite(hs)]
            if hs.size >= 3 and np.ptp(hs) > 100.0:
                return "m_h"
    return "unknown"


def _setpoints(dat) -> np.ndarray:
    out = np.full(len(dat.rows), np.nan)
    for s in dat.measurement_sets("Temperature (K)"):
        if math.isfinite(s.setpoint):
            out[s.row_indices] = round(s.setpoint / SETPOINT_GRID_K) * SETPOINT_GRID_K
    return np.round(out, 6)


def sha256_of(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def compose_documents(path: str | pathlib.Path, sample: dict[str, Any], *,
                      scan_id: int | None = None, extra_md: dict | None = None
                      ) -> list[tuple[str, dict]]:
    """The documents of one imported run (start, descriptor, events, stop)."""
    from event_model import compose_run

    from spinlight.instruments.qd_dat import read_dat

    path = pathlib.Path(path).expanduser().resolve()
    if not path.is_file():
        raise DatImportError(f"FILE {str(path)!r} does not exist or is not a file")
    dat = read_dat(path)
    n = len(dat.rows)
    if n == 0:
        raise DatImportError(f"FILE {str(path)!r} has no data rows")
    kind = guess_measurement(dat)

    times = dat.timestamps_unix() if dat.time_column else np.full(n, np.nan)
    fallback = dat.file_open_time_unix
    if fallback is None:
        fallback = float(np.nanmin(times)) if np.isfinite(times).any() else path.stat().st_mtime
    for i in range(n):  # rows without a time stamp inherit the previous one
        if not math.isfinite(times[i]):
            times[i] = times[i - 1] if i else fallback

    columns: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    try:
        mcol = dat.moment_column()
        columns["vsm_moment"] = dat.column(mcol)
        sources["vsm_moment"] = mcol
        ecol = dat.moment_error_column()
        columns["vsm_moment_err"] = dat.column(ecol) if ecol else np.full(n, np.nan)
        sources["vsm_moment_err"] = ecol or ""
    except KeyError:
        pass  # ac-only file
    for key, name in (("vsm_temperature", "Temperature (K)"), ("vsm_field", "Field (Oe)")):
        if dat.has_column(name):
            columns[key] = dat.column(name)
            sources[key] = dat.resolve(name)
    columns["vsm_time"] = times.copy()
    sources["vsm_time"] = dat.time_column or ""
    if kind == "m_h":
        columns["mpms3_temperature_setpoint"] = _setpoints(dat)
        sources["mpms3_temperature_setpoint"] = "median T of each measurement set (0.05 K grid)"

    original: dict[str, str] = {}
    for col in dat.columns:
        if col == dat.time_column or not any(r.get(col) is not None for r in dat.rows):
            continue
        if any(isinstance(r.get(col), str) for r in dat.rows):
            continue  # text columns (Comment) are not event data
        key = base = sanitize(col)
        k = 2
        while key in columns or key in original:
            key, k = f"{base}_{k}", k + 1
        columns[key] = dat.column(col)
        original[key] = col
        sources[key] = col

    dims = {"chi_t": "vsm_temperature", "m_h": "vsm_field"}.get(kind)
    md: dict[str, Any] = {
        "plan_name": "import_dat",
        "measurement": kind,
        "sample": sample,
        "num_points": n,
        "instrument": dat.flavor,
        "imported_from": {
            "path": str(path), "sha256": sha256_of(path), "flavor": dat.flavor,
            "title": dat.title, "byapp": dat.byapp,
            "file_open_time_unix": dat.file_open_time_unix,
            "header_mass_mg": dat.sample_mass_mg,
            "header_molar_mass_g_per_mol": dat.molecular_weight,
            "moment_column": sources.get("vsm_moment"),
            "columns": original,
        },
    }
    if dims and dims in columns:
        md["hints"] = {"dimensions": [[[dims], "primary"]]}
    if scan_id is not None:
        md["scan_id"] = int(scan_id)
    md.update(extra_md or {})

    bundle = compose_run(metadata=md, time=float(dat.file_open_time_unix or times[0]))
    data_keys = {
        key: {"source": f"file:{path.name}:{sources[key]}", "dtype": "number", "shape": [],
              "dtype_numpy": "<f8", **({"units": u} if (u := _unit_of(key, sources)) else {})}
        for key in columns
    }
    hinted = [k for k in ("vsm_moment", "vsm_temperature", "vsm_field") if k in columns]
    desc = bundle.compose_descriptor(name="primary", data_keys=data_keys,
                                     object_keys={"dat": list(columns)},
                                     hints={"dat": {"fields": hinted}})
    docs: list[tuple[str, dict]] = [("start", bundle.start_doc),
                                    ("descriptor", desc.descriptor_doc)]
    for i in range(n):
        t = float(times[i])
        data = {k: float(v[i]) for k, v in columns.items()}
        docs.append(("event", desc.compose_event(data=data, timestamps={k: t for k in data},
                                                 seq_num=i + 1, time=t)))
    docs.append(("stop", bundle.compose_stop(exit_status="success", reason="",
                                             time=float(times[-1]))))
    return docs


def _unit_of(key: str, sources: dict[str, str]) -> str | None:
    fixed = {"vsm_moment": "emu", "vsm_moment_err": "emu", "vsm_temperature": "K",
             "vsm_field": "Oe", "vsm_time": "s", "mpms3_temperature_setpoint": "K"}
    return fixed.get(key) or _units(sources.get(key, ""))


def find_imported(catalog: Catalog, sha256: str) -> list:
    from tiled.queries import Eq

    return list(catalog.client.search(Eq("start.imported_from.sha256", sha256)).values())


def _next_scan_id(root: pathlib.Path) -> int | None:
    """The next scan id from the engine's persistent RE.md, if no RunEngine holds the folder."""
    from bluesky.utils import PersistentDict

    from spinlight.engine import RE_MD_DIR, EngineLockedError, _lock_md
    from spinlight.doclog import _unlock

    try:
        lock = _lock_md(root)
    except EngineLockedError:
        return None
    try:
        md = PersistentDict(str(root / RE_MD_DIR))
        scan_id = int(md.get("scan_id", 0)) + 1
        md["scan_id"] = scan_id
        md.flush()
        return scan_id
    finally:
        _unlock(lock)
        lock.close()


def import_dat(catalog: Catalog, path: str | pathlib.Path, sample: dict[str, Any], *,
               force: bool = False, batch_size: int = IMPORT_BATCH_SIZE) -> dict:
    """Store ``path`` as a run in ``catalog`` (doc log first, then Tiled). Returns the start
    document. Refuses a file already imported (same sha256) unless ``force``."""
    from bluesky_tiled_plugins import TiledWriter

    from spinlight.doclog import DocLog

    p = pathlib.Path(path).expanduser().resolve()
    if not p.is_file():
        raise DatImportError(f"FILE {str(p)!r} does not exist or is not a file")
    if not force:
        previous = find_imported(catalog, sha256_of(p))
        if previous:
            s = previous[-1].metadata["start"]
            raise DatImportError(
                f"FILE {str(p)!r} was already imported (uid {s['uid']}, scan_id "
                f"{s.get('scan_id')}); use --force to import it again")
    docs = compose_documents(p, sample)  # validate fully before taking a scan id
    scan_id = _next_scan_id(catalog.root)
    if scan_id is not None:
        docs[0][1]["scan_id"] = scan_id
    log = DocLog(catalog.root)
    writer = TiledWriter(catalog.client, batch_size=max(1, int(batch_size)))
    try:
        for name, doc in docs:
            log(name, doc)
            writer(name, doc)
    finally:
        log.close()
    return docs[0][1]
