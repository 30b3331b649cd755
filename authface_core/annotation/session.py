"""The review workflow as the app uses it: one :class:`Workspace` per store, shared by all reviewers.

Every callback of ``annotate/app.py`` is one call here, so the whole screen logic (what to show
next, what a key press records, what the counters say) is testable without a browser.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .ingest import IngestReport, NamingRule, ingest_folder
from .previews import CropSet, Prefetcher, PreviewCache
from .publish import PublishConfig, PublishResult, publish
from .store import Decision, RecordedDecision, ReviewStore

# The app's environment: its project folder, and how many decisions each pair needs.
ROOT_ENV = "ANNOTATE_ROOT"
OVERLAP_ENV = "ANNOTATE_OVERLAP"
DEFAULT_ROOT = "annotation-project"

# How many pairs of a reviewer's queue are prepared ahead on the background thread.
PREFETCH_DEPTH = 3

REVIEW_GUIDELINES = """\
**Accept** a pair when the retouch is what a professional would deliver: skin keeps its pores and
texture, eyes and teeth are clean but not painted, lighting and colour are consistent with the
original, and the person is unmistakably the same. **Reject** plastic skin, halos, visible
cloning, changed identity (face shape, eye colour), or an original that is itself unusable
(motion blur, out of focus). **Skip** when unsure; it comes back at the end of your queue.

Tag the attributes the retouch changed: lighting, skin texture, sharpness, makeup. The caption
describes the photo (subject, light, lens look); the note is for the team.

