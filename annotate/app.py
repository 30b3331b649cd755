"""The annotation app: photographers review original/retouch pairs and publish the accepted ones.

Thin on purpose (STYLE.md, section 3): every rule lives in ``authface_core.annotation`` (the
:class:`~authface_core.annotation.session.Workspace`); each callback here makes one call there.

Every Python callback is wrapped by :func:`endpoint`, which identifies the person on the server
for each request (the signed-in Hugging Face user that Gradio reads from its own session in
hosted mode, the typed name in local mode), checks the role the callback needs, and turns
:class:`~authface_core.errors.AuthFaceError` into ``gr.Error``: an endpoint called directly
(HTTP, ``gradio_client``) is checked exactly like a button. Callbacks return
``{component: value}``. The page's JS and CSS are beside this file: ``viewer.js``/``viewer.css``
(the tiled viewer) and ``app.js``/``app.css`` (keys, layout). The viewer's tiles come from one
route of the app's own (:func:`tile_route`), checked on every request like the callbacks.

Run ``python -m annotate [PROJECT_FOLDER]``, ``authface-annotate`` or ``python annotate/app.py``;
``--help`` lists the settings (``authface_core.annotation.config``).
"""

from __future__ import annotations

import functools
import html
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Optional

if __package__ in (None, ""):  # run as a file (python annotate/app.py, a Space's app_file): import from the repo
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gradio as gr  # noqa: E402
from fastapi.responses import FileResponse, Response  # noqa: E402
from fastapi.routing import APIRoute  # noqa: E402

from authface_core.annotation.config import AnnotationSettings  # noqa: E402
from authface_core.annotation.ingest import NamingRule  # noqa: E402
from authface_core.annotation.publish import PublishConfig  # noqa: E402
from authface_core.annotation.reviewers import MEMBER, ReviewerPolicy  # noqa: E402
from authface_core.annotation.session import (  # noqa: E402
    REVIEW_GUIDELINES,
    PairView,
    Workspace,
    ingest_report_markdown,
    publish_report_markdown,
)
from authface_core.annotation.store import PHOTO_ATTRIBUTES, REJECT_REASONS  # noqa: E402
from authface_core.errors import AuthFaceError, ReviewerNotAllowedError  # noqa: E402

HERE = Path(__file__).resolve().parent
# The page's script: the viewer (viewer.js defines window.AnnotateViewer), then the keys and wiring (app.js).
PAGE_JS = "() => {\n" + (HERE / "viewer.js").read_text() + "\n(" + (HERE / "app.js").read_text() + ")();\n}"
CSS_FILES = [HERE / "app.css", HERE / "viewer.css"]
# The role a queue needs.
QUEUE_ROLES = {"review": "reviewer", "adjudication": "adjudicator"}


def queue_role(queue: str) -> str:
    """The role that deciding in ``queue`` needs (a request may send any string)."""
    if queue not in QUEUE_ROLES:
        raise ValueError(f"queue must be one of {', '.join(QUEUE_ROLES)}, got {queue!r}")
    return QUEUE_ROLES[queue]


# An open page renews its pair's lock this many times per lock period.
HEARTBEATS_PER_LOCK = 3
# An empty queue looks again this often (seconds): pairs come back when another reviewer's lock expires.
QUEUE_POLL_S = 5.0
VIEWER_HTML = "<div id='ab-viewer' data-side='original' data-zoom='fit'><p class='ab-empty'>No pair open.</p></div>"
# Gradio's copies of uploads are deleted after six hours, checked hourly.
CACHE_SWEEP_S, CACHE_KEEP_S = 3600, 6 * 3600
# Largest file an upload may hold: a 100 MP 16-bit TIFF is ~600 MB.
MAX_UPLOAD = "1gb"
# The tile route: /annotate-tiles/<token>/<key>/<level>/<column>_<row>.jpg (see add_tile_route).
TILE_ROUTE = "annotate-tiles"
_TILE_NAME = re.compile(r"^(\d{1,5})_(\d{1,5})\.jpg$")
# A tile never changes under its URL (keys name content): the browser keeps it, private to the reviewer.
TILE_CACHE_CONTROL = "private, max-age=31536000, immutable"


