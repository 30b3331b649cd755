"""The review workflow as the app uses it: one :class:`Workspace` per project, shared by all reviewers.

Every callback of ``annotate/app.py`` is one call here, so the whole screen logic (what to show
next, what a key press records, what the counters say) is testable without a browser. Reviewer
names arrive here already identified and normalised (``reviewers.py``).

Gradio's file routes serve nothing of the project (the review database and the originals live
there): the viewer's tiles reach the browser only through the app's tile route, which asks
:meth:`Workspace.tile_file` for a checked key of this project's pairs, with a token that
:meth:`Workspace.tile_token` issued to a person holding a role (``tiles.TileGate``).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DecisionRefusedError, PairingError
from .config import DEFAULT_MAX_PIXELS, AnnotationSettings
from .geometry import Geometry
from .ingest import IngestReport, NamingRule, ingest_folder, sha256_file
from .previews import FaceRegions, PairTiles, Prefetcher, PreviewCache, pair_tile_keys
from .publish import PublishConfig, PublishResult, publish
from .store import DEFAULT_LOCK_SECONDS, Decision, RecordedDecision, ReviewStore
from .tiles import TileGate, check_key

# Uploaded files land here, one folder per upload (named by its content), so that no upload ever
# overwrites another and a new original is never paired with an older upload's retouch.
UPLOADS_FOLDER = "uploads"
# How many pairs of a reviewer's queue are prepared ahead on the background thread.
PREFETCH_DEPTH = 3
# Next pairs whose fit view the page fetches ahead: two, since another reviewer may take the first.
AHEAD_IN_PAGE = 2
# Decisions the filmstrip of a reviewer's history shows, newest first.
HISTORY_LENGTH = 12
# Characters markdown would read as syntax in a file name ("|" ends a table cell, "<" opens a tag, "&" an entity).
_MARKDOWN_SYNTAX = re.compile(r"([\\`*_{}\[\]()#+!|~<>&-])")

REVIEW_GUIDELINES = """\
**Accept** a pair when the retouch is what a professional would deliver: skin keeps its pores and
texture, eyes and teeth are clean but not painted, lighting and colour are consistent with the
original, and the person is unmistakably the same. **Reject** plastic skin, halos, visible
cloning, changed identity (face shape, eye colour), or an original that is itself unusable
(motion blur, out of focus). **Skip** when unsure; it comes back at the end of your queue.

Tag the attributes the retouch changed: lighting, skin texture, sharpness, makeup. The caption
describes the photo (subject, light, lens look); the note is for the team.

Keys: `A` accept, `R` reject, `S` skip, `F` flip original/retouch, `D` difference, `B` side by side,
`Z` fit/100%/200%, `+`/`-` zoom, `L` loupe, `1`-`4` attribute tags, `C` caption, `Esc` leaves a text
field, `U` or `Ctrl+Z` undo, `?` all keys.
"""


@dataclass(frozen=True)
class PairView:
    """What the review screen shows for one pair: its tile pyramids, facts, and the geometry notice;
    and the tiles of the reviewer's next pairs that are made (the page fetches their fit view ahead)."""

    pair_id: str
    tiles: PairTiles
    facts_markdown: str
    names: tuple[str, str]
    upcoming: tuple[PairTiles, ...] = ()

    def viewer_spec(self, tile_base: str) -> dict:
        """What the page's viewer needs (``annotate/viewer.js``): tile URLs start with ``tile_base``."""
        return {
            "pair": self.pair_id,
            "base": tile_base,
            "sides": _pyramids(self.tiles),
            "next": [_pyramids(tiles) for tiles in self.upcoming],
            "names": list(self.names),
            "geometry": self.tiles.geometry.status,
            "notice": self.tiles.geometry.reason or "",
        }


def _pyramids(tiles: PairTiles) -> dict:
    """Each side's pyramid as the viewer reads it."""
    return {
        side: {"key": key, "width": info.width, "height": info.height, "tile": info.tile, "levels": info.levels}
        for side, (key, info) in tiles.sides.items()
    }


@dataclass(frozen=True)
class HistoryItem:
    """One decision of the filmstrip: what it was, on which pair (named by its original's file)."""

    decision_id: str
    pair_id: str
    name: str
    verdict: str
    reasons: tuple[str, ...]
    caption: str


