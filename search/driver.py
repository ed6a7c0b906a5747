"""The search driver: one Ray Tune run, driven by an Optuna sampler through ``OptunaSearch``.

Each Tune trial evaluates one candidate: the accuracy estimate (short training on real data, or a
zero-cost proxy, with pruning and quantization applied) and the predicted latency on every target.
Objectives: maximize the estimate's ``score`` (the validation accuracy, for training-based
estimates), minimize ``latency_ms.<target>`` for each target.

A run directory holds::

    nasq_run.json      marker: nasq version, the validated config, targets' profile data
    results.jsonl/.csv one row per candidate (see nasq.search.results)
    pareto_<target>.png, pareto.json   (a target given as a profile path: its file's stem)
    tune/              Ray Tune's experiment state (what `--resume` restores)
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from ray.tune import Callback

from nasq import __version__
from nasq.config import ExperimentConfig, config_from_dict
from nasq.errors import NasqError
from nasq.fileio import LOCK_FILE, RunLock, check_writable_dir, write_json_atomic
from nasq.search.constraints import infeasible_targets
from nasq.search.objectives import candidate_metrics, objective_modes, objective_names
from nasq.search.reaper import reap_when_gone
from nasq.search.results import ResultsTable, pareto_front, pareto_plot_path, plot_pareto, score_text
from nasq.search.run_dir import RUN_MARKER, TUNE_DIR, load_run

# --- the trial (runs in a Ray worker) ------------------------------------------------------------


def evaluate_candidate(config: dict, settings: dict) -> None:
    """Ray Tune function trainable: score one candidate and report once."""
    import torch
    from ray import tune

    from nasq.accuracy import ESTIMATES, at_fidelity, fidelities
    from nasq.experiment import dataset_for, space_for
    from nasq.hardware_profiles import predictors_for
    from nasq.spaces import candidate_id, canonical_key

    cfg = config_from_dict(settings["config"], "run config")
    torch.set_num_threads(max(1, int(cfg.search.cpus_per_candidate)))
    space = space_for(cfg, settings.get("weights"), settings.get("module"))
    candidate = space.validate(dict(config))
    key = canonical_key(candidate)
    import ray

    metrics: dict[str, Any] = {
        "key": key,
        "cid": candidate_id(candidate),
        "status": "ok",
        "reason": "",
        "node": ray.get_runtime_context().get_node_id(),
    }  # which Ray node evaluated it
    previous = _finished_row(settings.get("run_dir"), metrics["cid"])
    if previous is not None:  # finished before a crash of the driver: report it again, never re-evaluate
        metrics.update(
            {
                k: previous.get(k)
                for k in (
                    "status",
                    "reason",
                    "score",
                    "accuracy",
                    "cost_s",
                    "estimate",
                    "params",
                    "macs",
                    "bitops",
                    "size_bytes",
                    "fidelity",
                )
            }
        )
        metrics.update({f"latency_ms.{t}": v for t, v in previous["latency_ms"].items()}, reused=True)
        metrics = {k: (float("nan") if v is None else v) for k, v in metrics.items()}
        tune.report(metrics)
        return
    try:
        predictors = predictors_for(settings["profiles"])
        metrics.update(candidate_metrics(space, candidate, predictors))
        if cfg.search.latency_pricing == "graph":  # priced from the exported graph, as nasq predict and best price it
            from nasq.predict import exported_latencies, prices_onnx

            metrics.update({f"layers_latency_ms.{t}": metrics[f"latency_ms.{t}"] for t in predictors})
            graphs = {t: p.profile for t, p in predictors.items() if prices_onnx(p.profile)}
            if graphs:
                priced = exported_latencies(space, candidate, graphs, seed=cfg.seed)
                metrics.update({f"latency_ms.{t}": ms for t, ms in priced.items()})
        data = dataset_for(cfg)
        name, spent = cfg.accuracy.estimate, 0.0
        levels = fidelities(cfg.accuracy)
        for rung, fraction in enumerate(levels):  # one level without a schedule; ASHA may stop us after any
            estimate = ESTIMATES.create(
                name, config=at_fidelity(cfg.accuracy, fraction), run_dir=settings.get("run_dir")
            )
            est = estimate.run(space, candidate, data, seed=cfg.seed, name=name)
            spent += est.cost_s
            metrics.update(
                score=est.score,
                accuracy=float("nan") if est.accuracy is None else est.accuracy,
                cost_s=spent,
                estimate=name,
                fidelity=fraction,
                rung=rung,
            )
            if rung < len(levels) - 1:
                tune.report(metrics)
    except Exception as exc:  # a crashing candidate is recorded as failed; the search goes on
        metrics.update(status="failed", reason=f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
    for name in objective_names(list(settings["profiles"])):  # Tune requires every objective key
        metrics.setdefault(name, float("nan"))
    tune.report(metrics)


def _finished_row(run_dir: str | None, cid: str) -> dict | None:
    """The results row of a candidate finished earlier in this run, when the run dir is visible here."""
    if not run_dir or not (Path(run_dir) / "results.jsonl").exists():
        return None
    from nasq.search.results import ResultsTable

    return next((r for r in ResultsTable(run_dir, []).rows() if r["cid"] == cid), None)


# --- the driver ----------------------------------------------------------------------------------


def proxy_spec(cfg: ExperimentConfig) -> dict | None:
    """The evolution's zero-cost proxy and the batch of real training data it sees (None: no proxy)."""
    if not cfg.search.screen_proxy:
        return None
    from nasq.experiment import data_spec

    return {
        "name": cfg.search.screen_proxy,
        "data": dataclasses.asdict(data_spec(cfg)),
        "batch_size": cfg.accuracy.proxy_batch_size,
        "seed": cfg.seed,
    }


