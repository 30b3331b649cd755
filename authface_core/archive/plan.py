"""The dry run: what a run would do, without the model. Photos in all, done, left; the faces found in the photos
left (or in a sample of them, extrapolated); the denoiser's FLOPs per face, counted by torch on the checkpoint's
own UNet and ControlNet configs (built on the ``meta`` device: no weights are read); and the GPU time that makes
at each known GPU's peak, a lower bound (``bench/gpu_speed.py`` measures the share of peak reached).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import NoFaceDetectedError
from ..restore import RestoreConfig, prepare_restoration
from .processes import Processes
from .run import ArchiveOutputs, left_to_do, run_batch_of
from .sources import ArchiveItem


@dataclass
class ArchivePlan:
    """What a run would do (counts over all processes)."""

    photos: int
    done: int
    looked_at: int  # photos left whose faces were looked for
    faces: int  # faces found in them
    without_face: int
    unreadable: int
    flops_per_face: int
    flops_counted_on: str  # which model geometry the count used
    processes: int

    @property
    def left(self) -> int:
        return self.photos - self.done

    @property
    def estimated_faces(self) -> float:
        """Faces in all the photos left: those found, scaled up from the sample."""
        return self.faces * self.left / self.looked_at if self.looked_at else 0.0

    def gpu_seconds(self, peak_tflops: float) -> float:
        """GPU time of the faces left at ``peak_tflops``: a lower bound."""
        return self.estimated_faces * self.flops_per_face / (peak_tflops * 1e12)

    def describe(self) -> str:
        """The plan as the dry run prints it."""
        from ..pipeline.flops import PEAK_TFLOPS

        sample = "" if self.looked_at == self.left else f" (in a sample of {self.looked_at}, extrapolated)"
        lines = [
            f"photos: {self.photos} in all, {self.done} already done, {self.left} left",
            f"faces found so far: {self.faces} in {self.looked_at} photo(s) left ({self.without_face} without a "
            f"face, {self.unreadable} unreadable); about {self.estimated_faces:.0f} faces to restore{sample}",
            f"denoiser per face: {self.flops_per_face / 1e12:.4g} TFLOP ({self.flops_counted_on})",
            f"GPU time at peak (a lower bound; {self.processes} process(es) share it):",
        ]
        for gpu, peak in PEAK_TFLOPS.items():
            seconds = self.gpu_seconds(peak)
            lines.append(
                f"  {gpu:9s} {peak:4.0f} TFLOP/s: {describe_duration(seconds)} in all, "
                f"{describe_duration(seconds / self.processes)} per process"
            )
        return "\n".join(lines)


def describe_duration(seconds: float) -> str:
    """'42 s', '3.5 min', '2.1 h', '4.2 days'."""
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.2g} s"


def sample_evenly(items: Sequence, count: int) -> list:
    """``count`` of ``items`` spread evenly from the first (all of them when ``count`` is 0 or more)."""
    if count <= 0 or count >= len(items):
        return list(items)
    return [items[index * len(items) // count] for index in range(count)]


def count_faces(
    items: Sequence[ArchiveItem],
    outputs: ArchiveOutputs,
    config: RestoreConfig,
    processes: Processes,
    sample: int,
) -> tuple[int, int, int, int, int]:
    """(photos done, looked at, faces, without a face, unreadable), summed over the processes: each looks for the
    faces of its share of the (sampled) photos left."""
    left = left_to_do(items, outputs, processes)
    looked_at = sample_evenly([items[index] for index in left], sample)
    share = processes.share(looked_at)

    def faces_of(item: ArchiveItem) -> int:
        try:
            return len(prepare_restoration(item.load(), config).faces)
        except NoFaceDetectedError:
            return 0

    batch = run_batch_of(share, faces_of, processes, len(share), desc="looking for faces")
    counts = [face_count for _, face_count in batch.results]
    totals = processes.gather((sum(counts), counts.count(0), len(batch.failures)))
    return len(items) - len(left), len(looked_at), *map(sum, zip(*totals, strict=True))


def checkpoint_denoiser_configs(model: str, revision: str | None) -> tuple[dict | None, dict | None, str]:
    """(UNet config, ControlNet config, what was counted) of a checkpoint, reading only its two config files;
    where they cannot be read (offline, not cached) the released geometry stands in, and the text says so."""
    from ..pipeline.loading import hub_offline, locate_checkpoint
    from ..pipeline.tiny import TINY_MODEL

    try:
        if model == TINY_MODEL or not (model.count("/") == 1 and not model.startswith((".", "/", "~"))):
            folder = locate_checkpoint(model, revision)
            paths = [folder / name / "config.json" for name in ("unet", "controlnet")]
        else:
            from huggingface_hub import hf_hub_download

            paths = [
                hf_hub_download(model, f"{name}/config.json", revision=revision, local_files_only=hub_offline())
                for name in ("unet", "controlnet")
            ]
        unet, controlnet = (json.loads(Path(path).read_text()) for path in paths)
    except Exception as error:  # noqa: BLE001 - the plan still stands on the released size
        why = type(error).__name__
        return None, None, f"counted at the released SDXL size: {model}'s configs could not be read ({why})"
    controlnet.pop("use_pre_img_encoder", None)  # the release's own key, which diffusers does not know
    return unet, controlnet, f"counted on {model}'s UNet and ControlNet"


def flops_per_face(unet_config: dict | None, controlnet_config: dict | None, config: RestoreConfig) -> int:
    """The denoiser's FLOPs for one face at these settings: one pass (both CFG branches when guidance is on)
    times the steps run (fewer with fidelity > 0). The VAE and text encoders, a few percent, are left out."""
    from ..pipeline.flops import denoiser_flops, meta_denoiser
    from ..pipeline.pipeline_authface_sdxl import count_denoising_steps

    unet, controlnet = meta_denoiser(unet_config, controlnet_config)
    one_pass = denoiser_flops(unet, controlnet, batch=1, face_size=config.face_size, guidance=config.guidance_scale > 1)
    return one_pass * count_denoising_steps(config.num_inference_steps, config.fidelity)
