"""The optimisation behind :mod:`matry_index.adaptor.fit` (torch lives only here).

:func:`run_unsupervised` and :func:`run_supervised` take inputs that
:func:`~matry_index.adaptor.fit_unsupervised` / :func:`~matry_index.adaptor.fit_supervised`
have already checked and normalised. Both hold out a validation split and stop early on a
label-free criterion (unsupervised: how well each prefix reproduces the full-dimension top-10
of held-out anchors) or on held-out nDCG@10 (supervised; the held-out queries share no
relevant document with the training ones). The losses are in :mod:`.losses`, with the
reference of the paper they follow.
"""
from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import faiss
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .._validation import clip_levels, normalize_rows
from ..errors import InvalidInput
from ..evaluation.baselines import PCARotation
from ..evaluation.retrieval import exact_search
from . import losses
from .config import TrainConfig, TrainResult, default_threads
from .coarse_recall import HardNegatives, candidates_score
from .model import MatryoshkaAdaptor

#: the final top-k a funnel must find: the coarse stage is trained and selected for it
FUNNEL_TOP_K = 10


class _TorchAdaptor(nn.Module):
    """The training-time twin of :class:`MatryoshkaAdaptor`; exports to numpy when done."""

    def __init__(self, dim: int, hidden: int, rotation: np.ndarray | None, learn_rotation: bool):
        super().__init__()
        self.rot = None
        if rotation is not None:
            self.rot = nn.Linear(dim, dim, bias=False)
            self.rot.weight.data = torch.tensor(np.ascontiguousarray(rotation.T), dtype=torch.float32)
            if learn_rotation:
                nn.utils.parametrizations.orthogonal(self.rot, orthogonal_map="cayley")
            else:
                self.rot.weight.requires_grad_(False)
        self.fc1 = self.fc2 = None
        if hidden > 0:
            self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
            nn.init.zeros_(self.fc2.weight)
            nn.init.zeros_(self.fc2.bias)

    @classmethod
    def from_numpy(cls, adaptor: MatryoshkaAdaptor, learn_rotation: bool) -> "_TorchAdaptor":
        module = cls(adaptor.dim, adaptor.hidden, adaptor.rotation, learn_rotation)
        if adaptor.hidden:
            with torch.no_grad():
                module.fc1.weight.copy_(torch.from_numpy(adaptor.w1.T))
                module.fc1.bias.copy_(torch.from_numpy(adaptor.b1))
                module.fc2.weight.copy_(torch.from_numpy(adaptor.w2.T))
                module.fc2.bias.copy_(torch.from_numpy(adaptor.b2))
        return module

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.rot(x) if self.rot is not None else x
        if self.fc1 is None:
            return z, torch.zeros_like(z)
        residual = self.fc2(F.gelu(self.fc1(z), approximate="tanh"))
        return z + residual, residual

    def to_numpy(self, levels: tuple[int, ...], settings: dict) -> MatryoshkaAdaptor:
        def arr(t: torch.Tensor) -> np.ndarray:
            return np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))
        kw = {}
        if self.rot is not None:
            kw["rotation"] = arr(self.rot.weight.T)
        if self.fc1 is not None:
            kw.update(w1=arr(self.fc1.weight.T), b1=arr(self.fc1.bias),
                      w2=arr(self.fc2.weight.T), b2=arr(self.fc2.bias))
        dim = self.fc1.in_features if self.fc1 is not None else self.rot.in_features
        return MatryoshkaAdaptor(dim, levels, settings=settings, **kw)


# --- data preparation ----------------------------------------------------------------------

def mine_neighbours(anchors: np.ndarray, corpus: np.ndarray, k: int,
                    exclude_self: bool) -> np.ndarray:
    """Top-``k`` corpus rows of each anchor by full-dimension cosine (original space).

    With ``exclude_self`` the anchors are the corpus itself and each row's own index is skipped.
    """
    a, c = normalize_rows(anchors), normalize_rows(corpus)
    k = min(k, len(c) - int(exclude_self))
    top = exact_search(a, c, k + int(exclude_self))
    if not exclude_self:
        return top
    keep = top != np.arange(len(a))[:, None]
    return np.stack([row[mask][:k] for row, mask in zip(top, keep)])


