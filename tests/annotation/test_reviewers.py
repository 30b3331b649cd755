"""Who may do what: normalised names, roles by allow-list, hosted sign-in versus typed names."""

from __future__ import annotations

import pytest

from authface_core.annotation.config import AnnotationSettings
from authface_core.annotation.reviewers import MEMBER, ReviewerPolicy, normalise_name
from authface_core.errors import ReviewerNotAllowedError


def test_names_are_normalised_once_for_case_width_and_spaces():
    assert normalise_name("  Ana   Lima ") == "ana lima"
    assert normalise_name("ANA") == normalise_name("ａｎａ") == normalise_name("Ana") == "ana"  # NFKC: full width
    assert normalise_name("STRASSE") == normalise_name("straße")  # casefold, not lower
    policy = ReviewerPolicy(reviewers=frozenset({"Ana", " BEN "}))
    assert policy.reviewers == {"ana", "ben"}


def test_local_names_and_allow_list():
    anyone = ReviewerPolicy()
    assert anyone.resolve("reviewer", hub_username=None, local_name="  Ana Lima ") == "ana lima"
    assert anyone.resolve("admin", hub_username=None, local_name="ana") == "ana"  # locally, empty lists admit
    with pytest.raises(ReviewerNotAllowedError, match="type your name"):
        anyone.resolve("reviewer", hub_username=None, local_name=" ")
    with pytest.raises(ReviewerNotAllowedError, match="not a usable name"):
        anyone.resolve("reviewer", hub_username=None, local_name="<script>")
    team = ReviewerPolicy(reviewers=frozenset({"Ana", "ben"}), admins=frozenset({"lead"}))
    assert team.resolve("reviewer", hub_username=None, local_name="ANA") == "ana"
    with pytest.raises(ReviewerNotAllowedError, match="cleo may not review pairs"):
        team.resolve("reviewer", hub_username=None, local_name="cleo")
    with pytest.raises(ReviewerNotAllowedError, match="ana may not ingest and publish"):
        team.resolve("admin", hub_username=None, local_name="ana")


def test_hosted_mode_takes_the_sign_in_only_and_empty_lists_admit_nobody():
    settings = AnnotationSettings(reviewers=["ana", "Ben"], adjudicators=["cleo"])
    policy = ReviewerPolicy.from_settings(settings, hosted=True)
    assert policy.resolve("reviewer", hub_username="BEN", local_name="anyone") == "ben"
    with pytest.raises(ReviewerNotAllowedError, match="sign in with Hugging Face"):
        policy.resolve("reviewer", hub_username=None, local_name="ana")  # a typed name is not a sign-in
    with pytest.raises(ReviewerNotAllowedError, match="org-member may not review pairs"):
        policy.resolve("reviewer", hub_username="org-member", local_name="")
    with pytest.raises(ReviewerNotAllowedError, match="ana may not settle disputed pairs"):
        policy.resolve("adjudicator", hub_username="ana", local_name="")
    with pytest.raises(ReviewerNotAllowedError, match="nobody may ingest and publish yet: set ANNOTATE_ADMINS"):
        policy.resolve("admin", hub_username="ana", local_name="")
    assert policy.resolve(MEMBER, hub_username="cleo", local_name="") == "cleo"
    assert policy.roles_of("cleo") == ["adjudicator"]
    nobody = ReviewerPolicy(hosted=True)
    with pytest.raises(ReviewerNotAllowedError, match="nobody may use this project yet: set ANNOTATE_REVIEWERS"):
        nobody.resolve(MEMBER, hub_username="ana", local_name="")
