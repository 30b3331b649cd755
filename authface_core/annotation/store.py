"""The review store: the single source of truth of the annotation workflow.

One SQLite file in WAL mode with ``synchronous=FULL``: a decision is acknowledged only once its
transaction has committed to disk, so a crash or a ``kill -9`` at any moment keeps every
acknowledged decision and leaves the database consistent (SQLite's journal rolls back the
half-written rest). Nothing is ever deleted: an undo stamps ``undone_at`` on the decision.

Several reviewers (threads, processes, or browser tabs of a Space) share one store. Pairs are
handed out under time-limited locks taken inside ``BEGIN IMMEDIATE`` transactions, so two
reviewers never hold the same pair, and a lock left by a closed browser simply expires.
A page that stays open renews its lock (``renew``, the app's heartbeat). Each decision carries a
client-made ``decision_id``: sending it twice records it once.

Overlap: a pair needs ``overlap`` review decisions; when they disagree it goes to the
adjudication queue, where one adjudication decision settles it. A person takes at most one active
decision per pair (a unique index enforces it), so nobody settles a dispute they are part of.
Reviewer names reach the store normalised (``reviewers.normalise_name``); others are refused.

Publishing bookkeeping (which pairs went into which shard of which dataset repo) is kept per repo.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DecisionRefusedError, PairNotFoundError
from .reviewers import normalise_name

# A reviewer who walks away keeps a pair this long; then anyone may take it.
DEFAULT_LOCK_SECONDS = 600.0
# How long a writer waits for another writer's transaction before giving up (SQLite busy timeout).
BUSY_TIMEOUT_SECONDS = 30.0

VERDICTS = ("accept", "reject", "skip")
# A decision's role is also the name of the queue it was taken from.
ROLES = ("review", "adjudication")
# The photographic attributes the AuthFace paper captions (lighting, skin texture, sharpness, makeup).
PHOTO_ATTRIBUTES = ("lighting", "skin texture", "sharpness", "makeup")
# Why a retouch is rejected, as the reviewer picks it: the faults the review guidelines name.
REJECT_REASONS = ("plastic skin", "halo", "cloning", "identity change", "colour shift", "other")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pairs(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    pair_id TEXT NOT NULL UNIQUE,
    original_path TEXT NOT NULL,
    retouched_path TEXT NOT NULL,
    original_sha256 TEXT NOT NULL,
    retouched_sha256 TEXT NOT NULL,
    facts TEXT NOT NULL,
    ingested_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions(
    decision_id TEXT PRIMARY KEY,
    pair_id TEXT NOT NULL REFERENCES pairs(pair_id),
    reviewer TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('accept', 'reject', 'skip')),
    role TEXT NOT NULL CHECK (role IN ('review', 'adjudication')),
    tags TEXT NOT NULL,
    caption TEXT NOT NULL,
    note TEXT NOT NULL,
    decided_at REAL NOT NULL,
    undone_at REAL,
    reasons TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS decisions_by_pair ON decisions(pair_id);
CREATE UNIQUE INDEX IF NOT EXISTS one_decision_per_person ON decisions(pair_id, reviewer)
    WHERE undone_at IS NULL AND verdict != 'skip';
CREATE INDEX IF NOT EXISTS decisions_by_reviewer ON decisions(reviewer, decided_at);
CREATE TABLE IF NOT EXISTS locks(
    pair_id TEXT PRIMARY KEY REFERENCES pairs(pair_id),
    reviewer TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS shards(
    repo_id TEXT NOT NULL,
    shard_index INTEGER NOT NULL,
    path_in_repo TEXT NOT NULL,
    planned_at REAL NOT NULL,
    uploaded_at REAL,
    PRIMARY KEY (repo_id, shard_index),
    UNIQUE (repo_id, path_in_repo)
);
CREATE TABLE IF NOT EXISTS shard_rows(
    repo_id TEXT NOT NULL,
    pair_id TEXT NOT NULL REFERENCES pairs(pair_id),
    shard_index INTEGER NOT NULL,
    row_index INTEGER NOT NULL,
    PRIMARY KEY (repo_id, pair_id),
    FOREIGN KEY (repo_id, shard_index) REFERENCES shards(repo_id, shard_index)
);
"""

