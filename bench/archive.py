"""Faces per second of an archive run: 1 process against N (``accelerate launch``), cross-photo batching off and on.

Each measurement runs the archive machinery (``authface_core.archive.run.run_archive``: the split between
processes, the engine's worker threads and bounded queue, Parquet shards written to a temporary folder) over
the same photos, after the model is loaded and one photo has warmed it up, and counts the faces restored per
second of wall time (all processes together). What the ratios show, not the absolute figures, is the point on
a CPU: the tiny model's denoiser costs milliseconds, so detection and paste-back weigh far more than on a GPU.

    python bench/archive.py                                  # tiny model, CPU: 1 vs 2 processes, batching off/on
    python bench/archive.py --full-size --processes 1 8      # SDXL size, random weights, on 8 GPUs (see gpu_speed.py)
    python bench/archive.py --photos ../shared/faces/whole --json archive.json

On a CPU every process runs its model on one thread (``OMP_NUM_THREADS=1``): the other cores are left to the
worker threads and the other processes, and OpenMP threads that spin while other threads need the cores slow a
shared machine down many times (measured here: 16 photos in 33 s with 2 threads, 3.3 s with 1, on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_PHOTOS = 16
TINY_FACE_SIZE = 64


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="process counts to compare (1 2)")
    parser.add_argument("--full-size", action="store_true", help="SDXL + ControlNet at full size, random weights")
    parser.add_argument("--photos", type=Path, help="a folder of photos (default: astronaut photos, one face each)")
    parser.add_argument(
        "--count", type=int, default=DEFAULT_PHOTOS, help=f"astronaut photos made (default {DEFAULT_PHOTOS})"
    )
    parser.add_argument("--steps", type=int, default=4, help="denoising steps (default 4; the release runs 50)")
    parser.add_argument("--face-size", type=int, help=f"face crop side (default {TINY_FACE_SIZE} tiny, 512 full size)")
    parser.add_argument("--batch-size", type=int, default=4, help="faces per model call (default 4)")
    parser.add_argument("--group-size", type=int, default=4, help="photos per cross-photo group (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="threads per CPU stage (default 2)")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # a launched process: write results here
    return parser.parse_args(argv)


def make_photos(folder: Path, count: int) -> Path:
    """``count`` photos of scikit-image's astronaut, shifted and mirrored: one face each."""
    import numpy as np
    from skimage import data

    from authface_core.io import save_image

    astronaut = data.astronaut()
    for index in range(count):
        photo = np.roll(astronaut, 5 * index, axis=1)  # the face stays whole
        save_image(folder / f"{index:04d}.png", np.ascontiguousarray(photo[:, ::-1] if index % 2 else photo))
    return folder


def build_pipe(full_size: bool, device: str):
    """The tiny model, or SDXL + ControlNet at full size with random weights (bench/gpu_speed.py), in fp16 on a GPU."""
    import torch

    if not full_size:
        from authface_core.pipeline.loading import load_pipeline

        return load_pipeline("tiny", device=device, dtype="fp32")
    from gpu_speed import build_pipeline, set_attention

    pipe = build_pipeline(False, torch.device(device), torch.float16 if device.startswith("cuda") else torch.float32)
    set_attention(pipe, "sdpa")
    return pipe


def worker(args) -> None:
    """One launched process: restore the photos twice (cross-photo batching off, then on) and, on the main
    process, write faces per second to ``args.worker``."""
    import dataclasses

    import pyarrow.parquet as pq

    from authface_core.archive.engine import Batching, restore_in_order
    from authface_core.archive.processes import Processes
    from authface_core.archive.run import run_archive
    from authface_core.archive.shards import ParquetShards
    from authface_core.archive.sources import folder_items
    from authface_core.batch import scan_inputs
    from authface_core.restore import RestoreConfig

    processes = Processes.start(None)
    device = processes.device_for(None) or ("cuda" if __import__("torch").cuda.is_available() else "cpu")
    pipe = build_pipe(args.full_size, device)
    face_size = args.face_size or (512 if args.full_size else TINY_FACE_SIZE)
    config = RestoreConfig(
        face_size=face_size, num_inference_steps=args.steps, max_batch_size=args.batch_size, check_identity=False
    )
    items = folder_items(scan_inputs([args.photos]).files)
    results = {}
    for name, group_size in (("batching off", 1), ("cross-photo batching", args.group_size)):
        batching = Batching(group_size, args.workers, queue_size=2 * args.batch_size)
        list(restore_in_order(items[:1], pipe, config, batching, encode=lambda *a: None))  # warm-up
        with tempfile.TemporaryDirectory() as scratch:
            out = Path(processes.broadcast(scratch))
            outputs = ParquetShards(out, 64, lambda item, result, seconds: {})
            processes.barrier()
            start = time.perf_counter()
            report = run_archive(items, None, outputs, pipe, config, batching, processes, note=lambda m: None)
            processes.barrier()
            seconds = time.perf_counter() - start
            if processes.is_main:
                faces = sum(sum(pq.read_table(s, columns=["faces"]).column("faces").to_pylist())
                            for s in (out / "data").glob("*.parquet"))  # fmt: skip
                results[name] = {"faces": faces, "photos": report.restored, "seconds": seconds,
                                 "faces_per_s": faces / seconds}  # fmt: skip
            processes.barrier()
    if processes.is_main:
        record = {"processes": processes.count, "device": device, "config": dataclasses.asdict(config), **results}
        args.worker.write_text(json.dumps(record))


def launch(args, count: int, result: Path) -> dict:
    """Run this script as ``count`` processes (``accelerate launch`` when more than one) and read the result."""
    import torch

    script = [str(Path(__file__).resolve()), "--worker", str(result), "--photos", str(args.photos)]
    script += ["--steps", str(args.steps), "--batch-size", str(args.batch_size), "--group-size", str(args.group_size)]
    script += ["--workers", str(args.workers)] + (["--full-size"] if args.full_size else [])
    script += ["--face-size", str(args.face_size)] if args.face_size else []
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["OMP_NUM_THREADS"] = "1"  # see the module doc
    if count == 1:
        command = [sys.executable, *script]
    else:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(count),
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", *script]  # fmt: skip
    subprocess.run(command, env=env, check=True)
    return json.loads(result.read_text())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        if args.photos is None:
            args.photos = make_photos(Path(scratch) / "photos", args.count)
        records = [launch(args, count, Path(scratch) / f"result-{count}.json") for count in args.processes]
    base = records[0]
    header = f"{'processes':>9s}  {'batching':22s} {'faces':>5s} {'seconds':>8s} {'faces/s':>8s}"
    print(f"\n{header}  vs {base['processes']} process")
    for record in records:
        for name in ("batching off", "cross-photo batching"):
            row = record[name]
            ratio = row["faces_per_s"] / base[name]["faces_per_s"]
            print(f"{record['processes']:9d}  {name:22s} {row['faces']:5d} {row['seconds']:8.2f} "
                  f"{row['faces_per_s']:8.2f}  x{ratio:.2f}")  # fmt: skip
        gain = record["cross-photo batching"]["faces_per_s"] / record["batching off"]["faces_per_s"]
        print(f"{'':9s}  cross-photo batching on / off: x{gain:.2f}")
    model = "SDXL size, random weights" if args.full_size else "TINY RANDOM MODEL: ratios only"
    print(f"device: {base['device']}; {model}; faces {base['config']['face_size']} px, {args.steps} steps, "
          f"batch {args.batch_size}, groups of {args.group_size}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(records, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
