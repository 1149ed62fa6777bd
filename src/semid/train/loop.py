"""The one training loop: AdamW, warmup + cosine, clipping, bf16 on CUDA, early stopping, exact resume.

Exact resume works because every epoch re-seeds its own randomness from (seed, epoch): the batch
order comes from ``batches(epoch, rng)`` with ``rng = default_rng([seed, epoch])`` and torch's
generator (dropout) is seeded with ``seed * 1_000_003 + epoch``. A run stopped after epoch e and
resumed from its checkpoint therefore replays epochs e+1.. exactly as the uninterrupted run would.

``run_dir/ckpt`` holds ``model.safetensors``, ``best.safetensors`` (best-validation weights),
``optim.safetensors`` + ``optim.json`` (optimizer and scheduler state) and ``state.json``; nothing is
pickled, so resuming from a checkpoint of unknown origin cannot run code.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from semid import threads as thread_policy
from semid.device import pick_device
from semid.errors import CheckpointError, ConfigError, DataError
from semid.io import atomic_write, read_state_tree, write_error, write_json, write_state_tree
from semid.train import distributed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by every model semid trains."""

    epochs: int = 20  # maximum number of passes over the training examples
    batch_size: int = 256  # examples per optimisation step (used by the caller's batch builder)
    lr: float = 1e-3  # peak AdamW learning rate
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    warmup_steps: int = 100  # linear warmup steps before the cosine decay
    min_lr_ratio: float = 0.05  # cosine floor as a fraction of lr
    grad_clip: float = 1.0  # max global grad norm (0 disables)
    patience: int = 5  # evaluations without improvement before early stopping (0 disables)
    eval_every: int = 1  # validate every this many epochs
    metric: str = "NDCG@10"  # validation metric to maximise for early stopping / best weights
    seed: int = 0  # makes data order, init and dropout reproducible
    device: str = "auto"  # auto | cpu | cuda | cuda:1 | mps
    bf16: bool = True  # bf16 autocast (CUDA only; ignored on CPU)
    compile: bool = False  # torch.compile the model (CUDA only)
    progress: bool = True  # show rich progress bars
    resume: bool = False  # continue from run_dir/ckpt when it exists (exact: same result as uninterrupted)


@dataclass
class TrainResult:
    best_metric: float = -math.inf
    best_epoch: int = -1
    epochs_run: int = 0
    stopped_early: bool = False
    history: list[dict] = field(default_factory=list)


def _lr_lambda(warmup: int, total: int, floor: float) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


