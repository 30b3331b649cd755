"""Publish accepted pairs to a Hugging Face dataset repo as Parquet shards, incrementally.

``datasets``' own ``push_to_hub`` rewrites a split; here each publish appends new shards only:
``data/train-00000.parquet``, ``data/train-00001.parquet``... A published shard is never
re-uploaded. The images are the untouched original and retouched files, stored as
``datasets.Image`` structs ``{bytes, path}``, so ``load_dataset`` returns them byte for byte.

Bounded memory: a shard holds at most ``max_shard_bytes`` of image files (a pair larger than that
gets a shard of its own) and is written ``rows_per_group`` rows at a time, which is also its
Parquet row-group size, so neither the writer nor a reader ever holds more than a few 8K pairs.

Idempotent resume: the shards to upload (path and pair ids) are recorded in the store, per
dataset repo, before any upload. A rerun after a crash first uploads what was planned and is
missing from the repo, marks what the repo already has, then plans the newly accepted pairs, and
finally rewrites the dataset card, so an interrupted publish ends in the same repo state as an
uninterrupted one. Another repo has its own bookkeeping and gets every accepted pair.

What was reviewed is what is published: each file's bytes are hashed as they go into the shard,
and a file whose SHA-256 is no longer the one ingested (replaced on disk after its review) is
left out, taken out of the shard's plan before the upload, and reported. The reviewers' notes
for the team are published only when the project says so (``publish_notes``).

The token comes from the caller, ``HF_TOKEN`` or the saved login (huggingface_hub's own lookup,
``get_token``); it is never logged, and is scrubbed from any error message, wherever it came from.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..hub import DatasetRepo, check_repo_id
from .config import AnnotationSettings, check_license_id
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
        publish_notes: add the reviewers' notes for the team as a ``note`` column.
        endpoint: Hub URL; None uses ``HF_ENDPOINT`` or huggingface.co.
        guidelines: the review guidelines, copied into the card's review protocol.
    """

    repo_id: str
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES
    rows_per_group: int = DEFAULT_ROWS_PER_GROUP
    private: bool = True
    license: str = "other"
    publish_notes: bool = False
    endpoint: str | None = None
    guidelines: str = ""

    def __post_init__(self):
        check_repo_id(self.repo_id)
        check_license_id(self.license)
        if self.max_shard_bytes <= 0:
            raise ValueError(f"max_shard_bytes must be positive, got {self.max_shard_bytes}")
        if self.rows_per_group < 1:
            raise ValueError(f"rows_per_group must be at least 1, got {self.rows_per_group}")

    @classmethod
    def from_settings(cls, settings: AnnotationSettings, guidelines: str = "") -> PublishConfig:
        """The project's publishing target; :class:`ValueError` when it has none."""
        if settings.repo_id is None:
            raise ValueError("this project publishes nowhere: set its repo_id (ANNOTATE_REPO_ID or --repo-id)")
        return cls(
            repo_id=settings.repo_id,
            private=settings.private,
            license=settings.license,
            publish_notes=settings.publish_notes,
            guidelines=guidelines,
        )


@dataclass(frozen=True)
class PublishResult:
    """What one publish did."""

    repo_id: str
    uploaded: list[str] = field(default_factory=list)  # shard paths uploaded now
    already_there: list[str] = field(default_factory=list)  # planned shards the repo had (a resumed run)
    published_pairs: int = 0  # total pairs in the repo after this run
    refused: list[tuple[str, str]] = field(default_factory=list)  # (pair id, why): files changed since review


class FileChangedError(Exception):
    """A pair's file is not the one reviewed (other bytes, or gone); the pair is left out of the shard."""


def dataset_features(publish_notes: bool = False):
    """The ``datasets.Features`` of a published row (``datasets`` imported only when publishing)."""
    import datasets

    string, integer = datasets.Value("string"), datasets.Value("int64")
    note = {"note": string} if publish_notes else {}
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
            "reject_reasons": datasets.List(string),
            **note,
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


def reviewed_bytes(path: str, sha256: str) -> bytes:
    """The file's bytes if they are still the ones reviewed; else :class:`FileChangedError` naming the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise FileChangedError(f"{Path(path).name}: cannot be read any more ({error.strerror or error})") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise FileChangedError(f"{Path(path).name} changed on disk since it was reviewed (its SHA-256 differs)")
    return data


def pair_row(store: ReviewStore, pair_id: str, publish_notes: bool = False) -> dict:
    """One dataset row: both image files as reviewed, their facts, and the settling decision.

    Raises :class:`FileChangedError` when a file is not the one reviewed.
    """
    pair = store.pair(pair_id)
    final = store.final_decision(pair_id)
    decisions = store.decisions(pair_id=pair_id)
    agreeing = [
        recorded.decision.reviewer for recorded in decisions if recorded.decision.verdict == final.decision.verdict
    ]
    row = {"pair_id": pair_id}
    for side, path, sha in (
        ("original", pair.original_path, pair.original_sha256),
        ("retouched", pair.retouched_path, pair.retouched_sha256),
    ):
        facts = pair.facts.get(side, {})
        row[side] = {"bytes": reviewed_bytes(path, sha), "path": Path(path).name}
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
        # what any reviewer of the pair rejected it for (a pair accepted after a dispute keeps them)
        reject_reasons=sorted({reason for recorded in decisions for reason in recorded.decision.reasons}),
    )
    if publish_notes:
        row["note"] = final.decision.note
    return row


def write_shard(
    store: ReviewStore, pair_ids: Sequence[str], target: Path, config: PublishConfig
) -> list[tuple[str, str]]:
    """Write a Parquet shard ``rows_per_group`` rows at a time (memory holds one group at most).

    Returns the (pair id, why) of pairs left out because a file is not the one reviewed.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = dataset_features(config.publish_notes).arrow_schema
    refused: list[tuple[str, str]] = []
    with pq.ParquetWriter(target, schema, compression="none") as writer:  # images are compressed already
        for start in range(0, len(pair_ids), config.rows_per_group):
            rows = []
            for pair_id in pair_ids[start : start + config.rows_per_group]:
                try:
                    rows.append(pair_row(store, pair_id, config.publish_notes))
                except FileChangedError as error:
                    refused.append((pair_id, str(error)))
            if rows:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema), row_group_size=config.rows_per_group)
    return refused