def start_points(cfg: ExperimentConfig, space) -> list[dict]:
    """The candidates evaluated first: fixed-precision anchors, as HAQ and APQ start from uniform 8-bit. For a
    trained model, the model itself unpruned, then pruned by each ratio but the largest in every group (the hand
    route, so that the front holds what it finds too), each at uniform 8-bit and at float; then
    ``search.uniform_starts`` sampled architectures, likewise."""
    from nasq.spaces.base import with_uniform_bits

    starts = []
    if getattr(space, "pretrained", False):
        unpruned = space.unpruned(space.sample(cfg.seed))
        for ratio in [0.0, *sorted(set(cfg.model.prune_ratios) - {0.0})[:-1]]:
            base = space.uniformly_pruned(unpruned, ratio) if ratio else unpruned
            starts += [with_uniform_bits(base, 8, space), with_uniform_bits(base, 32, space)]
    for i in range(cfg.search.uniform_starts):
        architecture = space.sample(seed=cfg.seed * 1000 + i)
        starts += [with_uniform_bits(architecture, 8, space), with_uniform_bits(architecture, 32, space)]
    return starts


def build_searcher(cfg: ExperimentConfig, space, profiles: dict[str, dict]):
    import optuna

    from nasq.search.searcher import DedupSearcher

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # TPE's `group`
    # Optuna 5 deprecates constraints_func for Trial.set_constraint, which Ray's OptunaSearch gives no way to call
    warnings.filterwarnings("ignore", message=".*constraints_func.*", category=FutureWarning)
    objectives = objective_names(list(cfg.targets))
    starts = start_points(cfg, space)
    modes = objective_modes(list(cfg.targets))
    check = None
    if cfg.constraints:
        from nasq.search.constraints import ConstraintCheck

        check = ConstraintCheck(space, profiles, cfg.constraints)
    from nasq.search.samplers import SAMPLERS, SearchSetup

    sampler = SAMPLERS.get(cfg.search.sampler)
    setup = SearchSetup(
        space,
        profiles,
        objectives,
        modes,
        cfg.seed,
        starts=starts,
        constraints_func=check.optuna_constraints if check else None,
        proxy=proxy_spec(cfg),
        config=cfg,
    )
    inner = sampler(sampler.Options.from_mapping(cfg.search.sampler_options)).searcher(setup)
    return DedupSearcher(
        inner,
        space,
        objectives=objectives,
        check=check,
        front_variants=int(cfg.search.front_variants * cfg.search.num_candidates),
    )


