"""Item2vec nearest neighbours of the last song: the classic playlist-continuation baseline.

fit learns skip-gram item2vec embeddings on the TRAIN sequences only (``semid.encoders.cooc``);
recommend ranks every item by cosine similarity to the mean of the history's last ``context``
embedded items (context=1: the last song). The query items themselves are ranked last (a radio
playlist rarely repeats the song just played), items without an embedding (never in train) rank
after every embedded item by train popularity, so each row always lists k distinct items. Business-rule
masks (``exclude=`` / ``allowed=``, as every recommender: ``semid.decoding.masks``) drop items from the
ranking before the top-k, so k allowed items come back whenever k exist.
``recommend_reference`` is the plain per-row loop the vectorised ``recommend`` is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semid.data.types import Catalog, EvalSet, Interactions
from semid.encoders.cooc import Item2VecConfig, Item2VecEncoder
from semid.errors import ConfigError, DataError

# Score bands: cosine lies in [-1, 1]; unembedded items get _COLD + popularity rank in (0, 1);
# query items get _QUERY + the same. So the order is embedded > unembedded > query items.
_COLD = -3.0
_QUERY = -5.0


@dataclass(frozen=True)
class Item2VecKNNConfig:
    """Item2vec-kNN settings (the item2vec fields mirror ``Item2VecConfig``)."""

    dim: int = 64  # item2vec embedding size
    window: int = 5  # skip-gram context window within a playlist
    negative: int = 5  # negative samples per positive
    epochs: int = 10  # passes over the train sequences
    min_count: int = 1  # items seen fewer times in train get no embedding
    sample: float = 1e-3  # frequent-item downsampling threshold
    context: int = 1  # last N embedded history items averaged into the query (1 = the last song)
    exclude_query: bool = True  # rank the query items themselves last
    seed: int = 0  # item2vec seed (deterministic with one worker)


class Item2VecKNN:
    """``Item2VecKNN(config=...).fit(train, catalog)``; then ``recommend(histories, k)``."""

    name = "item2vec-kNN"

    def __init__(self, *, config: Item2VecKNNConfig = Item2VecKNNConfig()) -> None:
        if config.context < 1:
            raise ConfigError(f"item2vec_knn.context={config.context}: use 1 (last song) or more")
        self.config = config

    def fit(self, train: Interactions, catalog: Catalog, valid: EvalSet | None = None) -> Item2VecKNN:
        n = catalog.n_items
        if len(train.items) and (train.items.min() < 0 or train.items.max() >= n):
            raise DataError(f"train interactions reference item ids outside [0, {n}) of the catalog")
        c = self.config
        enc = Item2VecEncoder(config=Item2VecConfig(dim=c.dim, window=c.window, negative=c.negative,
                                                    epochs=c.epochs, min_count=c.min_count, sample=c.sample,
                                                    seed=c.seed, workers=1))
        emb, mask = enc.fit_transform(train, n)  # (N, dim), (N,)
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        self.embeddings_ = np.where(norms > 0, emb / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
        self.mask_ = mask & (norms[:, 0] > 0)
        self.n_items_ = n
        counts = np.bincount(train.items, minlength=n)
        order = np.argsort(-counts, kind="stable")  # most popular first, ties -> smaller index
        rank = np.empty(n, dtype=np.float64)
        rank[order] = np.arange(n)
        self.pop_bonus_ = (1.0 - (rank + 1) / (n + 1)).astype(np.float64)  # (N,) in (0, 1), popular higher
        return self

    def _query(self, h: np.ndarray) -> np.ndarray:
        """The last ``context`` embedded items of one history (int [<= context])."""
        h = np.asarray(h, dtype=np.int64)
        embedded = h[self.mask_[h]] if len(h) else h
        return embedded[-self.config.context :]

    def scores(self, histories: list[np.ndarray]) -> np.ndarray:
        """float64 [B, N] ranking scores (see the module docstring for the bands)."""
        if not hasattr(self, "embeddings_"):
            raise RuntimeError("Item2VecKNN.recommend called before fit")
        b = len(histories)
        q = np.zeros((b, self.embeddings_.shape[1]), dtype=np.float32)  # (B, dim)
        query_rows, query_items = [], []
        for r, h in enumerate(histories):
            items = self._query(h)
            if len(items):
                q[r] = self.embeddings_[items].mean(axis=0)
                query_rows.append(np.full(len(items), r))
                query_items.append(items)
        qn = np.linalg.norm(q, axis=1, keepdims=True)
        q = q / np.maximum(qn, 1e-12)
        s = (q @ self.embeddings_.T).astype(np.float64)  # (B, N) cosine
        s[:, ~self.mask_] = _COLD + self.pop_bonus_[~self.mask_]
        # Histories without an embedded item: popularity order over everything.
        s[qn[:, 0] == 0] = self.pop_bonus_
        if self.config.exclude_query and query_rows:
            rows, cols = np.concatenate(query_rows), np.concatenate(query_items)
            s[rows, cols] = _QUERY + self.pop_bonus_[cols]
        return s

    def recommend(self, histories: list[np.ndarray], k: int, *, exclude=None,
                  allowed=None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by score (ties -> smaller item index). ``exclude`` (one item-index array per history) and
        ``allowed`` (bool [n_items] or [B, n_items]) mask items as in ``semid.decoding.masks.item_mask``:
        a masked item is never returned, k items come back whenever k are allowed, rows pad with -1 / -inf."""
        from semid.decoding.masks import item_mask

        s = self.scores(histories)
        mask = item_mask(self.n_items_, len(histories), exclude=exclude, allowed=allowed)
        if mask is not None:
            s[~mask] = -np.inf  # every real score is finite (bands above), so -inf marks exactly the masked items
        k_eff = min(k, self.n_items_)
        top = np.argpartition(-s, k_eff - 1, axis=1)[:, :k_eff] if k_eff < s.shape[1] else np.tile(
            np.arange(s.shape[1]), (len(s), 1))
        part = np.take_along_axis(s, top, axis=1)
        order = np.lexsort((top, -part), axis=1)  # best score first, ties -> smaller item index
        items = np.take_along_axis(top, order, axis=1)
        top_s = np.take_along_axis(s, items, axis=1)
        dead = np.isneginf(top_s)  # fewer than k allowed items in this row
        out_i = np.full((len(s), k), -1, dtype=np.int64)
        out_s = np.full((len(s), k), -np.inf, dtype=np.float32)
        out_i[:, :k_eff] = np.where(dead, -1, items)
        out_s[:, :k_eff] = top_s
        return out_i, out_s

    def recommend_reference(self, histories: list[np.ndarray], k: int, *, exclude=None,
                            allowed=None) -> tuple[np.ndarray, np.ndarray]:
        """Plain loop over rows and items: the definition ``recommend`` must match (masks included:
        a masked item is skipped, never ranked)."""
        out_i = np.full((len(histories), k), -1, dtype=np.int64)
        out_s = np.full((len(histories), k), -np.inf, dtype=np.float32)
        for r, h in enumerate(histories):
            items = self._query(h)
            banned = set() if exclude is None else set(np.asarray(exclude[r], dtype=np.int64).tolist())
            ranked = []
            for i in range(self.n_items_):
                if i in banned:
                    continue
                if allowed is not None:
                    a = np.asarray(allowed, dtype=bool)
                    if not (a[i] if a.ndim == 1 else a[r, i]):
                        continue
                if not len(items):
                    score = self.pop_bonus_[i]
                elif self.config.exclude_query and i in set(items.tolist()):
                    score = _QUERY + self.pop_bonus_[i]
                elif not self.mask_[i]:
                    score = _COLD + self.pop_bonus_[i]
                else:
                    v = self.embeddings_[items].mean(axis=0)
                    score = float(np.dot(v / np.linalg.norm(v), self.embeddings_[i]))
                ranked.append((-score, i))
            ranked.sort()
            for j, (neg, i) in enumerate(ranked[:k]):
                out_i[r, j], out_s[r, j] = i, -neg
        return out_i, out_s

    # ------------------------------------------------------------------ persistence
    def save(self, directory) -> Path:
        """``<dir>/state.npz`` (unit embeddings [N, dim], embedded mask [N], popularity bonus [N]) + config.json."""
        from semid.config import to_dict
        from semid.io import atomic_write, write_json
        from semid.models.protocol import MODEL_META

        if not hasattr(self, "embeddings_"):
            raise RuntimeError("Item2VecKNN.save called before fit")
        d = Path(directory)

        def w(p: Path) -> None:
            with open(p, "wb") as f:
                np.savez(f, embeddings=self.embeddings_, mask=self.mask_, pop_bonus=self.pop_bonus_)

        atomic_write(d / "state.npz", w)
        write_json(d / MODEL_META, {"model": self.name, "config": to_dict(self.config)})
        return d

    @classmethod
    def load(cls, directory, *, device: str = "cpu", weights=None) -> Item2VecKNN:
        """Rebuild a saved model (NumPy only: ``device`` and ``weights`` do not apply)."""
        from semid.config import from_dict
        from semid.errors import CheckpointError
        from semid.models.protocol import read_model_meta

        d = Path(directory)
        meta = read_model_meta(d, cls.name)
        try:
            obj = cls(config=from_dict(Item2VecKNNConfig, meta["config"]))
            with np.load(d / "state.npz", allow_pickle=False) as z:
                obj.embeddings_, obj.mask_, obj.pop_bonus_ = z["embeddings"], z["mask"], z["pop_bonus"]
        except Exception as e:
            raise CheckpointError(f"{d}: cannot rebuild {cls.name} from config.json and state.npz ({e})") from None
        obj.n_items_ = len(obj.embeddings_)
        return obj