def render_card(store: ReviewStore, config: PublishConfig) -> str:
    """The dataset card (``huggingface_hub.DatasetCard``): YAML metadata, then counts and the review protocol."""
    from huggingface_hub import DatasetCard, DatasetCardData

    shards = [shard for shard in store.shards(config.repo_id) if shard.uploaded]
    counters = store.counters(config.repo_id)
    reviewers = store.reviewer_stats()
    guidelines = config.guidelines.strip() or "Accept a pair when the retouch is professional, natural and faithful."
    columns = "a caption and a note" if config.publish_notes else "and a caption"
    metadata = DatasetCardData(
        license=config.license,
        task_categories=["image-to-image"],
        tags=["face-restoration", "retouching", "authface"],
        pretty_name="AuthFace retouched pairs",
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}],
    )
    body = f"""
# AuthFace retouched pairs

Pairs of an original photograph and its professional retouch, reviewed by photographers with the
AuthFace Studio annotation tool. Images are the original files, byte for byte (`original`,
`retouched`: `datasets.Image`), with their SHA-256, sizes and formats, the settling reviewer, the
time, photographic attribute tags (lighting, skin texture, sharpness, makeup), the reasons any
reviewer gave for rejecting the retouch (`reject_reasons`: plastic skin, halo, cloning, identity
change, colour shift, other; a pair accepted after a dispute keeps them), {columns}.

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
    return str(DatasetCard(f"---\n{metadata.to_yaml()}\n---\n{body}"))


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
    repo = DatasetRepo(config.repo_id, token=token, endpoint=config.endpoint)
    # 1. The repo.
    repo_id = config.repo_id
    repo.create(private=config.private)
    # 2. Plan the newly accepted pairs (recorded before any upload, so a rerun finds the same shards).
    sizes = [(pair_id, _pair_bytes(store, pair_id)) for pair_id in store.accepted_unplanned(repo_id)]
    store.plan_shards(repo_id, group_into_shards(sizes, config.max_shard_bytes), SHARD_PATTERN)
    # 3. Upload what the repo lacks, each pair's files checked against the hashes reviewed.
    remote = repo.files()
    pending = [shard for shard in store.shards(repo_id) if not shard.uploaded]
    uploaded: list[str] = []
    already_there: list[str] = []
    refused: list[tuple[str, str]] = []
    staging = store.path.parent / STAGING_FOLDER
    staging.mkdir(parents=True, exist_ok=True)
    for done, shard in enumerate(pending, start=1):
        if shard.path_in_repo in remote:
            already_there.append(shard.path_in_repo)
            store.mark_uploaded(repo_id, shard.index)
        else:
            with tempfile.TemporaryDirectory(dir=staging) as folder:
                local = Path(folder) / Path(shard.path_in_repo).name
                left_out = write_shard(store, shard.pair_ids, local, config)
                if left_out:  # recorded before the upload, so that a resumed run writes the same shard
                    store.unplan(repo_id, shard.index, [pair_id for pair_id, _ in left_out])
                    refused += left_out
                if len(left_out) < len(shard.pair_ids):
                    repo.add_file(
                        shard.path_in_repo,
                        local,
                        f"Add {shard.path_in_repo} ({len(shard.pair_ids) - len(left_out)} pairs)",
                    )
                    store.mark_uploaded(repo_id, shard.index)
                    uploaded.append(shard.path_in_repo)
                    logger.info("published %s", shard.path_in_repo)
        if progress is not None:
            progress(done, len(pending), shard.path_in_repo)
    for pair_id, why in refused:
        logger.warning("not published: pair %s: %s", pair_id, why)
    # 4. The card, with the counts after this run.
    card = render_card(store, config).encode()
    repo.add_file("README.md", card, "Update dataset card")
    return PublishResult(repo_id, uploaded, already_there, store.counters(repo_id).published, refused)


def _pair_bytes(store: ReviewStore, pair_id: str) -> int:
    """Bytes of both image files of a pair, as ingested: what it adds to a shard."""
    facts = store.pair(pair_id).facts
    return sum(facts.get(side, {}).get("size_bytes", 0) for side in ("original", "retouched"))
