"""Full-ranking evaluation shared by every recommender: metrics, loop reference, evaluator."""

from semid.eval.evaluator import evaluate, validate_topk, write_metrics
from semid.eval.metrics import DEFAULT_KS, compute_metrics, hit_matrix, per_row_metrics

__all__ = [
    "DEFAULT_KS",
    "compute_metrics",
    "evaluate",
    "hit_matrix",
    "per_row_metrics",
    "validate_topk",
    "write_metrics",
]
