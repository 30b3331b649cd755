"""The batch runner: any exception of one file is that file's failure; a StopBatch reports the rest; Ctrl+C stops."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from authface_core.batch import SkipInput, StopBatch, run_batch

PATHS = [Path("a.jpg"), Path("b.jpg"), Path("c.jpg"), Path("d.jpg")]


def test_every_kind_of_exception_fails_only_its_file():
    def process(path: Path) -> str:
        if path.name == "a.jpg":
            cv2.resize(np.zeros((10, 65000, 3), np.uint8), (1024, 0))  # the strip's cv2.error
        if path.name == "b.jpg":
            raise KeyError("missing")
        if path.name == "c.jpg":
            raise SkipInput("done earlier")
        return path.stem

    report = run_batch(PATHS, process, desc="test", show_progress=False)
    assert report.results == [(Path("d.jpg"), "d")] and report.skipped == [(Path("c.jpg"), "done earlier")]
    assert [path for path, _ in report.failures] == [Path("a.jpg"), Path("b.jpg")]
    strip_failure = report.failures[0][1]
    assert strip_failure.startswith("a.jpg: unexpected error: OpenCV") and "inv_scale_x > 0" in strip_failure
    assert report.failures[1][1] == "b.jpg: unexpected KeyError: 'missing' (run with -v for the traceback)"
    assert report.exit_code == 1


def test_stop_batch_fails_its_file_and_reports_the_rest_as_not_attempted():
    def process(path: Path) -> None:
        if path.name == "b.jpg":
            raise StopBatch("No space left on device")

    report = run_batch(PATHS, process, desc="test", show_progress=False)
    assert [path for path, _ in report.results] == [Path("a.jpg")]
    assert [message for _, message in report.failures] == [
        "b.jpg: No space left on device",
        "c.jpg: not attempted (No space left on device)",
        "d.jpg: not attempted (No space left on device)",
    ]


def test_ctrl_c_still_stops_the_batch():
    def process(path: Path) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(PATHS, process, desc="test", show_progress=False)
