"""HTTP recommendation service over a finished run (FastAPI; `pip install 'semid[serve]'`).

GET    /health              -> status, model, dataset, n_items, n_available, catalog_version, window, batching
POST   /recommend           {"history": [ids], "k": 10, "exclude_seen": true, "allow": [ids] | null, "deny": [ids]}
                            -> {"items": [...], "scores": [...], "codes": [[...]] | null}
GET    /items/{id}          -> the item's index, semantic ID, availability and raw fields
POST   /items               {"items": [{"id": ..., "fields": {...}, "embeddings": {...}}]} -> {"added": [...], ...}
DELETE /items/{id}          -> {"retired": id, "catalog_version": v}
GET    /metrics             -> Prometheus text format

Item ids are the dataset's external ids (ASIN, movieId, ...), as strings or integers. Unknown ids are a
404 naming (at most five, shortened) of them. ``history`` is oldest first; the model reads only its last
``window`` items (the ``/health`` field), while ``exclude_seen`` (default true) removes every submitted
history item from the results. ``allow`` / ``deny`` and retired items are masks inside constrained decoding
(``semid.decoding.masks``), so k valid items come back whenever k exist. Concurrent requests are decoded
together (``semid.serve.batcher``). Bounds, key and logging: ``semid.serve.settings`` / ``limits`` / ``metrics``.
"""


# No ``from __future__ import annotations`` here: FastAPI must see the request models defined inside
# ``create_app`` as real annotations, or it would take them for query parameters.
import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Annotated

import numpy as np

from semid.decoding.masks import recommend_masked
from semid.serve.batcher import Batcher, CatalogLock, Job, Overloaded
from semid.serve.catalog import CatalogConflict, CatalogInputError, LiveCatalog, short
from semid.serve.limits import ApiKey, BodyLimit
from semid.serve.metrics import AccessLog, Metrics
from semid.serve.settings import ServeConfig, resolve_decode_workers
from semid.threads import small_ops

log = logging.getLogger("semid.serve")


def model_window(model) -> int:
    """How many of the most recent history items the model reads (0: it ignores the history)."""
    cfg = getattr(model, "config", None)
    for path in (("max_history",), ("max_len",), ("t5", "max_history")):
        v = cfg
        for p in path:
            v = getattr(v, p, None)
        if isinstance(v, int):
            return v
    return 0


def _model_codes(model, tokenizer):
    """(codes [n, L], codebook sizes, extend_model, retire_model) of what the model decodes; the hooks are
    None for a model whose item table is fixed.

    For a generative model the prefix index is laid out once, here, over the whole codebook ranges, so every
    code the model can emit fits its key encoding and each ``POST /items`` / ``DELETE /items`` patches the
    same index object in place (``PrefixIndex.add_items`` / ``remove_items``) instead of rebuilding it.
    """
    from semid.decoding.prefix_index import PrefixIndex
    from semid.models.seqdata import CodeSeqRecommender

    # MusicRec's generator decodes its own text / image spaces: no "item" space to patch, so its catalog is fixed.
    if isinstance(model, CodeSeqRecommender) and "item" in model.vocab_.spaces:
        space = model.vocab_.space("item")
        codes = model.vocab_.item_codes("item", model.item_tokens_)
        lo, sizes = space.pos_offsets.tolist(), [int(x) for x in space.sizes]
        old = model.index_
        if (old.lo, old.sizes) != (lo, sizes):
            model.index_ = PrefixIndex.from_codes(model.item_tokens_, lo=lo, sizes=sizes, dense_limit=old.dense_limit,
                                                  device=old.device)

        def extend(new_codes: np.ndarray) -> None:
            tokens = model.vocab_.item_tokens("item", new_codes)  # (m, L) global token ids
            model.index_.add_items(tokens)
            model.item_tokens_ = np.concatenate([model.item_tokens_, tokens])
            model.n_items_ = model.index_.n_items  # the width of the model's item masks

        def retire(indices: np.ndarray) -> None:
            index = model.index_
            live = np.asarray([i for i in np.asarray(indices).tolist() if index._live_np[i]], dtype=np.int64)
            if 0 < len(live) < index.n_leaves:  # an index keeps one leaf; the availability mask hides it too
                index.remove_items(live)

        return codes, list(space.sizes), extend, retire
    codes = getattr(tokenizer, "codes_", None)
    return codes, getattr(tokenizer, "codebook_sizes_", None), None, None


