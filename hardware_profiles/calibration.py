"""A profile's end-to-end calibration: its layer predictors refitted on whole networks measured while profiling,
the predictor chosen out of fold, and the pricing of ONNX models calibrated on networks of real topologies' blocks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from nasq.hardware_profiles.measurement import (
    at_reference_speed,
    backend_for,
    error_summary,
    format_summary,
    measure_networks,
    sample_candidates,
    serialized_with_feeds,
)


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
    measured_now = at_reference_speed(
        backend.measure_models(blobs, feeds, repetitions=repetitions, min_seconds=min_seconds)
    )
    batches = [
        *earlier,
        {
            "networks_seed": BLOCK_CALIBRATION_SEED + seed,
            "networks": n,
            "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "measured_ms": [round(m, 5) for m in measured_now],
        },
    ]
    models: list = []
    measured: list[float] = []
    batch_of: list[int] = []
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
        if key in scores and loads_as(profile, name):
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


def loads_as(profile, predictor: str) -> bool:
    from nasq.errors import NasqError
    from nasq.hardware_profiles.registries import PREDICTORS

    try:
        PREDICTORS.get(predictor).validate_profile(profile)
        return True
    except NasqError:
        return False
