"""Whole-network measurements: what every profile is validated and calibrated against, and how predictions are
scored against them.

Networks are random samples of a space with random pruning and precisions, built with untrained
weights (latency does not depend on their values), exported exactly as ``nasq best`` exports
(int8 QDQ where the target runs int8, simulated float elsewhere) and timed end to end on the
profile's backend, all networks round-robin so that machine noise hits them alike. Beside them, some
of the networks the profile was calibrated on: how far the machine's speed moved since."""

from __future__ import annotations

import math
import statistics
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


def sample_candidates(space, n: int, seed: int) -> list[dict]:
    """Random architectures with random pruning; a third keep random per-layer bit-widths, a third are
    all float and a third all 8-bit: the uniform networks are what `nasq best` compares every result
    with (and what searches start from), so the predictor must be right on them too."""
    from nasq.spaces.base import with_uniform_bits

    out = []
    for i in range(n):
        cand = space.sample(seed=seed * 100_003 + i)
        out.append(cand if i % 3 == 0 else with_uniform_bits(cand, 32 if i % 3 == 1 else 8, space))
    return out


def backend_for(profile):
    """The profiler backend that measured ``profile``, set up to measure whole networks like it did."""
    from nasq.errors import NasqError
    from nasq.hardware_profiles.registries import PROFILERS

    runtime = profile.metadata.get("runtime")
    backends = [PROFILERS.get(n) for n in PROFILERS.names()]
    measuring = [b for b in backends if b.capabilities.runs_networks]
    made_by = [b for b in measuring if b.capabilities.runtime == runtime]
    if not made_by:
        raise NasqError(
            f"target '{profile.name}' comes from {runtime!r}, not from a backend that runs networks "
            f"({', '.join(b.capabilities.runtime for b in measuring)}); there is nothing to measure it against"
        )
    return made_by[0].for_profile(profile.metadata)


def measure_networks(
    space,
    candidates: Sequence[dict],
    profile,
    *,
    repetitions: int,
    seed: int = 0,
    log: Callable[[str], None] = print,
    backend=None,
    min_seconds: float = 0.0,
):
    """Each candidate as exported for ``profile``'s target, measured end to end by ``backend`` (default: the
    backend that measured the profile): a :class:`nasq.hardware_profiles.profiler.Measurement`."""
    backend = backend or backend_for(profile)
    models, feeds = export_networks(space, candidates, profile, seed=seed, log=log)
    return backend.measure_models(models, feeds, repetitions=repetitions, min_seconds=min_seconds)


def export_networks(
    space, candidates: Sequence[dict], profile, *, seed: int = 0, log: Callable[[str], None] = print
) -> tuple[list[bytes], list[dict]]:
    """The candidates' untrained networks exported for ``profile``'s target (ONNX bytes), with their feeds."""
    from nasq.export import EXPORTERS
    from nasq.predict import build_untrained

    batch = int(profile.metadata.get("batch_size", 1))
    exporter = EXPORTERS.create("onnx")
    models, feeds = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, cand in enumerate(candidates):
            model, x = build_untrained(space, cand, seed + i)
            bits = {l.name: (l.w_bits, l.a_bits) for l in space.layers(cand)}
            path = Path(tmp) / f"net{i}.onnx"
            exporter.export(model, bits, profile, x, path)
            models.append(path.read_bytes())
            feeds.append({"input": x[:batch]})
            if (i + 1) % 10 == 0 or i + 1 == len(candidates):
                log(f"exported {i + 1}/{len(candidates)} networks")
    return models, feeds


def drift_anchors(space, profile, anchors: int = 12) -> tuple[list[dict], list[float]]:
    """Up to ``anchors`` of the networks ``profile`` was calibrated on, with their profiling-time latencies
    (none for a profile without stored calibration measurements, or of another space)."""
    selection = profile.data.get("predictor_selection", {})
    then = selection.get("measured_ms") or []
    if not then or profile.metadata.get("space", space.name) != space.name:
        return [], []
    again = sample_candidates(space, len(then), seed=selection["networks_seed"])[:anchors]
    return again, list(then[: len(again)])


