"""The viewer in Debian's chromium on 8K pairs of ../shared/faces: a true 100% view, flip keeps the viewport,
a reframed retouch aligned and said, the keys, undo keeping the caption, and a server restart mid-review.

One review session walks through it all (the machine has 2 shared cores): a 16-bit PNG original with a
16-bit TIFF retouch, then a JPEG original whose retouch is a tighter crop.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotate.app import build_demo, launch_options
from authface_core.annotation.config import AnnotationSettings
from authface_core.annotation.reviewers import ReviewerPolicy
from authface_core.annotation.session import Workspace

from .eight_k import make_pair
from .space import free_port

pytestmark = pytest.mark.browser
PORTRAIT, OTHER = "gfpgan_Blake_Lively.jpg", "diffbir_Audrey_Hepburn.jpg"
REFRAME = (240, 160, 80, 60)  # pixels the retoucher cut off: left, top, right, bottom
# JPEG tiles at quality 95, 4:4:4, against the source: what "the same pixels" allows
MEAN_DIFFERENCE, P99_DIFFERENCE = 1.5, 8


@dataclass
class Shoot:
    folder: Path
    originals: dict[str, np.ndarray]  # 8-bit rendering of each original, by file name
    retouches: dict[str, np.ndarray]


@pytest.fixture(scope="session")
def eight_k(tmp_path_factory, shared_faces) -> Shoot:
    """Two 8K pairs, made once per session: 16-bit PNG + 16-bit TIFF, and JPEG + a reframed JPEG."""
    folder = tmp_path_factory.mktemp("eight-k")
    first = make_pair(shared_faces / "whole" / PORTRAIT, folder, "a_portrait", ".png", ".tif")
    second = make_pair(shared_faces / "whole" / OTHER, folder, "b_reframed", ".jpg", ".jpg", reframe=REFRAME)
    from authface_core.io import load_rgb

    return Shoot(
        folder,
        {path.name: load_rgb(path) for path in (first[0], second[0])},
        {path.name: load_rgb(path) for path in (first[1], second[1])},
    )


class Server:
    """The app on a fixed port, stoppable and restartable on the same project (as a Space restarts)."""

    def __init__(self, root: Path, source: Path):
        self.root, self.source, self.port = root, source, free_port()
        self.demo = self.workspace = None

    def start(self, *, prefetch: bool) -> None:
        self.workspace = Workspace(self.root, source_folders=[str(self.source)], prefetch=prefetch)
        settings = AnnotationSettings(reviewers=["ana"], port=self.port)
        policy = ReviewerPolicy.from_settings(settings, hosted=False)
        self.demo = build_demo(self.workspace, policy, settings)
        options = launch_options(self.workspace, settings, policy, on_space=False)
        self.demo.queue(default_concurrency_limit=4).launch(prevent_thread_lock=True, quiet=True, **options)

    def stop(self) -> None:
        self.demo.close()
        self.workspace.close()


@pytest.fixture()
def server(eight_k, tmp_path):
    server = Server(tmp_path / "project", eight_k.folder)
    server.start(prefetch=True)
    _, added = server.workspace.ingest(str(eight_k.folder))
    assert added == 2
    for pair_id in server.workspace.store.pair_ids():  # tiles made in the background at ingest: wait for them
        server.workspace.cache.pair_tiles(server.workspace.store.pair(pair_id))
    yield server
    server.stop()


def stage_pixels(page, selector: str = "#ab-viewer .ab-main") -> tuple[np.ndarray, int, int]:
    """The stage as shown, once every tile has arrived, and the image pixel at its top-left corner.

    The viewer puts tiles on whole screen pixels from the stage's rounded corner, which is where the
    screenshot starts; it stops a pixel short of a fractional edge.
    """
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{selector} img.ab-tile')].every(i => i.complete && i.naturalWidth)"
    )
    stage = page.locator(selector)
    stage.scroll_into_view_if_needed()
    box = stage.bounding_box()
    clip = {"x": round(box["x"]), "y": round(box["y"])}
    clip.update(width=int(box["width"]) - 1, height=int(box["height"]) - 1)
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot(clip=clip))).convert("RGB"))
    left, top = (float(stage.get_attribute(f"data-{name}")) for name in ("left", "top"))
    assert left == int(left) and top == int(top)  # at 100% tiles sit on whole pixels
    return shot, int(left), int(top)


def assert_same_pixels(shown: np.ndarray, source: np.ndarray, left: int, top: int) -> None:
    height, width = shown.shape[:2]
    expected = source[top : top + height, left : left + width]
    assert expected.shape == shown.shape, (expected.shape, shown.shape)
    difference = np.abs(shown.astype(int) - expected.astype(int))
    assert difference.mean() < MEAN_DIFFERENCE and np.percentile(difference, 99) <= P99_DIFFERENCE, (
        difference.mean(),
        np.percentile(difference, 99),
        difference.max(),
    )


def viewer_state(page) -> dict:
    return page.locator("#ab-viewer").evaluate("node => ({...node.dataset})")


def test_review_8k_pairs_at_100_percent_with_keys_undo_and_a_restart(chromium, server, eight_k):
    from playwright.sync_api import expect

    page = chromium.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"http://127.0.0.1:{server.port}/", timeout=60_000)
    page.locator("#reviewer-name input, #reviewer-name textarea").first.fill("ana")
    page.locator("#start-button").click()
    expect(page.locator("#ab-viewer")).to_have_attribute("data-pair", server.workspace.store.pair_ids()[0])
    viewer = page.locator("#ab-viewer")
    page.locator("#counters").click()  # out of the text fields: keys are shortcuts

    # z: 100%, one image pixel per screen pixel; the screenshot is the 16-bit PNG's pixels
    page.keyboard.press("z")
    expect(viewer).to_have_attribute("data-zoom", "1")
    shown, left, top = stage_pixels(page)
    assert shown.shape[1] > 600 and shown.shape[0] > 300
    assert_same_pixels(shown, eight_k.originals["a_portrait.png"], left, top)
    # the loupe's crops: every face's regions at 100% too (the first one's pixels checked)
    expect(page.locator("#ab-viewer .ab-crop-stage").first).to_be_visible(timeout=60_000)
    assert {"eyes", "mouth", "left_cheek", "right_cheek", "forehead"} <= set(
        page.locator("#ab-viewer .ab-crop-stage").evaluate_all("nodes => nodes.map(n => n.dataset.region)")
    )
    crop, crop_left, crop_top = stage_pixels(page, "#ab-viewer .ab-crop:first-child .ab-crop-stage")
    assert_same_pixels(crop, eight_k.originals["a_portrait.png"], crop_left, crop_top)

    # f: flip to the 16-bit TIFF retouch; zoom and position stay, the crops flip with it
    before = viewer_state(page)
    page.keyboard.press("f")
    expect(viewer).to_have_attribute("data-side", "retouched")
    after = viewer_state(page)
    assert [after[name] for name in ("zoom", "cx", "cy")] == [before[name] for name in ("zoom", "cx", "cy")]
    flipped, flipped_left, flipped_top = stage_pixels(page)
    assert (flipped_left, flipped_top) == (left, top)
    assert_same_pixels(flipped, eight_k.retouches["a_portrait_retouched.tif"], left, top)
    assert page.locator("#ab-viewer .ab-crop-stage").first.get_attribute("data-side") == "retouched"

    # + and -: 200% and back; 0: fit
    page.keyboard.press("+")
    expect(viewer).to_have_attribute("data-zoom", "2")
    page.keyboard.press("-")
    expect(viewer).to_have_attribute("data-zoom", "1")
    page.keyboard.press("0")
    expect(viewer).to_have_attribute("data-zoom", "fit")

    # 1 and 2: tags; c: caption; Escape leaves it, so the next key is a shortcut again
    page.keyboard.press("1")
    page.keyboard.press("c")
    page.keyboard.type("window light, 85 mm")
    page.keyboard.press("Escape")
    page.keyboard.press("2")
    tags = page.locator("#tags input[type=checkbox]")
    expect(tags.nth(0)).to_be_checked()
    expect(tags.nth(1)).to_be_checked()
    expect(page.locator("#caption textarea")).to_have_value("window light, 85 mm")  # "2" typed nothing

    # the server restarts mid-review; the open page keeps its text and decides the same pair
    held = server.workspace.store.held_by("ana")
    server.stop()
    server.start(prefetch=False)
    time.sleep(1)
    expect(page.locator("#caption textarea")).to_have_value("window light, 85 mm")
    page.locator("#counters").click()
    page.keyboard.press("a")
    expect(page.locator("#counters")).to_contain_text("Accepted 1", timeout=60_000)
    (decision,) = server.workspace.store.decisions()
    assert (decision.decision.pair_id, decision.decision.caption) == (held, "window light, 85 mm")
    assert decision.decision.tags == ("lighting", "skin texture")

    # the next pair: a reframed retouch, aligned to the original's frame and said so
    expect(viewer).to_have_attribute("data-pair", server.workspace.store.pair_ids()[1], timeout=60_000)
    expect(page.locator("#ab-viewer .ab-notice")).to_contain_text("reframed")
    expect(page.locator("#facts")).to_contain_text("aligned to the original")
    expect(page.locator("#caption textarea")).to_have_value("")
    page.keyboard.press("z")
    page.keyboard.press("f")
    expect(viewer).to_have_attribute("data-side", "retouched")
    aligned, left, top = stage_pixels(page)
    reference = np.asarray(eight_k.retouches["b_reframed_retouched.jpg"])  # in its own, cropped frame
    assert_same_pixels(aligned, reference, left - REFRAME[0], top - REFRAME[1])  # shown in the original's frame

    # u: undo brings the first pair back with its caption and tags
    page.keyboard.press("u")
    expect(viewer).to_have_attribute("data-pair", held, timeout=60_000)
    expect(page.locator("#caption textarea")).to_have_value("window light, 85 mm")
    expect(tags.nth(0)).to_be_checked()
    expect(tags.nth(1)).to_be_checked()
    # ?: the keys overlay
    page.keyboard.press("?")
    expect(page.locator("#ab-help")).to_be_visible()
    expect(page.locator("#ab-help")).to_contain_text("fit → 100% → 200%")
    page.keyboard.press("Escape")
    expect(page.locator("#ab-help")).to_be_hidden()
