"""Shared fixtures: real SciFact embeddings from ../shared/data, sliced small for speed.

Every test that reads them carries the ``shared_data`` marker (set here for the fixtures'
users, by hand for the few that read the folder directly), so that ``pytest -m 'not
shared_data'`` runs in a clone without ``../shared``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MATRY_INDEX_SHARED", REPO.parent / "shared"))
SCIFACT = SHARED / "data" / "scifact"
MINILM = SCIFACT / "embeddings" / "all-MiniLM-L6-v2"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"test data missing: {path} (set MATRY_INDEX_SHARED to the shared/ folder)")
    return path


#: the fixtures that read ../shared
SHARED_FIXTURES = {"scifact_experiment", "scifact_vectors", "small_corpus"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SHARED_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.shared_data)


@pytest.fixture(scope="session")
def scifact_experiment():
    from matry_index.experiment import load_experiment
    return load_experiment(_require(SCIFACT), _require(MINILM))


@pytest.fixture(scope="session")
def scifact_vectors(scifact_experiment):
    """(ids, corpus vectors, query vectors) of real SciFact MiniLM embeddings."""
    exp = scifact_experiment
    return exp.corpus.ids, exp.corpus.vectors, exp.queries.vectors


@pytest.fixture()
def small_corpus(scifact_vectors):
    """2,000 real documents and 100 real queries: fast, yet real structure."""
    ids, docs, queries = scifact_vectors
    return list(ids[:2000]), docs[:2000].copy(), queries[:100].copy()


@pytest.fixture()
def rng():
    return np.random.default_rng(0)
