"""End to end through the product's own command line: real Ray Tune, real Optuna, real training on
MNIST, real ONNX export measured with ONNX Runtime, and a real SIGKILL followed by --resume."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import onnx
import psutil
import pytest
from test_profile_schema import numeric_leaves

from nasq.hardware_profiles.schema import rule
from nasq.ort import session

pytestmark = pytest.mark.slow
# searches that test something else than pricing price candidates by their layer lists (`latency_pricing: layers`):
# an export per trial costs a fresh worker seconds of imports; the search_run, the trained model's and the Python
# API's tests price from the exported graph, the default
NASQ = [sys.executable, "-m", "nasq.cli"]


def still_running(processes, timeout):
    """Those of ``processes`` still running after ``timeout`` seconds; a zombie has exited (a container's init may
    never reap it)."""
    deadline = time.time() + timeout
    while True:
        running = []
        for p in processes:
            try:
                if p.status() != psutil.STATUS_ZOMBIE:
                    running.append(p)
            except psutil.NoSuchProcess:
                pass
        if not running or time.time() > deadline:
            return running
        time.sleep(0.2)


def write_yaml(path, raw):
    path.write_text(json.dumps(raw))
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """This machine's local-ort profile measured here and now (`nasq profile --local --quick`) into a profile store
    of the tests' own, where local-ort looks before the shipped profiles, so that `best` can measure on the very
    machine the target describes; plus a copy that cannot price int8 convs: candidates using one fail."""
    folder, store = tmp_path_factory.mktemp("profiles"), tmp_path_factory.mktemp("store")
    env = {**os.environ, "NASQ_PROFILE_STORE": str(store)}
    out = subprocess.run(
        [*NASQ, "profile", "--local", "--quick", "--repetitions", "15", "--networks", "12", "--sweep-seconds", "15"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    stored = list(store.glob("local-ort-*-quick.json"))
    assert len(stored) == 1 and f"stored {stored[0]}" in out.stdout
    data = json.loads(stored[0].read_text())
    assert data["metadata"]["quick"] is True
    data["name"] = "no-int8-conv"
    data["metadata"]["threads"] = 2  # so that local-ort, looked for in NASQ_PROFILE_PATH first, does not take it
    data["layers"] = [l for l in data["layers"] if not (l["op"] == "conv" and l["precision"] == "int8")]
    del data["kernel_model"]  # else the per-kernel regressor prices the missing entries
    data["predictor"] = "table"  # the quick profile may have chosen the regressor it no longer has,
    data["onnx_predictor"] = "table"  # for its layer lists and for exported models alike
    (folder / "no-int8-conv.json").write_text(json.dumps(data))
    return {
        **env,
        "NASQ_PROFILE_PATH": str(folder),
        "NASQ_LOCAL": str(stored[0]),
        "NO_INT8_CONV": str(folder / "no-int8-conv.json"),
    }


@pytest.fixture(scope="module")
def search_run(tmp_path_factory, env):
    tmp = tmp_path_factory.mktemp("e2e")
    cfg = write_yaml(
        tmp / "e2e.yaml",
        {
            # a target named by its file's path (slashes and all) as well as by names
            "name": "e2e",
            "targets": ["local-ort", "bitserial-sim", env["NO_INT8_CONV"]],
            "seed": 0,
            "output_dir": str(tmp / "runs"),
            "search": {"sampler": "random", "num_candidates": 4, "max_concurrent": 2},
            "accuracy": {"train_epochs": 0.3, "finetune_epochs": 0.2},
            "best": {"train_epochs": 0.5, "finetune_epochs": 0.3, "measure_repetitions": 30},
        },
    )
    run_dir = tmp / "run"
    out = subprocess.run(
        [*NASQ, "search", str(cfg), "--run-dir", str(run_dir)], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return run_dir, out.stdout


def rows_of(run_dir):
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


def test_search_records_every_candidate_and_goes_on_after_failures(search_run, env):
    run_dir, stdout = search_run
    rows = rows_of(run_dir)
    assert len(rows) == 4 and len({r["cid"] for r in rows}) == 4
    ok = [r for r in rows if r["status"] == "ok"]
    failed = [r for r in rows if r["status"] == "failed"]
    assert ok and failed, (
        "seeded random sampling should give both (see the profile fixture)",
        [r["reason"] for r in rows],
    )
    for r in failed:
        assert "cannot price op 'conv' in int8" in r["reason"]
    for r in ok:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["cost_s"] > 0
        assert r["score"] == r["accuracy"] and r["estimate"] == "short-training"
        assert all(r["latency_ms"][t] > 0 for t in ("local-ort", "bitserial-sim", env["NO_INT8_CONV"]))
        assert r["estimate"] == "short-training"
    assert (run_dir / "tune").is_dir() and (run_dir / "results.csv").exists()
    for t, stem in (
        ("local-ort", "local-ort"),
        ("bitserial-sim", "bitserial-sim"),
        (env["NO_INT8_CONV"], "no-int8-conv"),
    ):
        assert f"Pareto front for {t}" in stdout
        assert (run_dir / f"pareto_{stem}.png").read_bytes()[:4] == b"\x89PNG"
    fronts = json.loads((run_dir / "pareto.json").read_text())
    assert {f["cid"] for f in fronts["local-ort"]} <= {r["cid"] for r in ok}


def test_best_exports_measures_and_reports(search_run, env, tmp_path):
    run_dir, _ = search_run
    out_dir = tmp_path / "best"
    out = subprocess.run(
        [*NASQ, "best", str(run_dir), "--target", "local-ort", "--out", str(out_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((out_dir / "report.json").read_text())
    assert report["target"] == "local-ort" and report["measurement"]["measured"] is True
    # local-ort was the profile of this machine in the store, found there by the search, so not measured again
    used = json.loads((run_dir / "nasq_run.json").read_text())["profiles"]["local-ort"]
    assert used["name"] == Path(env["NASQ_LOCAL"]).stem and "warning" not in out.stderr
    drift = report["measurement"]["drift"]  # the profile's own calibration networks, measured in the same run
    assert drift["networks"] == 12 and drift["min_ratio"] <= drift["median_ratio"] <= drift["max_ratio"]
    assert "Machine drift: 12 of the profile's calibration networks" in (out_dir / "report.md").read_text()
    spread = drift["spread"]  # the run's own noise, printed beside the drift
    assert spread["windows"] == 3 and 0 <= spread["median"] <= spread["p90"]
    assert f"{spread['median']:.1%} apart" in (out_dir / "report.md").read_text()
    assert "Measured at the profile's speed" in (out_dir / "report.md").read_text()
    ok = {r["cid"]: r for r in rows_of(run_dir) if r["status"] == "ok"}
    assert report["cid"] in ok
    for plan, name in (("candidate", "model.onnx"), ("float", "model_float.onnx"), ("int8", "model_int8.onnx")):
        m = report["models"][plan]
        onnx.checker.check_model(str(out_dir / name))
        assert m["measured_latency_ms"] > 0 and m["predicted_latency_ms"] > 0
        assert m["measured_at_profile_speed_ms"] > 0  # gauged round by round by the profile's reference layer
        assert 0 <= m["test_accuracy_onnxruntime"] <= 1
    # the search priced the candidate from its exported graph, as nasq predict prices the file exported here
    assert report["search"]["predicted_latency_ms"] == pytest.approx(
        report["models"]["candidate"]["predicted_latency_ms"], rel=0.05
    )
    assert set(ok[report["cid"]]["layers_latency_ms"]) == {"local-ort", "bitserial-sim", env["NO_INT8_CONV"]}
    int8_ops = report["models"]["int8"]["executed_ops"]
    assert int8_ops.get("QLinearConv", 0) > 0  # the uniform int8 baseline really runs int8 kernels
    assert report["models"]["float"]["executed_ops"].get("QLinearConv", 0) == 0
    # the reported test accuracy is what ONNX Runtime gives on the test split
    from nasq.data import load_mnist

    data = load_mnist()
    logits = session(out_dir / "model.onnx").run(None, {"input": data.test.x})[0]
    assert (logits.argmax(1) == data.test.y).mean() == pytest.approx(
        report["models"]["candidate"]["test_accuracy_onnxruntime"]
    )
    assert "| float baseline |" in (out_dir / "report.md").read_text()


def test_best_of_an_all_float_candidate_is_its_own_float_baseline(search_run, env, tmp_path):
    """A searched model whose layers are all float is the float baseline: trained, exported and measured once,
    listed as itself, and never reported as beaten by itself (measurement noise once made it so)."""
    from nasq.spaces.base import with_uniform_bits

    run_dir, _ = search_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("tune"))
    row = next(r for r in rows_of(run_dir) if r["status"] == "ok")
    row["key"] = json.dumps(with_uniform_bits(json.loads(row["key"]), 32), sort_keys=True)
    (copy / "results.jsonl").write_text(json.dumps(row) + "\n")
    out_dir = tmp_path / "best"
    out = subprocess.run(
        [*NASQ, "best", str(copy), "--target", "local-ort", "--out", str(out_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("rebuilding from its key") == 2  # the candidate and the int8 baseline
    report = json.loads((out_dir / "report.json").read_text())
    cand, flt = report["models"]["candidate"], report["models"]["float"]
    assert flt["same_as"] == "candidate" and "same_as" not in report["models"]["int8"]
    assert flt["measured_latency_ms"] == cand["measured_latency_ms"] > 0
    assert (out_dir / "model_float.onnx").read_bytes() == (out_dir / "model.onnx").read_bytes()
    assert report["dominated_by"] in ([], ["int8"])
    assert "| float baseline (the searched model itself) |" in (out_dir / "report.md").read_text()


def test_best_killed_mid_export_leaves_no_output_folder(search_run, env, tmp_path):
    """SIGKILL once the first model is exported: the output folder holds all of its files or none (here: none),
    and the staged files are removed by the next `nasq best` into the same place."""
    from nasq.fileio import StagedDir

    run_dir, _ = search_run
    out_dir = tmp_path / "best"
    proc = subprocess.Popen(
        [*NASQ, "best", str(run_dir), "--target", "bitserial-sim", "--out", str(out_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not list(tmp_path.glob(".best.partial-*/model.onnx")):
        assert proc.poll() is None, "nasq best ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    staged = list(tmp_path.glob(".best.partial-*"))
    assert len(staged) == 1 and not out_dir.exists()
    with StagedDir(out_dir, "report.json"):
        assert not staged[0].exists()


def test_resume_after_sigkill_finishes_without_reevaluating(tmp_path, env):
    cfg = write_yaml(
        tmp_path / "r.yaml",
        {
            "name": "resume",
            "targets": ["bitserial-sim"],
            "seed": 1,
            "output_dir": str(tmp_path / "runs"),
            "search": {"latency_pricing": "layers", "sampler": "random", "num_candidates": 6, "max_concurrent": 1},
            "accuracy": {"train_epochs": 0.3, "finetune_epochs": 0.2},
        },
    )
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [*NASQ, "search", str(cfg), "--run-dir", str(run_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline:
        if (run_dir / "results.jsonl").exists() and rows_of(run_dir):
            break
        assert proc.poll() is None, "search ended before it could be killed"
        time.sleep(0.2)
    second = subprocess.run(
        [*NASQ, "search", "--resume", str(run_dir)], capture_output=True, text=True, env=env, timeout=300
    )  # while the first driver runs: refused, never two writers
    assert second.returncode != 0 and "in use by another nasq driver" in second.stderr, second.stderr[-2000:]
    assert proc.poll() is None
    ray_processes = psutil.Process(proc.pid).children(recursive=True)  # its local Ray: GCS, raylet, agents, workers
    assert ray_processes
    os.kill(proc.pid, signal.SIGKILL)  # the driver alone dies mid-search, as `kill -9 PID` does
    proc.wait()
    alive = still_running(ray_processes, timeout=10)
    names = [p.name() for p in alive]
    if alive:
        os.killpg(proc.pid, signal.SIGKILL)
    assert not alive, f"outlived the driver by 10 s: {names}"
    before = {r["cid"]: r for r in rows_of(run_dir)}
    assert 1 <= len(before) < 6
    out = subprocess.run(
        [*NASQ, "search", "--resume", str(run_dir)], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = rows_of(run_dir)
    final = {r["cid"]: r for r in lines}
    assert len(final) == 6 and len(lines) == 6, "results.jsonl holds each candidate once"
    counters = [line.split()[0] for line in out.stdout.splitlines() if line.startswith("[")]
    assert len(counters) == len(set(counters)), out.stdout  # no "[2/6]" twice
    evaluated = [r["cid"] for r in lines if not r.get("reused")]
    assert sorted(evaluated) == sorted(set(evaluated)), "a candidate was evaluated twice"
    for cid, row in before.items():
        assert final[cid]["accuracy"] == row["accuracy"]


def test_profile_validate_measures_and_stores_a_validation(env, tmp_path):
    src = Path(env["NASQ_LOCAL"])
    profile = tmp_path / "copy.json"
    profile.write_text(src.read_text())
    data = json.loads(profile.read_text())
    # chosen by cross-validation
    assert data["predictor"] in ("table", "calibrated", "kernel-regressor", "calibrated-regressor")
    assert set(data["predictor_selection"]["scores"]) == {
        "table",
        "calibrated",
        "kernel-regressor",
        "calibrated-regressor",
    }
    assert data["regressor_calibration"]["fitted_on_networks"] == data["calibration"]["fitted_on_networks"]
    assert data["metadata"]["reference"]["speed"]["measurements"] > 0
    assert data["kernel_sweep"]["rounds"] and data["kernel_model"]["trees"]
    # and the pricing of ONNX models calibrated on measured networks of real topologies' blocks, scored out of fold
    kernel_calibration = data["kernel_calibration"]
    assert set(kernel_calibration["fits"]) == {"table", "kernel-regressor"} and kernel_calibration["networks"] == 12
    assert kernel_calibration["scores"]["table, calibrated"]["networks"] == 12
    out = subprocess.run(
        [*NASQ, "profile", "calibrate", "--target", str(profile), "--networks", "6", "--add", "--measure-seconds", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    # fitted again, on the networks measured while profiling and on 6 others measured now (seed 0 is taken: seed 1)
    again = json.loads(profile.read_text())["kernel_calibration"]
    assert again["networks"] == 18 and again["networks_seed"] == kernel_calibration["networks_seed"] + 1
    assert [b["networks"] for b in again["batches"]] == [12, 6]
    assert again["batches"][0]["measured_ms"] == kernel_calibration["batches"][0]["measured_ms"]
    assert again["scores"]["table, calibrated on the other batches"]["networks"] == 18
    assert "measuring seed 1" in out.stdout and "by a fit on the other 1" in out.stdout
    assert "calibrated (out of fold)" in out.stdout and "stored the calibration" in out.stdout
    # and the predictor for ONNX models chosen again on them, a calibrated one by its fit on the other batch
    chosen = json.loads(profile.read_text())["onnx_predictor_selection"]
    assert chosen["scores"]["calibrated"]["scored_as"] == "table, calibrated on the other batches"
    assert (
        json.loads(profile.read_text())["onnx_predictor"] == chosen["chosen"]
        and "predictor for ONNX models; " in out.stdout
    )
    out = subprocess.run(
        [
            *NASQ,
            "profile",
            "validate",
            "--target",
            str(profile),
            "--networks",
            "6",
            "--repetitions",
            "20",
            "--topologies",
            "squeezenet",
            "--measure-seconds",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    validation = json.loads(profile.read_text())["validation"]
    assert validation["networks"] == 6 and 0 <= validation["within_10pct"] <= 1
    assert validation["median_error"] >= 0 and "new random space samples" in validation["what"]
    # the profile's own calibration networks measured again beside the new ones: the machine's drift
    assert validation["drift"]["networks"] == 12 and validation["drift"]["median_ratio"] > 0
    assert validation["drift_adjusted"]["networks"] == 6
    assert "within +-10%" in out.stdout
    # and the run's own noise: the same networks' medians in three parts of the run, raw and over the reference
    spread = validation["drift"]["spread"]
    assert spread["windows"] == 3 and spread["rounds"] >= 20 and 0 <= spread["median"] <= spread["p90"]
    assert spread["over_reference"]["median"] >= 0 and "noise: the same network measured in 3" in out.stdout
    real = validation["real_topologies"]
    assert set(real["models"]) == {"squeezenet", "squeezenet int8"} and real["networks"] == 2
    assert all(v["measured_ms"] > 0 and v["predicted_ms"] > 0 for v in real["models"].values())
    # and beside the real topologies, in their own run: the machine can change speed between the two
    assert real["drift"]["networks"] == 12 and real["drift"]["median_ratio"] > 0
    assert real["drift_adjusted"]["networks"] == 2 and "drift in this run" in out.stdout
    # and at the profile's speed: every round gauged by the reference layer timed in it
    assert validation["at_profile_speed"]["networks"] == 6 and real["at_profile_speed"]["networks"] == 2
    assert all(v["at_profile_speed_ms"] > 0 for v in real["models"].values())
    assert (
        set(real["scores_at_profile_speed"])
        == set(real["scores"])
        == {"table", "calibrated", "kernel-regressor", "calibrated-regressor"}
    )
    assert "at the profile's speed" in out.stdout
    # held out from the choice of the predictor for ONNX models, made on the block networks, which it keeps
    assert real["chosen_on"] == "block networks" and real["predictor"] == chosen["chosen"]
    assert "chosen on block networks (held out from the choice)" in out.stdout
    # every number a profiled, calibrated and validated profile holds has a declared range
    data = json.loads(profile.read_text())
    assert not sorted({p for p, _, _ in numeric_leaves(data) if rule(p) is None})


def searched(cfg: Path, run_dir: Path) -> subprocess.CompletedProcess:
    """``nasq search CFG --run-dir RUN_DIR``, which must succeed."""
    out = subprocess.run(
        [*NASQ, "search", str(cfg), "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def test_search_scored_by_a_zero_cost_proxy_with_the_evolution_over_a_predictor(tmp_path):
    cfg = write_yaml(
        tmp_path / "proxy.yaml",
        {
            "name": "proxy",
            "targets": ["bitserial-sim"],
            "seed": 1,
            "output_dir": str(tmp_path / "runs"),
            "search": {
                "latency_pricing": "layers",
                "sampler": "evolution",
                "num_candidates": 12,
                "max_concurrent": 2,
                "screen_pool": 200,
            },
            "accuracy": {"estimate": "zico", "proxy_batch_size": 32},
            "constraints": {"bitserial-sim": {"latency_ms": 0.014}},  # about 3 in 4 random candidates break it
        },
    )
    run_dir, out = tmp_path / "run", searched(cfg, tmp_path / "run")
    rows = rows_of(run_dir)
    assert len(rows) == 12 and all(r["status"] == "ok" for r in rows), rows
    assert len({r["key"] for r in rows}) == 12
    # 8 random candidates, then 4 chosen from screened pools of 200 by a predictor refitted on the results
    assert "evolution: the predictors screened" in out.stdout
    assert ", running " in out.stdout  # the progress line: done, failed, running, best per target
    # candidates predicted over the latency bound were answered without a trial; none was evaluated
    assert "met no target's bounds and were answered without a trial" in out.stdout
    assert all(r["infeasible"] == [] and r["latency_ms"]["bitserial-sim"] <= 0.014 for r in rows)
    for r in rows:
        assert r["estimate"] == "zico" and r["accuracy"] is None and r["score"] > 0 and 0 < r["cost_s"] < 60
    front = json.loads((run_dir / "pareto.json").read_text())["bitserial-sim"]
    assert front and all("score" in p for p in front)


def test_evolution_with_a_zero_cost_proxy_computed_at_level_one(tmp_path):
    cfg = write_yaml(
        tmp_path / "warm.yaml",
        {
            "name": "warm",
            "targets": ["xeon-avx512-ort", "bitserial-sim"],
            "seed": 2,
            "output_dir": str(tmp_path / "runs"),
            "search": {
                "latency_pricing": "layers",
                "sampler": "evolution",
                "num_candidates": 12,
                "max_concurrent": 2,
                "screen_pool": 200,
                "screen_proxy": "naswot",
                "screen_proxy_pool": 12,
                "screen_shortlist": 6,
                "screen_every": 2,
            },
            "accuracy": {"estimate": "zico", "proxy_batch_size": 32},
        },
    )
    run_dir, out = tmp_path / "run", searched(cfg, tmp_path / "run")
    rows = rows_of(run_dir)
    assert len(rows) == 12 and all(r["status"] == "ok" for r in rows), rows
    # NASWOT, computed in the Ray actors of level 1 on real digits, for the 12 of the startup pool (the 8 first
    # evaluated came from it), then for each screen's shortlists (6 per target) and any evaluated random candidate
    found = re.search(r"proxy naswot was computed for (\d+) candidates.*could not rank (\d+) of them", out.stdout)
    assert found, out.stdout[-2000:]
    assert 12 < int(found.group(1)) <= 12 + 2 * 2 * 6 + 4 and int(found.group(2)) < int(found.group(1))
    assert "zico score vs predicted latency" in out.stdout and "zico=" in out.stdout


def test_search_scored_by_a_supernet_trains_it_once(tmp_path):
    cfg = write_yaml(
        tmp_path / "sn.yaml",
        {
            "name": "sn",
            "targets": ["bitserial-sim"],
            "seed": 2,
            "output_dir": str(tmp_path / "runs"),
            "search": {"latency_pricing": "layers", "sampler": "nsga2", "num_candidates": 4, "max_concurrent": 2},
            "accuracy": {
                "estimate": "supernet",
                "supernet_epochs": 0.2,
                "supernet_qat_epochs": 0.05,
                "bn_samples": 128,
            },
            "constraints": {"bitserial-sim": {"size_bytes": 30000}},  # NSGA-II learns it through constraints_func
        },
    )
    run_dir = tmp_path / "run"
    out = subprocess.run(
        [*NASQ, "search", str(cfg), "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    record = json.loads((run_dir / "estimate.json").read_text())
    assert record["estimate"] == "supernet" and record["train_seconds"] > 0 and not record["reused"]
    assert Path(record["checkpoint"]) == run_dir / "supernet.pt" and (run_dir / "supernet.pt").exists()
    rows = rows_of(run_dir)
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows), rows
    for r in rows:
        assert r["estimate"] == "supernet" and 0.0 <= r["accuracy"] <= 1.0 and r["score"] == r["accuracy"]
        assert r["size_bytes"] <= 30000 and r["infeasible"] == []
    assert out.stdout.count("supernet: trained in") == 1


def test_search_with_a_fidelity_schedule_stops_candidates_early(tmp_path):
    """Short training scored at 1/3 and then all of its epochs; multi-objective ASHA stops the candidates
    that rank in the lower two thirds at the first rung (one trial at a time, so the order is fixed)."""
    cfg = write_yaml(
        tmp_path / "asha.yaml",
        {
            "name": "asha",
            "targets": ["bitserial-sim"],
            "seed": 3,
            "output_dir": str(tmp_path / "runs"),
            "search": {"latency_pricing": "layers", "sampler": "random", "num_candidates": 6, "max_concurrent": 1},
            "accuracy": {
                "train_epochs": 0.3,
                "finetune_epochs": 0.15,
                "schedule": "asha",
                "rungs": 2,
                "reduction_factor": 3,
            },
        },
    )
    run_dir = tmp_path / "run"
    out = subprocess.run(
        [*NASQ, "search", str(cfg), "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = rows_of(run_dir)
    assert len(rows) == 6 and {r["status"] for r in rows} <= {"ok", "stopped"}, rows
    stopped = [r for r in rows if r["status"] == "stopped"]
    full = [r for r in rows if r["status"] == "ok"]
    assert stopped and full, rows
    assert all(abs(r["fidelity"] - 1 / 3) < 1e-9 for r in stopped) and all(r["fidelity"] == 1.0 for r in full)
    assert all(0.0 <= r["score"] <= 1.0 and r["score"] == r["accuracy"] for r in rows)
    assert "stopped early" in out.stdout and "at fidelity 0.333" in out.stdout
    front = json.loads((run_dir / "pareto.json").read_text())["bitserial-sim"]
    assert {p["cid"] for p in front} <= {r["cid"] for r in full}  # lower-fidelity scores are not compared
    assert "stopped" in (run_dir / "results.csv").read_text()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_search_runs_across_a_real_multi_node_ray_cluster_with_authentication(tmp_path, env):
    """A head and a worker node on loopback, token authentication on (as Ray 2.60 requires it handed to
    every node and to the driver), 1 CPU each: trials must run on both nodes."""
    import secrets

    ray_cli = str(Path(sys.executable).parent / "ray")
    port = _free_port()
    cluster_env = {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_worker_niceness": "0"}
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    try:
        for cmd in (
            [ray_cli, "start", "--head", "--port", str(port), "--include-dashboard", "false", *common],
            [ray_cli, "start", "--address", f"127.0.0.1:{port}", *common],
        ):
            out = subprocess.run(cmd, capture_output=True, text=True, env=cluster_env, timeout=180)
            assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        cfg = write_yaml(
            tmp_path / "c.yaml",
            {
                "name": "cluster",
                "targets": ["bitserial-sim"],
                "seed": 3,
                "output_dir": str(tmp_path / "runs"),
                "search": {"latency_pricing": "layers", "sampler": "random", "num_candidates": 4, "max_concurrent": 2},
                "accuracy": {"train_epochs": 0.3, "finetune_epochs": 0.2},
            },
        )
        run_dir = tmp_path / "run"  # on storage every node sees (one machine here)
        wrong = subprocess.run(
            [*NASQ, "search", str(cfg), "--run-dir", str(tmp_path / "nope"), "--address", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=300,
            env={**cluster_env, "RAY_AUTH_TOKEN": "not-the-token"},
        )
        assert wrong.returncode == 2 and wrong.stderr.strip().splitlines() == [
            l for l in wrong.stderr.strip().splitlines() if l.startswith("nasq: error: cannot connect")
        ], wrong.stderr[-2000:]
        assert "token" in wrong.stderr and not (tmp_path / "nope").exists()
        out = subprocess.run(
            [*NASQ, "search", str(cfg), "--run-dir", str(run_dir), "--address", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            env=cluster_env,
            timeout=600,
        )
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        rows = rows_of(run_dir)
        assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
        assert len({r["node"] for r in rows}) == 2, [r["node"] for r in rows]  # both nodes evaluated candidates
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, env=cluster_env, timeout=120)


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist_cnn"


def test_a_trained_model_compressed_for_two_targets_against_the_original(tmp_path):
    """The user's own trained ResNet (the shipped example, copied to a folder of the user's, named by relative paths)
    in by config: candidates start from its trained weights, and `nasq best` exports and measures the found model
    beside the original in float and in uniform int8."""
    from conftest import write_profile

    shutil.copytree(EXAMPLE, tmp_path / "my_model")
    write_profile(tmp_path / "profiles" / "this-cpu-ort.json")  # a profile that says it is of this machine
    env = {**os.environ, "NASQ_PROFILE_PATH": str(tmp_path / "profiles")}
    cfg = write_yaml(
        tmp_path / "c.yaml",
        {
            "name": "mine",
            "targets": ["this-cpu-ort", "bitserial-sim"],
            "output_dir": "runs",
            "model": {
                "factory": "my_model/model.py:small_resnet",
                "weights": "my_model/small_resnet.pt",
                "input_shape": [1, 28, 28],
                "bits": [8, 32],
                "prune_ratios": [0.0, 0.25, 0.5],
            },
            "search": {"sampler": "random", "num_candidates": 3, "max_concurrent": 2},
            "accuracy": {"finetune_epochs": 0.3},
            "best": {"finetune_epochs": 0.2, "measure_repetitions": 20, "original_qat": True},
        },
    )
    out = subprocess.run(
        [*NASQ, "search", str(cfg), "--run-dir", "run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "14 layers to quantize, 8 channel groups to prune, 13 BatchNorms folded" in out.stdout
    rows = rows_of(tmp_path / "run")
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows), [r["reason"] for r in rows]
    # the search starts from the trained model itself, unpruned, at 8 bits and at float: from the trained weights,
    # a third of an epoch keeps its accuracy (from scratch it reaches nowhere near it), then pruned by 0.25 throughout
    pruned = {r["cid"]: any(v > 0 for k, v in json.loads(r["key"]).items() if k.endswith(".prune")) for r in rows}
    assert sorted(pruned.values()) == [False, False, True]
    assert min(r["accuracy"] for r in rows if not pruned[r["cid"]]) > 0.95
    recorded = json.loads((tmp_path / "run" / "nasq_run.json").read_text())["config"]["model"]
    assert recorded["factory"] == f"{tmp_path / 'my_model' / 'model.py'}:small_resnet"  # absolute in the run
    best = subprocess.run(
        [*NASQ, "best", "run", "--target", "this-cpu-ort", "--out", "best"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert best.returncode == 0, best.stderr[-3000:]
    report = json.loads((tmp_path / "best" / "report.json").read_text())
    models = report["models"]
    assert set(models) == {"candidate", "float", "int8", "original", "original_int8", "original_int8_qat"}
    assert models["original_int8_qat"]["executed_ops"].get("QLinearConv", 0) > 0
    assert models["original_int8_qat"]["train_seconds"] > models["original_int8"]["train_seconds"]  # fine-tuned
    assert models["original"]["test_accuracy_onnxruntime"] > 0.97  # the trained model, exported as it is
    assert models["original_int8"]["executed_ops"].get("QLinearConv", 0) > 0
    for m in models.values():
        assert m["measured_latency_ms"] > 0 and m["predicted_latency_ms"] > 0
    # the latency the search used is the exported graph's, as nasq predict prices the file best wrote
    assert report["search"]["predicted_latency_ms"] == pytest.approx(
        models["candidate"]["predicted_latency_ms"], rel=0.05
    )
    # int8 weights take a byte each, float ones four: the original in int8 is much smaller than in float
    assert models["original_int8"]["size_bytes"] < 0.5 * models["original"]["size_bytes"]
    assert (
        "Against the original (measured latency, test accuracy): searched"
        in (tmp_path / "best" / "report.md").read_text()
    )
