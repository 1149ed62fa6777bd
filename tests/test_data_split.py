"""Split invariants and the MQL4GRec reference-split reproduction."""

from __future__ import annotations

import numpy as np

from semid.data import (
    Interactions,
    leave_one_out,
    load_amazon_lcrec,
    playlist_continuation,
    read_recbole_split,
)


def _toy():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 50, size=n) for n in (1, 2, 3, 4, 7, 12, 0, 5)]
    return Interactions.from_lists(seqs, user_ids=[f"u{i}" for i in range(len(seqs))])


def test_leave_one_out_invariants():
    inter = _toy()
    sp = leave_one_out(inter)
    eval_users = [u for u in range(inter.n_users) if len(inter.seq(u)) >= 3]
    assert sp.test.histories.user_ids.tolist() == [f"u{u}" for u in eval_users]
    assert len(sp.valid) == len(sp.test) == len(eval_users)
    for k, u in enumerate(eval_users):
        s = inter.seq(u)
        assert sp.test.targets.seq(k).tolist() == [s[-1]]
        assert sp.test.histories.seq(k).tolist() == s[:-1].tolist()  # includes the valid item
        assert sp.valid.targets.seq(k).tolist() == [s[-2]]
        assert sp.valid.histories.seq(k).tolist() == s[:-2].tolist()
    # train: seq[:-2] for eval users, whole sequence for short users, empty users gone
    train = dict(zip(sp.train.user_ids.tolist(), sp.train.to_lists(), strict=True))
    assert train["u0"].tolist() == inter.seq(0).tolist() and train["u1"].tolist() == inter.seq(1).tolist()
    assert train["u5"].tolist() == inter.seq(5)[:-2].tolist()
    assert "u6" not in train
    assert sp.train.n_interactions + 2 * len(eval_users) == inter.n_interactions


def test_leave_one_out_max_history_caps_eval_only():
    inter = _toy()
    sp = leave_one_out(inter, max_history=3)
    assert sp.test.histories.lengths().max() == 3 and sp.valid.histories.lengths().max() == 3
    k = sp.test.histories.user_ids.tolist().index("u5")
    assert sp.test.histories.seq(k).tolist() == inter.seq(5)[-4:-1].tolist()
    assert sp.train.lengths().max() == 10  # training prefixes are not capped


def test_playlist_continuation_invariants():
    seqs = [np.arange(n) + 100 * i for i, n in enumerate([2, 6, 8, 10, 3, 9, 7, 12, 6, 6])]
    inter = Interactions.from_lists(seqs)
    a = playlist_continuation(inter, holdout=3, frac=0.6, seed=1)
    b = playlist_continuation(inter, holdout=3, frac=0.6, seed=1)
    assert a.valid.histories.user_ids.tolist() == b.valid.histories.user_ids.tolist()  # deterministic
    v, t = set(a.valid.histories.user_ids.tolist()), set(a.test.histories.user_ids.tolist())
    assert not v & t and len(v) + len(t) == round(0.6 * 8)  # 8 sequences longer than 3
    assert abs(len(v) - len(t)) <= 1
    train = dict(zip(a.train.user_ids.tolist(), a.train.to_lists(), strict=True))
    for ev in (a.valid, a.test):
        for k, u in enumerate(ev.histories.user_ids.tolist()):
            s = inter.seq(int(u))
            assert ev.targets.seq(k).tolist() == s[-3:].tolist()
            assert ev.histories.seq(k).tolist() == s[:-3].tolist() == train[u].tolist()
    held = v | t
    assert all(train[u].tolist() == inter.seq(int(u)).tolist() for u in train if u not in held)
    assert a.train.n_interactions == inter.n_interactions - 3 * len(held)
    c = playlist_continuation(inter, holdout=3, frac=0.6, seed=2)
    assert (
        c.valid.histories.user_ids.tolist() != a.valid.histories.user_ids.tolist()
        or c.test.histories.user_ids.tolist() != a.test.histories.user_ids.tolist()
    )


def test_reproduces_mql4grec_split(shared_data):
    d = shared_data / "amazon-mql4grec" / "Instruments"
    ds = load_amazon_lcrec(d)
    sp = leave_one_out(ds.interactions, max_history=50)
    ref = read_recbole_split(d)
    user_index = {u: k for k, u in enumerate(ds.interactions.user_ids.tolist())}
    # rows are ordered by user index 0..U-1; our user k is index k (ids are reviewer ids from user2id)
    for name, ev in (("valid", sp.valid), ("test", sp.test)):
        rows = ref[name]
        assert len(rows) == len(ev) == ds.interactions.n_users
        for k, (u, hist, target) in enumerate(rows):
            assert int(u) == k
            assert ev.histories.seq(k).tolist() == [int(x) for x in hist], (name, u)
            assert ev.targets.seq(k).tolist() == [int(target)], (name, u)
    # train.inter: for every train sequence t, the pairs (t[max(0,i-50):i], t[i]) for i = len(t)-1 .. 1
    expected = []
    for k in range(sp.train.n_users):
        t = sp.train.seq(k).tolist()
        expected += [
            (str(k), [str(x) for x in t[max(0, i - 50) : i]], str(t[i])) for i in range(len(t) - 1, 0, -1)
        ]
    assert ref["train"] == expected
    assert len(user_index) == 17_112
