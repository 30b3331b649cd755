"""The annotation app: photographers review original/retouch pairs and publish the accepted ones.

Thin on purpose (STYLE.md, section 3): every rule lives in ``authface_core.annotation`` (the
:class:`~authface_core.annotation.session.Workspace`); each callback here makes one call there
and turns :class:`~authface_core.errors.AuthFaceError` into ``gr.Error``.

Run ``python -m annotate [PROJECT_FOLDER]`` (or ``python annotate/app.py``). Environment:
``ANNOTATE_ROOT`` (project folder, default ``./annotation-project``), ``ANNOTATE_REVIEWERS``
(allow-list), ``ANNOTATE_OVERLAP`` (decisions per pair), ``HF_TOKEN`` (publishing).
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import gradio as gr

from authface_core.annotation.ingest import NamingRule
from authface_core.annotation.publish import PublishConfig
from authface_core.annotation.reviewers import ReviewerPolicy, resolve_reviewer
from authface_core.annotation.session import (
    REVIEW_GUIDELINES,
    Workspace,
    ingest_report_markdown,
    publish_report_markdown,
)
from authface_core.annotation.store import PHOTO_ATTRIBUTES
from authface_core.errors import AuthFaceError, ReviewerNotAllowedError

# Keys: one listener for the page; typing in a text field never triggers a decision.
KEYBOARD_JS = """
() => {
  if (window.__annotateKeys) return;
  window.__annotateKeys = true;
  const click = (id) => document.getElementById(id)?.click();
  document.addEventListener('keydown', (event) => {
    const target = event.target;
    if (target && (['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName) || target.isContentEditable)) return;
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === 'z') {
      event.preventDefault(); click('undo-button'); return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const buttons = {a: 'accept-button', r: 'reject-button', s: 'skip-button', u: 'undo-button', f: 'flip-button'};
    const id = buttons[event.key.toLowerCase()];
    if (id) { event.preventDefault(); click(id); }
  });
}
"""

# A/B flip: both previews stacked in one scrolling stage, so flipping keeps zoom and position.
FLIP_JS = """
() => {
  const viewer = document.getElementById('ab-viewer');
  if (!viewer) return;
  viewer.dataset.side = viewer.dataset.side === 'retouched' ? 'original' : 'retouched';
  viewer.querySelector('.ab-label').textContent = viewer.dataset.side === 'retouched' ? 'RETOUCH' : 'ORIGINAL';
}
"""
ZOOM_JS = """
() => {
  const viewer = document.getElementById('ab-viewer');
  if (viewer) viewer.dataset.zoom = viewer.dataset.zoom === 'fit' ? 'actual' : 'fit';
}
"""
AB_VIEWER_CSS = """
#ab-viewer .ab-stage { position: relative; max-height: 72vh; overflow: auto; }
#ab-viewer[data-zoom=fit] .ab-img { width: 100%; height: auto; max-height: 72vh; object-fit: contain; }
#ab-viewer[data-zoom=actual] .ab-img { width: auto; max-width: none; }
#ab-viewer .ab-retouched { position: absolute; left: 0; top: 0; visibility: hidden; }
#ab-viewer[data-side=retouched] .ab-retouched { visibility: visible; }
#ab-viewer[data-side=retouched] .ab-original { visibility: hidden; }
#ab-viewer .ab-label { font-weight: 700; letter-spacing: .08em; padding: 4px 0; }
"""


def ab_viewer_html(original: Path | None, retouched: Path | None) -> str:
    """The flip viewer's markup with both previews inlined (a preview is ~1 MB of JPEG)."""
    if original is None or retouched is None:
        return "<div id='ab-viewer'><p>No pair open.</p></div>"

    def source(path: Path) -> str:
        return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()

    return (
        f"<style>{AB_VIEWER_CSS}</style>"
        "<div id='ab-viewer' data-side='original' data-zoom='fit'>"
        "<div class='ab-label'>ORIGINAL</div><div class='ab-stage'>"
        f"<img class='ab-img ab-original' alt='original' src='{source(original)}'>"
        f"<img class='ab-img ab-retouched' alt='retouch' src='{source(retouched)}'>"
        "</div></div>"
    )


def build_demo(workspace: Workspace | None = None, policy: ReviewerPolicy | None = None) -> gr.Blocks:
    """The review screen, the team table, and ingest/publish, on one ``workspace`` (default: from the environment)."""
    workspace = workspace or Workspace.from_env()
    policy = policy or ReviewerPolicy.from_env()

    # -- callbacks: one call into authface_core each ----------------------------------------
    def who(local_name: str, profile: gr.OAuthProfile | None) -> str:
        try:
            return resolve_reviewer(policy, hub_username=profile.username if profile else None, local_name=local_name)
        except ReviewerNotAllowedError as error:
            raise gr.Error(str(error)) from None

    def show_next(reviewer: str, queue: str):
        try:
            view = workspace.open_next(reviewer, queue=queue)
        except AuthFaceError as error:
            raise gr.Error(str(error)) from None
        counters = workspace.counters_markdown(reviewer)
        if view is None:
            status = workspace.queue_status(reviewer, queue=queue)
            return ("", None, ab_viewer_html(None, None), None, None, status, counters, [], "", "", [])
        images = (str(view.original_preview), str(view.retouched_preview))
        return (
            view.pair_id,
            images,
            ab_viewer_html(view.original_preview, view.retouched_preview),
            images[0],
            images[1],
            view.facts_markdown,
            counters,
            [],
            "",
            "",
            [],
        )

    def start(local_name: str, queue: str, profile: gr.OAuthProfile | None):
        reviewer = who(local_name, profile)
        return (reviewer, *show_next(reviewer, queue))

    def load_crops(pair_id: str):
        if not pair_id:
            return []
        try:
            crop_set = workspace.crops(pair_id)
        except AuthFaceError as error:
            gr.Warning(f"No crops: {error}")
            return []
        if crop_set.problem:
            gr.Info(f"No crops: {crop_set.problem}")
        return [
            (str(path), f"{crop.region} · {side}")
            for crop in crop_set.crops
            for side, path in (("original", crop.original), ("retouch", crop.retouched))
        ]

    def decide_with(verdict: str):
        def decide(reviewer: str, pair_id: str, queue: str, tags: list[str], caption: str, note: str):
            if not reviewer or not pair_id:
                raise gr.Error("Start reviewing first: type your name (or sign in) and press Start.")
            try:
                workspace.decide(reviewer, pair_id, verdict, queue=queue, tags=tags, caption=caption, note=note)
            except AuthFaceError as error:
                raise gr.Error(str(error)) from None
            return show_next(reviewer, queue)

        return decide

    def undo(reviewer: str, queue: str):
        if not reviewer:
            raise gr.Error("Nothing to undo yet.")
        try:
            undone = workspace.undo(reviewer)
        except AuthFaceError as error:
            raise gr.Error(str(error)) from None
        if undone is None:
            gr.Info("Nothing to undo.")
        else:
            gr.Info(f"Undid your {undone.decision.verdict} of pair {undone.decision.pair_id}.")
        return show_next(reviewer, queue)

    def ingest(
        folder: str,
        uploads: list[str] | None,
        original_suffix: str,
        retouched_suffix: str,
        pairs_csv: str,
        progress=gr.Progress(),
    ):  # noqa: B008 (Gradio's injection idiom)
        def report_progress(done: int, total: int) -> None:
            progress(done / max(total, 1), desc=f"ingest: {done}/{total} files")

        try:
            rule = NamingRule(original_suffix=original_suffix, retouched_suffix=retouched_suffix)
            if uploads:
                report, added = workspace.ingest_uploads(uploads, rule=rule, progress=report_progress)
            elif folder.strip():
                report, added = workspace.ingest(
                    folder.strip(), rule=rule, pairs_csv=pairs_csv.strip() or None, progress=report_progress
                )
            else:
                raise gr.Error("Give a folder of pairs or upload the files.")
        except AuthFaceError as error:
            raise gr.Error(str(error)) from None
        return ingest_report_markdown(report, added), workspace.counters_markdown()

    def publish(repo_id: str, license_id: str, oauth_token: gr.OAuthToken | None, progress=gr.Progress()):  # noqa: B008 (Gradio's injection idiom)
        try:
            config = PublishConfig(
                repo_id=repo_id.strip(), license=license_id.strip() or "other", guidelines=REVIEW_GUIDELINES
            )
            result = workspace.publish(
                config,
                token=oauth_token.token if oauth_token else None,
                progress=lambda done, total, path: progress(done / max(total, 1), desc=f"publish: {path}"),
            )
        except (AuthFaceError, ValueError) as error:
            raise gr.Error(str(error)) from None
        return publish_report_markdown(result), workspace.counters_markdown()

    # -- layout ---------------------------------------------------------------------------
    with gr.Blocks(title="AuthFace Studio · annotation") as demo:
        reviewer_state = gr.State("")
        pair_state = gr.State("")
        gr.Markdown("# AuthFace Studio · retouch review")
        counters = gr.Markdown(workspace.counters_markdown(), elem_id="counters")
        with gr.Row():
            if policy.require_login:
                gr.LoginButton()
            local_name = gr.Textbox(
                label="Your name", visible=not policy.require_login, scale=2, elem_id="reviewer-name"
            )
            queue = gr.Radio(["review", "adjudication"], value="review", label="Queue", scale=1)
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
                        ab_viewer = gr.HTML(ab_viewer_html(None, None))
                    with gr.Tab("Slider"):
                        slider = gr.ImageSlider(label="Original | Retouch", type="filepath", max_height=720)
                    with gr.Tab("Side by side"):
                        with gr.Row():
                            original_image = gr.Image(label="Original", type="filepath", interactive=False)
                            retouched_image = gr.Image(label="Retouch", type="filepath", interactive=False)
                    crops = gr.Gallery(label="100% crops: eyes and mouth", columns=4, height=260, object_fit="contain")
                with gr.Column(scale=1):
                    facts = gr.Markdown("Type your name and press **Start reviewing**.", elem_id="facts")
                    tags = gr.CheckboxGroup(list(PHOTO_ATTRIBUTES), label="Attributes the retouch changed")
                    caption = gr.Textbox(label="Caption", lines=2)
                    note = gr.Textbox(label="Note for the team", lines=2)
                    with gr.Accordion("Review guidelines", open=False):
                        gr.Markdown(REVIEW_GUIDELINES)
        with gr.Tab("Team"):
            team = gr.Dataframe(
                headers=["reviewer", "accepted", "rejected", "skipped", "agreement"], value=workspace.reviewer_table
            )
            refresh_team = gr.Button("Refresh")
        with gr.Tab("Ingest & publish"):
            with gr.Row():
                folder = gr.Textbox(label="Folder of pairs (on this machine)", scale=3)
                original_suffix = gr.Textbox(label="Original suffix", value="", scale=1)
                retouched_suffix = gr.Textbox(label="Retouch suffix", value="_retouched", scale=1)
                pairs_csv = gr.Textbox(label="…or a pairs CSV (original,retouched)", scale=2)
            uploads = gr.File(
                label="…or upload pairs (named by the suffixes above)",
                file_count="multiple",
                type="filepath",
                file_types=[".jpg", ".jpeg", ".png", ".tif", ".tiff"],
            )
            ingest_button = gr.Button("Ingest")
            ingest_report = gr.Markdown()
            with gr.Row():
                repo_id = gr.Textbox(label="Dataset repo (namespace/name)", scale=3)
                license_id = gr.Textbox(label="Licence", value="other", scale=1)
            publish_button = gr.Button("Publish accepted pairs")
            publish_report = gr.Markdown()

        # -- events ---------------------------------------------------------------------------
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
        ]
        decision_inputs = [reviewer_state, pair_state, queue, tags, caption, note]
        start_button.click(start, [local_name, queue], [reviewer_state, *view_outputs]).then(
            load_crops, pair_state, crops
        )
        for button, verdict in ((accept_button, "accept"), (reject_button, "reject"), (skip_button, "skip")):
            button.click(decide_with(verdict), decision_inputs, view_outputs, concurrency_limit=None).then(
                load_crops, pair_state, crops
            )
        undo_button.click(undo, [reviewer_state, queue], view_outputs).then(load_crops, pair_state, crops)
        flip_button.click(None, js=FLIP_JS)
        zoom_button.click(None, js=ZOOM_JS)
        refresh_team.click(workspace.reviewer_table, None, team)
        ingest_button.click(
            ingest, [folder, uploads, original_suffix, retouched_suffix, pairs_csv], [ingest_report, counters]
        )
        # one publish at a time: two would plan the same accepted pairs into shards
        publish_button.click(publish, [repo_id, license_id], [publish_report, counters], concurrency_limit=1)
        demo.load(None, js=KEYBOARD_JS)
    return demo


def main(argv: list[str] | None = None) -> None:
    """Launch on the project folder given as the first argument (or ``ANNOTATE_ROOT``)."""
    argv = sys.argv[1:] if argv is None else argv
    workspace = Workspace.from_env(argv[0] if argv else None)
    demo = build_demo(workspace)
    demo.queue(default_concurrency_limit=4).launch(allowed_paths=[str(workspace.root.resolve())])


if __name__ == "__main__":
    main()
