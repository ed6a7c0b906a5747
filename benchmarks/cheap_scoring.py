"""How many candidates a second nasq scores cheaply through Ray, and how that scales with workers.

Level 1 of nasq's two levels of evaluation (:mod:`nasq.search.batch`): every target's predicted
latency, params, MACs, BitOps, size and the accuracy predictor's features, in batches handed to
long-lived Ray actors, as the evolution sampler screens its pools. Here:

1. ``--candidates`` seeded random candidates of the quickstart space (random candidates share fewer
   layer geometries than an evolution's mutated ones, so this is the harder case), priced for the
   quickstart's targets (``xeon-avx512-ort`` and ``bitserial-sim``);
2. scored in this process, and through Ray with each of ``--workers`` actors (batches of
   ``--batch-size``): a cold pass on fresh actors, then ``--repeats`` warm passes, all settings
   interleaved; median candidates per second;
3. beside it, the same scoring as one Ray Tune trial per candidate (what a search without level 1
   does), on ``--trials`` candidates.

    python benchmarks/cheap_scoring.py [--candidates 20000] [--workers 1 2 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time

from _common import ROOT, publish

SECTION = "Cheap scoring through Ray (level 1)"
TARGETS = ("xeon-avx512-ort", "bitserial-sim")


def tune_per_candidate(space_name: str, profiles: dict, candidates: list[dict]) -> float:
    """Candidates per second when each is its own Ray Tune trial (1 CPU each, 2 at a time)."""
    from ray import tune

    def trial(config):
        from nasq.hardware_profiles import predictors_for
        from nasq.search.objectives import candidate_metrics
        from nasq.spaces import create_space

        space = create_space(space_name)
        tune.report(candidate_metrics(space, space.validate(dict(config["c"])), predictors_for(profiles)))

    start = time.perf_counter()
    tuner = tune.Tuner(
        trial,
        param_space={"c": tune.grid_search(candidates)},
        tune_config=tune.TuneConfig(max_concurrent_trials=2),
        run_config=tune.RunConfig(verbose=0, storage_path=str(ROOT / "benchmarks" / ".cache" / "tune_bench")),
    )
    tuner.fit()
    return len(candidates) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=20000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=40, help="candidates scored as one Tune trial each")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    import logging

    import ray

    from nasq.hardware_profiles import load_profile
    from nasq.search.batch import BatchScorer
    from nasq.spaces import create_space

    space = create_space("mobilenet-mnist")
    profiles = {t: load_profile(t).data for t in TARGETS}
    candidates = [space.sample(seed=i) for i in range(args.candidates)]
    os.environ.setdefault("RAY_worker_niceness", "0")  # as `nasq search` starts its local Ray
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)

    settings = [("in process", 0)] + [(f"Ray, {w} worker{'s' * (w > 1)}", w) for w in args.workers]
    scorers = {name: BatchScorer(space, profiles, workers=w, batch_size=args.batch_size) for name, w in settings}
    rates: dict[str, list[float]] = {name: [] for name, _ in settings}
    cold: dict[str, float] = {}
    t0 = time.time()
    for rep in range(args.repeats + 1):  # pass 0: cold (actors start, predictors learn the layer costs)
        for name, _ in settings:
            start = time.perf_counter()
            metrics, features = scorers[name].score(candidates)
            rate = len(candidates) / (time.perf_counter() - start)
            assert len(metrics) == len(candidates) == len(features)
            (rates[name].append(rate) if rep else cold.__setitem__(name, rate))
            print(f"pass {rep} {name}: {rate:.0f} candidates/s", flush=True)
    per_trial = tune_per_candidate(space.name, profiles, candidates[: args.trials])
    elapsed = time.time() - t0
    ray.shutdown()

    base = statistics.median(rates["in process"])
    lines = [
        f"## {SECTION}",
        "",
        f"Command: `python benchmarks/cheap_scoring.py --candidates {args.candidates} --workers "
        f"{' '.join(map(str, args.workers))} --repeats {args.repeats}`; machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores; date: {dt.date.today().isoformat()}; {elapsed:.0f} s.",
        "",
        f"{args.candidates} random candidates of `mobilenet-mnist`, each scored for {' and '.join(TARGETS)} "
        "(predicted latency per target, params, MACs, BitOps, size, the accuracy predictor's features), "
        f"in batches of {args.batch_size}. Warm: median of {args.repeats} passes, interleaved; cold: the first "
        "pass, on freshly started actors.",
        "",
        "| how | candidates/s, warm | vs in process | candidates/s, cold |",
        "|---|---|---|---|",
    ]
    for name, _ in settings:
        med = statistics.median(rates[name])
        lines.append(f"| {name} | {med:.0f} | {med / base:.2f}x | {cold[name]:.0f} |")
    lines.append(
        f"| one Ray Tune trial per candidate ({args.trials} candidates, 2 at a time) | {per_trial:.1f} | "
        f"{per_trial / base:.4f}x | |"
    )
    best = max(statistics.median(r) for name, r in rates.items() if name != "in process")
    lines += [
        "",
        f"Target (issue 5): at least 2,000 cheap-scored candidates per second through Ray on this machine: "
        f"{'reached' if best >= 2000 else 'not reached'} (best: {best:.0f}/s).",
        "",
    ]
    publish("\n".join(lines), SECTION, write=not args.no_write)


if __name__ == "__main__":
    main()
