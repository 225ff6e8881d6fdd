"""BEIR-format datasets: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

The layout is the one every BEIR dataset ships with, so users can point matry_index at any of
them (or at their own data written the same way).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidInput

Qrels = dict[str, dict[str, int]]


@dataclass
class BeirDataset:
    """Texts and relevance judgements of one BEIR folder.

    ``corpus`` maps doc id → text (title and body joined with a space, as BEIR does);
    ``queries`` maps query id → text; ``qrels`` maps split name → {query id: {doc id: score}}.
    """

    root: Path
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, Qrels] = field(default_factory=dict)

    def split(self, name: str) -> Qrels:
        """The relevance judgements of one split, with a clear error if it is absent."""
        if name not in self.qrels:
            raise InvalidInput(
                f"{self.root} has no qrels split {name!r}; available: {sorted(self.qrels)}")
        return self.qrels[name]


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise InvalidInput(f"{path}:{lineno} is not valid JSON: {exc}") from None
    return rows


def read_qrels(path: Path) -> Qrels:
    """Read a BEIR qrels TSV (header ``query-id corpus-id score``)."""
    qrels: Qrels = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["query-id", "corpus-id"]:
            raise InvalidInput(f"{path} does not start with the BEIR header 'query-id\tcorpus-id\tscore'")
        for row in reader:
            if len(row) < 3:
                continue
            qrels.setdefault(row[0], {})[row[1]] = int(float(row[2]))
    return qrels


def load_beir(root: str | Path, splits: tuple[str, ...] | None = None) -> BeirDataset:
    """Load a BEIR folder. ``splits`` defaults to every ``qrels/*.tsv`` present."""
    root = Path(root)
    corpus_path, queries_path = root / "corpus.jsonl", root / "queries.jsonl"
    for p in (corpus_path, queries_path):
        if not p.is_file():
            raise InvalidInput(f"{root} is not a BEIR folder: {p.name} is missing")
    corpus = {str(r["_id"]): " ".join(x for x in (r.get("title", ""), r.get("text", "")) if x)
              for r in _read_jsonl(corpus_path)}
    queries = {str(r["_id"]): r.get("text", "") for r in _read_jsonl(queries_path)}
    qrel_dir = root / "qrels"
    available = sorted(p.stem for p in qrel_dir.glob("*.tsv")) if qrel_dir.is_dir() else []
    wanted = available if splits is None else list(splits)
    qrels = {}
    for name in wanted:
        path = qrel_dir / f"{name}.tsv"
        if not path.is_file():
            raise InvalidInput(f"{root} has no qrels/{name}.tsv; available: {available}")
        qrels[name] = read_qrels(path)
    return BeirDataset(root=root, corpus=corpus, queries=queries, qrels=qrels)
