"""The review workflow as the app uses it: one :class:`Workspace` per project, shared by all reviewers.

Every callback of ``annotate/app.py`` is one call here, so the whole screen logic (what to show
next, what a key press records, what the counters say) is testable without a browser. Reviewer
names arrive here already identified and normalised (``reviewers.py``).

Files the web server may hand to a browser are never the project's own: previews and crops are
handed out as links (or copies) in a folder outside the project (:class:`HandOut`), so the server
needs no access to the project folder, where the review database and the originals live.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DecisionRefusedError, PairingError
from .config import AnnotationSettings
from .ingest import IngestReport, NamingRule, ingest_folder, sha256_file
from .previews import CropSet, Prefetcher, PreviewCache, RegionCrop
from .publish import PublishConfig, PublishResult, publish
from .store import DEFAULT_LOCK_SECONDS, Decision, RecordedDecision, ReviewStore

# Uploaded files land here, one folder per upload (named by its content), so that no upload ever
# overwrites another and a new original is never paired with an older upload's retouch.
UPLOADS_FOLDER = "uploads"
# How many pairs of a reviewer's queue are prepared ahead on the background thread.
PREFETCH_DEPTH = 3
# Handed-out files kept at once: far more than the previews and crops of the requests in flight.
HAND_OUT_KEEP = 256

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
    """What the review screen shows for one pair (previews as handed-out files)."""

    pair_id: str
    original_preview: Path
    retouched_preview: Path
    facts_markdown: str


class HandOut:
    """A folder outside the project holding the files the web server may send: hard links to (or
    copies of) previews and crops, named by what they show, made when first handed out.

    The web server copies each file it is given into its own cache at once, so only the ``keep``
    most recently handed-out files are kept (a Space's project on /data and /tmp are different
    disks: there they are copies). Safe to share between threads.
    """

    def __init__(self, keep: int = HAND_OUT_KEEP):
        self.folder = Path(tempfile.mkdtemp(prefix="annotate-hand-out-"))
        self.keep = keep
        self._recent: OrderedDict[str, None] = OrderedDict()  # names, least recently handed out first
        self._guard = threading.Lock()

    def file(self, path: Path, name: str) -> Path:
        """``path`` as ``<folder>/<name>``; ``name`` must identify the content (a hash, a pair id)."""
        target = self.folder / name
        with self._guard:
            if not target.exists():
                partial = self.folder / f".{name}.partial"
                try:
                    os.link(path, partial)
                except OSError:  # another file system, or links not allowed
                    shutil.copyfile(path, partial)
                partial.replace(target)
            self._recent[name] = None
            self._recent.move_to_end(name)
            while len(self._recent) > self.keep:
                stale, _ = self._recent.popitem(last=False)
                (self.folder / stale).unlink(missing_ok=True)
        return target

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class Workspace:
    """The store, the preview cache and the prefetcher of one annotation project folder.

    Args:
        root: project folder; holds ``review.sqlite``, ``previews/`` and ``uploads/``.
        overlap: decisions needed per pair (see :class:`ReviewStore`).
        lock_seconds: how long an open pair stays reserved without a heartbeat.
        source_folders: server folders the admin may ingest from (besides uploads).
        repo_id: the dataset repo the project publishes to (its count is the "published" counter).
        prefetch: prepare previews and crops of upcoming pairs on a background thread.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        overlap: int = 1,
        lock_seconds: float = DEFAULT_LOCK_SECONDS,
        source_folders: Sequence[str] = (),
        repo_id: str | None = None,
        prefetch: bool = True,
    ):
        self.root = Path(root).resolve()
        self.store = ReviewStore(self.root / "review.sqlite", overlap=overlap, lock_seconds=lock_seconds)
        self.cache = PreviewCache(self.root / "previews")
        self.sources = {name: Path(name).resolve() for name in source_folders}
        self.repo_id = repo_id
        self.prefetcher = Prefetcher(self.cache) if prefetch else None
        self.hand_out = HandOut()

    @classmethod
    def from_settings(cls, settings: AnnotationSettings, *, prefetch: bool = True) -> Workspace:
        return cls(
            settings.root,
            overlap=settings.overlap,
            lock_seconds=settings.lock_seconds,
            source_folders=settings.source_folders,
            repo_id=settings.repo_id,
            prefetch=prefetch,
        )

    # -- ingest (admins) ----------------------------------------------------------------------
    def ingest(
        self,
        source: str,
        *,
        rule: NamingRule | None = None,
        pairs_csv: str | Path | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[IngestReport, int]:
        """Ingest the configured source folder named ``source``; returns the report and how many pairs were new.

        Only the configured folders can be named: a path sent by a client is never opened. Screen
        previews are made during ingest; crops follow on the background thread.
        """
        if source not in self.sources:
            raise PairingError(f"{source!r} is not one of this project's source folders")
        return self._ingest(self.sources[source], rule=rule, pairs_csv=pairs_csv, progress=progress)

    def ingest_uploads(
        self,
        files: list[str | Path],
        *,
        rule: NamingRule | None = None,
        pairs_csv: str | Path | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[IngestReport, int]:
        """Copy uploaded files byte for byte into a new folder of ``uploads/``, then ingest that folder alone.

        The folder is named by the upload's content: the same files uploaded again land in the same
        folder (nothing copied twice), other files in another, so nothing is ever overwritten.
        """
        files = [Path(file) for file in files]
        digest = hashlib.sha256()
        for file in files:
            digest.update(f"{file.name}\0{sha256_file(file)}\0".encode())
        batch = self.root / UPLOADS_FOLDER / digest.hexdigest()[:16]
        batch.mkdir(parents=True, exist_ok=True)
        for file in files:
            _copy_without_overwriting(file, batch)
        return self._ingest(batch, rule=rule, pairs_csv=pairs_csv, progress=progress)

    def _ingest(self, folder: Path, **options) -> tuple[IngestReport, int]:
        report = ingest_folder(folder, self.cache, **options)
        added = self.store.add_pairs(report.pairs)
        if self.prefetcher is not None:
            self.prefetcher.prefetch(report.pairs)
        return report, added

    # -- review --------------------------------------------------------------------------------
    def open_next(self, reviewer: str, *, queue: str = "review") -> PairView | None:
        """Lock the reviewer's next pair and return its view (None when the queue is empty)."""
        pair_id = self.store.claim_next(reviewer, queue=queue)
        if pair_id is None:
            return None
        pair = self.store.pair(pair_id)
        originals = zip(self.cache.pair_screen_paths(pair), (pair.original_sha256, pair.retouched_sha256), strict=True)
        original_preview, retouched_preview = (self.hand_out.file(path, f"{sha}.jpg") for path, sha in originals)
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

    def heartbeat(self, reviewer: str, pair_id: str, *, queue: str = "review") -> bool:
        """Renew the reviewer's lock on the pair on their screen; False when it was lost to someone else."""
        return self.store.renew(reviewer, pair_id, queue=queue)

    def queue_status(self, reviewer: str, *, queue: str = "review") -> str:
        """What an empty screen should say: done, or pairs still open on other reviewers' screens."""
        waiting = self.store.remaining_for(reviewer, queue=queue)
        if waiting:
            return f"{waiting} pair(s) of the {queue} queue are open on other reviewers' screens; try again shortly."
        return f"Nothing left in the {queue} queue for {reviewer}."

    def crops(self, reviewer: str, pair_id: str) -> CropSet:
        """The 100% eye and mouth crops of the pair open on ``reviewer``'s screen, as handed-out files
        (waits for the background job when it is running)."""
        if self.store.held_by(reviewer) != pair_id:
            raise DecisionRefusedError(f"pair {pair_id} is not open on {reviewer}'s screen")
        crop_set = self.cache.crops(self.store.pair(pair_id))
        crops = tuple(
            RegionCrop(
                crop.region,
                self.hand_out.file(crop.original, f"{pair_id}-original-{crop.region}.png"),
                self.hand_out.file(crop.retouched, f"{pair_id}-retouched-{crop.region}.png"),
            )
            for crop in crop_set.crops
        )
        return CropSet(crops, crop_set.problem)

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

    # -- team ----------------------------------------------------------------------------------
    def counters_markdown(self, reviewer: str | None = None) -> str:
        """The always-visible counters line ("published": in the project's dataset repo, or in any when it has none)."""
        counts = self.store.counters(self.repo_id)
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

    # -- publish (admins) ----------------------------------------------------------------------
    def publish(
        self,
        config: PublishConfig,
        *,
        token: str | None = None,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> PublishResult:
        """Publish the accepted pairs not yet on the Hub (see :func:`~.publish.publish`)."""
        return publish(self.store, config, token=token, progress=progress)

    def close(self) -> None:
        """Stop the background preview thread (waits for the pair it is preparing); drop handed-out files."""
        if self.prefetcher is not None:
            self.prefetcher.shutdown()
        self.hand_out.close()


def _copy_without_overwriting(file: Path, folder: Path) -> Path:
    """Copy ``file`` into ``folder`` atomically under its name, or a new name when another file has it."""
    target, number = folder / file.name, 1
    while target.exists():
        if sha256_file(target) == sha256_file(file):
            return target  # the same upload again
        number += 1
        target = folder / f"{file.stem} ({number}){file.suffix}"
    partial = folder / f".{target.name}.partial"
    shutil.copyfile(file, partial)
    partial.replace(target)  # atomic: ingest never sees half a file
    return target


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
    """The publish summary: what this run uploaded, what a previous run had, the total, and what was refused."""
    lines = [
        f"**{result.repo_id}**: uploaded {len(result.uploaded)} new shard(s); {len(result.already_there)} found "
        f"already there; {result.published_pairs} pairs published in total."
    ]
    if result.refused:
        lines.append(f"\n**Not published: files changed since review** ({len(result.refused)})")
        lines += [f"- pair {pair_id}: {why}" for pair_id, why in result.refused]
    return "\n".join(lines)


def ingest_report_markdown(report: IngestReport, added: int) -> str:
    """The ingest summary: every file is accounted for, problems first."""
    lines = [f"**{len(report.pairs)} pairs found, {added} new.**"]
    sections = [
        ("Refused or unreadable", [f"{what}: {reason}" for what, reason in report.rejected]),
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
