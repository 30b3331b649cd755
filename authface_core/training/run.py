"""The machinery of a training run, shared by both stages: accelerator, base models, data loading,
optimisers, step plan, batches, resuming and the moving average.

Written in the style of diffusers' ``examples/`` scripts (one ``Accelerator``, seeded data order,
``--resume_from_checkpoint latest`` replayed exactly). Each helper takes the settings group it
needs (``training.settings``), never the whole run's settings.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointNotFoundError, MissingDependencyError
from .checkpoints import checkpoint_step, resolve_resume_checkpoint
from .settings import TRACKERS, CheckpointSettings, DataSettings, ModelSettings, OptimizationSettings

logger = logging.getLogger(__name__)

STREAM_SHUFFLE_BUFFER = 1000  # examples held for shuffling a streamed dataset (datasets' own default)
BASE_MODEL_HINT = (
    "Fix: set pretrained_model_name_or_path to a local folder (write it as ./path), a Hub id such as "
    "stabilityai/stable-diffusion-xl-base-1.0, or 'tiny' for a smoke test. Stage II starts from the result of "
    "Stage I: run `python -m authface_core train stage1 ...` first; its output_dir is the folder to give."
)


def resolve_trackers(report_to: str) -> list[str]:
    """The trackers to log to; 'auto' picks the first installed one of TRACKERS (none: the JSONL file only)."""
    if report_to == "none":
        return []
    if report_to == "auto":
        return [name for name in TRACKERS if importlib.util.find_spec(name)][:1]
    return list(TRACKERS) if report_to == "all" else [report_to]


def start_run(optimization: OptimizationSettings, checkpoints: CheckpointSettings):
    """The run's Accelerator (precision, accumulation, trackers, logs under output_dir), the output folder
    created and every RNG seeded."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed

    output_dir = Path(checkpoints.output_dir)
    project = ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / checkpoints.logging_dir))
    trackers = resolve_trackers(checkpoints.report_to)
    accelerator = Accelerator(
        # Shuffle order from (seed, epoch) alone, so a run resumed mid-epoch sees the batches it would have.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=optimization.seed),
        gradient_accumulation_steps=optimization.gradient_accumulation_steps,
        mixed_precision=optimization.mixed_precision,
        log_with=trackers or None,
        project_config=project,
    )
    if optimization.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    set_seed(optimization.seed)
    return accelerator


def weight_dtype_of(accelerator) -> torch.dtype:
    """The dtype frozen models run in: the mixed-precision type, else float32."""
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)


@dataclass
class BaseComponents:
    """The base checkpoint's parts, loaded on CPU in float32; ``controlnet`` is None when it has none."""

    folder: Path
    settings: ModelSettings
    scheduler: object
    tokenizer: object
    tokenizer_2: object
    text_encoder: torch.nn.Module
    text_encoder_2: torch.nn.Module
    vae: torch.nn.Module
    unet: torch.nn.Module
    controlnet: torch.nn.Module | None
    smoke_test_model: bool

    def reload(self) -> dict:
        """The checkpoint's components read again from its files, in float32 on CPU: what the frozen parts were
        before training moved and cast them."""
        from ..pipeline.loading import load_components

        return load_components(
            self.folder,
            torch.float32,
            require_controlnet=False,
            variant=self.settings.variant,
            allow_pickle=self.settings.allow_pickle,
        )


def load_base_components(model: ModelSettings) -> BaseComponents:
    """Load an SDXL base (no ControlNet) or an AuthFace checkpoint in float32; errors say which setting to fix."""
    from ..pipeline.loading import FIX_HINT, is_smoke_test_checkpoint, load_components, locate_checkpoint

    name = model.pretrained_model_name_or_path
    try:
        folder = locate_checkpoint(name, model.revision, allow_pickle=model.allow_pickle)
        components = load_components(
            folder, torch.float32, require_controlnet=False, variant=model.variant, allow_pickle=model.allow_pickle
        )
    except CheckpointNotFoundError as error:
        message = str(error).replace(FIX_HINT, BASE_MODEL_HINT)
        if not Path(name).expanduser().exists():
            message = f"pretrained_model_name_or_path: no local folder {Path(name).resolve()}; {message}"
        raise CheckpointNotFoundError(message) from None
    return BaseComponents(
        folder=folder, settings=model, smoke_test_model=is_smoke_test_checkpoint(folder), **components
    )


