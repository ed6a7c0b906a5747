"""How a search prices candidates, how fast, and how close that is to ``nasq predict`` on the exported model.

For trained-model spaces (``from-model``) of two ResNets, the shipped small ResNet (trained on MNIST-5k) and a
ResNet-18 (ImageNet-sized, 3x224x224, untrained: pricing reads shapes, not weights), on a profile of an ONNX Runtime
CPU (shipped, so that every machine prices the same way) and on ``bitserial-sim``:

1. **Screening price** (``search.latency_pricing: layers``, what the evolution's screen and constraints use): the
   candidate's layer list priced by the profile's predictor; candidates per second on one core, layer list included.
2. **Graph price** (``search.latency_pricing: graph``, the default for every evaluated candidate): the network built
   untrained, exported for each target and priced from that ONNX graph (``nasq.predict.exported_latencies``);
   seconds per candidate.
3. **Agreement with nasq predict on the model nasq best writes**: small-ResNet candidates fine-tuned on MNIST-5k
   (a short distilled fine-tune, calibrated on real data, exported as ``nasq best`` exports) and priced by
   ``nasq predict``'s function, against the search's graph price of the same candidate; and how far the screening
   price is from it.

    python benchmarks/latency_pricing.py [--candidates 2000] [--agreement 12] [--profile epyc-zen5-avx512-ort]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from _common import ROOT, publish

SECTION = "Latency pricing of candidates (search against nasq predict)"
MODELS = {  # name -> (factory, weights, input shape)
    "small ResNet (MNIST-5k, trained)": (
        "examples/mnist_cnn/model.py:small_resnet",
        "examples/mnist_cnn/small_resnet.pt",
        (1, 28, 28),
    ),
    "ResNet-18 (3x224x224, untrained)": ("examples/mnist_cnn/model.py:resnet18", "", (3, 224, 224)),
}


def space_of(factory: str, weights: str, shape) -> object:
    from nasq.models.loading import ModelSpec
    from nasq.spaces.from_model import ModelSpace, ModelSpaceOptions

    spec = ModelSpec(
        str(ROOT / factory.split(":")[0]) + ":" + factory.split(":")[1],
        str(ROOT / weights) if weights else "",
        tuple(shape),
    )
    return ModelSpace(spec, ModelSpaceOptions(bits=(4, 8, 32)))


def screening_rate(space, predictors, n: int) -> float:
    """Candidates per second: layer list plus one prediction per target (sampling excluded)."""
    cands = [space.sample(seed) for seed in range(n)]
    t0 = time.perf_counter()
    for c in cands:
        layers = space.layers(c)
        for p in predictors.values():
            p.predict_candidate(space, c, layers)
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=2000, help="candidates priced for the screening rate")
    parser.add_argument("--graph-candidates", type=int, default=5, help="candidates priced from their graphs")
    parser.add_argument("--agreement", type=int, default=12, help="small-ResNet candidates fine-tuned and exported")
    parser.add_argument("--profile", default="epyc-zen5-avx512-ort", help="the ONNX Runtime profile priced on")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    import onnx
    import torch

    from nasq.data import load_mnist
    from nasq.export import EXPORTERS
    from nasq.hardware_profiles import create_predictor, load_profile
    from nasq.hardware_profiles.machine import describe, this_machine
    from nasq.predict import exported_latencies, predict_model
    from nasq.train import TrainSchedule, compress_and_train

    torch.set_num_threads(1)
    profiles = {name: load_profile(name) for name in (args.profile, "bitserial-sim")}
    predictors = {name: create_predictor(p) for name, p in profiles.items()}
    started = time.time()
    lines = []
    spaces = {}
    for label, (factory, weights, shape) in MODELS.items():
        space = spaces[label] = space_of(factory, weights, shape)
        rate = screening_rate(space, predictors, args.candidates)
        t0 = time.perf_counter()
        for seed in range(args.graph_candidates):
            exported_latencies(space, space.sample(10_000 + seed), profiles)
        graph_s = (time.perf_counter() - t0) / args.graph_candidates
        n_layers = len(space.layers(space.sample(0)))
        lines.append(f"| {label} | {n_layers} | {len(space.trace.groups)} | {rate:,.0f} | {graph_s:.2f} |")
        print(lines[-1], flush=True)

    space = spaces[next(iter(MODELS))]
    data = load_mnist()
    schedule = TrainSchedule(0.0, 0.1, 64, 0.01, 0.003)
    exporter = EXPORTERS.create("onnx")
    rows = {name: [] for name in profiles}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.agreement):
            cand = space.sample(20_000 + i)
            searched = exported_latencies(space, cand, profiles)
            screened = {t: p.predict_candidate(space, cand).total_ms for t, p in predictors.items()}
            bits = {l.name: (l.w_bits, l.a_bits) for l in space.layers(cand)}
            for name, profile in profiles.items():
                model, _ = compress_and_train(space, cand, data, schedule, seed=i, target=profile)
                path = Path(tmp) / f"{i}-{name}.onnx"
                exporter.export(model, bits, profile, data.train.x, path)
                best = predict_model(onnx.load(str(path)), profile)["latency_ms"]
                rows[name].append((searched[name] / best, screened[name] / best))
            print(f"agreement {i + 1}/{args.agreement}", flush=True)

    def spread(ratios) -> str:
        errs = [abs(r - 1) for r in ratios]
        return f"median {statistics.median(errs):.1%}, max {max(errs):.1%} (ratios {min(ratios):.3f}-{max(ratios):.3f})"

    agreement = [f"| {name} | {spread([a for a, _ in r])} | {spread([b for _, b in r])} |" for name, r in rows.items()]
    when = dt.date.today().isoformat()
    text = "\n".join(
        [
            f"## {SECTION}",
            "",
            f"`python benchmarks/latency_pricing.py --candidates {args.candidates} --agreement {args.agreement} "
            f"--profile {args.profile}` on {describe(this_machine())}, {when}; one torch thread; "
            f"{time.time() - started:.0f} s in all. Spaces: `from-model` of each network, prune ratios "
            "0/0.25/0.5/0.75 per channel group, bits 4/8/32 per layer. Targets: "
            f"`{args.profile}` (shipped; the kernels are read from this machine's ONNX Runtime) and `bitserial-sim`.",
            "",
            "Screening price: a candidate's layer list priced on both targets (the evolution's screen, constraints). "
            "Graph price: the network built untrained, exported for each target and priced from its ONNX graph, what "
            "the search records for every evaluated candidate (`search.latency_pricing: graph`).",
            "",
            "| model | layers | channel groups | screening price (candidates/s) | graph price (s/candidate) |",
            "|---|---|---|---|---|",
            *lines,
            "",
            f"Against `nasq predict` on the model `nasq best` would write ({args.agreement} small-ResNet candidates, each "
            "fine-tuned 0.1 epoch with distillation on MNIST-5k, calibrated on real data, exported per target): "
            "relative error of the search's graph price and of the screening price.",
            "",
            "| target | graph price (what the search records) | screening price |",
            "|---|---|---|",
            *agreement,
            "",
        ]
    )
    publish(text, SECTION, write=not args.no_write)


if __name__ == "__main__":
    main()
