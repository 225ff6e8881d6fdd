"""Retrieval quality: nDCG@k and recall@k at each prefix level, and the baselines to beat."""
from .baselines import PCARotation, truncate
from .metrics import ndcg_at_k, recall_at_k
from .retrieval import (agreement_with_full, average_over_queries, evaluate_levels, evaluate_levels_per_query,
                        exact_search, RetrievalTask, task_from_beir)
from .significance import Difference, mean_over_runs, paired_difference

__all__ = ["PCARotation", "truncate", "ndcg_at_k", "recall_at_k", "evaluate_levels", "evaluate_levels_per_query",
           "average_over_queries", "agreement_with_full", "exact_search", "RetrievalTask", "task_from_beir",
           "Difference", "mean_over_runs", "paired_difference"]
