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


def anchor_gauge(anchors: Sequence[Sequence[float]], then: Sequence[float]) -> np.ndarray:
    """The machine's speed in each round by a profile's calibration networks: the median over them of their time in
    the round (``anchors``, round by round) over their profiling-time latency (``then``)."""
    return np.median([np.asarray(a, float) / t for a, t in zip(anchors, then)], axis=0)


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


def out_of_fold(
    parts: Sequence,
    measured: Sequence[float],
    fit: Callable,
    apply: Callable,
    folds: int,
    groups: Sequence[int] | None = None,
) -> list[float]:
    """Each network's calibrated prediction from a calibration fitted without its fold (``fit(parts, measured)`` and
    ``apply(calibration, part)``), network i in fold i mod ``folds``, or in fold ``groups[i]`` when given."""
    groups = list(groups) if groups is not None else [i % folds for i in range(len(parts))]
    predicted = [0.0] * len(parts)
    for fold in sorted(set(groups)):
        test = {i for i, g in enumerate(groups) if g == fold}
        cal = fit(
            [p for i, p in enumerate(parts) if i not in test], [m for i, m in enumerate(measured) if i not in test]
        )
        for i in test:
            predicted[i] = apply(cal, parts[i])
    return predicted


def calibrate_and_select(
    backend,
    data: dict,
    space_name: str,
    n: int,
    *,
    repetitions: int,
    seed: int,
    log: Callable[[str], None] = print,
    folds: int = 5,
    min_seconds: float = 0.0,
) -> None:
    """Measure 2n whole networks with ``backend``; score the table, its end-to-end calibration (out of
    fold, by k-fold cross-validation) and, when the profile has a per-kernel regressor, the regressor and
    its own calibration (out of fold too) on all of them; keep the predictor with the largest share within
    +-10% (then the lowest median error), and fit the final calibrations on all 2n. Stores ``calibration``
    (``regressor_calibration``), ``predictor``, ``predictor_selection`` and ``validation`` in ``data``."""
    from nasq.hardware_profiles.predictors import (
        KernelRegressorPredictor,
        TablePredictor,
        apply_calibration,
        fit_calibration,
    )
    from nasq.hardware_profiles.profile import Profile
    from nasq.spaces import create_space

    space = create_space(space_name)
    networks = sample_candidates(space, 2 * n, seed=2 * seed + 1)
    log(f"measuring {2 * n} whole networks for calibration and predictor choice ({folds}-fold)")
    profile = Profile.from_dict(data, "profile being measured")
    measured = at_reference_speed(
        measure_networks(
            space,
            networks,
            profile,
            repetitions=repetitions,
            seed=seed,
            log=log,
            backend=backend,
            min_seconds=min_seconds,
        )
    )
    bases = {"calibrated": TablePredictor(profile)}
    if "kernel_model" in data:
        bases["calibrated-regressor"] = KernelRegressorPredictor(profile)
    summaries, calibrations = {}, {}
    for name, base in bases.items():
        parts = [base.predict(space.layers(c)) for c in networks]
        uncalibrated = "table" if name == "calibrated" else "kernel-regressor"
        summaries[uncalibrated] = error_summary([p.total_ms for p in parts], measured)
        summaries[name] = error_summary(
            out_of_fold(parts, measured, fit_calibration, apply_calibration, folds), measured
        )
        calibrations[name] = fit_calibration(parts, measured)
    for pred_name, summary in summaries.items():
        log(f"{pred_name}: {format_summary(summary)}")
    data["calibration"] = calibrations["calibrated"]
    if "calibrated-regressor" in calibrations:
        data["regressor_calibration"] = calibrations["calibrated-regressor"]
    # the share within +-10% is what a user is promised; the median error breaks ties
    chosen = max(summaries, key=lambda k: (summaries[k]["within_10pct"], -summaries[k]["median_error"]))
    data["predictor"] = chosen
    data["predictor_selection"] = {
        "chosen": chosen,
        "method": f"{folds}-fold cross-validation on {len(networks)} measured networks",
        "scores": summaries,
        "networks_seed": 2 * seed + 1,
        "measured_ms": [round(m, 5) for m in measured],
    }
    data["validation"] = {
        "predictor": chosen,
        **summaries[chosen],
        "what": f"{len(networks)} random space "
        "samples (random pruning; a third each with random per-layer bits, all float, all "
        "8-bit) measured end to end at profiling time; "
        f"the calibration scored out of fold ({folds}-fold)",
        "date": data["metadata"]["date"],
    }
    log(f"chose predictor '{chosen}'")


