"""``nasq best``: choose a run's best candidate for a target, rebuild it from its key, fine-tune it,
export it, and measure it beside two baselines of the same architecture and weights (float, and
uniform int8); for a run on a trained model, also beside that model as the user gave it (float) and uniformly
quantized to int8 after training, with speed-ups and accuracy drops against it.

Writes ``OUT/model.onnx`` (plus ``model_float.onnx``, ``model_int8.onnx``, and for a trained model
``original.onnx`` and ``original_int8.onnx``, and ``original_int8_qat.onnx`` with ``best.original_qat``),
``OUT/report.json`` and ``OUT/report.md``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from nasq.errors import NasqError
from nasq.fileio import StagedDir, check_creatable_dir, write_json_atomic, write_text_atomic

MODEL_FILES = {
    "candidate": "model.onnx",
    "float": "model_float.onnx",
    "int8": "model_int8.onnx",
    "original": "original.onnx",
    "original_int8": "original_int8.onnx",
    "original_int8_qat": "original_int8_qat.onnx",
}
#: what each model is, in the report
MODEL_NAMES = {
    "candidate": "searched (mixed precision, pruned)",
    "float": "float baseline",
    "int8": "uniform int8 baseline",
    "original": "original (float, as trained)",
    "original_int8": "original, uniform int8 (post-training)",
    "original_int8_qat": "original, uniform int8 (quantization-aware)",
}


def onnx_accuracy(path: Path, x: np.ndarray, y: np.ndarray, *, batch_size: int = 250) -> float:
    from nasq.ort import session

    sess = session(path, threads=1)
    logits = np.concatenate([sess.run(None, {"input": x[i : i + batch_size]})[0] for i in range(0, len(x), batch_size)])
    return float((logits.argmax(1) == y).mean())


def retrieve_best(
    run_dir: str | Path,
    *,
    target: str,
    max_latency_ms: float | None,
    out_dir: str | Path,
    log=print,
    max_accuracy_drop: float | None = None,
    module=None,
) -> dict[str, Any]:
    """Rebuild, fine-tune, export and measure the run's best candidate for ``target`` beside its baselines (see the
    module docstring); ``module``: the model, for a run whose model was handed over in Python."""
    from nasq.search.run_dir import load_run

    run_dir, marker, cfg = load_run(run_dir)  # a bad run directory or config is said before torch loads
    if target not in cfg.targets:
        raise NasqError(f"'{target}' is not a target of this run; its targets: {', '.join(cfg.targets)}")
    import torch

    from nasq.experiment import dataset_for, space_for
    from nasq.export import EXPORTERS
    from nasq.hardware_profiles import create_predictor
    from nasq.hardware_profiles.measurement import (
        at_profile_speed,
        backend_for,
        drift_anchors,
        drift_summary,
        export_networks,
    )
    from nasq.hardware_profiles.profile import Profile
    from nasq.predict import latency_of_file, prices_onnx
    from nasq.search.results import ResultsTable, score_text, select_best
    from nasq.spaces.base import with_uniform_bits
    from nasq.train import TrainSchedule, accuracy, compress_and_train

    rows = ResultsTable(run_dir, cfg.targets).rows()
    if max_accuracy_drop is not None and max_latency_ms is not None:
        raise NasqError("give --max-latency-ms or --max-accuracy-drop, not both")
    if max_accuracy_drop is not None and cfg.space != "from-model":
        raise NasqError(
            "--max-accuracy-drop needs a run on a trained model (a config with a model block): it is "
            "measured against the original's accuracy"
        )
    space, data = space_for(cfg, module=module), dataset_for(cfg)
    floor = None
    if max_accuracy_drop is not None:
        original_val = accuracy(space.original, data.val)
        floor = (
            original_val - max_accuracy_drop / 100,
            f"the original's {original_val:.4f} less "
            f"{max_accuracy_drop:g} point{'' if max_accuracy_drop == 1 else 's'}",
        )
    confirming = floor is not None and cfg.best.confirm > 0
    try:
        row, why = select_best(rows, target, max_latency_ms, floor)
    except NasqError:
        if not confirming:
            raise
        row, why = None, ""  # none reached it in the search; one fine-tuned longer still may
    out_dir = check_creatable_dir(out_dir, "output directory")  # made whole at the end
    profile = Profile.from_dict(marker["profiles"][target], f"{target} (as used by the run)")
    if (warning := profile.mismatch_warning(target)) is not None:
        print(f"{warning}; its models are not measured here", file=sys.stderr, flush=True)
    predictor = create_predictor(profile)

    torch.set_num_threads(1)
    a = cfg.accuracy
    schedule = TrainSchedule(
        cfg.best.train_epochs,
        cfg.best.finetune_epochs,
        a.batch_size,
        a.lr,
        a.finetune_lr,
        a.distill_temperature,
        a.distill_weight,
    )
    confirmed: list[dict[str, Any]] = []
    trained = None
    if confirming:  # the search fine-tuned each candidate briefly: faster ones may meet the bound after the full one
        row, why, trained, confirmed = confirm_faster(
            rows, target, floor, row, why, cfg, space, data, schedule, profile, log
        )
    candidate = space.validate(json.loads(row["key"]))
    log(
        f"best for {target}: {row['cid']} ({why}); search {score_text(row)}, "
        f"predicted {row['latency_ms'][target]:.4g} ms"
    )
    variants = {  # the same architecture and pruning, with the candidate's, all-float and all-8-bit widths
        "candidate": candidate,
        "float": with_uniform_bits(candidate, 32, space),
        "int8": with_uniform_bits(candidate, 8, space),
    }
    pretrained = getattr(space, "pretrained", False)
    if pretrained:  # the user's model as given, and uniformly int8 after training: no fine-tuning for either
        unpruned = space.unpruned(candidate)
        variants.update(
            original=with_uniform_bits(unpruned, 32, space), original_int8=with_uniform_bits(unpruned, 8, space)
        )
        if cfg.best.original_qat:  # and int8 fine-tuned quantization-aware, distilled, as candidates are
            variants["original_int8_qat"] = variants["original_int8"]

    def widths(variant: dict) -> list[tuple]:
        return [(l.name, l.w_bits, l.a_bits) for l in space.layers(variant)]

    # a candidate that is all float (or all 8-bit) is its own baseline: trained, exported and measured once
    same = {plan for plan in ("float", "int8") if widths(variants[plan]) == widths(candidate)}
    exporter = EXPORTERS.create("onnx")
    results: dict[str, dict[str, Any]] = {}
    with StagedDir(out_dir, "report.json") as stage:  # a kill leaves all of the files or none
        tmp = stage.path
        paths = {}
        for plan, variant in variants.items():
            if plan in same:
                paths[plan] = Path(tmp) / MODEL_FILES[plan]
                shutil.copyfile(paths["candidate"], paths[plan])
                results[plan] = {**results["candidate"], "file": MODEL_FILES[plan], "same_as": "candidate"}
                log(f"{plan}: the searched model itself (all its layers are {'float' if plan == 'float' else '8-bit'})")
                continue
            plan_schedule = schedule
            if plan == "original_int8_qat":
                log(
                    f"{plan}: the trained model in int8, fine-tuned {schedule.finetune_epochs} epochs quantization-aware "
                    "and distilled from the original"
                )
            elif plan.startswith("original"):
                plan_schedule = dataclasses.replace(schedule, finetune_epochs=0.0)
                log(
                    f"{plan}: the trained model{', quantized to int8 after training' if plan == 'original_int8' else ''}"
                )
            elif plan == "candidate" and trained is not None:
                log(f"{plan}: the model fine-tuned to confirm it")
            elif pretrained:
                log(
                    f"{plan}: rebuilding from its key and the trained weights, fine-tuning {schedule.finetune_epochs} "
                    "epochs distilled from the original"
                )
            else:
                log(
                    f"{plan}: rebuilding from its key, training {schedule.train_epochs} + fine-tuning "
                    f"{schedule.finetune_epochs} epochs"
                )
            if plan == "candidate" and trained is not None:  # fine-tuned already, to confirm it
                model, train_s = trained
            else:
                model, train_s = compress_and_train(space, variant, data, plan_schedule, seed=cfg.seed, target=profile)
            layers = space.layers(variant)
            bits = {l.name: (l.w_bits, l.a_bits) for l in layers}
            paths[plan] = Path(tmp) / MODEL_FILES[plan]
            info = exporter.export(model, bits, profile, data.train.x, paths[plan])
            results[plan] = {
                "file": MODEL_FILES[plan],
                "size_bytes": paths[plan].stat().st_size,  # the exported file: int8 weights take a byte each
                "val_accuracy_torch": accuracy(model, data.val),
                "test_accuracy_onnxruntime": onnx_accuracy(paths[plan], data.test.x, data.test.y),
                "predicted_latency_ms": (
                    latency_of_file(paths[plan].read_bytes(), profile)
                    if prices_onnx(profile)
                    else predictor.predict_candidate(space, variant).total_ms
                ),
                "measured_latency_ms": None,
                "train_seconds": round(train_s, 1),
                "layer_modes": info.layer_modes,
                "executed_ops": info.executed_ops,
            }
            log(f"{plan}: test accuracy (ONNX Runtime) {results[plan]['test_accuracy_onnxruntime']:.3f}")
        measurable = profile.measurable()
        measurement: dict[str, Any] = {"measured": measurable}
        if measurable:  # on the target itself: this machine, or the remote device the profile was measured on
            batch = int(profile.metadata.get("batch_size", 1))
            reps = cfg.best.measure_repetitions
            t0 = time.time()
            # beside them, some of the networks the profile was calibrated on: how much faster or slower this
            # machine runs now than when it was profiled (a shared machine's speed drifts)
            anchors, then = drift_anchors(space, profile)
            anchor_models, anchor_feeds = export_networks(space, anchors, profile, log=lambda m: None)
            plans = [p for p in variants if p not in same]
            backend = backend_for(profile)
            measured_run = backend.measure_models(
                [paths[p].read_bytes() for p in plans] + anchor_models,
                [{"input": data.test.x[:batch]}] * len(plans) + anchor_feeds,
                repetitions=reps,
                min_seconds=10,
            )
            medians = measured_run.latency_ms
            gauged = at_profile_speed(measured_run, len(plans), then) or [None] * len(plans)
            for plan, ms, at_speed in zip(plans, medians, gauged):
                results[plan]["measured_latency_ms"] = ms
                results[plan]["measured_at_profile_speed_ms"] = at_speed
            for plan in same:
                for key in ("measured_latency_ms", "measured_at_profile_speed_ms"):
                    results[plan][key] = results["candidate"][key]
            measurement.update(
                repetitions=reps,
                runtime=profile.metadata.get("runtime"),
                threads=profile.metadata.get("threads"),
                batch_size=batch,
                statistic="median, interleaved",
                seconds=round(time.time() - t0, 1),
            )
            if anchors:
                measurement["drift"] = drift_summary(medians[len(plans) :], then, measured_run)
        else:
            measurement["why_not"] = f"target '{target}' is {profile.machine_mismatch()}"

        cand = results["candidate"]
        layers = space.layers(candidate)
        report = {
            "target": target,
            "run_dir": str(run_dir),
            "cid": row["cid"],
            "key": row["key"],
            "chosen_because": why,
            "confirmed": confirmed,
            "max_latency_ms": max_latency_ms,
            "search": {
                "estimate": row.get("estimate"),
                "score": row["score"],
                "accuracy": row.get("accuracy"),
                "predicted_latency_ms": row["latency_ms"][target],
            },
            "fine_tune": {
                "train_epochs": 0.0 if pretrained else schedule.train_epochs,
                "finetune_epochs": schedule.finetune_epochs,
                "from_trained_weights": pretrained,
            },
            "layers": [{**l.to_dict(), "exported_as": cand["layer_modes"][l.name]} for l in layers],
            "simulated_layers": [n for n, m in cand["layer_modes"].items() if m == "simulated"],
            "simulated_note": simulated_note(
                profile, cand["layer_modes"], {l.name: (l.w_bits, l.a_bits) for l in layers}
            ),
            "models": results,
            "dominated_by": dominating_baselines(results),
            "measurement": {**measurement, "device": profile.metadata.get("device")},
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        write_json_atomic(tmp / "report.json", report)
        write_text_atomic(tmp / "report.md", render_markdown(report))
        stage.commit()
    log((out_dir / "report.md").read_text())
    return report


def confirm_faster(rows, target, floor, row, why, cfg, space, data, schedule, profile, log):
    """Fine-tune, as the final model, up to ``best.confirm`` candidates faster than ``row`` (the search's pick, or
    None) whose search-time accuracy is within ``best.confirm_margin`` points of ``floor``, fastest first; the first
    whose validation accuracy meets it replaces ``row``. Returns (row, why, (model, seconds) or None, the tried)."""
    from nasq.search.results import confirmation_shortlist
    from nasq.train import accuracy, compress_and_train

    bound, what = floor
    shortlist = confirmation_shortlist(rows, target, bound, cfg.best.confirm_margin / 100, cfg.best.confirm, than=row)
    if shortlist:
        log(
            f"confirming {len(shortlist)} faster candidate(s) whose search accuracy is within "
            f"{cfg.best.confirm_margin:g} points of the bound, fastest first, each fine-tuned as the final model"
        )
    confirmed = []
    for r in shortlist:
        model, train_s = compress_and_train(
            space, space.validate(json.loads(r["key"])), data, schedule, seed=cfg.seed, target=profile
        )
        val = accuracy(model, data.val)
        confirmed.append(
            {
                "cid": r["cid"],
                "search_accuracy": r["accuracy"],
                "val_accuracy": val,
                "predicted_latency_ms": r["latency_ms"][target],
                "met": val >= bound,
            }
        )
        log(
            f"  {r['cid']}: predicted {r['latency_ms'][target]:.4g} ms, search acc={r['accuracy']:.3f}, after the "
            f"fine-tune {val:.4f}: {'meets' if val >= bound else 'misses'} {bound:.4f}"
        )
        if val >= bound:
            return (
                r,
                f"fastest of {len(confirmed)} confirmed with validation accuracy at least {bound:.4f} ({what}) "
                "after the final fine-tune",
                (model, train_s),
                confirmed,
            )
    if row is None:
        top = max((r.get("accuracy") or 0.0) for r in rows if r.get("status") == "ok") if rows else 0.0
        raise NasqError(
            f"no candidate reached validation accuracy {bound:.4f} ({what}), in the search (the most "
            f"accurate has {top:.4f}) or after the final fine-tune of {len(confirmed)}"
        )
    return row, why, None, confirmed


def dominating_baselines(models: dict[str, dict[str, Any]]) -> list[str]:
    """The baselines at least as accurate as the searched model (ONNX Runtime test accuracy) and faster
    than it: measured latency where all were measured, else predicted. The search's front holds the
    candidates it evaluated, not the float or int8 version of each, so such a baseline can beat the
    model it retrieved. A baseline that is the searched model itself (``same_as``) never beats it."""
    cand = models["candidate"]
    which = (
        "measured_latency_ms"
        if all(m.get("measured_latency_ms") is not None for m in models.values())
        else "predicted_latency_ms"
    )
    return [
        plan
        for plan, m in models.items()
        if plan != "candidate"
        and not m.get("same_as")
        and m["test_accuracy_onnxruntime"] >= cand["test_accuracy_onnxruntime"]
        and m.get(which) is not None
        and cand.get(which) is not None
        and m[which] < cand[which]
    ]


def against_original(models: dict[str, dict[str, Any]], which: str, names: dict[str, str] = MODEL_NAMES) -> str:
    """Each model's speed-up and accuracy change against the original, on ``which`` latency (measured or predicted)."""
    base = models["original"]
    parts = []
    for plan in ("candidate", "original_int8", "original_int8_qat", "float", "int8"):
        m = models.get(plan)
        if m is None or m.get("same_as") or not m.get(f"{which}_latency_ms") or not base.get(f"{which}_latency_ms"):
            continue
        speedup = base[f"{which}_latency_ms"] / m[f"{which}_latency_ms"]
        drop = 100 * (m["test_accuracy_onnxruntime"] - base["test_accuracy_onnxruntime"])
        parts.append(f"{names[plan]} {speedup:.2f}x ({drop:+.1f} points)")
    return f"Against the original ({which} latency, test accuracy): " + "; ".join(parts)


