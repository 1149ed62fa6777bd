"""One T5 generator: MusicRecGenerator with one task is T5Rec; validation on every user by default, a sample
with its size and standard error; every inference path on the model's device; multi-task rows and batches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import semid.models.codeseq as codeseq
from semid.data.types import Catalog, EvalSet, Interactions
from semid.decoding.beam import BeamResult
from semid.errors import CheckpointError, ConfigError
from semid.eval.metrics import ndcg_recall_at, per_row_metrics
from semid.models.gen_validation import validation_rows
from semid.models.gpt2rec import GPT2Rec, GPT2RecConfig, gpt2_next_logp, gpt2_sequence_logp
from semid.models.musicrec_gen import MultiTaskExamples, MusicRecGenConfig, MusicRecGenerator
from semid.models.next_item_examples import NextItemExamples
from semid.models.t5rec import T5Rec, T5RecConfig, t5_next_logp, t5_sequence_logp
from semid.models.vocab import BOS, EOS, PAD
from semid.train.loop import TrainConfig, Trainer

torch.set_num_threads(1)
N = 12
CODES = np.array([[i % 4, i // 4] for i in range(N)])  # codebook sizes [4, 3] = max + 1
TINY = T5RecConfig(num_layers=1, num_decoder_layers=1, d_model=32, d_ff=64, num_heads=2, d_kv=16, max_history=4,
                   beam=12, valid_beam=6)
TRAIN = TrainConfig(epochs=2, batch_size=16, lr=3e-3, warmup_steps=2, progress=False, device="cpu", patience=0)


def _data(n_valid: int = 20):
    seqs = [[(s + j) % N for j in range(6)] for s in range(N)] * 2
    valid = EvalSet(
        histories=Interactions.from_lists([[s % N, (s + 1) % N] for s in range(n_valid)]),
        targets=Interactions.from_lists([[(s + 2) % N] for s in range(n_valid)]),
    )
    return Interactions.from_lists(seqs), Catalog(item_ids=np.arange(N).astype(str)), valid


def _two_spaces(n: int = N):
    return {"text": np.stack([np.arange(n) // 4, np.arange(n) % 4], 1),
            "image": np.stack([np.arange(n) % 3, np.arange(n) // 3], 1)}


def test_single_task_musicrec_generator_is_t5rec():
    """Same weights init, batches, validation and decoding: the TIGER/LETTER rows and FusID+T5 share one path."""
    train, catalog, valid = _data()
    t5 = T5Rec(codes=CODES, codebook_sizes=[4, 3], config=TINY, train=TRAIN).fit(train, catalog, valid)
    gen = MusicRecGenerator(spaces={"text": CODES}, config=MusicRecGenConfig(tasks=("uni_text",), t5=TINY),
                            train=TRAIN).fit(train, catalog, valid)
    assert gen.vocab_.size == t5.vocab_.size
    a, b = t5.train_result_.history, gen.result_.history
    assert [h["train_loss"] for h in a] == pytest.approx([h["train_loss"] for h in b], abs=1e-6)
    assert set(a[-1]["valid"]) == set(b[-1]["valid"]) == {"NDCG@10", "Recall@10", "NDCG@10_se", "n_eval_users"}
    for x, y in zip(a, b, strict=True):
        assert x["valid"] == pytest.approx(y["valid"], abs=1e-6)
    hs = [np.array([3, 4]), np.array([1]), np.array([], dtype=np.int64)]
    for u, v in zip(t5.recommend(hs, 10), gen.recommend(hs, 10), strict=True):
        np.testing.assert_allclose(u, v, atol=1e-5)
    # the same weights decode identically through either class
    gen.model_.load_state_dict(t5.model_.state_dict())
    np.testing.assert_array_equal(t5.recommend(hs, 10)[0], gen.recommend(hs, 10)[0])
    torch.testing.assert_close(t5.encode_histories(hs)["src_ids"], gen.encode_histories(hs)["src_ids"])


def test_validation_uses_every_user_by_default():
    assert T5RecConfig().valid_users == 0 and GPT2RecConfig().valid_users == 0
    train, catalog, valid = _data(n_valid=30)
    rec = T5Rec(codes=CODES, config=TINY).init_model(catalog)
    m = rec._validator(valid)(rec.model_)
    assert m["n_eval_users"] == 30
    items, _ = rec._recommend_with(rec.model_, [valid.histories.seq(u) for u in range(30)], 10, TINY.valid_beam)
    assert m["NDCG@10"] == pytest.approx(ndcg_recall_at(items, valid.targets, 10)["NDCG@10"], abs=1e-12)


def test_sampled_validation_reports_size_and_standard_error():
    train, catalog, valid = _data(n_valid=30)
    cfg = T5RecConfig(**{**TINY.__dict__, "valid_users": 7})
    rec = T5Rec(codes=CODES, config=cfg).init_model(catalog)
    m = rec._validator(valid)(rec.model_)
    rows = validation_rows(30, 7)
    assert m["n_eval_users"] == 7 and len(rows) == 7 and len(set(rows.tolist())) == 7
    items, _ = rec._recommend_with(rec.model_, [valid.histories.seq(int(u)) for u in rows], 10, cfg.valid_beam)
    per_user = per_row_metrics(items, valid.targets.items[rows], (10,))["NDCG@10"]
    assert m["NDCG@10"] == pytest.approx(per_user.mean(), abs=1e-12)
    assert m["NDCG@10_se"] == pytest.approx(per_user.std(ddof=1) / np.sqrt(7), abs=1e-12)
    with pytest.raises(ConfigError, match="valid_users"):
        validation_rows(30, -1)


def test_trainer_selects_the_best_epoch_by_the_main_metric_not_its_standard_error():
    model = torch.nn.Linear(2, 1)
    figures = iter([{"NDCG@10": 0.1, "NDCG@10_se": 0.9, "n_eval_users": 5},
                    {"NDCG@10": 0.3, "NDCG@10_se": 0.1, "n_eval_users": 5},
                    {"NDCG@10": 0.2, "NDCG@10_se": 0.5, "n_eval_users": 5}])

    def batches(epoch, rng):
        yield {"x": torch.ones(4, 2)}

    def loss(m, b):
        return m(b["x"]).pow(2).mean()

    cfg = TrainConfig(epochs=3, patience=0, progress=False, device="cpu", warmup_steps=1)
    res = Trainer(cfg).fit(model, batches, loss, lambda m: next(figures))
    assert res.best_epoch == 1 and res.best_metric == 0.3
    assert res.history[0]["valid"]["NDCG@10_se"] == 0.9  # logged once per epoch
    se_cfg = TrainConfig(epochs=1, patience=0, progress=False, device="cpu", metric="NDCG@10_se")
    with pytest.raises(ConfigError, match="not a validation metric"):
        Trainer(se_cfg).fit(model, batches, loss, lambda m: {"NDCG@10": 0.1, "NDCG@10_se": 0.9})


def _fake_beam(seen: list):
    """beam_search stand-in that records where its inputs live and answers with CPU tensors."""

    def fake(step, batch, index, *, beam, k, item_mask=None):
        seen.append({t.device.type for t in batch.values()} | {index.device.type}
                    | ({item_mask.device.type} if item_mask is not None else set()))
        B = next(iter(batch.values())).shape[0]
        return BeamResult(items=torch.arange(k).repeat(B, 1), scores=torch.zeros(B, k),
                          tokens=torch.zeros(B, k, 2, dtype=torch.long))

    return fake


@pytest.mark.parametrize("kind", ["t5", "gpt2", "musicrec"])
def test_inference_builds_its_tensors_on_the_model_device(monkeypatch, kind):
    """A model on another device (``meta`` stands in for CUDA): inputs, mask and prefix index follow it."""
    if kind == "t5":
        rec = T5Rec(codes=CODES, config=TINY).init_model()
    elif kind == "gpt2":
        rec = GPT2Rec(codes=CODES, config=GPT2RecConfig(n_layer=1, n_embd=16, n_head=2, beam=6)).init_model()
    else:
        rec = MusicRecGenerator(spaces=_two_spaces(), config=MusicRecGenConfig(t5=TINY)).init_model()
    rec.model_.to("meta")
    seen: list = []
    monkeypatch.setattr(codeseq, "beam_search", _fake_beam(seen))
    items, scores = rec.recommend([np.array([1, 2]), np.array([3])], 5, exclude=[np.array([0]), np.array([])])
    assert items.shape == (2, 5) and isinstance(items, np.ndarray)
    assert seen and all(s == {"meta"} for s in seen)
    if kind == "musicrec":
        assert len(seen) == 2  # one beam per ranked ID space, merged on CPU
        assert rec.rank_space([np.array([1])], "image")[0].shape == (1, TINY.beam)


@pytest.mark.gpu
def test_recommend_and_reference_scorers_on_cuda():
    hs = [np.array([1, 2]), np.array([3])]
    fp32 = TrainConfig(bf16=False, progress=False)  # compare like with like: no bf16 autocast on CUDA
    for rec in (T5Rec(codes=CODES, config=TINY, train=fp32).init_model(),
                GPT2Rec(codes=CODES, config=GPT2RecConfig(n_layer=1, n_embd=16, n_head=2), train=fp32).init_model(),
                MusicRecGenerator(spaces=_two_spaces(), config=MusicRecGenConfig(t5=TINY), train=fp32).init_model()):
        cpu = rec.recommend(hs, 5)
        rec.model_.to("cuda")
        gpu = rec.recommend(hs, 5)
        assert gpu[0].shape == (2, 5) and ((gpu[0] >= 0) & (gpu[0] < N)).all()
        np.testing.assert_allclose(cpu[1], gpu[1], atol=1e-3)  # same ranked scores (near-ties may swap items)
        if isinstance(rec, GPT2Rec):
            ctx = rec.context(hs[0])
            assert gpt2_next_logp(rec.model_, ctx, ()).shape == (rec.vocab_.size,)
            assert gpt2_sequence_logp(rec.model_, ctx, rec.item_tokens_[:3]).shape == (3,)
        elif not isinstance(rec, MusicRecGenerator):
            src = rec.source(hs[0])
            assert t5_next_logp(rec.model_, src, ()).shape == (rec.vocab_.size,)
            assert t5_sequence_logp(rec.model_, src, rec.item_tokens_[:3]).shape == (3,)


def test_next_item_examples_keep_the_latest_targets():
    train = Interactions.from_lists([[0, 1, 2, 3, 4], [5, 6]])
    ex = NextItemExamples(train, max_history=2, max_targets=2)
    H, y = ex.take(np.arange(len(ex)))
    assert y.tolist() == [3, 4, 6] and H.tolist() == [[1, 2], [2, 3], [-1, 5]]


def test_multitask_rows_and_batches_follow_the_tasks():
    train = Interactions.from_lists([[0, 1, 2], [3, 4]])
    gen = MusicRecGenerator(spaces=_two_spaces(6), config=MusicRecGenConfig(t5=TINY)).setup()
    ex = gen._train_examples(train)
    assert isinstance(ex, MultiTaskExamples) and len(ex) == 4 * 3 + 2 * 6  # 3 next-item pairs x 4 tasks, 2 x items
    t2i = ex.starts[list(ex.tasks).index("t2i")]
    mm_text = ex.starts[list(ex.tasks).index("mm_text")]
    groups = dict((t, (H, y)) for t, H, y in ex.take(np.array([t2i + 5, mm_text + 0])))
    b = gen._task_batch("t2i", *groups["t2i"])
    text, image = gen.tokens_["text"], gen.tokens_["image"]
    assert b["src_ids"][0].tolist() == [gen.task_token_["t2i"], *text[5]]
    assert b["tgt_ids"][0].tolist() == [*image[5], EOS]
    H, y = groups["mm_text"]  # history [0] -> target 1, interleaved text then image IDs
    b = gen._task_batch("mm_text", H, y)
    assert b["src_ids"][0].tolist() == [gen.task_token_["mm_text"], *text[0], *image[0]]
    full = gen._train_batch(ex, np.array([t2i + 5, mm_text + 0]))
    rows = {r[r != PAD][0].item(): r.tolist() for r in full["src_ids"]}  # task token -> row
    assert full["src_ids"].shape == (2, 5)
    assert rows[gen.task_token_["t2i"]] == [PAD, PAD, gen.task_token_["t2i"], *text[5]]  # left-padded like T5Rec
    assert BOS not in gen.task_token_.values()  # several tasks: each has its own prefix token


def test_musicrec_generator_saved_with_the_old_inputs_is_refused(tmp_path):
    train, catalog, _ = _data()
    one = TrainConfig(epochs=1, batch_size=64, warmup_steps=1, progress=False, device="cpu", patience=0)
    gen = MusicRecGenerator(spaces=_two_spaces(), config=MusicRecGenConfig(t5=TINY), train=one).fit(train)
    gen.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    del meta["input_layout"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="saved by an earlier semid.*semid run --config"):
        MusicRecGenerator.load(tmp_path / "m")


def test_seqdata_still_re_exports_the_split_pieces():
    from semid.models import code_batches, next_item_examples, seqdata

    assert seqdata.CodeSeqRecommender is codeseq.CodeSeqRecommender
    assert seqdata.NextItemExamples is next_item_examples.NextItemExamples
    assert seqdata.seq2seq_batch is code_batches.seq2seq_batch and seqdata.ndcg_recall_at is ndcg_recall_at
