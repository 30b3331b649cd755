"""Seconds per Stage II training step and peak memory, full-size architecture with random weights.

Runs the real Stage II step of ``authface_core.training.train_controlnet`` (VAE encode, ControlNet
+ frozen UNet forward and backward, the facial feature loss, both optimiser steps) on SDXL's
public UNet and VAE configs (stabilityai/stable-diffusion-xl-base-1.0, ``unet/config.json`` and
``vae/config.json``) with random weights, at batch sizes 1, 2 and 4, with and without gradient
checkpointing. The text encoders are left out: Stage II encodes its empty prompt once before
training, so a step only sees the (1, 77, 2048) and (1, 1280) embeddings, random here.

    python bench/train_step.py                         # GPU, 512 px, bf16 autocast like --mixed_precision bf16
    python bench/train_step.py --tiny --device cpu     # the tiny model on CPU: checks the harness, not a speed

Prints a Markdown table and writes it with the raw numbers to ``bench/out/train_step.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from authface_core.io import atomic_write_bytes  # noqa: E402
from authface_core.training.losses import FacialDiscriminators, discriminator_loss  # noqa: E402
from authface_core.training.run import freeze, place  # noqa: E402
from authface_core.training.settings import (  # noqa: E402
    AUTHFACE_CONDITIONING_CHANNELS,
    DiffusionLossSettings,
    FacialLossSettings,
    OptimizationSettings,
)
from authface_core.training.train_controlnet import Stage2Models, new_controlnet, stage2_losses  # noqa: E402

# stabilityai/stable-diffusion-xl-base-1.0 unet/config.json (architecture keys).
SDXL_UNET_CONFIG = {
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280],
    "cross_attention_dim": 2048,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 4,
    "projection_class_embeddings_input_dim": 2816,
    "sample_size": 128,
    "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "use_linear_projection": True,
}
# stabilityai/stable-diffusion-xl-base-1.0 vae/config.json.
SDXL_VAE_CONFIG = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "sample_size": 1024,
    "scaling_factor": 0.13025,
}
SDXL_TEXT_WIDTH, SDXL_POOLED_WIDTH = 2048, 1280
SDXL_TIME_IDS = 6  # micro-conditioning numbers per sample (``training.diffusion.sdxl_time_ids``)
# Stage II's default settings (facial loss weights, learning rates, gradient clipping).
FACIAL = FacialLossSettings()
OPTIMIZATION = OptimizationSettings()
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="Use the tiny smoke-test model instead of SDXL's size.")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda or cpu.")
    parser.add_argument(
        "--resolution", type=int, default=None, help="Face size in pixels (default 512; 64 with --tiny)."
    )
    parser.add_argument("--batch_sizes", default="1,2,4", help="Comma-separated batch sizes.")
    parser.add_argument("--steps", type=int, default=5, help="Timed steps per setting.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed steps first (allocator, kernels).")
    parser.add_argument(
        "--mixed_precision",
        default="bf16",
        choices=sorted(DTYPES),
        help="Autocast and frozen-UNet dtype (the ControlNet stays fp32, as training requires).",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (CPU runs).")
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "out" / "train_step"), help="Output path without suffix."
    )
    return parser.parse_args(argv)


def build_models(tiny: bool, device: torch.device, dtype: torch.dtype) -> tuple[Stage2Models, FacialDiscriminators]:
    """Frozen VAE (fp32) and UNet (``dtype``), a ControlNet copied from the UNet (fp32), two discriminators."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    from authface_core.pipeline.tiny import SDXL_SCHEDULER_CONFIG, build_tiny_components

    if tiny:
        components = build_tiny_components(seed=0)
        vae, unet = components["vae"], components["unet"]
        text_width = unet.config.cross_attention_dim
        pooled_width = (
            unet.config.projection_class_embeddings_input_dim - SDXL_TIME_IDS * unet.config.addition_time_embed_dim
        )
    else:
        vae, unet = AutoencoderKL(**SDXL_VAE_CONFIG), UNet2DConditionModel(**SDXL_UNET_CONFIG)
        text_width, pooled_width = SDXL_TEXT_WIDTH, SDXL_POOLED_WIDTH
    controlnet = new_controlnet(unet, AUTHFACE_CONDITIONING_CHANNELS).to(device).train()
    freeze(vae, unet)
    place(vae, device, torch.float32)  # SDXL's VAE overflows in fp16, so training keeps it in fp32 too
    place(unet, device, dtype)
    generator = torch.Generator().manual_seed(0)
    prompt_embeds = torch.randn(1, 77, text_width, generator=generator).to(device)
    pooled = torch.randn(1, pooled_width, generator=generator).to(device)
    models = Stage2Models(vae, unet, controlnet, DDPMScheduler(**SDXL_SCHEDULER_CONFIG), prompt_embeds, pooled)
    return models, FacialDiscriminators(in_channels=4).to(device).train()