class _Anchors:
    """Anchor embeddings with their mined neighbours, split into train and validation rows."""

    def __init__(self, corpus: np.ndarray, extra: np.ndarray | None, cfg: TrainConfig,
                 rng: np.random.Generator):
        self.corpus = corpus
        self.vectors = corpus if extra is None else np.concatenate([corpus, extra])
        nbrs = [mine_neighbours(corpus, corpus, cfg.neighbours, exclude_self=True)]
        if extra is not None:
            nbrs.append(mine_neighbours(extra, corpus, cfg.neighbours, exclude_self=False))
        self.neighbours = np.concatenate(nbrs)
        self.n_positive = min(FUNNEL_TOP_K, self.neighbours.shape[1])
        own = np.full(len(self.vectors), -1, np.int64)
        own[:len(corpus)] = np.arange(len(corpus))
        self.hard = HardNegatives(np.concatenate([self.neighbours[:, :self.n_positive], own[:, None]], 1),
                                  clip_levels(cfg.recall_levels, corpus.shape[1]), cfg.recall_negatives)
        order = rng.permutation(len(self.vectors))
        n_val = max(1, int(round(cfg.val_fraction * len(order)))) if len(order) > 1 else 0
        self.val, self.train = order[:n_val], order[n_val:]
        is_query = self.train >= len(corpus)
        self.train_docs, self.train_queries = self.train[~is_query], self.train[is_query]

    def sample(self, rng: np.random.Generator, size: int, query_share: float | None) -> np.ndarray:
        """A batch of training anchors; ``query_share`` of it from the query anchors.

        Retrieval ranks documents for *queries*, whose distribution differs from the
        documents'; a fixed share keeps a few hundred queries from drowning among thousands
        of documents. None draws uniformly from all anchors.
        """
        size = min(size, len(self.train))
        if query_share is None or not len(self.train_queries) or not len(self.train_docs):
            return rng.choice(self.train, size=size, replace=False)
        n_q = min(len(self.train_queries), int(round(query_share * size)))
        n_d = min(len(self.train_docs), size - n_q)
        return np.concatenate([rng.choice(self.train_queries, size=n_q, replace=False),
                               rng.choice(self.train_docs, size=n_d, replace=False)])


def level_weights(levels: Sequence[int], power: float) -> np.ndarray:
    """Loss weight of each prefix level, ∝ level**power and summing to 1.

    Equal weights (power 0) let the short prefixes, whose losses are largest, dominate the
    gradient; a positive power moves effort towards the longer prefixes.
    """
    w = np.asarray(levels, np.float64) ** float(power)
    return w / w.sum()


