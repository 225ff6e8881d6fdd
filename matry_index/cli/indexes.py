"""Indexes from the shell: ``build`` one from ``.npy`` embeddings, ``search`` a saved one, and
``qdrant-setup`` a Qdrant collection. Any registered backend takes its options as
``--option KEY=VALUE``; the common FAISS and Qdrant ones also have flags of their own."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import backends
from ..backends.faiss.coarse import FAISS_CODES, LEGACY_IVF
from ..backends.qdrant.schema import PAYLOAD_INDEX_KINDS, QUANTIZATIONS
from ..errors import InvalidInput
from ..inputs import load_matrix, read_jsonl, read_lines
from .args import key_value, levels, options, positive_int, read_filter, recall, storage_args, storage_options


def _payload_index(text: str) -> tuple[str, str]:
    """``--payload-index year:float`` → ("year", "float"); an argparse type."""
    field, _, kind = text.rpartition(":")
    if not field or kind not in PAYLOAD_INDEX_KINDS:
        raise argparse.ArgumentTypeError(f"expected FIELD:KIND with KIND one of {PAYLOAD_INDEX_KINDS}; got {text!r}")
    return field, kind


def register(sub: argparse._SubParsersAction) -> None:
    _register_build(sub)
    _register_search(sub)
    _register_qdrant_setup(sub)


def _register_build(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build an index from .npy embeddings and save it")
    p.add_argument("--embeddings", required=True, help=".npy file (n, d)")
    p.add_argument("--ids", required=True, help="text file, one id per line")
    p.add_argument("--payload", help=".jsonl file, one metadata object per line")
    p.add_argument("--adaptor", help="saved adaptor folder (none: plain truncation)")
    p.add_argument("--levels", type=levels, default=None, help="prefix levels; the first is the coarse one")
    p.add_argument("--backend", default="faiss", help=f"the engine: one of {backends.kinds()} (or a registered one)")
    p.add_argument("--option", type=key_value, action="append", metavar="KEY=VALUE",
                   help="a backend option (the value as JSON where it parses), e.g. --option nlist=4096; repeat")
    storage_args(p)
    p.add_argument("--coarse", choices=("auto",) + FAISS_CODES, default=None,
                   help="FAISS: the coarse code on the first level; auto: an exact scan below 1,000 records, "
                        "IVF lists of 8-bit codes from there on (4-bit codes where --codes is given) (default: auto)")
    p.add_argument("--ivf-encoding", choices=tuple(LEGACY_IVF), default=None,
                   help="FAISS, with --coarse ivf: float32 or 8-bit codes (--coarse ivf-int8 says the same)")
    p.add_argument("--nlist", type=positive_int, default=None, help="FAISS IVF lists (default 4·sqrt(n))")
    p.add_argument("--vector-storage", choices=["memory", "mmap"], default=None,
                   help="FAISS: where the full vectors live: in RAM, or in a memory-mapped file read only for the "
                        "candidates (then only the coarse index, norms and ids are resident)")
    p.add_argument("--scratch-dir", help="with --vector-storage mmap: where the build writes its vector file "
                                         "(default: the system's temporary directory; use a real disk)")
    p.add_argument("--tune-queries", help=".npy of sample query embeddings to tune the funnel on")
    p.add_argument("--target-recall", type=recall, default=0.99, help="recall@k the tuned plan must reach")
    p.add_argument("-k", type=positive_int, default=10, help="the k the funnel is tuned for")
    p.add_argument("--out", required=True, help="folder to save the index to (a new one, or an earlier index save)")
    p.set_defaults(func=build)


def _register_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="query a saved index with .npy query embeddings")
    p.add_argument("--index", required=True, help="saved index folder")
    p.add_argument("--queries", required=True, help=".npy query embeddings, (q, d) or one (d,) vector")
    p.add_argument("--query-ids", help="text file, one id per query (default: their row numbers)")
    p.add_argument("-k", type=positive_int, default=10, help="hits per query")
    p.add_argument("--filter", help='metadata filter as JSON, e.g. \'{"lang": "en"}\'')
    p.add_argument("--url", help="the Qdrant server of a qdrant index (a saved file never chooses it)")
    p.add_argument("--api-key", default=None, help="API key for --url")
    p.add_argument("--path", help="new location of a moved Qdrant Edge shard or local-mode folder")
    p.add_argument("--trust-stored-url", action="store_true",
                   help="connect to the server URL written in the index (only for files you wrote)")
    p.add_argument("--connect", type=key_value, action="append", metavar="KEY=VALUE",
                   help="another connection option of the index's backend; repeat")
    p.set_defaults(func=search)


def _register_qdrant_setup(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("qdrant-setup", help="create or validate a Qdrant collection and ingest vectors")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="Qdrant server or cluster URL")
    where.add_argument("--path", help="qdrant-client local mode storage folder (tests, small data)")
    where.add_argument("--edge-path", help="a Qdrant Edge shard folder (the engine in-process)")
    p.add_argument("--api-key", default=None, help="default: $QDRANT_API_KEY")
    p.add_argument("--collection", default="matry_index", help="collection name")
    p.add_argument("--adaptor", help="saved adaptor folder (its levels and hash go into the collection)")
    p.add_argument("--dim", type=positive_int, help="embedding dimension when there is no adaptor")
    p.add_argument("--levels", type=levels, default=None, help="prefix levels, e.g. 64,128,256")
    p.add_argument("--embeddings", help=".npy (n, d) raw embeddings to ingest")
    p.add_argument("--ids", help="one id per line, aligned with --embeddings")
    p.add_argument("--payload", help=".jsonl, one metadata object per line")
    p.add_argument("--shards", type=positive_int, default=None, help="shard_number of a new collection")
    p.add_argument("--replicas", type=positive_int, default=None, help="replication_factor of a new collection")
    p.add_argument("--in-ram", dest="on_disk", action="store_false",
                   help="keep every vector in RAM (default: only the coarse codes and graph; the vectors "
                        "read for candidates alone are memory-mapped from disk)")
    p.add_argument("--quantization", choices=[q or "none" for q in QUANTIZATIONS], default="int8",
                   help="codes of the coarse level kept in RAM for its graph walk")
    storage_args(p)
    p.add_argument("--payload-index", type=_payload_index, action="append", metavar="FIELD:KIND",
                   help="index a payload field that filters use: KIND keyword (strings) or float (numbers); "
                        "repeat for several fields")
    p.set_defaults(func=qdrant_setup)


def _build_options(args: argparse.Namespace) -> dict:
    """The backend options of ``build``: ``--option`` pairs, and the FAISS flags (refused for
    another backend, which they would not reach)."""
    chosen = options(args.option, "--option")
    flags = {"coarse": args.coarse, "ivf_encoding": args.ivf_encoding, "nlist": args.nlist,
             "vector_storage": args.vector_storage, "scratch_dir": args.scratch_dir}
    given = {key: value for key, value in flags.items() if value is not None}
    if given and args.backend != "faiss":
        raise InvalidInput(f"{', '.join('--' + k.replace('_', '-') for k in given)} are FAISS options; for the "
                           f"{args.backend} backend pass its own as --option KEY=VALUE")
    twice = set(given) & set(chosen)
    if twice:
        raise InvalidInput(f"{sorted(twice)} given both as a flag and as --option")
    return {**chosen, **given}


def build(args: argparse.Namespace) -> int:
    from ..adaptor import MatryoshkaAdaptor
    from ..index import MatryoshkaIndex, is_saved_index
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not is_saved_index(out))):
        raise InvalidInput(f"--out {out} exists and is not a saved index; give a new directory")
    vectors = load_matrix(args.embeddings, "embeddings")
    ids = read_lines(args.ids, "ids file")
    payload = read_jsonl(args.payload) if args.payload else None
    if vectors.ndim != 2:
        raise InvalidInput(f"embeddings {args.embeddings} must be a 2-d array (n, d); got shape {vectors.shape}")
    adaptor = MatryoshkaAdaptor.load(args.adaptor) if args.adaptor else None
    index = MatryoshkaIndex(vectors.shape[1], adaptor=adaptor, levels=args.levels, backend=args.backend,
                            **storage_options(args), **_build_options(args))
    index.add(ids, vectors, payload)
    if args.tune_queries:
        plan = index.tune(load_matrix(args.tune_queries, "tune queries"), target_recall=args.target_recall, k=args.k)
        print(f"tuned plan {plan.describe()}: {index.explain(plan, args.k)}")
    index.save(out)
    print(f"built {index} at {out}")
    print(index.stats().describe())
    index.close()
    return 0


def search(args: argparse.Namespace) -> int:
    from ..index import MatryoshkaIndex
    filt = read_filter(args.filter)
    queries = load_matrix(args.queries, "queries")
    if queries.ndim == 1:  # one query vector
        queries = queries[None, :]
    query_ids: list = list(range(len(queries)))
    if args.query_ids:
        query_ids = read_lines(args.query_ids, "query ids file")
        if len(query_ids) != len(queries):
            raise InvalidInput(f"{args.query_ids} holds {len(query_ids)} ids for {len(queries)} queries")
    connection = options(args.connect, "--connect")
    connection.update({key: value for key, value in (("url", args.url), ("api_key", args.api_key),
                                                     ("path", args.path)) if value})
    if args.trust_stored_url:
        connection["trust_stored_url"] = True
    with MatryoshkaIndex.load(args.index, **connection) as index:
        for qid, hits in zip(query_ids, index.search(queries, k=args.k, filter=filt)):
            print(json.dumps({"query": qid, "hits": [{"id": h.id, "score": round(h.score, 6)} for h in hits]}))
    return 0


def qdrant_setup(args: argparse.Namespace) -> int:
    from ..qdrant_setup import setup_collection
    layout = {"on_disk": args.on_disk, "quantization": None if args.quantization == "none" else args.quantization,
              "payload_indexes": dict(args.payload_index or []), **storage_options(args)}
    if args.edge_path:
        ignored = [flag for flag, given in (("--api-key", args.api_key), ("--shards", args.shards),
                                            ("--replicas", args.replicas),
                                            ("--collection", args.collection != "matry_index")) if given]
        if ignored:
            raise InvalidInput(f"{', '.join(ignored)} apply to a Qdrant server or local mode, not to an Edge shard "
                               "(--edge-path); leave them out")
        backend, connection = "qdrant-edge", {"path": args.edge_path, **layout}
    else:
        backend = "qdrant"
        connection = {"collection": args.collection, "url": args.url, "api_key": args.api_key,
                      "path": args.path, "shard_number": args.shards, "replication_factor": args.replicas, **layout}
    index, report = setup_collection(adaptor=args.adaptor, dim=args.dim, levels=args.levels, backend=backend,
                                     embeddings=args.embeddings, ids=args.ids, payload=args.payload, **connection)
    index.close()
    print(json.dumps(report, indent=2))
    return 0