Keys: `A` accept, `R` reject, `S` skip, `F` flip original/retouch, `U` or `Ctrl+Z` undo.
"""


@dataclass(frozen=True)
class PairView:
    """What the review screen shows for one pair."""

    pair_id: str
    original_preview: Path
    retouched_preview: Path
    facts_markdown: str


class Workspace:
    """The store, the preview cache and the prefetcher of one annotation project folder.

    Args:
        root: project folder; holds ``review.sqlite`` and ``previews/``.
        overlap: decisions needed per pair (see :class:`ReviewStore`).
        prefetch: prepare previews and crops of upcoming pairs on a background thread.
    """

    def __init__(self, root: str | Path, *, overlap: int = 1, prefetch: bool = True):
        self.root = Path(root)
        self.store = ReviewStore(self.root / "review.sqlite", overlap=overlap)
        self.cache = PreviewCache(self.root / "previews")
        self.prefetcher = Prefetcher(self.cache) if prefetch else None

    @classmethod
    def from_env(cls, root: str | Path | None = None, environ: Mapping[str, str] = os.environ) -> Workspace:
        """The app's workspace: folder ``root``, else ``ANNOTATE_ROOT``, else ``./annotation-project``;
        overlap from ``ANNOTATE_OVERLAP`` (default 1)."""
        overlap = environ.get(OVERLAP_ENV, "1")
        if not overlap.strip().isdigit():
            raise ValueError(f"{OVERLAP_ENV} must be a whole number of decisions per pair, got {overlap!r}")
        return cls(root or environ.get(ROOT_ENV, DEFAULT_ROOT), overlap=int(overlap))

    def ingest(
        self,
        folder: str | Path,
        *,
        rule: NamingRule | None = None,
        pairs_csv: str | Path | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[IngestReport, int]:
        """Ingest a folder into the store; returns the report and how many pairs were new.

        Screen previews are made during ingest; crops follow on the background thread.
        """
        report = ingest_folder(folder, self.cache, rule=rule, pairs_csv=pairs_csv, progress=progress)
        added = self.store.add_pairs(report.pairs)
        if self.prefetcher is not None:
            self.prefetcher.prefetch(report.pairs)
        return report, added

    def ingest_uploads(
        self,
        files: list[str | Path],
        *,
        rule: NamingRule | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[IngestReport, int]:
        """Copy uploaded files byte for byte into ``uploads/`` (they keep their names), then ingest it."""
        target = self.root / "uploads"
        target.mkdir(parents=True, exist_ok=True)
        for file in map(Path, files):
            partial = target / f".{file.name}.partial"
            shutil.copyfile(file, partial)
            partial.replace(target / file.name)  # atomic: ingest never sees half a file
        return self.ingest(target, rule=rule, progress=progress)

    def open_next(self, reviewer: str, *, queue: str = "review") -> PairView | None:
        """Lock the reviewer's next pair and return its view (None when the queue is empty)."""
        pair_id = self.store.claim_next(reviewer, queue=queue)
        if pair_id is None:
            return None
        pair = self.store.pair(pair_id)
        original_preview, retouched_preview = self.cache.pair_screen_paths(pair)
        view = PairView(
            pair_id=pair_id,
            original_preview=original_preview,
            retouched_preview=retouched_preview,
            facts_markdown=facts_markdown(pair.facts),
        )
        if self.prefetcher is not None:
            upcoming = self.store.upcoming(reviewer, PREFETCH_DEPTH, queue=queue)
            self.prefetcher.prefetch([pair, *(self.store.pair(next_id) for next_id in upcoming)])
        return view

    def queue_status(self, reviewer: str, *, queue: str = "review") -> str:
        """What an empty screen should say: done, or pairs still open on other reviewers' screens."""
        waiting = self.store.remaining_for(reviewer, queue=queue)
        if waiting:
            return f"{waiting} pair(s) of the {queue} queue are open on other reviewers' screens; try again shortly."
        return f"Nothing left in the {queue} queue for {reviewer}."

    def crops(self, pair_id: str) -> CropSet:
        """The pair's 100% eye and mouth crops (waits for the background job when it is running)."""
        return self.cache.crops(self.store.pair(pair_id))

    def decide(
        self,
        reviewer: str,
        pair_id: str,
        verdict: str,
        *,
        queue: str = "review",
        tags=(),
        caption: str = "",
        note: str = "",
    ) -> RecordedDecision:
        """Record a decision; its role is the queue it came from ('review' or 'adjudication')."""
        decision = Decision(
            pair_id=pair_id,
            reviewer=reviewer,
            verdict=verdict,
            role=queue,
            tags=tuple(tags),
            caption=caption.strip(),
            note=note.strip(),
        )
        return self.store.record(decision)

    def undo(self, reviewer: str) -> RecordedDecision | None:
        """Undo the reviewer's last decision; the pair becomes theirs again."""
        return self.store.undo_last(reviewer)

    def counters_markdown(self, reviewer: str | None = None) -> str:
        """The always-visible counters line."""
        counts = self.store.counters()
        line = (
            f"**To review** {counts.to_review} · **Accepted** {counts.accepted} · **Rejected** {counts.rejected}"
            f" · **Adjudication** {counts.disputed} · **Published** {counts.published} · of {counts.total}"
        )
        if reviewer:
            mine = next((s for s in self.store.reviewer_stats() if s.reviewer == reviewer), None)
            done = (mine.accepted + mine.rejected) if mine else 0
            line += f" — **{reviewer}**: {done} decided"
        return line

    def reviewer_table(self) -> list[list]:
        """Rows of the team table: reviewer, accepted, rejected, skipped, agreement %."""
        return [
            [
                s.reviewer,
                s.accepted,
                s.rejected,
                s.skipped,
                "–" if s.agreement is None else f"{100 * s.agreement:.0f}% of {s.compared}",
            ]
            for s in self.store.reviewer_stats()
        ]

    def close(self) -> None:
        """Stop the background preview thread (waits for the pair it is preparing)."""
        if self.prefetcher is not None:
            self.prefetcher.shutdown()

    def publish(
        self,
        config: PublishConfig,
        *,
        token: str | None = None,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> PublishResult:
        """Publish the accepted pairs not yet on the Hub (see :func:`~.publish.publish`)."""
        return publish(self.store, config, token=token, progress=progress)


def facts_markdown(facts: dict) -> str:
    """A two-column table of the image facts of a pair, plus its duplicate warning."""
    rows = [
        ("Size", lambda f: f"{f['width']}×{f['height']}"),
        ("Format", lambda f: f"{f['format']} ({f['mode']})"),
        ("Bit depth", lambda f: f"{f['bit_depth']}-bit"),
        ("Colour profile", lambda f: f["icc_profile"] or "none (sRGB assumed)"),
        ("Camera", lambda f: f["camera"] or "–"),
        ("File", lambda f: f"{Path(f['path']).name} · {f['size_bytes'] / 1e6:.1f} MB"),
    ]
    original, retouched = facts.get("original"), facts.get("retouched")
    if not (original and retouched):
        return "_No facts recorded for this pair._"
    table = ["| | Original | Retouch |", "|---|---|---|"]
    table += [f"| {label} | {show(original)} | {show(retouched)} |" for label, show in rows]
    if facts.get("duplicate_of"):
        table.append(f"\n⚠️ Same photo as pair(s) {', '.join(facts['duplicate_of'])} (duplicate or near duplicate).")
    return "\n".join(table)


def publish_report_markdown(result: PublishResult) -> str:
    """The publish summary: what this run uploaded, what a previous run had, and the total."""
    return (
        f"Uploaded {len(result.uploaded)} new shard(s); {len(result.already_there)} found already there; "
        f"{result.published_pairs} pairs published in total."
    )


def ingest_report_markdown(report: IngestReport, added: int) -> str:
    """The ingest summary: every file is accounted for, problems first."""
    lines = [f"**{len(report.pairs)} pairs found, {added} new.**"]
    sections = [
        ("Unreadable files", [f"{Path(path).name}: {reason}" for path, reason in report.rejected]),
        ("Without a partner", [Path(path).name for path in report.unmatched]),
        ("Unsupported formats (JPEG, PNG, TIFF only)", [Path(path).name for path in report.unsupported]),
        (
            "Duplicates",
            [
                f"{group.kind}: "
                + " = ".join(Path(path).name for path in group.paths)
                + (f" ({group.distance_bits} bits apart)" if group.kind == "near" else "")
                for group in report.duplicates
            ],
        ),
    ]
    for title, items in sections:
        if items:
            lines.append(f"\n**{title}** ({len(items)})")
            lines += [f"- {item}" for item in items]
    return "\n".join(lines)