#: seeds of the block networks a profile's ONNX pricing is calibrated on start here (the benchmark's held-out
#: block networks use 30_000)
BLOCK_CALIBRATION_SEED = 20_000


def calibrate_onnx_pricing(
    backend,
    data: dict,
    n: int,
    *,
    repetitions: int,
    seed: int,
    min_seconds: float = 0.0,
    log: Callable[[str], None] = print,
    folds: int = 5,
    earlier: Sequence[dict] = (),
) -> None:
    """Measure ``n`` random networks of real topologies' blocks (:mod:`nasq.hardware_profiles.block_networks`, a third
    int8) with ``backend`` and fit, for the table's and the per-kernel regressor's kernel prices, how the float
    layers, int8 layers and other kernels add up in them (:func:`nasq.kernel_pricing.fit_kernel_calibration`),
    scored out of fold. Stores ``kernel_calibration`` in ``data``; the calibrated predictors apply it to ONNX models.
    ``earlier``: batches measured before (``kernel_calibration["batches"]``), fitted on together with this one and
    each also scored by a fit on the other batches only (how well one hour's fit prices another hour's networks).

    Kernel prices come from layers and ops measured alone or in small sandwiches; in a whole network they run a few
    percent faster or slower, by kind (docs/benchmarks.md lists a fresh profile's weights), and a profile built while
    the machine was disturbed misprices some kinds more. A shared machine also moves kinds unevenly from hour to hour
    (float and int8 networks by different factors), which batches measured at several times average out. Fitted on these networks, never on the real
    topologies that ``nasq profile validate`` then scores it on."""
    import datetime as _dt

    from nasq.hardware_profiles.block_networks import block_networks
    from nasq.hardware_profiles.profile import Profile
    from nasq.kernel_pricing import apply_kernel_calibration, fit_kernel_calibration, prices_kernels
    from nasq.predict import predict_model

    profile = Profile.from_dict(data, "profile being measured")
    if not prices_kernels(profile) or n < 2:  # (out of fold needs two networks at least)
        return
    log(f"measuring {n} networks of real topologies' blocks to calibrate the pricing of ONNX models")
    now = list(block_networks(n, seed=BLOCK_CALIBRATION_SEED + seed).values())
    blobs, feeds = serialized_with_feeds(now)
    measured = at_reference_speed(
        backend.measure_models(blobs, feeds, repetitions=repetitions, min_seconds=min_seconds)
    )
    batches = [
        *earlier,
        {
            "networks_seed": BLOCK_CALIBRATION_SEED + seed,
            "networks": n,
            "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "measured_ms": [round(m, 5) for m in measured],
        },
    ]
    models, measured, batch_of = [], [], []
    for i, batch in enumerate(batches):  # the earlier batches' networks built again from their seeds
        models += now if i == len(earlier) else block_networks(batch["networks"], seed=batch["networks_seed"]).values()
        measured += batch["measured_ms"]
        batch_of += [i] * batch["networks"]
    total, folds = len(models), min(folds, len(models))
    overhead = float(data["overhead_ms"])
    bases = ["table"] + (["kernel-regressor"] if "kernel_model" in data else [])
    fits, scores = {}, {}
    for base in bases:
        priced = [predict_model(m, profile, predictor=base, pricing="kernels") for m in models]
        parts = [p["parts"] for p in priced]
        fits[base] = fit_kernel_calibration(parts, measured, overhead)
        scores[base] = error_summary([p["latency_ms"] for p in priced], measured)
        for name, groups in ((f"{base}, calibrated", None), (f"{base}, calibrated on the other batches", batch_of)):
            if groups is None or len(batches) > 1:
                scores[name] = error_summary(
                    out_of_fold(
                        parts,
                        measured,
                        lambda x, y: fit_kernel_calibration(x, y, overhead),
                        lambda cal, x: apply_kernel_calibration(cal, overhead, x),
                        folds,
                        groups,
                    ),
                    measured,
                )
        log(
            f"block networks, {base} kernel prices: {format_summary(scores[base])}; calibrated (out of fold): "
            f"{format_summary(scores[f'{base}, calibrated'])}"
        )
        if len(batches) > 1:
            log(
                f"  each batch by a fit on the other {len(batches) - 1}: "
                f"{format_summary(scores[f'{base}, calibrated on the other batches'])}"
            )
    data["kernel_calibration"] = {
        "fits": fits,
        "networks": total,
        "networks_seed": batches[-1]["networks_seed"],
        "scores": scores,
        "date": batches[-1]["date"],
        "batches": batches,
        "what": f"{total} random networks of real topologies' blocks (a third int8 QDQ) in {len(batches)} batch(es) "
        "measured at different times, each measured end to end, interleaved, at the profile's speed (gauged "
        f"round by round by its reference layer); calibrated scores out of fold ({folds}-fold, and with more "
        "than one batch each batch by a fit on the others)",
    }
    select_onnx_predictor(data, log)


