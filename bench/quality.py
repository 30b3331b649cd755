"""The whole quality loop: degrade a folder of HQ faces, restore it, evaluate, write the table and a plot.

    python bench/quality.py --model tiny                          # CPU smoke run, about a minute
    python bench/quality.py --model Ethanliang99/AuthFace --count 100 --size 512 --steps 50 \\
        --sweep fidelity --values 0,0.25,0.5,0.75,1 -o bench/out/authface

1. ``build_degraded_set`` writes ``OUT/set/{hq,lq}/`` and ``manifest.json`` (preset, seed, the
   parameters drawn per image), CelebA-Test style.
2. The model restores ``lq/`` once per value of the swept setting (``fidelity`` or ``steps``)
   into ``OUT/restored/<setting>_<value>/`` (aligned path, fixed seed).
3. ``evaluate_folders`` scores the degraded inputs (``lq``, the baseline) and every restored
   folder against ``hq/``; ``OUT/report/`` gets ``results.md``, ``results.csv``,
   ``per_image.csv`` and the plot of ``--plot-metric`` against the setting.

With ``--model tiny`` (random weights) the numbers only show that the loop runs end to end; they
say nothing about AuthFace's quality.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from authface_core.degradations import PRESETS, build_degraded_set  # noqa: E402
from authface_core.io import list_images, load_rgb, save_image  # noqa: E402
from authface_core.metrics.evaluate import EvaluationConfig, evaluate_folders  # noqa: E402
from authface_core.metrics.report import save_report  # noqa: E402
from authface_core.pipeline.loading import load_pipeline  # noqa: E402
from authface_core.restore import RestoreConfig, restore_faces  # noqa: E402

SWEEPS = {"fidelity": float, "steps": int}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--hq",
        type=Path,
        default=REPO_ROOT.parent / "shared" / "faces" / "hq_aligned",
        help="folder of clean aligned faces (default ../shared/faces/hq_aligned)",
    )
    parser.add_argument("--count", type=int, default=3, help="how many faces of --hq to use, in name order (default 3)")
    parser.add_argument("--size", type=int, default=256, help="face size in px, a multiple of 8 (default 256)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="gfpgan", help="degradation preset")
    parser.add_argument("--seed", type=int, default=0, help="seed of the degradations and of the sampler")
    parser.add_argument("--model", default="tiny", help="'tiny', a Hub id or a local checkpoint folder")
    parser.add_argument("--steps", type=int, default=4, help="sampler steps when the sweep is over fidelity")
    parser.add_argument("--fidelity", type=float, default=0.0, help="fidelity when the sweep is over steps")
    parser.add_argument("--scheduler", default="ddpm", help="sampler (ddpm, dpmpp, unipc, ddim, euler)")
    parser.add_argument("--sweep", choices=sorted(SWEEPS), default="fidelity", help="setting to vary")
    parser.add_argument("--values", default="0,0.5,1", help="comma-separated values of the swept setting")
    parser.add_argument("--learned", default="none", help="learned metrics to try through pyiqa, comma-separated")
    parser.add_argument("--no-identity", action="store_true", help="skip the dlib identity metrics")
    parser.add_argument("--plot-metric", default="psnr_y", help="metric plotted against the setting")
    parser.add_argument("-o", "--out", type=Path, default=REPO_ROOT / "bench" / "out" / "quality", help="output folder")
    args = parser.parse_args(argv)
    args.values = [SWEEPS[args.sweep](v) for v in args.values.split(",") if v.strip()]
    if not args.values:
        parser.error("--values needs at least one value")
    if args.count < 1:
        parser.error(f"--count must be at least 1, got {args.count}")
    return args


def restore_folder(pipe, lq_dir: Path, out_dir: Path, config: RestoreConfig) -> float:
    """Restore every face of ``lq_dir`` into ``out_dir`` (same names); returns seconds per face."""
    paths = list_images([lq_dir])
    faces = np.stack([load_rgb(path) for path in paths])  # (N, S, S, 3) uint8
    start = time.perf_counter()
    restored = restore_faces(pipe, faces, config)
    seconds = (time.perf_counter() - start) / len(paths)
    for path, face in zip(paths, restored, strict=True):
        save_image(out_dir / path.name, face)
    return seconds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    hq_paths = list_images([args.hq])[: args.count]
    if not hq_paths:
        raise SystemExit(f"{args.hq}: no images")
    benchmark_set = build_degraded_set(hq_paths, args.out / "set", args.preset, args.seed, args.size)
    pipe = load_pipeline(args.model)
    base_config = RestoreConfig(
        num_inference_steps=args.steps,
        fidelity=args.fidelity,
        seed=args.seed,
        scheduler=args.scheduler,
        face_size=args.size,
        aligned=True,
        check_identity=False,
    )
    # One 1-step call first, so that one-time setup (allocations, kernel choice) is not timed.
    warm_up = load_rgb(list_images([benchmark_set / "lq"])[0])[None]
    restore_faces(pipe, warm_up, dataclasses.replace(base_config, num_inference_steps=1))
    method_dirs = [benchmark_set / "lq"]
    timings = {}
    swept_field = "fidelity" if args.sweep == "fidelity" else "num_inference_steps"  # RestoreConfig's name
    for value in tqdm(args.values, desc=f"Restoring over {args.sweep}", unit="setting"):
        restore_config = dataclasses.replace(base_config, **{swept_field: value})
        out_dir = args.out / "restored" / f"{args.sweep}_{value:g}"
        timings[out_dir.name] = restore_folder(pipe, benchmark_set / "lq", out_dir, restore_config)
        method_dirs.append(out_dir)
    evaluation_config = EvaluationConfig(
        gt_dir=benchmark_set / "hq", identity=not args.no_identity, learned=args.learned
    )
    report = evaluate_folders(method_dirs, evaluation_config)
    title = (
        f"{args.model} on {len(hq_paths)} {args.hq.name} faces at {args.size} px, {args.preset} degradation "
        f"(seed {args.seed}), sweep over {args.sweep}"
    )
    files = save_report(report, args.out / "report", plot_metric=args.plot_metric, x_label=args.sweep, title=title)
    print(files.markdown.read_text())
    print("restoration time per face: " + ", ".join(f"{name} {s:.2f} s" for name, s in timings.items()))
    if getattr(pipe, "is_smoke_test_model", False):
        print("note: the tiny model has random weights; these numbers only show that the loop runs")
    print(f"wrote {files.markdown}, {files.csv}, {files.per_image_csv}, {files.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
