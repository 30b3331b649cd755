"""Find, load and place an AuthFace checkpoint: Hub id, local folder or the tiny test model.

Each component folder is loaded on its own with its stock class, as the release does
(test_face_xl.py:107-199): DDPM from ``scheduler/`` whatever its ``_class_name`` says, CLIP
text encoders with eager attention, the VAE in float32 and the other models in the chosen dtype.
Weights load from safetensors only (``use_safetensors=True``; Hub downloads fetch no pickles)
unless the caller opts in with ``allow_pickle=True`` for a checkpoint that ships ``.bin`` files:
a pickle can run code when loaded, so each pickled component is named in a warning.
Nothing waits on the network when ``HF_HUB_OFFLINE`` is set, and every failure raises
:class:`CheckpointNotFoundError` saying what was tried and how to fix it.

Memory presets (:func:`apply_memory_preset`, ``MEMORY_PRESETS``), counted for SDXL + ControlNet at
512 px by ``bench/memory_presets.py``:

- ``"full"``: every model on the GPU (about 8.9 GiB of fp16/fp32 weights); fastest.
- ``"12gb"``: model CPU offload (each model moves to the GPU when it runs; the ControlNet stays
  with the UNet through the denoising loop) plus VAE slicing (faces decoded one at a time) and
  tiling (for faces above 1024 px); attention keeps PyTorch's SDPA kernels.
- ``"8gb"``: sequential CPU offload (each layer moves to the GPU when it runs): the least memory,
  many times slower.

Attention slicing (``attention_slicing=True``) replaces SDPA in the UNet and ControlNet by
diffusers' sliced attention, which diffusers documents as a large slowdown; it is never implied by
a preset.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ..errors import CheckpointNotFoundError, UnsupportedCheckpointError
from .constants import DEFAULT_MODEL_ID, MEMORY_PRESETS, MODEL_ENV_VAR
from .tiny import TINY_MODEL

logger = logging.getLogger(__name__)

COMPONENT_FOLDERS = (
    "scheduler",
    "text_encoder",
    "text_encoder_2",
    "tokenizer",
    "tokenizer_2",
    "vae",
    "unet",
    "controlnet",
)
# Only configs, tokenizer files and safetensors weights are downloaded, never pickles (unless allowed).
HUB_ALLOW_PATTERNS = ["*.json", "*.txt", "*.safetensors"]
PICKLE_WEIGHT_PATTERNS = ["*.bin"]
# Seconds to wait for the Hub's answer before falling back to the local cache.
HUB_ETAG_TIMEOUT_S = 10
DTYPE_NAMES = {
    "fp16": "float16",
    "float16": "float16",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp32": "float32",
    "float32": "float32",
}

_COMPONENT_LIST = " ".join(f"{name}/" for name in COMPONENT_FOLDERS)
FIX_HINT = (
    f"Fix: pass --model /path/to/a/local/checkpoint (folders {_COMPONENT_LIST}), "
    "or download it once while online (HF_HUB_OFFLINE unset; "
    "`hf auth login` or HF_TOKEN if the repository asks for a licence acceptance) so it is in the Hugging Face "
    "cache, or use --model tiny for a smoke test with random weights."
)


def resolve_model(model: str | None = None) -> str:
    """The model to load: the argument, else ``$AUTHFACE_MODEL``, else the released Hub id."""
    return model or os.environ.get(MODEL_ENV_VAR) or DEFAULT_MODEL_ID


def resolve_device(device=None):
    """``device`` as a torch.device; by default CUDA, then Apple MPS, then CPU."""
    import torch

    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(dtype, device):
    """``dtype`` ("fp16", "bf16", "fp32" or a torch.dtype) as a torch.dtype; by default float16 on a
    GPU (as released) and float32 on CPU (where fp16 is slow and inexact)."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None:
        return torch.float32 if torch.device(device).type == "cpu" else torch.float16
    if dtype not in DTYPE_NAMES:
        raise ValueError(f"dtype must be one of {sorted(DTYPE_NAMES)}, got {dtype!r}")
    return getattr(torch, DTYPE_NAMES[dtype])


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) as set now, not only at import time."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in ("1", "ON", "YES", "TRUE") or constants.HF_HUB_OFFLINE


def locate_checkpoint(model: str, revision: str | None = None, *, allow_pickle: bool = False) -> Path:
    """A local folder holding the checkpoint: the tiny model's cache, a local path, or a Hub snapshot
    (its ``.bin`` weights downloaded too only with ``allow_pickle``)."""
    if model == TINY_MODEL:
        from .tiny import ensure_tiny_checkpoint

        return ensure_tiny_checkpoint()
    local = Path(model).expanduser()
    if local.is_dir():
        return local
    if local.exists() or model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise CheckpointNotFoundError(
            f"model {model!r}: not a checkpoint folder and not a Hub id (owner/name). {FIX_HINT}"
        )
    return _download_snapshot(model, revision, allow_pickle)