#: the predictors for ONNX models, each with the kernel calibration scores that hold it out: the kernel prices
#: alone are fitted on none of the block networks, the calibrated ones are scored out of fold
ONNX_PREDICTORS = {
    "table": "table",
    "calibrated": "table, calibrated",
    "kernel-regressor": "kernel-regressor",
    "calibrated-regressor": "kernel-regressor, calibrated",
}


def select_onnx_predictor(data: dict, log: Callable[[str], None] = print) -> None:
    """Choose the profile's predictor for ONNX models (``onnx_predictor``, what ``nasq predict`` uses) on its
    block networks, each priced by a fit that did not see it: a calibrated predictor by a fit on the other batches
    when there are several (a fit from another hour, as a user meets it), else out of fold. The largest share
    within +-10% wins, then the lowest median error; the real topologies that ``nasq profile validate`` measures
    are then held out from the choice. Stores ``onnx_predictor`` and ``onnx_predictor_selection``."""
    from nasq.hardware_profiles.profile import Profile

    scores = data["kernel_calibration"]["scores"]
    profile = Profile.from_dict(data, "profile being measured")
    held_out = {}
    for name, key in ONNX_PREDICTORS.items():
        key = f"{key} on the other batches" if f"{key} on the other batches" in scores else key
        if key in scores and _loads_as(profile, name):
            held_out[name] = {**scores[key], "scored_as": key}
    if not held_out:
        return
    chosen = max(held_out, key=lambda k: (held_out[k]["within_10pct"], -held_out[k]["median_error"]))
    networks = data["kernel_calibration"]["networks"]
    data["onnx_predictor"] = chosen
    data["onnx_predictor_selection"] = {
        "chosen": chosen,
        "scores": held_out,
        "method": f"{networks} block networks, each priced by a fit that did not see it (scored_as: the kernel "
        "calibration score used); largest share within +-10%, then lowest median error",
    }
    log(
        f"chose the '{chosen}' predictor for ONNX models; block networks by {held_out[chosen]['scored_as']}: "
        f"{format_summary(held_out[chosen])}"
    )


def calibration_batches(kernel_calibration: dict | None) -> list[dict]:
    """The batches of block networks a profile's ONNX pricing calibration was fitted on (one, for profiles from
    before batches were stored: its networks, seed, date and measurements)."""
    from nasq.errors import NasqError

    if not kernel_calibration:
        return []
    if "batches" in kernel_calibration:
        batches = kernel_calibration["batches"]
    elif "measured_ms" in kernel_calibration:
        batches = [{key: kernel_calibration.get(key) for key in ("networks_seed", "networks", "date", "measured_ms")}]
    else:
        return []
    for i, batch in enumerate(batches if isinstance(batches, list) else [None]):
        measured = batch.get("measured_ms") if isinstance(batch, dict) else None
        if not (
            isinstance(measured, list)
            and isinstance(batch.get("networks_seed"), int)
            and batch.get("networks") == len(measured) > 0
            and all(isinstance(m, (int, float)) and m > 0 for m in measured)
        ):
            raise NasqError(
                f"kernel_calibration.batches[{i}] is malformed: each batch needs an integer networks_seed, "
                "networks > 0 and as many positive measured_ms"
            )
    return list(batches)


def recalibrate_onnx_pricing(
    path, *, networks: int, seed: int, min_seconds: float = 30.0, add: bool = False, log: Callable[[str], None] = print
) -> dict:
    """Fit a profile's calibration for ONNX models (:func:`calibrate_onnx_pricing`) again, on block networks measured
    now, at the profile's speed, on the machine it describes; written in place (a profile measured before nasq fitted
    one gains it). With ``add``, on those and the batches it was fitted on before (a seed already measured moves to
    the next free one). It chooses the predictor for ONNX models again on them (:func:`select_onnx_predictor`)."""
    from nasq.errors import NasqError
    from nasq.fileio import write_json_atomic
    from nasq.hardware_profiles.profile import Profile
    from nasq.kernel_pricing import prices_kernels

    profile = Profile.load(Path(path))
    if not prices_kernels(profile):
        raise NasqError(
            f"target '{profile.name}' has no measured ONNX Runtime kernel costs: there are no kernel prices "
            "to calibrate (only profiles measured with `--backend onnxruntime` by this nasq version have them)"
        )
    if not profile.measurable():
        raise NasqError(f"target '{profile.name}' is {profile.machine_mismatch()}; calibrate it on that machine")
    data = dict(profile.data)
    earlier = calibration_batches(data.get("kernel_calibration")) if add else []
    used = {batch["networks_seed"] - BLOCK_CALIBRATION_SEED for batch in earlier}
    if seed in used:
        free = next(s for s in range(seed, seed + len(used) + 1) if s not in used)
        log(f"networks of seed {seed} were measured already for this calibration; measuring seed {free}")
        seed = free
    calibrate_onnx_pricing(
        backend_for(profile),
        data,
        networks,
        repetitions=10,
        seed=seed,
        min_seconds=min_seconds,
        log=log,
        earlier=earlier,
    )
    Profile.from_dict(data, str(path))  # never write a profile that would not load
    write_json_atomic(Path(path), data)
    log(f"stored the calibration in {path}")
    return data["kernel_calibration"]


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


