"""The recommendation service on tiny finished runs: cross-request batching equals one-at-a-time decoding,
filters inside the trie, live catalog (add / retire / persist / reload / refuse a foreign ID table), bounds
(413, 408, 422 not 500), API key, metrics and access log."""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

import semid.serve.app  # noqa: E402
from semid.errors import CheckpointError, ConfigError  # noqa: E402
from semid.pipeline.presets import resolve  # noqa: E402
from semid.pipeline.restore import load_run  # noqa: E402
from semid.pipeline.runner import run  # noqa: E402
from semid.serve.app import create_app  # noqa: E402
from semid.serve.batcher import Batcher, CatalogLock, Job  # noqa: E402
from semid.serve.catalog import CatalogConflict, assign_codes  # noqa: E402
from semid.serve.limits import BodyLimit, check_bind, is_loopback  # noqa: E402
from semid.serve.settings import ServeConfig  # noqa: E402

N_ITEMS = 20  # codes (i // 6, i % 6) on sizes [4, 6]: cells (3, 2) .. (3, 5) are free for new items
FAST = {"train.epochs": 1, "train.batch_size": 32, "train.warmup_steps": 2, "train.device": "cpu",
        "train.progress": False, "data.max_history": 20}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, ring_dataset):
    root = tmp_path_factory.mktemp("serve")
    ds = ring_dataset(root, N_ITEMS)
    gen = root / "gen"
    run(resolve(None, {**FAST, "data.dataset": str(ds), "tokenizer": "precomputed", "precomputed": "lemb",
                       "model": "gpt2", "name": "ids+gpt2", "gpt2.beam": 8, "gpt2.valid_beam": 4,
                       "gpt2.n_embd": 32, "gpt2.n_layer": 1, "gpt2.max_history": 5}), gen)
    pop = root / "pop"
    run(resolve(None, {**FAST, "data.dataset": str(ds), "tokenizer": "none", "model": "popular",
                       "name": "popular"}), pop)
    return {"gen": gen, "pop": pop}


@pytest.fixture(scope="module")
def gen_loaded(runs):
    return load_run(runs["gen"])  # read-only uses; tests that edit the catalog load their own copy


@pytest.fixture(autouse=True)
def _close_batchers(monkeypatch):
    """Apps built by a test have their decode workers stopped after it (TestClient without ``with`` never
    runs the lifespan that does it), so no test leaves decode threads behind."""
    apps = []
    build = semid.serve.app.create_app

    def tracking(*a, **kw):
        apps.append(build(*a, **kw))
        return apps[-1]

    monkeypatch.setitem(globals(), "create_app", tracking)
    yield
    for app in apps:
        app.state.batcher.close()


def _client(loaded, run_dir, **cfg):
    return TestClient(create_app(run_dir, loaded=loaded, config=ServeConfig(persist=False, **cfg)))


def _fake_transform(catalog):
    """A tokenizer transform for the test: the raw code is written in the item's "code" field, "a,b"."""
    return np.array([[int(x) for x in c.split(",")] for c in catalog.fields["code"]], dtype=np.int64)


# ---------------------------------------------------------------------------------------------- batching
def test_batched_requests_equal_one_at_a_time(gen_loaded):
    model = gen_loaded.model
    sizes = []
    avail = np.ones(N_ITEMS, bool)

    def decode(h, k, beam, mask):
        return model.recommend(h, k, beam=beam, allowed=mask)

    # max_batch = the number of jobs: the batch closes as soon as all are queued, the long wait only
    # guards against a loaded machine pausing the submitting thread
    b = Batcher(decode, lambda: avail, CatalogLock(), max_batch=12, max_wait_ms=5000, on_batch=sizes.append)
    rng = np.random.default_rng(1)
    hists = [rng.choice(N_ITEMS, int(rng.integers(0, 9)), replace=False) for _ in range(12)]
    ks = [3, 5, 8, 2, 8, 1, 4, 6, 7, 10, 10, 5]  # k=10 > model beam 8: its own group (beam 10)
    jobs = [Job(history=h, k=k, beam=max(8, k), exclude=h) for h, k in zip(hists, ks, strict=True)]
    futs = [b.submit(j) for j in jobs]
    results = [f.result(timeout=60) for f in futs]
    b.close()
    assert sorted(sizes) == [2, 10]  # two beam groups, each decoded as one batch
    for h, k, (items, scores) in zip(hists, ks, results, strict=True):
        alone_i, alone_s = model.recommend([h], k, exclude=[h])
        assert items.tolist() == alone_i[0].tolist()
        np.testing.assert_allclose(scores, alone_s[0], atol=1e-4)
        assert not set(items.tolist()) & set(h.tolist())


