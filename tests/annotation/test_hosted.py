"""Hosted mode on a simulated Space, attacked through HTTP and gradio_client (the findings of issue 10).

Team: reviewers ana and ben, adjudicators cleo and ben, admin lead; a configured source folder; a
Hub stand-in holding the publishing token. Callers: an anonymous visitor, mallory (signed in with
Hugging Face but on no allow-list), and the team. Every attack is refused with a clear message and
changes nothing: not the project folder, not the review store, not the Hub stand-in.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from annotate.app import TILE_ROUTE, build_demo, launch_options
from authface_core.annotation.config import AnnotationSettings, hosted_mode
from authface_core.annotation.ingest import OUTSIDE_FOLDER, sha256_file
from authface_core.annotation.reviewers import ReviewerPolicy
from authface_core.annotation.session import Workspace

from .conftest import make_pairs_folder
from .hub_standin import HubStandIn, use_standin
from .space import call_index, call_named, free_port, headers_for, simulated_space

REPO_ID = "photo-lab/authface-pairs"
TOKEN = "hf_spaceWriteToken0123456789"
ATTACKERS = [None, "mallory"]  # anonymous, and signed in but on no allow-list


@dataclass
class Space:
    url: str
    demo: object
    workspace: Workspace
    hub: HubStandIn
    shoot: Path
    elsewhere: Path


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    base = tmp_path_factory.mktemp("space")
    shoot = base / "shoot"
    make_pairs_folder(shoot, photos=("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg"))
    elsewhere = base / "other-customer"  # another customer's photos on the same server
    elsewhere.mkdir()
    Image.new("RGB", (64, 48), "red").save(elsewhere / "private.png")
    settings = AnnotationSettings(
        root=str(base / "project"),
        reviewers=["ana", "ben"],
        adjudicators=["cleo", "ben"],
        admins=["lead"],
        overlap=2,
        source_folders=[str(shoot)],
        repo_id=REPO_ID,
    )
    with simulated_space(), HubStandIn(base / "hub") as hub, pytest.MonkeyPatch.context() as patch:
        use_standin(patch, hub, TOKEN)
        assert hosted_mode(settings, os.environ)  # auto: hosted, because this is a Space
        workspace = Workspace.from_settings(settings, prefetch=False)
        workspace.ingest(str(shoot))
        demo = build_demo(workspace, ReviewerPolicy.from_settings(settings, hosted=True), settings)
        port = free_port()
        policy = ReviewerPolicy.from_settings(settings, hosted=True)
        options = launch_options(workspace, settings, policy, on_space=True)
        options.update(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        demo.queue(default_concurrency_limit=4).launch(**options)
        try:
            yield Space(f"http://127.0.0.1:{port}", demo, workspace, hub, shoot, elsewhere)
        finally:
            demo.close()
            workspace.close()


def snapshot(space: Space) -> dict:
    """What an attack must not change: the project's files, every row of the review store, the Hub."""
    root = space.workspace.root
    files = {
        path.relative_to(root).as_posix(): sha256_file(path)
        for path in root.rglob("*")
        if path.is_file() and not path.name.startswith("review.sqlite")
    }
    with sqlite3.connect(space.workspace.store.path) as connection:
        tables = {
            table: sorted(connection.execute(f"SELECT * FROM {table}").fetchall())  # noqa: S608 (fixed names)
            for table in ("pairs", "decisions", "locks", "shards", "shard_rows")
        }
    published = space.hub.files(REPO_ID) if space.hub.repo_dir(REPO_ID).is_dir() else {}
    return {"files": files, "store": tables, "hub": (list(space.hub.commits), published)}


def refusal(user: str | None) -> str:
    return "sign in with Hugging Face first" if user is None else f"{user} may not"


def attack_csv(space: Space, tmp_path: Path) -> Path:
    """A pairs CSV naming server files outside the project: another customer's photo, /etc/shadow."""
    table = tmp_path / "pairs.csv"
    rows = [
        f"{space.elsewhere / 'private.png'},{space.elsewhere / 'private.png'}",
        "/etc/shadow,/etc/passwd",
        f"{space.elsewhere / 'missing.png'},astronaut_retouched.jpg",
    ]
    table.write_text("original,retouched\n" + "\n".join(rows) + "\n")
    return table


@pytest.mark.parametrize("user", ATTACKERS, ids=["anonymous", "mallory"])
def test_every_function_of_the_app_refuses_a_caller_who_is_not_on_the_team(space, user):
    """Through the queue by function index: every event, named or not, bound to a button or a timer."""
    before = snapshot(space)
    checked = []
    for fn_index, block_function in space.demo.fns.items():
        fn = block_function.fn
        if fn is None or getattr(fn, "__qualname__", "") == "LoginButton._check_login_status":
            continue  # page-only JS events; Gradio's own "who is signed in" check, which answers only about the caller
        assert getattr(fn, "required_role", None), f"{block_function.name} is not wrapped by endpoint()"
        data = [_typed_name_or_empty(block) for block in block_function.inputs]
        succeeded, error = call_index(space.url, fn_index, data, user)
        assert not succeeded and refusal(user) in str(error), (block_function.name, error)
        checked.append(block_function.name)
    assert {"open_screen", "poll_queue", "accept", "reject", "skip", "undo", "heartbeat"} <= set(checked)
    assert {"load_regions", "team_table", "change_to_accept", "change_to_reject"} <= set(checked)
    assert {"admin_view", "ingest", "publish"} <= set(checked)
    assert snapshot(space) == before


