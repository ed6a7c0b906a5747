"""The ``nasq`` command. Heavy libraries are imported inside the subcommands, never at import time."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from nasq import __version__
from nasq.errors import NasqError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be positive")
    if value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be finite")
    return value


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} must be at least {minimum}")
        return value

    return parse


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a comma-separated list of integers, e.g. 3,224,224"
        ) from None
    if not all(0 < d <= 1 << 20 for d in dims):
        raise argparse.ArgumentTypeError(f"'{text}': dimensions must be between 1 and {1 << 20}")
    return dims


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


class _Parser(argparse.ArgumentParser):
    """Usage mistakes in one line, like every other nasq error (argparse prints a usage block first)."""

    def error(self, message: str):
        self.exit(2, f"nasq: error: {message}; see '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nasq",
        description="Find, per hardware target, the best compressed network: architecture, per-layer pruning "
        "and per-layer bit-widths searched jointly, scored by measured latency profiles.",
    )
    parser.add_argument("--version", action="version", version=f"nasq {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("search", help="run a search (Ray Tune + Optuna) from a YAML config, or resume one")
    p.add_argument("config", nargs="?", help="experiment config (YAML), e.g. configs/quickstart.yaml")
    p.add_argument("--address", help="Ray cluster address (default: an embedded local Ray)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its directory")
    p.add_argument("--run-dir", metavar="DIR", help="run directory to create (default: OUTPUT_DIR/NAME-TIMESTAMP)")

    p = sub.add_parser("best", help="rebuild, fine-tune, export and measure the best candidate for a target")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--target", required=True, help="a target of the run")
    p.add_argument("--max-latency-ms", type=_positive_float, help="latency bound (default: knee of the Pareto front)")
    p.add_argument(
        "--max-accuracy-drop",
        type=_positive_float,
        metavar="POINTS",
        help="a trained model's run: the fastest candidate whose search-time validation accuracy is at most "
        "this many points below the original's",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="where model.onnx and report.json/.md go")

    p = sub.add_parser(
        "profile",
        help="measure a hardware profile for this machine, import one, or validate one",
        description="`nasq profile --backend B --name N` measures a profile; "
        "`nasq profile import --csv F --space S --column C --name N` fits one from "
        "published whole-network latencies; "
        "`nasq profile validate --target N` re-validates one against new whole networks; "
        "`nasq profile calibrate --target N [--add]` fits its pricing of ONNX models again on "
        "new networks of real topologies' blocks (with --add, and on those measured before).",
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=["validate", "import", "calibrate"],
        help="validate an existing profile, import published measurements, or calibrate the pricing of "
        "ONNX models of an existing ONNX Runtime profile",
    )
    p.add_argument("--backend", help="profiler backend (onnxruntime, tvm, bitserial-sim)")
    p.add_argument("--name", help="profile name (letters, digits, . _ -)")
    p.add_argument(
        "--local",
        action="store_true",
        help="measure this machine's local-ort profile (onnxruntime, 1 thread, batch 1) into the profile "
        "store ($NASQ_PROFILE_STORE, default ~/.local/share/nasq/profiles), where local-ort looks first",
    )
    p.add_argument("--target", help="with validate or calibrate: the profile to validate or calibrate")
    p.add_argument(
        "--networks",
        type=_non_negative_int,
        help="whole networks to measure (onnxruntime, tvm: calibrate and choose the predictor on 2N, by "
        "cross-validation; onnxruntime also calibrates its pricing of ONNX models on N networks of real "
        "topologies' blocks; validate: N, default 30; calibrate: N, default 40)",
    )
    p.add_argument("--seed", type=_non_negative_int, default=0, help="seed for the sampled networks")
    p.add_argument(
        "--add",
        action="store_true",
        help="with calibrate: fit on the networks measured now and on those the calibration was fitted on "
        "before (a shared machine moves kinds of kernels unevenly from hour to hour; batches measured "
        "at several times average that out)",
    )
    (
        p.add_argument(
            "--measure-seconds",
            type=_non_negative_int,
            help="measure whole networks for at least this long (default 30, 5 with --quick): this "
            "machine's speed moves by +-10%% over 5-30 s, and longer windows average it out",
        ),
    )
    p.add_argument("--space", default="mobilenet-mnist", help="search space whose layer shapes to measure")
    p.add_argument(
        "--quick",
        action="store_true",
        help="fewer repetitions, a shorter kernel sweep and shorter timing of "
        "whole networks (onnxruntime: a few minutes; tvm, bitserial-sim: also a coarser grid of layers)",
    )
    p.add_argument("--out", metavar="PATH", help="output file (default: hardware_profiles/NAME.json)")
    p.add_argument("--threads", type=_positive_int, help="intra-op threads (onnxruntime; default 1)")
    p.add_argument("--batch-size", type=_positive_int, help="batch size (onnxruntime; default 1)")
    p.add_argument("--repetitions", type=_positive_int, help="timed runs per layer (onnxruntime)")
    p.add_argument(
        "--sweep-seconds",
        type=_positive_int,
        help="time budget of the adaptive sweep of random layers the per-kernel regressor is fitted on "
        "(onnxruntime; default 120, 60 with --quick)",
    )
    p.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="any option of the backend, e.g. --option clock_mhz=800 (bitserial-sim); repeatable",
    )
    p.add_argument("--tvm-target", help='TVM target as a JSON dict (tvm backend; default {"kind": "llvm"})')
    p.add_argument("--rpc", metavar="HOST:PORT", help="tvm backend: measure on the tvm.rpc server there")
    p.add_argument("--rpc-tracker", metavar="HOST:PORT", help="tvm backend: request a device from this tvm.rpc tracker")
    p.add_argument("--rpc-key", help="tvm backend: the device key to request from the tracker")
    p.add_argument(
        "--topologies",
        default="squeezenet,shufflenet,inception_v1,densenet121,resnet50",
        help="with validate: real topologies to measure beside the space samples (comma-separated, "
        "or 'none'); int8 QDQ versions of squeezenet and resnet50 are added on int8 targets",
    )
    p.add_argument("--csv", help="with import: CSV of architectures and their measured latencies (ms)")
    p.add_argument("--column", help="with import: the CSV column with the device's latencies in ms")
    p.add_argument("--arch-column", help="with import: the column with architectures (default arch_str)")
    p.add_argument(
        "--samples",
        type=_int_at_least(2),
        help="with import: fit on this many seeded rows, validate on the rest (default: fit on all)",
    )
    p.add_argument(
        "--references",
        help="with import: reference profiles to transfer from: auto (other profiles of the space; the default), "
        "none, or comma-separated names",
    )

    p = sub.add_parser("predict", help="predict the latency of any ONNX model (float or int8 QDQ) on a target")
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("--target", required=True, help="a hardware profile (name or path)")
    p.add_argument(
        "--input-shape",
        type=_shape,
        metavar="C,H,W",
        help="the input's dimensions after the batch, for a model whose input shape is symbolic",
    )
    p.add_argument("--json", action="store_true", help="print the full breakdown as JSON")

    p = sub.add_parser("targets", help="list the available hardware profiles with their metadata")
    p.add_argument("--space", help="only profiles that price this search space (published tables name theirs)")
    return parser


def cmd_search(args: argparse.Namespace) -> int:
    if bool(args.config) == bool(args.resume):
        raise NasqError("give either a CONFIG to start a search or --resume RUN_DIR to continue one")
    if args.resume:
        if args.run_dir:
            raise NasqError("--run-dir cannot be combined with --resume")
        from nasq.search.run_dir import load_run

        load_run(args.resume)  # a bad run directory is said before Ray loads
        from nasq.search.driver import resume_search

        resume_search(args.resume, address=args.address)
    else:
        from nasq.config import load_config

        cfg = load_config(args.config)  # a typo is said before Ray loads
        from nasq.search.driver import run_search

        run_search(cfg, run_dir=Path(args.run_dir) if args.run_dir else None, address=args.address)
    return 0


def cmd_best(args: argparse.Namespace) -> int:
    from nasq.retrieve import retrieve_best

    retrieve_best(
        args.run_dir,
        target=args.target,
        max_latency_ms=args.max_latency_ms,
        out_dir=args.out,
        max_accuracy_drop=args.max_accuracy_drop,
    )
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from nasq.fileio import check_creatable_dir, check_writable_dir, write_json_atomic
    from nasq.hardware_profiles.profile import Profile
    from nasq.hardware_profiles.registries import PROFILE_DIR, PROFILERS
    from nasq.spaces import create_space

    if args.action == "validate":
        return cmd_profile_validate(args)
    if args.action == "calibrate":
        from nasq.hardware_profiles import resolve_profile_path
        from nasq.hardware_profiles.calibration import recalibrate_onnx_pricing

        if not args.target:
            raise NasqError("profile calibrate needs --target NAME")
        if args.networks is not None and args.networks < 5:
            raise NasqError(
                f"profile calibrate needs --networks of at least 5 (a fit of three weights, scored out of "
                f"fold), not {args.networks}"
            )
        recalibrate_onnx_pricing(
            resolve_profile_path(args.target),
            networks=args.networks or 40,
            seed=args.seed,
            min_seconds=30 if args.measure_seconds is None else args.measure_seconds,
            add=args.add,
        )
        return 0
    if args.action == "import":
        if not args.csv or not args.column:
            raise NasqError("profile import needs --csv FILE and --column NAME (and --space, --name)")
        args.backend = "published-csv"
    elif args.csv:
        raise NasqError("--csv is only for `nasq profile import`")
    if args.local:
        return cmd_profile_local(args)
    if not args.backend or not args.name:
        raise NasqError("profile needs --backend and --name, or --local (or: nasq profile validate --target NAME)")
    if not NAME_RE.match(args.name):
        raise NasqError(f"profile name '{args.name}' not allowed; use letters, digits, '.', '_' and '-'")
    backend_cls = PROFILERS.get(args.backend)
    space = create_space(args.space)
    out = Path(args.out) if args.out else PROFILE_DIR / f"{args.name}.json"
    if out.suffix != ".json":
        raise NasqError(f"--out '{out}' must end in .json")
    check_creatable_dir(out.parent, "output directory")  # made only once there is a profile to write
    backend = backend_cls(_backend_options(args.backend, args))
    shapes = space.profile_shapes(quick=args.quick and backend_cls.capabilities.quick_shapes)
    if backend_cls.capabilities.measures_layers:
        print(f"profiling {len(shapes)} layer shapes of '{space.name}' with backend '{args.backend}'", flush=True)
    data = backend.profile(
        shapes, name=args.name, space=space.name, quick=args.quick, log=lambda msg: print(msg, flush=True)
    )
    Profile.from_dict(data, str(out))  # never write a profile that would not load
    check_writable_dir(out.parent, "output directory")
    write_json_atomic(out, data)
    print(f"wrote {out}")
    return 0


#: the `nasq profile` options a backend's options are set from (by ``option(arg=...)`` or the field's name)
BACKEND_FLAGS = (
    "threads",
    "batch_size",
    "repetitions",
    "networks",
    "seed",
    "measure_seconds",
    "sweep_seconds",
    "tvm_target",
    "rpc",
    "rpc_tracker",
    "rpc_key",
    "csv",
    "column",
    "arch_column",
    "samples",
    "references",
)


def _backend_options(backend: str, args: argparse.Namespace):
    """Backend ``backend``'s options from the flags given and from ``--option KEY=VALUE`` (any of its options; the
    value read as JSON where it parses, else as text); a flag the backend does not take is refused, naming those it
    takes."""
    import dataclasses
    import json

    from nasq.hardware_profiles.registries import PROFILERS

    options_cls = PROFILERS.get(backend).Options

    fields = {f.metadata.get("arg") or f.name: f.name for f in dataclasses.fields(options_cls)}
    given = {flag: getattr(args, flag) for flag in BACKEND_FLAGS if getattr(args, flag, None) is not None}
    stray = [flag for flag in given if flag not in fields and flag != "seed"]
    if stray:
        flags = [f"--{flag.replace('_', '-')}" for flag in fields if flag in BACKEND_FLAGS]
        raise NasqError(
            f"--{stray[0].replace('_', '-')} is not an option of backend '{backend}'; it takes: "
            f"{', '.join(flags) or 'no flags'}, and --option KEY=VALUE for {', '.join(fields.values())}"
        )
    values = {fields[flag]: value for flag, value in given.items() if flag in fields}
    for item in args.option or []:
        key, eq, text = item.partition("=")
        if not eq or key not in fields.values():
            raise NasqError(
                f"--option {item!r}: give KEY=VALUE with KEY one of the options of backend '{backend}': "
                f"{', '.join(fields.values()) or 'none'}"
            )
        try:
            values[key] = json.loads(text)
        except json.JSONDecodeError:
            values[key] = text
    return options_cls(**values)


def cmd_profile_local(args: argparse.Namespace) -> int:
    from nasq.hardware_profiles.local import LOCAL_ORT, measure_local_profile

    if args.backend not in (None, "onnxruntime") or args.name or args.out:
        raise NasqError(
            f"--local measures {LOCAL_ORT} with the onnxruntime backend, into the profile store; it takes "
            "no --backend other than onnxruntime, no --name and no --out"
        )
    if args.threads not in (None, 1) or args.batch_size not in (None, 1):
        raise NasqError(f"{LOCAL_ORT} is measured with 1 thread at batch 1; for other settings use --name and --out")
    import dataclasses

    chosen = dataclasses.asdict(_backend_options("onnxruntime", args))
    options = {k: v for k, v in chosen.items() if k not in ("threads", "batch_size")}  # (the store's: 1 and 1)
    measure_local_profile(args.space, quick=args.quick, options=options, log=lambda msg: print(msg, flush=True))
    return 0


def cmd_profile_validate(args: argparse.Namespace) -> int:
    from nasq.hardware_profiles import resolve_profile_path
    from nasq.hardware_profiles.validation import validate_profile

    if not args.target:
        raise NasqError("profile validate needs --target NAME")
    from nasq.predict import real_topology

    topologies = [] if args.topologies == "none" else [t for t in args.topologies.split(",") if t]
    for name in topologies:
        real_topology(name)  # unknown names fail before anything is measured
    validate_profile(
        resolve_profile_path(args.target),
        networks=args.networks or 30,
        repetitions=args.repetitions or 100,
        seed=args.seed,
        topologies=topologies,
        min_seconds=30 if args.measure_seconds is None else args.measure_seconds,
    )
    return 0


def cmd_targets(args: argparse.Namespace) -> int:
    from nasq.hardware_profiles import list_profiles, load_profile, resolve_profile_path
    from nasq.hardware_profiles.local import LOCAL_ORT, find_local_profile, store_dir
    from nasq.hardware_profiles.machine import describe, this_machine
    from nasq.hardware_profiles.measurement import format_spread, format_summary

    names = list_profiles()
    if not names:
        print("no hardware profiles found")
    print(f"this machine: {describe(this_machine())}")
    local = find_local_profile(args.space or None)
    print(
        f"{LOCAL_ORT}: "
        + (
            f"{local.stem} ({local})"
            if local
            else f"no ONNX Runtime profile of this machine yet; naming {LOCAL_ORT} measures one (nasq "
            f"profile --quick, a few minutes) and stores it in {store_dir()}"
        )
    )
    published = []
    for name in names:
        try:
            prof = load_profile(name)
        except NasqError as exc:
            print(f"{name}: unusable ({exc})")
            continue
        if args.space and prof.data.get("space", args.space) != args.space:
            continue
        if prof.predictor == "architecture-table":  # one line each: there are dozens
            v = prof.data.get("validation")
            published.append(
                f"  {name:<22} {prof.metadata.get('device')}: "
                + (f"{v['within_10pct']:.0%} within +-10%, Spearman {v['spearman']:.3f}" if v else "not validated")
            )
            continue
        m = prof.metadata
        here = " [this machine]" if prof.on_a_cpu and prof.measured_here() else ""
        device = describe(m) if prof.on_a_cpu else m.get("device")
        print(
            f"{name}{here}\n  {prof.description}\n  device: {device}; runtime: {m.get('runtime')} "
            f"{m.get('runtime_version', '')}; threads: {m.get('threads', '-')}; batch: {m.get('batch_size', '-')}; "
            f"repetitions: {m.get('repetitions', '-')}; date: {m.get('date')}\n  predictor: {prof.predictor}; "
            f"file: {resolve_profile_path(name)}"
        )
        validation = prof.data.get("validation")
        if validation:
            print(
                f"  last validation ({validation['predictor']} predictor, {validation['date']}): "
                f"{format_summary(validation)}"
            )
            if validation.get("drift"):
                d = validation["drift"]
                print(
                    f"  machine drift since profiling: {d['median_ratio']:.3f}x on {d['networks']} of its calibration "
                    f"networks; with it divided out: {format_summary(validation['drift_adjusted'])}"
                )
                if d.get("spread"):
                    print(f"  noise: {format_spread(d['spread'])}")
            if validation.get("at_profile_speed"):
                print(
                    f"  at the profile's speed (each round gauged by its calibration networks timed in it): "
                    f"{format_summary(validation['at_profile_speed'])}"
                )
            real = validation.get("real_topologies")
            if real:
                print(
                    f"  real topologies ({', '.join(real['models'])}; {real['predictor']} predictor"
                    + (", held out from its choice" if real.get("chosen_on") == "block networks" else "")
                    + f"): {format_summary(real)}"
                )
                if real.get("drift"):
                    print(
                        f"    drift in their run: {real['drift']['median_ratio']:.3f}x; with it divided out: "
                        f"{format_summary(real['drift_adjusted'])}"
                    )
                if real.get("at_profile_speed"):
                    print(f"    at the profile's speed: {format_summary(real['at_profile_speed'])}")
            selection = prof.data.get("onnx_predictor_selection")
            if (
                isinstance(selection, dict)
                and isinstance(selection.get("scores"), dict)
                and prof.data.get("onnx_predictor") in selection["scores"]
            ):
                held_out = selection["scores"][prof.data["onnx_predictor"]]
                print(
                    f"  ONNX models (nasq predict): the {prof.data['onnx_predictor']} predictor, chosen on block "
                    f"networks (priced by '{held_out.get('scored_as', 'held out')}'): {format_summary(held_out)}"
                )
            elif prof.data.get("onnx_predictor"):
                print(
                    f"  ONNX models (nasq predict): the {prof.data['onnx_predictor']} predictor, chosen on the real "
                    "topologies"
                )
            kernel_calibration = prof.data.get("kernel_calibration")
            if kernel_calibration and "table" in kernel_calibration.get("scores", {}):
                before, after = kernel_calibration["scores"]["table"], kernel_calibration["scores"]["table, calibrated"]
                batches = kernel_calibration.get("batches")
                batches = len(batches) if isinstance(batches, list) and batches else 1
                across = kernel_calibration["scores"].get("table, calibrated on the other batches")
                print(
                    f"  its calibration of ONNX models' prices ({kernel_calibration['networks']} block networks"
                    + (f" in {batches} batches" if batches > 1 else "")
                    + f", {kernel_calibration.get('date', 'date unknown')}): the table's kernel prices "
                    f"{before['within_10pct']:.0%} within +-10% before, {after['within_10pct']:.0%} after (out of fold)"
                    + (f", {across['within_10pct']:.0%} each batch by a fit on the others" if across else "")
                )
        elif prof.metadata.get("runtime") not in ("onnxruntime", "tvm"):
            print("  last validation: none (an analytic model, nothing to measure here)")
        else:
            print("  last validation: none yet (nasq profile validate --target NAME)")
    if published:
        print(
            "published whole-network tables (architecture-table predictor; only their own space; "
            "validation: cross-validated on the table's rows):"
        )
        print("\n".join(published))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import json

    from nasq.hardware_profiles import load_profile
    from nasq.predict import format_prediction, predict_model, prepared_model

    profile = load_profile(args.target)
    model, notes = prepared_model(args.model, args.input_shape)
    if (warning := profile.mismatch_warning(args.target)) is not None:
        print(warning, file=sys.stderr, flush=True)
    result = predict_model(model, profile, notes)
    print(json.dumps(result, indent=2) if args.json else format_prediction(result))
    return 0


COMMANDS = {
    "search": cmd_search,
    "predict": cmd_predict,
    "best": cmd_best,
    "profile": cmd_profile,
    "targets": cmd_targets,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except NasqError as exc:
        print(f"nasq: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nasq: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
