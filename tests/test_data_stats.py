"""dataset_stats numbers and the rich table."""

from __future__ import annotations

import pytest

from semid.data import dataset_stats, load_amazon_lcrec, render_stats


def test_stats_on_fixture(fixtures):
    ds = load_amazon_lcrec(fixtures / "amazon" / "Toy")
    s = dataset_stats(ds)
    assert (s["users"], s["items"], s["interactions"], s["items_with_interactions"]) == (4, 6, 15, 5)
    assert s["density"] == 15 / 24
    assert s["seq_len"] == pytest.approx({"min": 3, "mean": 3.75, "median": 3.5, "p90": 4.7, "max": 5})
    assert s["coverage"]["title"] == 4 / 6 and s["coverage"]["codes:vitemb"] == 1.0
    table = render_stats(s)
    assert table.row_count == 6 + len(s["coverage"])
    from rich.console import Console

    console = Console(record=True, width=100)
    console.print(table)
    assert "coverage title" in console.export_text()
