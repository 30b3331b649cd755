"""Stage I, face-oriented fine-tuning: tune the SDXL UNet on curated, captioned face photos.

The standard noise-prediction objective with SDXL's micro-conditioning (original size, crop
top-left, target size), on the dataset the annotation app publishes (``retouched`` photos and
their ``caption``) or any folder/Parquet/Hub dataset of captioned images. Full fine-tuning (the
UNet in float32, optional EMA) or LoRA through peft (fp32 adapters on a UNet frozen in the
mixed-precision type). The VAE and text encoders stay frozen; their encodings can be cached.

The output folder holds the released layout, so Stage II (``train_controlnet.py``) and
``load_pipeline`` read it: the tuned ``unet/`` (for LoRA, the adapter merged into the base UNet as
loaded, in float32; the adapter alone is in ``unet_lora/``), the frozen parts exactly as loaded,
and a ``controlnet/`` freshly copied from the tuned UNet with zero-initialised outputs, which adds
nothing until Stage II trains it.

Run: ``python -m authface_core train stage1 --config configs/stage1_1gpu.yaml``.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import torch

from ..pipeline.pipeline_authface_sdxl import encode_sdxl_prompts
from .checkpoints import MetricsLog, export_pipeline, is_checkpoint_step, save_checkpoint
from .data import CAPTION_COLUMN, POOLED_EMBEDS_COLUMN, PROMPT_EMBEDS_COLUMN
from .diffusion import add_training_noise, diffusion_loss, diffusion_target, min_snr_weights, sdxl_time_ids
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
    AUTHFACE_CONDITIONING_CHANNELS,
    DiffusionLossSettings,
    PromptValidationSettings,
    Stage1Settings,
    UNetTuningSettings,
    flat_settings,
    parse_stage_settings,
)
from .validation import autocast_unless_fp32, decode_latents_fp32, image_scores, save_validation_images

logger = logging.getLogger(__name__)

LORA_TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0"]  # the attention projections, as diffusers' SDXL LoRA script
LORA_SUBFOLDER = "unet_lora"
UNET_EMA_FOLDER = "unet_ema"


def parse_args(input_args: list[str] | None = None) -> Stage1Settings:
    """Stage I settings from flags (and ``--config FILE``); a bad value raises ValueError naming it."""
    return parse_stage_settings(Stage1Settings, input_args)


def add_lora(unet, settings: UNetTuningSettings) -> None:
    """Freeze the UNet and add trainable LoRA adapters to its attention projections."""
    from peft import LoraConfig

    unet.requires_grad_(False)
    rank = settings.lora_rank
    config = LoraConfig(
        r=rank,
        lora_alpha=settings.lora_alpha or rank,
        init_lora_weights="gaussian",
        target_modules=LORA_TARGET_MODULES,
    )
    unet.add_adapter(config)


def merge_lora(base_unet, trained_unet, settings: UNetTuningSettings):
    """``base_unet`` (as loaded, float32) with the trained adapters of ``trained_unet`` merged into its weights."""
    from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

    add_lora(base_unet, settings)
    adapter = {name: tensor.float().cpu() for name, tensor in get_peft_model_state_dict(trained_unet).items()}
    set_peft_model_state_dict(base_unet, adapter)
    base_unet.fuse_lora()
    base_unet.unload_lora()
    return base_unet


def batch_prompt_embeddings(batch: dict, encode, empty: tuple[torch.Tensor, torch.Tensor], device):
    """(B, 77, D) and (B, P) text conditioning of the batch's captions: the cached embeddings, with the empty
    prompt's where a caption was dropped, or ``encode(captions)`` without a cache."""
    if PROMPT_EMBEDS_COLUMN not in batch:
        return encode(batch["caption"])
    dropped = torch.tensor([not caption for caption in batch["caption"]], device=device)
    hidden = torch.where(dropped[:, None, None], empty[0], batch[PROMPT_EMBEDS_COLUMN].to(device))
    pooled = torch.where(dropped[:, None], empty[1], batch[POOLED_EMBEDS_COLUMN].to(device))
    return hidden, pooled