def _typed_name_or_empty(block) -> object:
    """An input value for ``block``: a name typed as an ally would ("ana"), else an empty value."""
    kind = type(block).__name__
    if kind == "Radio":  # the queue ("review"), or the filmstrip, empty until a decision is made
        return block.choices[0][1] if block.choices else None
    return {"Textbox": "ana", "CheckboxGroup": []}.get(kind)


@pytest.mark.parametrize("user", ATTACKERS, ids=["anonymous", "mallory"])
def test_named_endpoints_refuse_through_http_and_gradio_client(space, user, tmp_path):
    before = snapshot(space)
    calls = {
        "open": ["ana", "review", ""],
        "poll": ["ana", "review", ""],
        "accept": ["ana", "", "review", ["lighting"], [], "caption", "note"],
        "reject": ["ana", "", "review", [], ["halo"], "", ""],
        "skip": ["ana", "", "adjudication", [], [], "", ""],
        "undo": ["ana", "review", ""],
        "heartbeat": ["ana", "", "review"],
        "regions": ["ana", ""],
        "change_to_accept": ["ana", None, []],
        "change_to_reject": ["ana", None, ["halo"]],
        "team": ["ana"],  # the reviewer table
        "admin": ["ana"],
        "publish": ["ana"],
    }
    for api_name, data in calls.items():
        succeeded, error = call_named(space.url, api_name, data, user)
        assert not succeeded and refusal(user) in str(error), (api_name, error)
    client = Client(space.url, headers=headers_for(user), verbose=False)
    for api_name, data in calls.items():
        with pytest.raises(AppError, match=refusal(user)):
            client.predict(*data, api_name=f"/{api_name}")
    # ingest: a CSV uploaded through Gradio's open upload route, naming files anywhere on the server
    for source, uploads in (
        (str(space.shoot), None),
        ("/etc", None),
        (None, [handle_file(space.elsewhere / "private.png")]),
    ):
        with pytest.raises(AppError, match=refusal(user)):
            client.predict(
                "ana", source, uploads, handle_file(attack_csv(space, tmp_path)), "", "_retouched", api_name="/ingest"
            )
    assert snapshot(space) == before
    assert not space.hub.repo_dir(REPO_ID).exists() and space.hub.commits == []  # the Space's token unused


def test_ingest_reads_nothing_a_client_names_even_for_an_admin(space, tmp_path):
    lead = Client(space.url, headers=headers_for("lead"), verbose=False)
    pairs_before = space.workspace.store.counters().total
    previews_before = sorted(space.workspace.cache.root.rglob("*.jpg"))
    with pytest.raises(AppError, match="is not one of this project's source folders"):
        lead.predict("", str(space.elsewhere), None, None, "", "_retouched", api_name="/ingest")
    report, _ = lead.predict(
        "", str(space.shoot), None, handle_file(attack_csv(space, tmp_path)), "", "_retouched", api_name="/ingest"
    )
    assert report.count(OUTSIDE_FOLDER) == 5  # every outside path, existing or not, with the same words
    assert "/etc/shadow" in report and "private.png" in report and "not an image" not in report
    assert space.workspace.store.counters().total == pairs_before
    assert sorted(space.workspace.cache.root.rglob("*.jpg")) == previews_before  # nothing outside was decoded


@pytest.mark.parametrize("user", [None, "ana"], ids=["anonymous", "reviewer"])
def test_the_web_server_serves_no_file_of_the_project_and_none_outside(space, user):
    """Issue 10: GET /gradio_api/file=<project>/review.sqlite returned the whole review database."""
    root = space.workspace.root
    preview = next(space.workspace.cache.root.rglob("*.jpg"))
    targets = [
        root / "review.sqlite",
        space.shoot / "astronaut.png",  # an original
        preview,
        space.elsewhere / "private.png",  # outside the project
        Path("/etc/passwd"),
    ]
    with httpx.Client(timeout=30, headers=headers_for(user)) as http:
        for target in targets:
            for route in (
                f"/gradio_api/file={target}",
                f"/file={target}",
                f"/gradio_api/file={root}/../{root.name}/review.sqlite",
            ):
                response = http.get(space.url + route)
                assert not response.is_success, (route, response.status_code)  # 403 (or 404: no such route)


def test_the_page_config_holds_no_project_data_and_no_run_history(space):
    config = httpx.get(f"{space.url}/config", timeout=30)
    assert config.status_code == 200
    assert config.json()["run_history"] is False  # nothing kept in the browser's localStorage
    text = config.text
    leaks = [REPO_ID, str(space.shoot), *space.workspace.store.pair_ids(), "astronaut"]
    assert [leak for leak in leaks if leak in text] == []


