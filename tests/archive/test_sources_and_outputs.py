"""Where an archive's photos come from (folders, datasets) and where they go (a folder, Parquet shards, a Hub repo
through the local stand-in the annotation tests use), in one process."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from authface_core.archive.config import ArchiveConfig
from authface_core.archive.shards import read_done_keys, shard_name
from authface_core.archive.sources import DatasetError, DatasetSource, dataset_output_name
from authface_core.cli import main
from authface_core.io import load_rgb, save_image
from tests.annotation.hub_standin import HubStandIn, use_standin

from .conftest import TINY_FLAGS, astronaut_variants, read_shards, write_parquet_dataset

REPO_ID = "photo-agency/restored-archive"
TOKEN = "hf_archiveSecretToken0123456789"
COLUMNS = dict(split="train", image_column="image", id_column="id")


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/etc/x", ".hidden", "a//b", "", "a\\b", "scan 1"])
def test_an_id_that_could_name_a_file_elsewhere_names_none(key):
    assert dataset_output_name(key) is None


@pytest.mark.parametrize("key, name", [("scan-001", "scan-001.png"), ("1998/box_2.a", "1998/box_2.a.png")])
def test_a_plain_id_names_its_output(key, name):
    assert dataset_output_name(key) == Path(name)


def test_dataset_problems_are_named(tmp_path, astronaut):
    path = write_parquet_dataset(tmp_path / "d.parquet", {"x": astronaut[:64, :64], "y": astronaut[64:128, :64]})
    with pytest.raises(DatasetError, match=r"no id column 'key' \(columns: id, image\); name it with --id-column"):
        DatasetSource.open(str(path), split="train", image_column="image", id_column="key", streaming=False)
    with pytest.raises(DatasetError, match="the column 'id' holds"):
        DatasetSource.open(str(path), split="train", image_column="id", id_column="id", streaming=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no Parquet files"):
        DatasetSource.open(
            str(tmp_path / "empty"), split="train", image_column="image", id_column="id", streaming=False
        )
    twice = write_parquet_dataset(tmp_path / "twice" / "a.parquet", {"x": astronaut[:64, :64]})
    write_parquet_dataset(tmp_path / "twice" / "b.parquet", {"x": astronaut[:64, :64]})
    source = DatasetSource.open(str(twice.parent), split="train", image_column="image", id_column="id", streaming=False)
    with pytest.raises(DatasetError, match="the id 'x' appears more than once"):
        source.keys()


def test_dataset_rows_load_like_files_and_stream_split_between_processes(tmp_path, astronaut):
    photos = {f"p{index}": photo[:96, :128] for index, photo in enumerate(astronaut_variants(astronaut, 4))}
    path = write_parquet_dataset(tmp_path / "d.parquet", photos)
    source = DatasetSource.open(str(path), split="train", image_column="image", id_column="id", streaming=False)
    items = source.items()
    assert [item.key for item in items] == list(photos) and items[0].source == f"{path}[p0]"
    assert all(np.array_equal(item.load().rgb, photos[item.key]) for item in items)
    streamed = DatasetSource.open(str(path), split="train", image_column="image", id_column="id", streaming=True)
    parts = [[item.key for item in streamed.stream(index, 2)] for index in range(2)]
    assert sorted(parts[0] + parts[1]) == sorted(photos) and not set(parts[0]) & set(parts[1])


def test_archive_settings_refuse_what_cannot_work():
    with pytest.raises(ValueError, match="output_format parquet"):
        ArchiveConfig(push_to_hub="org/name")
    with pytest.raises(ValueError, match="repo_id must be 'namespace/name'"):
        ArchiveConfig(push_to_hub="just-a-name", output_format="parquet")
    with pytest.raises(ValueError, match="group_size"):
        ArchiveConfig(group_size=0)


def test_unsafe_dataset_ids_fail_their_rows_and_write_nothing_outside(tmp_path, astronaut, tiny_checkpoint, capsys):
    """The attack: a dataset whose ids are paths out of the output folder. Those rows fail, named; the rest are
    restored; nothing is written outside the output folder."""
    photos = dict(zip(["ok-1", "../escaped", "/tmp/absolute", "ok-2"], astronaut_variants(astronaut, 4), strict=True))
    dataset = write_parquet_dataset(tmp_path / "in" / "train.parquet", photos)
    out = tmp_path / "deep" / "out"
    code = main(["restore", "--dataset", str(dataset), "-o", str(out), "--model", str(tiny_checkpoint), *TINY_FLAGS])
    stderr = capsys.readouterr().err
    assert code == 1 and "2 restored" in stderr and "2 failed" in stderr
    assert f"{dataset}[../escaped]: its id cannot name an output file" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["ok-1.png", "ok-1.png.json", "ok-2.png", "ok-2.png.json"]
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["out"] and not Path("/tmp/absolute.png").exists()


def test_no_face_rows_and_resume_from_the_shards(tmp_path, astronaut, tiny_checkpoint, capsys):
    folder = tmp_path / "scans"
    save_image(folder / "face.png", astronaut)
    save_image(folder / "wall.png", np.full((100, 150, 3), 90, np.uint8))
    out = tmp_path / "out"
    flags = [str(folder), "-o", str(out), "--output-format", "parquet", "--model", str(tiny_checkpoint), *TINY_FLAGS]
    assert main(["restore", *flags]) == 0
    rows = read_shards(out, tmp_path / "cache")
    assert rows["wall.png"]["status"] == "no face" and rows["wall.png"]["image"] is None
    assert "no face detected" in json.loads(rows["wall.png"]["sidecar"])["note"]
    sidecar = json.loads(rows["face.png"]["sidecar"])
    assert sidecar["settings"]["seed"] == 7 and sidecar["input"] == str(folder / "face.png")
    assert rows["face.png"]["image"]["path"] == "face.png" and load_rgb(rows["face.png"]["image"]["bytes"]).shape == (
        512,
        512,
        3,
    )
    shards = sorted((out / "data").iterdir())
    assert [shard.name for shard in shards] == [shard_name(["face.png", "wall.png"])]
    capsys.readouterr()
    assert main(["restore", *flags]) == 0  # nothing left: the shard is the ledger
    assert "0 restored, 2 already done, 0 without a face" in capsys.readouterr().err
    assert sorted((out / "data").iterdir()) == shards and read_done_keys(out / "data") == {"face.png", "wall.png"}


def test_shards_are_appended_to_a_hub_repo_never_twice(tmp_path, astronaut, tiny_checkpoint, monkeypatch, capsys):
    folder = tmp_path / "scans"
    photos = astronaut_variants(astronaut, 4)
    for index in range(2):
        save_image(folder / f"{index}.png", photos[index])
    out = tmp_path / "out"
    flags = [str(folder), "-o", str(out), "--output-format", "parquet", "--shard-rows", "1"]
    flags += ["--model", str(tiny_checkpoint), *TINY_FLAGS]
    assert main(["restore", *flags]) == 0  # a first run kept its shards at home
    with HubStandIn(tmp_path / "hub") as hub:
        use_standin(monkeypatch, hub, TOKEN)
        for index in range(2, 4):
            save_image(folder / f"{index}.png", photos[index])
        hub_flags = [*flags, "--push-to-hub", REPO_ID]
        assert main(["restore", *hub_flags]) == 0
        uploads = list(hub.lfs_uploads)
        repo = hub.repo_dir(REPO_ID)
        assert sorted(path.name for path in (repo / "data").iterdir()) == sorted(
            p.name for p in (out / "data").iterdir()
        )
        assert len(uploads) == 4  # the two new shards as they were written, then the first run's two at the end
        assert main(["restore", *hub_flags]) == 0
        assert hub.lfs_uploads == uploads  # nothing new: nothing uploaded again
        published = read_shards(repo, tmp_path / "cache")
    assert sorted(published) == ["0.png", "1.png", "2.png", "3.png"]
    card = (repo / "README.md").read_text()
    assert "photos: 4 in 4 shard(s)" in card and "path: data/train-*.parquet" in card
    for name, row in published.items():
        local = read_shards(out, tmp_path / "cache-local")[name]
        assert hashlib.sha256(row["image"]["bytes"]).digest() == hashlib.sha256(local["image"]["bytes"]).digest()
    assert TOKEN not in capsys.readouterr().err


def test_every_archive_setting_is_a_restore_flag():
    from authface_core.cli import parse_args
    from authface_core.settings import settings_from_namespace

    (config,) = settings_from_namespace(parse_args(["restore", "x", "-o", "y"]), ArchiveConfig)
    assert config == ArchiveConfig()
    argv = ["restore", "-o", "y", "--dataset", "org/scans", "--streaming", "--output-format", "parquet"]
    argv += ["--push-to-hub", "org/out", "--cross-photo-batch", "--group-size", "8", "--dry-run"]
    (config,) = settings_from_namespace(parse_args(argv), ArchiveConfig)
    assert (config.dataset, config.streaming, config.output_format, config.push_to_hub) == (
        "org/scans",
        True,
        "parquet",
        "org/out",
    )
    assert config.cross_photo_batch and config.group_size == 8 and config.dry_run


def test_inputs_or_a_dataset_not_both(tmp_path, capsys):
    assert main(["restore", str(tmp_path), "--dataset", "org/scans", "-o", str(tmp_path / "out")]) == 2
    assert "give INPUT files or folders, or --dataset, but not both" in capsys.readouterr().err
    assert main(["restore", "-o", str(tmp_path / "out")]) == 2


def test_a_streamed_dataset_is_restored_whole(tmp_path, astronaut, tiny_checkpoint, capsys):
    photos = {f"s{index}": photo for index, photo in enumerate(astronaut_variants(astronaut, 3))}
    dataset = write_parquet_dataset(tmp_path / "in" / "train.parquet", photos)
    out = tmp_path / "out"
    flags = ["--dataset", str(dataset), "--streaming", "-o", str(out), "--output-format", "parquet"]
    flags += ["--model", str(tiny_checkpoint), *TINY_FLAGS]
    assert main(["restore", *flags]) == 0
    assert sorted(read_shards(out, tmp_path / "cache")) == sorted(photos)
    assert main(["restore", *flags]) == 0
    assert "0 restored, 3 already done" in capsys.readouterr().err
