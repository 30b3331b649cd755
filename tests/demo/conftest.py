"""A running demo server for the tests of this folder: the tiny model, on 127.0.0.1, started once."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

# One face, 512x512: the smallest whole photo of ../shared/faces, so the tiny model restores it in seconds.
WHOLE_PHOTO = "whole/diffbir_Audrey_Hepburn.jpg"


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


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    """A plain text file, the classic wrong upload."""
    path = tmp_path / "notes.txt"
    path.write_text("shopping list: eggs, milk\n")
    return path