def _similarity_terms(module: _TorchAdaptor, anchors: np.ndarray, corpus: np.ndarray,
                      nbr_idx: np.ndarray, rand_idx: np.ndarray, levels: tuple[int, ...],
                      cfg: TrainConfig, hard_idx: np.ndarray | None = None,
                      hard_levels: tuple[int, ...] = (), n_positive: int = FUNNEL_TOP_K) -> dict[str, torch.Tensor]:
    """The unsupervised loss terms for one batch, averaged over prefix levels.

    ``anchors`` (B, d) are compared with their mined neighbours ``corpus[nbr_idx]`` (B, k)
    and with random documents ``corpus[rand_idx]`` shared by the batch; with ``hard_idx``
    (B, len(hard_levels), H), also each coarse level's hard negatives, for the funnel's
    recall term. Each distinct document goes through the adaptor once, however many anchors
    it serves.
    """
    b, k = nbr_idx.shape
    hard = np.empty((b, 0, 0), np.int64) if hard_idx is None else hard_idx
    docs, inverse = np.unique(np.concatenate([nbr_idx.ravel(), rand_idx, hard.ravel()]), return_inverse=True)
    adapted, residual = module(torch.from_numpy(np.concatenate([anchors, corpus[docs]])))
    a_ad, d_ad = adapted[:b], adapted[b:]
    inverse = torch.from_numpy(inverse)
    n_ad, r_ad = d_ad[inverse[:b * k]].reshape(b, k, -1), d_ad[inverse[b * k:b * k + len(rand_idx)]]
    with torch.no_grad():
        a_t = torch.from_numpy(anchors)
        t_nbr = losses.prefix_cosines(a_t, torch.from_numpy(corpus[nbr_idx]), a_t.shape[1])
        t_rand = losses.prefix_cosines(a_t, torch.from_numpy(corpus[rand_idx]), a_t.shape[1])
    terms = {"topk": 0.0, "pair": 0.0, "listwise": 0.0}
    weights = level_weights(levels, cfg.level_weight_power)
    if module.fc1 is None and len(levels) > 1 and levels[-1] == anchors.shape[1]:
        # a rotation keeps every full-dimension cosine: that level's terms are constants
        levels, weights = levels[:-1], weights[:-1]
    all_nbr = losses.prefix_cosines_multi(a_ad, n_ad, levels)
    all_rand = losses.prefix_cosines_multi(a_ad, r_ad, levels)
    for w, p_nbr, p_rand in zip(weights, all_nbr, all_rand):
        terms["topk"] = terms["topk"] + w * losses.similarity_preservation_loss(t_nbr, p_nbr)
        terms["pair"] = terms["pair"] + w * losses.similarity_preservation_loss(t_rand, p_rand)
        if cfg.w_listwise:
            terms["listwise"] = terms["listwise"] + w * losses.listwise_kl_loss(
                torch.cat([t_nbr, t_rand], 1), torch.cat([p_nbr, p_rand], 1), cfg.temperature)
    terms["rec"] = losses.reconstruction_loss(residual)
    terms["recall"] = 0.0
    if hard_idx is not None:
        # each level's negatives are gathered on that level's prefix only: the (B, levels, H)
        # hard negatives are most of a batch, and copying whole rows for them (and zeroing
        # whole rows in the backward pass) cost more than the rest of the step
        h_rows = inverse[b * k + len(rand_idx):].reshape(hard.shape)
        coarse = d_ad[:, :max(hard_levels)]
        rest = max(len(corpus) - hard.shape[2] - n_positive, 0) / max(len(rand_idx), 1)
        for li, m in enumerate(hard_levels):
            terms["recall"] = terms["recall"] + losses.smooth_rank_loss(
                losses.prefix_cosines(a_ad, n_ad[:, :n_positive], m),
                losses.prefix_cosines(a_ad, coarse[:, :m][h_rows[:, li]], m), losses.prefix_cosines(a_ad, r_ad, m),
                rest, cfg.recall_temperature) / len(hard_levels)
    return terms


def _unsupervised_loss(module, data: _Anchors, idx: np.ndarray, levels, cfg, rng) -> tuple[torch.Tensor, dict]:
    rand_idx = rng.integers(0, len(data.corpus), len(idx))
    recall = cfg.w_recall > 0 and data.hard.rows is not None
    terms = _similarity_terms(module, data.vectors[idx], data.corpus, data.neighbours[idx],
                              rand_idx, levels, cfg, data.hard.rows[idx] if recall else None,
                              data.hard.levels, data.n_positive)
    total = (cfg.w_topk * terms["topk"] + cfg.w_pair * terms["pair"]
             + cfg.w_listwise * terms["listwise"] + cfg.w_rec * terms["rec"] + cfg.w_recall * terms["recall"])
    return total, {n: float(v.detach()) if torch.is_tensor(v) else float(v) for n, v in terms.items()}


