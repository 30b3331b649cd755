"""Parity with the released inference (../shared/AUTHFACE_RELEASE.md), checked against stock diffusers.

At fidelity 0 with the released settings, AuthFacePipeline must give, pixel for pixel on CPU in
fp32, what stock ``StableDiffusionXLControlNetPipeline`` gives from the same components, seed and
prompts, decoded the release's way (section 2: latents in fp32 / scaling_factor, fp32 VAE,
``(x * 0.5 + 0.5).clamp(0, 1)``, round to uint8), then wavelet-fixed on the uint8 image (section 4).
Checklist items without a test here are argued in docs/parity.md.
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import StableDiffusionXLControlNetPipeline

from authface_core.errors import AuthFaceError
from authface_core.pipeline.color_fix import apply_color_fix
from authface_core.pipeline.constants import RELEASED_NEGATIVE_PROMPT, RELEASED_PROMPT, RELEASED_SEED
from authface_core.pipeline.pipeline_authface_sdxl import AuthFacePipeline
from authface_core.pipeline.tiny import build_tiny_components
from authface_core.restore import RestoreConfig

from .conftest import seeded


@pytest.fixture(scope="module")
def pipelines():
    components = build_tiny_components(seed=0)
    ours = AuthFacePipeline(**components)
    stock = StableDiffusionXLControlNetPipeline(**components, add_watermarker=False)
    for pipe in (ours, stock):
        pipe.set_progress_bar_config(disable=True)
    return ours, stock


def stock_release_decode(stock, faces: np.ndarray, steps: int, guidance: float) -> np.ndarray:
    """The release's inference on stock diffusers: latents out, then its fp32 decode path."""
    latents = stock(
        prompt=[RELEASED_PROMPT] * len(faces),
        negative_prompt=[RELEASED_NEGATIVE_PROMPT] * len(faces),
        image=[PIL.Image.fromarray(face) for face in faces],
        num_inference_steps=steps,
        guidance_scale=guidance,
        controlnet_conditioning_scale=1.0,
        generator=seeded(RELEASED_SEED),
        output_type="latent",
    ).images
    with torch.no_grad():
        decoded = stock.vae.decode(latents.float() / stock.vae.config.scaling_factor, return_dict=False)[0]
    return np.stack([np.asarray(image) for image in stock.image_processor.postprocess(decoded, output_type="pil")])


def test_released_settings_match_stock_pipeline_pixel_for_pixel(pipelines, small_face):
    ours, stock = pipelines
    config = RestoreConfig()  # the released defaults
    faces = np.stack([small_face, small_face[:, ::-1]])  # a batch of two faces shares one generator, as released
    expected_decode = stock_release_decode(stock, faces, config.num_inference_steps, config.guidance_scale)
    expected = apply_color_fix(expected_decode, faces, "wavelet")
    actual = ours(faces, generator=seeded(config.seed)).images
    assert actual.dtype == np.uint8 and actual.shape == faces.shape
    assert np.array_equal(actual, expected), f"{np.count_nonzero(actual != expected)} pixels differ"
    # and the colour fix really acted (the comparison above would be weaker if it were a no-op)
    assert np.count_nonzero(expected != expected_decode) > faces.size // 2


def test_without_guidance_matches_stock_single_branch(pipelines, small_face):
    ours, stock = pipelines
    expected = stock_release_decode(stock, small_face[None], steps=5, guidance=1.0)
    actual = ours(
        small_face[None], num_inference_steps=5, guidance_scale=1.0, color_fix="none", generator=seeded(RELEASED_SEED)
    ).images
    assert np.array_equal(actual, expected)


def _record_unet_inputs(pipe):
    calls = []

    def hook(module, args, kwargs):
        calls.append({"batch": args[0].shape[0], "time_ids": kwargs["added_cond_kwargs"]["time_ids"].clone()})

    return calls, pipe.unet.register_forward_pre_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("guidance, branches", [(8.0, 2), (1.0, 1), (0.5, 1)])
def test_cfg_runs_both_branches_only_when_guidance_above_one(pipelines, small_face, guidance, branches):
    ours, _ = pipelines
    calls, handle = _record_unet_inputs(ours)
    try:
        ours(np.stack([small_face] * 3), num_inference_steps=2, guidance_scale=guidance, generator=seeded(0))
    finally:
        handle.remove()
    assert [call["batch"] for call in calls] == [3 * branches] * 2


def test_time_ids_are_control_image_size_for_both_cfg_halves(pipelines, astronaut):
    ours, _ = pipelines
    face = astronaut[:48, :80]  # non-square: H=48, W=80
    calls, handle = _record_unet_inputs(ours)
    try:
        ours(face[None], num_inference_steps=1, generator=seeded(0))
    finally:
        handle.remove()
    expected = torch.tensor([[48, 80, 0, 0, 48, 80]] * 2, dtype=torch.float32)
    assert torch.equal(calls[0]["time_ids"], expected)


def test_control_image_is_unnormalised_pixels_and_never_resized(pipelines, small_face):
    ours, _ = pipelines
    control = ours.prepare_control_image(small_face[None])
    assert control.shape == (1, 3, 64, 64) and control.dtype == torch.float32
    assert torch.equal(control[0].permute(1, 2, 0), torch.from_numpy(small_face).float() / 255)
    with pytest.raises(ValueError, match="multiples of 8"):
        ours(small_face[:60, :60][None], num_inference_steps=1)


def test_decode_raises_on_nan_like_the_release(pipelines, small_face):
    ours, _ = pipelines
    latents = torch.full((1, 4, 8, 8), float("nan"))
    with pytest.raises(AuthFaceError, match="NaN"):
        ours.decode_latents(latents)


def test_restore_config_defaults_are_the_released_settings():
    config = RestoreConfig()
    assert (config.num_inference_steps, config.guidance_scale, config.seed, config.scheduler) == (50, 8.0, 123, "ddpm")
    assert (config.fidelity, config.color_fix, config.face_size) == (0.0, "wavelet", 512)
    # the literals join without spaces, exactly as in test_face_xl.py
    assert "Canon EOS R camera,hyper detailed photo" in config.prompt and config.prompt.endswith(
        "perfect without deformations"
    )
    assert "art, sketch,cartoon, CG Style" in config.negative_prompt and config.negative_prompt.endswith(
        "easy negative"
    )
