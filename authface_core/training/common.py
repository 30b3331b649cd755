"""What both training stages share: flags, model loading, optimiser, checkpoints, logging, export.

Written in the style of diffusers' ``examples/`` scripts (one ``Accelerator``, ``checkpoint-{step}``
folders written by ``accelerator.save_state``, ``--resume_from_checkpoint latest``), with the
repeated parts here so the two stage scripts hold only what differs.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointNotFoundError, MissingDependencyError
from ..io import atomic_write_bytes
from .losses import PREDICTION_TYPES

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
METRICS_FILE = "metrics.jsonl"
TRACKERS = ("tensorboard", "wandb", "trackio")
STREAM_SHUFFLE_BUFFER = 1000  # examples held for shuffling a streamed dataset (datasets' own default)


def add_shared_arguments(
    parser: argparse.ArgumentParser, *, default_output_dir: str, default_learning_rate: float
) -> None:
    """The flags both stages take (model, data, optimisation, checkpoints, logging)."""
    model = parser.add_argument_group("model")
    model.add_argument(
        "--pretrained_model_name_or_path",
        required=True,
        help="Base checkpoint: a folder in the SDXL/AuthFace layout, a Hub id, or 'tiny' (random smoke-test model).",
    )
    model.add_argument("--revision", default=None, help="Hub branch, tag or commit of the base checkpoint.")
    model.add_argument("--variant", default=None, help="Weight file variant of the base checkpoint, e.g. 'fp16'.")

    data = parser.add_argument_group("data")
    data.add_argument(
        "--train_data",
        required=True,
        help="Training faces: a folder of images (captions in metadata.jsonl), Parquet file(s), or a Hub dataset id.",
    )
    data.add_argument("--dataset_split", default="train", help="Split of the dataset to train on.")
    data.add_argument(
        "--image_column",
        default=None,
        help="Column holding the HQ image; default the first of 'retouched', 'image', 'hq', 'original'.",
    )
    data.add_argument(
        "--streaming", action="store_true", help="Stream the dataset instead of downloading and caching it whole."
    )
    data.add_argument("--cache_dir", default=None, help="Where `datasets` caches downloads and prepared faces.")
    data.add_argument(
        "--max_train_samples", type=int, default=None, help="Train on the first N examples only (debugging)."
    )
    data.add_argument(
        "--align_faces",
        action="store_true",
        help="Detect and FFHQ-align the largest face of each photo; without it images must be aligned square faces.",
    )
    data.add_argument(
        "--face_size",
        type=int,
        default=512,
        choices=(512, 1024),
        help="Side of the aligned faces kept by preparation (degradations are applied at this size).",
    )
    data.add_argument("--resolution", type=int, default=512, help="Training resolution in pixels (a multiple of 8).")
    data.add_argument("--random_flip", action="store_true", help="Mirror examples at random.")
    data.add_argument(
        "--dataloader_num_workers", type=int, default=0, help="DataLoader worker processes (0: main process)."
    )

    optimisation = parser.add_argument_group("optimisation")
    optimisation.add_argument(
        "--seed", type=int, default=0, help="Seed of the model init, noise, timesteps and degradations."
    )
    optimisation.add_argument("--train_batch_size", type=int, default=4, help="Batch size per device.")
    optimisation.add_argument(
        "--num_train_epochs", type=int, default=1, help="Epochs; ignored when --max_train_steps is set."
    )
    optimisation.add_argument(
        "--max_train_steps", type=int, default=None, help="Total optimiser steps; overrides --num_train_epochs."
    )
    optimisation.add_argument(
        "--gradient_accumulation_steps", type=int, default=1, help="Micro-batches per optimiser step."
    )
    optimisation.add_argument(
        "--gradient_checkpointing", action="store_true", help="Recompute activations in backward to save memory."
    )
    optimisation.add_argument("--learning_rate", type=float, default=default_learning_rate, help="Peak learning rate.")
    optimisation.add_argument(
        "--scale_lr",
        action="store_true",
        help="Multiply the learning rate by processes x batch size x accumulation steps.",
    )
    optimisation.add_argument(
        "--lr_scheduler",
        default="constant",
        help="'constant', 'constant_with_warmup', 'linear', 'cosine', 'cosine_with_restarts' or 'polynomial'.",
    )
    optimisation.add_argument(
        "--lr_warmup_steps", type=int, default=0, help="Warm-up steps of the learning-rate schedule."
    )
    optimisation.add_argument(
        "--use_8bit_adam", action="store_true", help="8-bit AdamW from bitsandbytes (must be installed)."
    )
    optimisation.add_argument("--adam_beta1", type=float, default=0.9, help="AdamW beta1.")
    optimisation.add_argument("--adam_beta2", type=float, default=0.999, help="AdamW beta2.")
    optimisation.add_argument("--adam_weight_decay", type=float, default=1e-2, help="AdamW weight decay.")
    optimisation.add_argument("--adam_epsilon", type=float, default=1e-8, help="AdamW epsilon.")
    optimisation.add_argument("--max_grad_norm", type=float, default=1.0, help="Gradient clipping norm.")
    optimisation.add_argument(
        "--mixed_precision",
        default=None,
        choices=("no", "fp16", "bf16"),
        help="Mixed precision; default the accelerate config's. Frozen models are cast to it.",
    )
    optimisation.add_argument("--allow_tf32", action="store_true", help="Allow TF32 matmuls on Ampere+ GPUs.")

    output = parser.add_argument_group("checkpoints and logging")
    output.add_argument(
        "--output_dir", default=default_output_dir, help="Where checkpoints and the final model are written."
    )
    output.add_argument(
        "--checkpointing_steps", type=int, default=500, help="Save a resumable checkpoint-{step} folder every N steps."
    )
    output.add_argument(
        "--checkpoints_total_limit", type=int, default=None, help="Keep at most N checkpoint folders (oldest removed)."
    )
    output.add_argument(
        "--resume_from_checkpoint",
        default=None,
        help="A checkpoint-{step} folder to resume from, or 'latest' for the newest in --output_dir.",
    )
    output.add_argument(
        "--report_to",
        default="auto",
        help="'tensorboard', 'wandb', 'trackio', 'all', 'none', or 'auto' (the first of those installed).",
    )
    output.add_argument("--tracker_project_name", default="authface", help="Project name for the trackers.")
    output.add_argument("--logging_dir", default="logs", help="TensorBoard log folder, relative to --output_dir.")
    output.add_argument(
        "--validation_steps", type=int, default=500, help="Make validation images every N steps (0: never)."
    )


def check_shared_arguments(args: argparse.Namespace) -> None:
    """Cross-checks both stages need; raises ValueError naming the flag and its value."""
    if args.resolution % 8 or args.resolution < 16:
        raise ValueError(f"--resolution must be a multiple of 8 and at least 16, got {args.resolution}")
    for flag in ("train_batch_size", "gradient_accumulation_steps", "checkpointing_steps", "num_train_epochs"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    if args.max_train_steps is not None and args.max_train_steps < 1:
        raise ValueError(f"--max_train_steps must be >= 1, got {args.max_train_steps}")
    if args.streaming and args.max_train_steps is None:
        raise ValueError("--streaming needs --max_train_steps (a stream has no length to count epochs by)")
    if args.checkpoints_total_limit is not None and args.checkpoints_total_limit < 1:
        raise ValueError(f"--checkpoints_total_limit must be >= 1, got {args.checkpoints_total_limit}")
    if args.report_to not in (*TRACKERS, "all", "none", "auto"):
        raise ValueError(f"--report_to must be one of {(*TRACKERS, 'all', 'none', 'auto')}, got {args.report_to!r}")


def resolve_trackers(report_to: str) -> list[str]:
    """The trackers to log to; 'auto' picks the first installed one of TRACKERS (none: the JSONL file only)."""
    import importlib.util

    if report_to == "none":
        return []
    if report_to == "auto":
        return [name for name in TRACKERS if importlib.util.find_spec(name)][:1]
    return list(TRACKERS) if report_to == "all" else [report_to]


def create_accelerator(args: argparse.Namespace):
    """An Accelerator with the run's precision, accumulation and trackers; logs under output_dir."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration

    output_dir = Path(args.output_dir)
    project = ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / args.logging_dir))
    trackers = resolve_trackers(args.report_to)
    accelerator = Accelerator(
        # Shuffle order from (seed, epoch) alone, so a run resumed mid-epoch sees the batches it would have.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=trackers or None,
        project_config=project,
    )
    if args.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
    return accelerator