def build_scheduler(cfg: ExperimentConfig):
    """The fidelity schedule's Ray Tune scheduler: multi-objective ASHA, or None (Ray's FIFO)."""
    if cfg.accuracy.schedule == "none":
        return None
    from nasq.search.scheduler import MultiObjectiveASHA

    objectives = objective_names(list(cfg.targets))
    return MultiObjectiveASHA(
        objectives,
        objective_modes(list(cfg.targets)),
        rungs=cfg.accuracy.rungs,
        reduction_factor=cfg.accuracy.reduction_factor,
    )


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


class ResultsCallback(Callback):
    """Writes one results row per finished trial, prints progress, refreshes the Pareto plots."""

    def __init__(self, run_dir: str, targets: list[str], total: int, constraints: dict | None = None) -> None:
        self.run_dir, self.targets, self.total = run_dir, targets, total
        self.constraints = constraints or {}

    def _record(self, trial, result: dict | None, error: str = "", running: int = 0) -> None:
        table = ResultsTable(self.run_dir, self.targets)
        result = result or {}
        candidate = {k: v for k, v in trial.config.items()}
        from nasq.spaces import candidate_id, canonical_key

        status = "failed" if error else result.get("status", "failed")
        if status == "ok" and _clean(result.get("fidelity", 1.0)) not in (None, 1.0):
            status = "stopped"  # by the fidelity schedule (ASHA) before the full fidelity: not comparable
        row = {
            "cid": result.get("cid") or candidate_id(candidate),
            "key": result.get("key") or canonical_key(candidate),
            "status": status,
            "reason": error or result.get("reason", ""),
            "score": _clean(result.get("score")),
            "accuracy": _clean(result.get("accuracy")),
            "latency_ms": {t: _clean(result.get(f"latency_ms.{t}")) for t in self.targets},
            # the price of the candidate's layer list alone, where latency_ms is its exported graph's
            "layers_latency_ms": {
                t: _clean(result[f"layers_latency_ms.{t}"]) for t in self.targets if f"layers_latency_ms.{t}" in result
            },
            "estimate": result.get("estimate"),
            "reused": bool(result.get("reused", False)),
            "node": result.get("node"),
            **{k: _clean(result.get(k)) for k in ("cost_s", "fidelity", "params", "macs", "bitops", "size_bytes")},
            "infeasible": infeasible_targets(self.constraints, result) if status in ("ok", "stopped") else [],
            "trial_id": trial.trial_id,
            "finished_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        if any(r["cid"] == row["cid"] for r in table.rows()):  # finished before a restart: recorded once
            print(f"{row['cid']} was finished before the restart; its row stands", flush=True)
            return
        table.append(row)
        rows = table.rows()
        done = sum(r["status"] == "ok" for r in rows)
        stopped = sum(r["status"] == "stopped" for r in rows)
        failed = len(rows) - done - stopped
        line = f"[{len(rows)}/{self.total}] {row['cid']} {row['status']}"
        if row["status"] in ("ok", "stopped"):
            lat = " ".join(f"{t}={row['latency_ms'][t]:.4g}ms" for t in self.targets)
            at = f" at fidelity {row['fidelity']:.3g}" if row["status"] == "stopped" else ""
            line += f"{at} {score_text(row)} {lat} ({row['cost_s']:.1f}s)"
        else:
            line += f": {row['reason']}"
        best = []
        for t in self.targets:
            front = pareto_front(rows, t)
            if front:
                best.append(f"{t}: front {len(front)}, best {score_text(front[-1])}")
        counts = (
            f"done {done}, " + (f"stopped early {stopped}, " if stopped else "") + f"failed {failed}, running {running}"
        )
        print(f"{line} | {counts} | " + "; ".join(best), flush=True)
        for t in self.targets:
            if pareto_front(rows, t):
                plot_pareto(rows, t, pareto_plot_path(self.run_dir, t))

    @staticmethod
    def _running(trials, this) -> int:
        return sum(t.status == "RUNNING" and t is not this for t in trials)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._record(trial, trial.last_result, running=self._running(trials, trial))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        error = "trial crashed"
        if getattr(trial, "error_file", None) and os.path.exists(trial.error_file):
            lines = [l for l in Path(trial.error_file).read_text().splitlines() if l.strip()]
            error = f"trial crashed: {lines[-1][:300]}" if lines else error
        self._record(trial, None, error, running=self._running(trials, trial))


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a cluster address nothing answers at (Ray itself retries for minutes)."""
    import socket

    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise NasqError(f"Ray cluster address '{address}' must be HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise NasqError(f"cannot reach the Ray cluster at '{address}': {exc.strerror or exc}") from None


class _quiet_stderr:
    """Send file descriptor 2 (where Ray's C++ core logs) to /dev/null for the ``with`` block."""

    def __enter__(self) -> None:
        sys.stderr.flush()
        self.saved, self.null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        os.dup2(self.null, 2)

    def __exit__(self, *exc) -> None:
        os.dup2(self.saved, 2)
        os.close(self.saved)
        os.close(self.null)


#: starts of the embedded Ray before giving up: its raylet gets a fixed 30 s to register, which a starved
#: machine can miss
LOCAL_RAY_ATTEMPTS = 3


def _init_ray(address: str | None, runtime_env: dict | None = None) -> None:
    """Connect to the cluster at ``address``, else start an embedded local Ray; ``runtime_env``: the job's (the
    user's code folders, :func:`nasq.experiment.runtime_env`)."""
    import logging

    import ray

    if ray.is_initialized():
        return
    if address:
        check_reachable(address)
    try:
        if address:
            with _quiet_stderr():  # Ray's core logs every failed attempt (a wrong token: 20 lines); we say it once
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False, runtime_env=runtime_env)
        else:
            # embedded local Ray; Ray 2.60 turns token authentication on by default, and we keep it.
            # Its raylet starts workers at niceness 15, so that any other busy process on the machine
            # (another search, a benchmark) starves the trials; trials are the work.
            os.environ.setdefault("RAY_worker_niceness", "0")
            for attempt in range(1, LOCAL_RAY_ATTEMPTS + 1):
                try:
                    # address "local": a new instance, never a cluster `ray start` left on this machine (a stale
                    # /tmp/ray/ray_current_cluster made ray.init() wait on a dead one)
                    ray.init(
                        address="local",
                        logging_level=logging.WARNING,
                        include_dashboard=False,
                        log_to_driver=False,
                        runtime_env=runtime_env,
                    )
                    reap_when_gone()  # its agents and workers die with this driver, even a SIGKILLed one
                    break
                except Exception as exc:  # Ray raises a bare Exception when its raylet misses the 30 s it is given
                    if "timed out during startup" not in str(exc) or attempt == LOCAL_RAY_ATTEMPTS:
                        raise
                    ray.shutdown()  # an overloaded machine: start again rather than give up the search
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"Ray cluster at '{address}'" if address else "a local Ray instance"
        hint = (
            (
                "; check the address, and that this shell has the cluster's token (RAY_AUTH_MODE=token with "
                "RAY_AUTH_TOKEN, or ~/.ray/auth_token)"
            )
            if address
            else ""
        )
        raise NasqError(f"cannot connect to {where}: {str(exc).splitlines()[0]}{hint}") from None
    except Exception as exc:
        if "timed out during startup" not in str(exc):
            raise
        raise NasqError(
            f"a local Ray instance did not start ({LOCAL_RAY_ATTEMPTS} attempts): "
            f"{str(exc).splitlines()[0]} Is the machine overloaded?"
        ) from None


def _trainable(settings: dict, cpus: float, gpus: float = 0.0):
    from ray import tune

    resources = {"cpu": cpus, **({"gpu": gpus} if gpus else {})}
    return tune.with_resources(tune.with_parameters(evaluate_candidate, settings=settings), resources)


def new_run_dir(cfg: ExperimentConfig) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(cfg.output_dir) / f"{cfg.name}-{stamp}"


def run_search(cfg: ExperimentConfig, *, run_dir: Path | None = None, address: str | None = None, module=None) -> Path:
    """Start a new search; returns its run directory. ``module``: the trained model itself, handed over in Python
    (:func:`nasq.api.compress_model`); it travels to the trials with their settings."""
    from nasq.config import check_references
    from nasq.experiment import runtime_env, with_absolute_paths
    from nasq.hardware_profiles import load_profile
    from nasq.hardware_profiles.local import LOCAL_ORT, find_local_profile

    cfg = with_absolute_paths(cfg)
    check_references(cfg)
    space = check_model_and_data(cfg, module)
    run_dir = Path(run_dir) if run_dir else new_run_dir(cfg)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise NasqError(f"run directory '{run_dir}' already exists and is not empty; resume it with --resume")
    # local-ort, when this machine has no profile yet, is measured after a cluster is reached (an unreachable one is
    # said at once) and before a local Ray starts (its processes would disturb the timings)
    unmeasured = [t for t in cfg.targets if t == LOCAL_ORT and find_local_profile(space) is None]
    targets = {t: load_profile(t, space) for t in cfg.targets if t not in unmeasured}
    warn_about_other_machines(targets)
    if address:
        _init_ray(address, runtime_env(cfg))  # before anything is written: an unreachable cluster leaves no run dir
    targets = {t: targets[t] if t in targets else load_profile(t, space) for t in cfg.targets}
    cfg = with_native_bits(cfg, targets)
    if not address:
        _init_ray(address, runtime_env(cfg))
    check_writable_dir(run_dir, "run directory")
    run_dir = run_dir.resolve()
    profiles = {t: prof.data for t, prof in targets.items()}
    marker = {
        "nasq_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "config": cfg.to_dict(),
        "profiles": profiles,
    }
    with RunLock(run_dir):  # one writer per run directory, for the whole search
        if (run_dir / RUN_MARKER).exists():  # another driver got here between our check and our lock
            raise NasqError(f"run directory '{run_dir}' already holds a run; resume it with --resume")
        write_json_atomic(run_dir / RUN_MARKER, marker)
        return _run(run_dir, marker, address, restore=False, module=module)


def native_bits(bits, profiles) -> tuple[int, ...]:
    """The bit-widths some target runs natively (an int8 runtime 8, a bit-flexible accelerator 2-8), and float."""
    return tuple(b for b in bits if b >= 32 or any(p.runs_either_natively(b, b) for p in profiles))


def with_native_bits(cfg: ExperimentConfig, profiles: dict) -> ExperimentConfig:
    """A trained model's config with the bit-widths no target runs natively left out (said in one line): on those,
    a layer runs as float with the arithmetic of simulated quantization, slower than float."""
    if cfg.space != "from-model":
        return cfg
    kept = native_bits(cfg.model.bits, profiles.values())
    dropped = [b for b in cfg.model.bits if b not in kept]
    if dropped:
        print(
            f"model.bits: {', '.join(map(str, dropped))} left out: no target runs them natively "
            f"({', '.join(f'{t}: {describe_native(p)}' for t, p in profiles.items())}); searching "
            f"{', '.join(map(str, kept))}",
            flush=True,
        )
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, bits=kept))


