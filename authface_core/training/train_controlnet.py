"""Stage II, restoration tuning: train AuthFace's ControlNet on synthetically degraded faces.

The ControlNet starts as a copy of the (Stage I) UNet's encoder (``ControlNetModel.from_unet``,
zero-initialised output convolutions) and sees the degraded face as pixels in [0, 1]. Prompts
are empty. The UNet, VAE and text encoders stay frozen. The loss is

    L = || eps_hat - eps ||^2  +  lambda * mean_b[ w(t_b) * (style_b + beta * GAN_b) ]

where the second term is the time-aware latent facial feature loss of ``losses.py`` on the eye
and mouth regions of the predicted clean latent; its two discriminators train alongside with
their own optimiser (after ``discriminator_warmup_steps`` of training alone, with an optional R1
penalty). Min-SNR weighting and offset noise change the first term when switched on.

Run: ``python -m authface_core train stage2 --config configs/stage2_1gpu.yaml`` (or
``accelerate launch -m authface_core.training.train_controlnet --help`` for every setting).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ..degradations import PRESETS, load_square_face
from ..pipeline.constants import RELEASED_COLOR_FIX
from ..pipeline.pipeline_authface_sdxl import encode_sdxl_prompts
from .checkpoints import MetricsLog, export_pipeline, is_checkpoint_step, save_checkpoint
from .diffusion import (
    add_training_noise,
    diffusion_loss,
    diffusion_target,
    min_snr_weights,
    predict_clean_latents,
    sdxl_time_ids,
)
from .losses import FacialDiscriminators, FacialLossTerms, discriminator_loss, facial_feature_loss, time_weight
from .run import (
    averaged_weights,
    batch_latents,
    create_ema,
    create_lr_scheduler,
    create_optimizer,
    effective_learning_rate,
    freeze,
    is_validation_step,
    load_base_components,
    load_ema,
    load_training_data,
    make_dataloader,
    place,
    plan_steps,
    report_step,
    resume_training,
    start_run,
    training_batches,
    weight_dtype_of,
)
from .settings import (
    ControlNetSettings,
    DiffusionLossSettings,
    FaceValidationSettings,
    FacialLossSettings,
    Stage2Settings,
    flat_settings,
    parse_stage_settings,
)
from .validation import autocast_unless_fp32, decode_latents_fp32, identity_scores, image_scores, save_validation_images

logger = logging.getLogger(__name__)

CONTROLNET_EMA_FOLDER = "controlnet_ema"


def parse_args(input_args: list[str] | None = None) -> Stage2Settings:
    """Stage II settings from flags (and ``--config FILE``); a bad value raises ValueError naming it."""
    return parse_stage_settings(Stage2Settings, input_args)


@dataclass
class Stage2Models:
    """What one Stage II step runs: frozen VAE and UNet, the trained ControlNet, the empty-prompt conditioning."""

    vae: torch.nn.Module
    unet: torch.nn.Module
    controlnet: torch.nn.Module
    noise_scheduler: object
    prompt_embeds: torch.Tensor  # (1, 77, D1 + D2), the empty prompt
    pooled_prompt_embeds: torch.Tensor  # (1, P)


@dataclass
class Stage2Losses:
    """One batch's losses (``total`` is optimised) and what the discriminator step reuses."""

    diffusion: torch.Tensor
    facial: FacialLossTerms | None
    total: torch.Tensor
    predicted_latents: torch.Tensor  # x0_hat (B, 4, h, w), float32
    target_latents: torch.Tensor  # x0 (B, 4, h, w)
    weights: torch.Tensor  # (B,) time weights


