"""The workflow behind the review screen: open, decide, undo, change, counters, facts, uploads, sources, tiles."""

from __future__ import annotations

import pytest

from authface_core.annotation.ingest import sha256_file
from authface_core.annotation.publish import PublishResult
from authface_core.annotation.session import (
    Workspace,
    facts_markdown,
    ingest_report_markdown,
    publish_report_markdown,
)
from authface_core.errors import DecisionRefusedError, PairingError

from .conftest import make_pairs_folder, photo, retouch


@pytest.fixture()
def workspace(tmp_path):
    make_pairs_folder(tmp_path / "shoot", photos=("astronaut.png", "coffee.png"))
    workspace = Workspace(tmp_path / "project", source_folders=[str(tmp_path / "shoot")], prefetch=False)
    workspace.report, _ = workspace.ingest(str(tmp_path / "shoot"))
    yield workspace
    workspace.close()


def test_open_decide_undo_and_counters(workspace):
    view = workspace.open_next("ana")
    assert all(workspace.cache.tiles.has(key) for key, _ in view.tiles.sides.values())
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


def test_the_viewer_gets_tiles_and_the_regions_of_every_face(workspace):
    view = workspace.open_next("ana")
    spec = view.viewer_spec("annotate-tiles/TOKEN/")
    assert set(spec["sides"]) == {"original", "retouched", "difference"} and spec["geometry"] == "same"
    assert spec["sides"]["original"]["width"] == 512 and spec["names"][0].endswith(".png")
    regions = workspace.regions("ana", view.pair_id)
    assert regions.problem is None and regions.faces  # the astronaut's face (and the patch dlib takes for one)
    assert all(set(face) <= {"eyes", "mouth", "left_cheek", "right_cheek", "forehead"} for face in regions.faces)
    with pytest.raises(DecisionRefusedError, match="not open on ben's screen"):
        workspace.regions("ben", view.pair_id)  # regions only of the pair on one's own screen


def test_the_spec_names_the_next_pairs_tiles_once_they_are_made(workspace):
    first = workspace.open_next("ana")
    assert first.viewer_spec("base/")["next"] == []  # no background thread here: not made yet
    (upcoming,) = workspace.store.upcoming("ana", 1)
    workspace.cache.pair_tiles(workspace.store.pair(upcoming))
    again = workspace.open_next("ana")  # the same pair, as a reloaded page gets it
    assert again.pair_id == first.pair_id
    (ahead,) = again.viewer_spec("base/")["next"]
    assert ahead["original"]["key"] == workspace.store.pair(upcoming).original_sha256


def test_a_decision_changed_from_the_filmstrip_is_a_new_event(workspace):
    first = workspace.open_next("ana")
    workspace.decide("ana", first.pair_id, "accept", tags=["lighting"], caption="window light")
    second = workspace.open_next("ana")
    workspace.decide("ana", second.pair_id, "reject", reasons=["halo", "plastic skin"])
    history = workspace.history("ana")
    assert [(item.pair_id, item.verdict, item.reasons) for item in history] == [
        (second.pair_id, "reject", ("plastic skin", "halo")),
        (first.pair_id, "accept", ()),
    ]
    changed = workspace.change("ana", history[1].decision_id, "reject", reasons=["cloning"])
    assert (changed.decision.caption, changed.decision.tags) == ("window light", ("lighting",))  # kept
    everything = workspace.store.decisions(include_undone=True)
    assert [(d.decision.verdict, d.undone_at is not None) for d in everything] == [
        ("accept", True),
        ("reject", False),
        ("reject", False),
    ]  # the old decision is stamped, never rewritten
    assert workspace.store.pair_states()[first.pair_id] == "rejected"
    with pytest.raises(DecisionRefusedError, match="no active decision"):
        workspace.change("ben", history[0].decision_id, "accept")  # only one's own decisions


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
    result = PublishResult(
        "lab/pairs", uploaded=["data/train-00001.parquet"], published_pairs=7, refused=[("ab12", "x.tif changed")]
    )
    assert publish_report_markdown(result) == (
        "**lab/pairs**: uploaded 1 new shard(s); 0 found already there; 7 pairs published in total.\n"
        "\n**Not published: files changed since review** (1)\n- pair ab12: x.tif changed"
    )


def test_only_configured_source_folders_are_ingested(workspace, tmp_path):
    make_pairs_folder(tmp_path / "elsewhere", photos=("chelsea.png",))
    for named in (str(tmp_path / "elsewhere"), "/etc", "../shoot", str(tmp_path)):
        with pytest.raises(PairingError, match="is not one of this project's source folders"):
            workspace.ingest(named)
    assert workspace.store.counters().total == 2


def test_uploads_never_overwrite_and_never_pair_across_uploads(workspace, tmp_path):
    """Issue 10: uploads overwrote uploads/<name>, and a new original was paired with an older, unrelated retouch."""
    first_batch = tmp_path / "first"
    make_pairs_folder(first_batch, photos=("chelsea.png",))
    report, added = workspace.ingest_uploads(sorted(first_batch.iterdir()))
    assert added == 1
    old_files = {path: sha256_file(path) for path in (workspace.root / "uploads").rglob("*") if path.is_file()}
    # the photographer uploads a new, different chelsea.png alone
    second_batch = tmp_path / "second"
    second_batch.mkdir()
    retouch(retouch(photo("chelsea"))).save(second_batch / "chelsea.png")
    report, added = workspace.ingest_uploads([second_batch / "chelsea.png"])
    assert added == 0 and report.pairs == []
    assert [path.rsplit("/", 1)[-1] for path in report.unmatched] == ["chelsea.png"]  # listed, not paired
    assert {path: sha256_file(path) for path in old_files} == old_files  # the first upload untouched
    uploads = sorted(
        p.relative_to(workspace.root / "uploads").parts for p in (workspace.root / "uploads").rglob("*.png")
    )
    assert len(uploads) == 2 and uploads[0][0] != uploads[1][0]  # one folder per upload
    # the same files uploaded again: the same folder, nothing copied twice, the same pair
    report, added = workspace.ingest_uploads(sorted(first_batch.iterdir()))
    assert added == 0 and len(report.pairs) == 1
    assert len(list((workspace.root / "uploads").rglob("*.*"))) == 3


def test_two_files_of_one_upload_with_the_same_name_both_kept(workspace, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    photo("coffee").save(tmp_path / "a" / "x.png")
    photo("rocket").save(tmp_path / "b" / "x.png")
    report, _ = workspace.ingest_uploads([tmp_path / "a" / "x.png", tmp_path / "b" / "x.png"])
    kept = sorted(p.name for p in (workspace.root / "uploads").rglob("*.png"))
    assert kept == ["x (2).png", "x.png"]
    assert sorted(path.rsplit("/", 1)[-1] for path in report.unmatched) == kept


def test_workspace_from_settings(tmp_path):
    from authface_core.annotation.config import AnnotationSettings

    settings = AnnotationSettings(
        root=str(tmp_path / "space-data"), overlap=2, lock_seconds=120, repo_id="lab/pairs", max_pixels=2_000_000
    )
    workspace = Workspace.from_settings(settings, prefetch=False)
    assert workspace.root == tmp_path / "space-data" and workspace.store.overlap == 2
    assert workspace.cache.max_pixels == 2_000_000
    assert workspace.store.lock_seconds == 120 and workspace.repo_id == "lab/pairs"
    workspace.close()
