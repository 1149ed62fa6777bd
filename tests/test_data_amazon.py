"""Amazon LC-Rec / MQL4GRec loader: alignment of item indices, item.json fields, code files, real data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from semid.data import load_amazon_lcrec, load_dataset
from semid.errors import DataError


def test_fixture_ids_sequences_fields(fixtures):
    ds = load_amazon_lcrec(fixtures / "amazon" / "Toy")
    cat, inter = ds.catalog, ds.interactions
    assert ds.name == "Toy"
    assert cat.n_items == 6  # item 5 is in item2id but never interacted: kept so indices stay aligned
    assert cat.item_ids[:2].tolist() == ["B000AAA000", "B000BBB111"]
    assert inter.user_ids.tolist() == ["AUSER0", "AUSER1", "AUSER2", "AUSER3"]
    assert inter.seq(2).tolist() == [3, 0, 1, 2, 4]
    f = cat.fields
    assert f["title"][0] == "Fender Guitar Strings"  # whitespace normalised
    assert f["brand"][1] is None  # empty string -> missing
    assert f["description"][1] == "Clip-on tuner. Bright display."
    assert f["categories"][0] == ["Musical Instruments", "Guitar Accessories", "Strings"]
    assert f["categories"][1] == ["Musical Instruments", "Tuners"]  # comma string
    assert f["categories"][2] == ["Musical Instruments", "Guitar Accessories", "Capos"]  # nested, deduped
    assert f["title"][3] == "Picks (12 pack)"  # keyed by ASIN
    assert f["categories"][3] is None and f["title"][4] is None and f["title"][5] is None


def test_fixture_code_files(fixtures):
    cat = load_amazon_lcrec(fixtures / "amazon" / "Toy").catalog
    assert set(cat.codes) == {"lemb", "vitemb"}
    lemb = cat.codes["lemb"]
    assert lemb.shape == (6, 3)
    assert lemb[0].tolist() == [1, 5, 0] and lemb[4].tolist() == [200, 7, 1]
    assert lemb[5].tolist() == [-1, -1, -1]  # item without codes
    # <a_k> tokens: max+1 rounded up to a power of two
    assert cat.code_sizes["lemb"] == [256, 8, 4]
    assert cat.code_sizes["vitemb"] == [4, 4]
    assert cat.field_coverage()["codes:lemb"] == pytest.approx(5 / 6)


def test_bad_inputs(fixtures, tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_amazon_lcrec(tmp_path / "missing")
    with pytest.raises(DataError, match="exactly one <D>.inter.json"):
        load_amazon_lcrec(tmp_path)
    (tmp_path / "X.inter.json").write_text('{"0": [0, 1],\n "1": [2, }')
    with pytest.raises(DataError, match=r"X.inter.json: not valid JSON at line 2"):
        load_amazon_lcrec(tmp_path)
    (tmp_path / "X.inter.json").write_text(json.dumps({"0": [0, 7]}))
    (tmp_path / "X.item2id").write_text("A\t0\nB\t1\n")
    with pytest.raises(DataError, match="item index 7 is not in"):
        load_amazon_lcrec(tmp_path)


def test_without_item2id_ids_are_indices(tmp_path):
    (tmp_path / "Y.inter.json").write_text(json.dumps({"1": [2, 0], "0": [1, 2, 3], "2": []}))
    ds = load_amazon_lcrec(tmp_path / "Y.inter.json")
    assert ds.catalog.item_ids.tolist() == ["0", "1", "2", "3"]
    assert ds.interactions.user_ids.tolist() == ["0", "1"]  # sorted by index, empty user dropped
    assert ds.interactions.seq(0).tolist() == [1, 2, 3]


def test_real_instruments_and_games(shared_data):
    d = shared_data / "amazon-lcrec"
    ds = load_dataset(d / "Instruments")
    assert (ds.interactions.n_users, ds.catalog.n_items, ds.interactions.n_interactions) == (
        24_772,
        9_922,
        206_153,
    )
    if (d / "Games").is_dir():
        g = load_amazon_lcrec(d / "Games")
        assert (g.interactions.n_users, g.catalog.n_items, g.interactions.n_interactions) == (
            50_546,
            16_859,
            452_989,
        )


def test_real_mql4grec_codes(shared_data):
    ds = load_amazon_lcrec(shared_data / "amazon-mql4grec" / "Instruments")
    assert (ds.interactions.n_users, ds.catalog.n_items, ds.interactions.n_interactions) == (
        17_112,
        6_250,
        136_226,
    )
    assert ds.catalog.code_sizes == {"lemb": [256] * 4, "vitemb": [256] * 4}
    assert ds.catalog.codes["lemb"][0].tolist() == [170, 224, 251, 151]
    assert len(np.unique(ds.catalog.codes["lemb"], axis=0)) == 5_988
    assert len(np.unique(ds.catalog.codes["vitemb"], axis=0)) == 6_250


# ----------------------------------------------------------------------------- boundary checks
@pytest.fixture
def toy(fixtures, tmp_path):
    import shutil

    d = tmp_path / "Toy"
    shutil.copytree(fixtures / "amazon" / "Toy", d)
    return d


def test_duplicate_user_keys_in_inter_json(toy, caplog):
    import logging

    (toy / "Toy.inter.json").write_text('{"0": [0, 1, 2], "1": [1, 2, 4], "0": [5], "2": [3, 0], "3": [2, 4]}')
    # before: json.load kept the last "0" silently and the first user's interactions were gone
    with pytest.raises(DataError, match=r"Toy.inter.json: 1 duplicate user keys \(0 x2\).*--data.duplicates"):
        load_amazon_lcrec(toy)
    assert load_amazon_lcrec(toy, duplicates="first").interactions.seq(0).tolist() == [0, 1, 2]
    with caplog.at_level(logging.WARNING):
        last = load_amazon_lcrec(toy, duplicates="last")
    assert last.interactions.seq(0).tolist() == [5] and last.interactions.n_users == 4
    assert "kept the last occurrence of each, dropped 1 rows" in caplog.text


def test_duplicate_asin_in_item2id_names_file_and_id(toy):
    text = (toy / "Toy.item2id").read_text()
    (toy / "Toy.item2id").write_text(text.replace("B000CCC222", "B000AAA000"))
    # before: "Catalog.item_ids contains duplicates" without the file or the id
    with pytest.raises(DataError, match=r"Toy.item2id: 1 duplicate ASINs \('B000AAA000' x2\); e.g. 'B000AAA000' "
                                        r"is at indices \[0, 2\]"):
        load_amazon_lcrec(toy)
    with pytest.raises(DataError, match="Toy.item2id: 1 duplicate ASINs"):  # no policy can drop a positional row
        load_amazon_lcrec(toy, duplicates="first")


def test_duplicate_reviewer_in_user2id(toy):
    text = (toy / "Toy.user2id").read_text()
    (toy / "Toy.user2id").write_text(text.replace("AUSER1", "AUSER0"))
    with pytest.raises(DataError, match=r"Toy.user2id: 1 duplicate reviewer ids \('AUSER0' x2\)"):
        load_amazon_lcrec(toy)
    ds = load_amazon_lcrec(toy, duplicates="first")
    assert ds.interactions.user_ids.tolist() == ["AUSER0", "AUSER2", "AUSER3"]
    assert ds.interactions.seq(0).tolist() == [0, 1, 2, 3]


def test_item_json_entry_given_twice(toy):
    (toy / "Toy.item.json").write_text('{"0": {"title": "A"}, "B000AAA000": {"title": "B"}}')
    with pytest.raises(DataError, match=r"Toy.item.json: 1 duplicate item entries \(by index\) \(0 x2\)"):
        load_amazon_lcrec(toy)
    assert load_amazon_lcrec(toy, duplicates="last").catalog.fields["title"][0] == "B"


def test_empty_inter_json(toy):
    (toy / "Toy.inter.json").write_text("{}")
    with pytest.raises(DataError, match="Toy.inter.json: no users"):
        load_amazon_lcrec(toy)