def start_run(args: argparse.Namespace):
    """The run's Accelerator, its output folder created and every RNG seeded."""
    from accelerate.utils import set_seed

    accelerator = create_accelerator(args)
    if accelerator.is_main_process:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    set_seed(args.seed)
    return accelerator


def weight_dtype_of(accelerator) -> torch.dtype:
    """The dtype frozen models are cast to: the mixed-precision type, else float32."""
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)


@dataclass
class BaseComponents:
    """The base checkpoint's parts, loaded on CPU in float32; ``controlnet`` is None when it has none."""

    folder: Path
    scheduler: object
    tokenizer: object
    tokenizer_2: object
    text_encoder: torch.nn.Module
    text_encoder_2: torch.nn.Module
    vae: torch.nn.Module
    unet: torch.nn.Module
    controlnet: torch.nn.Module | None
    smoke_test_model: bool


def load_base_components(model: str, *, revision: str | None = None, variant: str | None = None) -> BaseComponents:
    """Load an SDXL base (no ControlNet) or an AuthFace checkpoint in float32, safetensors only."""
    from ..pipeline.loading import is_smoke_test_checkpoint, load_components, locate_checkpoint

    folder = locate_checkpoint(model, revision)
    components = load_components(folder, torch.float32, require_controlnet=False, variant=variant)
    return BaseComponents(folder=folder, smoke_test_model=is_smoke_test_checkpoint(folder), **components)


