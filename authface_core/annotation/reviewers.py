"""Who may decide: an explicit allow-list of reviewers, Hub login on a Space, a name locally.

On a Space (``SPACE_ID`` is set) the reviewer is the logged-in Hugging Face user and must be on
the allow-list; membership of an organisation is not enough, and an empty allow-list lets nobody
in. Locally the reviewer types a name, checked against the allow-list when there is one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..errors import ReviewerNotAllowedError

# Environment variable holding the allow-list: names separated by commas or spaces.
REVIEWERS_ENV = "ANNOTATE_REVIEWERS"
# Hub user names are letters, digits, '-', '_' and '.'; local names may also hold spaces.
_NAME_PATTERN = re.compile(r"^[\w][\w .\-]{0,63}$")


@dataclass(frozen=True)
class ReviewerPolicy:
    """Who may review.

    Args:
        allowed: reviewer names (compared case-insensitively); empty allows any local name, and
            nobody when ``require_login``.
        require_login: reviewers must be logged in with Hugging Face (on a Space).
    """

    allowed: frozenset[str] = field(default_factory=frozenset)
    require_login: bool = False

    def __post_init__(self):
        object.__setattr__(self, "allowed", frozenset(name.strip().lower() for name in self.allowed if name.strip()))

    @classmethod
    def from_env(cls, environ=os.environ) -> ReviewerPolicy:
        """The policy of this process: allow-list from ``ANNOTATE_REVIEWERS``, login on a Space."""
        names = re.split(r"[,\s]+", environ.get(REVIEWERS_ENV, ""))
        return cls(allowed=frozenset(names), require_login=bool(environ.get("SPACE_ID")))


def resolve_reviewer(policy: ReviewerPolicy, *, hub_username: str | None = None, local_name: str | None = None) -> str:
    """The reviewer's name, or :class:`ReviewerNotAllowedError` saying what to do."""
    if policy.require_login:
        if not hub_username:
            raise ReviewerNotAllowedError("sign in with Hugging Face to review")
        if not policy.allowed:
            raise ReviewerNotAllowedError(
                f"no reviewer allow-list is configured: set {REVIEWERS_ENV} in the Space's settings"
            )
        name = hub_username
    else:
        name = (hub_username or local_name or "").strip()
        if not name:
            raise ReviewerNotAllowedError("type your name to start reviewing")
        if not _NAME_PATTERN.match(name):
            raise ReviewerNotAllowedError(f"{name!r} is not a usable name: letters, digits, space, '.', '-', '_'")
    if policy.allowed and name.lower() not in policy.allowed:
        raise ReviewerNotAllowedError(f"{name} is not on the reviewers' allow-list; ask the project lead")
    return name
