"""The annotation app: builds without launching, and a real browser reviews a pair with the keyboard."""

from __future__ import annotations

import re
import socket
import tempfile
from pathlib import Path

import gradio as gr
import pytest

from annotate.app import build_demo
from authface_core.annotation.reviewers import ReviewerPolicy
from authface_core.annotation.session import Workspace

from .conftest import make_pairs_folder


@pytest.fixture()
def workspace(shared_faces, tmp_path):
    folder = make_pairs_folder(shared_faces, tmp_path / "shoot", photos=("gpen_ffhq_00006.png", "ddnm_00258.png"))
    workspace = Workspace(tmp_path / "project")
    report, added = workspace.ingest(next(iter(folder.values())).parent)
    assert added == 2
    yield workspace
    workspace.close()


def test_build_demo_does_not_launch(workspace):
    demo = build_demo(workspace, ReviewerPolicy())
    assert isinstance(demo, gr.Blocks) and not demo.is_running


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.browser
@pytest.mark.browser
def test_review_a_pair_with_the_keyboard_in_chromium(chromium, workspace, tmp_path):
    from playwright.sync_api import expect

    demo = build_demo(workspace, ReviewerPolicy(allowed=frozenset({"ana"})))
    port = _free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        allowed_paths=[str(workspace.root)],
    )
    screenshot = Path(tempfile.mkdtemp(prefix="annotate-browser-")) / "review-screen.png"
    try:
        page = chromium.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/", timeout=60_000)
        counters = page.locator("#counters")
        expect(counters).to_contain_text("To review 2", timeout=30_000)
        page.locator("#reviewer-name textarea, #reviewer-name input").first.fill("ana")
        page.locator("#start-button").click()
        expect(page.locator("#facts")).to_contain_text("Original", timeout=60_000)
        expect(page.locator("#ab-viewer img.ab-original")).to_be_visible(timeout=30_000)

        page.locator("#counters").click()  # focus out of the name field: keys are shortcuts now
        page.keyboard.press("f")
        expect(page.locator("#ab-viewer")).to_have_attribute("data-side", "retouched")
        page.keyboard.press("a")
        expect(counters).to_contain_text("Accepted 1", timeout=60_000)
        expect(counters).to_contain_text("To review 1")
        expect(page.locator("#ab-viewer")).to_have_attribute("data-side", "original")  # the next pair
        page.screenshot(path=str(screenshot), full_page=True)
    finally:
        demo.close()
    print(f"screenshot: {screenshot}")
    assert screenshot.stat().st_size > 10_000
    decisions = workspace.store.decisions()
    assert [(d.decision.reviewer, d.decision.verdict) for d in decisions] == [("ana", "accept")]
    assert re.fullmatch(r"[0-9a-f]{16}", decisions[0].decision.pair_id)
