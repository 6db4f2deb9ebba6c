"""``l2tp check-config FILE``: validate a daemon configuration without running it.

Exit status 0 and the resolved configuration (every default filled in) on
stdout when the file is valid; exit status 1 and one error per line on stderr
otherwise. The same dry run is what each daemon's ``--check`` performs.
"""

from __future__ import annotations

import argparse
from typing import Any

from l2tp.config.check import run_check
from l2tp.config.model import Daemon


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "check-config",
        help="validate a TOML configuration file and print it resolved",
        description="Validate a TOML configuration file and print the resolved configuration.",
    )
    parser.add_argument("file", help="the TOML configuration file")
    parser.add_argument(
        "--daemon",
        choices=[d.value for d in Daemon],
        default=None,
        help="validate for this daemon's profile (default: accept anything valid)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of TOML")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    return run_check(args.file, args.daemon, as_json=args.json)