def describe_native(profile) -> str:
    native = [b for b in range(1, 9) if profile.runs_either_natively(b, b)]
    if not native:
        return "float only"
    return f"{native[0]}-{native[-1]} bits" if len(native) > 1 else f"{native[0]} bits"


def check_model_and_data(cfg: ExperimentConfig, module=None):
    """The config's space, built; for a trained model, also its data, checked against it (the model's input shape
    and outputs against the data's samples and classes). Errors name the problem before anything is written."""
    from nasq.experiment import dataset_for, space_for

    space = space_for(cfg, module=module)
    if cfg.space != "from-model" and cfg.data.dataset == "mnist-5k":
        return space
    data = dataset_for(cfg)
    who = "the model" if cfg.space == "from-model" else f"space {cfg.space}"
    if tuple(space.input_shape) != data.input_shape:
        raise NasqError(
            f"the data's samples are {list(data.input_shape)}, but {who} takes input shape {list(space.input_shape)}"
        )
    if space.num_classes != data.num_classes:
        raise NasqError(
            f"{who} gives {space.num_classes} outputs, but data {cfg.data.dataset} has {data.num_classes} classes"
        )
    if cfg.space == "from-model":
        info = space.describe()
        print(
            f"model {cfg.model.factory}: {len(info['layers'])} layers to quantize, {len(info['groups'])} channel "
            f"groups to prune, {info['batchnorms_folded']} BatchNorms folded, {len(info['removable_blocks'])} "
            "residual blocks that may be removed"
            + (f"; left as they are: {', '.join(info['left_as_they_are'])}" if info["left_as_they_are"] else ""),
            flush=True,
        )
    return space


