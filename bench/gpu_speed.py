"""Seconds per 512x512 face and peak GPU memory: the released configuration vs. this project's fast path.

Speed does not depend on the weights, so the full-size SDXL UNet + ControlNet + VAE + both CLIP
text encoders are built from the public SDXL configs with random weights, directly on the GPU,
and run through :class:`AuthFacePipeline` end to end (prompt encoding, denoising, fp32 VAE
decode, wavelet colour fix). Per configuration and batch size (faces of one photo restored
together) it reports seconds per face, peak GPU memory and the denoiser's share of the GPU's
peak FLOP rate, counted with ``torch.utils.flop_counter``.

(a) released: DDPM, 50 steps, CFG 8 (both branches in one batch, as stock), fp16, eager (no
    compile), xformers attention when installed (as released) else diffusers' classic attention.
(b) fast: DPM-Solver++ at ``--fast-steps`` (20), bf16, PyTorch SDPA attention, and
    ``loading.optimize_for_speed`` (fused QKV, channels-last, ``torch.compile`` of UNet and
    ControlNet; compile time shows as warm-up), and also at 50 steps so (a) and (b) compare at
    equal steps.

(c) ``--presets``: the memory presets of ``pipeline/loading.py`` instead: the released
    configuration (DDPM, fp16, SDPA) placed by each preset (full, 12gb model offload, 8gb
    sequential offload) from the CPU, peak GPU memory and seconds per face at ``--preset-steps``
    (the counted figures come from ``bench/memory_presets.py``).

Usage:
    python bench/gpu_speed.py                           # full size, CUDA
    python bench/gpu_speed.py --tiny --device cpu       # the tiny model on CPU: shows the script runs
    python bench/gpu_speed.py --json results.json --batches 1 4 8
    python bench/gpu_speed.py --presets --batches 1 4 --json presets.json
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from authface_core.pipeline.constants import (  # noqa: E402
    MAX_INFERENCE_STEPS,
    MEMORY_PRESETS,
    RELEASED_FACE_SIZE,
    RELEASED_GUIDANCE_SCALE,
    RELEASED_NUM_INFERENCE_STEPS,
    RELEASED_SEED,
)
from authface_core.pipeline.flops import (  # noqa: E402
    CONTROLNET_EMBEDDING_CHANNELS,
    PEAK_TFLOPS,
    SDXL_UNET_CONFIG,
    denoiser_flops,
)
from authface_core.pipeline.loading import apply_memory_preset, optimize_for_speed  # noqa: E402
from authface_core.pipeline.pipeline_authface_sdxl import seeded_generator  # noqa: E402
from authface_core.restore import FAST_PRESET  # noqa: E402

# Public configs: stabilityai/stable-diffusion-xl-base-1.0 vae/, text_encoder/, text_encoder_2/ (the UNet's is in
# authface_core/pipeline/flops.py, which counts the FLOPs).
SDXL_VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2,
    latent_channels=4,
    sample_size=1024,
    scaling_factor=0.13025,
    force_upcast=True,
)
CLIP_L_CONFIG = dict(
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    projection_dim=768,
    hidden_act="quick_gelu",
    vocab_size=49408,
)
CLIP_BIGG_CONFIG = dict(
    hidden_size=1280,
    intermediate_size=5120,
    num_hidden_layers=32,
    num_attention_heads=20,
    projection_dim=1280,
    hidden_act="gelu",
    vocab_size=49408,
)
TINY_FACE_SIZE = 64  # 8x8 latents, as the tiny-model tests use


@dataclass
class Measurement:
    """One timed (configuration, batch size): seconds per face, peak memory and the denoiser's FLOP rate."""

    config: str
    scheduler: str
    steps: int
    dtype: str
    attention: str
    compiled: bool
    batch: int
    seconds_per_face: float
    peak_memory_gb: float | None
    denoiser_tflops_per_s: float
    fraction_of_peak: float | None
    warmup_seconds: float


