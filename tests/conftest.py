"""Shared fixtures: the real face photos of ../shared/faces, and a real photo shipped by scikit-image.

Tests never touch the network. A fresh clone without ../shared skips the tests that need it,
with the reason shown in pytest's summary (``-ra``); the core set still runs on
``skimage.data.astronaut()``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_FACES = Path(os.environ.get("AUTHFACE_TEST_FACES", REPO_ROOT.parent / "shared" / "faces"))


@pytest.fixture(scope="session")
def shared_faces() -> Path:
    """The ../shared/faces folder (see its README); skips the test where this checkout has none."""
    if not (SHARED_FACES / "MANIFEST.csv").is_file():
        pytest.skip(f"real face photos not found at {SHARED_FACES} (a fresh clone has no ../shared/faces)")
    return SHARED_FACES


CHROMIUM = Path("/usr/bin/chromium")
# Headless flags for this closed network: no background connections, updates or first-run pages.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture
def chromium():
    """Debian's chromium (``apt-get install -y chromium``) driven by Playwright, headless.

    Never ``playwright install``, which downloads a browser; skips with that reason where
    /usr/bin/chromium is missing.
    """
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """A real portrait (Eileen Collins, NASA, public domain) shipped by scikit-image: (512, 512, 3) uint8."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session", autouse=True)
def single_torch_thread():
    """One intra-op thread: the tests' tiny models gain nothing from threads, and on a busy 2-core
    machine two spinning OpenMP threads per process made them up to 25x slower (measured here)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
