"""The annotation app: photographers review original/retouch pairs and publish the accepted ones.

Thin on purpose (STYLE.md, section 3): every rule lives in ``authface_core.annotation`` (the
:class:`~authface_core.annotation.session.Workspace`); each callback here makes one call there.

Every Python callback is wrapped by :func:`endpoint`, which identifies the person on the server
for each request (the signed-in Hugging Face user that Gradio reads from its own session in
hosted mode, the typed name in local mode), checks the role the callback needs, and turns
:class:`~authface_core.errors.AuthFaceError` into ``gr.Error``: an endpoint called directly
(HTTP, ``gradio_client``) is checked exactly like a button. Callbacks return
``{component: value}``. The page's JS and CSS are ``app.js`` and ``app.css`` beside this file.

Run ``python -m annotate [PROJECT_FOLDER]``, ``authface-annotate`` or ``python annotate/app.py``;
``--help`` lists the settings (``authface_core.annotation.config``).
"""

from __future__ import annotations

import base64
import functools
import inspect
import sys
from pathlib import Path
from typing import Optional

if __package__ in (None, ""):  # run as a file (python annotate/app.py, a Space's app_file): import from the repo
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gradio as gr  # noqa: E402

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
from authface_core.annotation.store import PHOTO_ATTRIBUTES  # noqa: E402
from authface_core.errors import AuthFaceError  # noqa: E402

HERE = Path(__file__).resolve().parent
APP_JS = (HERE / "app.js").read_text()
APP_CSS = HERE / "app.css"
# The role a queue needs.
QUEUE_ROLES = {"review": "reviewer", "adjudication": "adjudicator"}


def queue_role(queue: str) -> str:
    """The role that deciding in ``queue`` needs (a request may send any string)."""
    if queue not in QUEUE_ROLES:
        raise ValueError(f"queue must be one of {', '.join(QUEUE_ROLES)}, got {queue!r}")
    return QUEUE_ROLES[queue]


# An open page renews its pair's lock this many times per lock period.
HEARTBEATS_PER_LOCK = 3
NO_PAIR = "<div id='ab-viewer'><p>No pair open.</p></div>"
# Gradio's copies of what the page was given (previews, crops, uploads) are deleted after six hours,
# checked hourly: a long review would otherwise fill the Space's disk with them.
CACHE_SWEEP_S, CACHE_KEEP_S = 3600, 6 * 3600
# Largest file an upload may hold: a 100 MP 16-bit TIFF is ~600 MB.
MAX_UPLOAD = "1gb"


