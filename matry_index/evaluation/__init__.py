"""Retrieval quality: nDCG@k and recall@k at each prefix level, and the baselines to beat."""
from .baselines import PCARotation, truncate
from .metrics import ndcg_at_k, recall_at_k
from .retrieval import agreement_with_full, evaluate_levels, exact_search, RetrievalTask, task_from_beir

__all__ = ["PCARotation", "truncate", "ndcg_at_k", "recall_at_k", "evaluate_levels", "agreement_with_full",
           "exact_search", "RetrievalTask", "task_from_beir"]
