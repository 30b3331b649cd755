"""Face geometry on an 8K photograph: load, detect, align every face, paste back.

Upscales a multi-face photo of ../shared/faces/whole to 7680 px wide, saves it as a JPEG, then
times each stage (median of --runs) and reports peak memory. Usage:

    python bench/faces_8k.py [--photo PATH] [--runs 5]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import cv2

from authface_core.faces import align_face, detect_faces, paste_faces
from authface_core.io import load_rgb, save_image

DEFAULT_PHOTO = Path(__file__).resolve().parents[1].parent / "shared" / "faces" / "whole" / "diffbir_01.jpg"
TARGET_WIDTH = 7680


def make_8k_photo(photo: Path, folder: Path) -> Path:
    rgb = load_rgb(photo)
    height = round(rgb.shape[0] * TARGET_WIDTH / rgb.shape[1])
    big = cv2.resize(rgb, (TARGET_WIDTH, height), interpolation=cv2.INTER_CUBIC)
    path = folder / "photo_8k.jpg"
    save_image(path, big, quality=92)
    return path


def run_once(path: Path) -> tuple[dict[str, float], int]:
    times = {}
    start = time.perf_counter()
    rgb = load_rgb(path)
    times["load (JPEG decode)"] = time.perf_counter() - start
    start = time.perf_counter()
    faces = detect_faces(rgb)
    times["detect + 68 landmarks"] = time.perf_counter() - start
    start = time.perf_counter()
    aligned = [align_face(rgb, face, 512) for face in faces]
    times["align (512 crops)"] = time.perf_counter() - start
    start = time.perf_counter()
    paste_faces(rgb, [a.image for a in aligned], [a.affine for a in aligned])
    times["paste back"] = time.perf_counter() - start
    return times, len(faces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO, help="a multi-face photo to upscale")
    parser.add_argument("--runs", type=int, default=5, help="timed runs (median reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = make_8k_photo(args.photo, Path(folder))
        run_once(path)  # warm-up: loads dlib's models
        results = []
        for _ in range(args.runs):
            results.append(run_once(path))
        tracemalloc.start()
        run_once(path)
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    times = [r[0] for r in results]
    width, height = TARGET_WIDTH, round(load_rgb(args.photo).shape[0] * TARGET_WIDTH / load_rgb(args.photo).shape[1])
    print(
        f"photo: {args.photo.name} upscaled to {width}x{height} ({width * height / 1e6:.1f} MP), {results[0][1]} faces"
    )
    total = [sum(t.values()) for t in times]
    for stage in times[0]:
        print(f"  {stage:24s} {statistics.median(t[stage] for t in times):6.3f} s (median of {args.runs})")
    print(f"  {'total':24s} {statistics.median(total):6.3f} s")
    print(
        f"peak memory: {traced_peak / 2**20:.0f} MiB traced by Python allocators, "
        f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB"
    )


if __name__ == "__main__":
    main()
