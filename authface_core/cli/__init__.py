"""Command line: ``python -m authface_core {faces,restore,train,evaluate} ...``.

Each subcommand lives in its own module of this package exposing ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Those modules import heavy libraries
(torch, diffusers, dlib) inside ``run`` only, so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

SUBCOMMANDS = ("faces", "restore", "train", "evaluate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m authface_core",
        description="AuthFace Studio: authentic blind face restoration.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