def simulated_note(profile, modes: dict[str, str], bits: dict[str, tuple[int, int]]) -> str:
    simulated = [n for n, m in modes.items() if m == "simulated"]
    if not simulated:
        return ""
    native = [n for n in simulated if profile.runs_natively(*bits[n])]
    note = (
        f"{len(simulated)} layer(s) are exported as simulated (fake-quantized) float, since ONNX Runtime has no "
        "kernel for their bit-widths: they compute exactly what was trained, in float, with elementwise "
        "arithmetic in front of each quantized activation"
    )
    if native:
        note += (
            f"; {len(native)} of them run natively on {profile.name}, whose latency is predicted "
            "for their real bit-widths"
        )
    else:
        note += f"; {profile.name} cannot run them natively either, and prices them as float plus that arithmetic"
    return note


def render_markdown(report: dict[str, Any]) -> str:
    from nasq.hardware_profiles.measurement import format_spread
    from nasq.spaces.base import restructured

    def ms(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    lines = [
        f"# nasq best model for `{report['target']}`",
        "",
        f"Candidate `{report['cid']}`, chosen as the {report['chosen_because']}.",
        "",
    ]
    missed = [c for c in report.get("confirmed", []) if not c["met"]]
    if missed:
        lines += [
            "Faster candidates fine-tuned in full first, below the bound: "
            + ", ".join(
                f"`{c['cid']}` ({c['predicted_latency_ms']:.4g} ms, validation {c['val_accuracy']:.4f})" for c in missed
            )
            + ".",
            "",
        ]
    lines += [
        "| model | test accuracy (ONNX Runtime) | size (bytes) | predicted latency (ms) | measured latency (ms) |",
        "|---|---|---|---|---|",
    ]
    names = {p: MODEL_NAMES[p] for p in report["models"]}
    key = report.get("key")  # (the candidate; a report without one is taken as pruned)
    pruned = key is None or restructured(json.loads(key))
    for plan, what in (("float", "all float"), ("int8", "all 8-bit")):
        if report["models"][plan].get("same_as") == "candidate":
            names["candidate"] = f"searched ({what}, pruned)"
    if not pruned:
        names["candidate"] = names["candidate"].replace(", pruned)", ", unpruned)")
    for plan, name in names.items():
        m = report["models"][plan]
        if m.get("same_as"):
            name += " (the searched model itself)"
        size = f"{m['size_bytes']:,}" if m.get("size_bytes") is not None else "n/a"
        lines.append(
            f"| {name} | {m['test_accuracy_onnxruntime']:.3f} | {size} | {ms(m['predicted_latency_ms'])} | "
            f"{ms(m['measured_latency_ms'])} |"
        )
    searched = report.get("search", {}).get("predicted_latency_ms")
    if searched is not None:
        found = report["models"]["candidate"]["predicted_latency_ms"]
        lines += [
            "",
            f"The search priced the searched model at {ms(searched)} ms; its export here prices at "
            f"{ms(found)} ms ({(found / searched - 1) * 100:+.1f}%).",
        ]
    meas = report["measurement"]
    lines.append("")
    if meas["measured"]:
        lines.append(
            f"Measured on {meas['device']}: median of {meas['repetitions']} interleaved runs, "
            f"{meas['threads']} thread(s), batch {meas['batch_size']}."
        )
        if meas.get("drift"):
            d = meas["drift"]
            lines.append(
                f"Machine drift: {d['networks']} of the profile's calibration networks, measured in the same "
                f"run, took {d['median_ratio']:.2f}x their profiling-time latency (range {d['min_ratio']:.2f}-"
                f"{d['max_ratio']:.2f}); predictions at this speed: "
                + ", ".join(
                    f"{names[p]} {ms(report['models'][p]['predicted_latency_ms'] * d['median_ratio'])} ms"
                    for p in names
                )
                + "."
            )
            if d.get("spread"):
                lines.append(
                    f"Noise: {format_spread(d['spread'])}; differences between predicted and measured within "
                    "these figures are the machine's."
                )
        if all(report["models"][p].get("measured_at_profile_speed_ms") for p in names):
            lines.append(
                "Measured at the profile's speed (every round gauged by the profile's calibration networks "
                "timed in it, or without them by its reference layer), against predicted: "
                + ", ".join(
                    f"{names[p]} {ms(report['models'][p]['measured_at_profile_speed_ms'])} ms against "
                    f"{ms(report['models'][p]['predicted_latency_ms'])}"
                    for p in names
                )
                + "."
            )
    else:
        lines.append(f"Not measured: {meas['why_not']}.")
    which = "measured" if meas["measured"] else "predicted"
    if "original" in report["models"]:
        lines.append(against_original(report["models"], which, names) + ".")
    for plan in report.get("dominated_by", []):
        m, c = report["models"][plan], report["models"]["candidate"]
        lines.append(
            f"**The {names[plan]} beats the searched model**: {which} {ms(m[f'{which}_latency_ms'])} ms against "
            f"{ms(c[f'{which}_latency_ms'])}, test accuracy {m['test_accuracy_onnxruntime']:.3f} against "
            f"{c['test_accuracy_onnxruntime']:.3f}; ship `{MODEL_FILES[plan]}` instead, or search longer."
        )
    modes: dict[str, int] = {}
    for layer in report["layers"]:
        modes[layer["exported_as"]] = modes.get(layer["exported_as"], 0) + 1
    lines.append(f"Layers exported as: {', '.join(f'{k} {v}' for k, v in sorted(modes.items()))}.")
    if report["simulated_note"]:
        lines.append(report["simulated_note"] + ".")
    search = report["search"]
    scored = (
        f"Search-time validation accuracy {search['accuracy']:.3f}"
        if search.get("accuracy") is not None
        else f"Search-time score {search['score']:.4g} ({search.get('estimate')}; no accuracy measured in the search)"
    )
    if report["fine_tune"].get("from_trained_weights"):
        lines.append(
            f"{scored}. The searched model and its float and int8 baselines (which share its pruning) were "
            f"rebuilt from the key and the trained weights and fine-tuned {report['fine_tune']['finetune_epochs']} "
            "epochs with distillation from the original (float with BatchNorms after pruning, then "
            "quantization-aware); the original and its post-training int8 version were not fine-tuned"
            + (
                ""
                if "original_int8_qat" not in report["models"]
                else ", its quantization-aware int8 version was, as long, distilled"
            )
            + "."
        )
    else:
        lines.append(
            f"{scored}. Each model was rebuilt from "
            f"the key and trained {report['fine_tune']['train_epochs']} + {report['fine_tune']['finetune_epochs']} "
            "epochs (float, then pruned and quantization-aware); baselines share its architecture and pruning."
        )
    return "\n".join(lines) + "\n"
