"""Constrained decoding over semantic IDs: prefix index, fast beam search, reference and oracle."""

from semid.decoding.beam import BeamResult, DecodeStep, beam_search
from semid.decoding.masks import item_mask, masked_topk
from semid.decoding.oracle import oracle_topk
from semid.decoding.prefix_index import PrefixIndex
from semid.decoding.reference import build_trie, reference_beam_search

__all__ = [
    "BeamResult",
    "DecodeStep",
    "PrefixIndex",
    "beam_search",
    "build_trie",
    "item_mask",
    "masked_topk",
    "oracle_topk",
    "reference_beam_search",
]
