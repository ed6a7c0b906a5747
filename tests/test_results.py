
import pytest

from nasq.errors import NasqError
from nasq.search.results import ResultsTable, knee, pareto_front, plot_pareto, select_best


def row(cid, acc, lat, status="ok"):
    return {"cid": cid, "key": cid, "status": status, "reason": "", "accuracy": acc, "latency_ms": {"t": lat}}


ROWS = [row("a", 0.50, 1.0), row("b", 0.80, 2.0), row("c", 0.70, 3.0), row("d", 0.90, 5.0),
        row("e", 0.91, 9.0), row("f", 0.99, 0.5, status="failed"), row("g", 0.85, 4.0)]


def test_pareto_front_is_non_dominated_and_sorted():
    front = pareto_front(ROWS, "t")
    assert [r["cid"] for r in front] == ["a", "b", "g", "d", "e"]
    for r in ROWS:
        if r["status"] == "ok" and r not in front:
            assert any(f["accuracy"] >= r["accuracy"] and f["latency_ms"]["t"] <= r["latency_ms"]["t"] for f in front)


def test_knee_and_bounded_selection():
    front = pareto_front(ROWS, "t")
    assert knee(front, "t")["cid"] == "b"
    best, why = select_best(ROWS, "t", max_latency_ms=4.5)
    assert best["cid"] == "g" and "within" in why
    with pytest.raises(NasqError, match="fastest is 1"):
        select_best(ROWS, "t", max_latency_ms=0.1)
    with pytest.raises(NasqError, match="no successful"):
        select_best([row("x", 0.5, 1.0, status="failed")], "t")


def test_results_table_survives_a_torn_line_and_writes_csv(tmp_path):
    table = ResultsTable(tmp_path, ["t"])
    table.append(ROWS[0])
    table.append(ROWS[1])
    with open(table.path, "a") as fh:
        fh.write('{"cid": "torn", "acc')
    table.append({**ROWS[0], "accuracy": 0.55})  # same candidate again: the later row wins
    rows = {r["cid"]: r for r in table.rows()}
    assert set(rows) == {"a", "b"} and rows["a"]["accuracy"] == 0.55
    csv = (tmp_path / "results.csv").read_text().splitlines()
    assert csv[0].startswith("cid,key,status,reason,accuracy,latency_ms.t")
    assert len(csv) == 3


def test_pareto_plot_is_a_png(tmp_path):
    plot_pareto(ROWS, "t", tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp"))