def build_full_size_components(device: torch.device) -> dict:
    """SDXL + ControlNet at full size with random weights, built on ``device`` in fp32."""
    from diffusers import AutoencoderKL, ControlNetModel, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from authface_core.pipeline.tiny import SDXL_SCHEDULER_CONFIG, build_tiny_tokenizer

    with torch.device(device):
        unet = UNet2DConditionModel(**SDXL_UNET_CONFIG)
        controlnet = ControlNetModel.from_unet(
            unet, conditioning_embedding_out_channels=CONTROLNET_EMBEDDING_CHANNELS, load_weights_from_unet=False
        )
        vae = AutoencoderKL(**SDXL_VAE_CONFIG)
        text_encoder = CLIPTextModel(CLIPTextConfig(**CLIP_L_CONFIG))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_BIGG_CONFIG))
    # A byte-level tokenizer stands in for CLIP's BPE vocabulary (not downloadable here); the token
    # count per prompt is capped at 77 either way, so the encoders' cost is the same.
    tokenizer = build_tiny_tokenizer()
    return {
        "vae": vae,
        "text_encoder": text_encoder,
        "text_encoder_2": text_encoder_2,
        "tokenizer": tokenizer,
        "tokenizer_2": build_tiny_tokenizer(),
        "unet": unet,
        "controlnet": controlnet,
        "scheduler": DDPMScheduler(**SDXL_SCHEDULER_CONFIG),
    }