class Workspace:
    """The store, the preview cache and the prefetcher of one annotation project folder.

    Args:
        root: project folder; holds ``review.sqlite``, ``previews/`` (with the tiles), ``uploads/`` and
            ``tile-secret``.
        overlap: decisions needed per pair (see :class:`ReviewStore`).
        lock_seconds: how long an open pair stays reserved without a heartbeat.
        source_folders: server folders the admin may ingest from (besides uploads).
        repo_id: the dataset repo the project publishes to (its count is the "published" counter).
        prefetch: prepare tiles and regions of upcoming pairs on a background thread.
        max_pixels: the largest image read.
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
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        self.root = Path(root).resolve()
        self.store = ReviewStore(self.root / "review.sqlite", overlap=overlap, lock_seconds=lock_seconds)
        self.cache = PreviewCache(self.root / "previews", max_pixels=max_pixels)
        self.sources = {name: Path(name).resolve() for name in source_folders}
        self.repo_id = repo_id
        self.prefetcher = Prefetcher(self.cache) if prefetch else None
        self.gate = TileGate(self.root / "tile-secret")
        self._served_keys: frozenset[str] = frozenset()
        self._served_guard = threading.Lock()

    @classmethod
    def from_settings(cls, settings: AnnotationSettings, *, prefetch: bool = True) -> Workspace:
        return cls(
            settings.root,
            overlap=settings.overlap,
            lock_seconds=settings.lock_seconds,
            source_folders=settings.source_folders,
            repo_id=settings.repo_id,
            prefetch=prefetch,
            max_pixels=settings.max_pixels,
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
        previews and the geometry check are made during ingest; tiles and regions follow on the
        background thread.
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
        """Lock the reviewer's next pair and return its view (None when the queue is empty); its tiles
        are made now if the background thread has not made them yet."""
        pair_id = self.store.claim_next(reviewer, queue=queue)
        if pair_id is None:
            return None
        pair = self.store.pair(pair_id)
        upcoming = [self.store.pair(next_id) for next_id in self.store.upcoming(reviewer, PREFETCH_DEPTH, queue=queue)]
        if self.prefetcher is not None:
            self.prefetcher.prefetch(upcoming)
        ready = [
            pair for pair in upcoming[:AHEAD_IN_PAGE] if all(map(self.cache.tiles.has, pair_tile_keys(pair).values()))
        ]
        return PairView(
            pair_id=pair_id,
            tiles=self.cache.pair_tiles(pair),
            facts_markdown=facts_markdown(pair.facts),
            names=(Path(pair.original_path).name, Path(pair.retouched_path).name),
            upcoming=tuple(self.cache.pair_tiles(pair) for pair in ready),
        )

    def heartbeat(self, reviewer: str, pair_id: str, *, queue: str = "review") -> bool:
        """Renew the reviewer's lock on the pair on their screen; False when it was lost to someone else."""
        return self.store.renew(reviewer, pair_id, queue=queue)

    def queue_status(self, reviewer: str, *, queue: str = "review") -> str:
        """What an empty screen should say: done, or pairs still open on other reviewers' screens."""
        waiting = self.store.remaining_for(reviewer, queue=queue)
        if waiting:
            return f"{waiting} pair(s) of the {queue} queue are open on other reviewers' screens; try again shortly."
        return f"Nothing left in the {queue} queue for {reviewer}."

    def regions(self, reviewer: str, pair_id: str) -> FaceRegions:
        """The 100% regions of every face of the pair open on ``reviewer``'s screen (waits for the
        background job when it is running)."""
        if self.store.held_by(reviewer) != pair_id:
            raise DecisionRefusedError(f"pair {pair_id} is not open on {reviewer}'s screen")
        return self.cache.regions(self.store.pair(pair_id))

    def tile_token(self, person: str) -> str:
        """The tile token of ``person`` (already checked by the caller): the same for every page of theirs."""
        return self.gate.token(person)

    def tile_file(self, token: str, key: str, level: int, column: int, row: int) -> tuple[str | None, Path | None]:
        """(the token's person, the tile's file): None for a token this project did not issue, or for a
        tile that is not one of this project's pairs. Only a checked hex key and integers make the path."""
        person = self.gate.person(token)
        if person is None:
            return None, None
        try:
            check_key(key)
        except ValueError:
            return person, None
        if key not in self._served_keys:
            with self._served_guard:  # a new ingest since the last look: read the pairs again
                self._served_keys = frozenset(
                    key for pair in self.store.pairs() for key in pair_tile_keys(pair).values()
                )
            if key not in self._served_keys:
                return person, None
        return person, self.cache.tiles.tile_file(key, level, column, row)

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
        reasons=(),
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
            reasons=tuple(reasons) if verdict == "reject" else (),
        )
        return self.store.record(decision)

    def history(self, reviewer: str, limit: int = HISTORY_LENGTH) -> list[HistoryItem]:
        """The reviewer's latest active accepts and rejects, newest first (the filmstrip)."""
        recent = [d for d in self.store.decisions(reviewer=reviewer) if d.decision.verdict != "skip"][-limit:]
        return [
            HistoryItem(
                decision_id=recorded.decision.decision_id,
                pair_id=recorded.decision.pair_id,
                name=Path(self.store.pair(recorded.decision.pair_id).original_path).name,
                verdict=recorded.decision.verdict,
                reasons=recorded.decision.reasons,
                caption=recorded.decision.caption,
            )
            for recorded in reversed(recent)
        ]

    def change(self, reviewer: str, decision_id: str, verdict: str, *, reasons=()) -> RecordedDecision:
        """Change one of the reviewer's decisions from the filmstrip: a new decision replaces it (an event;
        tags, caption and note are kept)."""
        old = next((d for d in self.store.decisions(reviewer=reviewer) if d.decision.decision_id == decision_id), None)
        if old is None:
            raise DecisionRefusedError(f"{reviewer} has no active decision {decision_id} to change")
        previous = old.decision
        revised = Decision(
            pair_id=previous.pair_id,
            reviewer=reviewer,
            verdict=verdict,
            role=previous.role,
            tags=previous.tags,
            caption=previous.caption,
            note=previous.note,
            reasons=tuple(reasons) if verdict == "reject" else (),
        )
        return self.store.revise(decision_id, revised)

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
        """Stop the background preview thread (waits for the pair it is preparing)."""
        if self.prefetcher is not None:
            self.prefetcher.shutdown()


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
        ("Colour profile", lambda f: markdown_text(f["icc_profile"] or "none (sRGB assumed)")),
        ("Camera", lambda f: markdown_text(f["camera"] or "–")),
        ("File", lambda f: f"{markdown_text(Path(f['path']).name)} · {f['size_bytes'] / 1e6:.1f} MB"),
    ]
    original, retouched = facts.get("original"), facts.get("retouched")
    if not (original and retouched):
        return "_No facts recorded for this pair._"
    table = ["| | Original | Retouch |", "|---|---|---|"]
    table += [f"| {label} | {show(original)} | {show(retouched)} |" for label, show in rows]
    geometry = Geometry.from_facts(facts.get("geometry"))
    if geometry.reason:
        table.append(f"\n⚠️ Frame: {markdown_text(geometry.reason)}.")
    if facts.get("duplicate_of"):
        table.append(f"\n⚠️ Same photo as pair(s) {', '.join(facts['duplicate_of'])} (duplicate or near duplicate).")
    return "\n".join(table)


