"""The annotation app in local mode: builds without launching, listens on 127.0.0.1 only, every callback
checked, and a real browser reviews a pair with the keyboard while the page's heartbeat keeps its lock."""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

import gradio as gr
import pytest

from annotate.app import build_demo, launch_options
from authface_core.annotation.config import AnnotationSettings
from authface_core.annotation.reviewers import ReviewerPolicy
from authface_core.annotation.session import Workspace

from .conftest import make_pairs_folder
from .space import free_port

LOCK_SECONDS = 8.0  # short, so that the browser test outlives a lock period; long enough for a loaded CI machine


@pytest.fixture()
def workspace(tmp_path):
    make_pairs_folder(tmp_path / "shoot", photos=("astronaut.png", "coffee.png"))
    workspace = Workspace(
        tmp_path / "project", source_folders=[str(tmp_path / "shoot")], lock_seconds=LOCK_SECONDS, prefetch=False
    )
    report, added = workspace.ingest(str(tmp_path / "shoot"))
    assert added == 2
    yield workspace
    workspace.close()


def test_build_demo_does_not_launch_and_every_callback_is_checked(workspace):
    demo = build_demo(workspace, ReviewerPolicy(), AnnotationSettings())
    assert isinstance(demo, gr.Blocks) and not demo.is_running
    callbacks = [block_function.fn for block_function in demo.fns.values() if block_function.fn is not None]
    assert len(callbacks) >= 10 and all(getattr(fn, "required_role", None) for fn in callbacks)


def test_local_mode_listens_on_this_machine_only_and_serves_no_project_file(workspace):
    policy = ReviewerPolicy()
    options = launch_options(workspace, AnnotationSettings(port=7911), policy, on_space=False)
    assert (options["server_name"], options["server_port"], options["run_history"]) == ("127.0.0.1", 7911, False)
    assert "allowed_paths" not in options
    assert set(options["blocked_paths"]) == {str(workspace.root), *map(str, workspace.sources.values())}
    assert launch_options(workspace, AnnotationSettings(), policy, on_space=True)["server_name"] is None  # the Space's
    assert [route.path for route in options["app_kwargs"]["routes"]] == ["/annotate-tiles/{token}/{key}/{level}/{name}"]


@pytest.mark.browser
def test_review_a_pair_with_the_keyboard_while_the_heartbeat_keeps_the_lock(chromium, workspace):
    from playwright.sync_api import expect

    settings = AnnotationSettings(reviewers=["ana"], lock_seconds=30)
    policy = ReviewerPolicy.from_settings(settings, hosted=False)
    demo = build_demo(workspace, policy, settings)
    options = {**launch_options(workspace, settings, policy, on_space=False), "server_port": free_port()}
    demo.queue(default_concurrency_limit=4).launch(prevent_thread_lock=True, quiet=True, **options)
    screenshot = Path(tempfile.mkdtemp(prefix="annotate-browser-")) / "review-screen.png"
    try:
        page = chromium.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(demo.local_url, timeout=60_000)
        page.locator("#reviewer-name textarea, #reviewer-name input").first.fill("Ana")  # stored as "ana"
        page.locator("#start-button").click()
        counters = page.locator("#counters")
        expect(counters).to_contain_text("To review 2", timeout=60_000)
        expect(page.locator("#facts")).to_contain_text("Original", timeout=60_000)
        expect(page.locator("#ab-viewer .ab-main img.ab-tile").first).to_be_visible(timeout=30_000)
        page.locator("#caption textarea").fill("window light, 85 mm")
        held = workspace.store.held_by("ana")

        time.sleep(2 * LOCK_SECONDS)  # studying the pair for two lock periods: the page renews the lock
        taken = workspace.store.claim_next("ben")
        assert taken is not None and taken != held  # ben gets the other pair, not ana's
        workspace.store.release("ben", taken)

        page.locator("#counters").click()  # focus out of the text fields: keys are shortcuts now
        page.keyboard.press("f")
        expect(page.locator("#ab-viewer")).to_have_attribute("data-side", "retouched")
        page.keyboard.press("a")
        expect(counters).to_contain_text("Accepted 1", timeout=60_000)
        expect(counters).to_contain_text("To review 1")
        expect(page.locator("#ab-viewer")).to_have_attribute("data-side", "original")  # the next pair
        expect(page.locator("#caption textarea")).to_have_value("")  # a new pair starts blank
        page.screenshot(path=str(screenshot), full_page=True)
    finally:
        demo.close()
    print(f"screenshot: {screenshot}")
    assert screenshot.stat().st_size > 10_000
    decisions = workspace.store.decisions()
    assert [(d.decision.reviewer, d.decision.verdict, d.decision.caption) for d in decisions] == [
        ("ana", "accept", "window light, 85 mm")
    ]
    assert decisions[0].decision.pair_id == held and re.fullmatch(r"[0-9a-f]{16}", held)


def test_an_empty_queue_refreshes_itself_and_the_filmstrip_changes_a_decision(workspace):
    """The queue timer's call finds a pair once another reviewer's lock is gone; the filmstrip lists one's
    decisions and changes one (a new decision; the list's choices are the page's own)."""
    import json

    from gradio_client import Client

    settings = AnnotationSettings()
    policy = ReviewerPolicy()
    demo = build_demo(workspace, policy, settings)
    options = {**launch_options(workspace, settings, policy, on_space=False), "server_port": free_port()}
    demo.queue().launch(prevent_thread_lock=True, quiet=True, **options)
    try:
        taken = [workspace.store.claim_next("ana"), workspace.store.claim_next("cleo")]
        ben = Client(demo.local_url, verbose=False)
        pair_id, spec, facts, *_ = ben.predict("ben", "review", "", api_name="/poll")
        assert pair_id == "" and json.loads(spec)["empty"].startswith("2 pair(s)") and "open on other" in facts
        workspace.store.release("ana", taken[0])
        pair_id, spec, *_ = ben.predict("ben", "review", "", api_name="/poll")
        assert pair_id == taken[0] and json.loads(spec)["pair"] == pair_id
        ben.predict("ben", pair_id, "review", [], [], "soft window light", "", api_name="/accept")
        (mine,) = workspace.history("ben")
        ben.predict("ben", mine.decision_id, ["halo", "cloning"], api_name="/change_to_reject")
        (changed,) = workspace.history("ben")
        assert (changed.verdict, changed.reasons) == ("reject", ("halo", "cloning"))
        assert changed.caption == "soft window light"
        assert changed.decision_id != mine.decision_id
    finally:
        demo.close()
