"""AuthFacePipeline: SDXL + a pixel ControlNet on the degraded face, with a fidelity control.

Built only from diffusers' and transformers' public classes, so the released checkpoint
(``Ethanliang99/AuthFace``: ``scheduler/ text_encoder/ text_encoder_2/ tokenizer/ tokenizer_2/
vae/ unet/ controlnet/``) loads as it is. At ``fidelity=0`` it reproduces the released inference
(``EthanLiang99/AuthFace`` ``pipelines/pipeline_xl.py`` + ``test_face_xl.py``) step for step; see
``docs/parity.md`` for the checklist and the test that checks it against stock
``StableDiffusionXLControlNetPipeline``.

Fidelity, precisely. With N = ``num_inference_steps`` and the scheduler's N timesteps
t_0 > t_1 > ... > t_{N-1}, the pipeline runs the last K = floor(N * (1 - fidelity)) of them:

- K = N (``fidelity=0``, the release): start from pure noise, x = sigma_init * eps.
- 0 < K < N: start from the input's latent noised to the first step that is run,
  x = add_noise(E(input), eps, t_{N-K}), where E is the VAE encoder's mean times the scaling
  factor (the img2img rule of diffusers with ``strength = 1 - fidelity``).
- K = 0 (``fidelity=1``): no denoising; the output is the input through the VAE.

A larger fidelity starts later in the chain from a less noisy copy of the input, so the
generative prior can move the result less far from it. The noise eps is the same draw for every
fidelity, so a seed means the same thing at every setting.

Per-call state stays in the call: each call builds its own scheduler (the kind named by its
``scheduler`` argument, from the loaded scheduler's config), because a scheduler keeps the timesteps
and step index of the run it serves. Threads may therefore share one pipeline. The properties
``guidance_scale`` and ``num_timesteps`` report the latest call, for step callbacks, as in diffusers.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    DDIMScheduler,
    DDPMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    UNet2DConditionModel,
    UniPCMultistepScheduler,
)
from diffusers.pipelines.pipeline_utils import StableDiffusionMixin
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput, replace_example_docstring
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from ..errors import AuthFaceError, UnsupportedCheckpointError
from .color_fix import apply_color_fix
from .constants import (
    COLOR_FIX_METHODS,
    MAX_INFERENCE_STEPS,
    RELEASED_COLOR_FIX,
    RELEASED_CONDITIONING_SCALE,
    RELEASED_GUIDANCE_SCALE,
    RELEASED_NEGATIVE_PROMPT,
    RELEASED_NUM_INFERENCE_STEPS,
    RELEASED_PROMPT,
    SCHEDULER_NAMES,
)

# The scheduler of each name users pick from (constants.SCHEDULER_NAMES, in its order), each built from the
# checkpoint's scheduler config with these overrides.
SCHEDULERS: dict[str, tuple[type[SchedulerMixin], dict]] = dict(
    zip(
        SCHEDULER_NAMES,
        (
            (DDPMScheduler, {}),  # ddpm: as released
            (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),  # dpmpp
            (UniPCMultistepScheduler, {}),  # unipc
            (DDIMScheduler, {}),  # ddim
            (EulerDiscreteScheduler, {}),  # euler
        ),
        strict=True,
    )
)

# SDXL latent -> RGB linear map for previews (ComfyUI ``comfy/latent_formats.py``, class SDXL):
# rgb = latents^T @ factors + bias, in [-1, 1].
SDXL_LATENT_RGB_FACTORS = (
    (0.3651, 0.4232, 0.4341),
    (-0.2533, -0.0042, 0.1068),
    (0.1076, 0.1111, -0.0362),
    (-0.3165, -0.2492, -0.2188),
)
SDXL_LATENT_RGB_BIAS = (0.1084, -0.0175, -0.0011)

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> from authface_core.pipeline.loading import load_pipeline
        >>> from authface_core.io import load_rgb

        >>> pipe = load_pipeline("Ethanliang99/AuthFace")  # or a local folder, or "tiny"
        >>> face = load_rgb("aligned_face.png")  # (512, 512, 3) uint8, an FFHQ-aligned face
        >>> generator = torch.Generator(pipe.device).manual_seed(123)
        >>> restored = pipe(face[None], fidelity=0.0, generator=generator).images[0]
        ```
"""