def warn_about_other_machines(profiles: dict) -> None:
    """One warning line per target profiled on another machine than this one (:meth:`Profile.mismatch_warning`)."""
    for target, prof in profiles.items():
        if (warning := prof.mismatch_warning(target)) is not None:
            print(f"{warning}; `nasq best` will not measure it here", file=sys.stderr, flush=True)


def resume_search(run_dir: Path | str, *, address: str | None = None, module=None) -> Path:
    """Go on with a search; ``module``: the model, for a run whose model was handed over in Python."""
    run_dir, marker, _ = load_run(run_dir)
    made_by = marker.get("nasq_version")
    if made_by is None:
        raise NasqError(f"'{run_dir / RUN_MARKER}' is corrupt (it names no nasq_version)")
    if made_by != __version__:
        raise NasqError(f"run '{run_dir}' was made by nasq {made_by}; this is {__version__}")
    from ray import tune

    from nasq.hardware_profiles.profile import Profile

    lock_file = run_dir / LOCK_FILE
    made_lock = not lock_file.exists()
    with RunLock(run_dir):  # a second driver is refused first, whatever the state
        if not tune.Tuner.can_restore(str(run_dir / TUNE_DIR)):  # said before Ray starts, leaving nothing behind
            if made_lock:
                lock_file.unlink(missing_ok=True)
            raise NasqError(f"run '{run_dir}' has no Ray Tune state to resume (was it ever started?)")
        warn_about_other_machines({t: Profile.from_dict(d, t) for t, d in marker["profiles"].items()})
        return _run(run_dir, marker, address, restore=True, module=module)


