"""Line numbers of keys in a TOML file (``tomllib`` gives none).

A small scanner, good enough for the files people write: it follows table headers
(``[instruments.ppms]``, ``[[measurements]]`` with a running index per array) and ``key = value``
lines (dotted and quoted keys too), skipping the inside of multi-line arrays, inline tables and
multi-line strings. Key paths look like ``measurements[3].temperatures_K`` or
``instruments.ppms.resource``; :meth:`KeyLines.line_of` falls back to the closest parent
(``measurements[3].temperatures_K[0]`` → the ``temperatures_K`` line → the table header).
"""

from __future__ import annotations

import re

_BARE = r"[A-Za-z0-9_-]+"
_PART = rf'(?:{_BARE}|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_PART}(?:\s*\.\s*{_PART})*"
_HEADER = re.compile(rf"^\s*(\[\[|\[)\s*({_DOTTED})\s*(\]\]|\])\s*(?:#.*)?$")
_KEY = re.compile(rf"^\s*({_DOTTED})\s*=(.*)$")
_SPLIT = re.compile(_PART)


def _parts(dotted: str) -> list[str]:
    return [p.strip("\"'") for p in _SPLIT.findall(dotted)]


def _depth_change(text: str, depth: int) -> tuple[int, bool]:
    """Bracket depth after ``text`` (strings and comments skipped) and whether a multi-line
    string (``\"\"\"`` or ``'''``) is left open."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if text.startswith(('"""', "'''"), i):
            end = text.find(text[i:i + 3], i + 3)
            if end < 0:
                return depth, True
            i = end + 3
            continue
        if ch in "\"'":
            end = i + 1
            while end < n and text[end] != ch:
                end += 2 if ch == '"' and text[end] == "\\" else 1
            i = end + 1
            continue
        if ch == "#":
            break
        depth += (ch in "[{") - (ch in "]}")
        i += 1
    return depth, False


class KeyLines:
    """Key path -> 1-based line number of where it is written."""

    def __init__(self, text: str):
        self.lines: dict[str, int] = {}
        counts: dict[str, int] = {}     # array-of-tables path -> elements seen
        prefix, depth, in_string = "", 0, None
        for n, raw in enumerate(text.splitlines(), 1):
            if in_string:
                if in_string in raw:
                    in_string = None
                continue
            if depth > 0:
                depth, _ = _depth_change(raw, depth)
                continue
            header = _HEADER.match(raw)
            if header:
                prefix = self._table(_parts(header.group(2)), header.group(1) == "[[", counts)
                self.lines.setdefault(prefix, n)
                continue
            key = _KEY.match(raw)
            if key:
                path = ".".join(([prefix] if prefix else []) + _parts(key.group(1)))
                self.lines.setdefault(path, n)
                value = key.group(2)
                depth, open_str = _depth_change(value, 0)
                if open_str:
                    in_string = '"""' if '"""' in value else "'''"

    @staticmethod
    def _table(parts: list[str], array: bool, counts: dict[str, int]) -> str:
        path = ""
        for i, part in enumerate(parts):
            path = f"{path}.{part}" if path else part
            last = i == len(parts) - 1
            if last and array:
                counts[path] = counts.get(path, 0) + 1
            if path in counts:               # inside the latest element of an array of tables
                path = f"{path}[{counts[path] - 1}]"
        return path

    def line_of(self, key_path: str) -> int | None:
        """The line of ``key_path`` or of its closest written parent; None if nothing is."""
        path = key_path
        while path:
            if path in self.lines:
                return self.lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return None
