"""Quantum Design MultiVu ``.dat`` files: reader, writer and follower.

- :func:`read_dat` -> :class:`DatFile` reads MPMS3, MPMS-XL, PPMS and MultiPyVu-written files.
- :class:`DatWriter` (``qd_dat_writer``) writes the real MPMS3 layout, fsync per row.
- :class:`DatFollower` (``qd_dat_follower``) tails a file another process is writing.
- :func:`ole_to_unix` / :func:`unix_to_ole`: MPMS3 time stamps are seconds since
  1899-12-30 00:00 local wall-clock time.

Row dicts map every column name to ``float`` (or ``str`` for the ``Comment`` column and for
non-numeric text) or ``None`` for an empty field. Comment-only rows (``"ZFC, 100",<time>``)
are not data rows: they are listed in :attr:`DatFile.comments` and mark set boundaries.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .qd_dat_format import (
    MPMS3_COLUMNS,
    MPMS3_FIELDGROUPS,
    DatFormatError,
    DatParser,
    detect_flavor,
    format_value,
    ole_to_datetime,
    ole_to_unix,
    time_base_of,
    unix_to_ole,
)
from .qd_dat_writer import DatWriter
from .qd_dat_follower import DatFollower

__all__ = [
    "read_dat", "DatFile", "DatComment", "MeasurementSet", "DatWriter", "DatFollower",
    "DatFormatError", "MissingColumnError", "MPMS3_COLUMNS", "MPMS3_FIELDGROUPS", "AC_ALIASES",
    "COLUMN_ALIASES", "MOMENT_COLUMNS", "ole_to_unix", "unix_to_ole", "ole_to_datetime",
    "format_value",
]


class MissingColumnError(KeyError):
    """A requested column (or a filled moment column) is not in the file."""

    def __str__(self) -> str:            # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


# Column-name aliases (fitting.md §1.5), first match that is filled wins.
AC_ALIASES: dict[str, tuple[str, ...]] = {
    "chi_real": ("AC X' (emu/Oe)", "m' (emu)", "M' (emu)"),
    "chi_imag": ('AC X" (emu/Oe)', "AC X'' (emu/Oe)", 'm" (emu)', "M'' (emu)"),
    "chi_real_err": ("AC X' Std Err. (emu/Oe)", "m' Scan Std Dev", "M' Std Err. (emu)"),
    "chi_imag_err": ('AC X" Std Err. (emu/Oe)', "AC X'' Std Err. (emu/Oe)", 'm" Scan Std Dev',
                     "M'' Std Err. (emu)"),
    "frequency": ("Wave Frequency (Hz)", "AC Frequency (Hz)", "Frequency (Hz)"),
    "drive": ("Drive Amplitude (Oe)", "AC Drive (Oe)", "Amplitude (Oe)"),
    "temperature": ("Temperature (K)",),
    "field": ("Field (Oe)", "Magnetic Field (Oe)"),
}
COLUMN_ALIASES: tuple[tuple[str, ...], ...] = tuple(AC_ALIASES.values()) + (
    ("Time Stamp (sec)", "Time"),
)
# (moment column, its error column), in order of preference
MOMENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Moment (emu)", "M. Std. Err. (emu)"),                              # MPMS3 / PPMS VSM
    ("DC Moment Free Ctr (emu)", "DC Moment Err Free Ctr (emu)"),        # MPMS3 DC scan
    ("DC Moment Fixed Ctr (emu)", "DC Moment Err Fixed Ctr (emu)"),
    ("Long Moment (emu)", "Long Scan Std Dev"),                          # MPMS-XL
)


class DatComment(NamedTuple):
    time_unix: float | None
    text: str


def _as_float(v: Any) -> float:
    return v if isinstance(v, float) else math.nan


@dataclass
class MeasurementSet:
    """Consecutive data rows measured at one setpoint (e.g. one ac frequency sweep)."""

    index: int
    rows: list[dict]
    row_indices: list[int]
    label: str | None = None        # text of the comment row that opened the set, if any
    setpoint_key: str = ""
    setpoint: float = math.nan      # median of setpoint_key over the set
    _file: "DatFile | None" = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> np.ndarray:
        if self._file is None:
            raise RuntimeError("MeasurementSet is detached from its DatFile")
        return self._file.column(name)[self.row_indices]


class DatFile:
    """A parsed MultiVu ``.dat`` file (see :func:`read_dat`)."""

    def __init__(self, path: Path, parser: DatParser, rows: list[dict], row_lines: list[int],
                 comments: list[tuple[int, float | None, str]]):
        self.path = path
        self.header: dict[str, Any] = parser.header
        self.info: dict[str, str] = parser.info
        self.header_comments: list[str] = parser.header_comments
        self.columns: list[str] = parser.columns
        self.rows = rows
        self.row_lines = row_lines                  # 1-based line number of each row
        self.title: str = str(self.header.get("TITLE", ""))
        self.byapp: str = str(self.header.get("BYAPP", "")).split(",")[0].strip()
        self.flavor: str = detect_flavor(self.header, self.header_comments, self.columns)
        first_t = parser.file_open_time_raw
        if first_t is None and rows and parser.time_index is not None:
            first_t = _as_float(rows[0][self.columns[parser.time_index]])
        self.time_base: str = time_base_of(first_t, self.flavor)
        self.time_column: str | None = (self.columns[parser.time_index]
                                        if parser.time_index is not None else None)
        self.file_open_time_unix: float | None = (
            self._to_unix(parser.file_open_time_raw)
            if parser.file_open_time_raw is not None else None)
        # comment rows: position = index of the next data row
        self.comment_positions: list[int] = [pos for pos, _, _ in comments]
        self.comments: list[DatComment] = [
            DatComment(self._to_unix(t) if t is not None else None, text)
            for _, t, text in comments]
        self._cache: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------- basics
    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return (f"DatFile({str(self.path)!r}, flavor={self.flavor!r}, rows={len(self.rows)}, "
                f"columns={len(self.columns)})")

    def _to_unix(self, t: float):
        return ole_to_unix(t) if self.time_base == "ole" else t

    def time_unix(self, row: dict) -> float:
        """Unix time of one row dict."""
        if self.time_column is None:
            return math.nan
        return float(self._to_unix(_as_float(row.get(self.time_column))))

    def timestamps_unix(self) -> np.ndarray:
        """Unix seconds of every data row (converted from OLE for MPMS3/PPMS files)."""
        if self.time_column is None:
            raise MissingColumnError(f"{self.path}: no time column (Time Stamp (sec) / Time)")
        raw = self.column(self.time_column)
        return np.asarray(ole_to_unix(raw), dtype=float) if self.time_base == "ole" else raw

    # ------------------------------------------------------------- columns
    def _filled(self, name: str) -> bool:
        return name in self.columns and any(r[name] is not None for r in self.rows)

    def resolve(self, name: str) -> str:
        """The file's column for ``name``: exact, case-insensitive, then known aliases."""
        if name in self.columns:
            return name
        low = {c.lower(): c for c in self.columns}
        if name.lower() in low:
            return low[name.lower()]
        for group in COLUMN_ALIASES:
            if name in group:
                present = [c for c in group if c in self.columns]
                for c in present:
                    if self._filled(c):
                        return c
                if present:
                    return present[0]
        raise MissingColumnError(f"{self.path}: no column {name!r} (or a known alias)")

    def has_column(self, name: str) -> bool:
        try:
            self.resolve(name)
            return True
        except MissingColumnError:
            return False

    def column(self, name: str) -> np.ndarray:
        """Column as a float array, NaN where the field is empty. Accepts known aliases."""
        col = self.resolve(name)
        cached = self._cache.get(col)
        if cached is None:
            out = np.empty(len(self.rows), dtype=float)
            for i, r in enumerate(self.rows):
                v = r[col]
                if isinstance(v, str):
                    raise DatFormatError(self.path, self.row_lines[i],
                                         f"column {col!r} holds non-numeric text {v!r}")
                out[i] = math.nan if v is None else v
            self._cache[col] = cached = out
        return cached.copy()

    def moment_column(self) -> str:
        """Name of the filled moment column (VSM, DC scan free/fixed centre, MPMS-XL long)."""
        for name, _ in MOMENT_COLUMNS:
            if self._filled(name):
                return name
        raise MissingColumnError(
            f"{self.path}: no filled moment column; looked for "
            f"{[m for m, _ in MOMENT_COLUMNS]} (an ac-only file? use ac_columns())")

    def moment_error_column(self) -> str | None:
        """Error column belonging to :meth:`moment_column`, or None if absent/empty."""
        moment = self.moment_column()
        err = dict(MOMENT_COLUMNS)[moment]
        return err if self._filled(err) else None

    @property
    def sample_mass_mg(self) -> float | None:
        return self._info_float("SAMPLE_MASS", "WEIGHT")

    @property
    def molecular_weight(self) -> float | None:
        return self._info_float("SAMPLE_MOLECULAR_WEIGHT", "MOLECULAR_WEIGHT", "MW")

    def _info_float(self, *keys: str) -> float | None:
        for k in keys:
            v = self.info.get(k, "").strip()
            if v:
                try:
                    return float(v)
                except ValueError:
                    return None
        return None

    def ac_columns(self) -> dict[str, str | None]:
        """Canonical ac names -> this file's column (None if absent or empty).

        Keys: ``chi_real``, ``chi_imag``, ``chi_real_err``, ``chi_imag_err``, ``frequency``,
        ``drive``, ``temperature``, ``field``, plus ``chi_unit``: ``"emu/Oe"`` (MPMS3 AC X)
        or ``"emu"`` (moment-type ``m'``/``M'`` columns, to be divided by the drive field).
        """
        out: dict[str, str | None] = {
            key: next((c for c in names if self._filled(c)), None)
            for key, names in AC_ALIASES.items()
        }
        real = out["chi_real"]
        out["chi_unit"] = None if real is None else ("emu/Oe" if real.endswith("(emu/Oe)") else "emu")
        return out

    # ------------------------------------------------------------- grouping
    def measurement_sets(self, setpoint_key: str = "Temperature (K)", *,
                         tolerance: float | None = None, sweep_key: str | None = "auto",
                         split_on_comments: bool = True) -> list[MeasurementSet]:
        """Split the data rows into consecutive measurement sets (one per setpoint).

        Rule (never clustering of measured values over the whole file): walking the rows in
        file order, a new set starts at a row when
        1. a comment-only row precedes it (``split_on_comments``), or
        2. the sweep restarts: ``sweep_key`` (``"auto"`` = the filled ac frequency column,
           ``None`` = off) moves against the direction set by the set's first two rows
           (1000 -> 1 Hz, then 1000 Hz again), or
        3. ``setpoint_key`` differs from the value of the set's *first* row by more than
           ``tolerance`` (default 0.05 for a ``(K)`` key, 1.0 for ``(Oe)``).
        Setpoints 0.1 K apart (ErCOT 10.5 ... 11.1 K) therefore stay separate.
        """
        key = self.resolve(setpoint_key)
        if tolerance is None:
            tolerance = 0.05 if "(K)" in key else 1.0 if "(Oe)" in key else None
            if tolerance is None:
                raise ValueError(f"tolerance is required for setpoint_key={setpoint_key!r}")
        values = self.column(key)
        if sweep_key == "auto":
            sweep_col = self.ac_columns()["frequency"]
        else:
            sweep_col = self.resolve(sweep_key) if sweep_key else None
        sweep = self.column(sweep_col) if sweep_col else None
        breaks = set(self.comment_positions) if split_on_comments else set()
        labels: dict[int, str] = {}
        for pos, c in zip(self.comment_positions, self.comments):
            labels[pos] = c.text          # the last comment before a row labels its set

        groups: list[list[int]] = []
        for i in range(len(self.rows)):
            cur = groups[-1] if groups else None
            new = cur is None or i in breaks
            if not new and not math.isnan(values[i]) and not math.isnan(values[cur[0]]):
                new = abs(values[i] - values[cur[0]]) > tolerance
            if not new and sweep is not None and len(cur) >= 2:
                direction = np.sign(sweep[cur[1]] - sweep[cur[0]])
                step = sweep[i] - sweep[cur[-1]]
                rel = abs(step) > 1e-6 * max(abs(sweep[i]), abs(sweep[cur[-1]]))
                new = bool(direction != 0 and rel and np.sign(step) == -direction)
            if new:
                groups.append([i])
            else:
                cur.append(i)
        return [
            MeasurementSet(index=k, rows=[self.rows[i] for i in g], row_indices=g,
                           label=labels.get(g[0]), setpoint_key=key,
                           setpoint=float(np.nanmedian(values[g])) if np.any(np.isfinite(values[g]))
                           else math.nan, _file=self)
            for k, g in enumerate(groups)
        ]


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")   # MultiVu on Windows writes ANSI


