"""The ``nas`` command: a thin layer of verbs over library functions (each verb is a few lines).

Every verb module exposes ``register(subparsers)``; a verb's handler returns an exit code. Errors the user
can fix (bad paths, bad input) print one ``error:`` line naming the cause and exit 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from nas import __version__
from nas.cli import arch as arch_cli
from nas.cli import data as data_cli
from nas.cli import enroll as enroll_cli
from nas.cli import evaluate as evaluate_cli
from nas.cli import experiment as experiment_cli
from nas.cli import hardware as hardware_cli
from nas.cli import inspect as inspect_cli
from nas.cli import quantize as quantize_cli
from nas.cli import search as search_cli
from nas.cli import train as train_cli
from nas.cli.errors import UserError

_VERBS = (data_cli, arch_cli, train_cli, enroll_cli, quantize_cli, inspect_cli, evaluate_cli, search_cli, hardware_cli,
          experiment_cli)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas", description="Neural-architecture search for keyword spotting on MCUs.")
    parser.add_argument("--version", action="version", version=f"kwsnas {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb in _VERBS:
        verb.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s" if args.verbose else "%(message)s",
        stream=sys.stderr,
    )
    for noisy in ("jax", "absl"):  # their INFO lines (e.g. "Unable to initialize backend 'tpu'") are not for users
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        return int(args.handler(args) or 0)
    except (UserError, ValueError, FileNotFoundError, PermissionError) as e:
        if args.verbose:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and friends: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
