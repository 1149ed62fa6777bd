"""Data layer: loaders for MovieLens, Amazon (LC-Rec / MQL4GRec), RecBole, MPD and generic tables,
filters, evaluation splits, code-tuple modalities and dataset statistics."""

from semid.data.amazon import load_amazon_lcrec
from semid.data.check import check_dataset
from semid.data.codes import codes_to_onehot, onehot_to_codes, read_code_index
from semid.data.filters import k_core, min_length
from semid.data.movielens import load_movielens
from semid.data.mpd import load_mpd
from semid.data.recbole import load_recbole, read_recbole_split
from semid.data.registry import load_dataset
from semid.data.split import leave_one_out, playlist_continuation
from semid.data.stats import dataset_stats, render_stats
from semid.data.tables import load_table
from semid.data.types import Catalog, Dataset, EvalSet, Interactions, Split

__all__ = [
    "Catalog",
    "Dataset",
    "EvalSet",
    "Interactions",
    "Split",
    "check_dataset",
    "codes_to_onehot",
    "dataset_stats",
    "k_core",
    "leave_one_out",
    "load_amazon_lcrec",
    "load_dataset",
    "load_movielens",
    "load_mpd",
    "load_recbole",
    "load_table",
    "min_length",
    "onehot_to_codes",
    "playlist_continuation",
    "read_code_index",
    "read_recbole_split",
    "render_stats",
]
