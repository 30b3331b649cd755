"""Publishing through huggingface_hub to a local stand-in of the Hub, read back with datasets."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from authface_core.annotation.publish import PublishConfig, group_into_shards, publish
from authface_core.annotation.store import Decision, ReviewStore
from authface_core.errors import PublishError

from .hub_standin import HubStandIn

REPO_ROOT = Path(__file__).resolve().parents[2]
REPO_ID = "photo-lab/authface-pairs"
TOKEN = "hf_standinSecretToken0123456789"
# about two of the real pairs (1-2 MB each) per shard, so a few pairs make several shards
SHARD_BYTES = 5_000_000


@pytest.fixture()
def hub_env(monkeypatch):
    """Point huggingface_hub at whatever stand-in the test starts: online, no Xet, a secret token."""
    import huggingface_hub.constants as constants

    def use(hub: HubStandIn) -> dict[str, str]:
        env = {"HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0", "HF_TOKEN": TOKEN}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        return env

    return use


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


def test_publish_appends_and_load_dataset_reads_it_back(tmp_path, real_pairs, hub_env, caplog):
    import datasets

    store = ReviewStore(tmp_path / "store.sqlite")
    store.add_pairs(real_pairs)
    ids = [pair.pair_id for pair in real_pairs]
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
    assert store.counters().published == 4

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
    by_id = {pair.pair_id: pair for pair in real_pairs}
    for row in loaded:
        pair = by_id[row["pair_id"]]
        assert row["original"]["bytes"] == Path(pair.original_path).read_bytes()
        assert row["retouched"]["bytes"] == Path(pair.retouched_path).read_bytes()
        assert row["original_sha256"] == pair.original_sha256
        assert row["original_width"] == pair.facts["original"]["width"]
        assert row["tags"] == ["lighting"] and row["caption"] == f"portrait {pair.pair_id[:4]}"
        assert row["reviewer"] in ("ana", "ben") and row["decided_at"].startswith("20")
    card = (repo / "README.md").read_text()
    assert "published pairs: 4" in card and "path: data/train-*.parquet" in card


def _published_state(hub: HubStandIn) -> dict[str, object]:
    """Repo files, with each shard as its table rows (what a reader sees)."""
    state = {}
    for path, data in hub.files(REPO_ID).items():
        if path.endswith(".parquet"):
            state[path] = pq.read_table(hub.repo_dir(REPO_ID) / path).to_pylist()
        else:
            state[path] = data
    return state


def test_publish_killed_half_way_resumes_to_the_same_state(tmp_path, real_pairs, hub_env):
    store = ReviewStore(tmp_path / "killed.sqlite")
    store.add_pairs(real_pairs)
    decide(store, {pair.pair_id: "accept" for pair in real_pairs[:6]})
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
def test_publish_errors_name_the_step_and_hide_the_token(tmp_path, real_pairs, hub_env, monkeypatch, token_source):
    import huggingface_hub.constants as constants

    store = ReviewStore(tmp_path / "store.sqlite")
    store.add_pairs(real_pairs[:1])
    decide(store, {real_pairs[0].pair_id: "accept"})
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
    assert store.counters().published == 0
