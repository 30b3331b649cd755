"""A reviewer in its own process, for the concurrency and crash tests of the review store.

``python -m tests.annotation.store_worker STORE REVIEWER [--overlap N]`` claims pairs and decides
them until none is left for this reviewer (waiting while the other one holds the last ones). It
prints ``ACK <decision_id> <pair_id> <verdict>`` only after the store acknowledged a decision:
the line is the proof the test checks after a SIGKILL.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib

from authface_core.annotation.store import Decision, ReviewStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("reviewer")
    parser.add_argument("--overlap", type=int, default=1)
    args = parser.parse_args(argv)
    store = ReviewStore(args.store, overlap=args.overlap)
    while True:
        pair_id = store.claim_next(args.reviewer)
        if pair_id is None:
            if store.remaining_for(args.reviewer) == 0:
                return 0
            time.sleep(0.02)  # the pairs left are open on the other reviewer's screen
            continue
        print(f"CLAIM {pair_id}", flush=True)
        # a deterministic mix of verdicts, different for each reviewer and pair
        verdict = "accept" if zlib.crc32(f"{args.reviewer}:{pair_id}".encode()) % 3 else "reject"
        recorded = store.record(Decision(pair_id=pair_id, reviewer=args.reviewer, verdict=verdict, note="worker"))
        print(f"ACK {recorded.decision.decision_id} {pair_id} {verdict}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
