"""The backend conformance suite: hold any backend to the contract every matry_index engine keeps.

A backend is checked through a factory of empty indexes on it::

    def make(workdir, dim, persistent=False, **options):
        return MatryoshkaIndex(dim, backend="my-engine", path=str(workdir / "store"), **options)

    from matry_index.testing import check_backend
    check_backend(make)            # raises AssertionError naming the first check it breaks

or, under pytest, as one test per check::

    from matry_index.testing import BackendConformance

    class TestMyEngine(BackendConformance):
        @staticmethod
        def make(workdir, dim, persistent=False, **options):
            ...

The checks are in :mod:`.contract` (answers, writes, filters, persistence, failures injected
into saves, refusals, threads) and, with ``hypothesis`` installed, :mod:`.model` (random call
sequences against a model of the index). matry_index's own tests run the suite on every
backend kind it ships.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from .contract import CHECKS, IndexFactory, run

#: the property check's name (it needs hypothesis, from the ``test`` extra)
PROPERTY_CHECK = "agrees_with_a_model_of_the_index"


def check_backend(make: IndexFactory, workdir: str | Path | None = None, properties: bool = True) -> list[str]:
    """Run every check against the factory ``make``; the names of the checks run.

    ``workdir``: where the factory may keep files (a temporary folder by default, removed
    afterwards). ``properties``: also run the random-sequence check (needs hypothesis)."""
    with tempfile.TemporaryDirectory(prefix="matry-conformance-") as tmp:
        ran = run(make, Path(workdir or tmp))
        if properties:
            from .model import check_against_the_model
            check_against_the_model(make)
            ran.append(PROPERTY_CHECK)
    return ran


def _check_test(name: str):
    def test(self, tmp_path):
        run(type(self).make, tmp_path, [name])
    test.__name__ = f"test_{name}"
    test.__doc__ = CHECKS[name].__doc__
    return test


class BackendConformance:
    """Subclass as ``Test...`` and give it ``make`` (a static method, the index factory): pytest
    then collects one test per check of the contract, and one for the property check."""

    make: IndexFactory

    def test_agrees_with_a_model_of_the_index(self):
        from .model import check_against_the_model
        check_against_the_model(type(self).make)


for _name in CHECKS:
    setattr(BackendConformance, f"test_{_name}", _check_test(_name))

__all__ = ["BackendConformance", "CHECKS", "IndexFactory", "check_backend"]
