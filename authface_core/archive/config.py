"""The settings of an archive run: where the photos come from, where the results go, how the work is batched.

Torch-free: the ``restore`` command's ``--help`` builds its flags from :class:`ArchiveConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from ..settings import Range, check_settings, setting

OUTPUT_KINDS = ("folder", "parquet")
# A Parquet shard holds at most this many photos by default: a killed process loses at most one shard's work.
DEFAULT_SHARD_ROWS = 64


@dataclass(frozen=True)
class ArchiveConfig:
    """How ``restore`` reads, splits, batches and writes a large set of photos (any number of processes)."""

    _argument_group_name = "archive runs (datasets, Parquet, several processes)"

    dataset: str | None = setting(
        None,
        "restore a Hugging Face dataset instead of INPUT files: a Hub id, or a local Parquet file or folder of them",
    )
    split: str = setting("train", "the dataset's split")
    image_column: str = setting("image", "the dataset's image column (datasets.Image, or image file bytes)")
    id_column: str = setting(
        "id", "the dataset's column of unique ids: they name the outputs, seed each face's noise and mark what is done"
    )
    streaming: bool = setting(False, "stream the dataset instead of downloading it first (for large Hub datasets)")
    output_format: Literal[OUTPUT_KINDS] = setting(
        "folder",
        "folder: images and .json sidecars; parquet: shards data/train-*.parquet (id, restored image, sidecar "
        "fields) that datasets.load_dataset reads",
    )
    shard_rows: Annotated[int, Range(1, 100_000)] = setting(
        DEFAULT_SHARD_ROWS, "photos per Parquet shard; a shard is written whole, so a killed process loses at most one"
    )
    push_to_hub: str | None = setting(
        None, "also append each Parquet shard to this Hub dataset repo (owner/name); nothing is uploaded twice"
    )
    hub_private: bool = setting(True, "create the --push-to-hub repo private (when it does not exist yet)")
    cross_photo_batch: bool = setting(
        False,
        "fill each batch (--batch-size faces) with faces of many photos, so the model always runs full batches",
    )
    group_size: Annotated[int, Range(1, 100_000)] = setting(
        64,
        "with --cross-photo-batch, batches never span two groups of this many photos, so any number of processes "
        "forms the same batches (and gives the same pixels)",
    )
    workers: Annotated[int, Range(1, 64)] = setting(
        2, "threads that load, detect and align photos, and threads that paste back and encode them"
    )
    queue_size: Annotated[int, Range(1, 4096)] = setting(
        8, "photos prepared ahead of the model at most (bounds the memory the queue holds)"
    )
    dry_run: bool = setting(False, "print the plan (photos, faces found, FLOPs, GPU time) and restore nothing")
    dry_run_sample: Annotated[int, Range(0, 10_000_000)] = setting(
        0, "with --dry-run, find the faces of this many photos spread over those left, and extrapolate (0: all)"
    )

    def __post_init__(self):
        check_settings(self)
        if self.push_to_hub is not None:
            from ..hub import check_repo_id

            check_repo_id(self.push_to_hub)
            if self.output_format != "parquet":
                raise ValueError("push_to_hub appends Parquet shards: use it with output_format parquet")