def stage1_loss(
    vae,
    unet,
    noise_scheduler,
    batch: dict,
    prompt_embeds,
    pooled_prompt_embeds,
    weight_dtype,
    resolution: int,
    diffusion: DiffusionLossSettings,
    generator: torch.Generator | None = None,
):
    """Noise-prediction MSE of one batch: pixels (B, 3, R, R) in [-1, 1] (or cached latents) with its SDXL
    micro-conditioning, Min-SNR weighted and with offset noise when those are on."""
    latents = batch_latents(vae, batch, "pixels", generator).float()  # (B, 4, R/8, R/8)
    noise, timesteps, noisy_latents = add_training_noise(noise_scheduler, latents, generator, diffusion.noise_offset)
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
    snr_weights = min_snr_weights(noise_scheduler, timesteps, diffusion.snr_gamma) if diffusion.snr_gamma else None
    return diffusion_loss(model_pred, diffusion_target(noise_scheduler, latents, noise, timesteps), snr_weights)


def register_checkpoint_hooks(accelerator, train_mode: str, ema) -> None:
    """checkpoint-{step}/unet (full, save_pretrained) or /unet_lora (adapter safetensors), plus /unet_ema."""
    from diffusers import UNet2DConditionModel

    def save_hook(models, weights, output_dir):
        if accelerator.is_main_process:
            unet = accelerator.unwrap_model(models[0])
            if train_mode == "lora":
                unet.save_lora_adapter(Path(output_dir) / LORA_SUBFOLDER)
            else:
                unet.save_pretrained(Path(output_dir) / "unet", safe_serialization=True)
            if ema is not None:
                ema.save_pretrained(Path(output_dir) / UNET_EMA_FOLDER)
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
            load_ema(ema, Path(input_dir) / UNET_EMA_FOLDER, UNet2DConditionModel)

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def run_validation(
    base,
    unet,
    settings: PromptValidationSettings,
    *,
    resolution: int,
    output_dir: str,
    step: int,
    seed: int,
    weight_dtype: torch.dtype,
    accelerator,
    ema=None,
) -> dict[str, float]:
    """Render the validation prompts with the current UNet (its moving average when kept); write
    output_dir/validation/step-{N}/*.png and return the images' NIQE to log."""
    from diffusers import StableDiffusionXLPipeline

    unet = accelerator.unwrap_model(unet)
    pipe = StableDiffusionXLPipeline(
        vae=base.vae,
        text_encoder=base.text_encoder,
        text_encoder_2=base.text_encoder_2,
        tokenizer=base.tokenizer,
        tokenizer_2=base.tokenizer_2,
        unet=unet,
        scheduler=base.scheduler,
    )
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator(accelerator.device).manual_seed(seed)
    images = []
    with averaged_weights(ema, unet):
        for prompt in settings.validation_prompts:
            with autocast_unless_fp32(accelerator.device, weight_dtype):
                latents = pipe(
                    prompt,
                    height=resolution,
                    width=resolution,
                    num_inference_steps=settings.validation_inference_steps,
                    generator=generator,
                    output_type="latent",
                ).images
            images.append(decode_latents_fp32(base.vae, latents)[0])
    save_validation_images(output_dir, step, images, accelerator)
    return image_scores(images)