def _validation_loss(module: _TorchAdaptor, data: _Anchors, levels, cfg: TrainConfig) -> float:
    """The training objective on held-out anchors with a fixed set of random documents."""
    rng = np.random.default_rng(cfg.seed + 1)
    total = 0.0
    for s in range(0, len(data.val), cfg.batch_size):
        idx = data.val[s:s + cfg.batch_size]
        loss, _ = _unsupervised_loss(module, data, idx, levels, cfg, rng)
        total += float(loss) * len(idx)
    return total / max(len(data.val), 1)


def _adapt(module: _TorchAdaptor, x: np.ndarray, batch: int = 8192) -> np.ndarray:
    """The module's output for numpy rows, without gradients."""
    with torch.no_grad():
        return np.concatenate([module(torch.from_numpy(x[s:s + batch]))[0].numpy()
                               for s in range(0, len(x), batch)]) if len(x) else x


def _refresh_hard_negatives(module: _TorchAdaptor, data: _Anchors) -> None:
    """Re-mine every anchor's coarse-level hard negatives under the current adaptor."""
    data.hard.refresh(_adapt(module, data.vectors), _adapt(module, data.corpus))


def _held_out_candidates(module: _TorchAdaptor, data: _Anchors, cfg: TrainConfig) -> float:
    """Selection score: minus the mean log of the candidates each coarse prefix needs to hold
    ``cfg.select_recall`` of the held-out anchors' full-dimension top-k (higher is better)."""
    return candidates_score(lambda x: _adapt(module, x), data.vectors[data.val], data.corpus,
                            data.neighbours[data.val, :data.n_positive], data.hard.levels, cfg.select_recall)


def _initial_adaptor(corpus: np.ndarray, levels: tuple[int, ...], cfg: TrainConfig) -> MatryoshkaAdaptor:
    rotation = PCARotation.fit(corpus).components if cfg.rotation != "none" else None
    return MatryoshkaAdaptor(corpus.shape[1], levels, rotation=rotation)


@contextmanager
def _torch_session(cfg: TrainConfig) -> Iterator[np.random.Generator]:
    """Seed torch, set its thread count and FAISS's (which mines the hard negatives) for this
    fit, and give the caller's back afterwards (both are process-wide); yields the numpy
    generator of the run."""
    previous = torch.get_num_threads(), faiss.omp_get_max_threads()
    threads = cfg.threads or default_threads()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    try:
        yield np.random.default_rng(cfg.seed)
    finally:
        torch.set_num_threads(previous[0])
        faiss.omp_set_num_threads(previous[1])


def _train_loop(module: _TorchAdaptor, step_loss, evaluate, cfg: TrainConfig, lr: float,
                desc: str) -> tuple[dict, list[dict], int]:
    """Adam steps with periodic evaluation; keeps the best state (higher score is better)."""
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise InvalidInput("nothing to train: set hidden > 0 or rotation='pca-learned'")
    opt = torch.optim.Adam(params, lr=lr)
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.max_steps)
                if cfg.lr_schedule == "cosine" else None)
    best_score, best_state, best_step, stale = evaluate(), copy.deepcopy(module.state_dict()), 0, 0
    history = [{"step": 0, "score": best_score}]
    bar = tqdm(range(1, cfg.max_steps + 1), desc=desc, leave=False)
    for step in bar:
        module.train()
        loss, parts = step_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if schedule is not None:
            schedule.step()
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            module.eval()
            score = evaluate()
            history.append({"step": step, "loss": float(loss.detach()), **parts, "score": score})
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}", val=f"{score:.4f}")
            if score > best_score + 1e-5:
                best_score, best_state, best_step, stale = score, copy.deepcopy(module.state_dict()), step, 0
            else:
                stale += 1
                if stale >= cfg.patience:
                    break
    bar.close()
    if stale >= cfg.patience:
        tqdm.write(f"{desc}: stopped early at step {step} of {cfg.max_steps} (no held-out gain in "
                   f"{cfg.patience} checks); kept step {best_step}, best held-out score {best_score:.4f}")
    module.load_state_dict(best_state)
    return best_state, history, best_step


