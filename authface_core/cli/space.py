"""``space``: create or update a Hugging Face Space running the restoration demo or the annotation app.

What is uploaded and set, and how the token and secrets are kept out of files and logs: ``authface_core.space``.
Run it in a checkout of the repository (the folder holding app.py), logged in to the Hub (``hf auth login``) or
with ``HF_TOKEN`` set.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from ..settings import add_settings_arguments, check_settings, setting

HELP = "Create or update a Hugging Face Space running the restoration demo or the annotation app."


@dataclass(frozen=True)
class SpaceSettings:
    """Which Space, and what to set in its settings besides the files."""

    _argument_group_name = "Space"

    repo: str = setting(help="the Space, namespace/name; created when it does not exist")
    private: bool = setting(False, "create the Space private (when it does not exist yet)")
    hardware: str | None = setting(
        None, "hardware to ask for, e.g. zero-a10g, a10g-small or cpu-basic; unset: leave it as it is"
    )
    variable: list[str] = setting(
        help="NAME=VALUE pairs set as the Space's variables (public in its settings), e.g. ANNOTATE_REVIEWERS=ana,ben",
        default_factory=list,
    )
    secret: list[str] = setting(
        help="NAME or NAME=ENV_VAR: set the Space's secret NAME to the value of the environment variable ENV_VAR "
        "(default NAME), so that no secret is typed on a command line, e.g. HF_TOKEN=DATASET_WRITE_TOKEN",
        default_factory=list,
    )

    def __post_init__(self):
        check_settings(self)


def add_arguments(parser) -> None:
    from ..space import SPACE_APPS

    parser.add_argument("app", choices=SPACE_APPS, help="demo: the restoration demo; annotate: the annotation app")
    add_settings_arguments(parser, SpaceSettings)


def parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    """``["A=1", "B=x=y"]`` -> ``{"A": "1", "B": "x=y"}``; a pair without '=' is a ``ValueError``."""
    parsed = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"{what} {pair!r} is not NAME=VALUE")
        parsed[name] = value
    return parsed


def secret_values(specs: list[str], environ=os.environ) -> dict[str, str]:
    """``["HF_TOKEN=DATASET_TOKEN", "OTHER"]`` -> each secret's value from the environment; a ``ValueError`` names a
    variable that is not set (and never shows a value)."""
    secrets = {}
    for spec in specs:
        name, _, source = spec.partition("=")
        source = source or name
        if source not in environ:
            raise ValueError(f"secret {name}: the environment variable {source} is not set")
        secrets[name] = environ[source]
    return secrets


def run(args) -> int:
    """Deploy; the exit status is that of ``authface_core.cli``."""
    from ..errors import PublishError
    from ..settings import settings_from_namespace
    from ..space import deploy_space
    from . import EXIT_CANNOT_START, EXIT_OK, EXIT_SOME_FAILED

    try:
        (settings,) = settings_from_namespace(args, SpaceSettings)
        variables = parse_pairs(settings.variable, "variable")
        secrets = secret_values(settings.secret)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    try:
        result = deploy_space(
            args.app,
            settings.repo,
            variables=variables,
            secrets=secrets,
            private=settings.private,
            hardware=settings.hardware,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    except PublishError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_SOME_FAILED
    print(f"{args.app} Space {result.url}: {len(result.uploaded)} files uploaded")
    for name, value in result.variables.items():
        print(f"  variable {name}={value}")
    for name in result.secrets:
        print(f"  secret {name} set")
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return EXIT_OK