@dataclass
class AuthFacePipelineOutput(BaseOutput):
    """Args:
    images: (N, H, W, 3) uint8 array, a list of PIL images, or (N, 4, H/8, W/8) latents for
        ``output_type="latent"``.
    """

    images: np.ndarray | list[PIL.Image.Image] | torch.Tensor


def check_pixel_controlnet(controlnet: ControlNetModel) -> None:
    """Refuse the release's ``use_pre_img_encoder: true`` variant (a 4-channel latent condition).

    The released inference feeds 3-channel pixels and never VAE-encodes (pipeline_xl.py:727-779),
    so the released ControlNet has the flag false and is the stock class; no latent-variant
    checkpoint is known to run.
    """
    if controlnet.config.get("use_pre_img_encoder", False):
        raise UnsupportedCheckpointError(
            "this ControlNet has use_pre_img_encoder: true (a 4-channel latent conditioning input); "
            "AuthFace Studio runs the released pixel ControlNet (use_pre_img_encoder: false) only"
        )
    in_channels = controlnet.controlnet_cond_embedding.conv_in.in_channels
    if in_channels != 3:
        raise UnsupportedCheckpointError(
            f"this ControlNet takes {in_channels}-channel conditioning; the released one takes 3 (RGB pixels)"
        )


def scheduler_from_name(name: str, config) -> SchedulerMixin:
    """A scheduler of the named kind (see ``SCHEDULERS``) from a checkpoint's scheduler config."""
    if name not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {sorted(SCHEDULERS)}, got {name!r}")
    scheduler_class, overrides = SCHEDULERS[name]
    return scheduler_class.from_config(config, **overrides)


def latents_to_rgb_preview(latents: torch.Tensor) -> np.ndarray:
    """A cheap preview of SDXL latents (N, 4, h, w) -> (N, h, w, 3) uint8 by a linear map (no VAE)."""
    factors = torch.tensor(SDXL_LATENT_RGB_FACTORS, dtype=torch.float32)
    bias = torch.tensor(SDXL_LATENT_RGB_BIAS, dtype=torch.float32)
    rgb = torch.einsum("nchw,cr->nhwr", latents.detach().float().cpu(), factors) + bias
    return ((rgb + 1) * 127.5).clamp(0, 255).round().to(torch.uint8).numpy()


def seeded_generator(seed: int, device: torch.device) -> torch.Generator:
    """The one generator of a run: on CUDA when the pipeline runs there (as released), else on the CPU,
    where ``randn_tensor`` draws and then moves the noise, so a seed gives the same noise on CPU and MPS."""
    return torch.Generator(device="cuda" if device.type == "cuda" else "cpu").manual_seed(seed)


def count_denoising_steps(num_inference_steps: int, fidelity: float) -> int:
    """How many of the N scheduled steps a call runs: K = floor(N * (1 - fidelity)) (module doc)."""
    # The epsilon keeps float error from dropping a step: 10 * (1 - 0.9) is 0.9999999999999998.
    return min(math.floor(num_inference_steps * (1.0 - fidelity) + 1e-9), num_inference_steps)


def denoising_start_index(num_inference_steps: int, fidelity: float) -> int:
    """How many of the N scheduled steps fidelity skips: N - K (module doc)."""
    return num_inference_steps - count_denoising_steps(num_inference_steps, fidelity)


