"""Run one function over many input files: a progress bar, a bad file reported and skipped (CLI and evaluation)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tqdm.auto import tqdm

from .errors import AuthFaceError

T = TypeVar("T")


@dataclass
class BatchReport:
    """What happened to each input, in input order: results as (path, value), failures and deliberate
    skips as (path, message)."""

    results: list[tuple[Path, object]] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The process exit status: 1 if any input failed (skips are not failures), else 0."""
        return 1 if self.failures else 0


def run_batch(
    paths: Iterable[Path], process: Callable[[Path], T], *, desc: str, show_progress: bool = True
) -> BatchReport:
    """Call ``process(path)`` on each path; an :class:`AuthFaceError` (or OSError) marks that path failed and goes on.

    ``process`` may raise :class:`SkipInput` to skip a file without failing (for example, an
    output that already exists when resuming).
    """
    report = BatchReport()
    paths = list(paths)
    for path in tqdm(paths, desc=desc, unit="file", disable=not show_progress, file=sys.stderr):
        try:
            report.results.append((path, process(path)))
        except SkipInput as skip:
            report.skipped.append((path, str(skip)))
        except (AuthFaceError, OSError) as error:
            message = str(error) if str(path) in str(error) else f"{path}: {error}"
            report.failures.append((path, message))
            tqdm.write(f"error: {message}", file=sys.stderr)
    if report.failures:
        print(f"{len(report.failures)} of {len(paths)} file(s) failed:", file=sys.stderr)
        for _, message in report.failures:
            print(f"  {message}", file=sys.stderr)
    return report


class SkipInput(Exception):
    """Raised by a batch step to skip an input on purpose (not a failure)."""
