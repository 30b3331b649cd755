"""Peak GPU memory of each memory preset (``pipeline/loading.py``), counted without a GPU.

The full-size SDXL UNet, ControlNet, VAE and both CLIP text encoders (public configs, as in
``gpu_speed.py``) are built as fake tensors (``torch._subclasses.FakeTensorMode``: shapes and
dtypes, no storage), in the release's dtypes (fp16, VAE fp32), and run at 512 px through each
stage of a restoration with classifier-free guidance: text encoding, one denoising step
(ControlNet + UNet on 2B rows, residuals held while the UNet runs, PyTorch SDPA attention) and the
VAE decode. PyTorch's ``MemTracker`` counts the live bytes; a stage's activation peak is its peak
minus its weights. Each preset's peak is then the largest, over the stages, of the weights it keeps
on the GPU during that stage plus the stage's activations:

- ``full``: every weight, all the time.
- ``12gb``: model CPU offload. diffusers moves each model of the chain text_encoder -> text_encoder_2
  -> unet -> vae to the GPU when it runs and the previous one off; the ControlNet is outside the
  chain, so once it has run it stays until the call ends. VAE slicing decodes one face at a time
  (tiling starts above 1024 px, so it does nothing at 512).
- ``8gb``: sequential offload: a layer's weights move in right before it runs, so at most the
  largest layer (the bigG token embedding) is resident besides the activations.

Not counted: the CUDA context and cuBLAS workspace (about 0.3-0.6 GiB), allocator fragmentation,
and attention kernels' workspaces. ``bench/gpu_speed.py --presets`` measures the same on a GPU.

    python bench/memory_presets.py                 # batches 1 and 4, prints a Markdown table (about 2 min)
    python bench/memory_presets.py --tiny          # the tiny model at 64 px: checks the harness only
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_speed import (  # noqa: E402
    CLIP_BIGG_CONFIG,
    CLIP_L_CONFIG,
    CONTROLNET_EMBEDDING_CHANNELS,
    SDXL_UNET_CONFIG,
    SDXL_VAE_CONFIG,
)

from authface_core.pipeline.constants import MEMORY_PRESETS  # noqa: E402

GIB = 2**30
FACE_SIZE, TINY_FACE_SIZE, LATENT_SCALE, TOKENS = 512, 64, 8, 77
DENOISER_DTYPE = torch.float16  # the release's dtype for the text encoders, UNet and ControlNet; the VAE is fp32


def build_fake_models(tiny: bool = False) -> dict[str, torch.nn.Module]:
    """The five models at full size as fake tensors, in the release's dtypes (call inside FakeTensorMode); with
    ``tiny`` the tiny test model, all in fp16."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from authface_core.pipeline.tiny import build_tiny_components

    torch.set_default_dtype(DENOISER_DTYPE)
    if tiny:
        try:
            components = build_tiny_components()
        finally:
            torch.set_default_dtype(torch.float32)
        names = ("text_encoder", "text_encoder_2", "unet", "controlnet", "vae")
        return {name: components[name].eval() for name in names}
    try:
        unet = UNet2DConditionModel(**SDXL_UNET_CONFIG)
        controlnet = ControlNetModel.from_unet(
            unet, conditioning_embedding_out_channels=CONTROLNET_EMBEDDING_CHANNELS, load_weights_from_unet=False
        )
        text_encoder = CLIPTextModel(CLIPTextConfig(**CLIP_L_CONFIG))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_BIGG_CONFIG))
    finally:
        torch.set_default_dtype(torch.float32)
    vae = AutoencoderKL(**SDXL_VAE_CONFIG)
    models = {"text_encoder": text_encoder, "text_encoder_2": text_encoder_2, "unet": unet, "controlnet": controlnet}
    return {name: model.eval() for name, model in (models | {"vae": vae}).items()}


def weight_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def largest_layer_bytes(module: torch.nn.Module) -> int:
    """The weights of the largest module without children: what sequential offload holds at once."""
    leaves = [m for m in module.modules() if not list(m.children())]
    return max(weight_bytes(m) for m in leaves)


def activation_peak(models: list[torch.nn.Module], run) -> int:
    """Peak live bytes of ``run()`` beyond the weights of ``models`` (counted by MemTracker on fake tensors)."""
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    tracker.track_external(*models)
    with torch.no_grad(), tracker:
        run()
    (peak,) = tracker.get_tracker_snapshot("peak").values()
    return peak["Total"] - sum(weight_bytes(m) for m in models)


