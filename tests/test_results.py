import pytest

from nasq.errors import NasqError
from nasq.search.results import (
    ResultsTable,
    confirmation_shortlist,
    knee,
    pareto_front,
    pareto_plot_path,
    plot_pareto,
    select_best,
)


def row(cid, acc, lat, status="ok"):
    return {
        "cid": cid,
        "key": cid,
        "status": status,
        "reason": "",
        "score": acc,
        "accuracy": acc,
        "latency_ms": {"t": lat},
    }


ROWS = [
    row("a", 0.50, 1.0),
    row("b", 0.80, 2.0),
    row("c", 0.70, 3.0),
    row("d", 0.90, 5.0),
    row("e", 0.91, 9.0),
    row("f", 0.99, 0.5, status="failed"),
    row("g", 0.85, 4.0),
]


def test_pareto_front_is_non_dominated_and_sorted():
    front = pareto_front(ROWS, "t")
    assert [r["cid"] for r in front] == ["a", "b", "g", "d", "e"]
    for r in ROWS:
        if r["status"] == "ok" and r not in front:
            assert any(f["score"] >= r["score"] and f["latency_ms"]["t"] <= r["latency_ms"]["t"] for f in front)


def test_knee_and_bounded_selection():
    front = pareto_front(ROWS, "t")
    assert knee(front, "t")["cid"] == "b"
    # the knee lies above the line joining the extremes: a point far below it is the worst trade-off there
    # (the quickstart's x86 front once chose one, twice the float point's latency for +0.003 accuracy)
    bowed = [row("a", 0.50, 1.0), row("p", 0.62, 2.0), row("q", 0.63, 8.0), row("d", 0.95, 10.0)]
    assert knee(pareto_front(bowed, "t"), "t")["cid"] == "p"
    assert knee(pareto_front([bowed[0], bowed[2], bowed[3]], "t"), "t")["cid"] == "d"  # none above: most accurate
    best, why = select_best(ROWS, "t", max_latency_ms=4.5)
    assert best["cid"] == "g" and "within" in why
    with pytest.raises(NasqError, match="fastest is 1"):
        select_best(ROWS, "t", max_latency_ms=0.1)
    with pytest.raises(NasqError, match="no successful"):
        select_best([row("x", 0.5, 1.0, status="failed")], "t")
    # within an accuracy bound (the original's less a drop): the fastest that reaches it, failed rows aside
    best, why = select_best(ROWS, "t", min_accuracy=(0.85, "the original's 0.86 less 1 point"))
    assert best["cid"] == "g" and "at least 0.8500 (the original's 0.86 less 1 point)" in why
    with pytest.raises(
        NasqError, match=r"no candidate reached validation accuracy 0.9500 \(x\); the most accurate has 0.9100"
    ):
        select_best(ROWS, "t", min_accuracy=(0.95, "x"))


def test_results_table_survives_a_torn_line_and_writes_csv(tmp_path):
    table = ResultsTable(tmp_path, ["t"])
    table.append(ROWS[0])
    table.append(ROWS[1])
    with open(table.path, "a") as fh:
        fh.write('{"cid": "torn", "acc')
    table.append({**ROWS[0], "score": 0.55, "accuracy": 0.55})  # same candidate again: the later row wins
    rows = {r["cid"]: r for r in table.rows()}
    assert set(rows) == {"a", "b"} and rows["a"]["accuracy"] == 0.55
    csv = (tmp_path / "results.csv").read_text().splitlines()
    assert csv[0].startswith("cid,key,status,reason,score,accuracy,estimate,latency_ms.t")
    assert len(csv) == 3


