"""HTTP recommendation service over a finished run (FastAPI; `pip install 'semid[serve]'`).

GET  /health                       -> {"status": "ok", "model": ..., "dataset": ..., "n_items": ...}
POST /recommend {"history": [item ids], "k": 10} -> {"items": [...], "scores": [...], "codes": [[...]]}
GET  /items/{item_id}              -> the item's semantic ID and its raw fields

Item ids are the dataset's external ids (ASIN, movieId, ...). Unknown ids are a 404 naming them;
an empty history is allowed (popularity-like cold start from the model's prior).
"""



import numpy as np


def create_app(run_dir, *, device: str = "cpu"):
    try:
        from fastapi import FastAPI, HTTPException
        from pydantic import BaseModel, Field
    except ImportError:
        raise ImportError("semid serve needs FastAPI: pip install 'semid[serve]'") from None
    from semid.pipeline.restore import load_run

    loaded = load_run(run_dir, device=device)
    catalog = loaded.dataset.catalog
    index = catalog.index_of()
    codes = getattr(loaded.tokenizer, "codes_", None)

    class RecommendRequest(BaseModel):
        history: list[str] = Field(default_factory=list, description="external item ids, oldest first")
        k: int = Field(10, ge=1, le=100)

    app = FastAPI(title="semid", description=__doc__)

    def _lookup(ids: list[str]) -> np.ndarray:
        unknown = [i for i in ids if i not in index]
        if unknown:
            raise HTTPException(status_code=404, detail=f"unknown item ids: {unknown[:10]}")
        return np.array([index[i] for i in ids], dtype=np.int64)

    @app.get("/health")
    def health():
        return {"status": "ok", "model": loaded.config.name, "dataset": loaded.dataset.name,
                "n_items": catalog.n_items}

    @app.post("/recommend")
    def recommend(req: RecommendRequest):
        hist = _lookup(req.history)
        items, scores = loaded.model.recommend([hist], req.k)
        keep = items[0] >= 0
        idx = items[0][keep]
        return {
            "items": catalog.item_ids[idx].tolist(),
            "scores": [float(s) for s in scores[0][keep]],
            "codes": codes[idx].tolist() if codes is not None else None,
        }

    @app.get("/items/{item_id}")
    def item(item_id: str):
        i = int(_lookup([item_id])[0])
        fields = {k: v[i] for k, v in catalog.fields.items()}
        return {"item": item_id, "index": i, "code": codes[i].tolist() if codes is not None else None,
                "fields": fields}

    return app