def validate_real_topologies(
    profile,
    names: Sequence[str] = VALIDATION_TOPOLOGIES,
    *,
    repetitions: int = 10,
    log: Callable[[str], None] = print,
    backend=None,
    min_seconds: float = 0.0,
    space=None,
) -> dict:
    """Real topologies measured (with the drift of ``space``'s calibration networks in the same run, when given)
    and priced by each predictor that the profile loads as; the one with the lowest mean |log error| (drift
    divided out) becomes the profile's predictor for ONNX models."""
    from nasq.predict import predict_model

    models = real_topology_models(profile, names, int8=[n for n in ("squeezenet", "resnet50") if n in names])
    log(f"measuring {len(models)} real topologies: {', '.join(models)}")
    backend = backend or backend_for(profile)
    measured, drift, measurement = measure_models_with_drift(
        models, profile, space, repetitions=repetitions, backend=backend, min_seconds=min_seconds, log=log
    )
    gauged = at_profile_speed(measurement, len(models))
    gauged = dict(zip(models, gauged)) if gauged else None
    candidates = [
        n for n in ("table", "calibrated", "kernel-regressor", "calibrated-regressor") if _loads_as(profile, n)
    ] or [profile.predictor]
    scores, predicted, at_speed = {}, {}, {}
    for pred_name in candidates:
        predicted[pred_name] = {
            n: predict_model(m, profile, predictor=pred_name)["latency_ms"] for n, m in models.items()
        }
        scores[pred_name] = error_summary([predicted[pred_name][n] for n in models], [measured[n] for n in models])
        log(f"real topologies, {pred_name}: {format_summary(scores[pred_name])}")
        if gauged:
            at_speed[pred_name] = error_summary([predicted[pred_name][n] for n in models], [gauged[n] for n in models])
            log(
                f"  at the profile's speed (every round gauged by its reference layer): "
                f"{format_summary(at_speed[pred_name])}"
            )
    # a profile that chose its predictor for ONNX models on block networks (ONNX Runtime): these are held out.
    # Else few, very different models: choose by the mean |log(predicted / measured)|, which a single 5x miss
    # dominates as it should (a median over 7 ignores the worst 3); at the profile's speed, gauged round by round
    # when the backend times a reference, else at the machine's speed of this run
    ratio = drift["median_ratio"] if drift else 1.0
    target = gauged or {n: measured[n] / ratio for n in models}
    log_error = {k: float(np.mean([abs(math.log(predicted[k][n] / target[n])) for n in models])) for k in scores}
    held_out = "onnx_predictor_selection" in profile.data and profile.data.get("onnx_predictor") in scores
    chosen = profile.data["onnx_predictor"] if held_out else min(scores, key=lambda k: log_error[k])
    log(
        f"real topologies: the {chosen} predictor, "
        + ("chosen on block networks (held out from the choice)" if held_out else "chosen on them (in-sample)")
    )
    per_model = {
        n: {"predicted_ms": round(predicted[chosen][n], 4), "measured_ms": round(measured[n], 4)} for n in models
    }
    for n, v in per_model.items():
        if gauged:
            v["at_profile_speed_ms"] = round(gauged[n], 4)
        log(
            f"  {n}: predicted {v['predicted_ms']:.4g} ms ({chosen}), measured {v['measured_ms']:.4g} ms"
            + (f" ({gauged[n]:.4g} ms at the profile's speed)" if gauged else "")
        )
    extra = {"at_profile_speed": at_speed[chosen]} if gauged else {}
    if drift:
        adjusted = error_summary([predicted[chosen][n] * ratio for n in models], [measured[n] for n in models])
        log(
            f"drift in this run: the profile's own networks ran {ratio:.3f}x their profiling-time latency; with that "
            f"divided out, real topologies ({chosen}): {format_summary(adjusted)}"
        )
        if drift.get("spread"):
            log(f"noise: {format_spread(drift['spread'])}")
        extra.update(drift=drift, drift_adjusted=adjusted)
    return {
        **scores[chosen],
        "predictor": chosen,
        "models": per_model,
        "scores": scores,
        "repetitions": repetitions,
        "mean_abs_log_error": {k: round(v, 4) for k, v in log_error.items()},
        "scores_at_profile_speed": at_speed,
        "chosen_on": "block networks" if held_out else "these topologies",
        **extra,
        "what": "the onnx wheel's real topologies (materialized filler weights), fp32 and int8 QDQ; "
        + (
            "held out: the predictor for ONNX models was chosen on block networks"
            if held_out
            else "the predictor for ONNX models is chosen on them (in-sample: no held-out topologies)"
        ),
    }