def drift_summary(now: Sequence[float], then: Sequence[float], measurement=None) -> dict:
    """Ratios of the anchors' latencies now to then; with the ``measurement`` they come from, the speed of the
    profile's reference layer timed in the same rounds, when it was, and the measurement's own noise."""
    ratios = [a / b for a, b in zip(now, then)]
    drift = {
        "networks": len(ratios),
        "median_ratio": round(statistics.median(ratios), 4),
        "min_ratio": round(min(ratios), 4),
        "max_ratio": round(max(ratios), 4),
    }
    if measurement is not None and measurement.speed:
        drift["reference_speed"] = round(measurement.speed, 4)
    if measurement is not None and measurement.spread:
        drift["spread"] = measurement.spread  # the run's own noise: see nasq.ort.window_spread
    return drift


def at_reference_speed(measurement) -> list[float]:
    """A ``measurement``'s latencies at the speed its reference layer was scaled to, gauged round by round like
    the profile's layers (:func:`nasq.ort.gauged_medians`); as measured where no reference was timed."""
    from nasq.ort import gauged_medians

    if measurement.reference is None:
        return measurement.latency_ms
    return gauged_medians(measurement.samples, measurement.reference, measurement.reference_ms)


def at_profile_speed(measurement, count: int, then: Sequence[float] = ()) -> list[float] | None:
    """The first ``count`` latencies of a ``measurement`` at the profile's speed, gauged round by
    round (:func:`nasq.ort.gauged_medians`): by the profile's calibration networks when ``then`` gives their
    profiling-time latencies (measured last, before the reference: the median of their ratios in each round), else
    by the reference layer the profile is scaled to. None where no reference was timed.

    Gauge a network with what runs like it. The space's small networks are mostly per-call and per-layer overhead,
    which a slow spell slows more than a conv; real topologies are mostly convs. ``benchmarks/measurement_gauges.py``
    compares the gauges from run to run (docs/benchmarks.md): the calibration networks hold the space's networks
    steadiest, the reference layer the real topologies.
    """
    from nasq.ort import gauged_medians

    samples, reference = measurement.samples, measurement.reference
    if not samples or reference is None:
        return None
    if then:
        return gauged_medians(samples[:count], anchor_gauge(samples[len(samples) - len(then) :], then))
    return gauged_medians(samples[:count], reference, measurement.reference_ms)


def anchor_gauge(anchors: Sequence[Sequence[float]], then: Sequence[float]) -> list[float]:
    """The machine's speed in each round by a profile's calibration networks: the median over them of their time in
    the round (``anchors``, round by round) over their profiling-time latency (``then``)."""
    return np.median([np.asarray(a, float) / t for a, t in zip(anchors, then)], axis=0).tolist()


def format_spread(spread: dict | None) -> str:
    """One line on a run's own noise (``drift["spread"]``), or '' without one."""
    if not spread:
        return ""
    text = (
        f"the same network measured in {spread['windows']} consecutive parts of this run: medians "
        f"{spread['median']:.1%} apart (median over the networks; 90th percentile {spread['p90']:.1%})"
    )
    gauged = spread.get("over_reference")
    if gauged:
        text += (
            f", {gauged['median']:.1%} ({gauged['p90']:.1%}) as ratios to the reference layer timed in the same rounds"
        )
    return text


def measure_with_drift(
    space,
    candidates: Sequence[dict],
    profile,
    *,
    repetitions: int,
    seed: int = 0,
    log: Callable[[str], None] = print,
    backend=None,
    anchors: int = 12,
    min_seconds: float = 0.0,
):
    """Measure ``candidates`` and, in the same interleaved run, up to ``anchors`` of the networks the
    profile was calibrated on. Returns (latencies of the candidates, drift, the whole measurement): drift is None
    for a profile without stored calibration measurements, else how much slower (>1) or faster the machine runs
    those networks now than at profiling time (median ratio, and its range). Every prediction's error moves
    by that much; the ratio separates the predictor's error from the machine's."""
    again, then = drift_anchors(space, profile, anchors)
    backend = backend or backend_for(profile)
    measurement = measure_networks(
        space,
        list(candidates) + again,
        profile,
        repetitions=repetitions,
        seed=seed,
        log=log,
        backend=backend,
        min_seconds=min_seconds,
    )
    measured = measurement.latency_ms
    if not again:
        return measured, None, measurement
    return measured[: len(candidates)], drift_summary(measured[len(candidates) :], then, measurement), measurement


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
    return (
        f"{summary['networks']} networks: {summary['within_10pct']:.0%} within +-10%, "
        f"{summary['within_20pct']:.0%} within +-20%, median error {summary['median_error']:.1%}, "
        f"p90 {summary['p90_error']:.1%}, Spearman {'n/a' if math.isnan(rho) else f'{rho:.3f}'}"
    )