def place(module: torch.nn.Module, device: torch.device | str, dtype: torch.dtype) -> torch.nn.Module:
    """Move a model, casting only when its dtype differs (diffusers warns on every dtype cast)."""
    return module.to(device) if module.dtype == dtype else module.to(device, dtype)


def freeze(*modules: torch.nn.Module) -> None:
    """Frozen parts: eval mode, no gradients."""
    for module in modules:
        module.requires_grad_(False)
        module.eval()


def step_generator(seed: int, step: int, process_index: int, device: torch.device) -> torch.Generator:
    """The random source of one micro-batch (VAE sample, noise, timesteps): a function of the run's
    seed, the micro-batch count and the process, so a resumed run draws exactly what it would have
    (NumPy's SeedSequence mixes them the same way on every Python, unlike ``hash``)."""
    mixed = np.random.SeedSequence([seed, step, process_index]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator(device).manual_seed(int(mixed) % 2**63)


def create_optimizer(parameters, optimization: OptimizationSettings, learning_rate: float):
    """AdamW, or bitsandbytes' 8-bit AdamW with use_8bit_adam."""
    optimizer_class = torch.optim.AdamW
    if optimization.use_8bit_adam:
        try:
            import bitsandbytes
        except ImportError:
            raise MissingDependencyError("bitsandbytes", "use_8bit_adam") from None
        optimizer_class = bitsandbytes.optim.AdamW8bit
    return optimizer_class(
        parameters,
        lr=learning_rate,
        betas=(optimization.adam_beta1, optimization.adam_beta2),
        weight_decay=optimization.adam_weight_decay,
        eps=optimization.adam_epsilon,
    )


def effective_learning_rate(optimization: OptimizationSettings, num_processes: int, base: float) -> float:
    """``base``, times the global batch (accumulation x batch size x processes) with scale_lr."""
    if optimization.scale_lr:
        return base * optimization.gradient_accumulation_steps * optimization.train_batch_size * num_processes
    return base


def create_lr_scheduler(optimizer, optimization: OptimizationSettings, num_processes: int, max_train_steps: int):
    """diffusers' lr_scheduler; warm-up and total steps are multiplied by the process count because
    the prepared scheduler advances once per process on every optimiser step (as diffusers' scripts do)."""
    from diffusers.optimization import get_scheduler

    return get_scheduler(
        optimization.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=optimization.lr_warmup_steps * num_processes,
        num_training_steps=max_train_steps * num_processes,
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


def plan_steps(
    optimization: OptimizationSettings, dataloader: torch.utils.data.DataLoader, num_processes: int, *, streaming: bool
) -> StepPlan:
    """The run's length from the settings and the dataloader, before ``accelerator.prepare``.

    Epochs are counted in the batches one process sees: accelerate splits the (drop-last) batch
    sampler into ``len(dataloader) // num_processes`` batches per process.
    """
    if streaming:
        return StepPlan(optimization.max_train_steps, 1 << 30, None)  # a stream: stop on steps only
    batches_per_epoch = len(dataloader) // num_processes
    if batches_per_epoch == 0:
        raise ValueError(
            f"{len(dataloader.dataset)} training examples give {len(dataloader)} batches of train_batch_size "
            f"{optimization.train_batch_size}, fewer than one per process ({num_processes} processes)"
        )
    updates_per_epoch = math.ceil(batches_per_epoch / optimization.gradient_accumulation_steps)
    max_train_steps = optimization.max_train_steps or optimization.num_train_epochs * updates_per_epoch
    return StepPlan(max_train_steps, math.ceil(max_train_steps / updates_per_epoch), updates_per_epoch)


def load_training_data(data: DataSettings, seed: int, accelerator, *, prepare: bool):
    """(dataset, image column): the train_data split, cut to max_train_samples, with aligned faces and
    landmarks added first when ``prepare`` (see ``data.prepare_faces``)."""
    from .data import FACE_COLUMN, load_face_dataset, prepare_faces, resolve_image_column

    dataset = load_face_dataset(
        data.train_data, split=data.dataset_split, streaming=data.streaming, cache_dir=data.cache_dir
    )
    if data.max_train_samples is not None:
        limit = data.max_train_samples
        dataset = dataset.take(limit) if data.streaming else dataset.select(range(min(limit, len(dataset))))
    if data.streaming:  # a stream cannot be shuffled whole: shuffle within a buffer, reshuffled each epoch
        dataset = dataset.shuffle(seed=seed, buffer_size=STREAM_SHUFFLE_BUFFER)
    image_column = resolve_image_column(list(dataset.column_names or []), data.image_column)
    if not prepare:
        return dataset, image_column
    with accelerator.main_process_first():
        dataset = prepare_faces(dataset, image_column, align=data.align_faces, face_size=data.face_size)
    return dataset, FACE_COLUMN


def make_dataloader(train_dataset, data: DataSettings, batch_size: int) -> torch.utils.data.DataLoader:
    """Shuffled (map-style) batches, the last partial batch dropped."""
    from .data import collate_examples

    return torch.utils.data.DataLoader(
        train_dataset,
        batch_size=batch_size,
        shuffle=not data.streaming,
        collate_fn=collate_examples,
        num_workers=data.dataloader_num_workers,
        drop_last=True,
    )


def resume_training(
    accelerator, checkpoints: CheckpointSettings, plan: StepPlan, gradient_accumulation_steps: int
) -> tuple[int, int, int]:
    """Load resume_from_checkpoint when given: (global step, first epoch, batches to skip in it)."""
    resume_from = resolve_resume_checkpoint(checkpoints.output_dir, checkpoints.resume_from_checkpoint)
    if resume_from is None:
        return 0, 0, 0
    accelerator.load_state(str(resume_from))
    global_step = checkpoint_step(resume_from)
    logger.info("resumed from %s at step %d", resume_from, global_step)
    return (global_step, *plan.resume_position(global_step, gradient_accumulation_steps))


def training_batches(
    accelerator,
    dataloader,
    train_dataset,
    plan: StepPlan,
    resume: tuple[int, int, int],
    optimization: OptimizationSettings,
) -> Iterator[tuple[dict, torch.Generator]]:
    """(batch, its random generator) over the epochs, starting where ``resume`` (from
    :func:`resume_training`) left off; the caller stops at max_train_steps."""
    global_step, first_epoch, batches_to_skip = resume
    micro_batch = global_step * optimization.gradient_accumulation_steps
    for epoch in range(first_epoch, plan.num_epochs):
        train_dataset.set_epoch(epoch)
        dataloader.set_epoch(epoch)
        skip = batches_to_skip if epoch == first_epoch else 0
        for batch in accelerator.skip_first_batches(dataloader, skip) if skip else dataloader:
            yield batch, step_generator(optimization.seed, micro_batch, accelerator.process_index, accelerator.device)
            micro_batch += 1


def batch_latents(vae, batch: dict, pixel_key: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """The batch's scaled training latents: drawn from the cached posterior (``latent_parameters``) when the
    data carries it, else a VAE encoding of ``batch[pixel_key]``; the same draw either way for one generator."""
    from .data import LATENT_COLUMN
    from .diffusion import encode_pixels, sample_latents

    if LATENT_COLUMN in batch:
        return sample_latents(batch[LATENT_COLUMN].to(vae.device), vae.config.scaling_factor, generator)
    return encode_pixels(vae, batch[pixel_key], generator)


def create_ema(model: torch.nn.Module, decay: float, device):
    """diffusers' EMAModel of ``model``'s parameters (saved with save_pretrained inside checkpoints)."""
    from diffusers.training_utils import EMAModel

    ema = EMAModel(model.parameters(), decay=decay, model_cls=type(model), model_config=model.config)
    ema.to(device)
    return ema


def load_ema(ema, folder: Path, model_cls) -> None:
    """Restore a moving average saved with ``ema.save_pretrained(folder)`` inside a checkpoint."""
    from diffusers.training_utils import EMAModel

    device = ema.shadow_params[0].device
    ema.load_state_dict(EMAModel.from_pretrained(folder, model_cls=model_cls).state_dict())
    ema.to(device)  # the loaded state is on the CPU


@contextlib.contextmanager
def averaged_weights(ema, model: torch.nn.Module):
    """Within the block ``model`` holds the moving average's weights (no-op without ``ema``); restored after."""
    if ema is None:
        yield
        return
    ema.store(model.parameters())
    ema.copy_to(model.parameters())
    try:
        yield
    finally:
        ema.restore(model.parameters())


def is_validation_step(step: int, every: int, accelerator) -> bool:
    """Whether a validation runs after ``step``: every ``every`` steps (0: never), on the main process."""
    return bool(every) and step % every == 0 and accelerator.is_main_process


def report_step(progress, metrics, logs: dict, step: int) -> None:
    """Advance the progress bar and log one optimiser step's scalars."""
    progress.update(1)
    progress.set_postfix(loss=f"{logs['loss']:.4f}")
    metrics.log(logs, step)
