"""The photos of an archive run, as :class:`ArchiveItem`: a key, a name for the outputs, a way to load it.

- Folders and files (``batch.scan_inputs``): the key is the photo's relative name (``2019/a.jpg``), the one its
  output keeps.
- A Hugging Face dataset (a Hub id, or local Parquet): the key is the id column's value; its outputs are named
  ``<id>.png``. Ids come from outside, so an id that could name a file elsewhere (``../x``, ``/x``, a hidden
  name) fails that row, naming it, instead of becoming a path.

A source either lists its keys up front (folders; datasets that are not streamed), so that what is left can be
split evenly between processes, or (a streamed dataset) hands each process its own part of the stream.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath

from ..batch import InputFile
from ..errors import AuthFaceError
from ..io import LoadedImage, load_image

# A dataset id that may name a file: path components of letters, digits, '.', '_', '-', none hidden or '..'.
_SAFE_ID = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*(/[A-Za-z0-9_\-][A-Za-z0-9_.\-]*)*$")
DATASET_OUTPUT_SUFFIX = ".png"


class DatasetError(AuthFaceError, ValueError):
    """The dataset cannot be used as asked (no such column, ids not unique...); the message says what to fix."""


@dataclass(frozen=True)
class ArchiveItem:
    """One photo of the run.

    Args:
        key: its identity in the run: outputs, noise and resume follow it.
        name: the relative name its outputs take (with the format to write as suffix); None when its key cannot
            name a file (a dataset id such as ``../x``), which an output folder then refuses.
        source: what messages call it (a path, or ``dataset[id]``).
        load: decodes it (called in a worker thread).
    """

    key: str
    name: Path | None
    source: str
    load: Callable[[], LoadedImage]

    def __str__(self) -> str:
        return self.source


def folder_items(files: Sequence[InputFile]) -> list[ArchiveItem]:
    """The scanned input files, keyed by their relative names (POSIX spelling, the same on every machine)."""
    return [
        ArchiveItem(entry.name.as_posix(), entry.name, str(entry.path), lambda path=entry.path: load_image(path))
        for entry in files
    ]


def dataset_output_name(key: str) -> Path | None:
    """``<id>.png`` for a dataset row, or None when the id is no safe relative file name."""
    if not _SAFE_ID.match(key) or ".." in PurePosixPath(key).parts:
        return None
    return Path(key + DATASET_OUTPUT_SUFFIX)


@dataclass
class DatasetSource:
    """A Hugging Face dataset: its rows' images and ids (``datasets`` imported when opened)."""

    name: str
    image_column: str
    id_column: str
    dataset: object  # datasets.Dataset or IterableDataset, images not decoded
    streaming: bool

    @classmethod
    def open(cls, name: str, *, split: str, image_column: str, id_column: str, streaming: bool) -> DatasetSource:
        """A Hub id, or a local Parquet file or folder (searched for ``*.parquet``).

        Raises:
            DatasetError: no such dataset, split or column, or an image column that holds no images.
        """
        import datasets

        local = Path(name).expanduser()
        try:
            if local.exists():
                files = sorted(map(str, local.rglob("*.parquet"))) if local.is_dir() else [str(local)]
                if not files:
                    raise DatasetError(f"{name}: no Parquet files in this folder")
                dataset = datasets.load_dataset("parquet", data_files={split: files}, split=split, streaming=streaming)
            else:
                dataset = datasets.load_dataset(name, split=split, streaming=streaming)
        except (FileNotFoundError, ValueError, OSError) as error:
            if isinstance(error, DatasetError):
                raise
            raise DatasetError(f"{name}: cannot load the dataset ({type(error).__name__}: {error})") from None
        features = dataset.features
        columns = sorted(features) if features else []
        for column, role in ((image_column, "image"), (id_column, "id")):
            if features is not None and column not in features:
                raise DatasetError(
                    f"{name}: no {role} column {column!r} (columns: {', '.join(columns)}); name it with --{role}-column"
                )
        image_feature = features[image_column] if features is not None else None  # unknown for some streams
        if isinstance(image_feature, datasets.Image):
            dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
        elif image_feature is not None and not (
            isinstance(image_feature, datasets.Value) and image_feature.dtype in ("binary", "large_binary")
        ):
            raise DatasetError(f"{name}: the column {image_column!r} holds {image_feature}, not images")
        dataset = dataset.select_columns([id_column, image_column])
        return cls(name, image_column, id_column, dataset, streaming)

    def keys(self) -> list[str]:
        """Every row's id, in row order (not for a streamed dataset).

        Raises:
            DatasetError: ids missing or not unique (the first repeated one is named).
        """
        keys = [str(value) if value is not None else "" for value in self.dataset[self.id_column]]
        seen: set[str] = set()
        for row, key in enumerate(keys):
            if not key:
                raise DatasetError(f"{self.name}: row {row} has no id in the column {self.id_column!r}")
            if key in seen:
                raise DatasetError(f"{self.name}: the id {key!r} appears more than once in {self.id_column!r}")
            seen.add(key)
        return keys

    def items(self) -> list[ArchiveItem]:
        """Every row, in order, as an item whose image is read only when it is loaded (not when streaming)."""
        return [
            ArchiveItem(key, dataset_output_name(key), f"{self.name}[{key}]", partial(self._load_row, row, key))
            for row, key in enumerate(self.keys())
        ]

    def stream(self, index: int, count: int) -> Iterator[ArchiveItem]:
        """Process ``index`` of ``count``'s part of a streamed dataset (``datasets.distributed``'s split)."""
        from datasets.distributed import split_dataset_by_node

        for row in split_dataset_by_node(self.dataset, rank=index, world_size=count):
            yield self._item(row)

    def _load_row(self, row: int, key: str) -> LoadedImage:
        return self._decode(self.dataset[row][self.image_column], f"{self.name}[{key}]")

    def _item(self, row: dict) -> ArchiveItem:
        """An item of a streamed row (its bytes are already here)."""
        key = str(row[self.id_column])
        source = f"{self.name}[{key}]"
        return ArchiveItem(key, dataset_output_name(key), source, partial(self._decode, row[self.image_column], source))

    @staticmethod
    def _decode(value, source: str) -> LoadedImage:
        """A row's image cell (a ``datasets.Image`` struct, or bytes) decoded like a file."""
        data = value.get("bytes") if isinstance(value, dict) else value
        if not data:
            raise DatasetError(f"{source}: the row holds no image bytes")
        return load_image(data, name=source)