def stage_activations(models: dict, batch: int, face_size: int = FACE_SIZE) -> dict[str, int]:
    """Activation peak of each stage of a guided restoration of ``batch`` faces of ``face_size`` px."""
    rows, latent = 2 * batch, face_size // LATENT_SCALE
    unet, controlnet, vae = models["unet"], models["controlnet"], models["vae"]
    pooled_width = models["text_encoder_2"].config.projection_dim
    ids = torch.zeros(batch, TOKENS, dtype=torch.long)
    sample = torch.randn(rows, 4, latent, latent, dtype=DENOISER_DTYPE)
    text = torch.randn(rows, TOKENS, unet.config.cross_attention_dim, dtype=DENOISER_DTYPE)
    added = {
        "text_embeds": torch.randn(rows, pooled_width, dtype=DENOISER_DTYPE),
        "time_ids": torch.randn(rows, 6, dtype=DENOISER_DTYPE),
    }
    control = torch.rand(rows, 3, face_size, face_size, dtype=DENOISER_DTYPE)

    def controlnet_step():
        return controlnet(
            sample, 500, encoder_hidden_states=text, controlnet_cond=control, added_cond_kwargs=added, return_dict=False
        )

    def denoise_step():
        down, mid = controlnet_step()
        unet(
            sample,
            500,
            encoder_hidden_states=text,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            added_cond_kwargs=added,
        )

    def decode(faces: int):
        return lambda: vae.decode(torch.randn(faces, 4, latent, latent, dtype=vae.dtype))

    return {
        "text_encoder": activation_peak([models["text_encoder"]], lambda: models["text_encoder"](ids)),
        "text_encoder_2": activation_peak(
            [models["text_encoder_2"]], lambda: models["text_encoder_2"](ids, output_hidden_states=True)
        ),
        "controlnet": activation_peak([controlnet], controlnet_step),
        "denoise": activation_peak([unet, controlnet], denoise_step),
        "decode": activation_peak([vae], decode(batch)),
        "decode_sliced": activation_peak([vae], decode(1)),
    }


def preset_peaks(models: dict, activations: dict[str, int]) -> dict[str, dict[str, int]]:
    """Per preset: {stage: resident weights + activations} (module doc)."""
    w = {name: weight_bytes(model) for name, model in models.items()}
    layer = {name: largest_layer_bytes(model) for name, model in models.items()}
    a = activations
    return {
        "full": {
            "text": sum(w.values()) + max(a["text_encoder"], a["text_encoder_2"]),
            "denoise": sum(w.values()) + a["denoise"],
            "decode": sum(w.values()) + a["decode"],
        },
        "12gb": {
            "text": max(w["text_encoder"] + a["text_encoder"], w["text_encoder_2"] + a["text_encoder_2"]),
            # The ControlNet runs first while text_encoder_2 is still resident; the UNet's hook offloads it.
            "denoise": max(
                w["text_encoder_2"] + w["controlnet"] + a["controlnet"], w["unet"] + w["controlnet"] + a["denoise"]
            ),
            "decode": w["controlnet"] + w["vae"] + a["decode_sliced"],
        },
        "8gb": {
            "text": max(layer["text_encoder"] + a["text_encoder"], layer["text_encoder_2"] + a["text_encoder_2"]),
            "denoise": max(layer["unet"], layer["controlnet"]) + a["denoise"],
            "decode": layer["vae"] + a["decode_sliced"],
        },
    }


def markdown(rows: list[tuple[int, dict, dict]], weights: dict[str, int], face_size: int) -> str:
    total = sum(weights.values()) / GIB
    parts = ", ".join(f"{name} {size / GIB:.2f}" for name, size in weights.items())
    lines = [
        f"Counted peak GPU memory (GiB) per memory preset, {face_size} px, CFG on, fp16 (VAE fp32); weights "
        f"{total:.2f} GiB ({parts}); CUDA context not included.",
        "",
        "| preset | batch | text | denoise | decode | peak |",
        "|---|---|---|---|---|---|",
    ]
    for batch, peaks, _ in rows:
        for preset in MEMORY_PRESETS:
            stages = peaks[preset]
            cells = " | ".join(f"{stages[s] / GIB:.2f}" for s in ("text", "denoise", "decode"))
            lines.append(f"| {preset} | {batch} | {cells} | **{max(stages.values()) / GIB:.2f}** |")
    lines += ["", "Activation peaks (GiB): " + "; ".join(
        f"batch {batch}: " + ", ".join(f"{k} {v / GIB:.2f}" for k, v in activations.items())
        for batch, _, activations in rows
    )]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[tuple[int, dict, dict]]:
    from torch._subclasses.fake_tensor import FakeTensorMode

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4], help="faces per call (default 1 4)")
    parser.add_argument("--tiny", action="store_true", help="the tiny model at 64 px (checks the harness)")
    args = parser.parse_args(argv)
    face_size = TINY_FACE_SIZE if args.tiny else FACE_SIZE
    with FakeTensorMode():
        models = build_fake_models(args.tiny)
        rows = []
        for batch in args.batches:
            activations = stage_activations(models, batch, face_size)
            rows.append((batch, preset_peaks(models, activations), activations))
    print(markdown(rows, {name: weight_bytes(model) for name, model in models.items()}, face_size))
    return rows


if __name__ == "__main__":
    main()
