"""Stage I, face-oriented fine-tuning: tune the SDXL UNet on curated, captioned face photos.

The standard noise-prediction objective with SDXL's micro-conditioning (original size, crop
top-left, target size), on the dataset the annotation app publishes (``retouched`` photos and
their ``caption``) or any folder/Parquet/Hub dataset of captioned images. Full fine-tuning or
LoRA through peft (``--train_mode``); EMA optional for full tuning. The VAE and text encoders stay
frozen.

The output folder holds the released layout, so Stage II (``train_controlnet.py``) and
``load_pipeline`` read it: the tuned ``unet/`` (LoRA merged into it; the adapter alone is in
``unet_lora/``) and a ``controlnet/`` freshly copied from that UNet with zero-initialised
outputs, which adds nothing until Stage II trains it.

Run: ``python -m authface_core train stage1 --config configs/stage1_1gpu.yaml``.
"""

from __future__ import annotations

import argparse
import logging
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..pipeline.pipeline_authface_sdxl import encode_sdxl_prompts
from .common import (
    MetricsLog,
    add_shared_arguments,
    add_training_noise,
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

logger = logging.getLogger(__name__)

LORA_TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0"]  # the attention projections, as diffusers' SDXL LoRA script
LORA_SUBFOLDER = "unet_lora"


def parse_args(input_args: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="AuthFace Stage I: face-oriented fine-tuning of the SDXL UNet.")
    add_shared_arguments(parser, default_output_dir="authface-stage1", default_learning_rate=1e-5)
    stage = parser.add_argument_group("stage I")
    stage.add_argument(
        "--train_mode",
        default="full",
        choices=("full", "lora"),
        help="Tune every UNet weight, or LoRA adapters (peft).",
    )
    stage.add_argument("--lora_rank", type=int, default=16, help="Rank of the LoRA adapters.")
    stage.add_argument("--lora_alpha", type=int, default=None, help="LoRA alpha (default: the rank).")
    stage.add_argument(
        "--use_ema",
        action="store_true",
        help="Keep an exponential moving average of the UNet (full mode) and export it.",
    )
    stage.add_argument("--ema_decay", type=float, default=0.9999, help="EMA decay.")
    stage.add_argument(
        "--random_crop",
        action="store_true",
        help="Random instead of centre crops (the crop is passed as micro-conditioning).",
    )
    stage.add_argument(
        "--proportion_empty_prompts",
        type=float,
        default=0.05,
        help="Share of captions replaced by the empty prompt, so classifier-free guidance keeps working.",
    )
    stage.add_argument(
        "--validation_prompts", nargs="*", default=[], help="Prompts rendered every --validation_steps steps."
    )
    stage.add_argument(
        "--validation_inference_steps", type=int, default=25, help="Denoising steps of the validation images."
    )
    args = parser.parse_args(input_args)
    check_shared_arguments(args)
    if args.use_ema and args.train_mode == "lora":
        raise ValueError("--use_ema works with --train_mode full only")
    if not 0.0 <= args.proportion_empty_prompts <= 1.0:
        raise ValueError(f"--proportion_empty_prompts must be in [0, 1], got {args.proportion_empty_prompts}")
    if args.lora_rank < 1:
        raise ValueError(f"--lora_rank must be >= 1, got {args.lora_rank}")
    return args


def add_lora(unet, rank: int, alpha: int | None) -> None:
    """Freeze the UNet and add trainable LoRA adapters to its attention projections."""
    from peft import LoraConfig

    unet.requires_grad_(False)
    unet.add_adapter(
        LoraConfig(r=rank, lora_alpha=alpha or rank, init_lora_weights="gaussian", target_modules=LORA_TARGET_MODULES)
    )


def stage1_loss(
    vae,
    unet,
    noise_scheduler,
    batch: dict,
    prompt_embeds,
    pooled_prompt_embeds,
    weight_dtype,
    resolution: int,
    generator: torch.Generator | None = None,
):
    """Noise-prediction MSE of one batch: pixels (B, 3, R, R) in [-1, 1] with its SDXL micro-conditioning."""
    latents = encode_pixels(vae, batch["pixels"], generator).float()  # (B, 4, R/8, R/8)
    noise, timesteps, noisy_latents = add_training_noise(noise_scheduler, latents, generator)
    added_cond = {
        "text_embeds": pooled_prompt_embeds.to(weight_dtype),
        "time_ids": sdxl_time_ids(batch["original_size"], batch["crop_top_left"], resolution).to(weight_dtype),
    }
    model_pred = unet(
        noisy_latents.to(weight_dtype),
        timesteps,
        encoder_hidden_states=prompt_embeds.to(weight_dtype),
        added_cond_kwargs=added_cond,
        return_dict=False,
    )[0].float()
    return F.mse_loss(model_pred, diffusion_target(noise_scheduler, latents, noise, timesteps))


def register_checkpoint_hooks(accelerator, train_mode: str, ema) -> None:
    """checkpoint-{step}/unet (full, save_pretrained) or /unet_lora (adapter safetensors), plus /unet_ema."""
    from diffusers import UNet2DConditionModel
    from diffusers.training_utils import EMAModel

    def save_hook(models, weights, output_dir):
        if accelerator.is_main_process:
            unet = accelerator.unwrap_model(models[0])
            if train_mode == "lora":
                unet.save_lora_adapter(Path(output_dir) / LORA_SUBFOLDER)
            else:
                unet.save_pretrained(Path(output_dir) / "unet", safe_serialization=True)
            if ema is not None:
                ema.save_pretrained(Path(output_dir) / "unet_ema")
        weights.clear()

    def load_hook(models, input_dir):
        unet = accelerator.unwrap_model(models.pop())
        if train_mode == "lora":
            from diffusers.loaders.lora_base import LORA_WEIGHT_NAME_SAFE
            from peft.utils import set_peft_model_state_dict
            from safetensors.torch import load_file

            set_peft_model_state_dict(unet, load_file(Path(input_dir) / LORA_SUBFOLDER / LORA_WEIGHT_NAME_SAFE))
        else:
            unet.load_state_dict(UNet2DConditionModel.from_pretrained(input_dir, subfolder="unet").state_dict())
        if ema is not None:
            loaded = EMAModel.from_pretrained(Path(input_dir) / "unet_ema", model_cls=UNet2DConditionModel)
            ema.load_state_dict(loaded.state_dict())

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def run_validation(base, unet, args, step: int, weight_dtype, accelerator) -> None:
    """Render the validation prompts with the current UNet; write output_dir/validation/step-{N}/*.png."""
    from diffusers import StableDiffusionXLPipeline

    from ..io import save_image

    pipe = StableDiffusionXLPipeline(
        vae=base.vae,
        text_encoder=base.text_encoder,
        text_encoder_2=base.text_encoder_2,
        tokenizer=base.tokenizer,
        tokenizer_2=base.tokenizer_2,
        unet=accelerator.unwrap_model(unet),
        scheduler=base.scheduler,
    )
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator(accelerator.device).manual_seed(args.seed)
    folder = Path(args.output_dir) / "validation" / f"step-{step}"
    with torch.autocast(accelerator.device.type, dtype=weight_dtype, enabled=weight_dtype != torch.float32):
        for index, prompt in enumerate(args.validation_prompts):
            image = pipe(
                prompt,
                height=args.resolution,
                width=args.resolution,
                num_inference_steps=args.validation_inference_steps,
                generator=generator,
                output_type="np",
            ).images[0]
            save_image(folder / f"{index:02d}.png", (image * 255).round().astype(np.uint8))
    logger.info("validation images written to %s", folder)


def main(args: argparse.Namespace) -> Path:
    """Train Stage I; returns the output folder holding the final checkpoint in the released layout."""
    from tqdm.auto import tqdm

    from .data import example_dataset, stage1_example
    from .train_controlnet import AUTHFACE_CONDITIONING_CHANNELS, new_controlnet

    accelerator = start_run(args)
    weight_dtype = weight_dtype_of(accelerator)

    # 1. Models: frozen VAE and text encoders; the UNet (or its LoRA adapters) trained in float32.
    base = load_base_components(args.pretrained_model_name_or_path, revision=args.revision, variant=args.variant)
    unet = base.unet
    freeze(base.vae, base.text_encoder, base.text_encoder_2)
    place(base.vae, accelerator.device, torch.float32)
    for text_encoder in (base.text_encoder, base.text_encoder_2):
        place(text_encoder, accelerator.device, weight_dtype)
    if args.train_mode == "lora":
        add_lora(unet, args.lora_rank, args.lora_alpha)
    unet.train()
    if args.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    ema = None
    if args.use_ema:
        from diffusers import UNet2DConditionModel
        from diffusers.training_utils import EMAModel

        ema = EMAModel(
            unet.parameters(), decay=args.ema_decay, model_cls=UNet2DConditionModel, model_config=unet.config
        )
        ema.to(accelerator.device)
    trainable = [p for p in unet.parameters() if p.requires_grad]

    # 2. Data: captioned photos (aligned faces with --align_faces), SDXL crops.
    dataset, image_column = load_training_data(args, accelerator, prepare=args.align_faces)
    make_example = partial(
        stage1_example,
        image_column=image_column,
        resolution=args.resolution,
        random_crop=args.random_crop,
        random_flip=args.random_flip,
        proportion_empty_prompts=args.proportion_empty_prompts,
    )
    train_dataset = example_dataset(dataset, make_example, args.seed)
    dataloader = make_dataloader(train_dataset, args)

    # 3. Optimiser.
    plan = plan_steps(args, dataloader, accelerator.num_processes)
    optimizer = create_optimizer(trainable, args, effective_learning_rate(args, accelerator, args.learning_rate))
    lr_scheduler = create_lr_scheduler(optimizer, args, accelerator, plan.max_train_steps)
    unet, optimizer, dataloader, lr_scheduler = accelerator.prepare(unet, optimizer, dataloader, lr_scheduler)
    register_checkpoint_hooks(accelerator, args.train_mode, ema)
    if accelerator.is_main_process:
        accelerator.init_trackers(args.tracker_project_name, config={k: str(v) for k, v in vars(args).items()})

    # 4. Train, from a checkpoint when asked.
    resume = resume_training(accelerator, args, plan)
    global_step = resume[0]
    metrics = MetricsLog(accelerator, Path(args.output_dir), resumed_step=global_step)
    tokenizers, text_encoders = (base.tokenizer, base.tokenizer_2), (base.text_encoder, base.text_encoder_2)
    progress = tqdm(
        total=plan.max_train_steps, initial=global_step, desc="Stage I", disable=not accelerator.is_local_main_process
    )
    for batch, generator in training_batches(accelerator, dataloader, train_dataset, plan, args, resume):
        if global_step >= plan.max_train_steps:
            break
        with accelerator.accumulate(unet):
            prompt_embeds, pooled = encode_sdxl_prompts(batch["caption"], tokenizers, text_encoders, accelerator.device)
            loss = stage1_loss(
                base.vae, unet, base.scheduler, batch, prompt_embeds, pooled, weight_dtype, args.resolution, generator
            )
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(unet.parameters(), args.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        if not accelerator.sync_gradients:
            continue
        global_step += 1
        if ema is not None:
            ema.step(unet.parameters())
        logs = {"loss": loss.item(), "lr": lr_scheduler.get_last_lr()[0]}
        finish_step(accelerator, args, progress, metrics, logs, global_step, plan)
        if args.validation_prompts and is_validation_step(accelerator, args, global_step):
            run_validation(base, unet, args, global_step, weight_dtype, accelerator)
    progress.close()

    # 5. Export the released layout (LoRA merged; EMA weights when kept).
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unet = accelerator.unwrap_model(unet)
        if ema is not None:
            ema.copy_to(unet.parameters())
        if args.train_mode == "lora":
            unet.save_lora_adapter(Path(args.output_dir) / LORA_SUBFOLDER)
            unet.fuse_lora()
            unet.unload_lora()
        channels = base.controlnet.config.conditioning_embedding_out_channels if base.controlnet else None
        controlnet = new_controlnet(unet, tuple(channels or AUTHFACE_CONDITIONING_CHANNELS))
        export_pipeline(Path(args.output_dir), base, unet=unet, controlnet=controlnet)
        logger.info("Stage I model written to %s", args.output_dir)
    accelerator.end_training()
    return Path(args.output_dir)


if __name__ == "__main__":
    main(parse_args())
