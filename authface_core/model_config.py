"""Which AuthFace checkpoint to load and how to place it: the one list of model-loading settings.

The ``restore`` command and the demo take their model flags from :class:`ModelConfig`; its fields are
the keyword arguments of :func:`authface_core.pipeline.loading.load_pipeline`, so a new loading option
is one field here (plus its keyword there). Imports nothing heavy: torch loads with the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .pipeline.constants import DEFAULT_MODEL_ID, MEMORY_PRESETS, MODEL_ENV_VAR
from .settings import add_settings_arguments, check_settings, setting, settings_to_dict

# Short names of the weight dtypes (pipeline.loading also takes the long ones, e.g. "float16").
MODEL_DTYPES = ("fp16", "bf16", "fp32")


@dataclass(frozen=True)
class ModelConfig:
    """The checkpoint and where it runs; None means the default that each help text names."""

    _argument_group_name = "model"

    model: str | None = setting(
        None,
        f"Hub id, local checkpoint folder, or 'tiny' (random-weight smoke test); None: ${MODEL_ENV_VAR}, "
        f"else {DEFAULT_MODEL_ID}",
    )
    revision: str | None = setting(None, "Hub branch, tag or commit; None: main")
    device: str | None = setting(None, "cuda, cuda:1, mps or cpu; None: the best available")
    dtype: Literal[MODEL_DTYPES] | None = setting(
        None,
        "weights of the text encoders, UNet and ControlNet; None: fp16 on a GPU (as released), fp32 on CPU. "
        "The VAE stays fp32",
    )
    memory: Literal[MEMORY_PRESETS] = setting(
        "full",
        "how much of the model stays on the GPU: full (fastest), 12gb (model CPU offload, VAE slicing and tiling) "
        "or 8gb (sequential CPU offload, many times slower)",
    )
    attention_slicing: bool = setting(False, "diffusers' sliced attention instead of SDPA: less memory, much slower")
    allow_pickle: bool = setting(
        False, "also load .bin (pickle) weights where a component has no safetensors; a pickle can run code"
    )
    compile_models: bool = setting(
        False, "torch.compile the UNet and ControlNet (fast path; the first call takes minutes)", aliases="--compile"
    )

    def __post_init__(self):
        check_settings(self)

    def load(self):
        """The :class:`AuthFacePipeline` these settings describe (raises ``CheckpointNotFoundError`` saying why)."""
        from .pipeline.loading import load_pipeline

        return load_pipeline(**settings_to_dict(self))

    @property
    def resolved_model(self) -> str:
        """The model that will be loaded: ``model``, else ``$AUTHFACE_MODEL``, else the released Hub id."""
        from .pipeline.loading import resolve_model

        return resolve_model(self.model)


def add_model_arguments(parser) -> None:
    """The :class:`ModelConfig` flags, plus ``--low-memory``, today's spelling of ``--memory 12gb``."""
    import argparse

    add_settings_arguments(parser, ModelConfig)
    parser.add_argument(
        "--low-memory",
        dest="memory",
        action="store_const",
        const="12gb",
        default=argparse.SUPPRESS,
        help="same as --memory 12gb",
    )