def stage2_losses(
    models: Stage2Models,
    batch: dict,
    *,
    discriminators: FacialDiscriminators | None,
    facial: FacialLossSettings,
    diffusion: DiffusionLossSettings,
    weight_dtype: torch.dtype,
    generator: torch.Generator | None = None,
    use_facial_loss: bool = True,
) -> Stage2Losses:
    """Diffusion + facial loss of one batch: hq (B, 3, R, R) in [-1, 1] (or cached ``latent_parameters``),
    lq (B, 3, R, R) in [0, 1], region_boxes (B, 2, 4) pixels.

    ``discriminators`` is the unwrapped module (its weights get no gradient from this loss); the facial
    loss is skipped when it is None, when ``facial_loss_weight`` is 0 or when ``use_facial_loss`` is False
    (discriminator warm-up).
    """
    lq = batch["lq"]
    batch_size, resolution, device = lq.shape[0], lq.shape[-1], lq.device
    scheduler = models.noise_scheduler

    latents = batch_latents(models.vae, batch, "hq", generator).float()  # (B, 4, R/8, R/8)
    noise, timesteps, noisy_latents = add_training_noise(scheduler, latents, generator, diffusion.noise_offset)

    prompt_embeds = models.prompt_embeds.expand(batch_size, -1, -1)
    size = torch.full((batch_size, 2), resolution, device=device)
    added_cond = {
        "text_embeds": models.pooled_prompt_embeds.expand(batch_size, -1),
        "time_ids": sdxl_time_ids(size, torch.zeros_like(size), resolution),
    }
    down_residuals, mid_residual = models.controlnet(
        noisy_latents,
        timesteps,
        encoder_hidden_states=prompt_embeds,
        added_cond_kwargs=added_cond,
        controlnet_cond=lq,
        return_dict=False,
    )
    frozen_cond = {key: value.to(weight_dtype) for key, value in added_cond.items()}
    model_pred = models.unet(
        noisy_latents.to(weight_dtype),
        timesteps,
        encoder_hidden_states=prompt_embeds.to(weight_dtype),
        added_cond_kwargs=frozen_cond,
        down_block_additional_residuals=[residual.to(weight_dtype) for residual in down_residuals],
        mid_block_additional_residual=mid_residual.to(weight_dtype),
        return_dict=False,
    )[0].float()

    snr_weights = min_snr_weights(scheduler, timesteps, diffusion.snr_gamma) if diffusion.snr_gamma else None
    loss = diffusion_loss(model_pred, diffusion_target(scheduler, latents, noise, timesteps), snr_weights)
    predicted = predict_clean_latents(
        noisy_latents, model_pred, timesteps, scheduler.alphas_cumprod, scheduler.config.prediction_type
    )
    weights = time_weight(
        timesteps,
        scheduler.config.num_train_timesteps,
        facial.time_weight_schedule,
        facial.time_weight_m,
        facial.time_weight_s,
    )
    terms = None
    total = loss
    if discriminators is not None and facial.facial_loss_weight > 0 and use_facial_loss:
        terms = facial_feature_loss(
            predicted,
            latents,
            batch["region_boxes"],
            resolution,
            weights,
            discriminators,
            style_weight=facial.style_loss_weight,
            adversarial_weight=facial.adversarial_loss_weight,
        )
        total = loss + facial.facial_loss_weight * terms.total
    return Stage2Losses(loss, terms, total, predicted, latents, weights)


def new_controlnet(unet, conditioning_embedding_out_channels):
    """A ControlNet copied from the UNet's encoder, with zero-initialised output convolutions."""
    from diffusers import ControlNetModel

    return ControlNetModel.from_unet(
        unet, conditioning_embedding_out_channels=tuple(conditioning_embedding_out_channels)
    )


def initial_controlnet(base, settings: ControlNetSettings):
    """The ControlNet training starts from: the base's own (``pretrained``) or a new copy of its UNet."""
    if settings.controlnet_init == "unet":
        return new_controlnet(base.unet, settings.conditioning_embedding_out_channels)
    if base.controlnet is None:
        raise ValueError(f"controlnet_init pretrained: {base.folder} has no controlnet/ folder")
    return base.controlnet


