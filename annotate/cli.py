"""``python -m annotate [PROJECT_FOLDER] [--flags]`` (or ``authface-annotate``): start the annotation app.

The flags are the fields of :class:`~authface_core.annotation.config.AnnotationSettings`. A YAML
file given with ``--config`` sets defaults, ``ANNOTATE_<NAME>`` environment variables (how a Space
is configured) override it, and flags override both. The arguments are parsed before Gradio is imported and
before anything is created, so ``--help`` and a bad flag cost nothing. The mode (local or hosted)
is stated when the app starts.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Mapping

from authface_core.annotation.config import ENV_PREFIX, SPACE_ENV, AnnotationSettings, hosted_mode
from authface_core.annotation.reviewers import ROLES, ReviewerPolicy
from authface_core.settings import apply_settings_file, settings_env_argv, settings_from_namespace, settings_parser

logger = logging.getLogger("annotate")


def parse_args(argv: list[str] | None = None, environ: Mapping[str, str] = os.environ) -> AnnotationSettings:
    """The project's settings from ``--config``, then ``environ``, then ``argv`` (each wins over the one before);
    exits on ``--help`` or a bad value, before anything is created."""
    argv = sys.argv[1:] if argv is None else argv
    parser = settings_parser(
        AnnotationSettings,
        prog="python -m annotate",
        description="Review original/retouch pairs and publish the accepted ones to a Hub dataset.",
        epilog=f"Every setting can also be given as an environment variable {ENV_PREFIX}<NAME>, e.g. "
        f"{ENV_PREFIX}REVIEWERS='ana,ben'. --config gives defaults, the environment overrides them, "
        "flags override both.",
    )
    parser.add_argument("project", nargs="?", help="project folder (the same as --root)")
    parser.add_argument("--config", help="YAML file of settings (names as the flags, with underscores)")
    known, _ = parser.parse_known_args(argv)  # --config first: its values become the defaults
    if known.config:
        apply_settings_file(parser, known.config)
    namespace = parser.parse_args([*settings_env_argv(parser, ENV_PREFIX, environ), *argv])
    if namespace.project:
        namespace.root = namespace.project
    try:
        (settings,) = settings_from_namespace(namespace, AnnotationSettings)
    except ValueError as error:
        parser.error(str(error))
    return settings


def describe_mode(settings: AnnotationSettings, policy: ReviewerPolicy, root: str, address: str) -> str:
    """What is said at start: the mode, where it listens, who may do what."""
    if policy.hosted:
        who = "; ".join(
            f"{role}s: {', '.join(sorted(policy.members(role))) or f'nobody (set {ENV_PREFIX}{role.upper()}S)'}"
            for role in ROLES
        )
        mode = f"HOSTED mode: Hugging Face sign-in, every request checked on the server. {who}"
    else:
        allowed = ", ".join(sorted(policy.members("reviewer"))) or "any typed name"
        mode = f"LOCAL mode: reviewers type their name ({allowed}); listening on this machine only"
    sources = ", ".join(settings.source_folders) or "no server folder"
    publish = f"publishes to {settings.repo_id}" if settings.repo_id else "publishing off (no repo_id)"
    return f"annotation app on {address}, project {root}. {mode}. Ingest from uploads and {sources}; {publish}."


def main(argv: list[str] | None = None) -> None:
    """Parse, then build and launch the app on the project folder."""
    settings = parse_args(argv)
    try:
        hosted = hosted_mode(settings, os.environ)
    except ValueError as error:
        sys.exit(f"annotate: {error}")
    from annotate.app import build_demo, launch_options
    from authface_core.annotation.session import Workspace

    logging.basicConfig(format="%(message)s")  # libraries at WARNING; the app's own messages at INFO
    for name in ("annotate", "authface_core"):
        logging.getLogger(name).setLevel(logging.INFO)
    on_space = bool(os.environ.get(SPACE_ENV))
    workspace = Workspace.from_settings(settings)
    policy = ReviewerPolicy.from_settings(settings, hosted=hosted)
    options = launch_options(workspace, settings, policy, on_space=on_space)
    address = f"{options['server_name'] or os.environ.get('GRADIO_SERVER_NAME', '127.0.0.1')}:{settings.port}"
    logger.info(describe_mode(settings, policy, str(workspace.root), address))
    demo = build_demo(workspace, policy, settings)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # how a Space stops: clean up as for Ctrl+C
    try:
        demo.queue(default_concurrency_limit=4).launch(**options)
    finally:
        workspace.close()
