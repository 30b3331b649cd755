"""Parity with the released inference (EthanLiang99/AuthFace @ cf453b6; ../shared/AUTHFACE_RELEASE.md), checked
against a reference built the release's way and independently of this project's code.

The reference loads each component of a saved checkpoint folder itself, its scheduler too
(``DDPMScheduler.from_pretrained(folder, subfolder="scheduler")``, test_face_xl.py:111), runs stock
diffusers ``StableDiffusionXLControlNetPipeline`` with the release's prompts restated here from
test_face_xl.py, decodes the release's way (pipelines/pipeline_xl.py:1315-1318 and VaeImageProcessor's
rounding) and colour-fixes with the release's wavelet code restated here from
utils/wavelet_color_fix.py:86-134 (through ToTensor / ToPILImage, test_face_xl.py:62-64 and :289). Nothing of
``authface_core`` runs on the reference side except the tiny model's builder, which makes the weights.

The checkpoint is the tiny model with its ControlNet's zero-initialised output convolutions given
random weights, so the ControlNet changes the result and a pipeline that drops it is caught. Every
check runs on CPU in float32 and must match pixel for pixel, through the pipeline and through
``restore_faces`` (the path the CLI and apps take, which builds its scheduler per call by name).
docs/parity.md maps every item of the release checklist to a test or a written reason.
"""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F

from authface_core.errors import AuthFaceError
from authface_core.pipeline.constants import RELEASED_NEGATIVE_PROMPT, RELEASED_PROMPT
from authface_core.restore import RestoreConfig, restore_faces

from .conftest import seeded

# test_face_xl.py:439-442, the default of --added_prompt (the only positive prompt the script reads, :303);
# adjacent literals join without spaces, as Python concatenates them there.
RELEASE_PROMPT = (
    "hyper-realistic portrait, face close-up, super detailed, Cinematic, High Contrast, highly detailed, taken "
    "using a Canon EOS R camera,hyper detailed photo - realistic maximum detail, 32k, ultra HD,extreme meticulous "
    "detailing, skin pore detailing,hyper sharpness, perfect without deformations"
)
# test_face_xl.py:447-450, the default of --negative_prompt (:304).
RELEASE_NEGATIVE_PROMPT = (
    "unreal face, asymmetrical eyes, oil painting, illustration, drawing, art, sketch,cartoon, CG Style, 3D render, "
    "unreal engine, blurring, dirty, messy, worst quality, low quality, frames, watermark, signature, jpeg "
    "artifacts, deformed, lowres, over-smooth, malformed/disproportionate hands/fingers, ugly, easy negative"
)
# option/test/test_base.sh (guidance 8, 50 steps), test_face_xl.py:456 (conditioning scale 1), :465 and :237-252
# (seed 123: set_seed and one generator).
RELEASE_GUIDANCE, RELEASE_STEPS, RELEASE_SEED = 8.0, 50, 123


def release_wavelet_blur(image: torch.Tensor, radius: int) -> torch.Tensor:
    """utils/wavelet_color_fix.py:86-105."""
    kernel_vals = [[0.0625, 0.125, 0.0625], [0.125, 0.25, 0.125], [0.0625, 0.125, 0.0625]]
    kernel = torch.tensor(kernel_vals, dtype=image.dtype, device=image.device)[None, None].repeat(3, 1, 1, 1)
    image = F.pad(image, (radius, radius, radius, radius), mode="replicate")
    return F.conv2d(image, kernel, groups=3, dilation=radius)


