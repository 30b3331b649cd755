"""Who may do what: reviewers, adjudicators and admins, by allow-list, checked on every request.

Hosted (a Space): the person is the Hugging Face user signed in through the Space's OAuth, read by
the server from its own session (Gradio injects ``gr.OAuthProfile``), never a value the page sends;
a role whose allow-list is empty lets nobody in, and membership of an organisation is not enough.
Local: the person types a name (the app listens on 127.0.0.1 only); an empty allow-list lets any
name in.

Names are normalised once, here (Unicode NFKC, case folded, inner spaces collapsed), and stored
normalised, so "Ana", "ANA" and "ａｎａ" are one reviewer with one decision per pair.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ReviewerNotAllowedError
from .config import ENV_PREFIX, AnnotationSettings

# The roles a request can need, and what each allows.
ROLES = {
    "reviewer": "review pairs",
    "adjudicator": "settle disputed pairs",
    "admin": "ingest and publish",
}
# Any of the roles: the counters and the team table.
MEMBER = "member"
# Hub user names are letters, digits, '-', '_' and '.'; local names may also hold spaces.
_NAME_PATTERN = re.compile(r"^[\w][\w .\-]{0,63}$")


def normalise_name(name: str) -> str:
    """The one spelling of a person's name: NFKC, case folded, spaces trimmed and collapsed."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


@dataclass(frozen=True)
class ReviewerPolicy:
    """The allow-list of each role, and whether names come from the Hub sign-in.

    Args:
        hosted: people are the signed-in Hugging Face users (and an empty allow-list admits nobody).
        reviewers, adjudicators, admins: names of each role (normalised on creation).
    """

    hosted: bool = False
    reviewers: frozenset[str] = frozenset()
    adjudicators: frozenset[str] = frozenset()
    admins: frozenset[str] = frozenset()

    def __post_init__(self):
        for role in ROLES:
            names = getattr(self, f"{role}s")
            object.__setattr__(self, f"{role}s", frozenset(normalise_name(n) for n in names if n.strip()))

    @classmethod
    def from_settings(cls, settings: AnnotationSettings, *, hosted: bool) -> ReviewerPolicy:
        return cls(
            hosted=hosted,
            reviewers=frozenset(settings.reviewers),
            adjudicators=frozenset(settings.adjudicators),
            admins=frozenset(settings.admins),
        )

    def members(self, role: str) -> frozenset[str]:
        """The names allowed in ``role`` (``"member"``: in any role)."""
        if role == MEMBER:
            return self.reviewers | self.adjudicators | self.admins
        if role not in ROLES:
            raise ValueError(f"role must be one of {(*ROLES, MEMBER)}, got {role!r}")
        return getattr(self, f"{role}s")

    def roles_of(self, name: str) -> list[str]:
        """The roles ``name`` holds (locally, every role whose allow-list is empty)."""
        return [role for role in ROLES if self._admits(name, role)]

    def _admits(self, name: str, role: str) -> bool:
        allowed = self.members(role)
        return name in allowed if (allowed or self.hosted) else True

    def resolve(self, role: str, *, hub_username: str | None, local_name: str | None) -> str:
        """The normalised name of the person asking, if they hold ``role``; else
        :class:`ReviewerNotAllowedError` saying what to do. ``hub_username`` must come from the
        server's session (``gr.OAuthProfile``), never from the request's data."""
        if self.hosted:
            if not hub_username:
                raise ReviewerNotAllowedError("sign in with Hugging Face first")
            name = normalise_name(hub_username)
        else:
            name = normalise_name(local_name or "")
            if not name:
                raise ReviewerNotAllowedError("type your name first")
            if not _NAME_PATTERN.match(name):
                raise ReviewerNotAllowedError(f"{name!r} is not a usable name: letters, digits, space, '.', '-', '_'")
        self.require(name, role)
        return name

    def require(self, name: str, role: str) -> None:
        """Raise :class:`ReviewerNotAllowedError` unless ``name`` (normalised) holds ``role``."""
        if self._admits(name, role):
            return
        if not self.members(role):
            variables = _variables(ROLES if role == MEMBER else [role])
            raise ReviewerNotAllowedError(f"nobody may {_action(role)} yet: set {variables} in the app's settings")
        raise ReviewerNotAllowedError(f"{name} may not {_action(role)}: ask the project lead to add you")


def _action(role: str) -> str:
    return "use this project" if role == MEMBER else ROLES[role]


def _variables(roles: Iterable[str]) -> str:
    return " or ".join(f"{ENV_PREFIX}{role.upper()}S" for role in roles)