def register_checkpoint_hooks(accelerator, ema) -> None:
    """Save/load the ControlNet, the discriminators and the ControlNet's EMA in save_pretrained format inside
    checkpoint-{step}."""
    from diffusers import ControlNetModel

    subfolders = {ControlNetModel: "controlnet", FacialDiscriminators: "discriminators"}

    def save_hook(models, weights, output_dir):
        if accelerator.is_main_process:
            for model in models:
                unwrapped = accelerator.unwrap_model(model)
                unwrapped.save_pretrained(Path(output_dir) / subfolders[type(unwrapped)], safe_serialization=True)
            if ema is not None:
                ema.save_pretrained(Path(output_dir) / CONTROLNET_EMA_FOLDER)
        weights.clear()  # written above; accelerate must not write them again

    def load_hook(models, input_dir):
        while models:
            model = accelerator.unwrap_model(models.pop())
            loaded = type(model).from_pretrained(input_dir, subfolder=subfolders[type(model)])
            model.register_to_config(**loaded.config)
            model.load_state_dict(loaded.state_dict())
        if ema is not None:
            load_ema(ema, Path(input_dir) / CONTROLNET_EMA_FOLDER, ControlNetModel)

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def build_pipeline(base, *, unet, controlnet, vae, scheduler):
    """An AuthFacePipeline from the base's text encoders and tokenizers and the given models."""
    from ..pipeline.pipeline_authface_sdxl import AuthFacePipeline

    return AuthFacePipeline(
        vae=vae,
        text_encoder=base.text_encoder,
        text_encoder_2=base.text_encoder_2,
        tokenizer=base.tokenizer,
        tokenizer_2=base.tokenizer_2,
        unet=unet,
        controlnet=controlnet,
        scheduler=scheduler,
        smoke_test_model=base.smoke_test_model,
    )


