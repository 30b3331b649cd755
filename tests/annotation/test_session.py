"""The workflow behind the review screen, on real photos: open, decide, undo, counters, facts."""

from __future__ import annotations

import pytest

from authface_core.annotation.publish import PublishResult
from authface_core.annotation.session import (
    Workspace,
    facts_markdown,
    ingest_report_markdown,
    publish_report_markdown,
)
from authface_core.errors import DecisionRefusedError

from .conftest import make_pairs_folder


@pytest.fixture()
def workspace(shared_faces, tmp_path):
    make_pairs_folder(shared_faces, tmp_path / "shoot", photos=("gpen_ffhq_00006.png", "ddnm_00258.png"))
    workspace = Workspace(tmp_path / "project", prefetch=False)
    workspace.report, _ = workspace.ingest(tmp_path / "shoot")
    yield workspace
    workspace.close()


def test_open_decide_undo_and_counters(workspace):
    view = workspace.open_next("ana")
    assert view.original_preview.is_file() and view.retouched_preview.is_file()
    assert "| Format | PNG (RGB) |" in view.facts_markdown
    assert "To review** 2" in workspace.counters_markdown()
    workspace.decide("ana", view.pair_id, "accept", tags=["makeup"], caption=" studio portrait ")
    assert "Accepted** 1" in workspace.counters_markdown("ana")
    assert "**ana**: 1 decided" in workspace.counters_markdown("ana")
    with pytest.raises(DecisionRefusedError):
        workspace.decide("ana", view.pair_id, "reject")
    undone = workspace.undo("ana")
    assert undone.decision.caption == "studio portrait" and undone.decision.tags == ("makeup",)
    assert workspace.reviewer_table() == []  # an undone decision no longer counts
    assert workspace.open_next("ana").pair_id == view.pair_id
    workspace.decide("ana", view.pair_id, "reject")
    assert workspace.reviewer_table() == [["ana", 0, 1, 0, "–"]]


def test_empty_screen_says_why(workspace):
    first, second = workspace.open_next("ana"), workspace.open_next("ben")
    assert workspace.open_next("cleo") is None
    assert workspace.queue_status("cleo").startswith("2 pair(s) of the review queue are open")
    workspace.decide("ana", first.pair_id, "accept")
    workspace.decide("ben", second.pair_id, "reject")
    assert workspace.queue_status("cleo") == "Nothing left in the review queue for cleo."


def test_reports_read_well(workspace):
    text = ingest_report_markdown(workspace.report, 2)
    assert text.startswith("**2 pairs found, 2 new.**")
    assert facts_markdown({}) == "_No facts recorded for this pair._"
    result = PublishResult(uploaded=["data/train-00001.parquet"], already_there=[], published_pairs=7)
    assert publish_report_markdown(result) == (
        "Uploaded 1 new shard(s); 0 found already there; 7 pairs published in total."
    )


def test_workspace_from_the_environment(tmp_path):
    environ = {"ANNOTATE_ROOT": str(tmp_path / "space-data"), "ANNOTATE_OVERLAP": "2"}
    workspace = Workspace.from_env(environ=environ)
    assert workspace.root == tmp_path / "space-data" and workspace.store.overlap == 2
    workspace.close()
    workspace = Workspace.from_env(tmp_path / "given", environ=environ)  # the command line's folder wins
    assert workspace.root == tmp_path / "given"
    workspace.close()
    with pytest.raises(ValueError, match="ANNOTATE_OVERLAP must be a whole number.*'two'"):
        Workspace.from_env(tmp_path, environ={"ANNOTATE_OVERLAP": "two"})


def test_uploaded_files_are_copied_byte_for_byte_and_ingested(workspace, tmp_path):
    shoot = tmp_path / "shoot"
    uploads = [shoot / "ddnm_00258.png", shoot / "ddnm_00258_retouched.tif"]
    report, added = workspace.ingest_uploads(uploads)
    assert added == 0  # the same two files as an ingested pair: the same pair id
    copied = workspace.root / "uploads"
    assert sorted(path.name for path in copied.iterdir()) == ["ddnm_00258.png", "ddnm_00258_retouched.tif"]
    assert all((copied / path.name).read_bytes() == path.read_bytes() for path in uploads)
    assert [pair.retouched_path for pair in report.pairs] == [str(copied / "ddnm_00258_retouched.tif")]
