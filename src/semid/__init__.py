"""semid: generative recommendation with multimodal semantic IDs.

Public entry points:
    semid.data.load_dataset      -> Dataset (Catalog + Interactions)
    semid.data.leave_one_out     -> Split (train sequences + valid/test EvalSets)
    semid.eval.evaluate          -> full-ranking metrics for any Recommender
    semid.tokenizers.*           -> FusID, MusicRec, TIGER/LETTER, precomputed, ... (fit/encode/decode/save/load)
    semid.models.*               -> MostPopular, SASRec, GPT2Rec, T5Rec (fit/recommend)
"""

__version__ = "0.1.0"
