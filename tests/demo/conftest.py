"""A running demo server for the tests of this folder (the tiny model, on 127.0.0.1, started once) and the photos
they send it, made from scikit-image's public-domain astronaut so that they run on a fresh clone."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

# One face, 512x512: the smallest whole photo of ../shared/faces, so the tiny model restores it in seconds.
WHOLE_PHOTO = "whole/diffbir_Audrey_Hepburn.jpg"
# The /restore endpoint's outputs, in order (what gradio_client returns).
OUTPUTS = (
    "comparison",
    "png",
    "report",
    "summary",
    "faces_found",
    "gallery",
    "seed",
    "preview",
    "status",
    "candidates",
)
# A 4200x700 photo: at x4 its result is 16800 px wide, past WebP's 16383 px limit that once crashed the page.
WIDE_SIZE = (4200, 700)


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(model: str) -> tuple[object, str]:
    """Build the demo for ``model`` and serve it on 127.0.0.1 as the entry point does, without blocking."""
    from authface_core.model_config import ModelConfig
    from demo.app import build_demo
    from demo.app import launch as launch_demo

    demo = build_demo(ModelConfig(model=model))
    launch_demo(demo, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    return demo, demo.local_url


@pytest.fixture(scope="session")
def tiny_app_url() -> Iterator[str]:
    """URL of the demo serving the random-weight tiny model."""
    demo, url = launch("tiny")
    yield url
    demo.close()


@pytest.fixture(scope="session")
def whole_photo(shared_faces: Path) -> Path:
    """A real whole photo with one face."""
    return shared_faces / WHOLE_PHOTO


def face_of(astronaut: np.ndarray, side: int) -> np.ndarray:
    """The astronaut's head and shoulders, resized to ``side`` x ``side``: a face dlib finds at any size here."""
    import cv2

    crop = astronaut[0:300, 100:400]
    return cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA if side < 300 else cv2.INTER_LANCZOS4)


@pytest.fixture(scope="session")
def photos(tmp_path_factory, astronaut) -> dict[str, Path]:
    """Photos for the demo, written once: ``astronaut`` (512 px, one face), ``gray`` (the same, grayscale),
    ``wide`` (4200x700, two faces: the smaller on the left, the larger, which dlib finds first, on the right),
    ``crop_1024`` (an FFHQ-aligned 1024 px face crop), ``wall`` (160x120, no face)."""
    from PIL import Image

    from authface_core.faces.align import align_face
    from authface_core.faces.detect import detect_faces
    from authface_core.pipeline.color_fix import to_luminance

    folder = tmp_path_factory.mktemp("demo-photos")
    wide = np.full((WIDE_SIZE[1], WIDE_SIZE[0], 3), 128, np.uint8)
    wide[100:600, 600:1100] = face_of(astronaut, 500)
    wide[:, 2900:3600] = face_of(astronaut, 700)
    images = {
        "astronaut": astronaut,
        "gray": to_luminance(astronaut),
        "wide": wide,
        "crop_1024": align_face(astronaut, detect_faces(astronaut)[0], 1024).image,
        "wall": np.full((120, 160, 3), (128, 120, 110), np.uint8),
    }
    paths = {}
    for name, image in images.items():
        paths[name] = folder / f"{name}.png"
        Image.fromarray(image).save(paths[name])
    return paths


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    """A plain text file, the classic wrong upload."""
    path = tmp_path / "notes.txt"
    path.write_text("shopping list: eggs, milk\n")
    return path
