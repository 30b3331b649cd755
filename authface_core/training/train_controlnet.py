"""Stage II, restoration tuning: train AuthFace's ControlNet on synthetically degraded faces.

The ControlNet starts as a copy of the (Stage I) UNet's encoder (``ControlNetModel.from_unet``,
zero-initialised output convolutions) and sees the degraded face as pixels in [0, 1]. Prompts
are empty. The UNet, VAE and text encoders stay frozen. The loss is

    L = || eps_hat - eps ||^2  +  lambda * mean_b[ w(t_b) * (style_b + beta * GAN_b) ]

where the second term is the time-aware latent facial feature loss of ``losses.py`` on the eye
and mouth regions of the predicted clean latent; its two discriminators train alongside with
their own optimiser.

Run: ``python -m authface_core train stage2 --config configs/stage2_1gpu.yaml`` or
``accelerate launch -m authface_core.training.train_controlnet --help`` for every flag.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..degradations import PRESETS, load_square_face
from ..pipeline.pipeline_authface_sdxl import encode_sdxl_prompts
from .common import (
    MetricsLog,
    add_shared_arguments,
    add_training_noise,
    build_pipeline,
    check_shared_arguments,
    create_lr_scheduler,
    create_optimizer,
    diffusion_target,
    effective_learning_rate,
    encode_pixels,
    export_pipeline,
    finish_step,
    freeze,
    is_validation_step,
    load_base_components,
    load_training_data,
    make_dataloader,
    place,
    plan_steps,
    resume_training,
    sdxl_time_ids,
    start_run,
    training_batches,
    weight_dtype_of,
)
from .losses import (
    TIME_WEIGHT_SCHEDULES,
    FacialDiscriminators,
    FacialLossConfig,
    FacialLossTerms,
    TimeWeightConfig,
    discriminator_loss,
    facial_feature_loss,
    predict_clean_latents,
    time_weight,
)

logger = logging.getLogger(__name__)

# AuthFace's ControlNet conditioning embedding (pixels -> 1/8 grid), as released and in diffusers' default.
AUTHFACE_CONDITIONING_CHANNELS = (16, 32, 96, 256)


def parse_args(input_args: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="AuthFace Stage II: train the restoration ControlNet with the facial feature loss."
    )
    add_shared_arguments(parser, default_output_dir="authface-stage2", default_learning_rate=1e-5)
    stage = parser.add_argument_group("stage II")
    stage.add_argument(
        "--controlnet_init",
        default="unet",
        choices=("unet", "pretrained"),
        help="'unet': a new ControlNet copied from the base UNet; 'pretrained': continue the base's controlnet/.",
    )
    stage.add_argument(
        "--conditioning_embedding_out_channels",
        default=",".join(map(str, AUTHFACE_CONDITIONING_CHANNELS)),
        help="Channels of the pixel conditioning embedding of a new ControlNet (AuthFace: 16,32,96,256).",
    )
    stage.add_argument(
        "--degradation",
        default="gfpgan",
        choices=sorted(PRESETS),
        help="Degradation preset the LQ faces are drawn from (ranges in authface_core/degradations.py).",
    )
    stage.add_argument(
        "--facial_loss_weight",
        type=float,
        default=0.1,
        help="lambda: weight of the facial feature loss beside the diffusion loss (0: off, no discriminators).",
    )
    stage.add_argument(
        "--style_loss_weight", type=float, default=1.0, help="Weight of the Gram (style) term inside the facial loss."
    )
    stage.add_argument(
        "--adversarial_loss_weight",
        type=float,
        default=0.1,
        help="beta: weight of the GAN term inside the facial loss.",
    )
    stage.add_argument(
        "--time_weight_schedule",
        default="logit_normal",
        choices=TIME_WEIGHT_SCHEDULES,
        help="'logit_normal' (time-aware, the paper) or 'constant' (the paper's ablation).",
    )
    stage.add_argument("--time_weight_m", type=float, default=0.0, help="m of the logit-normal time weight (SD3: 0).")
    stage.add_argument("--time_weight_s", type=float, default=1.0, help="s of the logit-normal time weight (SD3: 1).")
    stage.add_argument(
        "--discriminator_learning_rate", type=float, default=1e-4, help="Learning rate of the two discriminators."
    )
    stage.add_argument(
        "--validation_images",
        nargs="*",
        default=[],
        help="Aligned degraded faces restored by the current model every --validation_steps steps.",
    )
    stage.add_argument(
        "--validation_inference_steps", type=int, default=20, help="Denoising steps of the validation restorations."
    )
    args = parser.parse_args(input_args)
    check_shared_arguments(args)
    if args.facial_loss_weight < 0:
        raise ValueError(f"--facial_loss_weight must be >= 0, got {args.facial_loss_weight}")
    args.conditioning_embedding_out_channels = parse_channels(args.conditioning_embedding_out_channels)
    facial_loss_config_from_args(args)  # validates the loss flags now, not after loading models
    return args


def parse_channels(value: str | tuple[int, ...]) -> tuple[int, ...]:
    """--conditioning_embedding_out_channels "16,32,96,256" as a tuple of positive integers."""
    if isinstance(value, tuple):
        return value
    try:
        channels = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise ValueError(
            f"--conditioning_embedding_out_channels must be comma-separated integers, got {value!r}"
        ) from None
    if not channels or min(channels) < 1:
        raise ValueError(f"--conditioning_embedding_out_channels must be positive integers, got {value!r}")
    return channels


def facial_loss_config_from_args(args: argparse.Namespace) -> FacialLossConfig:
    """The facial loss flags as a validated :class:`FacialLossConfig`."""
    return FacialLossConfig(
        style_weight=args.style_loss_weight,
        adversarial_weight=args.adversarial_loss_weight,
        time_weight=TimeWeightConfig(m=args.time_weight_m, s=args.time_weight_s, schedule=args.time_weight_schedule),
    )


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
    loss_config: FacialLossConfig,
    facial_loss_weight: float,
    weight_dtype: torch.dtype,
    generator: torch.Generator | None = None,
) -> Stage2Losses:
    """Diffusion + facial loss of one batch: hq (B, 3, R, R) in [-1, 1], lq (B, 3, R, R) in [0, 1],
    region_boxes (B, 2, 4) pixels.

    ``discriminators`` is the unwrapped module (its weights get no gradient from this loss);
    None or ``facial_loss_weight == 0`` skips the facial loss.
    """
    hq, lq = batch["hq"], batch["lq"]
    batch_size, resolution, device = hq.shape[0], hq.shape[-1], hq.device
    scheduler = models.noise_scheduler

    latents = encode_pixels(models.vae, hq, generator).float()  # (B, 4, R/8, R/8)
    noise, timesteps, noisy_latents = add_training_noise(scheduler, latents, generator)

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

    diffusion = F.mse_loss(model_pred, diffusion_target(scheduler, latents, noise, timesteps))
    predicted = predict_clean_latents(
        noisy_latents, model_pred, timesteps, scheduler.alphas_cumprod, scheduler.config.prediction_type
    )
    weights = time_weight(timesteps, scheduler.config.num_train_timesteps, loss_config.time_weight)
    facial = None
    total = diffusion
    if discriminators is not None and facial_loss_weight > 0:
        facial = facial_feature_loss(
            predicted, latents, batch["region_boxes"], resolution, weights, discriminators, loss_config
        )
        total = diffusion + facial_loss_weight * facial.total
    return Stage2Losses(diffusion, facial, total, predicted, latents, weights)


def new_controlnet(unet, conditioning_embedding_out_channels: tuple[int, ...]):
    """A ControlNet copied from the UNet's encoder, with zero-initialised output convolutions."""
    from diffusers import ControlNetModel

    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=conditioning_embedding_out_channels)


