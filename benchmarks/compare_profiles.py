"""Two or more ONNX Runtime profiles of this machine, judged on the same measurements: one interleaved run per repeat.

A profile built again (new code, another hour) cannot be compared with the old one through two separate
validations: on this shared VM the machine's speed, and how unevenly a slow spell slows kernels, moves a
validation's figures more than most changes move a predictor. Here every network is measured once per repeat, with
the profiles' reference layer and each profile's calibration networks timed in every round, and each profile's
predictions are compared with that same measurement read at its own speed (``measurement.at_profile_speed``: the
space's networks gauged by the profile's calibration networks, ONNX models by its reference layer).

Networks: held-out networks of the profiles' space (seed 20,000, as ``latency_predictor.py``), networks of real
topologies' blocks (``block_networks``, seed 30,000: never fitted on), and the real topologies of
``nasq profile validate``. Every predictor each profile loads as.

    python benchmarks/compare_profiles.py PROFILE PROFILE [...] [--runs 2] [--seconds 60] [--no-write]

A PROFILE is a target name, a path, or ``REV:PATH`` for a file at a git revision of this repository (the shipped
profile before a change: ``7202548:hardware_profiles/x86-ort.json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT, publish

SECTION = "Profiles compared on the same measurements (ONNX Runtime, this machine)"
PREDICTORS = ("table", "calibrated", "kernel-regressor", "calibrated-regressor")
GROUPS = ("held-out space networks", "block networks", "real topologies")


def load(spec: str, tmp: Path):
    """A profile from a target name, a path, or REV:PATH (read with git show)."""
    from nasq.hardware_profiles import load_profile
    from nasq.hardware_profiles.profile import Profile

    if Path(spec).exists():
        return Profile.load(Path(spec))
    if ":" in spec:
        shown = subprocess.run(["git", "-C", str(ROOT), "show", spec], capture_output=True, text=True)
        if shown.returncode:
            raise SystemExit(f"cannot read {spec} from git: {shown.stderr.strip().splitlines()[0]}")
        path = tmp / f"profile{len(list(tmp.iterdir()))}.json"
        path.write_text(shown.stdout)
        return Profile.load(path)
    return load_profile(spec)


def main() -> None:
    import numpy as np

    from nasq.errors import NasqError
    from nasq.hardware_profiles import PREDICTORS as REGISTRY
    from nasq.hardware_profiles.block_networks import block_networks
    from nasq.hardware_profiles.machine import cpu_model
    from nasq.hardware_profiles.measurement import (
        anchor_gauge,
        at_profile_speed,
        backend_for,
        drift_anchors,
        export_networks,
        real_topology_models,
        sample_candidates,
        serialized_with_feeds,
    )
    from nasq.hardware_profiles.profile import Profile
    from nasq.ort import gauged_medians
    from nasq.predict import predict_model
    from nasq.spaces import create_space

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profiles", nargs="+", metavar="PROFILE")
    parser.add_argument("--runs", type=int, default=2, help="repeats of the whole interleaved measurement")
    parser.add_argument("--seconds", type=float, default=60.0, help="each run's measurement")
    parser.add_argument("--space-networks", type=int, default=45)
    parser.add_argument("--block-networks", type=int, default=30)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if len(args.profiles) < 2:
        raise SystemExit("give two profiles or more to compare")

    with tempfile.TemporaryDirectory() as tmp:
        profiles = [load(spec, Path(tmp)) for spec in args.profiles]
    first = profiles[0]
    for spec, profile in zip(args.profiles, profiles):
        if profile.metadata.get("runtime") != "onnxruntime" or not profile.measurable():
            raise SystemExit(f"{spec}: not an ONNX Runtime profile of this machine")
        if profile.metadata.get("reference", {}).get("layer") != first.metadata.get("reference", {}).get("layer"):
            raise SystemExit(
                f"{spec}: its reference layer differs from {args.profiles[0]}'s; they cannot share a gauge"
            )
        if profile.metadata.get("space") != first.metadata.get("space"):
            raise SystemExit(f"{spec}: another space than {args.profiles[0]}'s")
    space = create_space(first.metadata["space"])

    candidates = sample_candidates(space, args.space_networks, seed=20_000)
    blocks = block_networks(args.block_networks, seed=30_000)
    topologies = real_topology_models(first)
    onnx_models = [*blocks.values(), *topologies.values()]
    blobs, feeds = serialized_with_feeds(onnx_models)
    space_blobs, space_feeds = export_networks(space, candidates, first, log=lambda m: None)
    anchors = []  # (networks, profiling-time latencies) of each profile; the same networks are timed once
    timed = []
    for profile in profiles:
        networks, then = drift_anchors(space, profile)
        if networks not in timed:
            timed.append(networks)
        anchors.append((timed.index(networks), then))
    anchor_blobs, anchor_feeds, offsets = [], [], []
    for networks in timed:
        offsets.append(len(anchor_blobs))
        more_blobs, more_feeds = export_networks(space, networks, first, log=lambda m: None)
        anchor_blobs += more_blobs
        anchor_feeds += more_feeds

    predicted = {}  # (profile index, predictor) -> (space predictions, ONNX models' predictions)
    for i, profile in enumerate(profiles):
        for name in PREDICTORS:
            try:
                as_name = Profile.from_dict({**profile.data, "predictor": name}, profile.name)
                predictor = REGISTRY.get(name)(as_name)
                predicted[i, name] = (
                    [predictor.predict_candidate(space, c).total_ms for c in candidates],
                    [predict_model(m, profile, predictor=name, pricing="kernels")["latency_ms"] for m in onnx_models],
                )
            except NasqError as exc:
                print(f"{args.profiles[i]}: no {name} predictor ({exc})")

    backend = backend_for(first)
    n_onnx, n_space = len(blobs), len(space_blobs)
    scores = {key: {g: [] for g in GROUPS} for key in predicted}  # per run: (within +-10%, median error)
    for run in range(args.runs):
        run_measured = backend.measure_models(
            blobs + space_blobs + anchor_blobs,
            feeds + space_feeds + anchor_feeds,
            repetitions=10,
            min_seconds=args.seconds,
        )
        by_reference = at_profile_speed(run_measured, n_onnx)  # at the first profile's reference latency
        for i, profile in enumerate(profiles):
            which, then = anchors[i]
            end = n_onnx + n_space + offsets[which] + len(then)
            samples = run_measured.samples  # the space's networks gauged by this profile's calibration networks
            space_measured = gauged_medians(
                samples[n_onnx : n_onnx + n_space], anchor_gauge(samples[end - len(then) : end], then)
            )
            scale = profile.metadata["reference"]["latency_ms"] / first.metadata["reference"]["latency_ms"]
            onnx_measured = [m * scale for m in by_reference]
            measured = {
                "held-out space networks": space_measured,
                "block networks": onnx_measured[: len(blocks)],
                "real topologies": onnx_measured[len(blocks) :],
            }
            for name in PREDICTORS:
                if (i, name) not in predicted:
                    continue
                space_pred, onnx_pred = predicted[i, name]
                pred = {
                    "held-out space networks": space_pred,
                    "block networks": onnx_pred[: len(blocks)],
                    "real topologies": onnx_pred[len(blocks) :],
                }
                for group in GROUPS:
                    err = np.asarray(pred[group]) / np.asarray(measured[group]) - 1
                    scores[i, name][group].append((float(np.mean(np.abs(err) <= 0.1)), float(np.median(np.abs(err)))))
                print(
                    f"run {run + 1}, {args.profiles[i]}, {name}: "
                    + ", ".join(f"{g} {scores[i, name][g][-1][0]:.0%}" for g in GROUPS),
                    flush=True,
                )

    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    lines = [
        f"## {SECTION}",
        "",
        f"Command: `python benchmarks/compare_profiles.py {' '.join(args.profiles)} --runs {args.runs} --seconds "
        f"{args.seconds:g}`; machine: {cpu_model()} ({platform.machine()}), ONNX Runtime "
        f"{first.metadata['runtime_version']}, 1 thread, batch 1; date: {date}.",
        "",
        "Profiles:",
        "",
    ]
    for spec, profile in zip(args.profiles, profiles):
        speed = profile.metadata["reference"].get("speed", {})
        lines.append(
            f"- `{spec}`: built {profile.metadata.get('date')} (reference at a median "
            f"{speed.get('median', float('nan')):.3f}x its fast end), predictor `{profile.predictor}`, for ONNX "
            f"models `{profile.data.get('onnx_predictor', 'table')}`"
        )
    lines += [
        "",
        f"{args.runs} runs of one interleaved measurement ({args.seconds:g} s each) of {n_space} held-out "
        f"networks of `{space.name}`, {len(blocks)} networks of real topologies' blocks and the "
        f"{len(topologies)} real topologies, each read at each profile's speed, round by round. Within +-10% "
        "in each run; median error over the runs:",
        "",
        "| profile | predictor | " + " | ".join(GROUPS) + " |",
        "|---|---|" + "---|" * len(GROUPS),
    ]
    for (i, name), by_group in scores.items():
        cells = []
        for group in GROUPS:
            runs = by_group[group]
            cells.append(", ".join(f"{w:.0%}" for w, _ in runs) + f" ({np.median([e for _, e in runs]):.1%})")
        lines.append(f"| `{args.profiles[i]}` | {name} | " + " | ".join(cells) + " |")
    lines += ["", ""]
    publish("\n".join(lines), SECTION, write=not args.no_write)


if __name__ == "__main__":
    sys.exit(main())