def _run(run_dir: Path, marker: dict, address: str | None, *, restore: bool, module=None) -> Path:
    cfg = config_from_dict(marker["config"], "run config")
    from nasq.experiment import runtime_env, space_for, weights_data

    weights = weights_data(cfg)  # trials get the trained weights with their settings, wherever they run
    space = space_for(cfg, weights, module)  # (a model handed over in Python, missing: said here, in one line)
    settings = {
        "config": marker["config"],
        "profiles": marker["profiles"],
        "run_dir": str(run_dir),
        "weights": weights,
        "module": module,
    }
    _init_ray(address, runtime_env(cfg))
    from ray import tune

    prepare_estimate(cfg, space, run_dir)
    trainable = _trainable(settings, cfg.search.cpus_per_candidate, cfg.search.gpus_per_candidate)
    tune_path = run_dir / TUNE_DIR
    t0 = time.time()
    searcher = None
    if restore:
        print(f"resuming {run_dir}", flush=True)
        tuner = tune.Tuner.restore(str(tune_path), trainable=trainable, resume_unfinished=True, resume_errored=False)
    else:
        print(f"run directory: {run_dir}", flush=True)
        print(
            f"searching {cfg.search.num_candidates} candidates of '{space.name}' for targets "
            f"{', '.join(cfg.targets)} with {cfg.search.sampler} ({cfg.search.max_concurrent} at a time)",
            flush=True,
        )
        searcher = build_searcher(cfg, space, marker["profiles"])
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=build_scheduler(cfg),
                num_samples=cfg.search.num_candidates,
                max_concurrent_trials=cfg.search.max_concurrent,
                reuse_actors=False,
            ),
            run_config=tune.RunConfig(
                name=TUNE_DIR,
                storage_path=str(run_dir),
                verbose=0,
                callbacks=[
                    ResultsCallback(str(run_dir), list(cfg.targets), cfg.search.num_candidates, cfg.constraints)
                ],
                failure_config=tune.FailureConfig(max_failures=0),
            ),
        )
    tuner.fit()
    check = getattr(searcher, "check", None)
    if check is not None and check.skipped:
        print(
            f"constraints: {check.skipped} suggestions met no target's bounds and were answered without a trial",
            flush=True,
        )
    screen = getattr(searcher, "inner", None) if not restore else None
    if getattr(screen, "screened", 0):
        print(
            f"evolution: the predictors screened {screen.screened} candidates; the accuracy predictor was "
            f"refitted {screen.refits} times, last on {screen.pool_fitted_on} results",
            flush=True,
        )
        if getattr(screen, "proxy", None):
            print(
                f"evolution: the zero-cost proxy {screen.proxy['name']} was computed for {screen.proxied} "
                f"candidates (the startup pool, the evaluated ones and each screen's shortlist); it could not rank "
                f"{screen.unranked} of them (dead networks, or it failed on them), which it ranked last",
                flush=True,
            )
    summarize(run_dir, cfg, time.time() - t0)
    return run_dir