def register_checkpoint_hooks(accelerator) -> None:
    """Save/load the ControlNet and discriminators in save_pretrained format inside checkpoint-{step}."""
    from diffusers import ControlNetModel

    subfolders = {ControlNetModel: "controlnet", FacialDiscriminators: "discriminators"}

    def save_hook(models, weights, output_dir):
        if accelerator.is_main_process:
            for model in models:
                unwrapped = accelerator.unwrap_model(model)
                unwrapped.save_pretrained(Path(output_dir) / subfolders[type(unwrapped)], safe_serialization=True)
        weights.clear()  # written above; accelerate must not write them again

    def load_hook(models, input_dir):
        while models:
            model = accelerator.unwrap_model(models.pop())
            loaded = type(model).from_pretrained(input_dir, subfolder=subfolders[type(model)])
            model.register_to_config(**loaded.config)
            model.load_state_dict(loaded.state_dict())

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def load_validation_faces(paths: list[str], resolution: int):
    """(N, R, R, 3) uint8 aligned LQ faces for validation, or None."""
    if not paths:
        return None
    return np.stack([load_square_face(path, resolution) for path in paths])


def run_validation(models: Stage2Models, base, faces, args, step: int, weight_dtype, accelerator) -> None:
    """Restore the validation faces with the current ControlNet; write output_dir/validation/step-{N}/*.png."""
    from diffusers import DDPMScheduler

    from ..io import save_image

    controlnet = accelerator.unwrap_model(models.controlnet)
    scheduler = DDPMScheduler.from_config(models.noise_scheduler.config)
    pipe = build_pipeline(base, unet=models.unet, controlnet=controlnet, vae=models.vae, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator(accelerator.device).manual_seed(args.seed)
    was_training = controlnet.training
    controlnet.eval()
    with torch.autocast(accelerator.device.type, dtype=weight_dtype, enabled=weight_dtype != torch.float32):
        restored = pipe(faces, num_inference_steps=args.validation_inference_steps, generator=generator).images
    controlnet.train(was_training)
    folder = Path(args.output_dir) / "validation" / f"step-{step}"
    for index, (face, image) in enumerate(zip(faces, restored, strict=True)):
        save_image(folder / f"{index:02d}.png", np.concatenate([face, image], axis=1))
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_images("validation", np.stack(restored), step, dataformats="NHWC")
    logger.info("validation images written to %s", folder)


def main(args: argparse.Namespace) -> Path:
    """Train Stage II; returns the output folder holding the final checkpoint in the released layout."""
    from accelerate.utils import DistributedType
    from tqdm.auto import tqdm

    from .data import example_dataset, stage2_example

    accelerator = start_run(args)
    weight_dtype = weight_dtype_of(accelerator)
    loss_config = facial_loss_config_from_args(args)
    use_facial_loss = args.facial_loss_weight > 0
    if use_facial_loss and accelerator.distributed_type == DistributedType.DEEPSPEED:
        raise ValueError(
            "Stage II trains two models (ControlNet and discriminators), which one DeepSpeed engine cannot hold; "
            "use DDP or FSDP (configs/accelerate/8gpu_ddp.yaml), or --facial_loss_weight 0"
        )

    # 1. Models: frozen base, trained ControlNet (+ discriminators).
    base = load_base_components(args.pretrained_model_name_or_path, revision=args.revision, variant=args.variant)
    if args.controlnet_init == "pretrained":
        if base.controlnet is None:
            raise ValueError(f"--controlnet_init pretrained: {base.folder} has no controlnet/ folder")
        controlnet = base.controlnet
    else:
        controlnet = new_controlnet(base.unet, args.conditioning_embedding_out_channels)
    discriminators = FacialDiscriminators(in_channels=base.vae.config.latent_channels) if use_facial_loss else None
    freeze(base.vae, base.unet, base.text_encoder, base.text_encoder_2)
    place(base.vae, accelerator.device, torch.float32)  # SDXL's VAE overflows in fp16
    for frozen in (base.unet, base.text_encoder, base.text_encoder_2):
        place(frozen, accelerator.device, weight_dtype)
    if args.gradient_checkpointing:
        controlnet.enable_gradient_checkpointing()
        base.unet.enable_gradient_checkpointing()
    if controlnet.dtype != torch.float32:
        raise ValueError(f"the ControlNet must be float32 for training, got {controlnet.dtype}; use --mixed_precision")
    controlnet.train()
    prompt_embeds, pooled = encode_sdxl_prompts(
        [""], (base.tokenizer, base.tokenizer_2), (base.text_encoder, base.text_encoder_2), accelerator.device
    )

    # 2. Data: aligned faces with landmarks, degraded on the fly.
    faces, _ = load_training_data(args, accelerator, prepare=True)
    make_example = partial(
        stage2_example, resolution=args.resolution, degradation=PRESETS[args.degradation], random_flip=args.random_flip
    )
    train_dataset = example_dataset(faces, make_example, args.seed)
    dataloader = make_dataloader(train_dataset, args)

    # 3. Optimisers and schedules.
    plan = plan_steps(args, dataloader, accelerator.num_processes)
    learning_rate = effective_learning_rate(args, accelerator, args.learning_rate)
    optimizer = create_optimizer(controlnet.parameters(), args, learning_rate)
    lr_scheduler = create_lr_scheduler(optimizer, args, accelerator, plan.max_train_steps)
    prepared = [controlnet, optimizer, dataloader, lr_scheduler]
    if use_facial_loss:
        d_learning_rate = effective_learning_rate(args, accelerator, args.discriminator_learning_rate)
        d_optimizer = create_optimizer(discriminators.parameters(), args, d_learning_rate)
        d_lr_scheduler = create_lr_scheduler(d_optimizer, args, accelerator, plan.max_train_steps)
        prepared += [discriminators, d_optimizer, d_lr_scheduler]
    prepared = accelerator.prepare(*prepared)
    controlnet, optimizer, dataloader, lr_scheduler = prepared[:4]
    if use_facial_loss:
        discriminators, d_optimizer, d_lr_scheduler = prepared[4:]
    register_checkpoint_hooks(accelerator)
    models = Stage2Models(base.vae, base.unet, controlnet, base.scheduler, prompt_embeds, pooled)
    validation_faces = load_validation_faces(args.validation_images, args.resolution)
    if accelerator.is_main_process:
        accelerator.init_trackers(args.tracker_project_name, config={k: str(v) for k, v in vars(args).items()})

    # 4. Train, from a checkpoint when asked.
    resume = resume_training(accelerator, args, plan)
    global_step = resume[0]
    metrics = MetricsLog(accelerator, Path(args.output_dir), resumed_step=global_step)
    progress = tqdm(
        total=plan.max_train_steps, initial=global_step, desc="Stage II", disable=not accelerator.is_local_main_process
    )
    unwrapped_discriminators = accelerator.unwrap_model(discriminators) if use_facial_loss else None
    trained = (controlnet, discriminators) if use_facial_loss else (controlnet,)
    for batch, generator in training_batches(accelerator, dataloader, train_dataset, plan, args, resume):
        if global_step >= plan.max_train_steps:
            break
        with accelerator.accumulate(*trained):
            losses = stage2_losses(
                models,
                batch,
                discriminators=unwrapped_discriminators,
                loss_config=loss_config,
                facial_loss_weight=args.facial_loss_weight,
                weight_dtype=weight_dtype,
                generator=generator,
            )
            accelerator.backward(losses.total)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(controlnet.parameters(), args.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            logs = {"loss": losses.total.item(), "diffusion_loss": losses.diffusion.item()}
            logs["lr"] = lr_scheduler.get_last_lr()[0]
            if use_facial_loss:
                d_loss = discriminator_loss(
                    losses.predicted_latents,
                    losses.target_latents,
                    batch["region_boxes"],
                    args.resolution,
                    losses.weights,
                    discriminators,
                    loss_config,
                )
                accelerator.backward(d_loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(discriminators.parameters(), args.max_grad_norm)
                d_optimizer.step()
                d_lr_scheduler.step()
                d_optimizer.zero_grad(set_to_none=True)
                logs |= {
                    "facial_loss": losses.facial.total.item(),
                    "style_loss": losses.facial.style.item(),
                    "adversarial_loss": losses.facial.adversarial.item(),
                    "discriminator_loss": d_loss.item(),
                }
        if not accelerator.sync_gradients:
            continue
        global_step += 1
        finish_step(accelerator, args, progress, metrics, logs, global_step, plan)
        if validation_faces is not None and is_validation_step(accelerator, args, global_step):
            run_validation(models, base, validation_faces, args, global_step, weight_dtype, accelerator)
    progress.close()

    # 5. Export the released layout.
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        export_pipeline(Path(args.output_dir), base, unet=base.unet, controlnet=accelerator.unwrap_model(controlnet))
        logger.info("Stage II model written to %s", args.output_dir)
    accelerator.end_training()
    return Path(args.output_dir)


if __name__ == "__main__":
    main(parse_args())
