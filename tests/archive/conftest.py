"""Fixtures of the archive tests: the tiny model, folders and a Parquet dataset of photos with faces, and a
launcher for ``accelerate launch`` with 2 CPU processes (gloo), started as a user would start it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT

FACE_SIZE = 64  # 8x8 latents: the tiny model restores a face in milliseconds
# The settings every test run shares: the tiny model on CPU, small faces, 2 steps, no identity check (dlib's
# descriptor would dominate the time).
TINY_FLAGS = ["--device", "cpu", "--face-size", str(FACE_SIZE), "--steps", "2", "--seed", "7", "--no-identity-check"]
# The photos of ../shared/faces/whole the real-photo tests restore: 1 to 3 faces each, 182-512 px.
REAL_PHOTOS = (
    "diffbir_Harry_Potter.jpg",
    "diffbir_real47_1.jpg",
    "diffbir_Audrey_Hepburn.jpg",
    "gfpgan_Blake_Lively.jpg",
)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from authface_core.pipeline.tiny import save_tiny_checkpoint

    return save_tiny_checkpoint(tmp_path_factory.mktemp("checkpoints") / "authface-tiny")


@pytest.fixture(scope="session")
def tiny_pipe(tiny_checkpoint):
    from authface_core.pipeline.loading import load_pipeline

    return load_pipeline(str(tiny_checkpoint), device="cpu", dtype="fp32")


def astronaut_variants(astronaut: np.ndarray, count: int) -> list[np.ndarray]:
    """``count`` different photos of the astronaut, each with her face: shifted, mirrored, re-cropped square
    (so they serve as aligned crops too)."""
    photos = []
    for index in range(count):
        photo = np.roll(astronaut, 11 * index, axis=1)
        photo = photo[:, ::-1] if index % 2 else photo
        side = 512 - 8 * (index % 3)
        photos.append(np.ascontiguousarray(photo[:side, :side]))
    return photos


@pytest.fixture
def astronaut_folder(tmp_path, astronaut) -> Path:
    """Five photos of the astronaut, PNG and JPEG, one in a subfolder."""
    from authface_core.io import save_image

    folder = tmp_path / "scans"
    names = ["a.png", "b.jpg", "c.png", "1998/d.png", "1998/e.jpg"]
    for name, photo in zip(names, astronaut_variants(astronaut, len(names)), strict=True):
        save_image(folder / name, photo)
    return folder


@pytest.fixture
def real_photos_folder(tmp_path, shared_faces) -> Path:
    """A few real whole photos of ../shared/faces (linked, never copied into the repository)."""
    folder = tmp_path / "real"
    folder.mkdir()
    for name in REAL_PHOTOS:
        (folder / name).symlink_to(shared_faces / "whole" / name)
    return folder


def write_parquet_dataset(path: Path, photos: dict[str, np.ndarray]) -> Path:
    """A local Parquet dataset as ``datasets`` writes one: an ``id`` column and an ``image`` column (PNG bytes)."""
    import datasets

    from authface_core.io import encode_image

    ids = list(photos)
    dataset = datasets.Dataset.from_dict(
        {"id": ids, "image": [{"bytes": encode_image(photos[key], None, format="PNG"), "path": None} for key in ids]},
        features=datasets.Features({"id": datasets.Value("string"), "image": datasets.Image()}),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.to_parquet(str(path))
    return path


def read_shards(folder: Path, cache: Path) -> dict[str, dict]:
    """Every row of the Parquet shards under ``folder/data``, read back with ``datasets.load_dataset``, by id;
    a repeated id fails the test."""
    import datasets

    loaded = datasets.load_dataset(
        "parquet", data_files=str(folder / "data" / "*.parquet"), split="train", cache_dir=str(cache)
    ).cast_column("image", datasets.Image(decode=False))
    rows = {}
    for row in loaded:
        assert row["id"] not in rows, f"{row['id']} written twice"
        rows[row["id"]] = row
    return rows


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


ACCELERATE_CONFIG = REPO_ROOT / "configs" / "accelerate" / "restore" / "2cpu.yaml"


def launch_command(restore_args: list[str]) -> list[str]:
    """``accelerate launch`` of ``python -m authface_core restore`` with the 2-process CPU config: torchrun starts
    the processes and, the model being on the CPU, they join a gloo process group."""
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE_CONFIG),
        "--main_process_port", str(free_port()), "-m", "authface_core", "restore", *restore_args,
    ]  # fmt: skip


def launch_environment(tmp_path: Path) -> dict[str, str]:
    """This checkout first on the path, one thread per process (as a 1-process test run has), offline, caches in
    ``tmp_path``."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_CACHE": str(tmp_path / "datasets-cache"),
        "TOKENIZERS_PARALLELISM": "false",
    }


def launch(restore_args: list[str], tmp_path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**launch_environment(tmp_path), **(env or {})}
    return subprocess.run(launch_command(restore_args), env=environment, capture_output=True, text=True, timeout=300)