def encode_sdxl_prompts(
    prompts: list[str], tokenizers: tuple, text_encoders: tuple, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL text conditioning, shared by inference and training: (B, 77, D1 + D2) penultimate hidden
    states of both encoders and the (B, P) pooled projection of the second; stock 77-token truncation."""
    hidden_states = []
    for tokenizer, text_encoder in zip(tokenizers, text_encoders, strict=True):
        input_ids = tokenizer(
            prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids
        encoded = text_encoder(input_ids.to(device), output_hidden_states=True)
        hidden_states.append(encoded.hidden_states[-2])
    return torch.cat(hidden_states, dim=-1), encoded.text_embeds


class AuthFacePipeline(DiffusionPipeline, StableDiffusionMixin):
    r"""Restore aligned faces with the AuthFace SDXL prior and a ControlNet on the degraded face.

    Args:
        vae: the SDXL VAE; kept in float32 as released (decoding in fp16 overflows).
        text_encoder: CLIP ViT-L text encoder (penultimate hidden states).
        text_encoder_2: OpenCLIP bigG text encoder with projection (penultimate states + pooled).
        tokenizer, tokenizer_2: their CLIP tokenizers.
        unet: the face-tuned SDXL UNet.
        controlnet: the restoration ControlNet (3-channel pixel conditioning).
        scheduler: DDPM as released; its config is the one each call builds its scheduler from
            (``SCHEDULERS`` lists the kinds a call may ask for).
        smoke_test_model: True for the tiny random model (``tiny.py``): its output is not a restoration.
    """

    model_cpu_offload_seq = "text_encoder->text_encoder_2->unet->vae"  # controlnet iterates with the unet
    _callback_tensor_inputs = [
        "latents",
        "denoised",
        "prompt_embeds",
        "add_text_embeds",
        "add_time_ids",
        "control_image",
    ]

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        text_encoder_2: CLIPTextModelWithProjection,
        tokenizer: CLIPTokenizer,
        tokenizer_2: CLIPTokenizer,
        unet: UNet2DConditionModel,
        controlnet: ControlNetModel,
        scheduler: SchedulerMixin,
        smoke_test_model: bool = False,
    ):
        super().__init__()
        check_pixel_controlnet(controlnet)
        self.register_modules(
            vae=vae,
            text_encoder=text_encoder,
            text_encoder_2=text_encoder_2,
            tokenizer=tokenizer,
            tokenizer_2=tokenizer_2,
            unet=unet,
            controlnet=controlnet,
            scheduler=scheduler,
        )
        self.register_to_config(smoke_test_model=smoke_test_model)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def is_smoke_test_model(self) -> bool:
        """True for the tiny random-weight model: its images show the code path, not a restoration."""
        return bool(self.config.smoke_test_model)

    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        # As released (pipeline_xl.py:1076): CFG whenever guidance_scale > 1.
        return self._guidance_scale > 1

    @property
    def num_timesteps(self) -> int:
        """Denoising steps actually run by the last call (fewer than requested when fidelity > 0)."""
        return self._num_timesteps

    @property
    def execution_device(self) -> torch.device:
        """The device the models compute on. Usually ``device``; under model CPU offload ``device`` reports
        the CPU the models rest on, and this the accelerator they run on (where the release's generator lives)."""
        return self._execution_device

    def make_scheduler(self, name: str | None = None) -> SchedulerMixin:
        """A new scheduler for one call: of kind ``name`` (``SCHEDULERS``), or of the loaded scheduler's kind
        when None, from the loaded scheduler's config. The loaded one is never stepped."""
        if name is None:
            return type(self.scheduler).from_config(self.scheduler.config)
        return scheduler_from_name(name, self.scheduler.config)

    def encode_prompt(self, prompt: str, batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """A prompt for each of ``batch_size`` faces -> (B, 77, D1 + D2) penultimate hidden states of both
        encoders and (B, P) pooled embedding of text_encoder_2; stock 77-token truncation.

        The batch is encoded as a batch (not once and repeated), as the release does, because batched
        matrix products round differently from single ones.
        """
        prompt_embeds, pooled = encode_sdxl_prompts(
            [prompt] * batch_size, (self.tokenizer, self.tokenizer_2), (self.text_encoder, self.text_encoder_2), device
        )
        dtype = self.text_encoder_2.dtype
        return prompt_embeds.to(dtype=dtype, device=device), pooled.to(dtype=dtype, device=device)

    def check_inputs(
        self,
        image: torch.Tensor,
        prompt: str,
        negative_prompt: str,
        num_inference_steps: int,
        fidelity: float,
        guidance_scale: float,
        color_fix: str,
        output_type: str,
        callback_on_step_end_tensor_inputs: list[str],
    ) -> None:
        """Raise ValueError naming the argument and its value; nothing is silently corrected."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be RGB faces (N, 3, H, W) or (N, H, W, 3), got shape {tuple(image.shape)}")
        height, width = image.shape[-2:]
        if height % self.vae_scale_factor or width % self.vae_scale_factor:
            raise ValueError(
                f"image height and width must be multiples of {self.vae_scale_factor}, got {height}x{width}"
            )
        if not (isinstance(num_inference_steps, int) and 1 <= num_inference_steps <= MAX_INFERENCE_STEPS):
            raise ValueError(
                f"num_inference_steps must be an integer in [1, {MAX_INFERENCE_STEPS}], got {num_inference_steps!r}"
            )
        if not 0.0 <= fidelity <= 1.0:
            raise ValueError(f"fidelity must be in [0, 1], got {fidelity!r}")
        for name, text in (("prompt", prompt), ("negative_prompt", negative_prompt)):
            if not isinstance(text, str):
                raise ValueError(f"{name} must be one string shared by all faces, got {text!r}")
        if guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got {guidance_scale!r}")
        if color_fix not in COLOR_FIX_METHODS:
            raise ValueError(f"color_fix must be one of {COLOR_FIX_METHODS}, got {color_fix!r}")
        if output_type not in ("np", "pil", "latent"):
            raise ValueError(f"output_type must be 'np', 'pil' or 'latent', got {output_type!r}")
        unknown = [name for name in callback_on_step_end_tensor_inputs if name not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(f"callback_on_step_end_tensor_inputs {unknown} not in {self._callback_tensor_inputs}")

    @staticmethod
    def prepare_control_image(image) -> torch.Tensor:
        """Faces -> (N, 3, H, W) float32 in [0, 1], no normalisation and no resize (pipeline_xl.py:745-779).

        Accepts (N, H, W, 3) or (H, W, 3) uint8 arrays, a list of such arrays or PIL images, or a
        (N, 3, H, W) float tensor already in [0, 1].
        """
        if isinstance(image, torch.Tensor):
            return image.float()
        if isinstance(image, PIL.Image.Image):
            image = [image]
        if isinstance(image, (list, tuple)):
            image = np.stack(
                [np.asarray(item.convert("RGB") if isinstance(item, PIL.Image.Image) else item) for item in image]
            )
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise ValueError(f"image arrays must be uint8 RGB, got dtype {image.dtype}")
        batch = image[None] if image.ndim == 3 else image
        # uint8 / 255 in float32, as VaeImageProcessor.pil_to_numpy.
        return torch.from_numpy(batch.astype(np.float32) / 255.0).permute(0, 3, 1, 2)

    def prepare_latents(
        self,
        control_image: torch.Tensor,
        scheduler: SchedulerMixin,
        timesteps: torch.Tensor,
        skipped_steps: int,
        dtype: torch.dtype,
        device: torch.device,
        generator: torch.Generator | list[torch.Generator] | None,
    ) -> torch.Tensor:
        """The starting latents (N, 4, H/8, W/8): pure noise, or the noised input latent (module doc), for
        this call's ``scheduler``."""
        batch, _, height, width = control_image.shape
        shape = (batch, self.unet.config.in_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
        noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)  # one draw, as released
        if skipped_steps == 0:
            return noise * scheduler.init_noise_sigma
        input_latents = self.encode_image(control_image).to(dtype)
        if len(timesteps) == 0:
            return input_latents
        return scheduler.add_noise(input_latents, noise, timesteps[:1].repeat(batch))

    @torch.no_grad()
    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> scaled latents (N, 4, H/8, W/8): the VAE posterior mean, deterministic."""
        pixels = (image * 2 - 1).to(device=self.vae.device, dtype=self.vae.dtype)
        posterior = self.vae.encode(pixels).latent_dist
        return posterior.mode() * self.vae.config.scaling_factor

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> np.ndarray:
        """Latents -> (N, H, W, 3) uint8 as released: fp32 latents / scaling_factor, VAE decode,
        ``(x * 0.5 + 0.5).clamp(0, 1)``, ``round(x * 255)`` (pipeline_xl.py:1297-1360)."""
        latents = latents.to(torch.float32) / self.vae.config.scaling_factor
        decoded = self.vae.decode(latents.to(self.vae.dtype), return_dict=False)[0].float()
        if torch.isnan(decoded).any():
            raise AuthFaceError("the VAE decode produced NaN (load the VAE in float32, as released)")
        pixels = (decoded * 0.5 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        return (pixels * 255).round().astype(np.uint8)

    @staticmethod
    def prepare_extra_step_kwargs(scheduler: SchedulerMixin, generator) -> dict:
        """The scheduler step's noise generator, where that scheduler draws noise (DDPM does, per step)."""
        accepts_generator = "generator" in inspect.signature(scheduler.step).parameters
        return {"generator": generator} if accepts_generator else {}

    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        image,
        prompt: str = RELEASED_PROMPT,
        negative_prompt: str = RELEASED_NEGATIVE_PROMPT,
        num_inference_steps: int = RELEASED_NUM_INFERENCE_STEPS,
        fidelity: float = 0.0,
        guidance_scale: float = RELEASED_GUIDANCE_SCALE,
        controlnet_conditioning_scale: float = RELEASED_CONDITIONING_SCALE,
        scheduler: str | None = None,
        color_fix: str = RELEASED_COLOR_FIX,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable[[AuthFacePipeline, int, torch.Tensor, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ("latents",),
    ):
        r"""Restore a batch of aligned faces.

        Args:
            image: aligned degraded faces, (N, H, W, 3) uint8 (or see ``prepare_control_image``);
                H and W multiples of 8 (512 as released). All faces share one size.
            prompt (`str`, defaults to the released prompt): shared by all faces.
            negative_prompt (`str`, defaults to the released negative prompt).
            num_inference_steps (`int`, defaults to 50): scheduled steps, 1 to 100.
            fidelity (`float`, defaults to 0.0): 0 = released (pure noise); towards 1 the output
                stays closer to the input; 1 = no denoising. Precise definition in the module doc.
            guidance_scale (`float`, defaults to 8.0): classifier-free guidance, on when > 1.
            controlnet_conditioning_scale (`float`, defaults to 1.0): scale of the ControlNet residuals.
            scheduler (`str`, *optional*): the sampler of this call, one of ``SCHEDULERS`` ("ddpm" as
                released, "dpmpp", "unipc", "ddim", "euler"); None: the loaded scheduler's kind. Built
                for this call from the loaded scheduler's config; the pipeline itself is not changed.
            color_fix (`str`, defaults to "wavelet"): "wavelet", "adain" or "none", against the input.
            generator (`torch.Generator`, *optional*): the one source of randomness (initial noise,
                then DDPM's per-step noise).
            output_type (`str`, defaults to "np"): "np" (uint8 array), "pil" or "latent".
            return_dict (`bool`, defaults to True): an ``AuthFacePipelineOutput``, else a tuple.
            callback_on_step_end (`Callable`, *optional*): ``fn(pipe, step_index, timestep, tensors)``
                after each step, returning a dict that may replace "latents"; tensors holds the names
                in ``callback_on_step_end_tensor_inputs`` ("denoised" is the scheduler's current
                estimate of the clean latents where it gives one, else the latents).

        Examples:
        """
        callback_on_step_end_tensor_inputs = list(callback_on_step_end_tensor_inputs)
        # 1. Check inputs
        control_image = self.prepare_control_image(image)
        self.check_inputs(
            control_image,
            prompt,
            negative_prompt,
            num_inference_steps,
            fidelity,
            guidance_scale,
            color_fix,
            output_type,
            callback_on_step_end_tensor_inputs,
        )
        sampler = self.make_scheduler(scheduler)  # this call's own: schedulers keep per-run state
        self._guidance_scale = guidance_scale
        do_classifier_free_guidance = guidance_scale > 1  # a local: another thread's call may reset the property
        device = self._execution_device
        batch, _, height, width = control_image.shape

        # 2. Encode prompts (negative first for CFG, as stock)
        prompt_embeds, add_text_embeds = self.encode_prompt(prompt, batch, device)
        if do_classifier_free_guidance:
            negative_embeds, negative_pooled = self.encode_prompt(negative_prompt, batch, device)
            prompt_embeds = torch.cat([negative_embeds, prompt_embeds])
            add_text_embeds = torch.cat([negative_pooled, add_text_embeds])
        model_batch = prompt_embeds.shape[0]

        # 3. Control image: [0, 1] in the ControlNet's dtype, doubled for CFG; fp32 kept as the reference
        reference_pixels = control_image.to(device)
        control_image = reference_pixels.to(self.controlnet.dtype)
        if do_classifier_free_guidance:
            control_image = torch.cat([control_image] * 2)

        # 4. Timesteps: the last floor(N * (1 - fidelity)) of the schedule
        sampler.set_timesteps(num_inference_steps, device=device)
        skipped_steps = denoising_start_index(num_inference_steps, fidelity)
        start = skipped_steps * sampler.order
        timesteps = sampler.timesteps[start:]
        if hasattr(sampler, "set_begin_index"):
            sampler.set_begin_index(start)
        self._num_timesteps = len(timesteps)

        # 5. Starting latents
        latents = self.prepare_latents(
            reference_pixels, sampler, timesteps, skipped_steps, prompt_embeds.dtype, device, generator
        )
        extra_step_kwargs = self.prepare_extra_step_kwargs(sampler, generator)

        # 6. Added conditioning: time ids (H, W, 0, 0, H, W) of the control image, for both CFG halves
        add_time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=prompt_embeds.dtype, device=device)
        add_time_ids = add_time_ids.repeat(model_batch, 1)
        added_cond_kwargs = {"text_embeds": add_text_embeds, "time_ids": add_time_ids}

        # 7. Denoising loop
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for step_index, t in enumerate(timesteps):
                latent_model_input = torch.cat([latents] * 2) if do_classifier_free_guidance else latents
                latent_model_input = sampler.scale_model_input(latent_model_input, t)
                down_residuals, mid_residual = self.controlnet(
                    latent_model_input,
                    t,
                    encoder_hidden_states=prompt_embeds,
                    controlnet_cond=control_image,
                    conditioning_scale=controlnet_conditioning_scale,
                    added_cond_kwargs=added_cond_kwargs,
                    return_dict=False,
                )
                noise_pred = self.unet(
                    latent_model_input,
                    t,
                    encoder_hidden_states=prompt_embeds,
                    down_block_additional_residuals=down_residuals,
                    mid_block_additional_residual=mid_residual,
                    added_cond_kwargs=added_cond_kwargs,
                    return_dict=False,
                )[0]
                if do_classifier_free_guidance:
                    noise_uncond, noise_text = noise_pred.chunk(2)
                    noise_pred = noise_uncond + guidance_scale * (noise_text - noise_uncond)
                step_output = sampler.step(noise_pred, t, latents, **extra_step_kwargs, return_dict=True)
                latents = step_output.prev_sample
                if callback_on_step_end is not None:
                    denoised = getattr(step_output, "pred_original_sample", None)
                    denoised = latents if denoised is None else denoised
                    tensors = {
                        "latents": latents,
                        "denoised": denoised,
                        "prompt_embeds": prompt_embeds,
                        "add_text_embeds": add_text_embeds,
                        "add_time_ids": add_time_ids,
                        "control_image": control_image,
                    }
                    callback_kwargs = {name: tensors[name] for name in callback_on_step_end_tensor_inputs}
                    callback_outputs = callback_on_step_end(self, step_index, t, callback_kwargs) or {}
                    latents = callback_outputs.get("latents", latents)
                progress_bar.update()

        # 8. Decode in fp32, round to uint8, then colour-fix against the input (as released)
        if output_type == "latent":
            images = latents
        else:
            images = self.decode_latents(latents)
            reference_uint8 = (reference_pixels * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            images = apply_color_fix(images, reference_uint8, color_fix)
            if output_type == "pil":
                images = [PIL.Image.fromarray(face) for face in images]
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return AuthFacePipelineOutput(images=images)
