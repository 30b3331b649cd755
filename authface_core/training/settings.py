"""Every setting of the two training stages: one frozen dataclass per group, validated when built.

The flags of ``python -m authface_core train stage1|stage2``, the keys of the YAML files in
``configs/`` and the ``--help`` text all come from these fields (``authface_core.settings``):

    python -m authface_core train stage2 --config configs/stage2_1gpu.yaml --max_train_steps 1000

A YAML file gives the defaults and flags given after it win. Each helper of the training code takes
the one group it needs; :class:`Stage1Settings` and :class:`Stage2Settings` hold a stage's groups and
check the rules that span groups. This module imports neither torch nor diffusers.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from ..degradations import PRESETS
from ..settings import Range, apply_settings_file, check_settings, setting, settings_from_namespace, settings_parser

# diffusers.optimization.get_scheduler names this project documents.
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")
MIXED_PRECISIONS = ("no", "fp16", "bf16")
TRACKERS = ("tensorboard", "wandb", "trackio")
REPORT_TO = (*TRACKERS, "all", "none", "auto")
FACE_SIZES = (512, 1024)
DEGRADATION_PRESETS = tuple(PRESETS)
TRAIN_MODES = ("full", "lora")
CONTROLNET_INITS = ("unet", "pretrained")
TIME_WEIGHT_SCHEDULES = ("logit_normal", "constant")
# AuthFace's ControlNet conditioning embedding (pixels -> 1/8 grid), as released and diffusers' default.
AUTHFACE_CONDITIONING_CHANNELS = (16, 32, 96, 256)


@dataclass(frozen=True)
class ModelSettings:
    _argument_group_name: ClassVar[str] = "model"

    pretrained_model_name_or_path: str = setting(
        help="The checkpoint training starts from: a local folder in the SDXL/AuthFace layout, a Hub id (owner/name) "
        "or 'tiny' (a random smoke-test model). Stage I starts from an SDXL base; Stage II from Stage I's output_dir. "
        "Write local folders as ./path so they are never taken for a Hub id."
    )
    revision: str | None = setting(None, "Hub branch, tag or commit of the checkpoint.")
    variant: str | None = setting(None, "Weight file variant of the checkpoint, e.g. 'fp16' (SDXL base ships one).")
    allow_pickle: bool = setting(
        False,
        "Also load .bin (pickle) weights when a folder has no safetensors; a pickle can run code: trusted files only.",
    )

    def __post_init__(self):
        check_settings(self)


@dataclass(frozen=True)
class DataSettings:
    _argument_group_name: ClassVar[str] = "data"

    train_data: str = setting(
        help="Training photos: a folder of images (captions in metadata.jsonl), Parquet file(s), or a Hub dataset id "
        "(the one annotate/ publishes has 'retouched' and 'caption' columns)."
    )
    dataset_split: str = setting("train", "Split of the dataset to train on.")
    image_column: str | None = setting(
        None, "Column holding the photo; default the first of 'retouched', 'image', 'hq', 'original'."
    )
    streaming: bool = setting(False, "Stream the dataset instead of downloading and caching it whole.")
    cache_dir: str | None = setting(None, "Where `datasets` caches downloads, prepared faces and cached latents.")
    max_train_samples: Annotated[int | None, Range(1, None)] = setting(
        None, "Train on the first N examples only (debugging)."
    )
    align_faces: bool = setting(
        False, "Detect and FFHQ-align the largest face of each photo; without it, photos must be aligned square faces."
    )
    face_size: Literal[FACE_SIZES] = setting(
        512, "Side of the aligned faces kept by preparation (Stage II degrades faces at this size)."
    )
    resolution: Annotated[int, Range(16, 4096, step=8)] = setting(
        512, "Training resolution in pixels, a multiple of 8 (the VAE's latent grid is 1/8 of it)."
    )
    random_flip: bool = setting(False, "Mirror examples at random.")
    dataloader_num_workers: Annotated[int, Range(0, 256)] = setting(
        0, "DataLoader worker processes (0: the main process)."
    )
    cache_latents: bool = setting(
        False,
        "Encode every training image with the VAE once, before training (kept in the datasets cache), and draw each "
        "step's latent from the stored distribution: the VAE encoder no longer runs per step. Needs a fixed crop "
        "(random_flip and random_crop off) and no streaming.",
    )

    def __post_init__(self):
        check_settings(self)
        if self.resolution % 8:
            raise ValueError(f"resolution must be a multiple of 8, got {self.resolution}")
        if self.cache_latents and self.streaming:
            raise ValueError("cache_latents needs a map-style dataset; turn streaming off")
        if self.cache_latents and self.random_flip:
            raise ValueError("cache_latents stores one latent per image, so random_flip must be off")


@dataclass(frozen=True)
class OptimizationSettings:
    _argument_group_name: ClassVar[str] = "optimisation"

    seed: Annotated[int, Range(0, 2**32 - 1)] = setting(
        0, "Seed of the model init, data order, noise, timesteps and degradations."
    )
    train_batch_size: Annotated[int, Range(1, 4096)] = setting(4, "Batch size per device.")
    num_train_epochs: Annotated[int, Range(1, None)] = setting(1, "Epochs; ignored when max_train_steps is set.")
    max_train_steps: Annotated[int | None, Range(1, None)] = setting(
        None, "Total optimiser steps; overrides num_train_epochs."
    )
    gradient_accumulation_steps: Annotated[int, Range(1, None)] = setting(1, "Micro-batches per optimiser step.")
    gradient_checkpointing: bool = setting(False, "Recompute activations in the backward pass to save memory.")
    learning_rate: Annotated[float, Range(0, None)] = setting(1e-5, "Peak learning rate of the trained model.")
    scale_lr: bool = setting(False, "Multiply the learning rates by processes x batch size x accumulation steps.")
    lr_scheduler: Literal[LR_SCHEDULERS] = setting("constant", "Learning-rate schedule (diffusers' get_scheduler).")
    lr_warmup_steps: Annotated[int, Range(0, None)] = setting(0, "Warm-up steps of the learning-rate schedule.")
    use_8bit_adam: bool = setting(False, "8-bit AdamW from bitsandbytes (must be installed).")
    adam_beta1: Annotated[float, Range(0, 1)] = setting(0.9, "AdamW beta1.")
    adam_beta2: Annotated[float, Range(0, 1)] = setting(0.999, "AdamW beta2.")
    adam_weight_decay: Annotated[float, Range(0, None)] = setting(1e-2, "AdamW weight decay.")
    adam_epsilon: Annotated[float, Range(0, None)] = setting(1e-8, "AdamW epsilon.")
    max_grad_norm: Annotated[float, Range(0, None)] = setting(1.0, "Gradient clipping norm.")
    mixed_precision: Literal[MIXED_PRECISIONS] | None = setting(
        None,
        "Mixed precision; default the accelerate config's. Frozen models run in this type during training; "
        "the exported checkpoint keeps them bit for bit as loaded.",
    )
    allow_tf32: bool = setting(False, "Allow TF32 matmuls on Ampere and newer GPUs.")
    use_ema: bool = setting(
        False,
        "Keep an exponential moving average of the trained weights (Stage I: the UNet, full mode only; Stage II: "
        "the ControlNet); validation and the exported model use it.",
    )
    ema_decay: Annotated[float, Range(0, 1)] = setting(0.9999, "Decay of the moving average.")

    def __post_init__(self):
        check_settings(self)


@dataclass(frozen=True)
class DiffusionLossSettings:
    _argument_group_name: ClassVar[str] = "diffusion loss"

    snr_gamma: Annotated[float | None, Range(0, None)] = setting(
        None,
        "Min-SNR weighting (Hang et al. 2023): each sample's loss weighted by min(SNR, gamma) / SNR (epsilon "
        "prediction); 5 is the paper's value. Off when null.",
    )
    noise_offset: Annotated[float, Range(0, 1)] = setting(
        0.0,
        "Offset noise (Guttenberg 2023): add this times one Gaussian per sample and channel to the noise, so the "
        "model learns to change an image's mean brightness. 0: off; 0.05 is common.",
    )

    def __post_init__(self):
        check_settings(self)
        if self.snr_gamma == 0:
            raise ValueError("snr_gamma must be above 0 (null turns it off), got 0")


@dataclass(frozen=True)
class CheckpointSettings:
    _argument_group_name: ClassVar[str] = "checkpoints and logging"

    output_dir: str = setting(
        help="Where checkpoint-{step} folders, metrics.jsonl, validation images and the final model are written."
    )
    checkpointing_steps: Annotated[int, Range(1, None)] = setting(
        500, "Save a resumable checkpoint-{step} folder every N steps (and at the last step)."
    )
    checkpoints_total_limit: Annotated[int | None, Range(1, None)] = setting(
        None, "Keep at most N checkpoint folders (the oldest are removed)."
    )
    resume_from_checkpoint: str | None = setting(
        None, "A checkpoint-{step} folder to resume from, or 'latest' for the newest in output_dir (none: start)."
    )
    report_to: Literal[REPORT_TO] = setting(
        "auto", "Trackers besides metrics.jsonl; 'auto' takes the first of tensorboard, wandb, trackio installed."
    )
    tracker_project_name: str = setting("authface", "Project name for the trackers.")
    logging_dir: str = setting("logs", "TensorBoard log folder, relative to output_dir.")

    def __post_init__(self):
        check_settings(self)


@dataclass(frozen=True)
class ValidationSettings:
    _argument_group_name: ClassVar[str] = "validation"

    validation_steps: Annotated[int, Range(0, None)] = setting(
        500, "Run a validation every N steps (0: never); images go to output_dir/validation/step-N/."
    )
    validation_inference_steps: Annotated[int, Range(1, 100)] = setting(20, "Denoising steps of validation images.")

    def __post_init__(self):
        check_settings(self)


@dataclass(frozen=True)
class PromptValidationSettings(ValidationSettings):
    validation_prompts: list[str] = setting(
        help="Prompts rendered at each validation (their NIQE is logged).", default_factory=list
    )


@dataclass(frozen=True)
class FaceValidationSettings(ValidationSettings):
    validation_images: list[str] = setting(
        help="Aligned degraded faces restored at each validation; the identity similarity (dlib) of each restoration "
        "to its input and the restorations' NIQE are logged.",
        default_factory=list,
    )


@dataclass(frozen=True)
class UNetTuningSettings:
    _argument_group_name: ClassVar[str] = "stage I"

    train_mode: Literal[TRAIN_MODES] = setting(
        "full",
        "full: tune every UNet weight (fp32); lora: LoRA adapters (fp32) on the attention projections of a UNet "
        "frozen in the mixed-precision type.",
    )
    lora_rank: Annotated[int, Range(1, 1024)] = setting(16, "Rank of the LoRA adapters.")
    lora_alpha: Annotated[int | None, Range(1, None)] = setting(None, "LoRA alpha (default: the rank).")
    random_crop: bool = setting(False, "Random instead of centre crops (the crop is passed as micro-conditioning).")
    proportion_empty_prompts: Annotated[float, Range(0, 1)] = setting(
        0.05, "Share of captions replaced by the empty prompt, so classifier-free guidance keeps working."
    )
    cache_text_embeddings: bool = setting(
        False,
        "Encode every caption with both text encoders once, before training (kept in the datasets cache), "
        "instead of at every step. Needs no streaming.",
    )

    def __post_init__(self):
        check_settings(self)


@dataclass(frozen=True)
class ControlNetSettings:
    _argument_group_name: ClassVar[str] = "stage II"

    controlnet_init: Literal[CONTROLNET_INITS] = setting(
        "unet", "unet: a new ControlNet copied from the checkpoint's UNet; pretrained: continue its controlnet/."
    )
    conditioning_embedding_out_channels: list[int] = setting(
        help="Channels of a new ControlNet's pixel conditioning embedding (AuthFace: 16 32 96 256).",
        default_factory=lambda: list(AUTHFACE_CONDITIONING_CHANNELS),
    )
    degradation: Literal[DEGRADATION_PRESETS] = setting(
        "gfpgan", "Degradation preset the LQ faces are drawn from (ranges in authface_core/degradations.py)."
    )

    def __post_init__(self):
        check_settings(self)
        channels = self.conditioning_embedding_out_channels
        if not channels or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in channels):
            raise ValueError(f"conditioning_embedding_out_channels must be positive integers, got {channels!r}")


@dataclass(frozen=True)
class FacialLossSettings:
    """The time-aware latent facial feature loss (``losses.py``; the paper gives no weights, these are ours)."""

    _argument_group_name: ClassVar[str] = "facial loss"

    facial_loss_weight: Annotated[float, Range(0, None)] = setting(
        0.1, "lambda: weight of the facial loss beside the diffusion loss (0: off, no discriminators)."
    )
    style_loss_weight: Annotated[float, Range(0, None)] = setting(
        200.0, "Weight of the Gram (style) term inside the facial loss (GFPGAN's component style weight)."
    )
    adversarial_loss_weight: Annotated[float, Range(0, None)] = setting(
        1.0, "Weight of the generator's GAN term inside the facial loss (GFPGAN's component GAN weight)."
    )
    time_weight_schedule: Literal[TIME_WEIGHT_SCHEDULES] = setting(
        "logit_normal", "logit_normal: the paper's time-aware weight; constant: its ablation (weight 1)."
    )
    time_weight_m: float = setting(
        0.0,
        "m of the logit-normal time weight: its median is t = sigmoid(m), t = (DDPM index + 0.5) / 1000. "
        "0 weighs index 500 (SNR 0.38) most; -0.6 puts the median at SNR 1 (index 354), SD3's t = 0.5.",
    )
    time_weight_s: Annotated[float, Range(1e-3, 10)] = setting(
        1.0, "s of the logit-normal time weight (SD3: 1); keep it at most 1.4 for a single peak."
    )
    discriminator_learning_rate: Annotated[float, Range(0, None)] = setting(
        1e-4, "Learning rate of the two facial discriminators."
    )
    discriminator_warmup_steps: Annotated[int, Range(0, None)] = setting(
        0, "Train only the discriminators (no facial loss on the ControlNet) for the first N steps."
    )
    r1_gamma: Annotated[float, Range(0, None)] = setting(
        0.0, "R1 penalty (Mescheder et al. 2018) gamma/2 * |grad D(real)|^2 on the discriminators; 0: off."
    )

    def __post_init__(self):
        check_settings(self)


@dataclass(frozen=True)
class Stage1Settings:
    """Stage I, face-oriented fine-tuning of the SDXL UNet: its groups of settings and the rules between them."""

    command: ClassVar[str] = "python -m authface_core train stage1"
    description: ClassVar[str] = "AuthFace Stage I: face-oriented fine-tuning of the SDXL UNet."

    model: ModelSettings
    data: DataSettings
    optimization: OptimizationSettings
    diffusion: DiffusionLossSettings
    checkpoints: CheckpointSettings
    unet: UNetTuningSettings
    validation: PromptValidationSettings

    def __post_init__(self):
        check_run_length(self.data, self.optimization)
        if self.optimization.use_ema and self.unet.train_mode == "lora":
            raise ValueError("use_ema works with train_mode full only")
        if self.data.cache_latents and self.unet.random_crop:
            raise ValueError("cache_latents stores one latent per image, so random_crop must be off")
        if self.unet.cache_text_embeddings and self.data.streaming:
            raise ValueError("cache_text_embeddings needs a map-style dataset; turn streaming off")


@dataclass(frozen=True)
class Stage2Settings:
    """Stage II, the restoration ControlNet: its groups of settings and the rules between them."""

    command: ClassVar[str] = "python -m authface_core train stage2"
    description: ClassVar[str] = (
        "AuthFace Stage II: train the restoration ControlNet with the time-aware facial feature loss. "
        "It starts from Stage I's result (pretrained_model_name_or_path) and needs aligned faces (train_data)."
    )

    model: ModelSettings
    data: DataSettings
    optimization: OptimizationSettings
    diffusion: DiffusionLossSettings
    checkpoints: CheckpointSettings
    controlnet: ControlNetSettings
    facial: FacialLossSettings
    validation: FaceValidationSettings

    def __post_init__(self):
        check_run_length(self.data, self.optimization)


STAGES = {"stage1": Stage1Settings, "stage2": Stage2Settings}


def check_run_length(data: DataSettings, optimization: OptimizationSettings) -> None:
    """A stream has no length to count epochs by."""
    if data.streaming and optimization.max_train_steps is None:
        raise ValueError("streaming needs max_train_steps (a stream has no length to count epochs by)")


def setting_groups(stage_class: type) -> list[type]:
    """The group dataclasses of a stage, in order (the fields of :class:`Stage1Settings` or :class:`Stage2Settings`)."""
    hints = typing.get_type_hints(stage_class)
    return [hints[f.name] for f in dataclasses.fields(stage_class)]


def stage_parser(stage_class: type) -> argparse.ArgumentParser:
    """The stage's flags (one per field of its groups, grouped in --help) plus ``--config FILE``."""
    parser = settings_parser(
        *setting_groups(stage_class), prog=stage_class.command, description=stage_class.description
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML or JSON file of settings (examples in configs/); its values become the defaults, flags win.",
    )
    return parser