def test_two_decode_workers_run_side_by_side_and_equal_one_at_a_time(gen_loaded):
    """Two decode workers, each at one intra-op thread (this thread's count untouched), decode their batches
    at the same time (each worker's first decode waits for the other's) and every request gets what it gets
    alone."""
    import torch

    model = gen_loaded.model
    avail = np.ones(N_ITEMS, bool)
    meet = threading.Barrier(2, timeout=30)
    first = threading.local()
    seen_threads = []

    def decode(h, k, beam, mask):
        if not getattr(first, "done", False):
            first.done = True
            meet.wait()  # BrokenBarrierError (-> the jobs' futures) unless the other worker decodes too
        seen_threads.append(torch.get_num_threads())
        return model.recommend(h, k, beam=beam, allowed=mask)

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the starter's count is restored after the workers pinned themselves
    b = Batcher(decode, lambda: avail, CatalogLock(), max_batch=6, max_wait_ms=5000, workers=2)
    try:
        assert len(b.threads) == 2 and torch.get_num_threads() == 2
        rng = np.random.default_rng(2)
        hists = [rng.choice(N_ITEMS, int(rng.integers(0, 9)), replace=False) for _ in range(12)]
        jobs = [Job(history=h, k=5, beam=8, exclude=h) for h in hists]
        results = [f.result(timeout=60) for f in [b.submit(j) for j in jobs]]
    finally:
        b.close()
        torch.set_num_threads(before)
    assert set(seen_threads) == {1}
    for h, (items, _) in zip(hists, results, strict=True):
        assert items.tolist() == model.recommend([h], 5, exclude=[h])[0][0].tolist()


def _stub_decode(sizes):
    def decode(h, k, beam, mask):
        sizes.append(len(h))
        return np.zeros((len(h), k), np.int64), np.zeros((len(h), k), np.float32)
    return decode


def test_max_gap_closes_a_batch_once_requests_stop_arriving():
    """With max_gap_ms, requests arriving within the gap of each other join one batch, and the batch is decoded
    once the gap passes with no arrival, long before max_wait_ms (which alone would hold it 60 s)."""
    import time

    sizes: list[int] = []
    b = Batcher(_stub_decode(sizes), lambda: np.ones(4, bool), CatalogLock(), max_batch=32, max_wait_ms=60_000,
                max_gap_ms=1_000)
    try:
        t0 = time.perf_counter()
        futs = []
        for _ in range(4):  # 4 arrivals 50 ms apart, each well within the 1 s gap of the one before
            futs.append(b.submit(Job(history=np.array([1]), k=2, beam=None, exclude=np.zeros(0, np.int64))))
            time.sleep(0.05)
        for f in futs:
            f.result(timeout=30)
        assert time.perf_counter() - t0 < 30  # closed by the gap, not by the 60 s deadline
        assert sizes == [4]
    finally:
        b.close()


def test_without_max_gap_a_batch_waits_to_its_deadline():
    import time

    sizes: list[int] = []
    b = Batcher(_stub_decode(sizes), lambda: np.ones(4, bool), CatalogLock(), max_batch=32, max_wait_ms=300)
    try:
        t0 = time.perf_counter()
        b.submit(Job(history=np.array([1]), k=2, beam=None, exclude=np.zeros(0, np.int64))).result(timeout=30)
        assert time.perf_counter() - t0 >= 0.3 and sizes == [1]
    finally:
        b.close()
    with pytest.raises(ConfigError, match="max_gap_ms"):
        ServeConfig(max_gap_ms=float("nan"))