def tile_route(workspace: Workspace, policy: ReviewerPolicy) -> APIRoute:
    """The web route of the viewer's tiles, checked on every request.

    Served only with a token the project issued (``Workspace.tile_token``, from a checked
    callback) to a person who still holds a role, and only tiles of this project's pairs; the file
    is found from a hex key and integers, never from a path the client sends. Refusals say nothing
    of what exists: 403 for the token, 404 for everything else.
    """

    def tile(token: str, key: str, level: int, name: str) -> Response:
        match = _TILE_NAME.match(name)
        column, row = map(int, match.groups()) if match else (-1, -1)  # -1: outside every pyramid
        person, path = workspace.tile_file(token, key, level, column, row)
        try:
            policy.require(person or "", MEMBER)
        except ReviewerNotAllowedError:
            return Response(status_code=403)
        if person is None or path is None or not path.is_file():
            return Response(status_code=403 if person is None else 404)
        return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": TILE_CACHE_CONTROL})

    return APIRoute(f"/{TILE_ROUTE}/{{token}}/{{key}}/{{level}}/{{name}}", tile, methods=["GET"])


def endpoint(policy: ReviewerPolicy, role: str):
    """Make ``fn(person, *inputs)`` a Gradio callback ``(local_name, *inputs, profile)`` that runs only for a
    person holding ``role``; errors of the workflow become ``gr.Error`` (here, and nowhere else).

    ``profile`` is typed ``gr.OAuthProfile | None``, so Gradio fills it from the server's session cookie
    (what the Hub's sign-in set); a request cannot send it. ``local_name`` counts only in local mode.
    """

    def decorate(fn):
        inner = list(inspect.signature(fn).parameters.values())[1:]  # after `person`
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        outer = [
            inspect.Parameter("local_name", kind, annotation=str),
            *inner,
            inspect.Parameter("profile", kind, default=None, annotation=Optional[gr.OAuthProfile]),  # noqa: UP045 (Gradio compares the hint to Optional[...])
        ]

        @functools.wraps(fn)
        def callback(local_name, *args):
            *inputs, profile = args
            try:
                person = policy.resolve(role, hub_username=profile.username if profile else None, local_name=local_name)
                return fn(person, *inputs)
            except (AuthFaceError, ValueError) as error:
                raise gr.Error(str(error)) from None

        callback.__signature__ = inspect.Signature(outer)
        callback.__annotations__ = {"local_name": str, "profile": outer[-1].annotation}  # what Gradio reads
        callback.required_role = role  # tests check that every callback of the app has one
        return callback

    return decorate


