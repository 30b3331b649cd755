"""Publish accepted pairs to a Hugging Face dataset repo as Parquet shards, incrementally.

``datasets``' own ``push_to_hub`` rewrites a split; here each publish appends new shards only:
``data/train-00000.parquet``, ``data/train-00001.parquet``... A published shard is never
re-uploaded. The images are the untouched original and retouched files, stored as
``datasets.Image`` structs ``{bytes, path}``, so ``load_dataset`` returns them byte for byte.

Bounded memory: a shard holds at most ``max_shard_bytes`` of image files (a pair larger than that
gets a shard of its own) and is written ``rows_per_group`` rows at a time, which is also its
Parquet row-group size, so neither the writer nor a reader ever holds more than a few 8K pairs.

Idempotent resume: the shards to upload (path and pair ids) are recorded in the store before any
upload. A rerun after a crash first uploads what was planned and is missing from the repo,
marks what the repo already has, then plans the newly accepted pairs, and finally rewrites the
dataset card, so an interrupted publish ends in the same repo state as an uninterrupted one.

The token comes from the caller, ``HF_TOKEN`` or the saved login (huggingface_hub's own lookup,
``get_token``); it is never logged, and is scrubbed from any error message, wherever it came from.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..errors import PublishError
from .store import ReviewStore

logger = logging.getLogger(__name__)

SHARD_PATTERN = "data/train-{index:05d}.parquet"
# Shards are written here, next to the store, one temporary folder per shard.
STAGING_FOLDER = "publish-staging"
# 1 GiB of images per shard: the size the Hub's dataset viewer and `datasets` handle well.
DEFAULT_MAX_SHARD_BYTES = 1 << 30
# Four pairs per row group: an 8K pair is ~100-400 MB, so a reader decoding one group holds < 2 GB.
DEFAULT_ROWS_PER_GROUP = 4


@dataclass(frozen=True)
class PublishConfig:
    """Where and how to publish.

    Args:
        repo_id: the dataset repo, ``"namespace/name"``.
        max_shard_bytes: upper bound of image bytes per shard (a single larger pair is alone).
        rows_per_group: Parquet row-group size (rows written and read together).
        private: create the repo private (only when it does not exist yet).
        license: the licence id written in the card, e.g. ``"cc-by-nc-4.0"``.
        endpoint: Hub URL; None uses ``HF_ENDPOINT`` or huggingface.co.
        guidelines: the review guidelines, copied into the card's review protocol.
    """

    repo_id: str
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES
    rows_per_group: int = DEFAULT_ROWS_PER_GROUP
    private: bool = True
    license: str = "other"
    endpoint: str | None = None
    guidelines: str = ""

    def __post_init__(self):
        if self.repo_id.count("/") != 1 or not all(self.repo_id.split("/")):
            raise ValueError(f"repo_id must be 'namespace/name', got {self.repo_id!r}")
        if self.max_shard_bytes <= 0:
            raise ValueError(f"max_shard_bytes must be positive, got {self.max_shard_bytes}")
        if self.rows_per_group < 1:
            raise ValueError(f"rows_per_group must be at least 1, got {self.rows_per_group}")


@dataclass(frozen=True)
class PublishResult:
    """What one publish did."""

    uploaded: list[str] = field(default_factory=list)  # shard paths uploaded now
    already_there: list[str] = field(default_factory=list)  # planned shards the repo had (a resumed run)
    published_pairs: int = 0  # total pairs in the repo after this run


def dataset_features():
    """The ``datasets.Features`` of a published row (``datasets`` imported only when publishing)."""
    import datasets

    string, integer = datasets.Value("string"), datasets.Value("int64")
    return datasets.Features(
        {
            "pair_id": string,
            "original": datasets.Image(),
            "retouched": datasets.Image(),
            "original_sha256": string,
            "retouched_sha256": string,
            "original_width": integer,
            "original_height": integer,
            "retouched_width": integer,
            "retouched_height": integer,
            "original_format": string,
            "retouched_format": string,
            "reviewer": string,
            "reviewers": datasets.List(string),
            "decided_at": string,
            "tags": datasets.List(string),
            "caption": string,
            "note": string,
        }
    )


def group_into_shards(sizes: list[tuple[str, int]], max_bytes: int) -> list[list[str]]:
    """Split (pair_id, bytes) in order into consecutive groups of at most ``max_bytes`` each."""
    shards: list[list[str]] = []
    current: list[str] = []
    current_bytes = 0
    for pair_id, size in sizes:
        if current and current_bytes + size > max_bytes:
            shards.append(current)
            current, current_bytes = [], 0
        current.append(pair_id)
        current_bytes += size
    return shards + ([current] if current else [])


def pair_row(store: ReviewStore, pair_id: str) -> dict:
    """One dataset row: both image files untouched, their facts, and the settling decision."""
    pair = store.pair(pair_id)
    final = store.final_decision(pair_id)
    agreeing = [
        recorded.decision.reviewer
        for recorded in store.decisions(pair_id=pair_id)
        if recorded.decision.verdict == final.decision.verdict
    ]
    row = {"pair_id": pair_id}
    for side, path, sha in (
        ("original", pair.original_path, pair.original_sha256),
        ("retouched", pair.retouched_path, pair.retouched_sha256),
    ):
        facts = pair.facts.get(side, {})
        row[side] = {"bytes": Path(path).read_bytes(), "path": Path(path).name}
        row[f"{side}_sha256"] = sha
        row[f"{side}_width"] = facts.get("width", 0)
        row[f"{side}_height"] = facts.get("height", 0)
        row[f"{side}_format"] = facts.get("format", "")
    row.update(
        reviewer=final.decision.reviewer,
        reviewers=sorted(set(agreeing)),
        decided_at=datetime.fromtimestamp(final.decided_at, UTC).isoformat(),
        tags=list(final.decision.tags),
        caption=final.decision.caption,
        note=final.decision.note,
    )
    return row


def write_shard(store: ReviewStore, pair_ids: Sequence[str], target: Path, rows_per_group: int) -> None:
    """Write a Parquet shard ``rows_per_group`` rows at a time (memory holds one group at most)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = dataset_features().arrow_schema
    with pq.ParquetWriter(target, schema, compression="none") as writer:  # images are compressed already
        for start in range(0, len(pair_ids), rows_per_group):
            rows = [pair_row(store, pair_id) for pair_id in pair_ids[start : start + rows_per_group]]
            writer.write_table(pa.Table.from_pylist(rows, schema=schema), row_group_size=rows_per_group)