def read_dat(path: str | os.PathLike) -> DatFile:
    """Read a MultiVu ``.dat`` file; raises :class:`DatFormatError` (file + line) if malformed.

    An unterminated last line (a writer still busy) is kept only if it has every column;
    otherwise it is skipped with a warning.
    """
    path = Path(path)
    data = path.read_bytes()
    parser = DatParser(path)
    rows: list[dict] = []
    row_lines: list[int] = []
    comments: list[tuple[int, float | None, str]] = []
    lines = data.split(b"\n")
    last_complete = data.endswith(b"\n")
    if last_complete:
        lines.pop()
    for lineno, raw in enumerate(lines, start=1):
        line = _decode(raw)
        if lineno == len(lines) and not last_complete and parser.in_data and line.strip():
            fields = line.count(",") + 1
            if fields < len(parser.columns):
                warnings.warn(f"{path}, line {lineno}: incomplete last line skipped", stacklevel=2)
                break
        event = parser.feed(line, lineno)
        if event is None:
            continue
        kind, payload = event
        if kind == "row":
            rows.append(payload)
            row_lines.append(lineno)
        else:
            comments.append((len(rows), payload[0], payload[1]))
    if parser.state in ("start", "header"):
        raise DatFormatError(path, None, "no [Data] section")
    if parser.state == "columns":
        raise DatFormatError(path, None, "[Data] section has no column header row")
    return DatFile(path, parser, rows, row_lines, comments)
