"""Whole-network measurements: what every profile is validated (and calibrated) against.

Networks are random samples of a space with random pruning and precisions, built with untrained
weights (latency does not depend on their values), exported exactly as ``nasq best`` exports
(int8 QDQ where the target runs int8, simulated float elsewhere) and timed end to end with ONNX
Runtime, all networks round-robin so that machine noise hits them alike.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np


def sample_candidates(space, n: int, seed: int) -> list[dict]:
    return [space.sample(seed=seed * 100_003 + i) for i in range(n)]


def build_untrained(space, candidate: dict, seed: int):
    """The candidate's network, pruned and quantized, with observers set on random input."""
    import torch

    from nasq.data import Split
    from nasq.train import compress

    torch.manual_seed(seed)
    model = space.build(candidate)
    x = np.random.default_rng(seed).standard_normal((256, *space.input_shape)).astype(np.float32)
    compress(space, model, candidate, Split(x, np.zeros(len(x), np.int64)))
    return model.eval(), x


def measure_networks(space, candidates: Sequence[dict], profile, *, repetitions: int, seed: int = 0,
                     log: Callable[[str], None] = print) -> list[float]:
    """Median end-to-end latency (ms) of each candidate as exported for ``profile``'s target."""
    from nasq.export import EXPORTERS
    from nasq.ort import session, time_interleaved

    threads = int(profile.metadata.get("threads", 1))
    batch = int(profile.metadata.get("batch_size", 1))
    exporter = EXPORTERS.create("onnx")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, cand in enumerate(candidates):
            model, x = build_untrained(space, cand, seed + i)
            bits = {l.name: (l.w_bits, l.a_bits) for l in space.layers(cand)}
            path = Path(tmp) / f"net{i}.onnx"
            exporter.export(model, bits, profile, x, path)
            runs.append((session(path, threads=threads), {"input": x[:batch]}))
            if (i + 1) % 10 == 0 or i + 1 == len(candidates):
                log(f"exported {i + 1}/{len(candidates)} networks")
        return time_interleaved(runs, repetitions=repetitions, warmup=10)


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic) if len(a) > 2 else float("nan")


def error_summary(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    """Share within +-10% / +-20%, median and 90th-percentile relative error, Spearman."""
    errors = [abs(p - m) / m for p, m in zip(predicted, measured)]
    return {
        "networks": len(errors),
        "within_10pct": sum(e <= 0.10 for e in errors) / len(errors),
        "within_20pct": sum(e <= 0.20 for e in errors) / len(errors),
        "median_error": statistics.median(errors),
        "p90_error": float(np.quantile(errors, 0.9)),
        "spearman": spearman(predicted, measured),
    }


def format_summary(summary: dict[str, float]) -> str:
    rho = summary["spearman"]
    return (f"{summary['networks']} networks: {summary['within_10pct']:.0%} within +-10%, "
            f"{summary['within_20pct']:.0%} within +-20%, median error {summary['median_error']:.1%}, "
            f"p90 {summary['p90_error']:.1%}, Spearman {'n/a' if math.isnan(rho) else f'{rho:.3f}'}")


def validate_profile(path, *, networks: int, repetitions: int, seed: int, log: Callable[[str], None] = print) -> dict:
    """Measure ``networks`` new whole networks, compare with the profile's predictor (and with the
    plain table sum), and store the result as the profile's ``validation``."""
    import datetime as _dt

    from nasq.errors import NasqError
    from nasq.fileio import write_json_atomic
    from nasq.hardware_profiles import create_predictor
    from nasq.hardware_profiles.predictors import TablePredictor
    from nasq.hardware_profiles.profile import Profile
    from nasq.spaces import create_space

    profile = Profile.load(Path(path))
    if profile.metadata.get("runtime") != "onnxruntime":
        raise NasqError(f"target '{profile.name}' is not measured with onnxruntime ({profile.metadata.get('runtime')}); "
                        "there is nothing to measure it against here")
    if not profile.measured_here():
        raise NasqError(f"target '{profile.name}' is {profile.machine_mismatch()}; validate it on that machine")
    space = create_space(profile.metadata.get("space", "mobilenet-mnist"))
    candidates = sample_candidates(space, networks, seed=10_000 + seed)  # never the profiling seeds
    log(f"validating '{profile.name}' ({profile.predictor} predictor) on {networks} new networks of '{space.name}'")
    measured = measure_networks(space, candidates, profile, repetitions=repetitions, seed=seed, log=log)
    summaries = {}
    table_name = "table (isolated layers + boundaries + overhead)"
    for name, predictor in ((profile.predictor, create_predictor(profile)), (table_name, TablePredictor(profile))):
        summaries[name] = error_summary([predictor.predict(space.layers(c)).total_ms for c in candidates], measured)
        log(f"{name}: {format_summary(summaries[name])}")
        if profile.predictor == "table":
            break
    data = dict(profile.data)
    data["validation"] = {"predictor": profile.predictor, **summaries[profile.predictor],
                          "what": f"{networks} new random space samples (random pruning and precisions), "
                                  f"measured end to end, {repetitions} interleaved runs each",
                          "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    write_json_atomic(Path(path), data)
    log(f"stored the validation in {path}")
    return data["validation"]
