"""Command line: ``python -m authface_core {faces,restore,verify,train,evaluate,space} ...``.

Each subcommand lives in its own module of this package exposing ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``. Settings flags come from settings dataclasses (``authface_core.settings``:
``add_settings_arguments``). A module may also expose ``settings_defaults(args, parser)``, which sets the
subcommand parser's defaults from a first parse (a preset, a settings file) before the final parse,
so that flags given on the command line always win. Those modules import heavy libraries (torch,
diffusers, dlib) inside ``run`` only, so ``--help`` stays quick and creates nothing.

Exit status, the same for every subcommand: 0 when every input was done (or had nothing to do,
such as a photo without a face), 1 when any input failed or was left out, 2 when nothing could
start (bad flags or settings, no model, an unusable output folder).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

SUBCOMMANDS = ("faces", "restore", "verify", "train", "evaluate", "space")
EXIT_OK, EXIT_SOME_FAILED, EXIT_CANNOT_START = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m authface_core",
        description="AuthFace Studio: authentic blind face restoration.",
        epilog="Exit status: 0 all done, 1 some input failed or was left out, 2 could not start.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        sub = subparsers.add_parser(
            name, help=module.HELP, description=module.HELP, formatter_class=argparse.ArgumentDefaultsHelpFormatter
        )
        module.add_arguments(sub)
        defaults_hook = getattr(module, "settings_defaults", None)
        sub.set_defaults(run=module.run, command_parser=sub, settings_defaults=defaults_hook)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``argv``; where the subcommand takes defaults from a first parse (``settings_defaults``), parse again."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.settings_defaults is not None:
        args.settings_defaults(args, args.command_parser)
        args = parser.parse_args(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        args = parse_args(argv)
    except (ValueError, FileNotFoundError) as error:  # a settings file that cannot be used
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
