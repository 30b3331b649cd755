"""Results as Parquet shards: ``OUT/data/train-<digest>.parquet``, one row per photo, readable with ``datasets``.

A row holds the photo's ``id`` (its key), the restored ``image`` (``datasets.Image``: the encoded file, PNG or
the input's format), the number of ``faces`` restored, a ``status`` (``restored``, or ``no face`` with a null
image) and the ``sidecar``: the same JSON record a folder output gets beside each image.

Each process collects its rows and writes a shard every ``shard_rows`` photos (and at the end), whole and
atomically, named by a digest of its ids, so two processes never write the same name and a shard written
again holds the same rows. The shards are the resume ledger: a photo is done when a shard holds its id; a
killed process loses only the rows of the shard it had not written. ``load_dataset("parquet",
data_files="OUT/data/*.parquet")`` (or the Hub repo) reads them.

With a Hub repo, each shard is appended as it is written (``hub.DatasetRepo``: one commit per file), and at the
end of a run the main process uploads any local shard the repo lacks (an interrupted run's) and rewrites the
dataset card: nothing is uploaded twice, nothing is re-pushed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from ..batch import stop_if_output_full
from ..io import OUTPUT_FORMATS, atomic_write_bytes, encode_image
from ..restore import RestoreResult
from .sources import ArchiveItem

logger = logging.getLogger(__name__)

SHARD_FOLDER = "data"
SHARD_GLOB = "train-*.parquet"
SHARD_PATH = f"{SHARD_FOLDER}/{SHARD_GLOB}"
# Rows of a Parquet row group: readers decode one group at a time, and a group of 8K images is already ~1 GB.
ROWS_PER_GROUP = 8


def dataset_features():
    """The ``datasets.Features`` of a shard's rows (``datasets`` imported only when writing or reading)."""
    import datasets

    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            "faces": datasets.Value("int32"),
            "status": datasets.Value("string"),
            "sidecar": datasets.Value("string"),
        }
    )


def shard_name(keys: list[str]) -> str:
    """``train-<16 hex digits>.parquet``: a digest of the shard's ids, in order."""
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]
    return SHARD_GLOB.replace("*", digest)


def read_done_keys(folder: Path) -> set[str]:
    """The ids every finished shard under ``folder`` holds (only the id column is read)."""
    import pyarrow.parquet as pq

    done: set[str] = set()
    for shard in sorted(folder.glob(SHARD_GLOB)):
        done.update(pq.read_table(shard, columns=["id"]).column("id").to_pylist())
    return done