def _download_snapshot(repo_id: str, revision: str | None, allow_pickle: bool = False) -> Path:
    """The Hub snapshot's local folder (from the cache alone when offline); every failure says what was tried."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    offline = hub_offline()
    where = f"{repo_id}@{revision}" if revision else repo_id
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=HUB_ALLOW_PATTERNS + (PICKLE_WEIGHT_PATTERNS if allow_pickle else []),
            local_files_only=offline,
            etag_timeout=HUB_ETAG_TIMEOUT_S,
        )
    except GatedRepoError:
        raise CheckpointNotFoundError(
            f"{where}: the Hub refused access (gated repository). Accept its licence on huggingface.co, then log in "
            f"(`hf auth login`) or set HF_TOKEN. {FIX_HINT}"
        ) from None
    except RepositoryNotFoundError:
        raise CheckpointNotFoundError(
            f"{where}: no such repository on the Hub, or it is private and no valid token was given. {FIX_HINT}"
        ) from None
    except LocalEntryNotFoundError:
        tried = (
            "the local Hugging Face cache (HF_HUB_OFFLINE is set)"
            if offline
            else "the Hub (unreachable) and the local cache"
        )
        raise CheckpointNotFoundError(f"{where}: not found in {tried}. {FIX_HINT}") from None
    except (HfHubHTTPError, OSError) as error:
        raise CheckpointNotFoundError(
            f"{where}: download failed ({type(error).__name__}: {error}). {FIX_HINT}"
        ) from None
    return Path(folder)


def read_pre_img_encoder_flag(folder: Path) -> bool:
    """The released ControlNet config's extra ``use_pre_img_encoder`` key (False when absent)."""
    config_path = folder / "controlnet" / "config.json"
    return bool(json.loads(config_path.read_text()).get("use_pre_img_encoder", False))


def load_components(
    folder: Path, dtype, *, require_controlnet: bool = True, variant: str | None = None, allow_pickle: bool = False
) -> dict:
    """Each component of the released layout with its stock class; the VAE stays float32.

    With ``require_controlnet=False`` an SDXL base folder (no ``controlnet/``, as training starts
    from) loads too, with ``"controlnet": None``. ``variant`` picks weight files such as
    ``diffusion_pytorch_model.fp16.safetensors`` (the SDXL base ships fp16 variants).
    ``allow_pickle`` lets a component without safetensors load its ``.bin`` file, with a warning.
    """
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    has_controlnet = (folder / "controlnet").is_dir()
    required = COMPONENT_FOLDERS if require_controlnet else [name for name in COMPONENT_FOLDERS if name != "controlnet"]
    missing = [name for name in required if not (folder / name).is_dir()]
    if missing:
        raise CheckpointNotFoundError(
            f"{folder}: not an AuthFace checkpoint, missing folder(s) {', '.join(missing)}. {FIX_HINT}"
        )
    if has_controlnet and read_pre_img_encoder_flag(folder):
        raise UnsupportedCheckpointError(
            f"{folder}/controlnet/config.json has use_pre_img_encoder: true (a 4-channel latent conditioning). "
            "The released AuthFace ControlNet uses false (3-channel pixels), the only variant supported here."
        )
    if allow_pickle:
        warn_about_pickles(folder)
    # use_safetensors=None: safetensors where present, else the .bin file.
    weights = {"dtype": dtype, "use_safetensors": None if allow_pickle else True, "variant": variant}
    try:
        scheduler = DDPMScheduler.from_pretrained(folder, subfolder="scheduler")
        if scheduler.config.timestep_spacing == "linspace":
            logger.warning(
                "scheduler config uses linspace spacing: diffusers >= 0.29 steps DDPM differently from the release"
            )
        return {
            "scheduler": scheduler,
            "tokenizer": CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer"),
            "tokenizer_2": CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer_2"),
            "text_encoder": CLIPTextModel.from_pretrained(
                folder, subfolder="text_encoder", attn_implementation="eager", **weights
            ),
            "text_encoder_2": CLIPTextModelWithProjection.from_pretrained(
                folder, subfolder="text_encoder_2", attn_implementation="eager", **weights
            ),
            "unet": UNet2DConditionModel.from_pretrained(folder, subfolder="unet", **weights),
            "controlnet": _load_released_controlnet(ControlNetModel, folder, weights) if has_controlnet else None,
            "vae": AutoencoderKL.from_pretrained(folder, subfolder="vae", **{**weights, "dtype": torch.float32}),
        }
    except (OSError, ValueError) as error:
        if isinstance(error, UnsupportedCheckpointError):
            raise
        raise CheckpointNotFoundError(f"{folder}: cannot load the checkpoint ({error}). {FIX_HINT}") from None


