"""Argument checks that report every bad plan argument at once.

A plan's validation is a pure function (``validate_chi_t``, ``validate_ac_field_scan``, ...) that
the plan calls and that campaign files call before anything moves. Each check runs inside
``with checks("option"):``; a ``ValueError`` raised there is recorded against that option and the
next check still runs, so a campaign learns about all its mistakes in one pass, each tied to the
option (and so to the line of the file) it came from.
"""

from __future__ import annotations

from contextlib import contextmanager


class PlanArgumentError(ValueError):
    """One or more bad plan arguments.

    ``problems`` is a list of ``(option, message)`` in the order found; each message names the
    parameter, the value and the allowed range. ``str()`` joins the messages with ``"; "``.
    """

    def __init__(self, problems):
        self.problems = [(str(o), str(m)) for o, m in problems]
        super().__init__("; ".join(m for _, m in self.problems))


class Checks:
    """Collects ``ValueError``s per option; :meth:`raise_if_any` raises them together."""

    def __init__(self):
        self.problems: list[tuple[str, str]] = []

    @contextmanager
    def __call__(self, option: str):
        try:
            yield
        except PlanArgumentError as e:   # a nested validator: keep its own option names
            self.problems.extend(e.problems)
        except ValueError as e:
            self.problems.append((option, str(e)))

    def failed(self, *options: str) -> bool:
        """True if any of ``options`` (all options when none given) has a problem."""
        return any(not options or o in options for o, _ in self.problems)

    def raise_if_any(self) -> None:
        if self.problems:
            raise PlanArgumentError(self.problems)
