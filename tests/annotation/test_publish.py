"""Publishing through huggingface_hub to a local stand-in of the Hub, read back with datasets."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from authface_core.annotation.publish import PublishConfig, group_into_shards, publish
from authface_core.annotation.store import Decision, ReviewStore
from authface_core.errors import PublishError

from .hub_standin import HubStandIn, use_standin

REPO_ROOT = Path(__file__).resolve().parents[2]
REPO_ID = "photo-lab/authface-pairs"
TOKEN = "hf_standinSecretToken0123456789"
# one to three of the test pairs (0.3-2 MB each) per shard, so six pairs make four shards
SHARD_BYTES = 2_000_000


@pytest.fixture()
def hub_env(monkeypatch):
    """Point huggingface_hub at whatever stand-in the test starts: online, no Xet, a secret token."""
    return lambda hub: use_standin(monkeypatch, hub, TOKEN)


def decide(store: ReviewStore, verdicts: dict[str, str], reviewer: str = "ana") -> None:
    for pair_id, verdict in verdicts.items():
        store.record(
            Decision(
                pair_id=pair_id,
                reviewer=reviewer,
                verdict=verdict,
                tags=("lighting",),
                caption=f"portrait {pair_id[:4]}",
                note="ok" if verdict == "accept" else "halo",
            )
        )


def test_group_into_shards_bounds_size():
    assert group_into_shards([("a", 3), ("b", 3), ("c", 9), ("d", 1)], 6) == [["a", "b"], ["c"], ["d"]]
    assert group_into_shards([], 6) == []


def test_publish_appends_and_load_dataset_reads_it_back(tmp_path, pairs, hub_env, caplog):
    import datasets

    store = ReviewStore(tmp_path / "store.sqlite")
    store.add_pairs(pairs)
    ids = [pair.pair_id for pair in pairs]
    decide(store, {ids[0]: "accept", ids[1]: "reject", ids[2]: "accept", ids[3]: "accept"})
    config = PublishConfig(repo_id=REPO_ID, max_shard_bytes=SHARD_BYTES, rows_per_group=1)
    caplog.set_level(logging.DEBUG)
    with HubStandIn(tmp_path / "hub") as hub:
        hub_env(hub)
        first = publish(store, config)
        assert first.uploaded and first.published_pairs == 3
        uploads_before = len(hub.lfs_uploads)
        decide(store, {ids[4]: "accept", ids[5]: "reject"}, reviewer="ben")
        second = publish(store, config)
        repo = hub.repo_dir(REPO_ID)
        commits = list(hub.commits)
    assert TOKEN not in caplog.text

    # the second publish uploaded only the new shard, and nothing already published
    assert len(second.uploaded) == 1 and second.uploaded[0] not in first.uploaded
    assert len(hub.lfs_uploads) == uploads_before + 1
    parquet_commits = [paths for _, paths in commits if any(p.endswith(".parquet") for p in paths)]
    assert [p for paths in parquet_commits for p in paths] == first.uploaded + second.uploaded
    assert store.counters(REPO_ID).published == 4

    # bounded shards and row groups
    for shard in sorted(repo.glob("data/*.parquet")):
        metadata = pq.ParquetFile(shard).metadata
        assert all(metadata.row_group(i).num_rows <= 1 for i in range(metadata.num_row_groups))

    # datasets reads the repo as published: the card's config, every accepted pair, bytes untouched
    loaded = datasets.load_dataset(str(repo), split="train", cache_dir=str(tmp_path / "hf-cache"))
    loaded = loaded.cast_column("original", datasets.Image(decode=False)).cast_column(
        "retouched", datasets.Image(decode=False)
    )
    accepted = {pair_id for pair_id, state in store.pair_states().items() if state == "accepted"}
    assert sorted(loaded["pair_id"]) == sorted(accepted)
    by_id = {pair.pair_id: pair for pair in pairs}
    for row in loaded:
        pair = by_id[row["pair_id"]]
        assert row["original"]["bytes"] == Path(pair.original_path).read_bytes()
        assert row["retouched"]["bytes"] == Path(pair.retouched_path).read_bytes()
        assert row["original_sha256"] == pair.original_sha256
        assert row["original_width"] == pair.facts["original"]["width"]
        assert row["tags"] == ["lighting"] and row["caption"] == f"portrait {pair.pair_id[:4]}"
        assert row["reject_reasons"] == []  # nobody rejected these
        assert row["reviewer"] in ("ana", "ben") and row["decided_at"].startswith("20")
    card = (repo / "README.md").read_text()
    assert "published pairs: 4" in card and "path: data/train-*.parquet" in card
    assert "note" not in loaded.column_names  # the team's notes stay in the project by default


def _published_state(hub: HubStandIn) -> dict[str, object]:
    """Repo files, with each shard as its table rows (what a reader sees)."""
    state = {}
    for path, data in hub.files(REPO_ID).items():
        if path.endswith(".parquet"):
            state[path] = pq.read_table(hub.repo_dir(REPO_ID) / path).to_pylist()
        else:
            state[path] = data
    return state


def test_publish_killed_half_way_resumes_to_the_same_state(tmp_path, pairs, hub_env):
    store = ReviewStore(tmp_path / "killed.sqlite")
    store.add_pairs(pairs)
    decide(store, {pair.pair_id: "accept" for pair in pairs[:6]})
    reference_path = tmp_path / "reference.sqlite"
    with sqlite3.connect(store.path) as source, sqlite3.connect(reference_path) as copy:
        source.backup(copy)  # the same decisions, for an uninterrupted publish

    with HubStandIn(tmp_path / "hub-reference") as hub:
        hub_env(hub)
        publish(
            ReviewStore(reference_path), PublishConfig(repo_id=REPO_ID, max_shard_bytes=SHARD_BYTES, rows_per_group=1)
        )
        expected = _published_state(hub)
    assert sum(path.endswith(".parquet") for path in expected) >= 3

    child: list[subprocess.Popen] = []

    def kill_at_second_shard(repo_id, paths):
        shards = [p for _, ps in hub.commits for p in ps if p.endswith(".parquet")]
        if len(shards) == 2:  # the commit is applied, the publisher dies before hearing back
            os.kill(child[0].pid, signal.SIGKILL)
            child[0].wait(timeout=30)

    with HubStandIn(tmp_path / "hub", on_commit=kill_at_second_shard) as hub:
        env = {**os.environ, **hub_env(hub)}
        child.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.annotation.publish_worker", str(store.path), REPO_ID, str(SHARD_BYTES)],
                cwd=REPO_ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        assert child[0].wait(timeout=120) == -signal.SIGKILL
        assert "README.md" not in hub.files(REPO_ID)  # really killed half-way
        hub.on_commit = None
        resumed = publish(
            ReviewStore(store.path), PublishConfig(repo_id=REPO_ID, max_shard_bytes=SHARD_BYTES, rows_per_group=1)
        )
        assert len(resumed.already_there) == 1  # the shard committed just before the kill
        assert _published_state(hub) == expected
        shard_commits = [p for _, ps in hub.commits for p in ps if p.endswith(".parquet")]
        assert len(shard_commits) == len(set(shard_commits))  # no shard uploaded twice


@pytest.mark.parametrize("token_source", ["HF_TOKEN", "saved login"])
def test_publish_errors_name_the_step_and_hide_the_token(tmp_path, pairs, hub_env, monkeypatch, token_source):
    import huggingface_hub.constants as constants

    store = ReviewStore(tmp_path / "store.sqlite")
    store.add_pairs(pairs[:1])
    decide(store, {pairs[0].pair_id: "accept"})
    with HubStandIn(tmp_path / "hub") as hub:
        hub_env(hub)
        if token_source == "saved login":  # what `hf auth login` leaves behind
            monkeypatch.delenv("HF_TOKEN")
            (tmp_path / "token").write_text(TOKEN)
            monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "token"))
        hub.server.RequestHandlerClass.do_PUT = lambda handler: handler._reply(403, {"error": f"bad token {TOKEN}"})
        with pytest.raises(PublishError, match="uploading data/train-00000.parquet") as raised:
            publish(store, PublishConfig(repo_id=REPO_ID))
    assert TOKEN not in str(raised.value)
    assert store.counters(REPO_ID).published == 0


def test_each_repo_has_its_own_bookkeeping(tmp_path, pairs, hub_env):
    """Issue 10: after a publish to a mistyped repo, the right repo got "0 new shards" and a card that lied."""
    store = ReviewStore(tmp_path / "store.sqlite")
    store.add_pairs(pairs)
    decide(store, {pair.pair_id: "accept" for pair in pairs[:3]})
    mistyped, right = "photo-lab/authface-pairz", REPO_ID
    with HubStandIn(tmp_path / "hub") as hub:
        hub_env(hub)
        publish(store, PublishConfig(repo_id=mistyped, max_shard_bytes=SHARD_BYTES))
        result = publish(store, PublishConfig(repo_id=right, max_shard_bytes=SHARD_BYTES))
        card = hub.files(right)["README.md"].decode()
        rows = sorted(
            row
            for path in hub.files(right)
            if path.endswith(".parquet")
            for row in pq.read_table(hub.repo_dir(right) / path, columns=["pair_id"]).column(0).to_pylist()
        )
    assert result.uploaded and result.published_pairs == 3
    assert rows == sorted(pair.pair_id for pair in pairs[:3])
    assert "published pairs: 3" in card
    assert store.counters(right).published == store.counters(mistyped).published == 3


def test_a_file_changed_after_review_is_refused_and_reported(tmp_path, pairs, hub_env, clean_pairs_folder):
    """Issue 10: a retouch replaced on disk after its acceptance was published under the reviewed SHA-256."""
    folder = tmp_path / "shoot"
    shutil.copytree(clean_pairs_folder, folder)
    local = [
        replace(
            pair,
            original_path=str(folder / Path(pair.original_path).name),
            retouched_path=str(folder / Path(pair.retouched_path).name),
        )
        for pair in pairs[:3]
    ]
    store = ReviewStore(tmp_path / "store.sqlite")
    store.add_pairs(local)
    decide(store, {pair.pair_id: "accept" for pair in local})
    changed = local[1]
    Image.new("RGB", (32, 32), "white").save(changed.retouched_path)  # replaced after its acceptance
    config = PublishConfig(repo_id=REPO_ID, max_shard_bytes=SHARD_BYTES)
    with HubStandIn(tmp_path / "hub") as hub:
        hub_env(hub)
        first = publish(store, config)
        again = publish(store, config)
        published = {
            row["pair_id"]: row
            for path in hub.files(REPO_ID)
            if path.endswith(".parquet")
            for row in pq.read_table(hub.repo_dir(REPO_ID) / path).to_pylist()
        }
        commits = len(hub.commits)
    assert sorted(published) == sorted(pair.pair_id for pair in local if pair is not changed)
    for pair in local:
        if pair is not changed:
            assert published[pair.pair_id]["retouched"]["bytes"] == Path(pair.retouched_path).read_bytes()
    name = Path(changed.retouched_path).name
    assert first.refused == [(changed.pair_id, f"{name} changed on disk since it was reviewed (its SHA-256 differs)")]
    assert again.refused == first.refused and again.uploaded == []  # reported again, nothing uploaded
    assert commits == len(first.uploaded) + 1  # the shards and the card once: the second card is the same
    assert store.counters(REPO_ID).published == 2 and store.pair_states()[changed.pair_id] == "accepted"


def test_the_card_is_made_by_huggingface_hub_and_notes_are_published_only_when_asked(tmp_path, pairs, hub_env):
    from huggingface_hub import DatasetCard

    store = ReviewStore(tmp_path / "store.sqlite")
    store.add_pairs(pairs[:1])
    decide(store, {pairs[0].pair_id: "accept"})
    config = PublishConfig(repo_id=REPO_ID, license="cc-by-nc-4.0", publish_notes=True)
    with HubStandIn(tmp_path / "hub") as hub:
        hub_env(hub)
        publish(store, config)
        card = DatasetCard(hub.files(REPO_ID)["README.md"].decode())
        shard = next(path for path in hub.files(REPO_ID) if path.endswith(".parquet"))
        notes = pq.read_table(hub.repo_dir(REPO_ID) / shard).column("note").to_pylist()
    assert card.data.license == "cc-by-nc-4.0"
    assert card.data.configs == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}
    ]
    assert notes == ["ok"]
    # a licence is one id: YAML that a user might type is refused before any card is written
    for typed in ("mit\nprivate: false", "cc-by: 4.0", "MIT License"):
        with pytest.raises(ValueError, match="license must be a licence id"):
            PublishConfig(repo_id=REPO_ID, license=typed)