def random_batch(batch_size: int, resolution: int, device: torch.device) -> dict:
    generator = torch.Generator().manual_seed(batch_size)
    eyes, mouth = [0.27, 0.40, 0.73, 0.55], [0.35, 0.66, 0.65, 0.80]  # roughly where FFHQ alignment puts them
    boxes = torch.tensor([eyes, mouth]).mul(resolution).expand(batch_size, 2, 4)
    return {
        "hq": (torch.rand(batch_size, 3, resolution, resolution, generator=generator) * 2 - 1).to(device),
        "lq": torch.rand(batch_size, 3, resolution, resolution, generator=generator).to(device),
        "region_boxes": boxes.to(device),
    }


def training_step(models, discriminators, optimizers, batch, dtype, device) -> None:
    """One Stage II optimiser step, as the training loop does it (no gradient accumulation)."""
    controlnet_optimizer, discriminator_optimizer = optimizers
    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        losses = stage2_losses(
            models,
            batch,
            discriminators=discriminators,
            facial=FACIAL,
            diffusion=DiffusionLossSettings(),
            weight_dtype=dtype,
        )
    losses.total.backward()
    torch.nn.utils.clip_grad_norm_(models.controlnet.parameters(), OPTIMIZATION.max_grad_norm)
    controlnet_optimizer.step()
    controlnet_optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        d_loss = discriminator_loss(
            losses.predicted_latents,
            losses.target_latents,
            batch["region_boxes"],
            batch["hq"].shape[-1],
            losses.weights,
            discriminators,
        ).total
    d_loss.backward()
    torch.nn.utils.clip_grad_norm_(discriminators.parameters(), OPTIMIZATION.max_grad_norm)
    discriminator_optimizer.step()
    discriminator_optimizer.zero_grad(set_to_none=True)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(models, discriminators, batch_size: int, args, device, dtype, checkpointing: bool) -> dict:
    """Seconds per step (mean of ``args.steps``) and peak memory of one setting."""
    for module in (models.controlnet, models.unet):
        module.enable_gradient_checkpointing() if checkpointing else module.disable_gradient_checkpointing()
    optimizers = (
        torch.optim.AdamW(models.controlnet.parameters(), lr=OPTIMIZATION.learning_rate),
        torch.optim.AdamW(discriminators.parameters(), lr=FACIAL.discriminator_learning_rate),
    )
    batch = random_batch(batch_size, args.resolution, device)
    row = {"batch_size": batch_size, "gradient_checkpointing": checkpointing}
    try:
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        for _ in range(args.warmup):
            training_step(models, discriminators, optimizers, batch, dtype, device)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            training_step(models, discriminators, optimizers, batch, dtype, device)
        synchronize(device)
        row["seconds_per_step"] = (time.perf_counter() - start) / args.steps
        if device.type == "cuda":
            row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        else:  # process-wide and never decreasing: an upper bound for this setting
            row["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    except torch.cuda.OutOfMemoryError:
        row["error"] = "out of memory"
    finally:
        del optimizers
        models.controlnet.zero_grad(set_to_none=True)
        discriminators.zero_grad(set_to_none=True)
    return row


def markdown_table(rows: list[dict], header: str) -> str:
    memory_key = "peak_memory_gib" if any("peak_memory_gib" in r for r in rows) else "peak_rss_gib"
    memory_label = "peak GPU memory (GiB)" if memory_key == "peak_memory_gib" else "peak process RSS (GiB)"
    lines = [header, "", f"| batch | gradient checkpointing | s/step | {memory_label} |", "|---|---|---|---|"]
    for r in rows:
        speed = f"{r['seconds_per_step']:.3f}" if "seconds_per_step" in r else r.get("error", "-")
        memory = f"{r[memory_key]:.2f}" if memory_key in r else "-"
        lines.append(f"| {r['batch_size']} | {'on' if r['gradient_checkpointing'] else 'off'} | {speed} | {memory} |")
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> list[dict]:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.resolution = args.resolution or (64 if args.tiny else 512)
    dtype = DTYPES[args.mixed_precision]
    models, discriminators = build_models(args.tiny, device, dtype)
    trainable = sum(p.numel() for p in models.controlnet.parameters())
    rows = [
        measure(models, discriminators, int(batch_size), args, device, dtype, checkpointing)
        for checkpointing in (False, True)
        for batch_size in args.batch_sizes.split(",")
    ]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    header = (
        f"Stage II step, {'tiny' if args.tiny else 'SDXL-size'} model ({trainable / 1e6:.1f} M trainable ControlNet "
        f"parameters), {args.resolution} px, {args.mixed_precision} autocast, {name}, torch {torch.__version__}, "
        f"mean of {args.steps} steps after {args.warmup} warm-up"
    )
    table = markdown_table(rows, header)
    print(table)
    out = Path(args.out)
    atomic_write_bytes(out.with_suffix(".md"), table.encode())
    atomic_write_bytes(out.with_suffix(".json"), json.dumps({"setup": header, "rows": rows}, indent=2).encode())
    return rows


if __name__ == "__main__":
    main(parse_args())
