"""The review store: locks and their heartbeat, overlap and adjudication, undo, concurrency, crash safety (SIGKILL).

All on the pairs made from scikit-image's photos, so a fresh clone checks every invariant.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from authface_core.annotation.store import Decision, ReviewStore, resolve_verdict
from authface_core.errors import DecisionRefusedError

REPO_ROOT = Path(__file__).resolve().parents[2]


def many_pairs(pairs, copies: int):
    """The pairs repeated under distinct ids, for tests that need more decisions than photos."""
    return [replace(pair, pair_id=f"{pair.pair_id}-{copy}") for copy in range(copies) for pair in pairs]


class FakeClock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def test_resolve_verdict():
    assert resolve_verdict([], None, 1) == "pending"
    assert resolve_verdict(["accept"], None, 2) == "pending"
    assert resolve_verdict(["accept", "skip", "accept"], None, 2) == "accepted"
    assert resolve_verdict(["accept", "reject"], None, 2) == "disputed"
    assert resolve_verdict(["accept", "reject"], "reject", 2) == "rejected"


def test_locks_expire_and_are_exclusive(tmp_path, pairs):
    clock = FakeClock()
    store = ReviewStore(tmp_path / "s.sqlite", lock_seconds=60, clock=clock)
    store.add_pairs(pairs[:2])
    first = store.claim_next("ana")
    assert store.claim_next("ana") == first  # a reloaded page gets its pair back
    second = store.claim_next("ben")
    assert second != first
    assert store.claim_next("cleo") is None  # both pairs are locked
    assert store.remaining_for("cleo") == 2  # but not done: they are open on other screens
    with pytest.raises(DecisionRefusedError, match="being reviewed by ana"):
        store.record(Decision(pair_id=first, reviewer="ben", verdict="accept"))
    clock.now += 61  # ana closed her browser
    assert store.claim_next("cleo") == first


def test_a_held_pair_comes_back_only_in_its_own_queue(tmp_path, pairs):
    store = ReviewStore(tmp_path / "s.sqlite", overlap=2)
    store.add_pairs(pairs[:2])
    disputed = store.claim_next("ana")
    store.record(Decision(pair_id=disputed, reviewer="ana", verdict="accept"))
    assert store.claim_next("ben") == disputed
    store.record(Decision(pair_id=disputed, reviewer="ben", verdict="reject"))
    review_pair = store.claim_next("cleo")
    assert review_pair != disputed
    # cleo switches to the adjudication queue: she gets the disputed pair, not the one she held
    assert store.claim_next("cleo", queue="adjudication") == disputed
    assert store.held_by("cleo") == disputed
    assert store.claim_next("dan") == review_pair  # her old lock is given up, not left to expire
    with pytest.raises(ValueError, match="queue must be one of"):
        store.claim_next("dan", queue="later")


def test_an_open_page_keeps_its_pair_by_heartbeat(tmp_path, pairs):
    clock = FakeClock()
    store = ReviewStore(tmp_path / "s.sqlite", lock_seconds=60, clock=clock)
    store.add_pairs(pairs[:2])
    studied = store.claim_next("ana")
    for _ in range(5):  # ana studies the pair for 5 minutes, her page renewing the lock every 50 s
        clock.now += 50
        assert store.renew("ana", studied)
    assert store.claim_next("ben") != studied
    store.record(Decision(pair_id=studied, reviewer="ana", verdict="accept", caption="kept"))
    assert store.final_decision(studied).decision.caption == "kept"


def test_a_lost_lock_is_taken_back_only_when_nobody_else_has_the_pair(tmp_path, pairs):
    clock = FakeClock()
    store = ReviewStore(tmp_path / "s.sqlite", lock_seconds=60, clock=clock)
    store.add_pairs(pairs[:2])
    first = store.claim_next("ana")
    clock.now += 61  # the laptop slept: no heartbeat
    assert store.renew("ana", first)  # nobody took it: hers again
    clock.now += 61
    assert store.claim_next("ben") == first  # ben took it while ana's page was away
    assert not store.renew("ana", first)
    with pytest.raises(DecisionRefusedError, match="being reviewed by ben"):
        store.record(Decision(pair_id=first, reviewer="ana", verdict="accept"))
    store.record(Decision(pair_id=first, reviewer="ben", verdict="accept"))
    assert not store.renew("ana", first)  # settled: nothing left to renew


def test_reviewer_names_reach_the_store_normalised(store, pairs):
    store.add_pairs(pairs[:1])
    for name in ("Ana", " ana", "ＡＮＡ", ""):
        with pytest.raises(ValueError, match="normalised name"):
            store.claim_next(name)
        with pytest.raises(ValueError, match="normalised name"):
            Decision(pair_id=pairs[0].pair_id, reviewer=name, verdict="accept")


def test_one_decision_per_person_and_pair_and_no_self_adjudication(tmp_path, pairs):
    store = ReviewStore(tmp_path / "s.sqlite", overlap=2)
    store.add_pairs(pairs[:1])
    pair_id = pairs[0].pair_id
    store.record(Decision(pair_id=pair_id, reviewer="ana", verdict="accept"))
    with pytest.raises(DecisionRefusedError, match="ana already decided"):
        store.record(Decision(pair_id=pair_id, reviewer="ana", verdict="accept"))  # a second vote to settle it alone
    store.record(Decision(pair_id=pair_id, reviewer="ben", verdict="reject"))
    assert store.counters().disputed == 1
    assert store.claim_next("ana", queue="adjudication") is None  # her own dispute is not offered to her
    with pytest.raises(DecisionRefusedError, match="ana reviewed pair .*another adjudicator must settle it"):
        store.record(Decision(pair_id=pair_id, reviewer="ana", verdict="accept", role="adjudication"))
    assert store.claim_next("cleo", queue="adjudication") == pair_id
    store.record(Decision(pair_id=pair_id, reviewer="cleo", verdict="reject", role="adjudication"))
    assert store.pair_states() == {pair_id: "rejected"}
    # the database itself holds the rule: a second active decision cannot be written even by hand
    with sqlite3.connect(store.path) as connection, pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        connection.execute(
            "INSERT INTO decisions(decision_id, pair_id, reviewer, verdict, role, tags, caption, note, decided_at)"
            " VALUES ('x', ?, 'ana', 'reject', 'review', '[]', '', '', 0)",
            (pair_id,),
        )
    assert store.check_consistency() == []


def test_decisions_are_idempotent_and_undo_keeps_history(store, pairs):
    store.add_pairs(pairs)
    pair_id = store.claim_next("ana")
    decision = Decision(pair_id=pair_id, reviewer="ana", verdict="accept", tags=("makeup", "lighting"))
    store.record(decision)
    store.record(decision)  # a retried request
    assert len(store.decisions()) == 1
    assert store.counters().accepted == 1
    with pytest.raises(DecisionRefusedError, match="already decided"):
        store.record(Decision(pair_id=pair_id, reviewer="ana", verdict="reject"))
    undone = store.undo_last("ana")
    assert undone.decision == decision and undone.undone_at is not None
    assert store.counters().accepted == 0
    assert store.claim_next("ana") == pair_id  # the pair comes back to its reviewer
    store.record(Decision(pair_id=pair_id, reviewer="ana", verdict="reject"))
    assert [d.decision.verdict for d in store.decisions(include_undone=True)] == ["accept", "reject"]
    assert store.counters().rejected == 1
    assert store.check_consistency() == []


def test_skipped_pairs_come_last(store, pairs):
    store.add_pairs(pairs[:3])
    first = store.claim_next("ana")
    store.record(Decision(pair_id=first, reviewer="ana", verdict="skip"))
    assert store.claim_next("ana") != first
    assert store.counters().to_review == 3


def test_overlap_disagreement_goes_to_adjudication(tmp_path, pairs):
    store = ReviewStore(tmp_path / "s.sqlite", overlap=2)
    store.add_pairs(pairs[:1])
    pair_id = store.claim_next("ana")
    store.record(Decision(pair_id=pair_id, reviewer="ana", verdict="accept"))
    assert store.claim_next("ana") is None  # ana cannot review it twice
    assert store.claim_next("ben") == pair_id
    store.record(Decision(pair_id=pair_id, reviewer="ben", verdict="reject"))
    assert store.counters().disputed == 1
    assert store.claim_next("cleo") is None
    assert store.claim_next("cleo", queue="adjudication") == pair_id
    store.record(Decision(pair_id=pair_id, reviewer="cleo", verdict="accept", role="adjudication"))
    assert store.pair_states() == {pair_id: "accepted"}
    assert store.final_decision(pair_id).decision.reviewer == "cleo"
    stats = {s.reviewer: s for s in store.reviewer_stats()}
    assert (stats["ana"].compared, stats["ana"].agreed, stats["ana"].agreement) == (1, 0, 0.0)


def test_two_reviewer_threads_never_share_a_pair(tmp_path, pairs):
    store = ReviewStore(tmp_path / "s.sqlite")
    pairs = many_pairs(pairs, 4)
    store.add_pairs(pairs)
    claimed: dict[str, list[str]] = {"ana": [], "ben": []}
    errors = []
    start = threading.Barrier(2)

    def review(reviewer):
        try:
            start.wait()
            while (pair_id := store.claim_next(reviewer)) is not None:
                claimed[reviewer].append(pair_id)
                time.sleep(0.005)  # looking at the pair
                store.record(Decision(pair_id=pair_id, reviewer=reviewer, verdict="accept"))
        except Exception as error:  # surfaced below: a thread's exception would otherwise vanish
            errors.append(error)

    threads = [threading.Thread(target=review, args=(name,)) for name in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert not set(claimed["ana"]) & set(claimed["ben"])
    assert claimed["ana"] and claimed["ben"]
    assert sorted(claimed["ana"] + claimed["ben"]) == sorted(p.pair_id for p in pairs)
    assert len(store.decisions()) == len(pairs)
    assert store.check_consistency() == []


def _worker(store_path: Path, reviewer: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.annotation.store_worker", str(store_path), reviewer, *extra],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_two_reviewer_processes_with_overlap_lose_nothing(tmp_path, pairs):
    path = tmp_path / "s.sqlite"
    store = ReviewStore(path, overlap=2)
    pairs = many_pairs(pairs, 3)
    store.add_pairs(pairs)
    workers = {name: _worker(path, name, "--overlap", "2") for name in ("ana", "ben")}
    outputs = {name: worker.communicate(timeout=120)[0].splitlines() for name, worker in workers.items()}
    assert all(worker.returncode == 0 for worker in workers.values())
    acks = {name: [line.split()[1:] for line in lines if line.startswith("ACK")] for name, lines in outputs.items()}
    # with overlap 2 each reviewer decides every pair once, never twice
    for name in acks:
        assert sorted(pair_id for _, pair_id, _ in acks[name]) == sorted(p.pair_id for p in pairs)
    stored = {d.decision.decision_id: d.decision for d in store.decisions()}
    assert len(stored) == 2 * len(pairs)
    for name in acks:
        for decision_id, pair_id, verdict in acks[name]:
            assert (stored[decision_id].pair_id, stored[decision_id].verdict) == (pair_id, verdict)
    states = store.pair_states()
    disagreements = {
        pair_id for pair_id in states if len({d.decision.verdict for d in store.decisions(pair_id=pair_id)}) > 1
    }
    assert {pair_id for pair_id, state in states.items() if state == "disputed"} == disagreements
    assert store.check_consistency() == []


def test_sigkill_while_recording_loses_no_acknowledged_decision(tmp_path, pairs):
    path = tmp_path / "s.sqlite"
    store = ReviewStore(path)
    pairs = many_pairs(pairs, 30)  # more than the worker can decide before the kill
    store.add_pairs(pairs)
    worker = _worker(path, "ana")
    acknowledged = []
    for line in worker.stdout:
        if line.startswith("ACK"):
            acknowledged.append(line.split()[1:])
        if len(acknowledged) == 25:
            os.kill(worker.pid, signal.SIGKILL)  # in the middle of the next claim/record
            break
    acknowledged += [line.split()[1:] for line in worker.stdout.read().splitlines() if line.startswith("ACK")]
    worker.wait(timeout=30)
    assert worker.returncode == -signal.SIGKILL

    restarted = ReviewStore(path)
    assert restarted.check_consistency() == []
    stored = {d.decision.decision_id: d.decision for d in restarted.decisions()}
    for decision_id, pair_id, verdict in acknowledged:
        assert (stored[decision_id].pair_id, stored[decision_id].verdict) == (pair_id, verdict)
    # at most the one decision in flight was committed without its acknowledgement being read
    assert len(acknowledged) <= len(stored) <= len(acknowledged) + 1
    assert len(stored) < len(pairs)

    # the restart resumes: the killed reviewer gets their locked pair back, then the rest
    resumed = _worker(path, "ana")
    resumed.communicate(timeout=300)
    assert resumed.returncode == 0
    final = ReviewStore(path)
    assert final.counters().to_review == 0
    assert len(final.decisions()) == len(pairs)
    assert final.check_consistency() == []


def test_reject_reasons_are_stored_with_the_decision_and_checked(store, pairs):
    store.add_pairs(pairs[:1])
    pair_id = pairs[0].pair_id
    recorded = store.record(Decision(pair_id, "ana", "reject", reasons=("halo", "plastic skin", "halo")))
    assert recorded.decision.reasons == ("plastic skin", "halo")  # each once, in the list's order
    assert store.decisions()[0].decision.reasons == ("plastic skin", "halo")
    with pytest.raises(ValueError, match="reject reasons must be among"):
        Decision(pair_id, "ben", "reject", reasons=("too dark",))
    with pytest.raises(ValueError, match="only a reject has reject reasons"):
        Decision(pair_id, "ben", "accept", reasons=("halo",))


def test_a_store_made_before_reject_reasons_opens_with_none(tmp_path, pairs):
    path = tmp_path / "old.sqlite"
    ReviewStore(path).add_pairs(pairs[:1])
    with sqlite3.connect(path) as connection:  # the decisions table as it was made before
        connection.execute("DROP TABLE decisions")
        connection.execute(
            "CREATE TABLE decisions(decision_id TEXT PRIMARY KEY, pair_id TEXT NOT NULL, reviewer TEXT NOT NULL,"
            " verdict TEXT NOT NULL, role TEXT NOT NULL, tags TEXT NOT NULL, caption TEXT NOT NULL,"
            " note TEXT NOT NULL, decided_at REAL NOT NULL, undone_at REAL)"
        )
        connection.execute(
            "INSERT INTO decisions VALUES ('d1', ?, 'ana', 'reject', 'review', '[]', '', '', 1.0, NULL)",
            (pairs[0].pair_id,),
        )
    assert [d.decision.reasons for d in ReviewStore(path).decisions()] == [()]
