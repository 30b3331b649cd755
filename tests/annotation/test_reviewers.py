"""Who may review: allow-list, Hub login on a Space, a typed name locally."""

from __future__ import annotations

import pytest

from authface_core.annotation.reviewers import ReviewerPolicy, resolve_reviewer
from authface_core.errors import ReviewerNotAllowedError


def test_local_names_and_allow_list():
    assert resolve_reviewer(ReviewerPolicy(), local_name="  Ana Lima ") == "Ana Lima"
    with pytest.raises(ReviewerNotAllowedError, match="type your name"):
        resolve_reviewer(ReviewerPolicy(), local_name=" ")
    with pytest.raises(ReviewerNotAllowedError, match="not a usable name"):
        resolve_reviewer(ReviewerPolicy(), local_name="<script>")
    team = ReviewerPolicy(allowed=frozenset({"Ana", "ben"}))
    assert resolve_reviewer(team, local_name="ana") == "ana"
    with pytest.raises(ReviewerNotAllowedError, match="cleo is not on the reviewers' allow-list"):
        resolve_reviewer(team, local_name="cleo")


def test_space_requires_login_and_an_explicit_allow_list():
    environ = {"SPACE_ID": "lab/annotate", "ANNOTATE_REVIEWERS": "ana, ben"}
    policy = ReviewerPolicy.from_env(environ)
    assert policy == ReviewerPolicy(allowed=frozenset({"ana", "ben"}), require_login=True)
    assert resolve_reviewer(policy, hub_username="ben", local_name="anyone") == "ben"
    with pytest.raises(ReviewerNotAllowedError, match="sign in"):
        resolve_reviewer(policy, local_name="ana")  # a typed name is not a login
    with pytest.raises(ReviewerNotAllowedError, match="allow-list"):
        resolve_reviewer(policy, hub_username="org-member")
    nobody = ReviewerPolicy.from_env({"SPACE_ID": "lab/annotate"})
    with pytest.raises(ReviewerNotAllowedError, match="no reviewer allow-list is configured"):
        resolve_reviewer(nobody, hub_username="ana")
