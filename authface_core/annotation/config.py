"""The settings of one annotation project: one frozen dataclass, the only description of them.

``python -m annotate --help`` prints these fields. ``--config FILE`` (YAML) sets them, ``ANNOTATE_<NAME>``
environment variables (a Space's variables and secrets) override the file, flags override both.

Two modes, stated when the app starts:

- **local**: the app listens on 127.0.0.1 only and reviewers type their name (a trusted machine);
- **hf** (hosted): every request is checked on the server against the Hugging Face user signed in
  through the Space's OAuth, and that user must be on the allow-list of the role the request needs.

``auto`` picks ``hf`` on a Space (``SPACE_ID`` is set) and ``local`` elsewhere; ``local`` on a Space
is refused, since a Space is reachable by anyone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from ..hub import check_repo_id
from ..settings import Range, check_settings, setting

# How the app learns who is asking (see the module docstring).
AUTH_MODES = ("auto", "local", "hf")
# Environment variables that set a setting: ANNOTATE_ plus its name in capitals (ANNOTATE_OVERLAP).
ENV_PREFIX = "ANNOTATE_"
# Set by the Hub in every Space.
SPACE_ENV = "SPACE_ID"
# Hub repo ids: namespace/name, letters, digits, '-', '_', '.' (huggingface_hub's validate_repo_id rule).
# A licence id as the Hub lists them (apache-2.0, cc-by-nc-4.0, other): one token, no YAML syntax.
# The default pixel limit: admits a 100 MP medium-format file (11648x8736 = 101.8 MP) with room to spare.
DEFAULT_MAX_PIXELS = 120_000_000
_LICENSE_ID = re.compile(r"^[a-z0-9][a-z0-9.+\-]{0,63}$")


@dataclass(frozen=True)
class AnnotationSettings:
    """Everything an annotation project is configured with; validated on creation."""

    root: str = setting(
        "annotation-project",
        "project folder: review.sqlite (the decisions), previews/, uploads/; created on first use",
    )
    auth: Literal[AUTH_MODES] = setting(
        "auto",
        "local: listen on 127.0.0.1 only, reviewers type their name; hf: Hugging Face sign-in, every request "
        "checked on the server against the allow-lists; auto: hf on a Space, local elsewhere",
    )
    port: Annotated[int, Range(1, 65535)] = setting(7860, "port to serve on")
    reviewers: list[str] = setting(
        help="Hub user names (local mode: names) who may review; hosted mode lets nobody in when empty",
        default_factory=list,
    )
    adjudicators: list[str] = setting(
        help="who may settle disputed pairs (never their own); hosted mode: nobody when empty",
        default_factory=list,
    )
    admins: list[str] = setting(help="who may ingest and publish; hosted mode: nobody when empty", default_factory=list)
    overlap: Annotated[int, Range(1, 10)] = setting(
        1, "agreeing review decisions a pair needs; disagreements go to the adjudication queue"
    )
    lock_seconds: Annotated[float, Range(30, 86400)] = setting(
        600.0,
        "how long an open pair stays reserved for its reviewer after the page last renewed it (an open page "
        "renews it every third of this time)",
    )
    source_folders: list[str] = setting(
        help="folders on the server the Ingest tab may read pairs from, besides uploads", default_factory=list
    )
    repo_id: str | None = setting(
        None, "the Hub dataset repo (namespace/name) accepted pairs are published to; none: publishing is off"
    )
    private: bool = setting(True, "create the dataset repo private (when it does not exist yet)")
    license: str = setting("other", "licence id written in the dataset card, e.g. cc-by-nc-4.0")
    max_pixels: Annotated[int, Range(1_000_000, 1_000_000_000)] = setting(
        DEFAULT_MAX_PIXELS,
        "largest image ingest and review read, in pixels (a 100 MP camera file is ~102 million); larger files "
        "are listed as refused",
    )
    publish_notes: bool = setting(
        False, "publish the reviewers' notes for the team as a column; by default they stay in the project"
    )

    def __post_init__(self):
        check_settings(self)
        if not self.root.strip():
            raise ValueError("root must name a project folder, got an empty string")
        if self.repo_id is not None:
            check_repo_id(self.repo_id)
        check_license_id(self.license)


def check_license_id(license_id: str) -> None:
    """Refuse (``ValueError``) anything but a licence id: one token, nothing a YAML card would read as syntax."""
    if not _LICENSE_ID.match(license_id):
        raise ValueError(f"license must be a licence id such as cc-by-nc-4.0 or other, got {license_id!r}")


def hosted_mode(settings: AnnotationSettings, environ: Mapping[str, str]) -> bool:
    """Whether requests are checked against the Hugging Face sign-in (see the module docstring)."""
    on_space = bool(environ.get(SPACE_ENV))
    if settings.auth == "local" and on_space:
        raise ValueError(
            "auth 'local' trusts typed names, and a Space is reachable by anyone: use auth 'hf' (or 'auto') on a Space"
        )
    return settings.auth == "hf" or (settings.auth == "auto" and on_space)
