"""The demo in a real browser: Debian's chromium, driven by Playwright, headless.

Never runs ``playwright install`` (no download here): it uses /usr/bin/chromium, installed with
``apt-get install -y chromium``, and skips with that reason where it is missing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from authface_core.authenticity import VERDICTS
from authface_core.restore import FAST_PRESET

ANY_VERDICT = re.compile("|".join(VERDICTS))
RESULT_TIMEOUT_MS = 300_000  # the tiny model on 2 shared CPU cores, with a loaded machine

pytestmark = pytest.mark.browser


@pytest.fixture
def page(chromium, tiny_app_url):
    """A fresh headless chromium tab showing the demo."""
    tab = chromium.new_page(viewport={"width": 1400, "height": 1200})
    tab.goto(tiny_app_url)
    tab.locator("#restore-button").wait_for()
    return tab


def upload(page, path: Path) -> None:
    page.locator("#input-image input[type=file]").set_input_files(str(path))


def move_slider(page, elem_id: str, notches: int) -> None:
    """Drag a slider by keyboard, as a user does: to its minimum, then ``notches`` steps right."""
    page.locator(f"#{elem_id} input[type=range]").focus()
    page.keyboard.press("Home")
    for _ in range(notches):
        page.keyboard.press("ArrowRight")


def test_browser_upload_slide_restore_compare(page, whole_photo, tmp_path_factory):
    from playwright.sync_api import expect

    page.get_by_role("button", name="Fast preset").click()
    expect(page.locator("#num_inference_steps input[type=number]")).to_have_value(str(FAST_PRESET.num_inference_steps))
    upload(page, whole_photo)
    expect(page.locator("#input-image img").first).to_be_visible()
    move_slider(page, "num_inference_steps", 1)  # 1 -> 2 steps
    move_slider(page, "fidelity", 6)  # 0 -> 0.30 (step 0.05)
    expect(page.locator("#num_inference_steps input[type=number]")).to_have_value("2")
    expect(page.locator("#fidelity input[type=number]")).to_have_value("0.3")
    page.locator("#restore-button").click()

    summary = page.locator("#summary")
    expect(summary).to_contain_text("Restored", timeout=RESULT_TIMEOUT_MS)
    expect(summary).to_contain_text(
        f"steps 2, fidelity 0.30, guidance {FAST_PRESET.guidance_scale:g}, scheduler {FAST_PRESET.scheduler}"
    )
    comparison = page.locator("#comparison")
    expect(comparison.get_by_test_id("imageslider-image")).to_have_count(2)  # before and after, stacked
    expect(comparison.get_by_test_id("slider")).to_be_visible()
    report = page.locator("#report")
    expect(report.get_by_role("columnheader", name="identity similarity")).to_be_visible()
    expect(report.get_by_role("gridcell", name=ANY_VERDICT).first).to_be_visible()
    download_link = page.locator("#download a[href$='.png']")
    expect(download_link).to_have_attribute("href", re.compile(re.escape(f"/{whole_photo.stem}_authface.png") + "$"))

    screenshot = tmp_path_factory.mktemp("screenshots") / "demo_restored.png"
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"screenshot: {screenshot}")


def test_browser_bad_upload_shows_error_then_next_request_works(page, whole_photo, tmp_path):
    from playwright.sync_api import expect

    disguised = tmp_path / "holiday.jpg"  # a text file with an image name passes the browser's type check
    disguised.write_text("not a photo at all\n")
    upload(page, disguised)
    page.locator("#restore-button").click()
    # Answered by the checks before the queue, at the photo it concerns.
    error = page.locator("#input-image .validation-error")
    expect(error).to_contain_text("holiday.jpg: not an image file", timeout=60_000)

    error.get_by_role("button", name="Clear").first.click()
    page.locator("#input-image button[aria-label='Remove Image']").click()
    upload(page, whole_photo)
    move_slider(page, "num_inference_steps", 0)  # 1 step: this run only proves the app still serves
    page.locator("#restore-button").click()
    expect(page.locator("#summary")).to_contain_text("Restored", timeout=RESULT_TIMEOUT_MS)
    expect(page.locator("#report").get_by_role("gridcell", name=ANY_VERDICT).first).to_be_visible()
