"""Constrained decoding over semantic IDs: prefix index, fast beam search, reference and oracle."""

from semid.decoding.beam import BeamResult, DecodeStep, beam_search
from semid.decoding.oracle import oracle_topk
from semid.decoding.prefix_index import PrefixIndex
from semid.decoding.reference import build_trie, reference_beam_search

__all__ = [
    "BeamResult",
    "DecodeStep",
    "PrefixIndex",
    "beam_search",
    "build_trie",
    "oracle_topk",
    "reference_beam_search",
]
