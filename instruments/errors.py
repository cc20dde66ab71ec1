"""Errors every driver raises: they name the instrument, the command and the reply."""

from __future__ import annotations


class InstrumentError(RuntimeError):
    """An instrument refused, garbled or failed a command.

    Carries ``instrument``, ``command`` and ``reply`` so logs and notifications say exactly what
    was sent and what came back.
    """

    def __init__(self, instrument: str, command: str | None, reply: str | None, message: str = ""):
        self.instrument = instrument
        self.command = command
        self.reply = reply
        self.message = message
        text = f"{instrument}: {message or 'instrument error'} (command {command!r}, reply {reply!r})"
        super().__init__(text)


class InstrumentTimeout(InstrumentError):
    """No (complete) reply within the transport's finite timeout."""


class ConnectionLost(InstrumentError):
    """The connection dropped; the transport can be reopened."""


def check_range(parameter: str, value: float, low: float, high: float, unit: str = "") -> float:
    """Validate ``low <= value <= high`` before anything is sent to an instrument.

    The error names the parameter, the value and the allowed range, as every bad-input error in
    spinlight does.
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{parameter}={value!r} is not a number; allowed range {low}..{high} {unit}".rstrip()) from None
    if not (low <= v <= high):  # also rejects NaN
        raise ValueError(f"{parameter}={value!r} {unit} is outside the allowed range {low}..{high} {unit}".replace("  ", " ").rstrip())
    return v


def check_choice(parameter: str, value, allowed) -> object:
    """Validate that ``value`` is one of ``allowed``; the error lists them."""
    if value not in allowed:
        # numbers in numeric order (1, 2, 4, 8, 16), anything else by its text
        key = lambda v: (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) \
            else (1, 0, str(v))  # noqa: E731
        raise ValueError(f"{parameter}={value!r} is not allowed; choose one of {sorted(allowed, key=key)}")
    return value