def render_card(store: ReviewStore, config: PublishConfig) -> str:
    """The dataset card: YAML (licence, configs/splits) then counts and the review protocol."""
    shards = [shard for shard in store.shards() if shard.uploaded]
    counters = store.counters()
    reviewers = store.reviewer_stats()
    guidelines = config.guidelines.strip() or "Accept a pair when the retouch is professional, natural and faithful."
    return f"""---
license: {config.license}
task_categories:
- image-to-image
tags:
- face-restoration
- retouching
- authface
pretty_name: AuthFace retouched pairs
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*.parquet
---

# AuthFace retouched pairs

Pairs of an original photograph and its professional retouch, reviewed by photographers with the
AuthFace Studio annotation tool. Images are the original files, byte for byte (`original`,
`retouched`: `datasets.Image`), with their SHA-256, sizes and formats, the settling reviewer, the
time, photographic attribute tags (lighting, skin texture, sharpness, makeup), a caption and a note.

## Counts

- published pairs: {counters.published} in {len(shards)} shard(s) (`data/train-*.parquet`, split `train`)
- reviewed so far: {counters.accepted} accepted, {counters.rejected} rejected, {counters.disputed} in adjudication
- reviewers: {len(reviewers)}

## Review protocol

- Each pair needs {store.overlap} agreeing review decision(s); disagreements go to an adjudication
  queue and one adjudicator settles them. Only accepted pairs are published.
- Reviewers are on an explicit allow-list; each decision records who, when and what.
- Guidelines: {guidelines}

## Loading

```python
from datasets import load_dataset
pairs = load_dataset("{config.repo_id}", split="train")
```

Licence: `{config.license}`. Check the rights of every photograph before reuse.
"""