def main(settings: Stage1Settings) -> Path:
    """Train Stage I; returns the output folder holding the final checkpoint in the released layout."""
    from tqdm.auto import tqdm

    from .cache import cache_caption_embeddings, cache_photo_latents, checkpoint_fingerprint
    from .data import example_dataset, stage1_example
    from .train_controlnet import new_controlnet

    data, optimization, checkpoints, tuning = settings.data, settings.optimization, settings.checkpoints, settings.unet
    accelerator = start_run(optimization, checkpoints)
    weight_dtype = weight_dtype_of(accelerator)

    # 1. Models: frozen VAE (fp32) and text encoders; the UNet in fp32, or frozen with fp32 LoRA adapters.
    base = load_base_components(settings.model)
    unet = base.unet
    freeze(base.vae, base.text_encoder, base.text_encoder_2)
    place(base.vae, accelerator.device, torch.float32)
    for text_encoder in (base.text_encoder, base.text_encoder_2):
        place(text_encoder, accelerator.device, weight_dtype)
    if tuning.train_mode == "lora":
        from diffusers.training_utils import cast_training_params

        place(unet, accelerator.device, weight_dtype)
        add_lora(unet, tuning)
        cast_training_params(unet, dtype=torch.float32)
    unet.train()
    if optimization.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    ema = create_ema(unet, optimization.ema_decay, accelerator.device) if optimization.use_ema else None
    trainable = [p for p in unet.parameters() if p.requires_grad]
    tokenizers, text_encoders = (base.tokenizer, base.tokenizer_2), (base.text_encoder, base.text_encoder_2)

    def encode_prompts(captions: list[str]):
        return encode_sdxl_prompts(captions, tokenizers, text_encoders, accelerator.device)

    # 2. Data: captioned photos (aligned faces with align_faces), SDXL crops, cached encodings when asked.
    dataset, image_column = load_training_data(data, optimization.seed, accelerator, prepare=data.align_faces)
    with accelerator.main_process_first():
        if data.cache_latents:
            key = checkpoint_fingerprint(base.folder, "vae")
            dataset = cache_photo_latents(dataset, base.vae, image_column, data.resolution, key)
        if tuning.cache_text_embeddings:
            key = checkpoint_fingerprint(base.folder, "text_encoder", "text_encoder_2")
            dataset = cache_caption_embeddings(dataset, encode_prompts, CAPTION_COLUMN, key)
    make_example = partial(
        stage1_example,
        image_column=image_column,
        resolution=data.resolution,
        random_crop=tuning.random_crop,
        random_flip=data.random_flip,
        proportion_empty_prompts=tuning.proportion_empty_prompts,
    )
    train_dataset = example_dataset(dataset, make_example, optimization.seed)
    dataloader = make_dataloader(train_dataset, data, optimization.train_batch_size)

    # 3. Optimiser.
    plan = plan_steps(optimization, dataloader, accelerator.num_processes, streaming=data.streaming)
    learning_rate = effective_learning_rate(optimization, accelerator.num_processes, optimization.learning_rate)
    optimizer = create_optimizer(trainable, optimization, learning_rate)
    lr_scheduler = create_lr_scheduler(optimizer, optimization, accelerator.num_processes, plan.max_train_steps)
    unet, optimizer, dataloader, lr_scheduler = accelerator.prepare(unet, optimizer, dataloader, lr_scheduler)
    register_checkpoint_hooks(accelerator, tuning.train_mode, ema)
    if accelerator.is_main_process:
        tracked = {name: str(value) for name, value in flat_settings(settings).items()}
        accelerator.init_trackers(checkpoints.tracker_project_name, config=tracked)

    # 4. Train, from a checkpoint when asked.
    resume = resume_training(accelerator, checkpoints, plan, optimization.gradient_accumulation_steps)
    global_step = resume[0]
    metrics = MetricsLog(accelerator, Path(checkpoints.output_dir), resumed_step=global_step)
    empty_prompt = encode_prompts([""]) if tuning.cache_text_embeddings else None
    progress = tqdm(
        total=plan.max_train_steps, initial=global_step, desc="Stage I", disable=not accelerator.is_local_main_process
    )
    for batch, generator in training_batches(accelerator, dataloader, train_dataset, plan, resume, optimization):
        if global_step >= plan.max_train_steps:
            break
        with accelerator.accumulate(unet):
            with torch.no_grad():
                prompt_embeds, pooled = batch_prompt_embeddings(batch, encode_prompts, empty_prompt, accelerator.device)
            loss = stage1_loss(
                base.vae,
                unet,
                base.scheduler,
                batch,
                prompt_embeds,
                pooled,
                weight_dtype,
                data.resolution,
                settings.diffusion,
                generator,
            )
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(trainable, optimization.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        if not accelerator.sync_gradients:
            continue
        global_step += 1
        if ema is not None:
            ema.step(unet.parameters())
        logs = {"loss": loss.item(), "lr": lr_scheduler.get_last_lr()[0]}
        validation = settings.validation
        if validation.validation_prompts and is_validation_step(global_step, validation.validation_steps, accelerator):
            logs |= run_validation(
                base,
                unet,
                validation,
                resolution=data.resolution,
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

    # 5. Export the released layout: frozen parts as loaded, the tuned UNet (EMA weights when kept, LoRA merged).
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        output_dir = Path(checkpoints.output_dir)
        unet = accelerator.unwrap_model(unet)
        components = base.reload()
        if ema is not None:
            ema.copy_to(unet.parameters())
        if tuning.train_mode == "lora":
            unet.save_lora_adapter(output_dir / LORA_SUBFOLDER)
            unet = merge_lora(components["unet"], unet, tuning)
        channels = base.controlnet.config.conditioning_embedding_out_channels if base.controlnet else None
        controlnet = new_controlnet(unet, channels or AUTHFACE_CONDITIONING_CHANNELS)
        export_pipeline(
            output_dir, components, unet=unet, controlnet=controlnet, smoke_test_model=base.smoke_test_model
        )
        logger.info("Stage I model written to %s", output_dir)
    accelerator.end_training()
    return Path(checkpoints.output_dir)


if __name__ == "__main__":
    main(parse_args())
