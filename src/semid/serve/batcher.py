"""Cross-request batching: concurrent requests are decoded together in one batched (constrained) search.

``workers`` decode threads share the model (inference only: every call keeps its own beam state). Each
takes the first waiting request, waits up to ``max_wait_ms`` for up to ``max_batch - 1`` more (and, with
``max_gap_ms``, stops waiting as soon as no request has arrived for that long: a burst that has ended is
decoded at once instead of idling to the deadline), groups them
by beam width (a request's beam is ``max(model beam, k)``, so requests with k <= the model's beam share one
group) and makes one ``recommend`` call per group with the group's largest k; each request keeps its
first k. Beam search treats the rows of a batch independently
and left padding does not change a prediction, so every request gets what it would get alone (test).
Item masks are built at decode time from the live catalog's availability, so a retired item is never
returned by a request that was queued before it was retired: decodes hold the catalog lock shared,
catalog edits hold it exclusively (``CatalogLock``).

Why several workers, each at one intra-op thread (``semid.threads.pin_this_thread``): a decode step is a few
dozen tiny ops, each a parallel region whose barrier waits for the slowest thread, so one decoder on two
threads stalls whenever the HTTP handlers, the clients or another process take one of the cores, and
drops to one thread (``small_ops``) when they are seen. Two one-thread decoders have no barrier between
them: each runs whenever a core is free, and the GIL is released inside every op.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

# decode(histories, k, beam or None, mask bool [B, n_items]) -> (items int64 [B, k], scores float32 [B, k])
DecodeFn = Callable[[list[np.ndarray], int, "int | None", np.ndarray], tuple[np.ndarray, np.ndarray]]


class Overloaded(Exception):
    """The queue is full: the caller answers 503."""


@dataclass
class Job:
    """One request: item indices of its history, k, the items to exclude and an optional allow-list."""

    history: np.ndarray  # int64 [h]
    k: int
    beam: int | None  # group key; None for models without a beam (full ranking)
    exclude: np.ndarray  # int64 [e] item indices never returned (history when exclude_seen, deny-list)
    allow: np.ndarray | None = None  # int64 [a]: only these may be returned
    future: Future = field(default_factory=Future)


def job_mask(jobs: list[Job], available: np.ndarray) -> np.ndarray:
    """bool [B, n_items]: catalog availability AND allow-list AND NOT excluded, per job."""
    n = len(available)
    mask = np.broadcast_to(available, (len(jobs), n)).copy()
    for r, j in enumerate(jobs):
        if j.allow is not None:
            keep = np.zeros(n, dtype=bool)
            keep[j.allow] = True
            mask[r] &= keep
        mask[r, j.exclude] = False
    return mask


class CatalogLock:
    """Readers-writer lock: decodes run side by side under ``shared()``; ``with lock:`` (a catalog edit)
    waits for the decodes in flight and holds new ones back until it is done (writers first)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextlib.contextmanager
    def shared(self):
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    def __enter__(self) -> CatalogLock:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        return self

    def __exit__(self, *exc) -> None:
        with self._cond:
            self._writer = False
            self._cond.notify_all()


class Batcher:
    """Queue + ``workers`` decode threads; ``submit(job)`` returns the job's Future (result: (items [k],
    scores [k])). With more than one worker each runs at one intra-op thread."""

    def __init__(
        self,
        decode: DecodeFn,
        available: Callable[[], np.ndarray],
        lock: CatalogLock,
        *,
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        max_gap_ms: float | None = None,
        max_queue: int = 1024,
        on_batch: Callable[[int], None] | None = None,
        workers: int = 1,
    ) -> None:
        import torch

        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.decode, self.available, self.lock = decode, available, lock
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1e3
        self.max_gap = None if max_gap_ms is None else max_gap_ms / 1e3
        self.on_batch = on_batch
        self.queue: queue.Queue[Job | None] = queue.Queue(maxsize=max_queue)
        self._started = threading.Barrier(workers + 1)
        self.threads = [threading.Thread(target=self._run, args=(workers > 1,), name=f"semid-batcher-{i}",
                                         daemon=True) for i in range(workers)]
        prev = torch.get_num_threads()
        for t in self.threads:
            t.start()
        self._started.wait()
        torch.set_num_threads(prev)  # what threads started later (request handlers) begin with

    def submit(self, job: Job) -> Future:
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            raise Overloaded from None
        return job.future

    def close(self) -> None:
        for _ in self.threads:
            self.queue.put(None)
        for t in self.threads:
            t.join(timeout=10)

    # ------------------------------------------------------------------ worker
    def _collect(self, first: Job) -> tuple[list[Job], bool]:
        batch, stop = [first], False
        deadline = time.perf_counter() + self.max_wait
        while len(batch) < self.max_batch:
            left = deadline - time.perf_counter()
            # the gap runs from this worker's last take off the queue (or the batch's start), so each request
            # taken restarts it; max_gap 0 takes only what is already queued
            if self.max_gap is not None:
                left = min(left, self.max_gap)
            try:
                job = self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                stop = True
                break
            batch.append(job)
        return batch, stop

    def _run(self, pin: bool) -> None:
        if pin:
            from semid.threads import pin_this_thread

            pin_this_thread(1)
        self._started.wait()
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch, stop = self._collect(first)
            batch = [j for j in batch if j.future.set_running_or_notify_cancel()]  # drop timed-out ones
            groups: dict[int | None, list[Job]] = {}
            for j in batch:
                groups.setdefault(j.beam, []).append(j)
            for beam, jobs in groups.items():
                self._decode(jobs, beam)
            if stop:
                return

    def _decode(self, jobs: list[Job], beam: int | None) -> None:
        try:
            with self.lock.shared():  # catalog edits wait for the decodes in flight, and vice versa
                mask = job_mask(jobs, self.available())
                k = max(j.k for j in jobs)
                items, scores = self.decode([j.history for j in jobs], k, beam, mask)
            if self.on_batch is not None:
                self.on_batch(len(jobs))
        except Exception as e:  # every waiting request learns about the failure
            for j in jobs:
                j.future.set_exception(e)
            return
        for r, j in enumerate(jobs):
            j.future.set_result((items[r, : j.k], scores[r, : j.k]))