def build_demo(workspace: Workspace, policy: ReviewerPolicy, settings: AnnotationSettings) -> gr.Blocks:
    """The review screen, the team table, and ingest/publish (admins), on one ``workspace``.

    Nothing in the page config is project data: counters, tables, choices and the viewer's tiles
    arrive through checked callbacks (and the checked tile route) once the person is known. The
    open pair's id and the typed text live in the page, so a restarted server takes the page back.
    """
    lock_seconds = workspace.store.lock_seconds

    with gr.Blocks(title="AuthFace Studio · annotation", delete_cache=(CACHE_SWEEP_S, CACHE_KEEP_S)) as demo:
        with gr.Row(elem_id="top-row"):
            gr.Markdown(
                "**AuthFace Studio · retouch review**  "
                + ("Sign in with Hugging Face, then **Start**." if policy.hosted else "Local mode."),
                elem_id="title",
            )
            counters = gr.Markdown("", elem_id="counters")
        with gr.Row(elem_id="start-row"):
            if policy.hosted:
                gr.LoginButton()
            local_name = gr.Textbox(
                label="Your name", visible=not policy.hosted, scale=2, elem_id="reviewer-name", max_lines=1
            )
            queue = gr.Radio(list(QUEUE_ROLES), value="review", label="Queue", scale=1)
            start_button = gr.Button("Start reviewing", variant="primary", elem_id="start-button", scale=1)
        with gr.Tab("Review"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=4):
                    gr.HTML(VIEWER_HTML, elem_id="viewer-host")
                with gr.Column(scale=1, min_width=320):
                    with gr.Row():
                        accept_button = gr.Button(
                            "Accept (A)", variant="primary", elem_id="accept-button", min_width=60
                        )
                        reject_button = gr.Button("Reject (R)", variant="stop", elem_id="reject-button", min_width=60)
                        skip_button = gr.Button("Skip (S)", elem_id="skip-button", min_width=60)
                        undo_button = gr.Button("Undo (U)", elem_id="undo-button", min_width=60)
                    facts = gr.Markdown("Press **Start reviewing**.", elem_id="facts")
                    tags = gr.CheckboxGroup(
                        list(PHOTO_ATTRIBUTES), label="Attributes the retouch changed (1-4)", elem_id="tags"
                    )
                    reasons = gr.CheckboxGroup(list(REJECT_REASONS), label="Reject reasons", elem_id="reasons")
                    caption = gr.Textbox(label="Caption (C)", lines=2, elem_id="caption")
                    note_label = "Note for the team" + ("" if settings.publish_notes else " (never published)")
                    note = gr.Textbox(label=note_label, lines=2, elem_id="note")
                    with gr.Accordion("Your recent decisions", open=False, elem_id="filmstrip"):
                        history = gr.Radio([], label="Newest first; pick one to change it", elem_id="history")
                        with gr.Row():
                            change_accept = gr.Button("Change to accept", size="sm", elem_id="change-accept")
                            change_reject = gr.Button("Change to reject", size="sm", elem_id="change-reject")
                    with gr.Accordion("Review guidelines and keys", open=False):
                        gr.Markdown(REVIEW_GUIDELINES)
            # what the page holds: the open pair, the viewer's tiles and the faces' regions (JSON)
            pair_box = gr.Textbox(visible=False, elem_id="pair-id")
            viewer_spec = gr.Textbox(visible=False, elem_id="viewer-spec")
            regions_spec = gr.Textbox(visible=False, elem_id="regions-spec")
        with gr.Tab("Team"):
            team = gr.Dataframe(headers=["reviewer", "accepted", "rejected", "skipped", "agreement"])
            refresh_team = gr.Button("Refresh")
        with gr.Tab("Ingest & publish") as admin_tab:
            gr.Markdown("For the project's admins.")
            with gr.Row():
                # any value reaches ingest, which itself accepts only the configured folders: one check, ours
                source = gr.Dropdown(label="Source folder on the server", choices=[], allow_custom_value=True, scale=3)
                original_suffix = gr.Textbox(label="Original suffix", value="", scale=1)
                retouched_suffix = gr.Textbox(label="Retouch suffix", value="_retouched", scale=1)
            uploads = gr.File(
                label="…or upload pairs (named by the suffixes above)",
                file_count="multiple",
                type="filepath",
                file_types=[".jpg", ".jpeg", ".png", ".tif", ".tiff"],
            )
            pairs_csv = gr.File(label="Pairs CSV (original,retouched; paths inside the folder)", file_types=[".csv"])
            ingest_button = gr.Button("Ingest")
            ingest_report = gr.Markdown()
            publish_target = gr.Markdown()
            publish_button = gr.Button("Publish accepted pairs")
            publish_report = gr.Markdown()
        heartbeat_timer = gr.Timer(lock_seconds / HEARTBEATS_PER_LOCK, active=False)
        queue_timer = gr.Timer(QUEUE_POLL_S, active=False)

        # -- callbacks: one call into authface_core each ---------------------------------------
        view_outputs = [
            pair_box,
            viewer_spec,
            facts,
            counters,
            tags,
            reasons,
            caption,
            note,
            regions_spec,
            history,
            heartbeat_timer,
            queue_timer,
        ]

        def filmstrip(person: str) -> dict:
            items = workspace.history(person)
            choices = [
                (
                    f"{item.verdict} · {item.name}" + (f" · {', '.join(item.reasons)}" if item.reasons else ""),
                    item.decision_id,
                )
                for item in items
            ]
            return {history: gr.Radio(choices=choices, value=None)}

        def screen(person: str, queue: str, view: PairView | None, shown_pair: str) -> dict:
            """The review screen for ``view``; typed text stays while the pair on screen stays the same."""
            spec = view.viewer_spec(f"{TILE_ROUTE}/{workspace.tile_token(person)}/") if view else None
            update = {
                pair_box: view.pair_id if view else "",
                viewer_spec: json.dumps(spec)
                if spec
                else json.dumps({"empty": workspace.queue_status(person, queue=queue)}),
                facts: view.facts_markdown if view else workspace.queue_status(person, queue=queue),
                counters: workspace.counters_markdown(person),
                heartbeat_timer: gr.Timer(active=view is not None),
                queue_timer: gr.Timer(active=view is None),
                **filmstrip(person),
            }
            if update[pair_box] != shown_pair:
                update.update({tags: [], reasons: [], caption: "", note: "", regions_spec: ""})
            return update

        @endpoint(policy, MEMBER)
        def open_screen(person: str, queue: str, shown_pair: str):
            policy.require(person, queue_role(queue))
            return screen(person, queue, workspace.open_next(person, queue=queue), shown_pair)

        @endpoint(policy, MEMBER)
        def poll_queue(person: str, queue: str, shown_pair: str):
            if shown_pair:  # a pair is on screen: nothing to look for
                return {queue_timer: gr.Timer(active=False)}
            policy.require(person, queue_role(queue))
            return screen(person, queue, workspace.open_next(person, queue=queue), shown_pair)

        def decide_with(verdict: str):
            @endpoint(policy, MEMBER)
            def decide(
                person: str,
                pair_id: str,
                queue: str,
                chosen_tags: list[str],
                chosen_reasons: list[str],
                text: str,
                team_note: str,
            ):
                policy.require(person, queue_role(queue))
                if not pair_id:
                    raise gr.Error("Press Start reviewing first.")
                workspace.decide(
                    person,
                    pair_id,
                    verdict,
                    queue=queue,
                    tags=chosen_tags,
                    caption=text,
                    note=team_note,
                    reasons=chosen_reasons,
                )
                return screen(person, queue, workspace.open_next(person, queue=queue), pair_id)

            decide.__name__ = verdict
            return decide

        @endpoint(policy, MEMBER)
        def undo(person: str, queue: str, shown_pair: str):
            undone = workspace.undo(person)
            if undone is None:
                gr.Info("Nothing to undo.")
                return screen(person, queue, workspace.open_next(person, queue=queue), shown_pair)
            decision = undone.decision
            view = workspace.open_next(person, queue=decision.role)
            name = html.escape(view.names[0] if view else decision.pair_id)  # a toast may render HTML
            gr.Info(f"Undid your {decision.verdict} of {name}.")
            update = screen(person, decision.role, view, shown_pair)
            return {
                **update,
                tags: list(decision.tags),
                reasons: list(decision.reasons),
                caption: decision.caption,
                note: decision.note,
                regions_spec: "",
            }

        def change_to(verdict: str):
            @endpoint(policy, MEMBER)
            def change(person: str, decision_id: str | None, chosen_reasons: list[str]):
                if not decision_id:
                    raise gr.Error("Pick a decision in the list first.")
                workspace.change(person, decision_id, verdict, reasons=chosen_reasons)
                gr.Info(f"Changed to {verdict}.")
                return {**filmstrip(person), counters: workspace.counters_markdown(person)}

            change.__name__ = f"change_to_{verdict}"
            return change

        @endpoint(policy, MEMBER)
        def heartbeat(person: str, pair_id: str, queue: str):
            if pair_id and not workspace.heartbeat(person, pair_id, queue=queue):
                gr.Warning(
                    "This pair went to another reviewer while this page was away. Your caption, tags "
                    "and note are still here: copy them, then press Start reviewing."
                )
                return {heartbeat_timer: gr.Timer(active=False)}
            return {}

        @endpoint(policy, MEMBER)
        def load_regions(person: str, pair_id: str):
            if not pair_id:
                return {regions_spec: ""}
            found = workspace.regions(person, pair_id)
            return {regions_spec: json.dumps({"pair": pair_id, "faces": found.faces, "problem": found.problem})}

        @endpoint(policy, MEMBER)
        def team_table(person: str):
            return {team: workspace.reviewer_table(), counters: workspace.counters_markdown(person)}

        @endpoint(policy, "admin")
        def admin_view(person: str):
            target = f"Publishes to **{settings.repo_id}**." if settings.repo_id else "Publishing is off (no repo_id)."
            return {source: gr.Dropdown(choices=list(workspace.sources)), publish_target: target}

        @endpoint(policy, "admin")
        def ingest(
            person: str,
            folder: str | None,
            files: list[str] | None,
            csv_file: str | None,
            original_end: str,
            retouched_end: str,
            progress=gr.Progress(),  # noqa: B008 (Gradio's injection idiom)
        ):
            def report_progress(done: int, total: int) -> None:
                progress(done / max(total, 1), desc=f"ingest: {done}/{total} files")

            rule = NamingRule(original_suffix=original_end, retouched_suffix=retouched_end)
            options = dict(rule=rule, pairs_csv=csv_file, progress=report_progress)
            if files:
                report, added = workspace.ingest_uploads(files, **options)
            elif folder:
                report, added = workspace.ingest(folder, **options)
            else:
                raise gr.Error("Choose a source folder or upload the files.")
            return {ingest_report: ingest_report_markdown(report, added), counters: workspace.counters_markdown(person)}

        @endpoint(policy, "admin")
        def publish(person: str, progress=gr.Progress()):  # noqa: B008 (Gradio's injection idiom)
            config = PublishConfig.from_settings(settings, guidelines=REVIEW_GUIDELINES)
            result = workspace.publish(
                config, progress=lambda done, total, path: progress(done / max(total, 1), desc=f"publish: {path}")
            )
            return {publish_report: publish_report_markdown(result), counters: workspace.counters_markdown(person)}

        # -- events ------------------------------------------------------------------------------
        regions_after = dict(fn=load_regions, inputs=[local_name, pair_box], outputs=[regions_spec], api_name=False)
        start_button.click(open_screen, [local_name, queue, pair_box], view_outputs, api_name="open").success(
            **{**regions_after, "api_name": "regions"}
        )
        queue_timer.tick(poll_queue, [local_name, queue, pair_box], view_outputs, api_name="poll").success(
            **regions_after
        )
        decision_inputs = [local_name, pair_box, queue, tags, reasons, caption, note]
        for button, verdict in ((accept_button, "accept"), (reject_button, "reject"), (skip_button, "skip")):
            button.click(
                decide_with(verdict), decision_inputs, view_outputs, api_name=verdict, concurrency_limit=None
            ).success(**regions_after)
        undo_button.click(undo, [local_name, queue, pair_box], view_outputs, api_name="undo").success(**regions_after)
        for button, verdict in ((change_accept, "accept"), (change_reject, "reject")):
            button.click(
                change_to(verdict), [local_name, history, reasons], [history, counters], api_name=f"change_to_{verdict}"
            )
        heartbeat_timer.tick(heartbeat, [local_name, pair_box, queue], [heartbeat_timer], api_name="heartbeat")
        viewer_spec.change(None, [viewer_spec], None, js="(spec) => window.annotate.show(spec)")
        regions_spec.change(None, [regions_spec], None, js="(regions) => window.annotate.regions(regions)")
        refresh_team.click(team_table, [local_name], [team, counters], api_name="team")
        admin_tab.select(admin_view, [local_name], [source, publish_target], api_name="admin")
        ingest_button.click(
            ingest,
            [local_name, source, uploads, pairs_csv, original_suffix, retouched_suffix],
            [ingest_report, counters],
            api_name="ingest",
        )
        # one publish at a time: two would plan the same accepted pairs into shards
        publish_button.click(publish, [local_name], [publish_report, counters], api_name="publish", concurrency_limit=1)
        demo.load(None, js=PAGE_JS)
    return demo


def launch_options(
    workspace: Workspace, settings: AnnotationSettings, policy: ReviewerPolicy, *, on_space: bool
) -> dict:
    """``demo.launch`` arguments: where to listen, what the web server may never serve, and the tile route.

    The project folder and the source folders are blocked outright (the database, originals,
    uploads); the viewer's tiles reach the page only through :func:`tile_route`, registered ahead
    of Gradio's own routes. The browser's run history is off: it would keep captions and notes in
    localStorage.
    """
    return dict(
        server_name=None if on_space else "127.0.0.1",  # a Space sets GRADIO_SERVER_NAME=0.0.0.0
        server_port=settings.port,
        blocked_paths=[str(workspace.root), *(str(folder) for folder in workspace.sources.values())],
        run_history=False,
        max_file_size=MAX_UPLOAD,
        css_paths=CSS_FILES,
        show_error=True,
        app_kwargs={"routes": [tile_route(workspace, policy)]},
    )


if __name__ == "__main__":
    from annotate.cli import main

    main()