def test_pareto_plot_is_a_png(tmp_path):
    plot_pareto(ROWS, "t", tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp"))


def test_proxy_scored_rows_rank_by_score_and_say_so(tmp_path):
    from nasq.search.results import estimate_label, score_text

    rows = [
        {**row(c, None, lat), "score": s, "estimate": "synflow"}
        for c, s, lat in (("a", 10.0, 1.0), ("b", 30.0, 2.0), ("c", 20.0, 3.0))
    ]
    assert [r["cid"] for r in pareto_front(rows, "t")] == ["a", "b"]
    best, why = select_best(rows, "t", max_latency_ms=5.0)
    assert best["cid"] == "b" and why == "best synflow score within 5.0 ms"
    assert estimate_label(rows) == "synflow score" and score_text(rows[1]) == "synflow=30"
    assert estimate_label(ROWS) == "accuracy" and score_text(ROWS[0]) == "acc=0.500"
    plot_pareto(rows, "t", tmp_path / "p.png")
    # a row written before scores existed ranks by its accuracy
    table = ResultsTable(tmp_path, ["t"])
    old = {k: v for k, v in ROWS[1].items() if k != "score"}
    table.append(old)
    assert table.rows()[0]["score"] == 0.80


def test_best_report_says_when_a_baseline_beats_the_searched_model():
    """A baseline at least as accurate and faster than the retrieved model is named in the report, by
    measured latency when everything was measured, else by predicted latency."""
    from nasq.retrieve import dominating_baselines, render_markdown

    models = {
        "candidate": {"test_accuracy_onnxruntime": 0.904, "predicted_latency_ms": 0.105, "measured_latency_ms": 0.109},
        "float": {"test_accuracy_onnxruntime": 0.941, "predicted_latency_ms": 0.064, "measured_latency_ms": 0.068},
        "int8": {"test_accuracy_onnxruntime": 0.944, "predicted_latency_ms": 0.095, "measured_latency_ms": 0.111},
    }
    assert dominating_baselines(models) == ["float"]  # int8 is more accurate but measured slower
    models["int8"]["test_accuracy_onnxruntime"] = 0.90
    models["float"]["measured_latency_ms"] = None  # not all measured: predicted latencies decide
    assert dominating_baselines(models) == ["float"]
    models["float"]["predicted_latency_ms"] = 0.2
    assert dominating_baselines(models) == []

    models["float"].update(predicted_latency_ms=0.064, measured_latency_ms=0.068)
    report = {
        "target": "xeon-avx512-ort",
        "cid": "c",
        "chosen_because": "knee",
        "models": models,
        "dominated_by": dominating_baselines(models),
        "measurement": {"measured": True, "device": "cpu", "repetitions": 3, "threads": 1, "batch_size": 1},
        "layers": [],
        "simulated_note": "",
        "search": {"accuracy": 0.9, "score": 0.9},
        "fine_tune": {"train_epochs": 1, "finetune_epochs": 1},
    }
    text = render_markdown(report)
    assert "**The float baseline beats the searched model**: measured 0.0680 ms against 0.1090" in text
    assert "ship `model_float.onnx` instead" in text
    assert "uniform int8 baseline beats" not in text

    # an all-float searched model is its own float baseline: never said to be beaten by itself
    models["float"] = {**models["candidate"], "same_as": "candidate", "measured_latency_ms": 0.1089}
    assert dominating_baselines(models) == []
    report["models"], report["dominated_by"] = models, dominating_baselines(models)
    text = render_markdown(report)
    assert "| float baseline (the searched model itself) | 0.904 |" in text and "beats" not in text
    assert "| searched (all float, pruned) |" in text


def test_a_target_given_as_a_path_names_its_plot_by_the_file_stem(tmp_path):
    assert pareto_plot_path(tmp_path, "bitserial-sim") == tmp_path / "pareto_bitserial-sim.png"
    assert pareto_plot_path(tmp_path, "/home/me/profiles/my board.json") == tmp_path / "pareto_my_board.png"
    assert pareto_plot_path(tmp_path, "profiles/arm-tvm") == tmp_path / "pareto_arm-tvm.png"


def test_the_candidates_confirmed_by_a_full_fine_tune_are_faster_and_near_the_bound_fastest_first():
    def row(cid, acc, ms):
        return {"cid": cid, "status": "ok", "score": acc, "accuracy": acc, "latency_ms": {"t": ms}}

    rows = [
        row("pick", 0.975, 1.0),
        row("near", 0.962, 0.6),
        row("far", 0.90, 0.3),
        row("edge", 0.955, 0.5),
        row("slower", 0.99, 2.0),
        row("near2", 0.97, 0.8),
    ]
    picked, _ = select_best(rows, "t", min_accuracy=(0.974, "bound"))
    assert picked["cid"] == "pick"
    short = confirmation_shortlist(rows, "t", floor=0.974, margin=0.02, limit=5, than=picked)
    assert [r["cid"] for r in short] == ["edge", "near", "near2"]  # not "far" (too inaccurate), nor the slower
    assert [r["cid"] for r in confirmation_shortlist(rows, "t", 0.974, 0.02, 2, than=picked)] == ["edge", "near"]
    assert [r["cid"] for r in confirmation_shortlist(rows, "t", 0.974, 0.02, 0, than=picked)] == []
    everything = confirmation_shortlist(rows, "t", 0.974, 0.02, 10)  # no pick: every near one
    assert [r["cid"] for r in everything] == ["edge", "near", "near2", "pick", "slower"]