# The columns _recorded_from_row reads, in its order.
_DECISION_COLUMNS = "pair_id, reviewer, verdict, role, tags, caption, note, decision_id, decided_at, undone_at, reasons"


@dataclass(frozen=True)
class PairRecord:
    """One original/retouch pair as ingested: where the files are, their hashes and facts.

    Args:
        pair_id: stable id derived from both content hashes (see ``ingest.pair_id_for``).
        original_path, retouched_path: absolute paths of the untouched files.
        original_sha256, retouched_sha256: hex SHA-256 of the file bytes.
        facts: JSON-serialisable image facts (size, format, bit depth, profile, camera...) per side.
    """

    pair_id: str
    original_path: str
    retouched_path: str
    original_sha256: str
    retouched_sha256: str
    facts: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.pair_id:
            raise ValueError("pair_id must not be empty")
        for name in ("original_sha256", "retouched_sha256"):
            value = getattr(self, name)
            if len(value) != 64:
                raise ValueError(f"{name} must be a 64-character hex SHA-256, got {value!r}")


@dataclass(frozen=True)
class Decision:
    """What one reviewer decided about one pair.

    Args:
        pair_id: the pair decided on.
        reviewer: who decided (Hub user name or local name).
        verdict: ``"accept"``, ``"reject"`` or ``"skip"`` (a skip never counts towards overlap).
        role: ``"review"``, or ``"adjudication"`` to settle a disputed pair.
        tags: photographic attributes, e.g. ``("lighting", "makeup")``.
        caption, note: free text.
        decision_id: made by the client once per click, so that a retried request is recorded once.
        reasons: why a reject rejects, from ``REJECT_REASONS`` (only a reject has reasons).
    """

    pair_id: str
    reviewer: str
    verdict: str
    role: str = "review"
    tags: tuple[str, ...] = ()
    caption: str = ""
    note: str = ""
    decision_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    reasons: tuple[str, ...] = ()

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")
        check_reviewer_name(self.reviewer)
        if self.role == "adjudication" and self.verdict == "skip":
            raise ValueError("an adjudication must accept or reject, not skip")
        object.__setattr__(self, "tags", tuple(sorted({tag.strip() for tag in self.tags if tag.strip()})))
        reasons = tuple(reason for reason in REJECT_REASONS if reason in set(self.reasons))  # the list's order
        unknown = set(self.reasons) - set(REJECT_REASONS)
        if unknown:
            raise ValueError(f"reject reasons must be among {REJECT_REASONS}, got {sorted(unknown)}")
        if reasons and self.verdict != "reject":
            raise ValueError(f"only a reject has reject reasons, not {self.verdict!r}")
        object.__setattr__(self, "reasons", reasons)


@dataclass(frozen=True)
class RecordedDecision:
    """A decision as stored, with its time and whether it was undone."""

    decision: Decision
    decided_at: float
    undone_at: float | None


@dataclass(frozen=True)
class Counters:
    """The numbers always visible in the app."""

    total: int
    to_review: int
    accepted: int
    rejected: int
    disputed: int
    published: int


@dataclass(frozen=True)
class ReviewerStats:
    """Per-reviewer progress and agreement (share of overlapping decisions that matched the others)."""

    reviewer: str
    accepted: int
    rejected: int
    skipped: int
    compared: int
    agreed: int

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.compared if self.compared else None


@dataclass(frozen=True)
class PlannedShard:
    """A Parquet shard recorded for upload (see ``publish.py``).

    Args:
        index: its number, in planning order.
        path_in_repo: where it goes in the dataset repo.
        pair_ids: its rows, in order.
        uploaded: whether the repo has it.
    """

    index: int
    path_in_repo: str
    pair_ids: tuple[str, ...]
    uploaded: bool


def check_reviewer_name(name: str) -> None:
    """Refuse (``ValueError``) an empty or not normalised reviewer name: names are normalised once,
    where the person is identified (``reviewers.py``), and stored that way."""
    if not name or name != normalise_name(name):
        raise ValueError(f"reviewer must be a non-empty normalised name (see normalise_name), got {name!r}")


def resolve_verdict(review_verdicts: list[str], adjudication: str | None, overlap: int) -> str:
    """The state of a pair from its active decisions: pending, accepted, rejected or disputed."""
    if adjudication is not None:
        return "accepted" if adjudication == "accept" else "rejected"
    counted = [verdict for verdict in review_verdicts if verdict != "skip"]
    if len(set(counted)) > 1:
        return "disputed"
    if len(counted) < overlap:
        return "pending"
    return "accepted" if counted[0] == "accept" else "rejected"