def warn_about_pickles(folder: Path) -> list[str]:
    """Log a warning for each component folder that holds pickled (``.bin``) weights and no safetensors;
    returns their names."""
    pickled = [
        name
        for name in COMPONENT_FOLDERS
        if any((folder / name).glob("*.bin")) and not any((folder / name).glob("*.safetensors"))
    ]
    for name in pickled:
        logger.warning(
            "loading pickled weights from %s: a pickle can run code when loaded; allow_pickle is for files you trust",
            folder / name,
        )
    return pickled


class _DropReleasedFlagWarning(logging.Filter):
    """Hides diffusers' "config attributes {'use_pre_img_encoder': False} ... will be ignored": expected
    for the released ControlNet (the flag is checked before loading and kept in ``.config``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "use_pre_img_encoder" not in record.getMessage()


def _load_released_controlnet(controlnet_class, folder: Path, weights: dict):
    """``controlnet_class.from_pretrained`` without the warning about the release's extra config key."""
    config_logger = logging.getLogger("diffusers.configuration_utils")
    drop = _DropReleasedFlagWarning()
    config_logger.addFilter(drop)
    try:
        return controlnet_class.from_pretrained(folder, subfolder="controlnet", **weights)
    finally:
        config_logger.removeFilter(drop)


def is_smoke_test_checkpoint(folder: Path) -> bool:
    """Whether ``model_index.json`` marks the folder as the tiny random model."""
    index = folder / "model_index.json"
    return index.is_file() and bool(json.loads(index.read_text()).get("smoke_test_model", False))


def load_pipeline(
    model: str | None = None,
    *,
    revision: str | None = None,
    device=None,
    dtype=None,
    memory: str = "full",
    attention_slicing: bool = False,
    allow_pickle: bool = False,
    compile_models: bool = False,
):
    """Load an :class:`AuthFacePipeline` ready to run on ``device``.

    Args:
        model: Hub id, local folder or ``"tiny"``; default ``$AUTHFACE_MODEL`` or ``Ethanliang99/AuthFace``.
        revision: a Hub branch, tag or commit.
        device: "cuda", "mps", "cpu" or a torch.device; default the best available.
        dtype: "fp16", "bf16", "fp32" or a torch.dtype for the text encoders, UNet and ControlNet;
            default fp16 on a GPU (as released), fp32 on CPU. The VAE is always fp32.
        memory: ``"full"``, ``"12gb"`` or ``"8gb"`` (``MEMORY_PRESETS``; module doc): how much of the model
            stays on the GPU.
        attention_slicing: diffusers' sliced attention instead of SDPA (less memory, much slower); off unless asked.
        allow_pickle: also load ``.bin`` (pickle) weights where a component has no safetensors, with a warning.
        compile_models: the fast path's ``torch.compile`` (see :func:`optimize_for_speed`); the first
            call per batch size then takes a minute or two.
    """
    from .pipeline_authface_sdxl import AuthFacePipeline

    model = resolve_model(model)
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    folder = locate_checkpoint(model, revision, allow_pickle=allow_pickle)
    components = load_components(folder, dtype, allow_pickle=allow_pickle)
    pipe = AuthFacePipeline(**components, smoke_test_model=is_smoke_test_checkpoint(folder))
    pipe.set_progress_bar_config(disable=True)
    apply_memory_preset(pipe, device, memory, attention_slicing=attention_slicing)
    if compile_models:
        optimize_for_speed(pipe, compile_models=True)
    logger.info(
        "loaded %s from %s on %s (%s)%s",
        model,
        folder,
        device,
        dtype,
        " [smoke-test model]" if pipe.is_smoke_test_model else "",
    )
    return pipe


def apply_memory_preset(pipe, device, memory: str = "full", *, attention_slicing: bool = False) -> None:
    """Place the pipeline on ``device`` as the memory preset says (module doc). Offloading needs a CUDA device;
    elsewhere the offloading presets keep only VAE slicing and tiling and the models move to ``device``."""
    import torch

    if memory not in MEMORY_PRESETS:
        raise ValueError(f"memory must be one of {', '.join(MEMORY_PRESETS)}; got {memory!r}")
    device = torch.device(device)
    if attention_slicing:
        pipe.enable_attention_slicing()
    if memory == "full":
        pipe.to(device)
        return
    pipe.vae.enable_slicing()
    pipe.vae.enable_tiling()
    if device.type != "cuda":
        pipe.to(device)
    elif memory == "12gb":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.enable_sequential_cpu_offload(device=device)


def optimize_for_speed(pipe, *, compile_models: bool = True) -> None:
    """The fast path's model changes: fused QKV projections and channels-last memory for the UNet and
    ControlNet, and optionally ``torch.compile`` of both (fixed shapes: one compile per batch size)."""
    import torch

    for name in ("unet", "controlnet"):
        model = getattr(pipe, name)
        model.fuse_qkv_projections()
        model.to(memory_format=torch.channels_last)
        if compile_models:
            setattr(pipe, name, torch.compile(model, dynamic=False))