def create_app(run_dir, *, device: str = "cpu", config: ServeConfig | None = None, loaded=None):
    """The ASGI app for a run directory (``loaded``: an already restored ``LoadedRun``, for tests)."""
    try:
        from fastapi import FastAPI, HTTPException, Request
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import JSONResponse, PlainTextResponse
        from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints
    except ImportError:
        raise ImportError("semid serve needs FastAPI: pip install 'semid[serve]'") from None
    from semid.models.seqdata import CodeSeqRecommender

    config = config or ServeConfig()
    if loaded is None:
        from semid.pipeline.restore import load_run

        loaded = load_run(run_dir, device=device)
    model = loaded.model
    codes, sizes, extend, retire = _model_codes(model, loaded.tokenizer)
    path = Path(run_dir) / "serve" / "catalog.json" if config.persist else None
    catalog = LiveCatalog(loaded.dataset.catalog, codes=codes, codebook_sizes=sizes, tokenizer=loaded.tokenizer,
                          extend_model=extend, retire_model=retire, path=path)
    lock = CatalogLock()
    metrics = Metrics()
    window = model_window(model)
    generative = isinstance(model, CodeSeqRecommender)

    def decode(histories, k, beam, mask):
        # small-op thread count for the whole batch, full-ranking models included (semid.threads)
        with small_ops():
            return recommend_masked(model, histories, k, mask, **({} if beam is None else {"beam": beam}))

    batcher = Batcher(decode, lambda: catalog.available, lock, max_batch=config.max_batch,
                      max_wait_ms=config.max_wait_ms, max_gap_ms=config.max_gap_ms, max_queue=config.max_queue, on_batch=metrics.record_batch,
                      workers=resolve_decode_workers(config))

    def gauges() -> None:
        metrics.set_gauge("semid_catalog_version", catalog.version)
        metrics.set_gauge("semid_catalog_items", catalog.n_items)
        metrics.set_gauge("semid_catalog_available_items", int(catalog.available.sum()))

    gauges()

    ItemStr = Annotated[str, StringConstraints(min_length=1, max_length=256)]
    ItemId = ItemStr | StrictInt
    IdList = Annotated[list[ItemId], Field(max_length=config.max_list)]

    class RecommendRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        history: Annotated[list[ItemId], Field(max_length=config.max_history)] = Field(
            default_factory=list, description="external item ids, oldest first")
        k: int = Field(10, ge=1, le=config.max_k)
        exclude_seen: bool = Field(True, description="never return an item of the history")
        allow: IdList | None = Field(None, description="only these items may be returned")
        deny: IdList = Field(default_factory=list, description="these items are never returned")

    class NewItem(BaseModel):
        model_config = ConfigDict(extra="forbid")
        id: ItemId
        fields: dict[ItemStr, str | list[str] | None] = Field(default_factory=dict)
        embeddings: dict[ItemStr, Annotated[list[float], Field(max_length=65536)]] = Field(default_factory=dict)

    class AddRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        items: Annotated[list[NewItem], Field(min_length=1, max_length=config.max_list)]

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        batcher.close()

    app = FastAPI(title="semid", description=__doc__, lifespan=lifespan)
    app.state.catalog, app.state.batcher, app.state.metrics, app.state.config = catalog, batcher, metrics, config
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes, timeout_s=config.body_timeout_s)
    app.add_middleware(ApiKey, key=config.api_key)
    app.add_middleware(AccessLog, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError):
        # never echo the offending input (it may be huge, or inf / NaN, which JSON cannot carry)
        errors = [{"loc": [short(x, 32) for x in e.get("loc", ())][:6], "msg": short(e.get("msg", ""), 200),
                   "type": short(e.get("type", ""), 64)} for e in exc.errors()[:10]]
        return JSONResponse(status_code=422, content={"detail": errors})

    @app.exception_handler(Exception)
    async def internal(_request: Request, exc: Exception):
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(status_code=500, content={"detail": "internal error (see the server log)"})

    def lookup(ids: list) -> np.ndarray:
        idx, unknown = catalog.lookup([str(i) for i in ids])
        if unknown:
            raise HTTPException(status_code=404, detail=f"unknown item ids: {[short(u) for u in unknown[:5]]}"
                                + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""))
        return idx

    @app.get("/health")
    def health():
        return {"status": "ok", "model": loaded.config.name, "dataset": loaded.dataset.name,
                "n_items": catalog.n_items, "n_available": int(catalog.available.sum()),
                "catalog_version": catalog.version, "window": window,
                "max_batch": config.max_batch, "max_wait_ms": config.max_wait_ms, "max_gap_ms": config.max_gap_ms,
                "decode_workers": len(batcher.threads)}

    @app.post("/recommend")
    async def recommend(req: RecommendRequest):
        hist = lookup(req.history)
        deny = lookup(req.deny)
        allow = None if req.allow is None else lookup(req.allow)
        exclude = np.concatenate([hist, deny]) if req.exclude_seen else deny
        beam = max(model.seq_config.beam, req.k) if generative else None
        try:
            fut = batcher.submit(Job(history=hist, k=req.k, beam=beam, exclude=exclude, allow=allow))
        except Overloaded:
            raise HTTPException(status_code=503, detail="server busy: too many queued requests") from None
        try:
            items, scores = await asyncio.wait_for(asyncio.wrap_future(fut), config.request_timeout_s)
        except TimeoutError:
            raise HTTPException(status_code=503, detail="timed out waiting for the decoder") from None
        keep = items >= 0
        idx = items[keep]
        # Already plain JSON types: a JSONResponse skips FastAPI's generic jsonable_encoder, which walks every
        # element and cost more CPU per request than the rest of the HTTP path together.
        return JSONResponse({"items": [catalog.ids[i] for i in idx.tolist()], "scores": scores[keep].tolist(),
                             "codes": None if catalog.codes is None else catalog.codes[idx].tolist()})

    @app.get("/items/{item_id}")
    def item(item_id: str):
        i = int(lookup([item_id])[0])
        return {"item": item_id, "index": i, "code": catalog.code(i), "available": bool(catalog.available[i]),
                "fields": catalog.fields(i)}

    @app.post("/items")
    def add_items(req: AddRequest):
        items = [it.model_dump() for it in req.items]
        try:
            with lock:
                added = catalog.add(items)
        except CatalogConflict as e:
            raise HTTPException(status_code=409, detail=short(e, 400)) from None
        except CatalogInputError as e:
            raise HTTPException(status_code=422, detail=short(e, 400)) from None
        gauges()
        return {"added": added, "catalog_version": catalog.version, "n_items": catalog.n_items}

    @app.delete("/items/{item_id}")
    def retire_item(item_id: str):
        lookup([item_id])
        with lock:
            catalog.retire(item_id)
        gauges()
        return {"retired": item_id, "catalog_version": catalog.version}

    @app.get("/metrics")
    def prometheus():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    return app