def parse_stage_settings(stage_class: type, argv: list[str] | None = None):
    """A stage's settings from ``argv`` (``--config FILE`` first read as the defaults). Raises ValueError naming
    the setting (or the file) for a bad value; ``--help`` prints every flag and exits."""
    preparser = argparse.ArgumentParser(add_help=False)
    preparser.add_argument("--config")
    config_file = preparser.parse_known_args(argv)[0].config
    parser = stage_parser(stage_class)
    if config_file:
        apply_settings_file(parser, config_file)
    groups = settings_from_namespace(parser.parse_args(argv), *setting_groups(stage_class))
    return stage_class(*groups)


def flat_settings(settings) -> dict:
    """Every setting of a stage as one flat {name: value} mapping (trackers record it)."""
    return {
        name: value
        for group in dataclasses.fields(settings)
        for name, value in dataclasses.asdict(getattr(settings, group.name)).items()
    }


def settings_tables() -> str:
    """Every group's table of settings (``settings_markdown``) under a heading naming the stages it serves:
    the key reference of configs/README.md."""
    from ..settings import settings_markdown

    groups: dict[type, list[str]] = {}
    for stage, stage_class in STAGES.items():
        for group in setting_groups(stage_class):
            groups.setdefault(group, []).append(stage)
    return "\n".join(
        f"### {group._argument_group_name} ({', '.join(stages)})\n\n{settings_markdown(group)}"
        for group, stages in groups.items()
    )


if __name__ == "__main__":
    print(settings_tables())