def publish(
    store: ReviewStore,
    config: PublishConfig,
    *,
    token: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> PublishResult:
    """Upload the accepted pairs not yet published, one commit per shard, then the card.

    ``progress(done, total, shard_path)`` is called after each shard.
    """
    from huggingface_hub import CommitOperationAdd, HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=config.endpoint, token=token)
    secret = token or get_token() or ""  # the token HfApi will send: HF_TOKEN, HUGGING_FACE_HUB_TOKEN or the login

    def hub_call(step: str, call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except (HfHubHTTPError, OSError, ValueError, RuntimeError) as error:
            # huggingface_hub wraps upload failures in RuntimeError: report the whole chain, token scrubbed,
            # and drop the chained exceptions themselves (a server may echo the token in them)
            chain = []
            while error is not None:
                chain.append(str(error))
                error = error.__cause__
            message = " <- ".join(chain)
            message = message.replace(secret, "***") if secret else message
            raise PublishError(f"publishing to {config.repo_id} failed while {step}: {message}") from None

    # 1. Repo, and the shards a previous run planned.
    hub_call(
        "creating the repo", api.create_repo, config.repo_id, repo_type="dataset", private=config.private, exist_ok=True
    )
    # 2. Plan the newly accepted pairs (recorded before any upload, so a rerun finds the same shards).
    sizes = [(pair_id, _pair_bytes(store, pair_id)) for pair_id in store.accepted_unplanned()]
    store.plan_shards(group_into_shards(sizes, config.max_shard_bytes), SHARD_PATTERN)
    # 3. Upload what the repo lacks.
    remote = set(hub_call("listing the repo", api.list_repo_files, config.repo_id, repo_type="dataset"))
    pending = [shard for shard in store.shards() if not shard.uploaded]
    uploaded: list[str] = []
    already_there: list[str] = []
    staging = store.path.parent / STAGING_FOLDER
    staging.mkdir(parents=True, exist_ok=True)
    for done, shard in enumerate(pending, start=1):
        path_in_repo, pair_ids = shard.path_in_repo, shard.pair_ids
        if path_in_repo in remote:
            already_there.append(path_in_repo)
        else:
            with tempfile.TemporaryDirectory(dir=staging) as folder:
                local = Path(folder) / Path(path_in_repo).name
                write_shard(store, pair_ids, local, config.rows_per_group)
                hub_call(
                    f"uploading {path_in_repo}",
                    api.create_commit,
                    config.repo_id,
                    repo_type="dataset",
                    operations=[CommitOperationAdd(path_in_repo=path_in_repo, path_or_fileobj=str(local))],
                    commit_message=f"Add {path_in_repo} ({len(pair_ids)} pairs)",
                )
            uploaded.append(path_in_repo)
        store.mark_uploaded(shard.index)
        logger.info("published %s (%d pairs)", path_in_repo, len(pair_ids))
        if progress is not None:
            progress(done, len(pending), path_in_repo)
    # 4. The card, with the counts after this run.
    card = render_card(store, config).encode()
    hub_call(
        "writing the dataset card",
        api.create_commit,
        config.repo_id,
        repo_type="dataset",
        operations=[CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card)],
        commit_message="Update dataset card",
    )
    return PublishResult(uploaded, already_there, store.counters().published)


def _pair_bytes(store: ReviewStore, pair_id: str) -> int:
    """Bytes of both image files of a pair, as ingested: what it adds to a shard."""
    facts = store.pair(pair_id).facts
    return sum(facts.get(side, {}).get("size_bytes", 0) for side in ("original", "retouched"))
