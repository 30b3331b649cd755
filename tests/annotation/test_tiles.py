"""Tile pyramids and the route that serves them: attacked first (anonymous, another token, a reviewer taken
off the list, path tricks, another project's tiles), then the pyramids' pixels checked against the sources."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from annotate.app import TILE_CACHE_CONTROL, TILE_ROUTE, build_demo, launch_options
from authface_core.annotation.config import AnnotationSettings
from authface_core.annotation.reviewers import ReviewerPolicy
from authface_core.annotation.session import Workspace
from authface_core.annotation.tiles import TileGate, TileStore, check_key, level_count
from authface_core.io import load_rgb

from .conftest import make_pairs_folder, photo
from .space import free_port


@dataclass
class App:
    url: str
    workspace: Workspace
    key: str  # the original of the first pair: a tile key of this project
    other_key: str  # a pyramid in the same tile store that belongs to no pair of this project


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiles-app")
    make_pairs_folder(base / "shoot", photos=("astronaut.png",))
    workspace = Workspace(base / "project", source_folders=[str(base / "shoot")], prefetch=False)
    workspace.ingest(str(base / "shoot"))
    view = workspace.open_next("ana")
    key = view.tiles.sides["original"][0]
    # another project's photo whose pyramid sits in the same content-keyed store (shared storage)
    other_key = "ab" * 32
    workspace.cache.tiles.put(other_key, np.asarray(photo("coffee")))
    settings = AnnotationSettings(reviewers=["ana"])
    policy = ReviewerPolicy.from_settings(settings, hosted=False)
    demo = build_demo(workspace, policy, settings)
    options = {**launch_options(workspace, settings, policy, on_space=False), "server_port": free_port()}
    demo.queue().launch(prevent_thread_lock=True, quiet=True, **options)
    try:
        yield App(demo.local_url.rstrip("/"), workspace, key, other_key)
    finally:
        demo.close()
        workspace.close()


def get(app: App, path: str) -> httpx.Response:
    return httpx.get(f"{app.url}/{TILE_ROUTE}/{path}", timeout=30)


def test_anonymous_and_forged_tokens_get_nothing(app, tmp_path):
    other_project = TileGate(tmp_path / "other-secret").token("ana")  # ana's token of another project
    forged = app.workspace.tile_token("ana").split(".")[0] + "." + "0" * 64
    non_ascii = app.workspace.tile_token("ana").split(".")[0] + ".%C3%A9"  # a signature hmac cannot compare as text
    for token in ("", "anonymous", other_project, forged, "YW5h", non_ascii):
        response = get(app, f"{token}/{app.key}/0/0_0.jpg")
        assert response.status_code in (403, 404) and response.content[:2] != b"\xff\xd8", token


def test_a_person_off_the_allow_list_is_refused_even_with_a_real_token(app):
    token = app.workspace.tile_token("mallory")  # issued once (say, before she was taken off the list)
    assert get(app, f"{token}/{app.key}/0/0_0.jpg").status_code == 403


@pytest.mark.parametrize(
    "path",
    [
        "{token}/../../review.sqlite",
        "{token}/%2e%2e%2f%2e%2e%2freview.sqlite/0/0_0.jpg",
        "{token}/{key}/0/..%2f..%2finfo.json",
        "{token}/{key}/0/../info.json",
        "{token}/{key}/-1/0_0.jpg",
        "{token}/{key}/0/99_99.jpg",
        "{token}/{key}/0/0_0.png",
        "{token}/{KEY}/0/0_0.jpg",
        "{token}/{key}/99999999999999999999/0_0.jpg",
        "{token}/..%2f..%2f..%2fetc%2fpasswd/0/0_0.jpg",
    ],
)
def test_path_tricks_lead_nowhere(app, path):
    token = app.workspace.tile_token("ana")
    response = get(app, path.format(token=token, key=app.key, KEY=app.key.upper()))
    assert not response.is_success and response.content[:2] != b"\xff\xd8", response.status_code


def test_another_projects_tiles_are_not_served_even_from_the_same_store(app):
    token = app.workspace.tile_token("ana")
    assert app.workspace.cache.tiles.tile_file(app.other_key, 0, 0, 0).is_file()  # it exists on disk
    assert get(app, f"{token}/{app.other_key}/0/0_0.jpg").status_code == 404


def test_a_reviewer_gets_the_tile_cacheable_for_good(app):
    token = app.workspace.tile_token("ana")
    response = get(app, f"{token}/{app.key}/0/0_0.jpg")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert response.headers["cache-control"] == TILE_CACHE_CONTROL and "immutable" in TILE_CACHE_CONTROL
    assert response.content == app.workspace.cache.tiles.tile_file(app.key, 0, 0, 0).read_bytes()


def test_tokens_survive_a_restart_and_name_their_person(tmp_path):
    first, again = TileGate(tmp_path / "secret"), TileGate(tmp_path / "secret")
    assert again.person(first.token("ana")) == "ana" and again.token("ana") == first.token("ana")
    assert first.token("ana") != first.token("ben") and first.person(first.token("ben")) == "ben"
    assert TileGate(tmp_path / "elsewhere").person(first.token("ana")) is None
    assert (tmp_path / "secret").stat().st_mode & 0o077 == 0  # owner-only


def test_pyramid_levels_and_pixels(tmp_path):
    rgb = np.asarray(photo("astronaut").resize((1300, 700)))  # not a multiple of the tile size
    store = TileStore(tmp_path)
    info = store.ensure("cd" * 32, lambda: rgb)
    assert (info.width, info.height, info.levels) == (1300, 700, level_count(1300, 700)) and info.levels == 3
    assert info.grid(0) == (3, 2) and info.grid(2) == (1, 1)
    tiles = [[np.asarray(Image.open(store.tile_file("cd" * 32, 0, c, r))) for c in range(3)] for r in range(2)]
    whole = np.vstack([np.hstack(row) for row in tiles])
    assert whole.shape == rgb.shape  # edge tiles are cut to the image, not padded
    assert np.abs(whole.astype(int) - rgb.astype(int)).mean() < 1.5  # JPEG at quality 95, 4:4:4
    assert store.ensure("cd" * 32, lambda: pytest.fail("made twice")) == info  # reused, as after a restart
    assert store.tile_file("cd" * 32, 0, 3, 0) is None and store.tile_file("cd" * 32, 3, 0, 0) is None
    for bad in ("../x", "CD" * 32, "cd" * 31, "cd" * 32 + "/"):
        with pytest.raises(ValueError, match="64 lowercase hex"):
            check_key(bad)


def test_16_bit_sources_are_tone_mapped_once(tmp_path):
    """A 16-bit grey PNG: the tiles hold its 8-bit rendering (value / 257), as every other view shows it."""
    ramp = (np.linspace(0, 65535, 600, dtype=np.float64)[None, :].repeat(300, axis=0)).astype(np.uint16)
    path = Path(tmp_path / "ramp16.png")
    Image.fromarray(ramp).save(path)
    store = TileStore(tmp_path / "tiles")
    store.ensure("ef" * 32, lambda: load_rgb(path))
    tile = np.asarray(Image.open(store.tile_file("ef" * 32, 0, 0, 0))).astype(int)
    expected = np.round(ramp[:, :512] / 257.0).astype(int)
    assert np.abs(tile[..., 0] - expected).max() <= 3


def test_the_difference_view_amplifies_the_largest_channel_change():
    import cv2

    from authface_core.annotation.tiles import DIFFERENCE_GAIN, difference_map

    original = np.full((4, 4, 3), 100, np.uint8)
    retouched = original.copy()
    retouched[0, 0] = (102, 100, 99)  # a change of 2 levels at most
    retouched[1, 1] = (160, 100, 100)  # far beyond what the gain can show: saturates
    heat = difference_map(original, retouched)
    levels = np.arange(256, dtype=np.uint8)[None]  # (1, 256): every level once
    palette = cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)[0]
    assert (heat[2, 2] == palette[0]).all() and (heat[0, 0] == palette[int(2 * DIFFERENCE_GAIN)]).all()
    assert (heat[1, 1] == palette[255]).all()
