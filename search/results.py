"""The results table of a run, Pareto fronts per target, the choice of a best candidate, plots.

One row per evaluated candidate, in ``results.jsonl`` (append-only, the source of truth) and
``results.csv`` (rewritten atomically after each row)::

    cid, key, status ("ok" | "stopped" | "failed"), reason, score, accuracy, estimate, latency_ms.<target>...,
    cost_s, fidelity, params, macs, bitops, size_bytes, trial_id

``score`` is what the search maximized: the accuracy estimate's score (``estimate`` names it), equal
to ``accuracy`` (validation accuracy, pruned and quantized) for training-based estimates and a
ranking score, with ``accuracy`` empty, for zero-cost proxies and counts. ``fidelity`` is the share
of the configured training the score was measured at; a fidelity schedule (ASHA) stops candidates
early, and their rows are ``stopped``: kept and plotted, but outside Pareto fronts and `nasq best`,
since a score at a lower fidelity is not comparable. ``cost_s`` is what the candidate cost in all.
``infeasible`` lists the targets whose constraints (``constraints`` in the config) the candidate
breaks; it counts for none of them (fronts, plots, `nasq best`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nasq.errors import NasqError
from nasq.fileio import write_text_atomic

RESULTS_JSONL = "results.jsonl"
RESULTS_CSV = "results.csv"
BASE_COLUMNS = ["cid", "key", "status", "reason", "score", "accuracy", "estimate"]
TAIL_COLUMNS = ["cost_s", "fidelity", "infeasible", "params", "macs", "bitops", "size_bytes", "trial_id", "node"]


class ResultsTable:
    """Rows of one run directory, keyed by candidate id (a later row for the same id replaces it)."""

    def __init__(self, run_dir: Path | str, targets: Iterable[str]) -> None:
        self.run_dir = Path(run_dir)
        self.targets = list(targets)

    @property
    def path(self) -> Path:
        return self.run_dir / RESULTS_JSONL

    def rows(self) -> list[dict[str, Any]]:
        rows: dict[str, dict] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line torn by a kill mid-write
                    continue
                row.setdefault("score", row.get("accuracy"))  # rows written before scores existed
                rows[row["cid"]] = row
        return list(rows.values())

    def append(self, row: dict[str, Any]) -> None:
        with open(self.path, "a+b") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell():  # a line torn by a kill must not swallow this row
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")
            fh.write((json.dumps(row, sort_keys=True) + "\n").encode())
            fh.flush()
            os.fsync(fh.fileno())
        self.write_csv()

    def write_csv(self) -> None:
        columns = BASE_COLUMNS + [f"latency_ms.{t}" for t in self.targets] + TAIL_COLUMNS
        buf = io.StringIO()
        writer = csv.DictWriter(buf, columns, extrasaction="ignore")
        writer.writeheader()
        for row in self.rows():
            flat = {
                **row,
                **{f"latency_ms.{t}": row.get("latency_ms", {}).get(t) for t in self.targets},
                "infeasible": " ".join(row.get("infeasible", [])),
            }
            writer.writerow(flat)
        write_text_atomic(self.run_dir / RESULTS_CSV, buf.getvalue())


def ok_rows(rows: Iterable[dict], target: str) -> list[dict]:
    out = []
    for r in rows:
        lat = r.get("latency_ms", {}).get(target)
        if (
            r.get("status") == "ok"
            and lat is not None
            and math.isfinite(lat)
            and r.get("score") is not None
            and math.isfinite(r["score"])
            and target not in r.get("infeasible", ())
        ):
            out.append(r)
    return out


def pareto_front(rows: Iterable[dict], target: str) -> list[dict]:
    """Non-dominated rows (max score, min latency on ``target``), by increasing latency."""
    front: list[dict] = []
    for r in sorted(ok_rows(rows, target), key=lambda r: (r["latency_ms"][target], -r["score"])):
        if not front or r["score"] > front[-1]["score"]:
            front.append(r)
    return front


def knee(front: list[dict], target: str) -> dict:
    """The front point farthest above the line joining its extremes (normalized axes): the most accuracy
    for its latency against trading one for the other evenly. A point below that line is the worst trade-off
    there, never the knee; with none above it, the most accurate point."""
    if len(front) <= 2:
        return max(front, key=lambda r: r["score"])
    lat = [r["latency_ms"][target] for r in front]
    acc = [r["score"] for r in front]
    lspan, aspan = (max(lat) - min(lat)) or 1.0, (max(acc) - min(acc)) or 1.0
    pts = [((x - min(lat)) / lspan, (y - min(acc)) / aspan) for x, y in zip(lat, acc)]
    (x0, y0), (x1, y1) = pts[0], pts[-1]
    norm = math.hypot(x1 - x0, y1 - y0) or 1.0
    above = [((x1 - x0) * (y - y0) - (y1 - y0) * (x - x0)) / norm for x, y in pts]  # the extremes: 0
    return front[max(range(len(front)), key=lambda i: (above[i], front[i]["score"]))]


def select_best(
    rows: list[dict], target: str, max_latency_ms: float | None = None, min_accuracy: tuple[float, str] | None = None
) -> tuple[dict, str]:
    """The best-scored candidate within the latency bound, the fastest at or above ``min_accuracy`` (the bound, and
    what it is), or the knee of the front; and why it was chosen."""
    candidates = ok_rows(rows, target)
    if not candidates:
        breaking = sum(r.get("status") == "ok" and target in r.get("infeasible", ()) for r in rows)
        why = f" ({breaking} broke its constraints)" if breaking else ""
        raise NasqError(f"no successful candidate with a latency for target '{target}' in this run{why}")
    if min_accuracy is not None:
        floor, what = min_accuracy
        within = [r for r in candidates if r.get("accuracy") is not None and r["accuracy"] >= floor]
        if not within:
            top = max((r.get("accuracy") or 0.0) for r in candidates)
            raise NasqError(
                f"no candidate reached validation accuracy {floor:.4f} ({what}); the most accurate has {top:.4f}"
            )
        best = min(within, key=lambda r: (r["latency_ms"][target], -r["accuracy"]))
        return best, f"fastest with validation accuracy at least {floor:.4f} ({what})"
    if max_latency_ms is not None:
        within = [r for r in candidates if r["latency_ms"][target] <= max_latency_ms]
        if not within:
            fastest = min(r["latency_ms"][target] for r in candidates)
            raise NasqError(f"no candidate within {max_latency_ms} ms on '{target}'; the fastest is {fastest:.4g} ms")
        best = max(within, key=lambda r: (r["score"], -r["latency_ms"][target]))
        return best, f"best {estimate_label(rows)} within {max_latency_ms} ms"
    return knee(pareto_front(rows, target), target), f"knee of the {estimate_label(rows)}/latency Pareto front"


def confirmation_shortlist(
    rows: list[dict], target: str, floor: float, margin: float, limit: int, than: dict | None = None
) -> list[dict]:
    """Candidates that may meet an accuracy ``floor`` once fine-tuned longer than the search fine-tuned them: a
    search-time accuracy at least ``floor - margin``, faster than ``than`` (the one the search's accuracies pick),
    fastest first; at most ``limit``, spread over that range of latencies (the fastest and then every k-th)."""
    if limit <= 0:
        return []
    bound = than["latency_ms"][target] if than is not None else float("inf")
    near = sorted(
        (
            r
            for r in ok_rows(rows, target)
            if r.get("accuracy") is not None and r["accuracy"] >= floor - margin and r["latency_ms"][target] < bound
        ),
        key=lambda r: (r["latency_ms"][target], -r["accuracy"]),
    )
    if len(near) <= limit:
        return near
    step = len(near) / limit
    return [near[int(i * step)] for i in range(limit)]


def estimate_label(rows: Iterable[dict]) -> str:
    """What the rows' scores are: "accuracy" when every scored row measured it, else the estimates' names."""
    scored = [r for r in rows if r.get("score") is not None]
    if all(r.get("accuracy") is not None for r in scored):
        return "accuracy"
    return "/".join(sorted({str(r.get("estimate")) for r in scored})) + " score"


def score_text(row: dict) -> str:
    """A row's score for progress lines: ``acc=0.912`` or ``synflow=41.3``."""
    if row.get("accuracy") is not None:
        return f"acc={row['accuracy']:.3f}"
    return f"{row.get('estimate')}={row['score']:.4g}"


def target_file_stem(target: str) -> str:
    """A target as a file-name part: a profile path by its file's stem (``pareto_<stem>.png``), any character a
    file system could refuse replaced by ``_``."""
    if target.endswith(".json") or os.sep in target or (os.altsep and os.altsep in target):
        target = Path(target).stem
    return re.sub(r"[^A-Za-z0-9._-]", "_", target) or "target"


def pareto_plot_path(run_dir: Path, target: str) -> Path:
    return Path(run_dir) / f"pareto_{target_file_stem(target)}.png"


def plot_pareto(rows: list[dict], target: str, path: Path) -> None:
    """Scatter of all successful candidates with the front highlighted, written atomically (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = ok_rows(rows, target)
    front = pareto_front(rows, target)
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=110)
    ax.scatter(
        [r["latency_ms"][target] for r in pts],
        [r["score"] for r in pts],
        s=14,
        c="0.6",
        label=f"candidates ({len(pts)})",
    )
    stopped = [
        r
        for r in rows
        if r.get("status") == "stopped"
        and r.get("score") is not None
        and r.get("latency_ms", {}).get(target) is not None
    ]
    if stopped:
        ax.scatter(
            [r["latency_ms"][target] for r in stopped],
            [r["score"] for r in stopped],
            s=12,
            c="0.75",
            marker="x",
            label=f"stopped early, lower fidelity ({len(stopped)})",
        )
    ax.plot(
        [r["latency_ms"][target] for r in front],
        [r["score"] for r in front],
        "o-",
        c="tab:red",
        ms=5,
        label=f"Pareto front ({len(front)})",
    )
    ax.set_xlabel(f"predicted latency on {target} (ms)")
    label = estimate_label(pts)
    ax.set_ylabel("validation accuracy (pruned + quantized)" if label == "accuracy" else label)
    ax.set_title(f"nasq: {label} vs latency, {target}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    from nasq.fileio import write_bytes_atomic

    write_bytes_atomic(path, buf.getvalue())