# --- public API ----------------------------------------------------------------------------

def run_unsupervised(corpus: np.ndarray, extra: np.ndarray | None, cfg: TrainConfig) -> TrainResult:
    """Fit on normalised ``corpus`` rows, with normalised ``extra`` query anchors (or None)."""
    dim = corpus.shape[1]
    levels = clip_levels(cfg.levels, dim)
    loss_levels = levels if cfg.include_full or len(levels) == 1 else levels[:-1]
    start = time.perf_counter()
    with _torch_session(cfg) as rng:
        data = _Anchors(corpus, extra, cfg, rng)
        init = _initial_adaptor(corpus, levels, cfg)
        module = _TorchAdaptor(dim, cfg.hidden, init.rotation, learn_rotation=cfg.rotation == "pca-learned")
        settings = {"mode": "unsupervised", **cfg.to_dict(), "n_corpus": len(corpus),
                    "n_query_anchors": 0 if extra is None else len(extra)}

        steps = itertools.count(1)
        if cfg.w_recall:
            _refresh_hard_negatives(module, data)

        def step_loss():
            if cfg.w_recall and next(steps) % cfg.recall_refresh == 0:
                _refresh_hard_negatives(module, data)
            idx = data.sample(rng, cfg.batch_size, cfg.query_anchor_share)
            return _unsupervised_loss(module, data, idx, loss_levels, cfg, rng)

        def evaluate() -> float:
            if cfg.select_by == "candidates":
                return _held_out_candidates(module, data, cfg)
            with torch.no_grad():
                return -_validation_loss(module, data, loss_levels, cfg)

        label = "funnel-aware adaptor" if cfg.select_by == "candidates" else "unsupervised adaptor"
        _, history, best_step = _train_loop(module, step_loss, evaluate, cfg, cfg.lr, label)
    adaptor = module.to_numpy(levels, {**settings, "best_step": best_step})
    return TrainResult(adaptor, history, best_step, time.perf_counter() - start)


# --- supervised stage ----------------------------------------------------------------------

