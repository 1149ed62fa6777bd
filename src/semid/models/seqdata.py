"""Former home of the generative recommenders' shared pieces, kept so existing imports work.

Next-item rows are in ``semid.models.next_item_examples``, token batches in ``semid.models.code_batches``,
the shared recommender in ``semid.models.codeseq`` and its validation in ``semid.models.gen_validation``;
the validation metrics are ``semid.eval.metrics``'s.
"""

from __future__ import annotations

from semid.eval.metrics import ndcg_recall_at
from semid.models.code_batches import (
    concat_seq2seq,
    context_tokens,
    decoder_batch,
    seq2seq_batch,
    sequence_batch,
)
from semid.models.codeseq import CodeSeqRecommender
from semid.models.next_item_examples import NextItemExamples, SequenceWindows, history_matrix

__all__ = [
    "CodeSeqRecommender",
    "NextItemExamples",
    "SequenceWindows",
    "concat_seq2seq",
    "context_tokens",
    "decoder_batch",
    "history_matrix",
    "ndcg_recall_at",
    "seq2seq_batch",
    "sequence_batch",
]