ESTIMATE_RECORD = "estimate.json"


def prepare_estimate(cfg: ExperimentConfig, space, run_dir: Path) -> None:
    """The accuracy estimate's one-off work (a supernet), done once in the driver before any trial and
    recorded in the run directory (a resumed run finds it there)."""
    from nasq.accuracy import ESTIMATES, AccuracyEstimate
    from nasq.experiment import dataset_for

    estimate = ESTIMATES.create(cfg.accuracy.estimate, config=cfg.accuracy, run_dir=run_dir)
    if type(estimate).prepare is AccuracyEstimate.prepare:  # nothing to do once
        return
    data = dataset_for(cfg)
    record = estimate.prepare(space, data, run_dir=run_dir, seed=cfg.seed, log=lambda m: print(m, flush=True))
    write_json_atomic(run_dir / ESTIMATE_RECORD, {"estimate": cfg.accuracy.estimate, **record})


def summarize(run_dir: Path, cfg: ExperimentConfig, elapsed_s: float) -> None:
    """Print each target's Pareto front; write pareto.json and the plots."""
    rows = ResultsTable(run_dir, cfg.targets).rows()
    ok = sum(r["status"] == "ok" for r in rows)
    stopped = sum(r["status"] == "stopped" for r in rows)
    early = f", {stopped} stopped early by the fidelity schedule" if stopped else ""
    print(
        f"\n{len(rows)} candidates evaluated ({ok} ok{early}, {len(rows) - ok - stopped} failed) in {elapsed_s:.0f} s"
    )
    fronts = {}
    for t in cfg.targets:
        front = pareto_front(rows, t)
        fronts[t] = [
            {"cid": r["cid"], "score": r["score"], "accuracy": r.get("accuracy"), "latency_ms": r["latency_ms"][t]}
            for r in front
        ]
        print(f"\nPareto front for {t} ({cfg.accuracy.estimate} score vs predicted latency):")
        print(f"  {'cid':<14}{'score':>10}{'latency_ms':>12}")
        for r in front:
            print(f"  {r['cid']:<14}{r['score']:>10.4g}{r['latency_ms'][t]:>12.4f}")
        if front:
            plot_pareto(rows, t, pareto_plot_path(run_dir, t))
            print(f"  plot: {pareto_plot_path(run_dir, t)}")
    write_json_atomic(run_dir / "pareto.json", fronts)