def place(module: torch.nn.Module, device: torch.device | str, dtype: torch.dtype) -> torch.nn.Module:
    """Move a model, casting only when its dtype differs (diffusers warns on every dtype cast)."""
    return module.to(device) if module.dtype == dtype else module.to(device, dtype)


def freeze(*modules: torch.nn.Module) -> None:
    """Frozen parts: eval mode, no gradients."""
    for module in modules:
        module.requires_grad_(False)
        module.eval()


@torch.no_grad()
def sdxl_time_ids(original_size: torch.Tensor, crop_top_left: torch.Tensor, target_size: int) -> torch.Tensor:
    """SDXL micro-conditioning (B, 6): original (h, w), crop (top, left), target (h, w)."""
    target = torch.tensor([target_size, target_size], device=original_size.device).expand_as(original_size)
    return torch.cat([original_size, crop_top_left, target], dim=1).float()


def step_generator(seed: int, step: int, process_index: int, device: torch.device) -> torch.Generator:
    """The random source of one micro-batch (VAE sample, noise, timesteps): a function of the run's
    seed, the micro-batch count and the process, so a resumed run draws exactly what it would have
    (NumPy's SeedSequence mixes them the same way on every Python, unlike ``hash``)."""
    mixed = np.random.SeedSequence([seed, step, process_index]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator(device).manual_seed(int(mixed) % 2**63)


def encode_pixels(vae: torch.nn.Module, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> scaled latents (B, 4, H/8, W/8), a posterior sample as SDXL trains."""
    with torch.no_grad():
        latents = vae.encode(pixels.to(vae.dtype)).latent_dist.sample(generator)
    return latents * vae.config.scaling_factor


def add_training_noise(
    noise_scheduler, latents: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(noise, timesteps (B,), noisy latents) for clean latents (B, C, h, w), t uniform over the train steps."""
    noise = torch.randn(latents.shape, generator=generator, device=latents.device)
    timesteps = torch.randint(
        0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator, device=latents.device
    )
    return noise, timesteps, noise_scheduler.add_noise(latents, noise, timesteps)


def diffusion_target(
    noise_scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """What the UNet is trained to predict under the scheduler's ``prediction_type``."""
    prediction_type = noise_scheduler.config.prediction_type
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return noise_scheduler.get_velocity(latents, noise, timesteps)
    if prediction_type == "sample":
        return latents
    raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")


def create_optimizer(parameters, args: argparse.Namespace, learning_rate: float):
    """AdamW, or bitsandbytes' 8-bit AdamW with --use_8bit_adam."""
    optimizer_class = torch.optim.AdamW
    if args.use_8bit_adam:
        try:
            import bitsandbytes
        except ImportError:
            raise MissingDependencyError("bitsandbytes", "--use_8bit_adam") from None
        optimizer_class = bitsandbytes.optim.AdamW8bit
    return optimizer_class(
        parameters,
        lr=learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay,
        eps=args.adam_epsilon,
    )


def effective_learning_rate(args: argparse.Namespace, accelerator, base: float) -> float:
    """``base``, times the global batch (accumulation x batch size x processes) with --scale_lr."""
    if args.scale_lr:
        return base * args.gradient_accumulation_steps * args.train_batch_size * accelerator.num_processes
    return base


def create_lr_scheduler(optimizer, args: argparse.Namespace, accelerator, max_train_steps: int):
    """diffusers' --lr_scheduler; warm-up and total steps are multiplied by the process count because
    the prepared scheduler advances once per process on every optimiser step (as diffusers' scripts do)."""
    from diffusers.optimization import get_scheduler

    return get_scheduler(
        args.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=max_train_steps * accelerator.num_processes,
    )


@dataclass(frozen=True)
class StepPlan:
    """How long a run is: optimiser steps, epochs, and steps per epoch of each process (None when streaming)."""

    max_train_steps: int
    num_epochs: int
    updates_per_epoch: int | None

    def resume_position(self, global_step: int, gradient_accumulation_steps: int) -> tuple[int, int]:
        """(epoch, batches to skip in it) after ``global_step`` steps; a stream restarts at its start."""
        if self.updates_per_epoch is None:
            return 0, 0
        epoch, steps_into_epoch = divmod(global_step, self.updates_per_epoch)
        return epoch, steps_into_epoch * gradient_accumulation_steps


def plan_steps(args: argparse.Namespace, dataloader: torch.utils.data.DataLoader, num_processes: int) -> StepPlan:
    """The run's length from the flags and the dataloader, before ``accelerator.prepare``.

    Epochs are counted in the batches one process sees: accelerate splits the (drop-last) batch
    sampler into ``len(dataloader) // num_processes`` batches per process.
    """
    if args.streaming:
        return StepPlan(args.max_train_steps, 1 << 30, None)  # a stream: stop on steps only
    batches_per_epoch = len(dataloader) // num_processes
    if batches_per_epoch == 0:
        raise ValueError(
            f"{len(dataloader.dataset)} training examples give {len(dataloader)} batches of --train_batch_size "
            f"{args.train_batch_size}, fewer than one per process ({num_processes} processes)"
        )
    updates_per_epoch = math.ceil(batches_per_epoch / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_train_epochs * updates_per_epoch
    return StepPlan(max_train_steps, math.ceil(max_train_steps / updates_per_epoch), updates_per_epoch)


def load_training_data(args: argparse.Namespace, accelerator, *, prepare: bool):
    """(dataset, image column): the --train_data split, cut to --max_train_samples, with aligned
    faces and landmarks added first when ``prepare`` (see ``data.prepare_faces``)."""
    from .data import FACE_COLUMN, load_face_dataset, prepare_faces, resolve_image_column

    dataset = load_face_dataset(
        args.train_data, split=args.dataset_split, streaming=args.streaming, cache_dir=args.cache_dir
    )
    if args.max_train_samples is not None:
        limit = args.max_train_samples
        dataset = dataset.take(limit) if args.streaming else dataset.select(range(min(limit, len(dataset))))
    if args.streaming:  # a stream cannot be shuffled whole: shuffle within a buffer, reshuffled each epoch
        dataset = dataset.shuffle(seed=args.seed, buffer_size=STREAM_SHUFFLE_BUFFER)
    image_column = resolve_image_column(list(dataset.column_names or []), args.image_column)
    if not prepare:
        return dataset, image_column
    with accelerator.main_process_first():
        dataset = prepare_faces(dataset, image_column, align=args.align_faces, face_size=args.face_size)
    return dataset, FACE_COLUMN


def make_dataloader(train_dataset, args: argparse.Namespace) -> torch.utils.data.DataLoader:
    """Shuffled (map-style) batches of ``--train_batch_size``, the last partial batch dropped."""
    from .data import collate_examples

    dataloader = torch.utils.data.DataLoader(
        train_dataset,
        batch_size=args.train_batch_size,
        shuffle=not args.streaming,
        collate_fn=collate_examples,
        num_workers=args.dataloader_num_workers,
        drop_last=True,
    )
    return dataloader


def resume_training(accelerator, args: argparse.Namespace, plan: StepPlan) -> tuple[int, int, int]:
    """Load --resume_from_checkpoint when given: (global step, first epoch, batches to skip in it)."""
    resume_from = resolve_resume_checkpoint(args.output_dir, args.resume_from_checkpoint)
    if resume_from is None:
        return 0, 0, 0
    accelerator.load_state(str(resume_from))
    global_step = checkpoint_step(resume_from)
    logger.info("resumed from %s at step %d", resume_from, global_step)
    return (global_step, *plan.resume_position(global_step, args.gradient_accumulation_steps))


def training_batches(
    accelerator, dataloader, train_dataset, plan: StepPlan, args: argparse.Namespace, resume: tuple[int, int, int]
) -> Iterator[tuple[dict, torch.Generator]]:
    """(batch, its random generator) over the epochs, starting where ``resume`` (from
    :func:`resume_training`) left off; the caller stops at --max_train_steps."""
    global_step, first_epoch, batches_to_skip = resume
    micro_batch = global_step * args.gradient_accumulation_steps
    for epoch in range(first_epoch, plan.num_epochs):
        train_dataset.set_epoch(epoch)
        dataloader.set_epoch(epoch)
        skip = batches_to_skip if epoch == first_epoch else 0
        for batch in accelerator.skip_first_batches(dataloader, skip) if skip else dataloader:
            yield batch, step_generator(args.seed, micro_batch, accelerator.process_index, accelerator.device)
            micro_batch += 1


def finish_step(
    accelerator, args: argparse.Namespace, progress, metrics: MetricsLog, logs: dict, step: int, plan: StepPlan
) -> None:
    """After an optimiser step: progress, metrics, checkpoint-{step} every --checkpointing_steps and at the end."""
    progress.update(1)
    progress.set_postfix(loss=f"{logs['loss']:.4f}")
    metrics.log(logs, step)
    if step % args.checkpointing_steps == 0 or step == plan.max_train_steps:
        save_checkpoint(accelerator, Path(args.output_dir), step, args.checkpoints_total_limit)


def is_validation_step(accelerator, args: argparse.Namespace, step: int) -> bool:
    return bool(args.validation_steps) and step % args.validation_steps == 0 and accelerator.is_main_process


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """checkpoint-{step} folders in ``output_dir``, oldest first."""
    folders = [p for p in Path(output_dir).glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir()]
    return sorted((p for p in folders if p.name[len(CHECKPOINT_PREFIX) :].isdigit()), key=checkpoint_step)


def checkpoint_step(path: Path) -> int:
    return int(path.name[len(CHECKPOINT_PREFIX) :])


def remove_old_checkpoints(output_dir: Path, limit: int | None) -> None:
    """Before saving a new checkpoint, keep at most ``limit - 1`` old ones (diffusers' rule)."""
    if limit is None:
        return
    existing = list_checkpoints(output_dir)
    for old in existing[: max(0, len(existing) - limit + 1)]:
        logger.info("removing old checkpoint %s", old)
        shutil.rmtree(old)


def resolve_resume_checkpoint(output_dir: str | Path, value: str | None) -> Path | None:
    """The checkpoint folder to resume from: a path, 'latest' (None when there is none yet), or None."""
    if value is None:
        return None
    if value == "latest":
        existing = list_checkpoints(output_dir)
        if not existing:
            logger.info("no checkpoint in %s yet: starting a new run", output_dir)
        return existing[-1] if existing else None
    path = Path(value)
    path = path if path.is_dir() else Path(output_dir) / value
    if not path.is_dir() or not path.name.startswith(CHECKPOINT_PREFIX):
        raise CheckpointNotFoundError(f"--resume_from_checkpoint {value!r}: no such checkpoint-{{step}} folder")
    return path


def save_checkpoint(accelerator, output_dir: Path, step: int, limit: int | None) -> Path:
    """Write checkpoint-{step} (models through the save hooks, optimisers, schedulers, RNG states)."""
    if accelerator.is_main_process:
        remove_old_checkpoints(output_dir, limit)
    path = output_dir / f"{CHECKPOINT_PREFIX}{step}"
    accelerator.save_state(str(path))
    logger.info("saved %s", path)
    return path


class MetricsLog:
    """Scalars per step to the accelerate trackers and, always, to ``output_dir/metrics.jsonl``.

    A run resumed at ``resumed_step`` in the same folder first drops the rows logged after that
    step (by the run that was interrupted), so every step appears once.
    """

    def __init__(self, accelerator, output_dir: Path, resumed_step: int = 0):
        self.accelerator = accelerator
        self.path = output_dir / METRICS_FILE
        if accelerator.is_main_process and self.path.is_file():
            kept = [row for row in read_metrics(output_dir) if row["step"] <= resumed_step]
            atomic_write_bytes(self.path, "".join(json.dumps(row) + "\n" for row in kept).encode())

    def log(self, values: dict[str, float], step: int) -> None:
        self.accelerator.log(values, step=step)
        if self.accelerator.is_main_process:
            with self.path.open("a") as handle:
                handle.write(json.dumps({"step": step, **values}) + "\n")


def read_metrics(output_dir: str | Path) -> list[dict]:
    """The rows ``MetricsLog`` wrote, in order."""
    path = Path(output_dir) / METRICS_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def build_pipeline(base: BaseComponents, *, unet, controlnet, vae=None, scheduler=None):
    """An AuthFacePipeline from the base's text encoders and tokenizers and the given models."""
    from ..pipeline.pipeline_authface_sdxl import AuthFacePipeline

    return AuthFacePipeline(
        vae=vae or base.vae,
        text_encoder=base.text_encoder,
        text_encoder_2=base.text_encoder_2,
        tokenizer=base.tokenizer,
        tokenizer_2=base.tokenizer_2,
        unet=unet,
        controlnet=controlnet,
        scheduler=scheduler or base.scheduler,
        smoke_test_model=base.smoke_test_model,
    )


def export_pipeline(output_dir: Path, base: BaseComponents, *, unet, controlnet) -> Path:
    """Save the released layout (model_index.json + scheduler/ ... unet/ controlnet/) that ``load_pipeline`` reads."""
    controlnet.register_to_config(use_pre_img_encoder=False)  # the release's pixel-conditioning flag
    for module in (base.vae, base.text_encoder, base.text_encoder_2, unet, controlnet):
        place(module, "cpu", torch.float32)  # frozen parts were cast to the mixed-precision type for training
    build_pipeline(base, unet=unet, controlnet=controlnet).save_pretrained(output_dir, safe_serialization=True)
    return output_dir
