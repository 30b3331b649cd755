"""Mutation check: each listed mistake, planted in a temporary copy of the repository, must fail a test.

The mutations are the release details and training rules that a review (issue 14) found no test
would catch, plus the fixes of that issue. For each, the repository's files (tracked and untracked,
not ignored) are copied to a temporary folder, one exact piece of source text is replaced, and the
tests named for it run there (``pytest -x``, the tiny model cached in that folder too). A mutation
is *caught* when those tests fail. The working tree is never written; the copy is deleted after.

    python bench/mutations.py                  # every mutation, then a Markdown table; exit 1 if one is missed
    python bench/mutations.py --only wavelet   # the mutations whose name contains "wavelet"

First the named tests run once on the unmutated copy: a failure there makes every row meaningless,
so the script stops.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARITY = ("tests/pipeline/test_parity.py",)
LOSSES = ("tests/training/test_losses.py", "tests/training/test_diffusion.py")
STAGE2_BF16 = (
    "tests/training/test_train_stage2.py::"
    "test_stage2_in_bf16_exports_frozen_parts_bit_identical_keeps_ema_and_validates_in_fp32",
)


@dataclass(frozen=True)
class Mutation:
    """Replace ``old`` (which must occur exactly once in ``path``) by ``new``; ``tests`` must then fail."""

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS = (
    # Issue 14, item 3: release details.
    Mutation(
        "released prompt: one character changed",
        "authface_core/pipeline/constants.py",
        '"hyper sharpness, perfect without deformations"',
        '"hyper sharpnes5, perfect without deformations"',
        PARITY,
    ),
    Mutation(
        '"ddpm" with timestep_spacing "trailing"',
        "authface_core/pipeline/pipeline_authface_sdxl.py",
        "(DDPMScheduler, {}),  # ddpm: as released",
        '(DDPMScheduler, {"timestep_spacing": "trailing"}),',
        PARITY,
    ),
    Mutation(
        "variance_type forced to fixed_large (loading)",
        "authface_core/pipeline/loading.py",
        'DDPMScheduler.from_pretrained(folder, subfolder="scheduler")',
        'DDPMScheduler.from_pretrained(folder, subfolder="scheduler", variance_type="fixed_large")',
        PARITY,
    ),
    Mutation(
        'variance_type forced to fixed_large ("ddpm" by name)',
        "authface_core/pipeline/pipeline_authface_sdxl.py",
        "(DDPMScheduler, {}),  # ddpm: as released",
        '(DDPMScheduler, {"variance_type": "fixed_large"}),',
        PARITY,
    ),
    Mutation(
        "wavelet levels 5 -> 4",
        "authface_core/pipeline/color_fix.py",
        "WAVELET_LEVELS = 5",
        "WAVELET_LEVELS = 4",
        PARITY,
    ),
    Mutation(
        "wavelet padding replicate -> reflect",
        "authface_core/pipeline/color_fix.py",
        'mode="replicate"',
        'mode="reflect"',
        PARITY,
    ),
    Mutation(
        "fidelity noise always at the largest t",
        "authface_core/pipeline/pipeline_authface_sdxl.py",
        "scheduler.add_noise(input_latents, noise, timesteps[:1].repeat(batch))",
        "scheduler.add_noise(input_latents, noise, scheduler.timesteps[:1].repeat(batch))",
        PARITY,
    ),
    Mutation(
        "ControlNet off when fidelity > 0",
        "authface_core/pipeline/pipeline_authface_sdxl.py",
        "conditioning_scale=controlnet_conditioning_scale,",
        "conditioning_scale=controlnet_conditioning_scale if fidelity == 0 else 0.0,",
        PARITY,
    ),
    Mutation(
        "time weight's t reversed",
        "authface_core/training/losses.py",
        "return (timesteps.float() + 0.5) / num_train_timesteps",
        "return 1 - (timesteps.float() + 0.5) / num_train_timesteps",
        LOSSES,
    ),
    Mutation(
        "Stage II time_ids all zero",
        "authface_core/training/train_controlnet.py",
        '"time_ids": sdxl_time_ids(size, torch.zeros_like(size), resolution),',
        '"time_ids": torch.zeros(batch_size, 6, device=device),',
        LOSSES,
    ),
    # Issue 14, items 1, 2 and 5: the fixes stay fixed.
    Mutation(
        "Gram style loss back to a squared difference",
        "authface_core/training/losses.py",
        "(gram_matrix(p) - gram_matrix(t)).abs().mean(dim=(1, 2))",
        "(gram_matrix(p) - gram_matrix(t)).pow(2).mean(dim=(1, 2))",
        LOSSES,
    ),
    Mutation(
        "export saves the frozen parts as training cast them",
        "authface_core/training/train_controlnet.py",
        "components = base.reload()",
        "components = {n: getattr(base, n).to('cpu') if hasattr(getattr(base, n), 'to') else getattr(base, n)"
        " for n in ('scheduler', 'tokenizer', 'tokenizer_2', 'text_encoder', 'text_encoder_2', 'vae', 'unet')}",
        STAGE2_BF16,
    ),
    Mutation(
        "validation decodes under autocast",
        "authface_core/training/validation.py",
        "torch.autocast(latents.device.type, enabled=False)",
        "torch.autocast(latents.device.type, dtype=torch.bfloat16)",
        STAGE2_BF16,
    ),
    Mutation(
        "Min-SNR weight not divided by the SNR",
        "authface_core/training/diffusion.py",
        "        return clipped / snr\n",
        "        return clipped\n",
        LOSSES,
    ),
    Mutation(
        "R1 penalty left out of the discriminator loss",
        "authface_core/training/losses.py",
        "adversarial + r1_gamma / 2 * r1)",
        "adversarial)",
        LOSSES,
    ),
    # Issue 15: reference photos and best of N.
    Mutation(
        "a face over the threshold still claims a person",
        "authface_core/references.py",
        "for r, c in zip(rows, cols, strict=True) if allowed[r, c]}",
        "for r, c in zip(rows, cols, strict=True)}",
        ("tests/test_references.py::test_matching_leaves_faces_over_the_threshold_to_nobody",),
    ),
    Mutation(
        "references that disagree are trusted",
        "authface_core/references.py",
        "if disagreement is not None and disagreement > threshold:",
        "if False:",
        ("tests/test_references.py::test_references_that_disagree_cannot_verify",),
    ),
    Mutation(
        "best of N keeps the farthest candidate",
        "authface_core/candidates.py",
        "return [score.index for score in sorted(scores, key=key)]",
        "return [score.index for score in sorted(scores, key=key, reverse=True)]",
        ("tests/test_candidates.py",),
    ),
)


def repository_files() -> list[str]:
    """Tracked and untracked-but-not-ignored files of the working tree (what a fresh copy needs)."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    return [name for name in listing.stdout.decode().split("\0") if name and (REPO / name).is_file()]