def test_catalog_lock_edits_wait_for_decodes_and_hold_new_ones_back():
    lock, log = CatalogLock(), []
    in_read, release = threading.Event(), threading.Event()

    def reader():
        with lock.shared():
            in_read.set()
            release.wait(10)
            log.append("read done")

    def writer():
        with lock:
            log.append("edit")

    r = threading.Thread(target=reader)
    r.start()
    in_read.wait(10)
    with lock.shared():  # readers share the lock
        log.append("second read")
    w = threading.Thread(target=writer)
    w.start()
    w.join(0.2)
    assert w.is_alive()  # the edit waits for the decode in flight
    release.set()
    r.join(10)
    w.join(10)
    assert log == ["second read", "read done", "edit"]


def test_concurrent_http_requests_are_batched(gen_loaded, runs):
    client = _client(gen_loaded, runs["gen"], max_batch=8, max_wait_ms=2000)
    hists = [[str(i), str((i + 1) % N_ITEMS)] for i in range(8)]
    out = [None] * 8

    def call(r):
        out[r] = client.post("/recommend", json={"history": hists[r], "k": 5}).json()

    threads = [threading.Thread(target=call, args=(r,)) for r in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batch = client.app.state.metrics.batch
    assert batch.n < 8  # fewer decode calls than requests
    for r, h in enumerate(hists):
        alone, _ = gen_loaded.model.recommend([np.array([int(x) for x in h])], 5, exclude=[np.array([int(x) for x in h])])
        assert out[r]["items"] == [str(i) for i in alone[0]]


# ---------------------------------------------------------------------------------------------- filters
def test_filters_exclude_seen_allow_deny(gen_loaded, runs):
    c = _client(gen_loaded, runs["gen"])
    hist = ["1", "2", "3", "4"]
    seen = c.post("/recommend", json={"history": hist, "k": 8}).json()["items"]
    assert len(seen) == 8 and not set(seen) & set(hist)  # exclude_seen is the default
    raw = c.post("/recommend", json={"history": hist, "k": 8, "exclude_seen": False}).json()["items"]
    assert len(raw) == 8
    deny = raw[:3]
    got = c.post("/recommend", json={"history": hist, "k": 5, "exclude_seen": False, "deny": deny}).json()
    assert got["items"] == raw[3:8]  # the next ones, in order: k valid items still come back
    allow = ["7", "11", "19", "2"]
    got = c.post("/recommend", json={"history": hist, "k": 5, "allow": allow}).json()["items"]
    assert sorted(got) == ["11", "19", "7"]  # "2" is in the history; only 3 allowed items remain
    assert c.post("/recommend", json={"history": hist, "allow": ["nope"]}).status_code == 404


def test_popular_model_applies_the_same_masks(runs):
    c = TestClient(create_app(runs["pop"], config=ServeConfig(persist=False)))
    free = c.post("/recommend", json={"history": [], "k": 5}).json()["items"]
    got = c.post("/recommend", json={"history": free[:2], "k": 5, "deny": [free[2]]}).json()["items"]
    assert len(got) == 5 and not set(got) & set(free[:3]) and got[:2] == free[3:5]
    r = c.post("/items", json={"items": [{"id": "new"}]})
    assert r.status_code == 409 and "cannot serve items added" in r.json()["detail"]


# ---------------------------------------------------------------------------------------------- live catalog
def test_live_catalog_add_retire_persist_reload(runs, tmp_path):
    import shutil

    rd = tmp_path / "run"
    shutil.copytree(runs["gen"], rd)
    loaded = load_run(rd)
    c = TestClient(create_app(rd, loaded=loaded))
    r = c.post("/items", json={"items": [{"id": "n1", "fields": {"code": "3,2"}}]})
    assert r.status_code == 409 and "cannot code unseen items" in r.json()["detail"]  # precomputed: no transform
    loaded.tokenizer.transform = _fake_transform
    r = c.post("/items", json={"items": [{"id": "n1", "fields": {"code": "3,2", "title": "A"}},
                                         {"id": 901, "fields": {"code": "3,3"}}]})
    assert r.status_code == 200, r.text
    assert [a["code"] for a in r.json()["added"]] == [[3, 2], [3, 3]] and r.json()["catalog_version"] == 1
    health = c.get("/health").json()
    assert health["n_items"] == N_ITEMS + 2 and health["catalog_version"] == 1
    assert c.get("/items/n1").json()["fields"]["title"] == "A"
    # the new items are reachable in decoding and usable in histories
    got = c.post("/recommend", json={"history": ["n1", 1], "k": 3, "allow": ["901", "n1", "5"]}).json()["items"]
    assert sorted(got) == ["5", "901"]
    # collisions against the live catalog and codes the model cannot emit are refused, nothing changes
    assert c.post("/items", json={"items": [{"id": "n2", "fields": {"code": "3,2"}}]}).status_code == 409
    r = c.post("/items", json={"items": [{"id": "n3", "fields": {"code": "4,0"}}]})
    assert r.status_code == 409 and "outside the model's codebook" in r.json()["detail"]
    assert c.post("/items", json={"items": [{"id": "n1", "fields": {"code": "3,4"}}]}).status_code == 409
    assert c.post("/items", json={"items": [{"id": "n4", "fields": {"other": "x"}}]}).status_code == 422
    assert c.get("/health").json()["catalog_version"] == 1
    # retire: never returned again, even when allowed explicitly
    assert c.delete("/items/901").json() == {"retired": "901", "catalog_version": 2}
    got = c.post("/recommend", json={"history": [], "k": 3, "allow": ["901", "5"]}).json()["items"]
    assert got == ["5"] and c.get("/items/901").json()["available"] is False
    assert c.delete("/items/nope").status_code == 404
    # restart: the state comes back from <run>/serve/catalog.json
    again = load_run(rd)
    c2 = TestClient(create_app(rd, loaded=again))
    h2 = c2.get("/health").json()
    assert (h2["n_items"], h2["catalog_version"], h2["n_available"]) == (N_ITEMS + 2, 2, N_ITEMS + 1)
    assert c2.get("/items/n1").json()["code"] == [3, 2]
    # a catalog file written for another ID table is refused at start
    state = json.loads((rd / "serve" / "catalog.json").read_text())
    state["sid_table"]["sha256"] = "0" * 64
    (rd / "serve" / "catalog.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="another ID table"):
        create_app(rd, loaded=load_run(rd))


def test_live_edits_patch_the_prefix_index_in_place_and_match_a_rebuilt_index(runs):
    """POST /items and DELETE /items patch the model's index object itself (no rebuild): the served full
    ranking equals decoding with an index rebuilt from scratch on the live codes; a new item comes back
    first when it is the best allowed one; a retired item has no leaf, so even an unmasked search skips it."""
    loaded = load_run(runs["gen"])
    loaded.tokenizer.transform = _fake_transform
    c = _client(loaded, runs["gen"])
    model = loaded.model
    index = model.index_
    r = c.post("/items", json={"items": [{"id": "n1", "fields": {"code": "3,2"}}, {"id": "n2", "fields": {"code": "3,4"}}]})
    assert r.status_code == 200, r.text
    assert c.delete("/items/3").status_code == 200 and c.delete("/items/n2").status_code == 200
    assert model.index_ is index and index.rebuilds == 0  # patched, never rebuilt
    assert index.n_items == N_ITEMS + 2 and index.n_leaves == N_ITEMS  # 20 + 2 added - 2 retired
    k = N_ITEMS  # every live item: the served ranking is the whole ranking
    h = ["5", "6"]
    served = c.post("/recommend", json={"history": h, "k": k, "exclude_seen": False}).json()["items"]
    assert "3" not in served and "n2" not in served and "n1" in served and len(served) == N_ITEMS
    hist = np.array([5, 6])
    patched_i, patched_s = model.recommend([hist], k, beam=N_ITEMS + 2)  # no mask at all
    model.index_ = index.rebuilt()
    try:
        ref_i, ref_s = model.recommend([hist], k, beam=N_ITEMS + 2)
    finally:
        model.index_ = index
    assert patched_i.tolist() == ref_i.tolist() and not {3, N_ITEMS + 1} & set(patched_i[0].tolist())
    np.testing.assert_allclose(patched_s, ref_s, atol=1e-5)
    assert served == [c.app.state.catalog.ids[i] for i in ref_i[0].tolist()]
    # deny everything ranked above the new item: it is now the best allowed one and comes back first
    above = served[: served.index("n1")]
    got = c.post("/recommend", json={"history": h, "k": 3, "exclude_seen": False, "deny": above}).json()["items"]
    assert got == served[len(above): len(above) + 3] and got[0] == "n1"


def test_assign_codes_uses_the_smallest_free_digit_within_the_vocabulary():
    live = np.array([[0, 0, 0], [0, 0, 1], [1, 2, 0]])
    out = assign_codes(np.array([[0, 0], [1, 2], [2, 2]]), live, [3, 3, 3])
    assert out.tolist() == [[0, 0, 2], [1, 2, 1], [2, 2, 0]]
    with pytest.raises(CatalogConflict, match="only 3 digits"):
        assign_codes(np.array([[0, 0], [0, 0]]), live, [3, 3, 3])  # digits 0, 1 taken: 2, then 3 >= K
    with pytest.raises(CatalogConflict, match="no disambiguation digit"):
        assign_codes(np.array([[1, 2, 0]]), live, [3, 3, 3])
    assert assign_codes(np.array([[2, 0, 1]]), live, [3, 3, 3]).tolist() == [[2, 0, 1]]


# ---------------------------------------------------------------------------------------------- bounds
def test_bad_numbers_and_big_inputs_get_bounded_4xx(gen_loaded, runs):
    c = _client(gen_loaded, runs["gen"], max_body_bytes=4096, max_history=50)
    for body in ('{"history": ["1"], "k": 1e400}', '{"history": ["1"], "k": NaN}', '{"k": -1}', '{"k": 101}',
                 '{"history": [1.5]}', '{"history": [true]}', '{"k": "x"}', '{"history": ["1"], "foo": 1}', "{"):
        r = c.post("/recommend", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, (body, r.status_code)
        assert len(r.content) < 2000
    assert c.post("/recommend", json={"history": [1, "2", 3], "k": 2}).status_code == 200  # numeric ids
    long_id = "x" * 200
    r = c.post("/recommend", json={"history": [long_id]})
    assert r.status_code == 404 and long_id not in r.text and len(r.content) < 500
    r = c.post("/recommend", json={"history": ["y" * 300]})
    assert r.status_code == 422 and "y" * 300 not in r.text
    r = c.post("/recommend", json={"history": ["1"] * 51})
    assert r.status_code == 422  # over max_history items
    r = c.post("/recommend", content=b'{"history": ["' + b"z" * 10_000 + b'"]}',
               headers={"content-type": "application/json"})
    assert r.status_code == 413 and len(r.content) < 500

    def chunks():  # no Content-Length: counted while reading
        for _ in range(10):
            yield b" " * 1000

    assert c.post("/recommend", content=chunks(), headers={"content-type": "application/json"}).status_code == 413


def test_slow_upload_is_cut_with_408():
    async def app(scope, receive, send):  # pragma: no cover - never reached
        raise AssertionError

    sent = []

    async def receive():
        await asyncio.sleep(0.05)
        return {"type": "http.request", "body": b"x", "more_body": True}  # one byte per 50 ms, forever

    async def send(msg):
        sent.append(msg)

    mw = BodyLimit(app, max_bytes=1 << 20, timeout_s=0.3)
    scope = {"type": "http", "method": "POST", "headers": [], "path": "/recommend"}
    asyncio.run(asyncio.wait_for(mw(scope, receive, send), 5))
    assert sent[0]["status"] == 408 and (b"connection", b"close") in sent[0]["headers"]


def test_history_longer_than_the_window_reads_its_last_items(gen_loaded, runs):
    c = _client(gen_loaded, runs["gen"])
    assert c.get("/health").json()["window"] == 5
    long = [str(i) for i in range(12)]
    a = c.post("/recommend", json={"history": long, "k": 4, "exclude_seen": False}).json()["items"]
    b = c.post("/recommend", json={"history": long[-5:], "k": 4, "exclude_seen": False}).json()["items"]
    assert a == b


# ---------------------------------------------------------------------------------------------- auth, metrics
def test_api_key_and_bind_rule(gen_loaded, runs, monkeypatch):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    with pytest.raises(ConfigError, match="without an API key"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "k" * 16)
    c = _client(gen_loaded, runs["gen"], api_key="secret-key-123")
    assert c.get("/health").status_code == 200  # liveness probe stays open
    assert c.post("/recommend", json={"history": []}).status_code == 401
    assert c.post("/recommend", json={}, headers={"Authorization": "Bearer wrong-key-000"}).status_code == 401
    assert c.post("/recommend", json={}, headers={"Authorization": "Bearer secret-key-123"}).status_code == 200
    assert c.get("/metrics", headers={"X-API-Key": "secret-key-123"}).status_code == 200
    assert c.get("/metrics").status_code == 401

    from typer.testing import CliRunner

    from semid.cli.main import app as cli

    monkeypatch.delenv("SEMID_API_KEY", raising=False)
    res = CliRunner().invoke(cli, ["serve", str(runs["gen"]), "--host", "0.0.0.0"])
    assert res.exit_code == 2 and "API key" in " ".join(res.output.split())


def test_metrics_and_access_log(gen_loaded, runs, caplog):
    c = _client(gen_loaded, runs["gen"])
    with caplog.at_level(logging.INFO, logger="semid.serve.access"):
        c.post("/recommend", json={"history": ["1"], "k": 3})
        c.get("/items/does-not-exist")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "semid.serve.access"]
    assert {(x["route"], x["status"]) for x in lines} == {("/recommend", 200), ("/items/{id}", 404)}
    assert all(x["ms"] >= 0 for x in lines)
    text = c.get("/metrics").text
    assert 'semid_requests_total{route="/recommend",status="200"} 1' in text
    assert 'semid_request_seconds_bucket{route="/recommend",le="+Inf"} 1' in text
    assert 'semid_batch_size_bucket{le="1"} 1' in text and "semid_catalog_version 0" in text


@pytest.mark.parametrize("parser", ["h11", "httptools"])
def test_stalled_headers_and_bodies_are_closed_by_the_real_server(parser):
    """uvicorn with our protocol, on either HTTP parser: a client that never finishes its headers is
    disconnected (slow-loris); keep-alive requests that finish theirs are served."""
    if parser == "httptools":
        pytest.importorskip("httptools")
    import socket
    import time

    import uvicorn

    from semid.serve.server import header_timeout_protocol

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(BodyLimit(app, max_bytes=100, timeout_s=0.5), log_level="error",
                                           http=header_timeout_protocol(0.5, parser), timeout_keep_alive=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        heads = socket.create_connection(("127.0.0.1", port), timeout=5)
        heads.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        body = socket.create_connection(("127.0.0.1", port), timeout=5)
        body.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")  # body never finished
        ok = socket.create_connection(("127.0.0.1", port), timeout=5)
        for _ in range(2):  # keep-alive: the header timer restarts per request, finished headers cancel it
            ok.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            got, chunk = b"", b"-"
            while chunk and not got.endswith(b"ok"):  # bounded: an empty recv means closed
                chunk = ok.recv(100)
                got += chunk
            assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"ok")
        ok.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2)  # pipelined: both answered, in order
        got, chunk = b"", b"-"
        while chunk and got.count(b"ok") < 2:
            chunk = ok.recv(200)
            got += chunk
        assert got.count(b"HTTP/1.1 200") == 2
        t0 = time.perf_counter()
        assert heads.recv(100) == b""  # closed by the server
        assert body.recv(100).startswith(b"HTTP/1.1 408")
        assert time.perf_counter() - t0 < 4
        assert header_timeout_protocol(0.5, parser).__name__ == {"h11": "HeaderTimeoutH11",
                                                                 "httptools": "HeaderTimeoutHttpTools"}[parser]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_live_add_with_a_real_rqkmeans_transform_resolves_digits_within_the_vocabulary(tmp_path):
    """RQ-KMeans (2 x 2 codes + a collision digit) codes new items; a copy of an item lands on its raw code
    and takes the next free digit, or is refused when the model's digit level is full."""
    from semid.data.types import Catalog
    from semid.serve.catalog import CatalogInputError, LiveCatalog
    from semid.tokenizers.rqkmeans import RQKMeansConfig, RQKMeansTokenizer

    x = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    base = Catalog(item_ids=[f"i{i}" for i in range(30)], embeddings={"text": x})
    tok = RQKMeansTokenizer(config=RQKMeansConfig(modality="text", n_codes=(2, 2), n_iter=5)).fit(base)
    sizes = tok.codebook_sizes_
    assert len(sizes) == 3  # 30 items in 4 cells: the digit level exists
    extended = []
    cat = LiveCatalog(base, codes=tok.codes_, codebook_sizes=sizes, tokenizer=tok, extend_model=extended.append,
                      path=tmp_path / "catalog.json")
    raw = tok.codes_raw_
    counts = {tuple(r): int((raw == r).all(axis=1).sum()) for r in raw}
    small = next(i for i, r in enumerate(raw) if counts[tuple(r)] < sizes[-1])
    full = next(i for i, r in enumerate(raw) if counts[tuple(r)] == sizes[-1])
    out = cat.add([{"id": "copy", "embeddings": {"text": x[small].tolist()}}])
    assert out[0]["code"] == [*raw[small].tolist(), counts[tuple(raw[small])]] and len(extended) == 1
    with pytest.raises(CatalogConflict, match="digits"):
        cat.add([{"id": "copy2", "embeddings": {"text": x[full].tolist()}}])
    with pytest.raises(CatalogInputError, match="width"):
        cat.add([{"id": "bad", "embeddings": {"text": [0.0, 1.0]}}])
    assert cat.n_items == 31 and cat.version == 1 and len(extended) == 1


def test_a_tiger_run_on_the_musicrec_generator_is_served(runs, tmp_path):
    """MusicRec's generator decodes its own code space (no "item" space): it serves with masks, and its fixed
    catalog answers POST /items with 409 instead of failing."""
    ds = runs["gen"].parent / "Tiny"
    rd = tmp_path / "tiger"
    run(resolve(None, {**FAST, "data.dataset": str(ds), "tokenizer_preset": "tiger", "rqvae.modality": "lemb",
                       "rqvae.n_levels": 2, "rqvae.n_codes": 6, "rqvae.epochs": 2, "rqvae.hidden": "16",
                       "rqvae.latent_dim": 8, "model": "musicrec_gen", "name": "tiger",
                       "musicrec_gen.t5.num_layers": 1, "musicrec_gen.t5.num_decoder_layers": 1,
                       "musicrec_gen.t5.d_model": 16, "musicrec_gen.t5.d_ff": 32, "musicrec_gen.t5.num_heads": 2,
                       "musicrec_gen.t5.d_kv": 8, "musicrec_gen.t5.beam": 6, "musicrec_gen.t5.valid_beam": 4}), rd)
    c = TestClient(create_app(rd, config=ServeConfig(persist=False)))
    r = c.post("/recommend", json={"history": ["1", "2", "3"], "k": 5, "deny": ["4"]})
    assert r.status_code == 200, r.text
    got = r.json()["items"]
    assert 0 < len(got) <= 5 and not {"1", "2", "3", "4"} & set(got)
    assert c.post("/items", json={"items": [{"id": "new"}]}).status_code == 409


def test_serve_forever_freezes_the_startup_heap_out_of_full_collections(monkeypatch):
    """A full GC walking the restored model's heap stalls every request in flight (the p99 tail): the
    server entry freezes what exists at startup, so a later collection sees none of it."""
    import gc

    import uvicorn

    from semid.serve.server import serve_forever
    from semid.serve.settings import ServeConfig

    startup = [[i] for i in range(1000)]  # stands for the restored run: tracked objects alive at start
    seen = {}

    def fake_run(app, **kwargs):
        seen["frozen"] = gc.get_freeze_count()
        seen["tracked"] = {id(o) for o in gc.get_objects()}

    monkeypatch.setattr(uvicorn, "run", fake_run)
    gc.unfreeze()
    try:
        serve_forever(object(), host="127.0.0.1", port=0, config=ServeConfig(), access_log=False)
    finally:
        gc.unfreeze()
    assert seen["frozen"] >= len(startup)
    assert not any(id(o) in seen["tracked"] for o in startup)  # frozen objects are outside every generation


def test_decode_workers_setting():
    from semid.serve.settings import resolve_decode_workers

    assert resolve_decode_workers(ServeConfig(), cores=2) == 2  # one per core
    assert resolve_decode_workers(ServeConfig(), cores=16) == 2  # at most 2
    assert resolve_decode_workers(ServeConfig(), cores=1) == 1
    assert resolve_decode_workers(ServeConfig(decode_workers=3), cores=1) == 3  # explicit wins
    with pytest.raises(ConfigError, match="decode_workers"):
        ServeConfig(decode_workers=-1)
    with pytest.raises(ValueError, match="workers"):
        Batcher(lambda *a: None, lambda: np.ones(1, bool), CatalogLock(), workers=0)
