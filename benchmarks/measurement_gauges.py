"""How to read a latency measurement on a shared machine: which speed gauge makes a predictor's error repeatable.

Uses ``local-ort``, this machine's profile (found, or measured first). Each run measures,
interleaved, (a) the real topologies that ``nasq profile validate`` uses, and then (b) held-out networks of the
profile's space; both times with 12 of the profile's calibration networks and its reference layer timed in every
round, as ``nasq profile validate`` does. The same measurements are then read four ways:

* raw: the median of each network's timings;
* whole-run drift: divided by the calibration networks' median ratio of now to profiling time;
* calibration networks, round by round: each round divided by that ratio in the same round
  (:func:`nasq.hardware_profiles.measurement.at_profile_speed` with ``then``);
* reference layer, round by round: each round over the reference's time in it, times its profiled latency
  (:func:`nasq.hardware_profiles.measurement.at_profile_speed` without).

For each reading: the share within +-10% of the profile's predictions in each run, and how much each network's
error moves from run to run (standard deviation of log(predicted / measured) over the runs, median over the
networks). The predictions are the same in every run: what moves is the measurement.

    python benchmarks/measurement_gauges.py [--runs 3] [--seconds 60] [--networks 40] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys

from _common import publish

SECTION = "Measurement gauges (ONNX Runtime, this machine)"
READINGS = ("raw", "whole-run drift", "calibration networks, round by round", "reference layer, round by round")


def main() -> None:
    import numpy as np

    from nasq.hardware_profiles import create_predictor, load_profile
    from nasq.hardware_profiles.machine import cpu_model
    from nasq.hardware_profiles.measurement import (
        at_profile_speed,
        backend_for,
        drift_anchors,
        drift_summary,
        export_networks,
        real_topology_models,
        sample_candidates,
        serialized_with_feeds,
    )
    from nasq.predict import predict_model
    from nasq.spaces import create_space

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0, help="each group's measurement, per run")
    parser.add_argument("--networks", type=int, default=40, help="held-out networks of the space")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    profile = load_profile("local-ort")
    space = create_space(profile.metadata["space"])
    anchors, then = drift_anchors(space, profile)
    anchor_models, anchor_feeds = export_networks(space, anchors, profile, log=lambda m: None)

    topologies = real_topology_models(profile)
    onnx_predictor = profile.data.get("onnx_predictor")
    groups = {}
    blobs, feeds = serialized_with_feeds(topologies.values())
    groups["real topologies"] = (
        list(topologies),
        blobs,
        feeds,
        [predict_model(m, profile, predictor=onnx_predictor)["latency_ms"] for m in topologies.values()],
    )
    candidates = sample_candidates(space, args.networks, seed=20_000)
    predictor = create_predictor(profile)
    blobs, feeds = export_networks(space, candidates, profile, log=lambda m: None)
    groups["held-out space networks"] = (
        [f"net{i}" for i in range(len(candidates))],
        blobs,
        feeds,
        [predictor.predict_candidate(space, c).total_ms for c in candidates],
    )

    backend = backend_for(profile)
    errors = {g: {r: [] for r in READINGS} for g in groups}  # per run: each network's log(predicted / measured)
    drifts = {g: [] for g in groups}
    for run in range(args.runs):
        for group, (names, blobs, feeds, predicted) in groups.items():
            run_measured = backend.measure_models(
                blobs + anchor_models, feeds + anchor_feeds, repetitions=10, min_seconds=args.seconds
            )
            raw = run_measured.latency_ms
            n = len(names)
            ratio = drift_summary(raw[n:], then)["median_ratio"]
            drifts[group].append(ratio)
            readings = {
                "raw": raw[:n],
                "whole-run drift": [m / ratio for m in raw[:n]],
                "calibration networks, round by round": at_profile_speed(run_measured, n, then),
                "reference layer, round by round": at_profile_speed(run_measured, n),
            }
            for reading, measured in readings.items():
                errors[group][reading].append(np.log(np.asarray(predicted) / np.asarray(measured)))
            print(
                f"run {run + 1}, {group}: drift {ratio:.3f}x, "
                + ", ".join(f"{r} {np.mean(np.abs(np.expm1(errors[group][r][-1])) <= 0.1):.0%}" for r in READINGS),
                flush=True,
            )

    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    lines = [
        f"## {SECTION}",
        "",
        f"Command: `python benchmarks/measurement_gauges.py --runs {args.runs} --seconds {args.seconds:g} --networks "
        f"{args.networks}`; machine: {cpu_model()} ({platform.machine()}), ONNX Runtime "
        f"{profile.metadata['runtime_version']}, 1 thread, batch 1; date: {date}.",
        "",
        f"The `local-ort` profile's predictions (`{onnx_predictor}` for the real topologies, "
        f"`{profile.predictor}` for the space's networks) against {args.runs} runs of the same measurement, "
        f"each group timed for {args.seconds:g} s with 12 of the profile's calibration networks and its reference "
        "layer in every round. Within +-10%: the share in each run. Run to run: how much each network's error moves "
        "between runs (standard deviation of its log error, median over the networks). The predictions never change: "
        "a reading that moves less is a steadier gauge of the machine.",
        "",
    ]
    for group, (names, *_rest) in groups.items():
        lines += [
            f"{group.capitalize()} ({len(names)}; calibration networks' drift in each run: "
            + ", ".join(f"{d:.3f}x" for d in drifts[group])
            + "):",
            "",
            "| reading | within +-10% in each run | median error | run to run |",
            "|---|---|---|---|",
        ]
        for reading in READINGS:
            runs = np.asarray(errors[group][reading])
            within = ", ".join(f"{np.mean(np.abs(np.expm1(e)) <= 0.1):.0%}" for e in runs)
            median_error = float(np.median(np.abs(np.expm1(runs))))
            spread = float(np.median(runs.std(axis=0))) if len(runs) > 1 else float("nan")
            lines.append(f"| {reading} | {within} | {median_error:.1%} | {spread:.1%} |")
        lines.append("")
    lines += [
        "`nasq profile validate` and `nasq best` store the round-by-round readings (`at_profile_speed`): by "
        "the calibration networks for the space's networks, by the reference layer for ONNX models outside it.",
        "",
        "",
    ]
    publish("\n".join(lines), SECTION, write=not args.no_write)


if __name__ == "__main__":
    sys.exit(main())