def release_wavelet_decomposition(image: torch.Tensor, levels: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """utils/wavelet_color_fix.py:108-120."""
    high_freq = torch.zeros_like(image)
    for i in range(levels):
        radius = 2**i
        low_freq = release_wavelet_blur(image, radius)
        high_freq += image - low_freq
        image = low_freq
    return high_freq, low_freq


def release_wavelet_color_fix(output: np.ndarray, source: np.ndarray) -> np.ndarray:
    """utils/wavelet_color_fix.py:34-50 and 123-134 on one (H, W, 3) uint8 image: ToTensor, the output's high band
    plus the source's low band, clamp, ToPILImage (``mul(255).byte()``, a truncation)."""

    def to_tensor(image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(image).permute(2, 0, 1).float().div(255)[None]

    content_high, _ = release_wavelet_decomposition(to_tensor(output))
    _, style_low = release_wavelet_decomposition(to_tensor(source))
    result = (content_high + style_low)[0].clamp_(0.0, 1.0)
    return result.mul(255).byte().permute(1, 2, 0).numpy()


def release_decode(vae, latents: torch.Tensor) -> np.ndarray:
    """pipelines/pipeline_xl.py:1315-1318 (fp32 latents / scaling_factor through the fp32 VAE), then
    VaeImageProcessor.postprocess to PIL: (x / 2 + 0.5).clamp(0, 1), x * 255 rounded."""
    with torch.no_grad():
        image = vae.decode(latents.to(torch.float32) / vae.config.scaling_factor, return_dict=False)[0]
    pixels = (image / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().numpy()
    return (pixels * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def parity_checkpoint(tmp_path_factory):
    """The tiny model in the released layout, its ControlNet's output convolutions randomised (seeded)."""
    from authface_core.pipeline.pipeline_authface_sdxl import AuthFacePipeline
    from authface_core.pipeline.tiny import build_tiny_components

    components = build_tiny_components(seed=0)
    controlnet = components["controlnet"]
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for block in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            block.weight.normal_(0, 0.05, generator=generator)
    folder = tmp_path_factory.mktemp("parity") / "authface-tiny"
    AuthFacePipeline(**components, smoke_test_model=True).save_pretrained(folder, safe_serialization=True)
    config_path = folder / "controlnet" / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "use_pre_img_encoder": False}))
    return folder


@pytest.fixture(scope="module")
def ours(parity_checkpoint):
    from authface_core.pipeline.loading import load_pipeline

    return load_pipeline(str(parity_checkpoint), device="cpu", dtype="fp32")


@pytest.fixture(scope="module")
def release(parity_checkpoint):
    """Stock diffusers from the saved folder, one component at a time as test_face_xl.py:107-199 loads them."""
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        DDPMScheduler,
        StableDiffusionXLControlNetPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    folder = parity_checkpoint
    pipe = StableDiffusionXLControlNetPipeline(
        scheduler=DDPMScheduler.from_pretrained(folder, subfolder="scheduler"),
        tokenizer=CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer"),
        tokenizer_2=CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer_2"),
        text_encoder=CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", attn_implementation="eager"),
        text_encoder_2=CLIPTextModelWithProjection.from_pretrained(
            folder, subfolder="text_encoder_2", attn_implementation="eager"
        ),
        unet=UNet2DConditionModel.from_pretrained(folder, subfolder="unet"),
        controlnet=ControlNetModel.from_pretrained(folder, subfolder="controlnet"),
        vae=AutoencoderKL.from_pretrained(folder, subfolder="vae"),
        add_watermarker=False,  # pipeline_xl.py:177
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def release_restore(
    release, faces: np.ndarray, *, steps: int = RELEASE_STEPS, guidance: float = RELEASE_GUIDANCE, **call
) -> tuple[np.ndarray, np.ndarray]:
    """(decoded, colour-fixed) uint8 faces as the release makes them for one batch sharing one generator."""
    latents = release(
        prompt=[RELEASE_PROMPT] * len(faces),
        negative_prompt=[RELEASE_NEGATIVE_PROMPT] * len(faces),
        image=[PIL.Image.fromarray(face) for face in faces],
        num_inference_steps=steps,
        guidance_scale=guidance,
        controlnet_conditioning_scale=1.0,
        output_type="latent",
        **{"generator": seeded(RELEASE_SEED), **call},
    ).images
    decoded = release_decode(release.vae, latents)
    return decoded, np.stack([release_wavelet_color_fix(out, face) for out, face in zip(decoded, faces, strict=True)])


@pytest.fixture(scope="module")
def faces(small_face) -> np.ndarray:
    return np.stack([small_face, small_face[:, ::-1]])  # a batch of two faces shares one generator, as released


@pytest.fixture(scope="module")
def release_output(release, faces) -> tuple[np.ndarray, np.ndarray]:
    return release_restore(release, faces)


def test_released_prompts_are_the_release_text():
    assert RELEASED_PROMPT == RELEASE_PROMPT and RELEASED_NEGATIVE_PROMPT == RELEASE_NEGATIVE_PROMPT


def test_released_settings_match_the_release_pixel_for_pixel(ours, faces, release_output):
    decoded, expected = release_output
    actual = ours(faces, generator=seeded(RELEASE_SEED)).images  # every default is the released setting
    assert actual.dtype == np.uint8 and actual.shape == faces.shape
    assert np.array_equal(actual, expected), f"{np.count_nonzero(actual != expected)} values differ"
    # The comparison covers the colour fix and the ControlNet: without either the output is another.
    assert np.count_nonzero(expected != decoded) > faces.size // 2
    without_controlnet = ours(faces, controlnet_conditioning_scale=0.0, generator=seeded(RELEASE_SEED)).images
    assert not np.array_equal(without_controlnet, expected)


def test_restore_faces_gives_the_release_output(ours, faces, release_output):
    """The path the CLI and the apps take: the scheduler is built per call from its name ("ddpm")."""
    restored = restore_faces(ours, faces, RestoreConfig(face_size=faces.shape[1], check_identity=False))
    assert np.array_equal(restored, release_output[1]), f"{np.count_nonzero(restored != release_output[1])} differ"


@pytest.mark.parametrize("fidelity", [0.5, 0.8])
def test_fidelity_runs_the_last_steps_from_the_noised_input_with_the_controlnet(ours, release, faces, fidelity):
    """At fidelity f the release's sampler runs its last floor(N (1 - f)) steps, from the input's latent (VAE
    posterior mode, scaled) noised to the first of them, with the ControlNet as at f = 0 (the img2img rule of
    diffusers with strength 1 - f); the noise is the generator's first draw, as at f = 0."""
    from diffusers import DDPMScheduler
    from diffusers.utils.torch_utils import randn_tensor

    steps = 10
    schedule = DDPMScheduler.from_config(release.scheduler.config)
    schedule.set_timesteps(steps)
    tail = schedule.timesteps[steps - int(steps * (1 - fidelity) + 1e-9) :]
    pixels = torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        clean = release.vae.encode(pixels * 2 - 1).latent_dist.mode() * release.vae.config.scaling_factor
    generator = seeded(RELEASE_SEED)
    noise = randn_tensor(clean.shape, generator=generator, dtype=clean.dtype)
    start = schedule.add_noise(clean, noise, tail[:1].repeat(len(faces)))
    _, expected = release_restore(
        release, faces, steps=steps, timesteps=tail.tolist(), latents=start, generator=generator
    )
    actual = ours(faces, num_inference_steps=steps, fidelity=fidelity, generator=seeded(RELEASE_SEED)).images
    assert np.array_equal(actual, expected), f"{np.count_nonzero(actual != expected)} values differ"


def test_without_guidance_matches_the_release_single_branch(ours, release, faces):
    decoded, _ = release_restore(release, faces[:1], steps=5, guidance=1.0)
    actual = ours(faces[:1], num_inference_steps=5, guidance_scale=1.0, color_fix="none", generator=seeded(123))
    assert np.array_equal(actual.images, decoded)


def _record_unet_inputs(pipe):
    calls = []

    def hook(module, args, kwargs):
        calls.append({"batch": args[0].shape[0], "time_ids": kwargs["added_cond_kwargs"]["time_ids"].clone()})

    return calls, pipe.unet.register_forward_pre_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("guidance, branches", [(8.0, 2), (1.0, 1), (0.5, 1)])
def test_cfg_runs_both_branches_only_when_guidance_above_one(ours, small_face, guidance, branches):
    calls, handle = _record_unet_inputs(ours)
    try:
        ours(np.stack([small_face] * 3), num_inference_steps=2, guidance_scale=guidance, generator=seeded(0))
    finally:
        handle.remove()
    assert [call["batch"] for call in calls] == [3 * branches] * 2


def test_time_ids_are_control_image_size_for_both_cfg_halves(ours, astronaut):
    face = astronaut[:48, :80]  # non-square: H=48, W=80
    calls, handle = _record_unet_inputs(ours)
    try:
        ours(face[None], num_inference_steps=1, generator=seeded(0))
    finally:
        handle.remove()
    expected = torch.tensor([[48, 80, 0, 0, 48, 80]] * 2, dtype=torch.float32)
    assert torch.equal(calls[0]["time_ids"], expected)


def test_control_image_is_unnormalised_pixels_and_never_resized(ours, small_face):
    control = ours.prepare_control_image(small_face[None])
    assert control.shape == (1, 3, 64, 64) and control.dtype == torch.float32
    assert torch.equal(control[0].permute(1, 2, 0), torch.from_numpy(small_face).float() / 255)
    with pytest.raises(ValueError, match="multiples of 8"):
        ours(small_face[:60, :60][None], num_inference_steps=1)


def test_decode_raises_on_nan_like_the_release(ours):
    latents = torch.full((1, 4, 8, 8), float("nan"))
    with pytest.raises(AuthFaceError, match="NaN"):
        ours.decode_latents(latents)


def test_restore_config_defaults_are_the_released_settings():
    config = RestoreConfig()
    assert (config.num_inference_steps, config.guidance_scale, config.seed, config.scheduler) == (
        RELEASE_STEPS,
        RELEASE_GUIDANCE,
        RELEASE_SEED,
        "ddpm",
    )
    assert (config.fidelity, config.color_fix, config.face_size) == (0.0, "wavelet", 512)
    assert (config.prompt, config.negative_prompt) == (RELEASE_PROMPT, RELEASE_NEGATIVE_PROMPT)