def doc_disjoint_split(relevance: Sequence[tuple[int, int, float]], val_fraction: float,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split query rows into train / validation so that no relevant document is shared.

    Queries linked through a common relevant document form one group (union-find); whole
    groups go to validation. Validation then measures generalisation to unseen documents,
    not memorised document popularity.
    """
    queries = sorted({int(q) for q, _, r in relevance if r > 0})
    parent = {q: q for q in queries}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x
    owner: dict[int, int] = {}
    for q, d, r in relevance:
        if r > 0:
            if int(d) in owner:
                parent[find(int(q))] = find(owner[int(d)])
            else:
                owner[int(d)] = int(q)
    groups: dict[int, list[int]] = {}
    for q in queries:
        groups.setdefault(find(q), []).append(q)
    order = list(groups.values())
    rng.shuffle(order)
    target, val = val_fraction * len(queries), []
    for g in order:
        if len(val) >= target:
            break
        val.extend(g)
    val_set = set(val)
    return (np.array([q for q in queries if q not in val_set], np.int64), np.array(sorted(val), np.int64))


def _relevance_map(relevance: Sequence[tuple[int, int, float]]) -> dict[int, dict[int, float]]:
    rel: dict[int, dict[int, float]] = {}
    for q, d, r in relevance:
        rel.setdefault(int(q), {})[int(d)] = float(r)
    return rel


class _Judged:
    """Per-query candidate lists: relevant documents (graded) then mined hard negatives."""

    def __init__(self, rel: dict[int, dict[int, float]], query_rows: np.ndarray,
                 negatives: np.ndarray, max_pos: int = 4):
        n_neg = negatives.shape[1]
        self.cand = np.zeros((len(query_rows), max_pos + n_neg), np.int64)
        self.grade = np.zeros(self.cand.shape, np.float32)
        self.mask = np.zeros(self.cand.shape, np.float32)
        for i, q in enumerate(query_rows):
            pos = sorted(((r, d) for d, r in rel.get(int(q), {}).items() if r > 0), reverse=True)[:max_pos]
            for j, (r, d) in enumerate(pos):
                self.cand[i, j], self.grade[i, j], self.mask[i, j] = d, r, 1
            self.cand[i, max_pos:] = negatives[i]
            self.mask[i, max_pos:] = 1

    def in_batch(self, rows: np.ndarray, docs: np.ndarray, inverse: np.ndarray,
                 original_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Relevance and mask of every batch document for every batch query.

        ``docs`` are the distinct candidates of the batch queries ``rows`` (``inverse`` maps
        each query's candidate list onto them); ``original_scores`` (queries, docs) are the
        original-embedding cosines. Another query's candidate that the original embedding
        ranks above this query's weakest judged document is likely an unjudged positive, so
        it is masked out rather than pushed away.
        """
        judged = self.mask[rows].ravel() > 0
        query_of = np.repeat(np.arange(len(rows)), self.cand.shape[1])[judged]
        grade = np.zeros((len(rows), len(docs)), np.float32)
        cols = inverse[judged]
        grade[query_of, cols] = self.grade[rows].ravel()[judged]
        own = np.zeros(grade.shape, bool)
        own[query_of, cols] = True
        weakest = np.where(grade > 0, original_scores, np.inf).min(1, keepdims=True)
        mask = own | (original_scores < weakest)
        return grade, mask.astype(np.float32)


def _hard_negatives(adaptor: MatryoshkaAdaptor, queries: np.ndarray, corpus: np.ndarray,
                    relevant: dict[int, dict[int, float]], query_rows: np.ndarray, n: int) -> np.ndarray:
    """The top-ranked non-relevant documents of each query under the stage-1 adaptor."""
    extra = max((len(relevant.get(int(q), {})) for q in query_rows), default=0)
    top = exact_search(normalize_rows(adaptor.transform(queries[query_rows])),
                       normalize_rows(adaptor.transform(corpus)), n + extra)
    out = np.empty((len(query_rows), n), np.int64)
    for i, q in enumerate(query_rows):
        keep = [d for d in top[i] if d not in relevant.get(int(q), {})]
        out[i] = keep[:n]
    return out


def _val_ndcg(adaptor: MatryoshkaAdaptor, queries: np.ndarray, corpus: np.ndarray,
              relevant: dict[int, dict[int, float]], val_rows: np.ndarray, levels) -> float:
    """Mean over levels of nDCG@10 on the validation queries (train labels only)."""
    from ..evaluation.metrics import ndcg_at_k
    docs, q = adaptor.transform(corpus), adaptor.transform(queries[val_rows])
    qrels = {int(r): {str(d): int(round(g)) for d, g in relevant[int(r)].items()} for r in val_rows}
    scores = []
    for m in levels:
        top = exact_search(normalize_rows(q[:, :m]), normalize_rows(docs[:, :m]), 10)
        run = {int(r): [str(d) for d in row] for r, row in zip(val_rows, top)}
        scores.append(ndcg_at_k(run, qrels, 10))
    return float(np.mean(scores))


class _RankingObjective:
    """The supervised stage's loss for one step: a ranking term over a batch of training
    queries (their judged candidates, or every candidate of the batch) plus the
    unsupervised terms over a batch of anchors."""

    def __init__(self, module: _TorchAdaptor, queries: np.ndarray, corpus: np.ndarray, train_q: np.ndarray,
                 judged: _Judged, anchors: _Anchors, loss_levels: tuple[int, ...], cfg: TrainConfig,
                 rng: np.random.Generator):
        self.module, self.queries, self.corpus, self.train_q = module, queries, corpus, train_q
        self.judged, self.anchors, self.loss_levels, self.cfg, self.rng = judged, anchors, loss_levels, cfg, rng
        self.q_batch = max(8, cfg.batch_size // 4)

    def _level_mean(self, rank_fn, q_ad: torch.Tensor, c_ad: torch.Tensor, grade: np.ndarray,
                    mask: np.ndarray) -> torch.Tensor:
        grade_t, mask_t = torch.from_numpy(grade), torch.from_numpy(mask)
        per_level = losses.prefix_cosines_multi(q_ad, c_ad, self.loss_levels)
        return sum(rank_fn(s, grade_t, self.cfg.rank_scale, mask_t) for s in per_level) / len(self.loss_levels)

    def ranking_term(self, qi: np.ndarray) -> torch.Tensor:
        cfg, judged = self.cfg, self.judged
        cand = judged.cand[qi]
        docs, inverse = np.unique(cand.ravel(), return_inverse=True)
        q_rows = self.queries[self.train_q[qi]]
        adapted, _ = self.module(torch.from_numpy(np.concatenate([q_rows, self.corpus[docs]])))
        q_ad, d_ad = adapted[:len(qi)], adapted[len(qi):]
        rank = 0.0
        if cfg.rank_loss == "softmax-inbatch" or cfg.w_inbatch:  # each query ranks every candidate of the batch
            grade, mask = judged.in_batch(qi, docs, inverse, q_rows @ self.corpus[docs].T)
            rank = self._level_mean(losses.softmax_ranking_loss, q_ad, d_ad, grade, mask)
        if cfg.rank_loss == "pairwise":  # each query ranks its own candidate list
            c_ad = d_ad[torch.from_numpy(inverse)].reshape(len(qi), cand.shape[1], -1)
            own = self._level_mean(losses.ranking_loss, q_ad, c_ad, judged.grade[qi], judged.mask[qi])
            rank = cfg.w_inbatch * rank + own
        return rank

    def __call__(self) -> tuple[torch.Tensor, dict]:
        cfg, rng = self.cfg, self.rng
        qi = rng.choice(len(self.train_q), size=min(self.q_batch, len(self.train_q)), replace=False)
        rank = self.ranking_term(qi)
        ai = self.anchors.sample(rng, cfg.batch_size, cfg.query_anchor_share)
        unsup, parts = _unsupervised_loss(self.module, self.anchors, ai, self.loss_levels, cfg, rng)
        return cfg.w_rank * rank + unsup, {**parts, "rank": float(rank.detach())}


def run_supervised(corpus: np.ndarray, queries: np.ndarray, relevance: list[tuple[int, int, float]],
                   base: MatryoshkaAdaptor, cfg: TrainConfig) -> TrainResult:
    """Stage 2 from the stage-1 adaptor ``base`` (inputs checked and normalised)."""
    levels = base.levels
    loss_levels = levels if cfg.include_full or len(levels) == 1 else levels[:-1]
    start = time.perf_counter()
    with _torch_session(cfg) as rng:
        train_q, val_q = doc_disjoint_split(relevance, cfg.val_fraction, rng)
        rel = _relevance_map(relevance)
        negatives = _hard_negatives(base, queries, corpus, rel, train_q, cfg.hard_negatives)
        anchors = _Anchors(corpus, queries[train_q], cfg, rng)
        module = _TorchAdaptor.from_numpy(base, learn_rotation=cfg.rotation == "pca-learned")
        objective = _RankingObjective(module, queries, corpus, train_q, _Judged(rel, train_q, negatives),
                                      anchors, loss_levels, cfg, rng)
        settings = {**base.settings, "mode": "supervised", **cfg.to_dict(), "n_queries": len(queries),
                    "n_train_queries": len(train_q), "n_val_queries": len(val_q)}

        def evaluate() -> float:
            with torch.no_grad():
                return _val_ndcg(module.to_numpy(levels, settings), queries, corpus, rel, val_q, levels)

        _, history, best_step = _train_loop(module, objective, evaluate, cfg, cfg.supervised_lr,
                                            "supervised adaptor")
    adaptor = module.to_numpy(levels, {**settings, "best_step": best_step})
    return TrainResult(adaptor, history, best_step, time.perf_counter() - start)
