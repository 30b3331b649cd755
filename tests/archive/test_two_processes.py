"""``restore`` under ``accelerate launch`` with 2 CPU processes (gloo), started as a subprocess as a user would:
every photo restored exactly once, the same pixels as one process, datasets in and Parquet out, and a process
killed mid-run (SIGKILL) then the same command again: nothing missing, nothing doubled."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from authface_core.cli import main
from authface_core.io import load_rgb
from tests.annotation.hub_standin import HubStandIn

from .conftest import (
    TINY_FLAGS,
    astronaut_variants,
    launch,
    launch_command,
    launch_environment,
    read_shards,
    write_parquet_dataset,
)

REPO_ID = "photo-agency/restored-scans"
TOKEN = "hf_twoProcessesSecretToken0123"


def summary_counts(stderr: str) -> tuple[int, int, int, int]:
    """(restored, already done, without a face, failed) of the run's summary line."""
    found = re.search(r"(\d+) restored, (\d+) already done, (\d+) without a face, (\d+) failed", stderr)
    assert found, stderr[-3000:]
    return tuple(map(int, found.groups()))


def outputs_of(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_two_processes_restore_every_real_photo_once_with_the_pixels_of_one(
    real_photos_folder, tiny_checkpoint, tmp_path, capsys
):
    flags = ["--model", str(tiny_checkpoint), *TINY_FLAGS]
    one, two = tmp_path / "one-process", tmp_path / "two-processes"
    assert main(["restore", str(real_photos_folder), "-o", str(one), *flags]) == 0
    ran = launch([str(real_photos_folder), "-o", str(two), *flags], tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    # each process counts what it restored: the sum is the number of photos, and every photo is there
    photos = sorted(path.name for path in real_photos_folder.iterdir())
    assert summary_counts(ran.stderr) == (len(photos), 0, 0, 0)
    assert outputs_of(two) == outputs_of(one) == sorted([*photos, *(f"{name}.json" for name in photos)])
    for name in photos:
        assert np.array_equal(load_rgb(two / name), load_rgb(one / name)), name
    assert "restore, process 0" in ran.stderr and "restore, process 1" in ran.stderr and "all processes" in ran.stderr


def test_a_parquet_dataset_to_parquet_shards_with_cross_photo_batches(astronaut, tiny_checkpoint, tmp_path):
    """A local Parquet dataset (image + id) in, shards out that datasets reads back with every id, each process
    appending its own to a Hub repo (the local stand-in); faces of several photos share batches, formed by
    groups, so 2 processes give the pixels of 1."""
    photos = {f"scan-{index:03d}": photo for index, photo in enumerate(astronaut_variants(astronaut, 6))}
    dataset = write_parquet_dataset(tmp_path / "archive" / "train.parquet", photos)
    flags = ["--dataset", str(dataset), "--output-format", "parquet", "--shard-rows", "2"]
    flags += ["--cross-photo-batch", "--group-size", "3", "--batch-size", "2", "--model", str(tiny_checkpoint)]
    flags += TINY_FLAGS
    one, two = tmp_path / "one-process", tmp_path / "two-processes"
    assert main(["restore", "-o", str(one), *flags]) == 0
    with HubStandIn(tmp_path / "hub") as hub:
        hub_env = {"HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0", "HF_TOKEN": TOKEN}
        ran = launch(["-o", str(two), *flags, "--push-to-hub", REPO_ID], tmp_path, env=hub_env)
        shard_commits = [paths for _, paths in hub.commits if any(path.endswith(".parquet") for path in paths)]
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert summary_counts(ran.stderr) == (6, 0, 0, 0) and TOKEN not in ran.stderr
    published = read_shards(hub.repo_dir(REPO_ID), tmp_path / "cache-hub")
    assert sorted(published) == sorted(photos) and len(shard_commits) == 4  # each shard once, by its process
    rows_two, rows_one = read_shards(two, tmp_path / "cache-two"), read_shards(one, tmp_path / "cache-one")
    assert sorted(rows_two) == sorted(rows_one) == sorted(photos)
    for key, row in rows_two.items():
        assert row["status"] == "restored" and row["faces"] >= 1
        assert np.array_equal(load_rgb(row["image"]["bytes"]), load_rgb(rows_one[key]["image"]["bytes"])), key
    assert len(list((two / "data").glob("train-*.parquet"))) == 4  # 3 photos per process, 2 per shard


def test_a_process_killed_mid_run_then_the_same_command_again(astronaut_folder, tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    flags = [str(astronaut_folder), "-o", str(out), "--output-format", "parquet", "--shard-rows", "1"]
    flags += ["--model", str(tiny_checkpoint), *TINY_FLAGS]
    reference = tmp_path / "reference"
    assert main(["restore", *flags[:1], "-o", str(reference), *flags[3:]]) == 0
    keys = sorted(read_shards(reference, tmp_path / "cache-reference"))

    launcher = subprocess.Popen(
        launch_command(flags), env=launch_environment(tmp_path), stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        worker = _wait_for_first_shard_then_find_worker(launcher, out, local_rank="1")
        worker.send_signal(signal.SIGKILL)
        assert launcher.wait(timeout=120) != 0  # the launcher stops the other process and fails
    finally:
        if launcher.poll() is None:
            launcher.kill()
        launcher.stderr.close()
    done_before = sorted(read_shards(out, tmp_path / "cache-killed"))
    assert 0 < len(done_before) < len(keys), "the kill came too late to test a resume"

    again = launch(flags, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert summary_counts(again.stderr) == (len(keys) - len(done_before), len(done_before), 0, 0)
    rows, expected = read_shards(out, tmp_path / "cache-again"), read_shards(reference, tmp_path / "cache-ref2")
    assert sorted(rows) == keys  # nothing missing, and read_shards fails on any id written twice
    for key in keys:  # without cross-photo batching a resumed photo gets the very pixels of an uninterrupted run
        assert np.array_equal(load_rgb(rows[key]["image"]["bytes"]), load_rgb(expected[key]["image"]["bytes"])), key
    assert not [path for path in out.rglob("*") if path.name.endswith(".tmp")]  # the killed writers' leftovers


def _wait_for_first_shard_then_find_worker(launcher: subprocess.Popen, out: Path, local_rank: str) -> psutil.Process:
    """Once the first shard is written, the worker process of ``local_rank`` (found by its environment)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if launcher.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {launcher.stderr.read().decode()[-3000:]}")
        if list((out / "data").glob("train-*.parquet")) if (out / "data").is_dir() else []:
            for child in psutil.Process(launcher.pid).children(recursive=True):
                try:
                    if child.environ().get("LOCAL_RANK") == local_rank and "authface_core" in child.cmdline():
                        return child
                except psutil.NoSuchProcess:
                    continue
        time.sleep(0.02)
    pytest.fail("no shard was written within 240 s")