def test_the_team_works_with_roles_normalised_names_and_no_self_adjudication(space):
    ana = Client(space.url, headers=headers_for("ana"), verbose=False)
    opened = ana.predict("", "review", "", api_name="/open")
    first = space.workspace.store.held_by("ana")
    assert first == opened[0] and "Original" in opened[2]  # the pair id, the viewer's spec, the facts table
    ana.predict("", first, "review", ["lighting"], [], "studio portrait", "halo left", api_name="/accept")
    assert [(d.decision.reviewer, d.decision.caption) for d in space.workspace.store.decisions(pair_id=first)] == [
        ("ana", "studio portrait")
    ]
    # "ANA" is ana: she cannot add a second decision to settle the pair alone (overlap 2)
    shouting = Client(space.url, headers=headers_for("ANA"), verbose=False)
    shouting.predict("", "review", "", api_name="/open")
    assert space.workspace.store.held_by("ana") != first
    with pytest.raises(AppError, match="ana may not settle disputed pairs"):
        ana.predict("", "adjudication", "", api_name="/open")
    with pytest.raises(AppError, match="ana may not ingest and publish"):
        ana.predict("", api_name="/admin")
    # ben disagrees: a dispute; ben (also an adjudicator) is not offered his own dispute; cleo settles it
    space.workspace.store.release("ana", space.workspace.store.held_by("ana"))
    ben = Client(space.url, headers=headers_for("ben"), verbose=False)
    ben.predict("", "review", "", api_name="/open")
    assert space.workspace.store.held_by("ben") == first
    ben.predict("", first, "review", [], ["halo"], "", "", api_name="/reject")
    space.workspace.store.release("ben", space.workspace.store.held_by("ben"))
    assert space.workspace.store.pair_states()[first] == "disputed"
    ben.predict("", "adjudication", "", api_name="/open")
    assert space.workspace.store.held_by("ben") != first
    cleo = Client(space.url, headers=headers_for("cleo"), verbose=False)
    cleo.predict("", "adjudication", "", api_name="/open")
    assert space.workspace.store.held_by("cleo") == first
    cleo.predict("", first, "adjudication", [], [], "", "", api_name="/accept")
    assert space.workspace.store.pair_states()[first] == "accepted"


def test_an_open_page_renews_its_lock_through_the_heartbeat(space):
    ben = Client(space.url, headers=headers_for("ben"), verbose=False)
    pair_id = ben.predict("", "review", "", api_name="/open")[0]
    assert pair_id == space.workspace.store.held_by("ben")

    def expiry() -> float:
        with sqlite3.connect(space.workspace.store.path) as connection:
            return connection.execute("SELECT expires_at FROM locks WHERE pair_id = ?", (pair_id,)).fetchone()[0]

    first = expiry()
    time.sleep(1.1)
    ben.predict("", pair_id, "review", api_name="/heartbeat")
    assert expiry() > first + 1
    space.workspace.store.release("ben", pair_id)


def test_publish_goes_to_the_project_repo_with_the_files_reviewed(space):
    store = space.workspace.store
    lead = Client(space.url, headers=headers_for("lead"), verbose=False)
    assert "photo-lab/authface-pairs" in lead.predict("", api_name="/admin")[1]
    pending = [pair_id for pair_id, state in store.pair_states().items() if state == "pending"]
    for pair_id in pending[:2]:  # two more pairs accepted by both reviewers
        for reviewer in ("ana", "ben"):
            space.workspace.decide(reviewer, pair_id, "accept", note="for the team")
    changed = store.pair(pending[1])
    Path(changed.retouched_path).write_bytes(Path(changed.retouched_path).read_bytes() + b"edited later")
    report, _ = lead.predict("", api_name="/publish")
    assert report.startswith(f"**{REPO_ID}**")
    name = Path(changed.retouched_path).name.replace("_", "\\_")  # markdown-escaped
    assert f"pair {changed.pair_id}: {name} changed on disk" in report
    assert {repo for repo, _ in space.hub.commits} == {REPO_ID}
    assert store.counters(REPO_ID).published == 2  # the adjudicated pair and the unchanged one
    assert TOKEN not in report


def test_viewer_tiles_come_only_with_the_token_a_checked_call_gave(space):
    ana = Client(space.url, headers=headers_for("ana"), verbose=False)
    pair_id, spec_text, *_ = ana.predict("", "review", "", api_name="/open")
    spec = json.loads(spec_text)
    assert spec["pair"] == pair_id and spec["base"].startswith(f"{TILE_ROUTE}/")
    key = spec["sides"]["original"]["key"]
    assert httpx.get(f"{space.url}/{spec['base']}{key}/0/0_0.jpg", timeout=30).status_code == 200
    for user in (None, "mallory", "ana"):  # a signed-in session is not a token
        response = httpx.get(f"{space.url}/{TILE_ROUTE}/-/{key}/0/0_0.jpg", headers=headers_for(user), timeout=30)
        assert response.status_code == 403
    space.workspace.store.release("ana", pair_id)
