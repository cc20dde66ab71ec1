"""Declarative instrument commands: a driver is mostly a table of these.

Each :class:`Command` names its wire template, its parameters with validators next to them, and
how to check or parse the reply, in the spirit of pymeasure's ``Instrument.control``. Arguments
are validated before anything is sent; replies are parsed strictly and a mismatch raises
:class:`~.retry.GarbledReply` (an :class:`InstrumentError`) naming instrument, command and reply.
A driver given a :class:`~.retry.RetryPolicy` retries garbled replies and timeouts and
reconnects a lost connection (see :mod:`.retry`); without one every fault is raised at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .errors import check_choice, check_range
from .retry import GarbledReply, RetryPolicy


@dataclass(frozen=True)
class Param:
    """A numeric argument with its allowed range and unit (validated before sending)."""

    name: str
    low: float
    high: float
    unit: str = ""
    fmt: Callable[[float], str] = staticmethod(lambda v: repr(float(v)))

    def encode(self, value) -> str:
        return self.fmt(check_range(self.name, value, self.low, self.high, self.unit))


@dataclass(frozen=True)
class Choice:
    """A named choice mapped to its wire code (e.g. ``fast_settle`` → ``0``)."""

    name: str
    codes: Mapping[str, int]

    def encode(self, value) -> str:
        if isinstance(value, int) and not isinstance(value, bool) and value in self.codes.values():
            return str(value)
        return str(self.codes[check_choice(self.name, value, set(self.codes))])


@dataclass(frozen=True)
class Command:
    """One instrument command.

    ``template`` uses ``{param}`` placeholders; ``reply`` is a regex the reply must match
    (``None``: a write with no reply); ``parse`` turns the reply (or the regex match) into a
    Python value.
    """

    template: str
    params: tuple = ()
    reply: str | None = None
    parse: Callable[[str], Any] | None = None
    doc: str = ""
    pattern: re.Pattern | None = field(init=False, default=None, repr=False)

    def __post_init__(self):
        if self.reply is not None:
            object.__setattr__(self, "pattern", re.compile(self.reply))

    def encode(self, args: tuple, kwargs: dict) -> str:
        names = [p.name for p in self.params]
        if len(args) > len(names):
            raise TypeError(f"{self.template!r} takes {len(names)} arguments, got {len(args)}")
        values = dict(zip(names, args))
        for key, val in kwargs.items():
            if key not in names:
                raise TypeError(f"unknown argument {key!r}; expected one of {names}")
            values[key] = val
        missing = [n for n in names if n not in values]
        if missing:
            raise TypeError(f"missing argument(s) {missing} for {self.template!r}")
        return self.template.format(**{p.name: p.encode(values[p.name]) for p in self.params})

    def __set_name__(self, owner, name):
        object.__setattr__(self, "_attr", name)

    def __get__(self, driver, owner=None):
        if driver is None:
            return self
        cmd = self

        def call(*args, **kwargs):
            return driver.execute(cmd, args, kwargs)

        call.__name__ = getattr(self, "_attr", "command")
        call.__doc__ = self.doc
        return call


class Driver:
    """Base class: sends declared commands over an injected transport.

    ``retry`` (:class:`~.retry.RetryPolicy`, default none) wraps each :meth:`execute`: one
    command, its reply check and (subclasses) its read-back are retried as a whole.
    """

    instrument = "instrument"

    def __init__(self, transport, *, retry: RetryPolicy | None = None):
        self.transport = transport
        self.retry = retry if retry is not None else RetryPolicy.none()

    def execute(self, cmd: Command, args: tuple = (), kwargs: dict | None = None):
        wire = cmd.encode(args, kwargs or {})  # validation happens here, before any I/O
        return self.retrying(lambda: self._execute_once(cmd, wire, args, kwargs or {}), wire)

    def retrying(self, op, command: str | None = None):
        """``op()`` under this driver's retry policy (for operations made of several calls)."""
        return self.retry.run(op, self.transport, self.instrument, command)

    def _execute_once(self, cmd: Command, wire: str, args: tuple, kwargs: dict):
        if cmd.pattern is None:
            self.transport.write(wire)
            return None
        return parse_reply(self.instrument, cmd, wire, self.transport.query(wire))

    def close(self) -> None:
        self.transport.close()


def parse_reply(instrument: str, cmd: Command, wire: str, reply: str):
    """``cmd``'s parsed value of ``reply``; a mismatch is a :class:`~.retry.GarbledReply`."""
    match = cmd.pattern.fullmatch(reply.strip())
    if match is None:
        raise GarbledReply(instrument, wire, reply, f"unexpected reply (expected /{cmd.reply}/)")
    if cmd.parse is None:
        return match
    try:
        return cmd.parse(match)
    except (ValueError, IndexError) as exc:
        raise GarbledReply(instrument, wire, reply, f"cannot parse reply: {exc}") from exc
