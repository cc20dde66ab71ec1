"""``DatWriter``: writes a MultiVu ``.dat`` file in the real MPMS3 layout.

Used by the simulators (a simulated MultiVu sequence writes its measurements here) and by
tests. Every row is flushed and fsynced before ``write_row`` returns, so a process killed
right after a returned call has the row on disk.
"""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from .qd_dat_format import (
    MPMS3_COLUMNS,
    MPMS3_FIELDGROUPS,
    DatFormatError,
    DatParser,
    format_value,
    ole_to_datetime,
    time_base_of,
    unix_to_ole,
)

__all__ = ["DatWriter"]

_TIME_COL = "Time Stamp (sec)"
_COMMENT_COL = "Comment"
_BYAPP = {"MPMS3": "MPMS3 w/ AC,1.0,1.1", "SQUID AC": "SQUID AC,0.9.1.0"}


def _info_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return format_value(value)
    return str(value).replace("\r", " ").replace("\n", " ")


class DatWriter:
    """Write a MultiVu ``.dat`` file (real MPMS3 header and column layout, OLE time base).

    ``app`` is the BYAPP application: ``"MPMS3"`` -> ``BYAPP,MPMS3 w/ AC,1.0,1.1``,
    ``"SQUID AC"`` -> ``BYAPP,SQUID AC,0.9.1.0``; any other text is written verbatim.
    ``if_exists``: ``"error"`` (default; never clobber data), ``"overwrite"``, or ``"append"``
    (resume after a crash: the existing header must have the same columns; a half-written
    last line left by a kill is cut off). ``tz`` is the wall-clock zone for OLE stamps
    (default: local, like MultiVu). ``info`` adds/overrides INFO items (e.g. SAMPLE_HOLDER).
    Each write is flushed; with ``fsync=True`` (default) also fsynced (~ms per row), which
    a fast virtual-clock simulation may turn off (``fsync=False`` still survives kill -9).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        title: str = "",
        sample_material: str = "",
        sample_mass_mg: float | None = None,
        molecular_weight: float | None = None,
        app: str = "MPMS3",
        open_time_unix: float | None = None,
        columns: Iterable[str] = MPMS3_COLUMNS,
        sample_comment: str = "",
        info: Mapping[str, Any] | None = None,
        if_exists: str = "error",
        tz=None,
        fsync: bool = True,
    ):
        self.path = Path(path)
        self.columns: tuple[str, ...] = tuple(columns)
        missing = [c for c in (_COMMENT_COL, _TIME_COL) if c not in self.columns]
        if missing:
            raise ValueError(f"DatWriter columns must include {missing} (MultiVu's first two)")
        if len(set(self.columns)) != len(self.columns):
            raise ValueError("DatWriter columns contain duplicates")
        if if_exists not in ("error", "overwrite", "append"):
            raise ValueError(f"if_exists={if_exists!r}; allowed: 'error', 'overwrite', 'append'")
        self.tz = tz
        self.fsync = bool(fsync)
        self._index = {c: i for i, c in enumerate(self.columns)}
        self._lock = threading.Lock()
        self.rows_written = 0
        self.open_time_unix = time.time() if open_time_unix is None else float(open_time_unix)

        appending = if_exists == "append" and self.path.exists() and self.path.stat().st_size > 0
        if appending:
            self._prepare_append()
            self._fh = open(self.path, "a", encoding="utf-8", newline="")
        else:
            mode = "x" if if_exists == "error" else "w"
            self._fh = open(self.path, mode, encoding="utf-8", newline="")
            info_items = {
                "APPNAME": "spinlight DatWriter (MPMS3 layout)",
                "MOMENT_UNITS": "0",
                "SAMPLE_MATERIAL": sample_material,
                "SAMPLE_COMMENT": sample_comment,
                "SAMPLE_MASS": sample_mass_mg,
                "SAMPLE_VOLUME": None,
                "SAMPLE_MOLECULAR_WEIGHT": molecular_weight,
                "SAMPLE_SIZE": None,
                "SAMPLE_SHAPE": None,
                "SAMPLE_HOLDER": None,
                "SAMPLE_HOLDER_DETAIL": None,
                "SAMPLE_OFFSET": None,
            }
            info_items.update(info or {})
            self._write_and_sync(self._header_text(title, app, info_items))
            self._sync_dir()

    # ---------------------------------------------------------------- header
    def _header_text(self, title: str, app: str, info_items: Mapping[str, Any]) -> str:
        ole = unix_to_ole(self.open_time_unix, self.tz)
        wall = ole_to_datetime(ole)
        clock = f"{wall.hour % 12 or 12}:{wall.minute:02d} {'am' if wall.hour < 12 else 'pm'}"
        lines = [
            "[Header]",
            "; MPMS3 Data File (default extension .dat)",
            "; Copyright (c) 2007, Quantum Design, Inc. All rights reserved.",
            f"TITLE,{_info_text(title)}",
            f"FILEOPENTIME,{format_value(ole)},{wall:%m/%d/%Y},{clock}",
            f"BYAPP,{_BYAPP.get(app, app)}",
        ]
        lines += [f"INFO,{_info_text(v)},{k}" for k, v in info_items.items()]
        lines += ["DATATYPE,COMMENT,1", "DATATYPE,TIME,2", "STARTUPAXIS,X,2", "STARTUPAXIS,Y1,5"]
        if self.columns == MPMS3_COLUMNS:       # MultiVu's group numbering fits only this layout
            lines += list(MPMS3_FIELDGROUPS)
        lines += ["STARTUPGROUP, All", "[Data]", ",".join(format_value(c) for c in self.columns)]
        return "\n".join(lines) + "\n"

    def _prepare_append(self) -> None:
        """Check the existing file's columns and cut a half-written last line (crash)."""
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as fh:
                fh.truncate(cut)
                fh.flush()
                os.fsync(fh.fileno())
            data = data[:cut]
        parser = DatParser(self.path)
        for lineno, raw in enumerate(data.decode("utf-8", "replace").split("\n"), start=1):
            if parser.in_data:
                if raw.strip():
                    self.rows_written += 1
                continue
            parser.feed(raw, lineno)
        if not parser.in_data:
            raise DatFormatError(self.path, None, "cannot append: no complete [Data] header")
        if tuple(parser.columns) != self.columns:
            raise DatFormatError(self.path, None, "cannot append: the file has other columns")

    # ---------------------------------------------------------------- rows
    def _ole_time(self, values: dict) -> float:
        t_unix = values.pop("time_unix", None)
        stamp = values.pop(_TIME_COL, None)
        if t_unix is not None and stamp is not None:
            raise ValueError("give either 'time_unix' or 'Time Stamp (sec)', not both")
        if stamp is not None:
            stamp = float(stamp)
            # rows store OLE seconds; a Unix-sized value (< 2.5e9) is converted
            return stamp if time_base_of(stamp, "MPMS3") == "ole" else unix_to_ole(stamp, self.tz)
        t = time.time() if t_unix is None else float(t_unix)
        if not math.isfinite(t):
            raise ValueError(f"time_unix={t_unix!r} is not a finite time")
        return unix_to_ole(t, self.tz)

    def _line(self, values: Mapping[str, Any], *, trim: bool) -> str:
        vals = dict(values)
        ole = self._ole_time(vals)
        unknown = [k for k in vals if k not in self._index]
        if unknown:
            raise KeyError(f"{self.path}: unknown column(s) {unknown}")
        fields = [""] * len(self.columns)
        fields[self._index[_TIME_COL]] = format_value(ole)
        for k, v in vals.items():
            fields[self._index[k]] = format_value(v)
        if trim:                        # comment-only rows stop at the last filled field
            while fields and not fields[-1]:
                fields.pop()
        return ",".join(fields) + "\n"

    def write_row(self, values: Mapping[str, Any]) -> None:
        """Append one data row: ``{column: value}`` (others left empty) plus optional
        ``time_unix`` (default: now). Returns after the row is fsynced."""
        line = self._line(values, trim=False)
        self._write_and_sync(line)
        with self._lock:
            self.rows_written += 1

    def write_comment(self, text: str, time_unix: float | None = None) -> None:
        """Append a comment-only row (``"ZFC, 100",3874580582.41911``); fsynced on return."""
        values: dict[str, Any] = {_COMMENT_COL: str(text)}
        if time_unix is not None:
            values["time_unix"] = time_unix
        self._write_and_sync(self._line(values, trim=True))

    def _write_and_sync(self, text: str) -> None:
        with self._lock:
            if self._fh.closed:
                raise ValueError(f"{self.path}: DatWriter is closed")
            self._fh.write(text)
            self._fh.flush()                # on disk for other processes, survives kill -9
            if self.fsync:                  # ... and survives an OS crash / power loss
                os.fsync(self._fh.fileno())

    def _sync_dir(self) -> None:
        try:                            # make the new directory entry durable too (POSIX)
            fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()

    @property
    def closed(self) -> bool:
        return self._fh.closed

    def __enter__(self) -> "DatWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DatWriter({str(self.path)!r}, rows_written={self.rows_written})"
