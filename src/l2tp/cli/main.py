"""The ``l2tp`` command: one entry point whose sub-commands live in sibling modules.

Each sub-command module exposes ``register(subparsers)``, which adds its parser
and sets ``func`` to a callable taking the parsed namespace and returning an
exit status. Modules are imported lazily so that ``l2tp decode`` on a machine
without pyroute2 or without the kernel modules still works. Every command's
output may be cut short by its reader (``| head``): that ends the command
quietly with status 0 (:mod:`l2tp.cli.pipes`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import cast

import l2tp
from l2tp.cli.pipes import run_quietly

SUBCOMMAND_MODULES = ("decode", "show", "monitor", "check_config", "demo", "ctl")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="l2tp", description="Linux L2TP toolkit: inspect, decode and demo."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {l2tp.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(f"l2tp.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"l2tp.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    import logging

    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    command = cast(Callable[[argparse.Namespace], int], func)
    return run_quietly(lambda: command(args))


if __name__ == "__main__":
    sys.exit(main())