def markdown_text(text: str) -> str:
    """``text`` shown as itself in Gradio's markdown: every character markdown or HTML would read as syntax
    backslashed (CommonMark's escape; an HTML entity would show as typed, quotes included)."""
    return _MARKDOWN_SYNTAX.sub(r"\\\1", text)


def publish_report_markdown(result: PublishResult) -> str:
    """The publish summary: what this run uploaded, what a previous run had, the total, and what was refused."""
    lines = [
        f"**{result.repo_id}**: uploaded {len(result.uploaded)} new shard(s); {len(result.already_there)} found "
        f"already there; {result.published_pairs} pairs published in total."
    ]
    if result.refused:
        lines.append(f"\n**Not published: files changed since review** ({len(result.refused)})")
        lines += [f"- pair {pair_id}: {markdown_text(why)}" for pair_id, why in result.refused]
    return "\n".join(lines)


def ingest_report_markdown(report: IngestReport, added: int) -> str:
    """The ingest summary: every file is accounted for, problems first, one line per problem, names escaped."""
    lines = [f"**{len(report.pairs)} pairs found, {added} new.**"]
    sections = [
        ("Refused or unreadable", [markdown_text(f"{what}: {reason}") for what, reason in report.rejected]),
        ("Without a partner", [markdown_text(Path(path).name) for path in report.unmatched]),
        ("Unsupported formats (JPEG, PNG, TIFF only)", [markdown_text(Path(path).name) for path in report.unsupported]),
        ("Duplicates", duplicate_lines(report)),
    ]
    for title, items in sections:
        if items:
            lines.append(f"\n**{title}** ({len(items)})")
            lines += [f"- {item}" for item in items]
    return "\n".join(lines)


def duplicate_lines(report: IngestReport) -> list[str]:
    """One line per duplicated photo: a merged byte-identical pair, or pairs (or loose files) showing the
    same photo, however many of their files matched (an original and its retouch match each other too)."""
    owner = {}  # file -> the pair it belongs to (a merged copy: the pair it was merged into)
    for pair in report.pairs:
        name = f"pair {Path(pair.original_path).name}"
        owner[pair.original_path] = owner[pair.retouched_path] = name
    lines = []
    for copy, copy_retouch, kept in report.merged:
        owner[copy] = owner[copy_retouch] = f"pair {Path(kept).name}"
        lines.append(
            f"{markdown_text(Path(copy).name)} and its retouch: exact copies of pair "
            f"{markdown_text(Path(kept).name)}, merged into it (reviewed once)"
        )
    closest: dict[frozenset[str], tuple[str, int]] = {}
    for group in report.duplicates:
        owners = frozenset(owner.get(path, Path(path).name) for path in group.paths)
        if len(owners) < 2:
            continue  # within one pair, or a merged copy already said
        kind, bits = closest.get(owners, ("near", 64))
        closest[owners] = ("exact", 0) if "exact" in (kind, group.kind) else ("near", min(bits, group.distance_bits))
    for owners, (kind, bits) in closest.items():
        what = "exact copies" if kind == "exact" else f"the same photo (near duplicates, {bits} bits apart)"
        lines.append(f"{' = '.join(markdown_text(name) for name in sorted(owners))}: {what}")
    return lines