#: real topologies validated by default: under 5 G MACs, so a run takes seconds, not minutes
VALIDATION_TOPOLOGIES = ("squeezenet", "shufflenet", "inception_v1", "densenet121", "resnet50")


def real_topology_models(
    profile,
    names: Sequence[str] = VALIDATION_TOPOLOGIES,
    *,
    int8: Sequence[str] = ("squeezenet", "resnet50"),
    seed: int = 0,
) -> dict[str, object]:
    """The onnx wheel's real topologies as ModelProtos, float, plus int8 QDQ versions of ``int8`` (quantized
    with ORT's tools on random calibration input) when the target runs int8."""
    from nasq.ort import quantized_qdq
    from nasq.predict import prepared_model, real_topology

    models = {}
    for name in names:
        models[name], _ = prepared_model(real_topology(name))
    if profile.int8:
        for name in int8:
            inp = _input_of(models[name])
            rng = np.random.default_rng(seed)
            models[f"{name} int8"] = quantized_qdq(
                models[name], [{inp[0]: rng.standard_normal(inp[1]).astype(np.float32)} for _ in range(2)]
            )
    return models


def serialized_with_feeds(models) -> tuple[list[bytes], list[dict]]:
    """ONNX ModelProtos as bytes, each with a seeded random feed of its input, as the backends measure them."""
    blobs, feeds = [], []
    for model in models:
        name, shape = _input_of(model)
        blobs.append(model.SerializeToString())
        feeds.append({name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)})
    return blobs, feeds


def _input_of(model) -> tuple[str, list[int]]:
    inits = {t.name for t in model.graph.initializer}
    inp = next(i for i in model.graph.input if i.name not in inits)
    return inp.name, [d.dim_value or 1 for d in inp.type.tensor_type.shape.dim]


def measure_models(
    models: dict[str, object], profile, *, repetitions: int, backend=None, min_seconds: float = 0.0
) -> dict[str, float]:
    """Median latency (ms) of ONNX models (ModelProtos), interleaved (for at least ``min_seconds``), on
    ``profile``'s backend."""
    return measure_models_with_drift(
        models, profile, None, repetitions=repetitions, backend=backend, min_seconds=min_seconds
    )[0]


def measure_models_with_drift(
    models: dict[str, object],
    profile,
    space,
    *,
    repetitions: int,
    backend=None,
    min_seconds: float = 0.0,
    log: Callable[[str], None] = print,
):
    """:func:`measure_models` with up to 12 of the profile's calibration networks of ``space`` timed in the same
    interleaved rounds (see :func:`measure_with_drift`): (latencies by name, drift or None, the whole measurement). Real topologies
    run for seconds, and the machine can change speed between that run and any other."""
    backend = backend or backend_for(profile)
    blobs, feeds = serialized_with_feeds(models.values())
    again, then = drift_anchors(space, profile) if space is not None else ([], [])
    if again:
        anchor_blobs, anchor_feeds = export_networks(space, again, profile, log=log)
        blobs, feeds = blobs + anchor_blobs, feeds + anchor_feeds
    measurement = backend.measure_models(blobs, feeds, repetitions=repetitions, min_seconds=min_seconds)
    times = measurement.latency_ms
    measured = dict(zip(models, times))
    if not again:
        return measured, None, measurement
    return measured, drift_summary(times[len(models) :], then, measurement), measurement
