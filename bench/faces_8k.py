"""Face geometry on an 8K photograph: load, detect, align every face, paste back.

Upscales a multi-face photo of ../shared/faces/whole to 7680 px wide, saves it as a JPEG, then
times each stage (median of --runs) and reports peak memory. Usage:

    python bench/faces_8k.py [--photo PATH] [--runs 5]
    python bench/faces_8k.py --vs-plain [--upscale 2]   # paste-back against a plain warpAffine + blendLinear

``--vs-plain`` times the project's paste-back and the plain one (bilinear warpAffine of each face and of
its soft mask over the face's box, then cv2.blendLinear) alternately on the same 8K photo and faces, and
prints both medians and their ratio: the CPU side of an archive run must keep up with the GPU.
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
import numpy as np

from authface_core.faces import align_face, detect_faces, paste_faces
from authface_core.faces.align import crop_footprint
from authface_core.faces.blend import feather_mask, upscale_affine, upscale_image
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


def plain_paste(rgb: np.ndarray, crops: list[np.ndarray], affines: list[np.ndarray], upscale: int) -> np.ndarray:
    """The textbook paste-back, for comparison: per face one bilinear warpAffine of the crop and of its mask
    into the face's box, blended with cv2.blendLinear."""
    out = upscale_image(rgb, upscale).copy()
    height, width = out.shape[:2]
    for crop, affine in zip(crops, affines, strict=True):
        affine = upscale_affine(affine, upscale)
        size = crop.shape[0]
        x0, y0, x1, y1 = crop_footprint(affine, size, margin=1)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        to_box = cv2.invertAffineTransform(affine)
        to_box[:, 2] -= (x0, y0)
        box_size = (x1 - x0, y1 - y0)
        warped = cv2.warpAffine(crop, to_box, box_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mask = cv2.warpAffine(feather_mask(size), to_box, box_size, flags=cv2.INTER_LINEAR)
        out[y0:y1, x0:x1] = cv2.blendLinear(warped, out[y0:y1, x0:x1], mask, 1.0 - mask)
    return out


def compare_with_plain(path: Path, runs: int, upscale: int) -> None:
    """Median seconds of paste_faces and of plain_paste on the same faces, run alternately, and the ratio."""
    rgb = load_rgb(path)
    aligned = [align_face(rgb, face, 512) for face in detect_faces(rgb)]
    crops, affines = [a.image for a in aligned], [a.affine for a in aligned]
    timings = {"project paste_faces": [], "plain warpAffine + blendLinear": []}
    for _ in range(runs):
        for name, paste in (
            ("project paste_faces", lambda: paste_faces(rgb, crops, affines, upscale=upscale)),
            ("plain warpAffine + blendLinear", lambda: plain_paste(rgb, crops, affines, upscale)),
        ):
            start = time.perf_counter()
            paste()
            timings[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    print(f"paste-back of {len(crops)} faces at upscale {upscale}, median of {runs} alternating runs:")
    for name, seconds in medians.items():
        print(f"  {name:32s} {seconds:6.3f} s")
    ratio = medians["project paste_faces"] / medians["plain warpAffine + blendLinear"]
    print(f"  ratio project / plain            {ratio:6.2f}  (<= 1: at least as fast)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO, help="a multi-face photo to upscale")
    parser.add_argument("--runs", type=int, default=5, help="timed runs (median reported)")
    parser.add_argument("--vs-plain", action="store_true", help="compare paste-back with a plain warp + blend")
    parser.add_argument("--upscale", type=int, default=1, help="output upscale for --vs-plain (1 to 4)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = make_8k_photo(args.photo, Path(folder))
        if args.vs_plain:
            compare_with_plain(path, args.runs, args.upscale)
            return
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