def ab_viewer_html(original: Path, retouched: Path) -> str:
    """The flip viewer's markup with both previews inlined (a preview is ~1 MB of JPEG)."""

    def source(path: Path) -> str:
        return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()

    return (
        "<div id='ab-viewer' data-side='original' data-zoom='fit'>"
        "<div class='ab-label'>ORIGINAL</div><div class='ab-stage'>"
        f"<img class='ab-img ab-original' alt='original' src='{source(original)}'>"
        f"<img class='ab-img ab-retouched' alt='retouch' src='{source(retouched)}'>"
        "</div></div>"
    )


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

    Nothing in the page config is project data: counters, tables and choices arrive through
    checked callbacks once the person is known.
    """
    lock_seconds = workspace.store.lock_seconds

    with gr.Blocks(title="AuthFace Studio · annotation", delete_cache=(CACHE_SWEEP_S, CACHE_KEEP_S)) as demo:
        pair_state = gr.State("")
        gr.Markdown(
            "# AuthFace Studio · retouch review\n"
            + ("Sign in with Hugging Face, then press **Start reviewing**." if policy.hosted else "Local mode.")
        )
        counters = gr.Markdown("", elem_id="counters")
        with gr.Row():
            if policy.hosted:
                gr.LoginButton()
            local_name = gr.Textbox(label="Your name", visible=not policy.hosted, scale=2, elem_id="reviewer-name")
            queue = gr.Radio(list(QUEUE_ROLES), value="review", label="Queue", scale=1)
            start_button = gr.Button("Start reviewing", variant="primary", elem_id="start-button", scale=1)
        with gr.Tab("Review"):
            with gr.Row():
                accept_button = gr.Button("Accept (A)", variant="primary", elem_id="accept-button")
                reject_button = gr.Button("Reject (R)", variant="stop", elem_id="reject-button")
                skip_button = gr.Button("Skip (S)", elem_id="skip-button")
                flip_button = gr.Button("Flip A/B (F)", elem_id="flip-button")
                zoom_button = gr.Button("Fit / 100%", elem_id="zoom-button")
                undo_button = gr.Button("Undo (U)", elem_id="undo-button")
            with gr.Row():
                with gr.Column(scale=3):
                    with gr.Tab("Flip"):
                        ab_viewer = gr.HTML(NO_PAIR)
                    with gr.Tab("Slider"):
                        slider = gr.ImageSlider(label="Original | Retouch", type="filepath", max_height=720)
                    with gr.Tab("Side by side"):
                        with gr.Row():
                            original_image = gr.Image(label="Original", type="filepath", interactive=False)
                            retouched_image = gr.Image(label="Retouch", type="filepath", interactive=False)
                    crops = gr.Gallery(label="100% crops: eyes and mouth", columns=4, height=260, object_fit="contain")
                with gr.Column(scale=1):
                    facts = gr.Markdown("Press **Start reviewing**.", elem_id="facts")
                    tags = gr.CheckboxGroup(list(PHOTO_ATTRIBUTES), label="Attributes the retouch changed")
                    caption = gr.Textbox(label="Caption", lines=2, elem_id="caption")
                    note_label = "Note for the team" + ("" if settings.publish_notes else " (never published)")
                    note = gr.Textbox(label=note_label, lines=2)
                    with gr.Accordion("Review guidelines", open=False):
                        gr.Markdown(REVIEW_GUIDELINES)
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

        # -- callbacks: one call into authface_core each ---------------------------------------
        view_outputs = [
            pair_state,
            slider,
            ab_viewer,
            original_image,
            retouched_image,
            facts,
            counters,
            tags,
            caption,
            note,
            crops,
            heartbeat_timer,
        ]

        def screen(person: str, queue: str, view: PairView | None, shown_pair: str) -> dict:
            """The review screen for ``view``; typed text stays while the pair on screen stays the same."""
            images = (str(view.original_preview), str(view.retouched_preview)) if view else (None, None)
            update = {
                pair_state: view.pair_id if view else "",
                slider: images if view else None,
                ab_viewer: ab_viewer_html(view.original_preview, view.retouched_preview) if view else NO_PAIR,
                original_image: images[0],
                retouched_image: images[1],
                facts: view.facts_markdown if view else workspace.queue_status(person, queue=queue),
                counters: workspace.counters_markdown(person),
                heartbeat_timer: gr.Timer(active=view is not None),
            }
            if update[pair_state] != shown_pair:
                update.update({tags: [], caption: "", note: "", crops: []})
            return update

        @endpoint(policy, MEMBER)
        def open_screen(person: str, queue: str, shown_pair: str):
            policy.require(person, queue_role(queue))
            return screen(person, queue, workspace.open_next(person, queue=queue), shown_pair)

        def decide_with(verdict: str):
            @endpoint(policy, MEMBER)
            def decide(person: str, pair_id: str, queue: str, chosen_tags: list[str], text: str, team_note: str):
                policy.require(person, queue_role(queue))
                if not pair_id:
                    raise gr.Error("Press Start reviewing first.")
                workspace.decide(person, pair_id, verdict, queue=queue, tags=chosen_tags, caption=text, note=team_note)
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
            gr.Info(f"Undid your {decision.verdict} of pair {decision.pair_id}.")
            update = screen(person, decision.role, workspace.open_next(person, queue=decision.role), shown_pair)
            return {**update, tags: list(decision.tags), caption: decision.caption, note: decision.note}

        @endpoint(policy, MEMBER)
        def heartbeat(person: str, pair_id: str, queue: str):
            if pair_id and not workspace.heartbeat(person, pair_id, queue=queue):
                gr.Warning(
                    f"Pair {pair_id} went to another reviewer while this page was away. Your caption, tags "
                    "and note are still here: copy them, then press Start reviewing."
                )
                return {heartbeat_timer: gr.Timer(active=False)}
            return {}

        @endpoint(policy, MEMBER)
        def load_crops(person: str, pair_id: str):
            if not pair_id:
                return {crops: []}
            crop_set = workspace.crops(person, pair_id)
            if crop_set.problem:
                gr.Info(f"No crops: {crop_set.problem}")
            return {
                crops: [
                    (str(path), f"{crop.region} · {side}")
                    for crop in crop_set.crops
                    for side, path in (("original", crop.original), ("retouch", crop.retouched))
                ]
            }

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
        crops_after = dict(fn=load_crops, inputs=[local_name, pair_state], outputs=[crops], api_name="crops")
        start_button.click(open_screen, [local_name, queue, pair_state], view_outputs, api_name="open").success(
            **crops_after
        )
        decision_inputs = [local_name, pair_state, queue, tags, caption, note]
        for button, verdict in ((accept_button, "accept"), (reject_button, "reject"), (skip_button, "skip")):
            button.click(
                decide_with(verdict), decision_inputs, view_outputs, api_name=verdict, concurrency_limit=None
            ).success(**{**crops_after, "api_name": False})
        undo_button.click(undo, [local_name, queue, pair_state], view_outputs, api_name="undo").success(
            **{**crops_after, "api_name": False}
        )
        heartbeat_timer.tick(heartbeat, [local_name, pair_state, queue], [heartbeat_timer], api_name="heartbeat")
        flip_button.click(None, js="() => window.annotate.flip()")
        zoom_button.click(None, js="() => window.annotate.zoom()")
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
        demo.load(None, js=APP_JS)
    return demo


def launch_options(workspace: Workspace, settings: AnnotationSettings, *, on_space: bool) -> dict:
    """``demo.launch`` arguments: where to listen, and what the web server may never serve.

    The project folder and the source folders are blocked outright (the database, originals,
    uploads); previews and crops reach the page only as the handed-out copies the callbacks return.
    The browser's run history is off: it would keep previews, captions and notes in localStorage.
    """
    return dict(
        server_name=None if on_space else "127.0.0.1",  # a Space sets GRADIO_SERVER_NAME=0.0.0.0
        server_port=settings.port,
        blocked_paths=[str(workspace.root), *(str(folder) for folder in workspace.sources.values())],
        run_history=False,
        max_file_size=MAX_UPLOAD,
        css_paths=[APP_CSS],
        show_error=True,
    )


if __name__ == "__main__":
    from annotate.cli import main

    main()
