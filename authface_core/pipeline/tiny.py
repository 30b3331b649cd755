"""A tiny AuthFace model: exactly the released classes, random weights, built offline in seconds.

Tests, CI and ``--model tiny`` use it. Its output is noise-like: it proves the code path (shapes,
dtypes, scheduling, decoding, paste-back), never restoration quality, and everything that shows
its output must say so (``pipe.is_smoke_test_model``).

The configs mirror the real SDXL + ControlNet geometry at toy width: a 4-level VAE (latents at
1/8 of the pixel size, scaled to unit variance), a ControlNet conditioning embedding with three
stride-2 convolutions (pixels in, 1/8 out), text-time added conditioning (6 time ids + pooled text
embedding of text_encoder_2) and two CLIP text encoders whose penultimate states are concatenated.
The tokenizers are byte-level CLIP BPE tokenizers with an all-bytes vocabulary and no merges, so
nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

TINY_MODEL = "tiny"
# Bump when the tiny configs change, so cached tiny checkpoints are rebuilt.
TINY_MODEL_VERSION = 2

_TEXT_HIDDEN_SIZE = 32
_TEXT_PROJECTION_DIM = 32
_TIME_EMBED_DIM = 8
# 1 / std of this VAE's latents on skimage's astronaut at 64 px (0.265), so that scaled latents
# have unit variance against the unit noise, the rule behind SDXL's 0.13025 and SD's 0.18215.
TINY_VAE_SCALING_FACTOR = 3.77
_CLIP_MAX_LENGTH = 77  # CLIP's context length, as released.
_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"

# The DDPM keys of stabilityai/stable-diffusion-xl-base-1.0 scheduler/scheduler_config.json
# (the release loads that folder as DDPM).
SDXL_SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "steps_offset": 1,
    "timestep_spacing": "leading",
}

_UNET_SHARED = dict(
    block_out_channels=(32, 64),
    layers_per_block=1,
    in_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    attention_head_dim=(2, 4),
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=_TIME_EMBED_DIM,
    transformer_layers_per_block=(1, 1),
    # 6 time ids x 8 + pooled text embedding of text_encoder_2.
    projection_class_embeddings_input_dim=6 * _TIME_EMBED_DIM + _TEXT_PROJECTION_DIM,
    cross_attention_dim=2 * _TEXT_HIDDEN_SIZE,
    norm_num_groups=8,
)


def build_tiny_tokenizer():
    """A CLIP BPE tokenizer over the 256 byte symbols (with and without ``</w>``), no merges."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = alphabet + [symbol + "</w>" for symbol in alphabet] + [_BOS, _EOS]
    tokenizer = CLIPTokenizer(vocab={token: index for index, token in enumerate(tokens)}, merges=[])
    tokenizer.model_max_length = _CLIP_MAX_LENGTH
    return tokenizer


def build_tiny_components(seed: int = 0) -> dict:
    """The constructor kwargs of :class:`AuthFacePipeline` with seeded random weights (global RNG untouched)."""
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = build_tiny_tokenizer()
    text_config = dict(
        vocab_size=len(tokenizer),
        hidden_size=_TEXT_HIDDEN_SIZE,
        intermediate_size=37,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=_CLIP_MAX_LENGTH,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_act="gelu",
        projection_dim=_TEXT_PROJECTION_DIM,
        attn_implementation="eager",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            **_UNET_SHARED,
            sample_size=8,
            out_channels=4,
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        )
        torch.manual_seed(seed + 1)
        # Stock ControlNetModel: 3-channel pixels through three stride-2 convs (1/8, like the latents).
        controlnet = ControlNetModel(**_UNET_SHARED, conditioning_embedding_out_channels=(8, 8, 16, 16))
        torch.manual_seed(seed + 2)
        vae = AutoencoderKL(
            block_out_channels=(8, 8, 16, 16),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=8,
            sample_size=64,
            scaling_factor=TINY_VAE_SCALING_FACTOR,
        )
        torch.manual_seed(seed + 3)
        text_encoder = CLIPTextModel(CLIPTextConfig(**text_config))
        torch.manual_seed(seed + 4)
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**text_config))
    return {
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "text_encoder_2": text_encoder_2.eval(),
        "tokenizer": tokenizer,
        "tokenizer_2": build_tiny_tokenizer(),
        "unet": unet.eval(),
        "controlnet": controlnet.eval(),
        "scheduler": DDPMScheduler(**SDXL_SCHEDULER_CONFIG),
    }


def save_tiny_checkpoint(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny checkpoint in the released folder layout (safetensors), as the Hub repo has it.

    ``controlnet/config.json`` carries ``use_pre_img_encoder: false`` like the released one, and
    ``model_index.json`` marks the folder as a smoke-test model. Written into a temporary sibling
    and renamed, so a reader never sees half a checkpoint.
    """
    from .pipeline_authface_sdxl import AuthFacePipeline

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        pipe = AuthFacePipeline(**build_tiny_components(seed), smoke_test_model=True)
        pipe.save_pretrained(staging, safe_serialization=True)
        controlnet_config = staging / "controlnet" / "config.json"
        config = json.loads(controlnet_config.read_text())
        config["use_pre_img_encoder"] = False
        controlnet_config.write_text(json.dumps(config, indent=2, sort_keys=True))
        if path.exists():
            shutil.rmtree(path)
        os.replace(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def tiny_checkpoint_dir() -> Path:
    """Where ``--model tiny`` caches its checkpoint: ``$AUTHFACE_CACHE`` or ``~/.cache/authface``."""
    cache = Path(os.environ.get("AUTHFACE_CACHE", Path.home() / ".cache" / "authface"))
    return cache / f"tiny-v{TINY_MODEL_VERSION}"


def ensure_tiny_checkpoint() -> Path:
    """The cached tiny checkpoint folder, written on first use (safe when processes race: the first
    complete folder renamed into place wins, the others are discarded)."""
    path = tiny_checkpoint_dir()
    if not (path / "model_index.json").is_file():
        staging = save_tiny_checkpoint(path.with_name(f".{path.name}.{os.getpid()}"))
        try:
            os.rename(staging, path)
        except OSError:  # another process got there first
            shutil.rmtree(staging, ignore_errors=True)
    return path
