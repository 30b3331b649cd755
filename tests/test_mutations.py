"""bench/mutations.py stays runnable: each planted mistake still finds its text, once, in the current code, and
names tests that exist. (Running the mutations takes minutes: ``python bench/mutations.py``.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from .conftest import REPO_ROOT


def _mutations(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_mutations", REPO_ROOT / "bench" / "mutations.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_mutations", module)  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


def test_every_mutation_applies_to_the_current_code_and_names_existing_tests(tmp_path, monkeypatch):
    bench = _mutations(monkeypatch)
    assert len(bench.MUTATIONS) >= 9 and len({m.name for m in bench.MUTATIONS}) == len(bench.MUTATIONS)
    for mutation in bench.MUTATIONS:
        copy = tmp_path / mutation.path
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text((REPO_ROOT / mutation.path).read_text())
        bench.apply(mutation, tmp_path)  # raises unless the text occurs exactly once
        assert copy.read_text() != (REPO_ROOT / mutation.path).read_text()
        for test in mutation.tests:
            path, _, name = test.partition("::")
            assert (REPO_ROOT / path).is_file() and (not name or f"def {name}(" in Path(REPO_ROOT / path).read_text())