def _loads_as(profile, predictor: str) -> bool:
    from nasq.errors import NasqError
    from nasq.hardware_profiles.registries import PREDICTORS

    try:
        PREDICTORS.get(predictor).validate_profile(profile)
        return True
    except NasqError:
        return False


def validate_profile(
    path,
    *,
    networks: int,
    repetitions: int,
    seed: int,
    log: Callable[[str], None] = print,
    topologies: Sequence[str] = VALIDATION_TOPOLOGIES,
    min_seconds: float = 30.0,
) -> dict:
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
    backend = backend_for(profile)
    if not profile.measurable():
        raise NasqError(f"target '{profile.name}' is {profile.machine_mismatch()}; validate it on that machine")
    space = create_space(profile.metadata.get("space", "mobilenet-mnist"))
    candidates = sample_candidates(space, networks, seed=10_000 + seed)  # never the profiling seeds
    log(f"validating '{profile.name}' ({profile.predictor} predictor) on {networks} new networks of '{space.name}'")
    measured, drift, measurement = measure_with_drift(
        space,
        candidates,
        profile,
        repetitions=repetitions,
        seed=seed,
        log=log,
        backend=backend,
        min_seconds=min_seconds,
    )
    summaries, predicted = {}, {}
    table_name = "table (isolated layers + boundaries + overhead)"
    for name, predictor in ((profile.predictor, create_predictor(profile)), (table_name, TablePredictor(profile))):
        predicted[name] = [predictor.predict_candidate(space, c).total_ms for c in candidates]
        summaries[name] = error_summary(predicted[name], measured)
        log(f"{name}: {format_summary(summaries[name])}")
        if profile.predictor == "table":
            break
    data = dict(profile.data)
    extra = {}
    if drift is not None:
        adjusted = error_summary([p * drift["median_ratio"] for p in predicted[profile.predictor]], measured)
        log(
            f"drift: the profile's own networks run {drift['median_ratio']:.3f}x their profiling-time latency "
            f"({drift['networks']} networks, {drift['min_ratio']:.3f}-{drift['max_ratio']:.3f}"
            + (f"; its reference layer {drift['reference_speed']:.3f}x" if "reference_speed" in drift else "")
            + "); with that "
            f"divided out, {format_summary(adjusted)}"
        )
        if drift.get("spread"):
            log(f"noise: {format_spread(drift['spread'])}")
        extra = {"drift": drift, "drift_adjusted": adjusted}
    gauged = at_profile_speed(measurement, len(candidates), drift_anchors(space, profile)[1])
    if gauged:
        extra["at_profile_speed"] = error_summary(predicted[profile.predictor], gauged)
        log(
            f"at the profile's speed (every round gauged by its calibration networks timed in it): "
            f"{format_summary(extra['at_profile_speed'])}"
        )
    data["validation"] = {
        "predictor": profile.predictor,
        **summaries[profile.predictor],
        **extra,
        "what": f"{networks} new random space samples (random pruning; a third each with random per-layer "
        "bits, all float, all 8-bit), "
        f"measured end to end, interleaved, at least {repetitions} runs each over at least "
        f"{min_seconds:g} s, with {drift['networks'] if drift else 0} of the profile's "
        "calibration networks measured again beside them (drift)",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    if topologies:
        real = validate_real_topologies(
            profile, topologies, log=log, backend=backend, min_seconds=min_seconds, space=space
        )
        data["validation"]["real_topologies"] = real
        data["onnx_predictor"] = real["predictor"]  # what `nasq predict` uses (unchanged when held out)
    write_json_atomic(Path(path), data)
    log(f"stored the validation in {path}")
    return data["validation"]
