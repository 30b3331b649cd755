"""Benchmark of the annotation tool on 8K pairs: time to first view, and ingest throughput.

    python bench/annotate.py [--faces ../shared/faces] [--pairs 2] [--repeats 3] [--side 7680x5760]

Builds 8K pairs (original + retouch) from real photos of ``../shared/faces/whole`` in PNG and in
JPEG, then for each format measures, with a fresh project folder:

- ingest throughput (pairs per minute): hashing, header facts, screen preview and perceptual hash;
- first view, cold: the pair's screen previews are not cached (``previews/`` removed), so opening
  it decodes both 8K files; this is what a reviewer would wait for without ingest-time previews;
- first view, cached: the same pair once ingest (or the prefetcher) has made its previews;
- crops ready: 100% eye and mouth crops of both images (full decode + landmarks), done in the
  background while the reviewer looks at the pair.

"First view" is the server-side time from the click to the review screen's HTML being ready:
claim the pair, get both previews (handed out outside the project), build the flip viewer.
The target is under 1.5 s.
Medians of ``--repeats`` runs are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageEnhance, ImageFilter

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from annotate.app import ab_viewer_html  # noqa: E402
from authface_core.annotation.session import Workspace  # noqa: E402

PHOTOS = ("gfpgan_Blake_Lively.jpg", "diffbir_Audrey_Hepburn.jpg", "gfpgan_00.jpg", "diffbir_01.jpg")
TARGET_FIRST_VIEW_S = 1.5


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--faces",
        type=Path,
        default=REPO_ROOT.parent / "shared" / "faces",
        help="the shared faces folder (reads whole/*)",
    )
    parser.add_argument("--pairs", type=int, default=2, help="8K pairs per format for the ingest throughput")
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing; the median is reported")
    parser.add_argument("--side", default="7680x5760", help="size of the 8K photos, WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.repeats < 1:
        raise ValueError(f"--pairs and --repeats must be at least 1, got {args.pairs} and {args.repeats}")
    width, _, height = args.side.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise ValueError(f"--side must be WIDTHxHEIGHT in pixels, e.g. 7680x5760, got {args.side!r}")
    args.size = (int(width), int(height))
    return args


def make_8k_pairs(faces: Path, folder: Path, size: tuple[int, int], count: int, fmt: str) -> None:
    """``count`` pairs of ``size`` in ``fmt`` ('png' or 'jpg'): an upscaled real photo and its retouch."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        photo = Image.open(faces / "whole" / PHOTOS[index % len(PHOTOS)]).convert("RGB")
        big = photo.resize(size, Image.Resampling.BICUBIC)
        edited = ImageEnhance.Brightness(big.filter(ImageFilter.SMOOTH)).enhance(1.05)
        options = {"quality": 95} if fmt == "jpg" else {}
        big.save(folder / f"shot{index}.{fmt}", **options)
        edited.save(folder / f"shot{index}_retouched.{fmt}", **options)


def time_first_view(workspace: Workspace) -> float:
    """Seconds from 'open the next pair' to the review screen's viewer HTML being built."""
    start = time.perf_counter()
    view = workspace.open_next("bench")
    ab_viewer_html(view.original_preview, view.retouched_preview)
    elapsed = time.perf_counter() - start
    workspace.store.release("bench", view.pair_id)
    shutil.rmtree(workspace.hand_out.folder)  # the next view hands the previews out again
    workspace.hand_out.folder.mkdir()
    return elapsed


def bench_format(args, fmt: str, work: Path) -> dict[str, float]:
    """Medians of every measure for pairs in ``fmt``, each run on a fresh project folder under ``work``."""
    shoot = work / f"shoot-{fmt}"
    make_8k_pairs(args.faces, shoot, args.size, args.pairs, fmt)
    ingest_rates, cold, cached, crops = [], [], [], []
    for run in range(args.repeats):
        project = work / f"project-{fmt}-{run}"
        # ingest and views alone, no background work
        workspace = Workspace(project, source_folders=[str(shoot)], prefetch=False)
        start = time.perf_counter()
        report, _ = workspace.ingest(str(shoot))
        ingest_rates.append(len(report.pairs) / (time.perf_counter() - start) * 60)
        cached.append(time_first_view(workspace))
        shutil.rmtree(workspace.cache.root)
        cold.append(time_first_view(workspace))
        pair = workspace.store.pair(workspace.store.pair_ids()[0])
        start = time.perf_counter()
        workspace.cache.crops(pair)
        crops.append(time.perf_counter() - start)
        workspace.close()
        shutil.rmtree(project)
    return {
        "ingest pairs/min": statistics.median(ingest_rates),
        "first view, cold (s)": statistics.median(cold),
        "first view, cached (s)": statistics.median(cached),
        "crops ready (s)": statistics.median(crops),
        "file MB (original)": (shoot / f"shot0.{fmt}").stat().st_size / 1e6,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    if not (args.faces / "whole").is_dir():
        print(f"real photos not found at {args.faces}/whole; pass --faces", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-annotate-") as tmp:
        results = {fmt: bench_format(args, fmt, Path(tmp)) for fmt in ("jpg", "png")}
    width, height = args.size
    print(f"\n8K pairs {width}x{height}, {args.pairs} pairs per format, median of {args.repeats} runs\n")
    print("| measure | JPEG | PNG |")
    print("|---|---|---|")
    for measure in results["jpg"]:
        print(f"| {measure} | {results['jpg'][measure]:.2f} | {results['png'][measure]:.2f} |")
    for kind in ("cold", "cached"):
        met = all(result[f"first view, {kind} (s)"] < TARGET_FIRST_VIEW_S for result in results.values())
        print(f"first view, {kind}, under {TARGET_FIRST_VIEW_S} s for both formats: {'yes' if met else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