class Trainer:
    """Runs ``loss_fn(model, batch)`` over ``batches(epoch, rng)`` with checkpoints in ``run_dir/ckpt``."""

    def __init__(self, cfg: TrainConfig, run_dir: str | Path | None = None, *, resume: bool = False):
        self.cfg = cfg
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if not distributed.is_main():  # multi-process: rank 0 alone reads and writes checkpoints and logs
            self.run_dir = None
        self.resume = resume or cfg.resume
        self.device = pick_device(cfg.device)

    # ------------------------------------------------------------------ checkpoints
    @property
    def ckpt_dir(self) -> Path | None:
        return self.run_dir / "ckpt" if self.run_dir is not None else None

    def _save(self, model: nn.Module, opt, sched, state: dict, best_state: dict | None) -> None:
        """Write ``ckpt.tmp`` completely (``state.json`` last), then swap it in for ``ckpt``.

        Nothing here is pickled: weights are safetensors, optimizer / scheduler state a safetensors + JSON
        state tree (``semid.io.write_state_tree``), so loading a checkpoint cannot run code.
        """
        from safetensors.torch import save_file, save_model

        final = self.ckpt_dir
        tmp = final.with_name("ckpt.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_model(model, str(tmp / "model.safetensors"))
        if best_state is not None:
            save_file({k: v.contiguous() for k, v in best_state.items()}, str(tmp / "best.safetensors"))
        write_state_tree(tmp / "optim", {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()})
        write_json(tmp / "state.json", state)  # last: a ckpt.tmp with state.json is complete
        # Swap directories so a crash leaves either the old or the new checkpoint, never a mix; a crash
        # between the two renames leaves both ckpt.tmp (new) and ckpt.old (previous), which
        # ``_recover`` finds.
        old = final.with_name("ckpt.old")
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)

    def _recover(self) -> None:
        """Finish a checkpoint swap a crash interrupted: ``ckpt`` missing but a complete ``ckpt.tmp``
        (newer) or ``ckpt.old`` (previous epoch) beside it becomes ``ckpt``."""
        final = self.ckpt_dir
        if final is None or (final / "state.json").exists():
            return
        for cand in (final.with_name("ckpt.tmp"), final.with_name("ckpt.old")):
            if (cand / "state.json").is_file():
                if final.exists():
                    shutil.rmtree(final)
                cand.rename(final)
                log.warning("checkpoint %s was missing (interrupted save); recovered it from %s", final, cand.name)
                return

    def _load(self, model: nn.Module, opt, sched) -> tuple[dict, dict | None]:
        from safetensors.torch import load_file, load_model

        d = self.ckpt_dir
        try:
            state = json.loads((d / "state.json").read_text())
            missing, unexpected = load_model(model, str(d / "model.safetensors"), device=str(self.device))
            if unexpected:
                raise ValueError(f"unexpected tensors {unexpected[:3]}")
            if (d / "optim.json").exists():
                optim = read_state_tree(d / "optim", device=str(self.device))
            else:  # checkpoints written before the state tree: pickles, read without running code
                optim = torch.load(d / "optim.pt", map_location=self.device, weights_only=True)
            opt.load_state_dict(optim["optimizer"])
            sched.load_state_dict(optim["scheduler"])
            best = None
            if (d / "best.safetensors").exists():
                best = load_file(str(d / "best.safetensors"))
            elif (d / "best.pt").exists():
                best = torch.load(d / "best.pt", map_location="cpu", weights_only=True)
        except FileNotFoundError as e:
            raise CheckpointError(f"checkpoint in {d} is incomplete: {e.filename} missing") from None
        except Exception as e:
            raise CheckpointError(f"checkpoint in {d} is corrupt, unsafe or from another model: {e}") from None
        return state, best

    # ------------------------------------------------------------------ main loop
    def fit(
        self,
        model: nn.Module,
        batches: Callable[[int, np.random.Generator], Iterable[dict]],
        loss_fn: Callable[[nn.Module, dict], torch.Tensor],
        validate: Callable[[nn.Module], dict] | None = None,
        *,
        steps_per_epoch: int | None = None,
        on_epoch_end: Callable[[nn.Module, int], dict | None] | None = None,
    ) -> TrainResult:
        """Train ``model``; returns the run's ``TrainResult``.

        ``on_epoch_end(model, epoch)`` runs after each epoch's steps, before validation and the checkpoint,
        under that epoch's seeded RNG (so a resumed run replays it exactly). It may change the model in place
        (the RQ-VAE tokenizers re-seed dead codes there) and returns figures (or None) that are added to the
        epoch's log entry.
        """
        cfg = self.cfg
        seed_everything(cfg.seed)
        model.to(self.device)
        if steps_per_epoch is None:
            try:
                steps_per_epoch = len(batches(0, np.random.default_rng([cfg.seed, 0])))  # type: ignore[arg-type]
            except TypeError:
                steps_per_epoch = 1000
        # Training on nothing would "succeed" with untrained weights and -inf best_metric.
        if cfg.epochs < 1:
            raise ConfigError(f"train.epochs={cfg.epochs}: training needs at least 1 epoch")
        if steps_per_epoch == 0:
            raise DataError("no training batches: the train split gave 0 examples; check the dataset "
                            "(`semid data check`), data.min_length / data.k_core and train.batch_size")
        total = max(1, steps_per_epoch * cfg.epochs)
        decay, no_decay = [], []
        for n, p in model.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim < 2 or "norm" in n.lower() or n.endswith(".bias") else decay).append(p)
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
            betas=(0.9, 0.98),
        )
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg.warmup_steps, total, cfg.min_lr_ratio))
        res = TrainResult()
        best_state: dict | None = None
        bad_evals, start_epoch, saved_world = 0, 0, None
        self._recover()
        has_ckpt = self.ckpt_dir is not None and (self.ckpt_dir / "state.json").exists()
        log_path = self.run_dir / "train_log.jsonl" if self.run_dir is not None else None
        lost = log_path is not None and log_path.is_file() and bool(log_path.read_text().strip())
        if self.resume and not has_ckpt and lost:
            # Every logged epoch was checkpointed: a log without a checkpoint means the checkpoint was lost,
            # and silently training from scratch would mix two runs in one directory.
            raise CheckpointError(
                f"{log_path} records finished epochs but {self.ckpt_dir} holds no checkpoint; cannot resume. "
                "Start the run again in a new run directory (or with --overwrite)"
            )
        if has_ckpt and not self.resume:
            # Never overwrite an earlier run's checkpoint and log silently.
            raise ConfigError(
                f"{self.ckpt_dir} already holds a checkpoint: resume it (TrainConfig.resume=True / --resume) "
                "or train into another run directory"
            )
        if self.resume and has_ckpt:
            state, best_state = self._load(model, opt, sched)
            saved_world = state.get("world_size", 1)
            start_epoch = state["epoch"] + 1
            bad_evals = state["bad_evals"]
            res = TrainResult(
                best_metric=state["best_metric"], best_epoch=state["best_epoch"], history=state["history"],
                epochs_run=start_epoch, stopped_early=state.get("stopped_early", False),
            )
            if res.stopped_early:
                start_epoch = cfg.epochs
        # Every rank starts from rank 0's weights, optimizer state and epoch (a resumed world size must match).
        start_epoch, bad_evals, res, best_state = distributed.sync_start(
            model, opt, sched, (start_epoch, bad_evals, res, best_state), saved_world=saved_world, ckpt=self.ckpt_dir)

        use_cuda = self.device.type == "cuda"
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_cuda and cfg.bf16)
        fwd_model = torch.compile(model) if (cfg.compile and use_cuda) else model
        step_loss = distributed.data_parallel(fwd_model, loss_fn)  # DDP in a process group

        from semid.progress import progress_bar

        for epoch in range(start_epoch, cfg.epochs):
            torch.manual_seed(cfg.seed * 1_000_003 + epoch)
            rng = np.random.default_rng([cfg.seed, epoch])
            model.train()
            t0, loss_sum, n_steps = time.perf_counter(), 0.0, 0
            with (progress_bar(f"epoch {epoch + 1}/{cfg.epochs}", total=steps_per_epoch, enabled=cfg.progress) as tick,
                  thread_policy.whole_matrix() as rebalance):
                for batch in batches(epoch, rng):
                    rebalance()  # one thread per free core (semid.threads): a shared core stalls every barrier
                    batch, weight = distributed.shard_batch(batch)  # this rank's rows of the global batch
                    batch = {k: (v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
                    with autocast:
                        loss = step_loss(batch)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch} step {n_steps}; lower train.lr")
                    opt.zero_grad(set_to_none=True)
                    (loss * weight if weight != 1.0 else loss).backward()
                    if cfg.grad_clip > 0:
                        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    opt.step()
                    sched.step()
                    loss_sum += float(loss.detach()) * weight  # this rank's part; averaged at the epoch's end
                    n_steps += 1
                    tick(loss=loss_sum / n_steps)
            if n_steps == 0:
                raise DataError(f"epoch {epoch} had no training batches: the train split gave 0 examples; "
                                "check the dataset (`semid data check`) and data.min_length / data.k_core")
            loss_sum = float(distributed.mean_over_ranks([loss_sum])[0])  # the global batches' mean losses, summed
            entry = {"epoch": epoch, "train_loss": loss_sum / max(1, n_steps), "steps": n_steps,
                     "seconds": time.perf_counter() - t0, "lr": sched.get_last_lr()[0]}
            distributed.sync_buffers(model)  # rank 0's BatchNorm statistics etc. on every rank
            if on_epoch_end is not None:
                entry |= on_epoch_end(model, epoch) or {}
            if validate is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
                model.eval()
                with torch.no_grad(), autocast:
                    metrics = validate(model)  # a ShardedValidation splits the users over the ranks
                # One decision for all ranks: rank 0's metrics drive best weights and early stopping everywhere.
                metrics = distributed.broadcast_object(metrics)
                model.train()
                entry["valid"] = metrics
                # Selection is by cfg.metric alone; extra keys (NDCG@10_se, n_eval_users) are only logged.
                selectable = sorted(k for k in metrics if not k.endswith("_se") and k != "n_eval_users")
                if cfg.metric not in selectable:
                    raise ConfigError(f"train.metric={cfg.metric!r} is not a validation metric to maximise; "
                                      f"choose one of {selectable}")
                value = float(metrics[cfg.metric])
                if value > res.best_metric:
                    res.best_metric, res.best_epoch, bad_evals = value, epoch, 0
                    best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                else:
                    bad_evals += 1
            res.history.append(entry)
            res.epochs_run = epoch + 1
            stop = cfg.patience > 0 and bad_evals >= cfg.patience
            res.stopped_early = stop
            if self.ckpt_dir is not None:
                state = {"epoch": epoch, "bad_evals": bad_evals, "best_metric": res.best_metric,
                         "best_epoch": res.best_epoch, "history": res.history, "stopped_early": stop,
                         "world_size": distributed.world_size()}
                try:
                    self._save(model, opt, sched, state, best_state)
                except OSError as e:  # disk full / read-only: the previous checkpoint is still whole
                    mapped = write_error(self.ckpt_dir, e)
                    if mapped is None:
                        raise
                    raise mapped from e
            # The log line goes after the checkpoint: a logged epoch is always a checkpointed one, so a failed
            # save (disk full) leaves a state that --resume continues instead of one it must refuse.
            if self.run_dir is not None:
                line = json.dumps(entry)
                log = self.run_dir / "train_log.jsonl"
                prev = log.read_text() if log.exists() else ""
                atomic_write(log, lambda p, s=prev + line + "\n": p.write_text(s))
            if stop:
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        if self.run_dir is not None:
            write_json(self.run_dir / "train_result.json", res.__dict__)
        return res