class ReviewStore:
    """The SQLite review store at ``path`` (created on first use).

    Args:
        path: the database file; its folder is created.
        overlap: how many agreeing review decisions settle a pair (1 = single review).
        lock_seconds: how long a handed-out pair stays reserved for its reviewer.
        clock: returns the time in seconds (tests pass a fake one to expire locks).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        overlap: int = 1,
        lock_seconds: float = DEFAULT_LOCK_SECONDS,
        clock: Callable[[], float] = time.time,
    ):
        if overlap < 1:
            raise ValueError(f"overlap must be at least 1, got {overlap}")
        if lock_seconds <= 0:
            raise ValueError(f"lock_seconds must be positive, got {lock_seconds}")
        self.path = Path(path)
        self.overlap = overlap
        self.lock_seconds = lock_seconds
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            shard_columns = {row[1] for row in connection.execute("PRAGMA table_info(shards)")}
            if shard_columns and "repo_id" not in shard_columns:
                raise ValueError(
                    f"{self.path}: made by an older version that kept one publish record for all repos; "
                    "publish from a new project folder (decisions can be copied with sqlite3)"
                )
            connection.executescript(_SCHEMA)
            decision_columns = {row[1] for row in connection.execute("PRAGMA table_info(decisions)")}
            if "reasons" not in decision_columns:  # a store made before reject reasons: every old decision has none
                connection.execute("ALTER TABLE decisions ADD COLUMN reasons TEXT NOT NULL DEFAULT '[]'")

    # -- connections -------------------------------------------------------------------------
    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A fresh connection per operation: safe across threads and processes."""
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        try:
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            yield connection
        finally:
            connection.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: takes the write lock first, so read-then-write cannot race."""
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    # -- pairs -------------------------------------------------------------------------------
    def add_pairs(self, records: Iterable[PairRecord]) -> int:
        """Add pairs not yet in the store (by pair_id); returns how many were new."""
        now = self.clock()
        with self._write() as connection:
            before = connection.total_changes
            connection.executemany(
                "INSERT OR IGNORE INTO pairs(pair_id, original_path, retouched_path, original_sha256,"
                " retouched_sha256, facts, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.pair_id,
                        r.original_path,
                        r.retouched_path,
                        r.original_sha256,
                        r.retouched_sha256,
                        json.dumps(r.facts, sort_keys=True),
                        now,
                    )
                    for r in records
                ],
            )
            return connection.total_changes - before

    def pair(self, pair_id: str) -> PairRecord:
        """The pair ``pair_id``, or :class:`PairNotFoundError`."""
        with self._connect() as connection:
            row = connection.execute(
                "SELECT pair_id, original_path, retouched_path, original_sha256, retouched_sha256, facts"
                " FROM pairs WHERE pair_id = ?",
                (pair_id,),
            ).fetchone()
        if row is None:
            raise PairNotFoundError(pair_id)
        return PairRecord(*row[:5], facts=json.loads(row[5]))

    def pairs(self) -> list[PairRecord]:
        """Every pair in ingest order, in one query."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT pair_id, original_path, retouched_path, original_sha256, retouched_sha256, facts"
                " FROM pairs ORDER BY seq"
            ).fetchall()
        return [PairRecord(*row[:5], facts=json.loads(row[5])) for row in rows]

    def pair_ids(self) -> list[str]:
        """Every pair id in ingest order."""
        with self._connect() as connection:
            return self._pair_ids(connection)

    # -- handing out pairs -------------------------------------------------------------------
    def claim_next(self, reviewer: str, *, queue: str = "review") -> str | None:
        """Lock and return the next pair for ``reviewer`` (``queue`` 'review' or 'adjudication'), or None.

        A pair the reviewer already holds comes back first (a reloaded page resumes) when it is
        still theirs to decide in ``queue``; otherwise that lock is given up (the reviewer switched
        queues, or undid a decision on a pair that has since been settled). Pairs the reviewer
        skipped come after the others.
        """
        check_reviewer_name(reviewer)
        with self._write() as connection:
            now = self.clock()
            connection.execute("DELETE FROM locks WHERE expires_at <= ?", (now,))
            held = connection.execute(
                "SELECT pair_id FROM locks WHERE reviewer = ? ORDER BY expires_at DESC LIMIT 1", (reviewer,)
            ).fetchone()
            candidates = self._candidates(connection, reviewer, queue, limit=None, now=now)
            if held is not None and held[0] in candidates:
                pair_id = held[0]
            else:
                connection.execute("DELETE FROM locks WHERE reviewer = ?", (reviewer,))
                if not candidates:
                    return None
                pair_id = candidates[0]
            connection.execute(
                "INSERT OR REPLACE INTO locks(pair_id, reviewer, expires_at) VALUES (?, ?, ?)",
                (pair_id, reviewer, now + self.lock_seconds),
            )
            return pair_id

    def upcoming(self, reviewer: str, count: int, *, queue: str = "review") -> list[str]:
        """The next ``count`` pairs ``reviewer`` would get, without locking them (for preview prefetch)."""
        with self._connect() as connection:
            found = self._candidates(connection, reviewer, queue, limit=count + 1, now=self.clock())
        held = self.held_by(reviewer)
        return [pair_id for pair_id in found if pair_id != held][:count]

    def remaining_for(self, reviewer: str, *, queue: str = "review") -> int:
        """How many pairs ``reviewer`` could still decide, counting those others hold right now."""
        with self._connect() as connection:
            return len(self._candidates(connection, reviewer, queue, limit=None, now=self.clock(), ignore_locks=True))

    def held_by(self, reviewer: str) -> str | None:
        """The pair ``reviewer`` currently holds a live lock on, if any."""
        with self._connect() as connection:
            row = connection.execute(
                "SELECT pair_id FROM locks WHERE reviewer = ? AND expires_at > ? ORDER BY expires_at DESC LIMIT 1",
                (reviewer, self.clock()),
            ).fetchone()
        return row[0] if row else None

    def release(self, reviewer: str, pair_id: str) -> None:
        """Give a pair back before its lock expires (a closed tab does not need this)."""
        with self._write() as connection:
            connection.execute("DELETE FROM locks WHERE pair_id = ? AND reviewer = ?", (pair_id, reviewer))

    def renew(self, reviewer: str, pair_id: str, *, queue: str = "review") -> bool:
        """Extend ``reviewer``'s lock on ``pair_id`` by ``lock_seconds`` (the open page's heartbeat).

        A lock that expired meanwhile is taken again when nobody else took the pair and it is still
        theirs to decide in ``queue``; False when the pair is lost (another reviewer has it, or it
        needs no more decisions).
        """
        check_reviewer_name(reviewer)
        with self._write() as connection:
            now = self.clock()
            connection.execute("DELETE FROM locks WHERE expires_at <= ?", (now,))
            holder = connection.execute("SELECT reviewer FROM locks WHERE pair_id = ?", (pair_id,)).fetchone()
            if holder is None:
                if pair_id not in self._candidates(connection, reviewer, queue, limit=None, now=now):
                    return False
            elif holder[0] != reviewer:
                return False
            connection.execute("DELETE FROM locks WHERE reviewer = ? AND pair_id != ?", (reviewer, pair_id))
            connection.execute(
                "INSERT OR REPLACE INTO locks(pair_id, reviewer, expires_at) VALUES (?, ?, ?)",
                (pair_id, reviewer, now + self.lock_seconds),
            )
            return True

    def _candidates(
        self, connection, reviewer: str, queue: str, *, limit: int | None, now: float, ignore_locks: bool = False
    ) -> list[str]:
        """Pairs ``reviewer`` may take from ``queue``, best first: ingest order, their skipped ones last."""
        if queue not in ROLES:
            raise ValueError(f"queue must be one of {ROLES}, got {queue!r}")
        states = self._pair_states(connection)
        wanted = "pending" if queue == "review" else "disputed"
        locked_by_others = (
            set()
            if ignore_locks
            else {
                row[0]
                for row in connection.execute(
                    "SELECT pair_id FROM locks WHERE expires_at > ? AND reviewer != ?", (now, reviewer)
                )
            }
        )
        mine = defaultdict(set)  # (role, verdict) of the reviewer's active decisions, per pair
        for pair_id, role, verdict in connection.execute(
            "SELECT pair_id, role, verdict FROM decisions WHERE reviewer = ? AND undone_at IS NULL", (reviewer,)
        ):
            mine[pair_id].add((role, verdict))
        candidates = [
            pair_id
            for pair_id in self._pair_ids(connection)
            if states[pair_id] == wanted
            and pair_id not in locked_by_others
            and not any(verdict != "skip" for _, verdict in mine[pair_id])  # one decision per person and pair
            and (queue == "review" or ("adjudication", "skip") not in mine[pair_id])  # skipped: not offered again
        ]
        candidates.sort(key=lambda pair_id: (queue, "skip") in mine[pair_id])  # skipped last, else ingest order
        return candidates[:limit]

    @staticmethod
    def _pair_ids(connection) -> list[str]:
        return [row[0] for row in connection.execute("SELECT pair_id FROM pairs ORDER BY seq")]

    # -- decisions ---------------------------------------------------------------------------
    def record(self, decision: Decision) -> RecordedDecision:
        """Record a decision atomically and release the reviewer's lock; returns it once durable.

        Idempotent on ``decision_id``. Refused (:class:`DecisionRefusedError`) when another
        reviewer holds the pair, when this reviewer already decided it, when it needs no more
        decisions, or when it is already published.
        """
        with self._write() as connection:
            existing = self._decision_row(connection, decision.decision_id)
            if existing is not None:
                return existing
            return self._insert(connection, decision)

    def _insert(self, connection, decision: Decision) -> RecordedDecision:
        """Check and insert ``decision`` inside the caller's write transaction; release the reviewer's lock."""
        self._check_can_decide(connection, decision)
        now = self.clock()
        connection.execute(
            "INSERT INTO decisions(decision_id, pair_id, reviewer, verdict, role, tags, caption, note, decided_at,"
            " reasons) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                decision.decision_id,
                decision.pair_id,
                decision.reviewer,
                decision.verdict,
                decision.role,
                json.dumps(list(decision.tags)),
                decision.caption,
                decision.note,
                now,
                json.dumps(list(decision.reasons)),
            ),
        )
        connection.execute(
            "DELETE FROM locks WHERE pair_id = ? AND reviewer = ?", (decision.pair_id, decision.reviewer)
        )
        return RecordedDecision(decision, now, None)

    def _check_can_decide(self, connection, decision: Decision) -> None:
        """Raise :class:`DecisionRefusedError` (or :class:`PairNotFoundError`) when ``record`` must refuse."""
        pair_id, reviewer = decision.pair_id, decision.reviewer
        if connection.execute("SELECT 1 FROM pairs WHERE pair_id = ?", (pair_id,)).fetchone() is None:
            raise PairNotFoundError(pair_id)
        lock = connection.execute(
            "SELECT reviewer FROM locks WHERE pair_id = ? AND expires_at > ?", (pair_id, self.clock())
        ).fetchone()
        if lock is not None and lock[0] != reviewer:
            raise DecisionRefusedError(f"pair {pair_id} is being reviewed by {lock[0]}")
        if connection.execute("SELECT 1 FROM shard_rows WHERE pair_id = ?", (pair_id,)).fetchone():
            raise DecisionRefusedError(f"pair {pair_id} is already published; its decisions are final")
        state = self._pair_states(connection, only=pair_id)[pair_id]
        already = connection.execute(
            "SELECT verdict, role FROM decisions WHERE pair_id = ? AND reviewer = ? AND undone_at IS NULL"
            " AND verdict != 'skip'",
            (pair_id, reviewer),
        ).fetchone()
        if already is not None and decision.role == "adjudication" and already[1] == "review":
            raise DecisionRefusedError(f"{reviewer} reviewed pair {pair_id}; another adjudicator must settle it")
        if already is not None:
            raise DecisionRefusedError(f"{reviewer} already decided pair {pair_id} ({already[0]}); undo it first")
        if decision.verdict == "skip":
            return
        if decision.role == "review" and state != "pending":
            raise DecisionRefusedError(f"pair {pair_id} needs no more reviews (it is {state})")
        if decision.role == "adjudication" and state != "disputed":
            raise DecisionRefusedError(f"pair {pair_id} is not disputed (it is {state}); nothing to adjudicate")

    def undo_last(self, reviewer: str) -> RecordedDecision | None:
        """Undo ``reviewer``'s most recent active decision and give the pair back to them; None if none.

        The decision stays in the store, stamped ``undone_at``: nothing is ever deleted.
        """
        check_reviewer_name(reviewer)
        with self._write() as connection:
            row = connection.execute(
                "SELECT decision_id FROM decisions WHERE reviewer = ? AND undone_at IS NULL"
                " ORDER BY decided_at DESC, rowid DESC LIMIT 1",
                (reviewer,),
            ).fetchone()
            if row is None:
                return None
            recorded = self._decision_row(connection, row[0])
            pair_id = recorded.decision.pair_id
            if connection.execute("SELECT 1 FROM shard_rows WHERE pair_id = ?", (pair_id,)).fetchone():
                raise DecisionRefusedError(f"pair {pair_id} is already published; its decision cannot be undone")
            now = self.clock()
            lock = connection.execute(
                "SELECT reviewer FROM locks WHERE pair_id = ? AND expires_at > ?", (pair_id, now)
            ).fetchone()
            if lock is not None and lock[0] != reviewer:
                raise DecisionRefusedError(f"pair {pair_id} is now being reviewed by {lock[0]}; undo later")
            connection.execute("UPDATE decisions SET undone_at = ? WHERE decision_id = ?", (now, row[0]))
            connection.execute("DELETE FROM locks WHERE reviewer = ?", (reviewer,))
            connection.execute(
                "INSERT OR REPLACE INTO locks(pair_id, reviewer, expires_at) VALUES (?, ?, ?)",
                (pair_id, reviewer, now + self.lock_seconds),
            )
            return RecordedDecision(recorded.decision, recorded.decided_at, now)

    def revise(self, decision_id: str, revised: Decision) -> RecordedDecision:
        """Replace one of a reviewer's active decisions by ``revised`` (the filmstrip's "change"), atomically.

        A new event, never a rewrite: the old decision is stamped ``undone_at`` and ``revised`` is
        recorded after it, under the same rules as :meth:`record` (refused when the pair is published,
        held by another reviewer, or settled meanwhile; then nothing changes).
        """
        with self._write() as connection:
            old = self._decision_row(connection, decision_id)
            if old is None or old.decision.reviewer != revised.reviewer or old.undone_at is not None:
                raise DecisionRefusedError(f"{revised.reviewer} has no active decision {decision_id} to change")
            if old.decision.pair_id != revised.pair_id or old.decision.role != revised.role:
                raise DecisionRefusedError("a changed decision keeps its pair and its queue")
            connection.execute("UPDATE decisions SET undone_at = ? WHERE decision_id = ?", (self.clock(), decision_id))
            return self._insert(connection, revised)

    def _decision_row(self, connection, decision_id: str) -> RecordedDecision | None:
        """The stored decision ``decision_id``, or None when it was never recorded."""
        row = connection.execute(
            f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE decision_id = ?", (decision_id,)
        ).fetchone()
        return None if row is None else _recorded_from_row(row)

    def decisions(
        self, *, pair_id: str | None = None, reviewer: str | None = None, include_undone: bool = False
    ) -> list[RecordedDecision]:
        """Decisions in the order they were made, optionally for one pair or one reviewer."""
        query = (
            f"SELECT {_DECISION_COLUMNS} FROM decisions"
            " WHERE (? IS NULL OR pair_id = ?) AND (? IS NULL OR reviewer = ?) AND (? OR undone_at IS NULL)"
            " ORDER BY rowid"
        )
        with self._connect() as connection:
            rows = connection.execute(query, (pair_id, pair_id, reviewer, reviewer, include_undone)).fetchall()
        return [_recorded_from_row(row) for row in rows]

    # -- states, counters, statistics --------------------------------------------------------
    def _pair_states(self, connection, only: str | None = None) -> dict[str, str]:
        """Each pair's state (or pair ``only``'s) from its active decisions; see :func:`resolve_verdict`."""
        reviews: dict[str, list[str]] = defaultdict(list)
        adjudications: dict[str, str] = {}
        for pair_id, verdict, role in connection.execute(
            "SELECT pair_id, verdict, role FROM decisions WHERE undone_at IS NULL AND (? IS NULL OR pair_id = ?)"
            " ORDER BY rowid",
            (only, only),
        ):
            if role == "adjudication":
                adjudications[pair_id] = verdict
            else:
                reviews[pair_id].append(verdict)
        pair_ids = [only] if only is not None else self._pair_ids(connection)
        return {
            pair_id: resolve_verdict(reviews[pair_id], adjudications.get(pair_id), self.overlap) for pair_id in pair_ids
        }

    def pair_states(self) -> dict[str, str]:
        """Every pair's state: pending, accepted, rejected or disputed."""
        with self._connect() as connection:
            return self._pair_states(connection)

    def counters(self, repo_id: str | None = None) -> Counters:
        """How many pairs are in each state, and how many are in uploaded shards of ``repo_id``
        (None: of any repo)."""
        with self._connect() as connection:
            states = Counter(self._pair_states(connection).values())
            published = connection.execute(
                "SELECT COUNT(DISTINCT pair_id) FROM shard_rows JOIN shards USING (repo_id, shard_index)"
                " WHERE uploaded_at IS NOT NULL AND (? IS NULL OR repo_id = ?)",
                (repo_id, repo_id),
            ).fetchone()[0]
        return Counters(
            total=sum(states.values()),
            to_review=states["pending"],
            accepted=states["accepted"],
            rejected=states["rejected"],
            disputed=states["disputed"],
            published=published,
        )

    def reviewer_stats(self) -> list[ReviewerStats]:
        """Progress and pairwise agreement of every reviewer, sorted by name."""
        by_pair: dict[str, dict[str, str]] = defaultdict(dict)
        verdict_counts: dict[str, Counter] = defaultdict(Counter)
        for recorded in self.decisions():
            decision = recorded.decision
            verdict_counts[decision.reviewer][decision.verdict] += 1
            if decision.role == "review" and decision.verdict != "skip":
                by_pair[decision.pair_id][decision.reviewer] = decision.verdict
        compared: Counter = Counter()
        agreed: Counter = Counter()
        for verdicts in by_pair.values():
            for reviewer, verdict in verdicts.items():
                for other, other_verdict in verdicts.items():
                    if other != reviewer:
                        compared[reviewer] += 1
                        agreed[reviewer] += verdict == other_verdict
        return [
            ReviewerStats(
                reviewer=reviewer,
                accepted=counts["accept"],
                rejected=counts["reject"],
                skipped=counts["skip"],
                compared=compared[reviewer],
                agreed=agreed[reviewer],
            )
            for reviewer, counts in sorted(verdict_counts.items())
        ]

    def check_consistency(self) -> list[str]:
        """Problems found by SQLite's integrity check and the workflow's own rules (empty when sound)."""
        problems: list[str] = []
        with self._connect() as connection:
            integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
            if integrity != "ok":
                problems.append(f"sqlite integrity_check: {integrity}")
            problems += [f"foreign key violation: {row}" for row in connection.execute("PRAGMA foreign_key_check")]
            for pair_id, reviewer, count in connection.execute(
                "SELECT pair_id, reviewer, COUNT(*) FROM decisions WHERE undone_at IS NULL AND verdict != 'skip'"
                " GROUP BY pair_id, reviewer HAVING COUNT(*) > 1"
            ):
                problems.append(f"{reviewer} has {count} active decisions on pair {pair_id}")
            for pair_id, count in connection.execute(
                "SELECT pair_id, COUNT(*) FROM decisions WHERE undone_at IS NULL AND verdict != 'skip'"
                " AND role = 'review' GROUP BY pair_id HAVING COUNT(*) > ?",
                (self.overlap,),
            ):
                problems.append(f"pair {pair_id} has {count} reviews, more than the overlap {self.overlap}")
        return problems

    # -- publishing bookkeeping, per dataset repo (used by publish.py) -------------------------
    def accepted_unplanned(self, repo_id: str) -> list[str]:
        """Accepted pairs not yet assigned to a shard of ``repo_id``, in ingest order."""
        with self._connect() as connection:
            states = self._pair_states(connection)
            planned = {
                row[0] for row in connection.execute("SELECT pair_id FROM shard_rows WHERE repo_id = ?", (repo_id,))
            }
        return [pair_id for pair_id, state in states.items() if state == "accepted" and pair_id not in planned]

    def plan_shards(self, repo_id: str, groups: list[list[str]], path_pattern: str) -> None:
        """Record, in one transaction, new shards of ``repo_id`` to upload: one per group of pair ids (in row
        order), numbered after its last planned shard and named ``path_pattern.format(index=...)``."""
        with self._write() as connection:
            next_index = connection.execute(
                "SELECT COALESCE(MAX(shard_index) + 1, 0) FROM shards WHERE repo_id = ?", (repo_id,)
            ).fetchone()[0]
            now = self.clock()
            for index, pair_ids in enumerate(groups, start=next_index):
                connection.execute(
                    "INSERT INTO shards(repo_id, shard_index, path_in_repo, planned_at) VALUES (?, ?, ?, ?)",
                    (repo_id, index, path_pattern.format(index=index), now),
                )
                connection.executemany(
                    "INSERT INTO shard_rows(repo_id, pair_id, shard_index, row_index) VALUES (?, ?, ?, ?)",
                    [(repo_id, pair_id, index, row) for row, pair_id in enumerate(pair_ids)],
                )

    def shards(self, repo_id: str) -> list[PlannedShard]:
        """Every planned shard of ``repo_id``, in index order."""
        with self._connect() as connection:
            shard_rows = connection.execute(
                "SELECT shard_index, path_in_repo, uploaded_at IS NOT NULL FROM shards WHERE repo_id = ?"
                " ORDER BY shard_index",
                (repo_id,),
            ).fetchall()
            members: dict[int, list[str]] = defaultdict(list)
            for index, pair_id in connection.execute(
                "SELECT shard_index, pair_id FROM shard_rows WHERE repo_id = ? ORDER BY shard_index, row_index",
                (repo_id,),
            ):
                members[index].append(pair_id)
        return [
            PlannedShard(index, path, tuple(members[index]), bool(uploaded)) for index, path, uploaded in shard_rows
        ]

    def unplan(self, repo_id: str, shard_index: int, pair_ids: Iterable[str]) -> None:
        """Take pairs out of a shard not yet uploaded (their files changed since review); a shard left
        empty is forgotten. The pairs stay accepted, so the next publish checks them again."""
        with self._write() as connection:
            uploaded = connection.execute(
                "SELECT uploaded_at FROM shards WHERE repo_id = ? AND shard_index = ?", (repo_id, shard_index)
            ).fetchone()
            if uploaded is None or uploaded[0] is not None:
                raise ValueError(f"shard {shard_index} of {repo_id} is not a pending shard")
            connection.executemany(
                "DELETE FROM shard_rows WHERE repo_id = ? AND shard_index = ? AND pair_id = ?",
                [(repo_id, shard_index, pair_id) for pair_id in pair_ids],
            )
            left = connection.execute(
                "SELECT COUNT(*) FROM shard_rows WHERE repo_id = ? AND shard_index = ?", (repo_id, shard_index)
            ).fetchone()[0]
            if not left:
                connection.execute("DELETE FROM shards WHERE repo_id = ? AND shard_index = ?", (repo_id, shard_index))

    def mark_uploaded(self, repo_id: str, shard_index: int) -> None:
        """Note that ``repo_id`` has shard ``shard_index`` (its first upload time is kept)."""
        with self._write() as connection:
            connection.execute(
                "UPDATE shards SET uploaded_at = ? WHERE repo_id = ? AND shard_index = ? AND uploaded_at IS NULL",
                (self.clock(), repo_id, shard_index),
            )

    def final_decision(self, pair_id: str) -> RecordedDecision:
        """The decision that settled an accepted or rejected pair (the adjudication, else the last review)."""
        active = [d for d in self.decisions(pair_id=pair_id) if d.decision.verdict != "skip"]
        adjudications = [d for d in active if d.decision.role == "adjudication"]
        if not (adjudications or active):
            raise DecisionRefusedError(f"pair {pair_id} has no decision yet")
        return (adjudications or active)[-1]


def _recorded_from_row(row) -> RecordedDecision:
    """A :class:`RecordedDecision` from a row of ``_DECISION_COLUMNS``."""
    pair_id, reviewer, verdict, role, tags, caption, note, decision_id, decided_at, undone_at, reasons = row
    decision = Decision(
        pair_id=pair_id,
        reviewer=reviewer,
        verdict=verdict,
        role=role,
        tags=tuple(json.loads(tags)),
        caption=caption,
        note=note,
        decision_id=decision_id,
        reasons=tuple(json.loads(reasons)),
    )
    return RecordedDecision(decision, decided_at, undone_at)
