"""What a training run leaves on disk: ``checkpoint-{step}`` folders, ``metrics.jsonl`` and the exported model.

Checkpoints follow diffusers' example scripts: ``accelerator.save_state`` writes the optimiser,
scheduler and RNG states, the stage's save hooks write the trained models in ``save_pretrained``
format, old folders are rotated away before a new one is written, and ``resume_from_checkpoint:
latest`` picks the newest. The export is the released layout that ``load_pipeline`` reads.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch

from ..errors import CheckpointNotFoundError
from ..io import atomic_write_bytes

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
METRICS_FILE = "metrics.jsonl"


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
        raise CheckpointNotFoundError(f"resume_from_checkpoint {value!r}: no such checkpoint-{{step}} folder")
    return path


def is_checkpoint_step(step: int, checkpointing_steps: int, max_train_steps: int) -> bool:
    """Every ``checkpointing_steps`` steps, and at the last step."""
    return step % checkpointing_steps == 0 or step == max_train_steps


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
    """The rows ``MetricsLog`` wrote, in order (a step with a validation has two rows)."""
    path = Path(output_dir) / METRICS_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def export_pipeline(output_dir: Path, components: dict, *, controlnet, unet=None, smoke_test_model: bool) -> Path:
    """Save the released layout (model_index.json + scheduler/ ... unet/ controlnet/) that ``load_pipeline`` reads.

    ``components`` are the base checkpoint's parts read again from its files (``BaseComponents.reload``), so
    the frozen parts leave training bit for bit as they came in, whatever dtype training ran them in;
    ``controlnet`` and, from Stage I, ``unet`` are the trained models, saved in float32.
    """
    from ..pipeline.pipeline_authface_sdxl import AuthFacePipeline

    trained = {"controlnet": controlnet} | ({"unet": unet} if unet is not None else {})
    controlnet.register_to_config(use_pre_img_encoder=False)  # the release's pixel-conditioning flag
    parts = components | {name: model.to("cpu", torch.float32) for name, model in trained.items()}
    AuthFacePipeline(**parts, smoke_test_model=smoke_test_model).save_pretrained(output_dir, safe_serialization=True)
    return output_dir
