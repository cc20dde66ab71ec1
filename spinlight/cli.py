"""The ``spinlight`` command line.

Each subcommand lives in its own ``cmd_*`` module exposing ``register(subparsers)``; this module
only assembles them, so the CLI stays thin.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: Modules that contribute subcommands, in help order.
COMMAND_MODULES = (
    "spinlight.cmd_sim",      # sim serve
    "spinlight.cmd_catalog",  # runs, import
    "spinlight.cmd_fit",      # fit
    "spinlight.cmd_demo",     # demo
    "spinlight.cmd_campaign", # check
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spinlight",
        description="Acquisition and fitting for lanthanide molecular magnets (Bluesky/Ophyd).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for modname in COMMAND_MODULES:
        importlib.import_module(modname).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
