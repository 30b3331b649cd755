"""Tiny AuthFace model fixtures: built offline from seeded configs, saved in the released layout,
then loaded through the same code as the real checkpoint (CPU, float32)."""

from __future__ import annotations

import numpy as np
import pytest

FACE_SIZE = 64  # 8x8 latents: a tiny denoiser pass takes milliseconds


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    from authface_core.pipeline.tiny import save_tiny_checkpoint

    return save_tiny_checkpoint(tmp_path_factory.mktemp("checkpoints") / "authface-tiny")


@pytest.fixture(scope="session")
def tiny_pipe(tiny_checkpoint):
    from authface_core.pipeline.loading import load_pipeline

    return load_pipeline(str(tiny_checkpoint), device="cpu", dtype="fp32")


@pytest.fixture(scope="session")
def small_face(astronaut) -> np.ndarray:
    """The astronaut's face region, resized to FACE_SIZE: (64, 64, 3) uint8."""
    import cv2

    return cv2.resize(astronaut[20:240, 140:360], (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)


def seeded(seed: int):
    import torch

    return torch.Generator().manual_seed(seed)