def copy_repository(destination: Path) -> None:
    for name in repository_files():
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)


def apply(mutation: Mutation, root: Path) -> None:
    """Plant the mutation in the copy at ``root``; its text must occur exactly once."""
    path = root / mutation.path
    text = path.read_text()
    count = text.count(mutation.old)
    if count != 1:
        raise ValueError(f"{mutation.name}: {mutation.path} holds the text {count} times, expected once")
    path.write_text(text.replace(mutation.old, mutation.new))


def run_tests(root: Path, tests: tuple[str, ...]) -> tuple[int, str]:
    """(pytest exit code, the failing test's name or else the last line of its output) for ``tests`` in the copy
    at ``root``."""
    faces = os.environ.get("AUTHFACE_TEST_FACES", str(REPO.parent / "shared" / "faces"))
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "AUTHFACE_CACHE": str(root / ".cache"),  # a tiny model built by mutated code stays in the copy
        "AUTHFACE_TEST_FACES": faces,
    }
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    failed = [line.split()[1].split("::")[-1] for line in lines if line.startswith(("FAILED ", "ERROR "))]
    return result.returncode, failed[0] if failed else (lines[-1] if lines else result.stderr.strip()[-200:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="run the mutations whose name contains this text")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if args.only.lower() in m.name.lower()]
    rows, missed = [], 0
    with tempfile.TemporaryDirectory(prefix="authface-mutations-") as temporary:
        pristine = Path(temporary) / "pristine"
        copy_repository(pristine)
        baseline_tests = tuple(dict.fromkeys(test for m in chosen for test in m.tests))
        code, summary = run_tests(pristine, baseline_tests)
        print(f"baseline ({len(baseline_tests)} test files/ids, unmutated): {summary}", flush=True)
        if code != 0:
            print("the tests fail without any mutation: fix them first", file=sys.stderr)
            return 2
        for index, mutation in enumerate(chosen):
            root = Path(temporary) / f"mutant-{index}"
            shutil.copytree(pristine, root)
            apply(mutation, root)
            start = time.perf_counter()
            code, summary = run_tests(root, mutation.tests)
            caught = code != 0
            missed += not caught
            rows.append((mutation, caught, summary, time.perf_counter() - start))
            print(f"{'caught' if caught else 'NOT CAUGHT'}: {mutation.name} ({summary})", flush=True)
            shutil.rmtree(root)
    print("\n| mutation | file | result: the failing test |\n|---|---|---|")
    for mutation, caught, summary, seconds in rows:
        result = f"caught: `{summary}` ({seconds:.0f} s)" if caught else f"**not caught** ({summary})"
        print(f"| {mutation.name} | `{mutation.path}` | {result} |")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
