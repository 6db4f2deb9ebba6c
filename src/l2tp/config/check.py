"""The dry run shared by every daemon's ``--check`` and ``l2tp check-config``.

Validating without starting anything lets an operator (or a package's
post-install hook) catch a bad file before the daemon is restarted; printing
the resolved configuration shows what the defaults turned into.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from l2tp.config.dump import dump_json, dump_toml
from l2tp.config.errors import ConfigError
from l2tp.config.fields import Resolver, system_resolver
from l2tp.config.loader import load
from l2tp.config.model import Daemon


def add_check_argument(parser: argparse.ArgumentParser) -> None:
    """Give a daemon's parser ``--check``: validate, print, exit (see :func:`run_check`)."""
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate the configuration, print it with defaults filled in, and exit",
    )


def run_check(
    path: str | os.PathLike[str],
    daemon: Daemon | str | None = None,
    *,
    as_json: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
    hostname: str | None = None,
    resolver: Resolver | None = system_resolver,
) -> int:
    """Load ``path`` for ``daemon``; print it to ``out`` and return 0, or print
    the errors to ``err`` (one per line) and return 1. Warnings (keys accepted
    without effect) go to ``err`` as ``warning: ...`` lines either way."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        config = load(path, daemon=daemon, hostname=hostname, resolver=resolver)
    except ConfigError as exc:
        for error in exc.errors:
            print(error, file=err)
        return 1
    for warning in config.warnings:
        print(f"warning: {warning}", file=err)
    out.write(dump_json(config) if as_json else dump_toml(config))
    return 0