def build_pipeline(tiny: bool, device: torch.device, dtype: torch.dtype):
    """An AuthFacePipeline with random weights; denoiser and text encoders in ``dtype``, VAE fp32 (as released)."""
    from authface_core.pipeline.pipeline_authface_sdxl import AuthFacePipeline
    from authface_core.pipeline.tiny import build_tiny_components

    components = build_tiny_components() if tiny else build_full_size_components(device)
    pipe = AuthFacePipeline(**components, smoke_test_model=True)
    pipe.to(device)
    if dtype != torch.float32:
        for name in ("unet", "controlnet", "text_encoder", "text_encoder_2"):
            getattr(pipe, name).to(dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def set_attention(pipe, kind: str) -> str:
    """Set the UNet's and ControlNet's attention and return the one used: for ``kind="released"``,
    xformers (as released) where installed, else "eager" (classic attention); otherwise "eager" or "sdpa"."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    if kind == "released":
        try:
            for model in (pipe.unet, pipe.controlnet):
                model.enable_xformers_memory_efficient_attention()
            return "xformers"
        except (ImportError, ModuleNotFoundError, ValueError):
            kind = "eager"
    processor = AttnProcessor() if kind == "eager" else AttnProcessor2_0()
    for model in (pipe.unet, pipe.controlnet):
        model.set_attn_processor(processor)
    return kind


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work, so the clock measures it (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_pipeline(
    pipe, faces: np.ndarray, *, scheduler: str, steps: int, guidance: float, repeats: int
) -> tuple[float, float, float | None]:
    """(seconds per call, warm-up seconds, peak GPU memory in GB) for one batch of faces."""
    device = pipe.unet.device

    def call():
        generator = seeded_generator(RELEASED_SEED, device)
        pipe(faces, num_inference_steps=steps, guidance_scale=guidance, scheduler=scheduler, generator=generator)

    start = time.perf_counter()
    call()  # warm-up: compilation, cuDNN autotuning, allocator
    synchronize(device)
    warmup = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    synchronize(device)
    seconds = (time.perf_counter() - start) / repeats
    peak = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None
    return seconds, warmup, peak


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    """The GPU's dense peak in TFLOP/s: ``override``, else ``PEAK_TFLOPS`` by device name; None if unknown."""
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((value for key, value in PEAK_TFLOPS.items() if key in name), None)


@dataclass(frozen=True)
class Plan:
    """One model setup and the (label, scheduler, steps) runs timed on it; the fast setup is compiled
    once per batch size and timed at its own steps and at the released step count."""

    name: str
    dtype: torch.dtype
    attention: str
    fast: bool
    runs: tuple[tuple[str, str, int], ...]


def plans_for(args, device: torch.device) -> list[Plan]:
    """The released setup (DDPM, fp16) and the fast one (the fast preset's scheduler, bf16, SDPA); fp32 on CPU."""
    on_gpu = device.type == "cuda"  # fp16/bf16 matmuls on CPU are slow emulations: time the CPU in fp32
    released, fast = args.released_steps, args.fast_steps
    return [
        Plan(
            "released", torch.float16 if on_gpu else torch.float32, "released", False, (("released", "ddpm", released),)
        ),
        Plan(
            "fast",
            torch.bfloat16 if on_gpu else torch.float32,
            "sdpa",
            True,
            (("fast", FAST_PRESET.scheduler, fast), (f"fast@{released}", FAST_PRESET.scheduler, released)),
        ),
    ]


def run(args) -> tuple[list[Measurement], int]:
    """Time every plan at every batch size, printing each row; returns the rows and the FLOPs of one face's pass."""
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    face_size = args.face_size or (TINY_FACE_SIZE if args.tiny else RELEASED_FACE_SIZE)
    faces_all = np.random.default_rng(0).integers(0, 256, (max(args.batches), face_size, face_size, 3), dtype=np.uint8)
    peak = peak_tflops(device, args.peak_tflops)
    results = []
    for plan in plans_for(args, device):
        pipe = build_pipeline(args.tiny, device, plan.dtype)
        attention_used = set_attention(pipe, plan.attention)
        flops_per_face_pass = denoiser_flops(pipe.unet, pipe.controlnet, batch=1, face_size=face_size, guidance=False)
        compiled = plan.fast and args.compile
        if plan.fast:
            optimize_for_speed(pipe, compile_models=compiled)
        for batch in args.batches:
            for label, scheduler, steps in plan.runs:
                seconds, warmup, memory = time_pipeline(
                    pipe,
                    faces_all[:batch],
                    scheduler=scheduler,
                    steps=steps,
                    guidance=args.guidance,
                    repeats=args.repeats,
                )
                passes = steps * batch * (2 if args.guidance > 1 else 1)
                achieved = flops_per_face_pass * passes / seconds / 1e12
                dtype_name = str(plan.dtype).removeprefix("torch.")
                fraction = achieved / peak if peak else None
                results.append(
                    Measurement(label, scheduler, steps, dtype_name, attention_used, compiled, batch, seconds / batch,
                                memory, achieved, fraction, warmup)
                )  # fmt: skip
                print(format_row(results[-1]), flush=True)
        del pipe
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    pass_tflop = flops_per_face_pass / 1e12
    print(f"\nFLOPs per denoiser pass (ControlNet + UNet, one face, {face_size}x{face_size}): {pass_tflop:.6g} TFLOP")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    max_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    tiny_note = "; TINY RANDOM MODEL: shows the script runs, says nothing about real speed" if args.tiny else ""
    print(f"device: {device_name}; peak used: {peak or 'n/a'} TFLOP/s; max RSS {max_rss_gb:.2f} GB{tiny_note}")
    return results, flops_per_face_pass


def format_row(m: Measurement) -> str:
    """One measurement as a fixed-width line of the printed table."""
    memory = f"{m.peak_memory_gb:6.2f} GB" if m.peak_memory_gb is not None else "     n/a"
    fraction = f"{100 * m.fraction_of_peak:5.1f}%" if m.fraction_of_peak is not None else "  n/a"
    return (
        f"{m.config:9s} {m.scheduler:6s} {m.steps:3d} steps {m.dtype:9s} {m.attention:8s} compile={str(m.compiled):5s} "
        f"batch {m.batch:2d}: {m.seconds_per_face:8.4f} s/face  peak {memory}  "
        f"denoiser {m.denoiser_tflops_per_s:8.3f} TFLOP/s ({fraction} of peak)  warm-up {m.warmup_seconds:6.1f} s"
    )


@dataclass
class PresetMeasurement:
    """One memory preset at one batch size: seconds per face and peak GPU memory (None off CUDA)."""

    preset: str
    batch: int
    steps: int
    seconds_per_face: float
    peak_memory_gib: float | None
    warmup_seconds: float


def run_presets(args) -> list[PresetMeasurement]:
    """The released configuration (DDPM, fp16 on CUDA, SDPA) placed by each memory preset, from the CPU."""
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    face_size = args.face_size or (TINY_FACE_SIZE if args.tiny else RELEASED_FACE_SIZE)
    faces_all = np.random.default_rng(0).integers(0, 256, (max(args.batches), face_size, face_size, 3), dtype=np.uint8)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    pipe = build_pipeline(args.tiny, torch.device("cpu"), dtype)
    set_attention(pipe, "sdpa")
    results = []
    for preset in MEMORY_PRESETS:
        apply_memory_preset(pipe, device, preset)
        for batch in args.batches:

            def call(faces=faces_all[:batch]):
                generator = seeded_generator(RELEASED_SEED, device)
                pipe(faces, num_inference_steps=args.preset_steps, guidance_scale=args.guidance, generator=generator)

            start = time.perf_counter()
            call()
            synchronize(device)
            warmup = time.perf_counter() - start
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
            for _ in range(args.repeats):
                call()
            synchronize(device)
            seconds = (time.perf_counter() - start) / args.repeats
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
            results.append(PresetMeasurement(preset, batch, args.preset_steps, seconds / batch, peak, warmup))
            memory = f"{peak:6.2f} GiB" if peak is not None else "     n/a"
            print(f"{preset:5s} batch {batch:2d}: {seconds / batch:8.3f} s/face  peak {memory}", flush=True)
        pipe.remove_all_hooks()  # back on the CPU for the next preset
        pipe.to("cpu")
        pipe.vae.disable_slicing()
        pipe.vae.disable_tiling()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module doc); refuses batch sizes, repeats and step counts out of range."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tiny", action="store_true", help="the tiny random model instead of full-size SDXL (CPU smoke run)"
    )
    parser.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8], help="faces per call (default 1 4 8)")
    parser.add_argument(
        "--fast-steps",
        type=int,
        default=FAST_PRESET.num_inference_steps,
        help=f"steps of the fast path (default {FAST_PRESET.num_inference_steps})",
    )
    parser.add_argument(
        "--released-steps",
        type=int,
        default=RELEASED_NUM_INFERENCE_STEPS,
        help=f"steps of the released configuration (default {RELEASED_NUM_INFERENCE_STEPS})",
    )
    parser.add_argument(
        "--guidance",
        type=float,
        default=RELEASED_GUIDANCE_SCALE,
        help=f"CFG scale (default {RELEASED_GUIDANCE_SCALE:g}, as released)",
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="timed calls per measurement after one warm-up (default 2)"
    )
    parser.add_argument(
        "--face-size",
        type=int,
        help=f"face side in px (default {RELEASED_FACE_SIZE}; {TINY_FACE_SIZE} with --tiny)",
    )
    parser.add_argument(
        "--no-compile", dest="compile", action="store_false", help="skip torch.compile on the fast path"
    )
    parser.add_argument(
        "--peak-tflops", type=float, help="the GPU's dense bf16 peak, TFLOP/s (default: by device name)"
    )
    parser.add_argument(
        "--presets", action="store_true", help="measure the memory presets (full, 12gb, 8gb) instead (mode c)"
    )
    parser.add_argument("--preset-steps", type=int, default=10, help="DDPM steps per call with --presets (default 10)")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args(argv)
    if any(batch < 1 for batch in args.batches) or args.repeats < 1:
        parser.error(f"--batches and --repeats must be >= 1, got --batches {args.batches} --repeats {args.repeats}")
    if not (1 <= args.fast_steps <= MAX_INFERENCE_STEPS and 1 <= args.released_steps <= MAX_INFERENCE_STEPS):
        parser.error(
            f"--fast-steps and --released-steps must be in [1, {MAX_INFERENCE_STEPS}], "
            f"got {args.fast_steps} and {args.released_steps}"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; with ``--json`` also write the FLOPs per pass and every measurement."""
    args = parse_args(argv)
    if args.presets:
        measurements = run_presets(args)
        if args.json:
            args.json.write_text(json.dumps({"presets": [asdict(m) for m in measurements]}, indent=2))
        return 0
    results, flops_per_face_pass = run(args)
    if args.json:
        record = {"denoiser_flops_per_face_pass": flops_per_face_pass, "measurements": [asdict(m) for m in results]}
        args.json.write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
