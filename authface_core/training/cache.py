"""Encodings computed once before training and stored as dataset columns (``cache_latents``,
``cache_text_embeddings``).

Each cache is a ``datasets`` map over the prepared training set, written to the datasets cache
under a fingerprint of the dataset, the base checkpoint's files and the settings that shape the
encoding, so a rerun or a resumed run reuses it and a changed checkpoint recomputes it. The main
process computes it first; the other processes then read it from the cache.

- VAE latents: the posterior's parameters (mean and log-variance, (2C, h, w)) of each training
  image at the training resolution, so every step still draws a fresh posterior sample, exactly as
  :func:`~authface_core.training.diffusion.encode_pixels` would from the same generator.
- Text embeddings (Stage I): each caption's (77, D) hidden states and (P,) pooled embedding.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .data import (
    FACE_COLUMN,
    LATENT_COLUMN,
    POOLED_EMBEDS_COLUMN,
    PROMPT_EMBEDS_COLUMN,
    pil_to_training_rgb,
    sdxl_resize_and_crop,
    to_model_pixels,
)
from .diffusion import encode_latent_distribution

CACHE_BATCH_SIZE = 8  # images encoded per VAE call while caching


def checkpoint_fingerprint(folder: Path, *subfolders: str) -> list:
    """What identifies a checkpoint's weights without reading them: its path and each weight file's size and mtime."""
    files = sorted(p for name in subfolders for p in (folder / name).iterdir() if p.suffix in (".safetensors", ".bin"))
    return [str(folder.resolve()), [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]]


def add_encoded_columns(
    dataset, encode_batch: Callable[[dict], dict[str, np.ndarray]], features: dict, key: list, description: str
):
    """``dataset`` with the columns ``encode_batch`` computes from a batch of rows, cached under ``key``."""
    from datasets.fingerprint import Hasher

    all_features = dataset.features.copy()
    all_features.update(features)
    return dataset.map(
        encode_batch,
        batched=True,
        batch_size=CACHE_BATCH_SIZE,
        features=all_features,
        new_fingerprint=Hasher.hash([dataset._fingerprint, key]),
        desc=description,
    )


def cache_face_latents(dataset, vae, resolution: int, key: list):
    """Stage II: the VAE posterior of each aligned face (``face`` column) resized to ``resolution``."""
    from datasets import Array3D

    def encode_batch(batch: dict) -> dict:
        faces = [pil_to_training_rgb(face) for face in batch[FACE_COLUMN]]
        return {LATENT_COLUMN: _encode(vae, [_resized_pixels(face, resolution) for face in faces])}

    features = {LATENT_COLUMN: Array3D(_latent_shape(vae, resolution), "float32")}
    return add_encoded_columns(dataset, encode_batch, features, ["face latents", resolution, key], "Caching latents")


def cache_photo_latents(dataset, vae, image_column: str, resolution: int, key: list):
    """Stage I: the VAE posterior of each photo's centre crop at ``resolution`` (no random crop or flip)."""
    from datasets import Array3D

    def encode_batch(batch: dict) -> dict:
        crops = [
            sdxl_resize_and_crop(pil_to_training_rgb(image), resolution, None, random_crop=False, random_flip=False)[0]
            for image in batch[image_column]
        ]
        return {LATENT_COLUMN: _encode(vae, [to_model_pixels(crop) for crop in crops])}

    features = {LATENT_COLUMN: Array3D(_latent_shape(vae, resolution), "float32")}
    return add_encoded_columns(dataset, encode_batch, features, ["photo latents", resolution, key], "Caching latents")


def cache_caption_embeddings(dataset, encode_prompts: Callable[[list[str]], tuple], caption_column: str, key: list):
    """Stage I: each caption's text embeddings; ``encode_prompts(captions)`` -> ((B, 77, D), (B, P)) tensors."""
    from datasets import Array2D, List, Value

    hidden, pooled = encode_prompts([""])

    def encode_batch(batch: dict) -> dict:
        captions = [caption or "" for caption in batch[caption_column]]
        with torch.no_grad():
            prompt_embeds, pooled_embeds = encode_prompts(captions)
        return {
            PROMPT_EMBEDS_COLUMN: prompt_embeds.float().cpu().numpy(),
            POOLED_EMBEDS_COLUMN: pooled_embeds.float().cpu().numpy(),
        }

    features = {
        PROMPT_EMBEDS_COLUMN: Array2D(tuple(hidden.shape[1:]), "float32"),
        POOLED_EMBEDS_COLUMN: List(Value("float32"), length=pooled.shape[1]),
    }
    return add_encoded_columns(dataset, encode_batch, features, ["caption embeddings", key], "Caching text embeddings")


def _resized_pixels(face: np.ndarray, resolution: int) -> torch.Tensor:
    from ..io import resize_image

    return to_model_pixels(resize_image(face, resolution, resolution))


def _encode(vae, pixels: list[torch.Tensor]) -> np.ndarray:
    batch = torch.stack(pixels).to(vae.device)
    return encode_latent_distribution(vae, batch).cpu().numpy()


def _latent_shape(vae, resolution: int) -> tuple[int, int, int]:
    """(2C, h, w) of the posterior parameters for a resolution x resolution image."""
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    return (2 * vae.config.latent_channels, resolution // scale, resolution // scale)