@contextlib.contextmanager
def residuals_in_dtype_of(unet):
    """Within the block the UNet receives the ControlNet's residuals in its own dtype, as the training step and the
    release (pipeline_xl.py:1256-1259) pass them: accelerate returns a prepared model's outputs in float32, which
    the frozen UNet's bf16/fp16 layers would otherwise meet."""

    def cast(module, args, kwargs):
        dtype = module.dtype
        if kwargs.get("down_block_additional_residuals") is not None:
            kwargs["down_block_additional_residuals"] = [r.to(dtype) for r in kwargs["down_block_additional_residuals"]]
        if kwargs.get("mid_block_additional_residual") is not None:
            kwargs["mid_block_additional_residual"] = kwargs["mid_block_additional_residual"].to(dtype)
        return args, kwargs

    handle = unet.register_forward_pre_hook(cast, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def load_validation_faces(paths: list[str], resolution: int):
    """(N, R, R, 3) uint8 aligned LQ faces for validation, or None."""
    if not paths:
        return None
    return np.stack([load_square_face(path, resolution) for path in paths])


def run_validation(
    models: Stage2Models,
    base,
    faces: np.ndarray,
    settings: FaceValidationSettings,
    *,
    output_dir: str,
    step: int,
    seed: int,
    weight_dtype: torch.dtype,
    accelerator,
    ema=None,
) -> dict[str, float]:
    """Restore the validation faces with the current ControlNet (its moving average when kept): input | output
    images under output_dir/validation/step-{N}/; returns the identity and NIQE scores to log."""
    from diffusers import DDPMScheduler

    from ..pipeline.color_fix import apply_color_fix

    controlnet = accelerator.unwrap_model(models.controlnet)
    scheduler = DDPMScheduler.from_config(models.noise_scheduler.config)
    pipe = build_pipeline(base, unet=models.unet, controlnet=controlnet, vae=models.vae, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator(accelerator.device).manual_seed(seed)
    was_training = controlnet.training
    controlnet.eval()
    with averaged_weights(ema, controlnet), residuals_in_dtype_of(models.unet):
        with autocast_unless_fp32(accelerator.device, weight_dtype):
            latents = pipe(
                faces,
                num_inference_steps=settings.validation_inference_steps,
                generator=generator,
                output_type="latent",
            ).images
    controlnet.train(was_training)
    restored = apply_color_fix(decode_latents_fp32(models.vae, latents), faces, RELEASED_COLOR_FIX)
    side_by_side = [np.concatenate([face, image], axis=1) for face, image in zip(faces, restored, strict=True)]
    save_validation_images(output_dir, step, side_by_side, accelerator)
    return identity_scores(faces, restored) | image_scores(restored)


def main(settings: Stage2Settings) -> Path:
    """Train Stage II; returns the output folder holding the final checkpoint in the released layout."""
    from accelerate.utils import DistributedType
    from tqdm.auto import tqdm

    from .cache import cache_face_latents, checkpoint_fingerprint
    from .data import example_dataset, stage2_example

    data, optimization, checkpoints, facial = (
        settings.data,
        settings.optimization,
        settings.checkpoints,
        settings.facial,
    )
    accelerator = start_run(optimization, checkpoints)
    weight_dtype = weight_dtype_of(accelerator)
    use_facial_loss = facial.facial_loss_weight > 0
    if use_facial_loss and accelerator.distributed_type == DistributedType.DEEPSPEED:
        raise ValueError(
            "Stage II trains two models (ControlNet and discriminators), which one DeepSpeed engine cannot hold; "
            "use DDP or FSDP (configs/accelerate/8gpu_ddp.yaml), or facial_loss_weight 0"
        )

    # 1. Models: frozen base in the mixed-precision type (VAE fp32), trained ControlNet (+ discriminators).
    base = load_base_components(settings.model)
    controlnet = initial_controlnet(base, settings.controlnet)
    discriminators = FacialDiscriminators(in_channels=base.vae.config.latent_channels) if use_facial_loss else None
    freeze(base.vae, base.unet, base.text_encoder, base.text_encoder_2)
    place(base.vae, accelerator.device, torch.float32)  # SDXL's VAE overflows in fp16
    for frozen in (base.unet, base.text_encoder, base.text_encoder_2):
        place(frozen, accelerator.device, weight_dtype)
    if optimization.gradient_checkpointing:
        controlnet.enable_gradient_checkpointing()
        base.unet.enable_gradient_checkpointing()
    if controlnet.dtype != torch.float32:
        raise ValueError(f"the ControlNet must be float32 for training, got {controlnet.dtype}; use mixed_precision")
    controlnet.train()
    ema = create_ema(controlnet, optimization.ema_decay, accelerator.device) if optimization.use_ema else None
    prompt_embeds, pooled = encode_sdxl_prompts(
        [""], (base.tokenizer, base.tokenizer_2), (base.text_encoder, base.text_encoder_2), accelerator.device
    )

    # 2. Data: aligned faces with landmarks (and cached HQ latents), degraded on the fly.
    faces, _ = load_training_data(data, optimization.seed, accelerator, prepare=True)
    if data.cache_latents:
        with accelerator.main_process_first():
            key = checkpoint_fingerprint(base.folder, "vae")
            faces = cache_face_latents(faces, base.vae, data.resolution, key)
    make_example = partial(
        stage2_example,
        resolution=data.resolution,
        degradation=PRESETS[settings.controlnet.degradation],
        random_flip=data.random_flip,
    )
    train_dataset = example_dataset(faces, make_example, optimization.seed)
    dataloader = make_dataloader(train_dataset, data, optimization.train_batch_size)

    # 3. Optimisers and schedules.
    plan = plan_steps(optimization, dataloader, accelerator.num_processes, streaming=data.streaming)
    num_processes = accelerator.num_processes
    learning_rate = effective_learning_rate(optimization, num_processes, optimization.learning_rate)
    optimizer = create_optimizer(controlnet.parameters(), optimization, learning_rate)
    lr_scheduler = create_lr_scheduler(optimizer, optimization, num_processes, plan.max_train_steps)
    prepared = [controlnet, optimizer, dataloader, lr_scheduler]
    if use_facial_loss:
        d_learning_rate = effective_learning_rate(optimization, num_processes, facial.discriminator_learning_rate)
        d_optimizer = create_optimizer(discriminators.parameters(), optimization, d_learning_rate)
        d_lr_scheduler = create_lr_scheduler(d_optimizer, optimization, num_processes, plan.max_train_steps)
        prepared += [discriminators, d_optimizer, d_lr_scheduler]
    prepared = accelerator.prepare(*prepared)
    controlnet, optimizer, dataloader, lr_scheduler = prepared[:4]
    if use_facial_loss:
        discriminators, d_optimizer, d_lr_scheduler = prepared[4:]
    register_checkpoint_hooks(accelerator, ema)
    models = Stage2Models(base.vae, base.unet, controlnet, base.scheduler, prompt_embeds, pooled)
    validation = settings.validation
    validation_faces = load_validation_faces(validation.validation_images, data.resolution)
    if accelerator.is_main_process:
        tracked = {name: str(value) for name, value in flat_settings(settings).items()}
        accelerator.init_trackers(checkpoints.tracker_project_name, config=tracked)

    # 4. Train, from a checkpoint when asked.
    resume = resume_training(accelerator, checkpoints, plan, optimization.gradient_accumulation_steps)
    global_step = resume[0]
    metrics = MetricsLog(accelerator, Path(checkpoints.output_dir), resumed_step=global_step)
    progress = tqdm(
        total=plan.max_train_steps, initial=global_step, desc="Stage II", disable=not accelerator.is_local_main_process
    )
    unwrapped_discriminators = accelerator.unwrap_model(discriminators) if use_facial_loss else None
    trained = (controlnet, discriminators) if use_facial_loss else (controlnet,)
    for batch, generator in training_batches(accelerator, dataloader, train_dataset, plan, resume, optimization):
        if global_step >= plan.max_train_steps:
            break
        with accelerator.accumulate(*trained):
            losses = stage2_losses(
                models,
                batch,
                discriminators=unwrapped_discriminators,
                facial=facial,
                diffusion=settings.diffusion,
                weight_dtype=weight_dtype,
                generator=generator,
                use_facial_loss=global_step >= facial.discriminator_warmup_steps,
            )
            accelerator.backward(losses.total)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(controlnet.parameters(), optimization.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            logs = {"loss": losses.total.item(), "diffusion_loss": losses.diffusion.item()}
            logs["lr"] = lr_scheduler.get_last_lr()[0]
            if losses.facial is not None:
                logs |= {
                    "facial_loss": losses.facial.total.item(),
                    "style_loss": losses.facial.style.item(),
                    "adversarial_loss": losses.facial.adversarial.item(),
                }
            if use_facial_loss:
                d_terms = discriminator_loss(
                    losses.predicted_latents,
                    losses.target_latents,
                    batch["region_boxes"],
                    data.resolution,
                    losses.weights,
                    discriminators,
                    r1_gamma=facial.r1_gamma,
                )
                accelerator.backward(d_terms.total)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(discriminators.parameters(), optimization.max_grad_norm)
                d_optimizer.step()
                d_lr_scheduler.step()
                d_optimizer.zero_grad(set_to_none=True)
                logs["discriminator_loss"] = d_terms.adversarial.item()
                if d_terms.r1 is not None:
                    logs["r1_penalty"] = d_terms.r1.item()
        if not accelerator.sync_gradients:
            continue
        global_step += 1
        if ema is not None:
            ema.step(controlnet.parameters())
        if validation_faces is not None and is_validation_step(global_step, validation.validation_steps, accelerator):
            logs |= run_validation(
                models,
                base,
                validation_faces,
                validation,
                output_dir=checkpoints.output_dir,
                step=global_step,
                seed=optimization.seed,
                weight_dtype=weight_dtype,
                accelerator=accelerator,
                ema=ema,
            )
        report_step(progress, metrics, logs, global_step)
        if is_checkpoint_step(global_step, checkpoints.checkpointing_steps, plan.max_train_steps):
            save_checkpoint(accelerator, Path(checkpoints.output_dir), global_step, checkpoints.checkpoints_total_limit)
    progress.close()

    # 5. Export the released layout (the moving average's weights when kept).
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        controlnet = accelerator.unwrap_model(controlnet)
        if ema is not None:
            ema.copy_to(controlnet.parameters())
        components = base.reload()  # the frozen parts as loaded, not as training cast them
        export_pipeline(
            Path(checkpoints.output_dir), components, controlnet=controlnet, smoke_test_model=base.smoke_test_model
        )
        logger.info("Stage II model written to %s", checkpoints.output_dir)
    accelerator.end_training()
    return Path(checkpoints.output_dir)


if __name__ == "__main__":
    main(parse_args())
