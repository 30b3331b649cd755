"""``restore``: restore the faces of photos (or aligned face crops) into an output folder.

Each input ``a/b.jpg`` gives ``OUTDIR/b.png`` (inputs found in a folder keep their path below that
folder) and a JSON sidecar ``OUTDIR/b.json`` with the settings and the per-face results. Outputs
that already exist with their sidecar are skipped, so an interrupted run resumes; a bad file is
reported and skipped, and the exit status is 1 if any input failed.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

HELP = "Restore faces in photos or aligned crops with AuthFace (folders, resume, JSON sidecars)."
SMOKE_TEST_WARNING = "smoke-test model with random weights: this output is not a restoration"
# --seed value that asks for a freshly drawn seed (reported in the sidecar).
DRAW_SEED_FLAG = -1


def add_arguments(parser) -> None:
    """The ``restore`` flags; the defaults shown are the released settings of :class:`RestoreConfig`."""
    from ..pipeline.constants import (
        COLOR_FIX_METHODS,
        DEFAULT_MODEL_ID,
        MAX_INFERENCE_STEPS,
        MODEL_ENV_VAR,
        SCHEDULER_NAMES,
    )
    from ..restore import FACE_SELECTION_MODES, MAX_UPSCALE, RELEASED_PRESET

    defaults = RELEASED_PRESET
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (searched recursively)")
    parser.add_argument("-o", "--output-dir", required=True, help="folder for restored images and their .json sidecars")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--model",
        help="Hub id, local checkpoint folder, or 'tiny' (random smoke-test model); "
        f"default ${MODEL_ENV_VAR} or {DEFAULT_MODEL_ID}",
    )
    model.add_argument("--revision", help="Hub branch, tag or commit")
    model.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    model.add_argument(
        "--dtype", choices=("fp16", "bf16", "fp32"), help="default fp16 on GPU (as released), fp32 on CPU"
    )
    model.add_argument(
        "--low-memory", action="store_true", help="the 12 GB memory preset: model CPU offload + VAE slicing/tiling"
    )
    model.add_argument(
        "--compile", action="store_true", help="torch.compile the UNet and ControlNet (fast path; slow first call)"
    )
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument(
        "--fast", action="store_true", help="the fast preset (DPM-Solver++, 20 steps); explicit flags win"
    )
    sampling.add_argument(
        "--steps",
        type=int,
        help=f"denoising steps, 1 to {MAX_INFERENCE_STEPS} (default {defaults.num_inference_steps})",
    )
    sampling.add_argument(
        "--fidelity",
        type=float,
        help=f"0 = released (full prior) ... 1 = stay with the input (default {defaults.fidelity:g})",
    )
    sampling.add_argument(
        "--guidance", type=float, help=f"classifier-free guidance scale (default {defaults.guidance_scale:g})"
    )
    sampling.add_argument(
        "--seed", type=int, help=f"random seed (default {defaults.seed}; {DRAW_SEED_FLAG} draws a fresh one)"
    )
    sampling.add_argument("--scheduler", choices=SCHEDULER_NAMES, help=f"default {defaults.scheduler} (as released)")
    sampling.add_argument("--prompt", help="positive prompt (default: the released one)")
    sampling.add_argument("--negative-prompt", help="negative prompt (default: the released one)")
    sampling.add_argument("--color-fix", choices=COLOR_FIX_METHODS, help=f"default {defaults.color_fix} (as released)")
    faces = parser.add_argument_group("faces")
    faces.add_argument("--aligned", action="store_true", help="inputs are already aligned face crops (no detection)")
    faces.add_argument(
        "--face-size", type=int, help=f"aligned face size in px, a multiple of 8 (default {defaults.face_size})"
    )
    faces.add_argument(
        "--select", choices=FACE_SELECTION_MODES, help=f"which faces to restore (default {defaults.face_selection})"
    )
    faces.add_argument(
        "--min-face-size", type=int, help=f"skip faces smaller than this many px (default {defaults.min_face_size})"
    )
    faces.add_argument(
        "--upscale", type=int, help=f"output scale of the whole photo, 1 to {MAX_UPSCALE} (default {defaults.upscale})"
    )
    faces.add_argument("--batch-size", type=int, help=f"faces per pipeline call (default {defaults.max_batch_size})")
    faces.add_argument("--no-identity-check", action="store_true", help="skip the authenticity report per face")
    parser.add_argument("--overwrite", action="store_true", help="restore again even where an output exists")


# CLI flag -> RestoreConfig field, for the flags that map one to one.
_FLAG_FIELDS = {
    "steps": "num_inference_steps",
    "fidelity": "fidelity",
    "guidance": "guidance_scale",
    "scheduler": "scheduler",
    "prompt": "prompt",
    "negative_prompt": "negative_prompt",
    "color_fix": "color_fix",
    "face_size": "face_size",
    "select": "face_selection",
    "min_face_size": "min_face_size",
    "upscale": "upscale",
    "batch_size": "max_batch_size",
}


def config_from_args(args):
    """The RestoreConfig the flags ask for: released defaults (or the fast preset), then each flag given."""
    from ..restore import FAST_PRESET, RELEASED_PRESET

    base = FAST_PRESET if args.fast else RELEASED_PRESET
    changes = {field: getattr(args, flag) for flag, field in _FLAG_FIELDS.items() if getattr(args, flag) is not None}
    if args.seed is not None:
        changes["seed"] = None if args.seed == DRAW_SEED_FLAG else args.seed
    return dataclasses.replace(base, aligned=args.aligned, check_identity=not args.no_identity_check, **changes)


def output_paths(inputs: list[str], output_dir: Path) -> list[tuple[Path, Path]]:
    """(input image, output PNG) pairs; images found in a folder keep their path relative to it."""
    from ..io import list_images

    pairs = []
    for item in map(Path, inputs):
        if item.is_dir():
            pairs += [(path, output_dir / path.relative_to(item).with_suffix(".png")) for path in list_images([item])]
        else:
            pairs.append((item, output_dir / f"{item.stem}.png"))
    return pairs


def sidecar_record(input_path: Path, output_path: Path, model: str, result, seconds: float) -> dict:
    """The JSON record of one restoration: settings used and what happened to each face."""
    faces = [
        {
            "index": face.index,
            "box": face.box.to_dict() if face.box is not None else None,
            "authenticity": dataclasses.asdict(face.authenticity) if face.authenticity is not None else None,
        }
        for face in result.faces
    ]
    record = {
        "input": str(input_path),
        "output": str(output_path),
        "model": model,
        "smoke_test_model": result.smoke_test_model,
        "settings": result.config.to_dict(),
        "output_size": [result.image.shape[1], result.image.shape[0]],
        "faces": faces,
        "skipped_faces": [{"box": box.to_dict(), "reason": reason} for box, reason in result.skipped],
        "seconds": round(seconds, 3),
    }
    if result.smoke_test_model:
        record["warning"] = SMOKE_TEST_WARNING
    return record


def run(args) -> int:
    """Restore every input; exit status 0, 1 if any input failed, 2 for bad flags or no model."""
    from ..batch import SkipInput, run_batch
    from ..errors import AuthFaceError
    from ..io import atomic_write_bytes, load_image, save_image
    from ..pipeline.loading import load_pipeline, resolve_model
    from ..restore import restore_image

    try:
        config = config_from_args(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    model = resolve_model(args.model)
    try:
        pipe = load_pipeline(
            model,
            revision=args.revision,
            device=args.device,
            dtype=args.dtype,
            memory="12gb" if args.low_memory else "full",
            compile_models=args.compile,
        )
    except (AuthFaceError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if pipe.is_smoke_test_model:
        print(f"warning: {model}: {SMOKE_TEST_WARNING}", file=sys.stderr)
    output_dir = Path(args.output_dir)
    targets = dict(output_paths(args.inputs, output_dir))

    def process(path: Path) -> Path:
        output_path = targets[path]
        sidecar_path = output_path.with_suffix(".json")
        if not args.overwrite and output_path.is_file() and sidecar_path.is_file():
            raise SkipInput(f"{output_path} exists")
        start = time.perf_counter()
        result = restore_image(load_image(path), pipe, config)
        save_image(output_path, result.image, result.alpha)
        record = sidecar_record(path, output_path, model, result, time.perf_counter() - start)
        atomic_write_bytes(sidecar_path, json.dumps(record, indent=2).encode())
        return output_path

    report = run_batch(list(targets), process, desc="restore")
    done, skipped, failed = len(report.results), len(report.skipped), len(report.failures)
    print(f"{done} restored, {skipped} already done, {failed} failed -> {output_dir}", file=sys.stderr)
    return report.exit_code
