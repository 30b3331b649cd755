"""What a validation leaves: images under ``output_dir/validation/step-N/`` and scores in the metrics log.

Scores use the evaluation's own functions: NIQE (``authface_core.niqe``; lower is more natural,
defined from 192 px) and, for restorations, the dlib identity similarity of each output to its
input (``faces.compare``, as the evaluation and the authenticity report measure it). A face dlib cannot find, or an
image NIQE cannot score, is left out and counted, never given a made-up value.

Decoding runs outside autocast in float32: the SDXL VAE overflows in fp16 (NaN), and a run in
fp16 mixed precision must not stop at its first validation.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
import torch

from ..io import save_image

logger = logging.getLogger(__name__)


def autocast_unless_fp32(device: torch.device, dtype: torch.dtype):
    """Autocast to the frozen models' dtype for the denoising loop (a no-op in float32)."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def decode_latents_fp32(vae, latents: torch.Tensor) -> np.ndarray:
    """Scaled latents (N, C, h, w) -> (N, H, W, 3) uint8 through the VAE in float32 with autocast off."""
    from diffusers.image_processor import VaeImageProcessor

    with torch.no_grad(), torch.autocast(latents.device.type, enabled=False):
        decoded = vae.decode(latents.float() / vae.config.scaling_factor, return_dict=False)[0]
    return (VaeImageProcessor().postprocess(decoded.float(), output_type="np") * 255).round().astype(np.uint8)


def image_scores(images: np.ndarray) -> dict[str, float]:
    """Mean NIQE of (N, H, W, 3) uint8 images over those NIQE can score, and how many it scored."""
    from ..niqe import niqe_or_none

    scores = [score for score in map(niqe_or_none, images) if score is not None]
    return {"validation_niqe_scored": float(len(scores))} | (
        {"validation_niqe": float(np.mean(scores))} if scores else {}
    )


def identity_scores(inputs: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    """Mean dlib identity similarity of each output face to its input face, over the pairs where dlib finds both
    faces, and how many those are."""
    from ..faces.compare import compare_faces, measure_face

    compared = [compare_faces(measure_face(out), measure_face(inp)) for inp, out in zip(inputs, outputs, strict=True)]
    similarities = [scores.similarity for scores in compared if scores is not None]
    return {"validation_identity_found": float(len(similarities))} | (
        {"validation_identity_similarity": float(np.mean(similarities))} if similarities else {}
    )


def save_validation_images(output_dir: str | Path, step: int, images: list[np.ndarray], accelerator) -> Path:
    """Write ``validation/step-{step}/NN.png`` and show them in TensorBoard when it is a tracker."""
    folder = Path(output_dir) / "validation" / f"step-{step}"
    for index, image in enumerate(images):
        save_image(folder / f"{index:02d}.png", image)
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_images("validation", np.stack(images), step, dataformats="NHWC")
    logger.info("validation images written to %s", folder)
    return folder
