"""`nasq profile validate`: a profile scored on networks it was never fitted on, held-out networks of its space and
real topologies, as measured and at the profile's speed."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from nasq.hardware_profiles.calibration import loads_as
from nasq.hardware_profiles.measurement import (
    VALIDATION_TOPOLOGIES,
    at_profile_speed,
    backend_for,
    drift_anchors,
    error_summary,
    format_spread,
    format_summary,
    measure_models_with_drift,
    measure_with_drift,
    real_topology_models,
    sample_candidates,
)


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
        n for n in ("table", "calibrated", "kernel-regressor", "calibrated-regressor") if loads_as(profile, n)
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