def encode_parquet(rows: list[dict]) -> bytes:
    """A Parquet file of ``rows`` with the features' schema, row groups of ``ROWS_PER_GROUP``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = dataset_features().arrow_schema
    sink = pa.BufferOutputStream()
    # images are compressed already; the sidecars are small
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), sink, row_group_size=ROWS_PER_GROUP, compression="none")
    return sink.getvalue().to_pybytes()


class ParquetShards:
    """The outputs of one process as Parquet shards under ``output_dir/data`` (module doc).

    Args:
        output_dir: the run's output folder (checked and cleaned by ``batch.prepare_output_folder``).
        shard_rows: photos per shard.
        record: ``record(item, result, seconds)`` -> the sidecar dict of a restored photo.
        repo: where each shard is appended as well (``hub.DatasetRepo``), or None.
    """

    def __init__(
        self,
        output_dir: Path,
        shard_rows: int,
        record: Callable[[ArchiveItem, RestoreResult, float], dict],
        repo=None,
    ):
        self.folder = Path(output_dir) / SHARD_FOLDER
        self.shard_rows = shard_rows
        self.record = record
        self.repo = repo
        self.done = read_done_keys(self.folder) if self.folder.is_dir() else set()  # read before anyone writes
        self.rows: list[dict] = []
        self.written: list[str] = []

    def check(self, item: ArchiveItem) -> None:
        """Any id can be a row."""

    def kept(self, item: ArchiveItem) -> bool:
        return item.key in self.done

    def encode(self, item: ArchiveItem, result: RestoreResult, seconds: float) -> dict:
        """The row of a restored photo (in a worker thread: the image is compressed here)."""
        name = item.name if item.name is not None and item.name.suffix.lower() in OUTPUT_FORMATS else None
        name = name or Path(f"{Path(item.key).name}.png")
        data = encode_image(result.image, result.alpha, format=OUTPUT_FORMATS[name.suffix.lower()])
        return {
            "id": item.key,
            "image": {"bytes": data, "path": name.name},
            "faces": len(result.faces),
            "status": "restored",
            "sidecar": json.dumps(self.record(item, result, seconds)),
        }

    def commit(self, item: ArchiveItem, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.shard_rows:
            self.flush()

    def commit_no_face(self, item: ArchiveItem, message: str) -> None:
        """A row that says so: no image, the reason in the sidecar."""
        record = {"input": item.source, "faces": [], "note": message}
        self.commit(
            item, {"id": item.key, "image": None, "faces": 0, "status": "no face", "sidecar": json.dumps(record)}
        )

    def flush(self) -> None:
        """Write the collected rows as one shard (atomically), then append it to the repo."""
        if not self.rows:
            return
        name = shard_name([row["id"] for row in self.rows])
        try:
            atomic_write_bytes(self.folder / name, encode_parquet(self.rows))
        except OSError as error:
            lost = ", ".join(row["id"] for row in self.rows)
            self.rows = []  # the next run finds them not done
            error = OSError(error.errno, f"{error.strerror or error}; not saved, left for the next run: {lost}")
            stop_if_output_full(error)
            raise error from None
        self.done.update(row["id"] for row in self.rows)
        count, self.rows = len(self.rows), []
        self.written.append(name)
        if self.repo is not None:
            self.repo.add_file(
                f"{SHARD_FOLDER}/{name}", self.folder / name, f"Add {SHARD_FOLDER}/{name} ({count} photos)"
            )

    def close(self) -> None:
        self.flush()

    def finish_run(self) -> None:
        """On the main process, once every process has closed: upload the shards the repo lacks (those of an
        interrupted run) and rewrite the dataset card."""
        if self.repo is None:
            return
        remote = self.repo.files()
        local = sorted(self.folder.glob(SHARD_GLOB)) if self.folder.is_dir() else []
        for shard in local:
            if f"{SHARD_FOLDER}/{shard.name}" not in remote:
                self.repo.add_file(f"{SHARD_FOLDER}/{shard.name}", shard, f"Add {SHARD_FOLDER}/{shard.name}")
        photos = len(read_done_keys(self.folder))
        self.repo.add_file(
            "README.md", render_card(self.repo.repo_id, photos, len(local)).encode(), "Update dataset card"
        )


def render_card(repo_id: str, photos: int, shards: int) -> str:
    """The dataset card (``huggingface_hub.DatasetCard``): its data files, then counts and how to load it."""
    from huggingface_hub import DatasetCard, DatasetCardData

    metadata = DatasetCardData(
        task_categories=["image-to-image"],
        tags=["face-restoration", "authface"],
        pretty_name="Restored with AuthFace Studio",
        configs=[
            {"config_name": "default", "data_files": [{"split": "train", "path": f"{SHARD_FOLDER}/{SHARD_GLOB}"}]}
        ],
    )
    body = f"""
# Restored with AuthFace Studio

Photos restored by `authface restore` (AuthFace: SDXL + ControlNet face restoration), one row per photo:
`id` (the input's id or relative file name), `image` (the restored photo; null when no face was found),
`faces` (how many were restored), `status` and `sidecar` (JSON: the model, every setting, each face's box
and authenticity report).

- photos: {photos} in {shards} shard(s) (`{SHARD_PATH}`, split `train`)

```python
from datasets import load_dataset
restored = load_dataset("{repo_id}", split="train")
```
"""
    return str(DatasetCard(f"---\n{metadata.to_yaml()}\n---\n{body}"))
