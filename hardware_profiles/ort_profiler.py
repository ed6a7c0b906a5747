"""ONNX Runtime on the local CPU: measured fp32 and int8 per-layer costs, boundaries, call overhead.

For each layer shape a one-layer ONNX graph (with random weights) is built in fp32 and quantized to
int8 QDQ with ORT's own tools; both are timed round-robin with ``repetitions`` runs after warm-up.
The per-call overhead (an Identity graph) is subtracted from every layer, and from int8 layers the
cost of the boundaries at their edges (Quantize + NCHW->NHWC Transpose in, the reverse out), measured
separately as a linear function of the tensor size, so that the predictor can add boundaries only
where precision really changes. The float
arithmetic that simulates a sub-8-bit activation in an exported model (Div, Round, Add, Clip, Sub,
Mul) is measured the same way, since such layers run in fp32 with that chain in front.
"""

from __future__ import annotations

import datetime as _dt
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nasq.hardware_profiles.calibration import calibrate_and_select, calibrate_onnx_pricing
from nasq.hardware_profiles.costs import linear_ms
from nasq.hardware_profiles.machine import int8_recipe_here, this_machine
from nasq.hardware_profiles.probe_graphs import (
    BRING_REORDERS,
    CONTEXT_PROBES,
    INT8_CONTEXT_PROBES,
    OP_PROBE_SIZES,
    OP_PROBES,
    QUICK_STEM_SHAPES,
    RUNTIME_PROBES,
    STEM_SHAPES,
    add_graph,
    boundary_graph,
    chain_graph,
    identity_graph,
    int8_sandwich_graph,
    layer_graph,
    nchwc_block_size,
    op_graph,
    qlinear_add_graph,
    runtime_graph,
    sandwich_graph,
    simulated_activation_graph,
)
from nasq.hardware_profiles.profiler import Capabilities, Measurement, ProfilerBackend
from nasq.hardware_profiles.registries import PROFILERS
from nasq.options import Options, option
from nasq.spaces.base import LayerSpec

#: the layer every profiling measurement is timed beside (see ``OnnxRuntimeProfiler``)
REFERENCE_LAYER = LayerSpec("reference", "conv", 48, 48, 3, 1, 14)
#: a model slower than this (ms) slows the reference timed after it: such measurements take the speed of
#: the last light ones
HEAVY_MS = 2.0
#: a measurement made with the reference over this many times its fast end was made in a slow spell (see
#: OnnxRuntimeProfiler._remeasure_slow)
SLOW_SPEED = 1.15


def rescale_measurements(data: dict, factor: float) -> None:
    """Multiply every latency an ONNX Runtime profile measured per layer and per op (not yet its whole
    networks or calibration) by ``factor``: what the same measurements would read at another speed."""

    def linear(cost: dict) -> None:
        for key in ("intercept_ms", "per_melement_ms", "per_mwork_ms"):
            if key in cost:
                cost[key] *= factor
        for point in [*cost.get("measured", []), *cost.get("in_context", []), *cost.get("in_int8_context", [])]:
            point["latency_ms"] *= factor

    data["overhead_ms"] *= factor
    for cost in [
        *data["boundary"].values(),
        data["simulated_activation"],
        data["elementwise"],
        *data["op_costs"].values(),
    ]:
        linear(cost)
    for entry in [*data["layers"], *data["kernel_sweep"]["layers"]]:
        entry["latency_ms"] *= factor
    data["kernel_model"]["init"] += math.log(factor)  # it predicts log(latency / MACs)


@dataclass(frozen=True)
class OnnxRuntimeOptions(Options):
    """Options of the ``onnxruntime`` profiler backend (``nasq profile --backend onnxruntime``)."""

    describes = "profiler backend 'onnxruntime'"
    threads: int = option(1, min=1, max=1024, doc="intra-op threads")
    batch_size: int = option(1, min=1, max=4096, doc="batch size")
    repetitions: int | None = option(
        None, min=1, max=1_000_000, doc="timed runs per layer (default: by the time budget)"
    )
    seed: int = option(0, min=0, max=2**32 - 1, doc="seed of the sampled networks")
    networks: int | None = option(
        None, min=0, max=10_000, doc="whole networks measured for calibration, and as many again held out"
    )
    sweep_seconds: float | None = option(None, min=0, max=86_400, doc="time budget of the adaptive kernel sweep (s)")
    network_seconds: float | None = option(
        None,
        min=0,
        max=86_400,
        arg="measure_seconds",
        doc="the whole-network measurement lasts at least this long (s)",
    )


@PROFILERS.register("onnxruntime")
class OnnxRuntimeProfiler(ProfilerBackend):
    """Measures a ``table`` profile with ONNX Runtime's CPU execution provider on this machine.

    Example:
        >>> backend = OnnxRuntimeProfiler(threads=1, repetitions=50)          # doctest: +SKIP
        >>> data = backend.profile(space.profile_shapes(), name="my-cpu", space=space.name)  # doctest: +SKIP
    """

    Options = OnnxRuntimeOptions
    options: OnnxRuntimeOptions
    capabilities = Capabilities(
        runtime="onnxruntime",
        measures="the kernels ONNX Runtime's CPU execution provider runs on this machine, and whole networks",
        precisions=("fp32", "int8"),
        runs_networks=True,
        # a layer takes a fraction of a second to measure; a quick profile on the coarse grid priced held-out
        # networks and real topologies worse than the sweep and whole networks it saved time for
        quick_shapes=False,
    )

    def __init__(self, options: OnnxRuntimeOptions | None = None, **kwargs) -> None:
        super().__init__(options, **kwargs)
        self._reference = None  # (session, feed) of REFERENCE_LAYER while profiling
        self.reference_ms = None  # its latency at the speed the profile is scaled to
        self.speeds: list[float] = []  # its latency in each measurement / reference_ms
        self._speed: float | None = None  # that ratio in the last timed run

    def profile(
        self,
        shapes: Sequence[LayerSpec],
        *,
        name: str,
        space: str,
        quick: bool = False,
        log: Callable[[str], None] = print,
    ) -> dict:
        import onnxruntime as ort

        from nasq import __version__
        from nasq.ort import session, time_interleaved

        reps = self.options.repetitions or (25 if quick else 60)
        rng = np.random.default_rng(self.options.seed)
        start = time.time()
        stems = QUICK_STEM_SHAPES if quick else STEM_SHAPES
        shapes = list(dict.fromkeys(s.shape_only() for s in [*shapes, *stems]))

        self._reference = self._reference_run(REFERENCE_LAYER)
        self.reference_ms, self.speeds = time_interleaved([self._reference], repetitions=reps * 4, min_seconds=2)[0], []
        log(f"reference layer {self.reference_ms * 1e3:.1f} us")
        ident, feed = identity_graph()
        overhead_ms = self._timed(
            [(session(ident.SerializeToString(), threads=self.options.threads), feed)], repetitions=reps * 20, warmup=50
        )[0]
        log(f"per-call overhead {overhead_ms * 1e3:.1f} us")

        tensors = {(s.cin, s.h_in) for s in shapes} | {(s.cout, s.h_out) for s in shapes}  # (channels, height)
        by_size = sorted(tensors, key=lambda t: t[0] * t[1] ** 2)
        probe_tensors = [by_size[int(round(q * (len(by_size) - 1)))] for q in np.linspace(0, 1, 6)]
        probe = [c * h * h * self.options.batch_size for c, h in probe_tensors]
        elementwise = {}
        for kind in ("quantize", "dequantize", "simulated_activation"):
            runs = []
            for (channels, height), numel in zip(probe_tensors, probe):
                model, feed = (
                    simulated_activation_graph(numel)
                    if kind == "simulated_activation"
                    else boundary_graph(kind, channels * self.options.batch_size, height)
                )
                runs.append((session(model.SerializeToString(), threads=self.options.threads), feed))
            times = np.array(self._timed(runs, repetitions=reps * 4)) - overhead_ms
            slope, intercept = np.polyfit(np.array(probe, float) / 1e6, times, 1)
            elementwise[kind] = {
                "intercept_ms": max(float(intercept), 0.0),
                "per_melement_ms": max(float(slope), 0.0),
                "measured": [{"elements": n, "latency_ms": float(t)} for n, t in zip(probe, times)],
            }
        simulated_activation = elementwise.pop("simulated_activation")
        boundary = elementwise
        log(
            f"boundaries: quantize {boundary['quantize']['per_melement_ms']:.3f} ms/Melement, "
            f"dequantize {boundary['dequantize']['per_melement_ms']:.3f} ms/Melement"
        )

        layers, speeds = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for i, spec in enumerate(shapes):
                layers += self._measure_layer(spec, rng, Path(tmp), overhead_ms, boundary, reps)
                speeds.append(self._speed)
                if (i + 1) % 25 == 0 or i + 1 == len(shapes):
                    log(f"measured {i + 1}/{len(shapes)} layer shapes ({time.time() - start:.0f} s)")
            self._remeasure_slow(
                shapes, layers, speeds, rng, Path(tmp), overhead_ms, boundary, reps, 5 if quick else 30, log
            )
            elementwise = self._elementwise(probe, overhead_ms, reps)
            op_costs = self._op_costs(overhead_ms, reps)
            self._context_costs(op_costs, reps)
            self._int8_context_costs(op_costs, reps, quick)
            kernel_model, sweep = self._kernel_sweep(layers, rng, Path(tmp), overhead_ms, boundary, reps, quick, log)

        recipe = int8_recipe_here()
        data = {
            "schema_version": 1,
            "name": name,
            "predictor": "table",
            "description": f"ONNX Runtime {ort.__version__} CPU, {self.options.threads} thread(s), batch {self.options.batch_size}, "
            "fp32 and int8 QDQ (u8 activations, s8 per-channel weights"
            + (", 7-bit range: no VNNI)" if recipe["reduce_range"] else ")"),
            "int8": True,
            "int8_recipe": recipe,
            "metadata": {
                **this_machine(),
                "runtime": "onnxruntime",
                "runtime_version": ort.__version__,
                "execution_provider": "CPUExecutionProvider",
                "threads": self.options.threads,
                "batch_size": self.options.batch_size,
                "repetitions": reps,
                "statistic": "median of round-robin runs, per-call overhead subtracted",
                "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "space": space,
                "quick": quick,
                "nasq_version": __version__,
            },
            "overhead_ms": round(overhead_ms, 6),
            "boundary": boundary,
            "simulated_activation": simulated_activation,
            "elementwise": elementwise,
            "op_costs": op_costs,
            "nchwc_block_size": nchwc_block_size(self.options.threads),
            "layers": layers,
            "kernel_model": kernel_model,
            "kernel_sweep": sweep,
        }
        # the start was one moment: scale every measurement to the reference's typical latency over the per-layer
        # measurements (their median), the speed at which later medians of whole networks are most likely taken; the
        # fast end (a low quantile) predicts a machine that shared machines rarely are. The whole networks below
        # are measured against it too
        settled = float(np.median(self.speeds))
        rescale_measurements(data, settled)
        self.reference_ms *= settled
        self.speeds = [v / settled for v in self.speeds]
        # quick: fewer layer shapes and shorter timing, but about as many whole networks as the full profile: the
        # end-to-end calibration (14 weights) corrects most of a table's error, and fewer networks overfit it
        n_networks = self.options.networks if self.options.networks is not None else (30 if quick else 40)
        if n_networks:
            seconds = self.options.network_seconds if self.options.network_seconds is not None else (5 if quick else 30)
            calibrate_and_select(
                self,
                data,
                space,
                n_networks,
                repetitions=max(reps, 50),
                seed=self.options.seed,
                log=log,
                min_seconds=seconds,
            )
            calibrate_onnx_pricing(
                self, data, n_networks, repetitions=10, seed=self.options.seed, log=log, min_seconds=seconds
            )
        speeds = np.array(self.speeds)
        speed = {
            "measurements": len(speeds),
            "median": round(float(np.median(speeds)), 4),
            "p10": round(float(np.quantile(speeds, 0.1)), 4),
            "p90": round(float(np.quantile(speeds, 0.9)), 4),
        }
        data["metadata"]["reference"] = {
            "layer": {k: getattr(REFERENCE_LAYER, k) for k in ("op", "cin", "cout", "kernel", "stride", "h_in")},
            "precision": "fp32",
            "latency_ms": round(self.reference_ms, 6),
            "what": "every measurement was timed beside this layer and scaled to its latency here (the median "
            "over the per-layer measurements); speed: its latency in each measurement over that",
            "scaled_to": "median",
            "speed": speed,
        }
        log(
            f"machine speed during profiling (reference layer, against its typical speed): median "
            f"{speed['median']:.3f}x, 10-90% {speed['p10']:.3f}-{speed['p90']:.3f}x"
        )
        self._reference = None
        data["metadata"]["profiling_seconds"] = round(time.time() - start, 1)
        return data

    def measure_models(self, models, feeds, *, repetitions: int, min_seconds: float = 0.0) -> Measurement:
        """Their latencies as measured, round by round, with the profile's reference layer timed in the same rounds
        where the backend has one (:meth:`for_profile`)."""
        from nasq.ort import session, window_spread

        runs = [(session(m, threads=self.options.threads), f) for m, f in zip(models, feeds)]
        samples: list[list[float]] = []
        times = self._timed(
            runs,
            repetitions=repetitions,
            warmup=2 if repetitions < 20 else 10,
            min_seconds=min_seconds,
            normalize=False,
            samples=samples,
        )
        reference = samples[-1] if len(samples) > len(runs) else None
        return Measurement(
            times,
            samples=samples[: len(runs)],
            reference=reference,
            reference_ms=self.reference_ms if reference is not None else None,
            speed=self._speed if reference is not None else None,
            spread=window_spread(samples[: len(runs)], reference=reference),
        )

    def _reference_run(self, layer: LayerSpec) -> tuple:
        """(session, feed) of the reference layer, with the same seeded weights wherever it is built."""
        from nasq.ort import session

        model, feed = layer_graph(layer, self.options.batch_size, np.random.default_rng(0))
        return session(model.SerializeToString(), threads=self.options.threads), feed

    def _timed(self, runs, *, normalize: bool = True, **kwargs) -> list[float]:
        """Interleaved medians (:func:`nasq.ort.time_interleaved`). While profiling, the reference layer is
        timed in the same rounds, and (``normalize``) every latency is taken at the reference's latency
        ``reference_ms`` (its first measurement, then the 10th percentile over the per-layer measurements), round
        by round (:func:`nasq.ort.gauged_medians`; heavy models by the speed of the last light ones): on a
        shared machine, a layer's ratios to the reference spread far less than its raw timings."""
        from nasq.ort import gauged_medians, time_interleaved

        if self._reference is None:
            return time_interleaved(runs, **kwargs)
        samples, rounds = kwargs.pop("samples", None), []
        *times, ref = time_interleaved(runs, reference=self._reference, samples=rounds, **kwargs)
        if samples is not None:
            samples.extend(rounds)
        speed = ref / self.reference_ms
        if max(times) > HEAVY_MS and self.speeds:
            # after a heavy model the reference itself runs slower, warm or not: take the speed of the last
            # light measurements instead
            speed = float(np.median(self.speeds[-9:]))
            self._speed = speed
            return [t / speed for t in times] if normalize else times
        self.speeds.append(speed)
        self._speed = speed
        # gauged round by round, as validation measures networks: a slow spell within the run cancels too
        return gauged_medians(rounds[:-1], rounds[-1], self.reference_ms) if normalize else times

    def _time_sized(self, runs, reps: int) -> list[float]:
        """Interleaved medians of a few small models; large ones (over 2 ms a run) get fewer repetitions
        (about half a second of runs each) and single timed runs (their weights do not fit in cache anyway)."""
        from nasq.ort import time_interleaved

        probe = time_interleaved(runs, repetitions=1, warmup=1, burst=1)
        if max(probe) > HEAVY_MS:
            return self._timed(runs, repetitions=int(np.clip(500 / max(sum(probe), 1e-3), 5, reps)), warmup=2, burst=1)
        return self._timed(runs, repetitions=reps, warmup=5, burst=3)

    @classmethod
    def for_profile(cls, metadata: dict) -> OnnxRuntimeProfiler:
        """A backend that measures like the one that made a profile with ``metadata``; when that profile
        records its reference layer, the layer is timed beside every measurement (``Measurement.speed``: how fast
        the machine runs now, against the profile's; 1.2 is 20% slower)."""
        backend = cls(threads=int(metadata.get("threads", 1)), batch_size=int(metadata.get("batch_size", 1)))
        reference = metadata.get("reference")
        fields = ("op", "cin", "cout", "kernel", "stride", "h_in")
        layer = reference.get("layer") if isinstance(reference, dict) else None
        if (
            isinstance(layer, dict)
            and set(layer) == set(fields)
            and layer["op"] in ("conv", "dwconv")
            and all(isinstance(layer[k], int) and layer[k] > 0 for k in fields[1:])
            and isinstance(reference.get("latency_ms"), (int, float))
            and reference["latency_ms"] > 0
        ):
            # (a profile without a usable reference is measured without the gauge)
            backend._reference = backend._reference_run(LayerSpec("reference", **layer))
            backend.reference_ms = float(reference["latency_ms"])
        return backend

    def _measure_layer(
        self, spec: LayerSpec, rng, tmp: Path, overhead_ms: float, boundary: dict, reps: int
    ) -> list[dict]:
        """fp32 and int8 QDQ latency of one layer shape, interleaved; int8 without its boundaries."""
        import onnx

        from nasq.ort import executed_ops, quantize_qdq, session

        model, feed = layer_graph(spec, self.options.batch_size, rng)
        fp32_path, int8_path = tmp / "fp32.onnx", tmp / "int8.onnx"
        onnx.save(model, str(fp32_path))
        calib = [{"x": rng.standard_normal(feed["x"].shape).astype(np.float32)} for _ in range(4)]
        quantize_qdq(fp32_path, int8_path, calib)
        int8_bytes = int8_path.read_bytes()
        kernels = executed_ops(int8_bytes, threads=self.options.threads)
        runs = [
            (session(fp32_path, threads=self.options.threads), feed),
            (session(int8_bytes, threads=self.options.threads), feed),
        ]
        t_fp32, t_int8 = self._time_sized(runs, reps)
        geometry = dict(
            op=spec.op, cin=spec.cin, cout=spec.cout, kernel=spec.kernel, stride=spec.stride, h_in=spec.h_in
        )
        fp32_ms = max(t_fp32 - overhead_ms, 1e-4)
        edges = linear_ms(boundary["quantize"], spec.in_numel * self.options.batch_size) + linear_ms(
            boundary["dequantize"], spec.out_numel * self.options.batch_size
        )
        int8_ms = max(t_int8 - overhead_ms - edges, 1e-4)
        int8_kernel = next(
            (k for k in ("QLinearConv", "QGemm", "MatMulIntegerToFloat", "QLinearMatMul") if kernels.get(k)),
            "float fallback",
        )
        return [
            {**geometry, "precision": "fp32", "latency_ms": round(fp32_ms, 6)},
            {**geometry, "precision": "int8", "latency_ms": round(int8_ms, 6), "executed_as": int8_kernel},
        ]

    def _remeasure_slow(
        self,
        shapes: list[LayerSpec],
        layers: list[dict],
        speeds: list[float | None],
        rng,
        tmp: Path,
        overhead_ms: float,
        boundary: dict,
        reps: int,
        budget_s: float,
        log,
    ) -> None:
        """Measure again, slowest first and within ``budget_s``, the table layers measured while the machine ran
        slow (the reference over SLOW_SPEED times its fast end so far), and keep the measurement made at the
        quieter moment: a slow spell slows kernels unevenly, which scaling by the reference cannot undo (here,
        over 90 s of spells, layers' times over the reference's still spread 1.09-1.16x, 90th to 10th percentile). ``layers`` holds each shape's fp32 and int8
        entries in turn."""
        if self._reference is None or not self.speeds:
            return
        fast = float(np.quantile(self.speeds, 0.1))
        slow = sorted(
            ((s / fast, i) for i, s in enumerate(speeds) if s is not None and s / fast > SLOW_SPEED), reverse=True
        )
        start, redone, kept = time.time(), 0, 0
        for ratio, i in slow:
            if time.time() - start > budget_s:
                break
            again = self._measure_layer(shapes[i], rng, tmp, overhead_ms, boundary, reps)
            redone += 1
            if self._speed / fast < ratio:
                layers[2 * i : 2 * i + 2] = again
                kept += 1
        if slow:
            log(
                f"{len(slow)} layer shapes measured in slow spells (reference over {SLOW_SPEED}x its fast end): "
                f"{redone} measured again, {kept} of them at a quieter moment ({time.time() - start:.0f} s)"
            )

    def _measure_chained(self, spec: LayerSpec, rng, reps: int) -> dict:
        """The float cost of a shape-preserving layer between layers like it: chains of 1 and 3 copies
        timed interleaved, half the difference. Alone, a float conv also pays for reordering its input
        and output into and out of the blocked layout (64 channels at 56x56: 276 us alone, 134 us chained)."""
        from nasq.ort import session

        runs = [
            (session(m.SerializeToString(), threads=self.options.threads), f)
            for m, f in (chain_graph(spec, n, self.options.batch_size, rng) for n in (1, 3))
        ]
        t1, t3 = self._time_sized(runs, reps)
        return dict(
            op=spec.op,
            cin=spec.cin,
            cout=spec.cout,
            kernel=spec.kernel,
            stride=spec.stride,
            h_in=spec.h_in,
            precision="fp32",
            latency_ms=round(max((t3 - t1) / 2, 1e-4), 6),
            chained=True,
        )

    def _elementwise(self, probe: Sequence[int], overhead_ms: float, reps: int) -> dict:
        """Cost of memory-bound ops (what ``nasq predict`` charges for Add, Concat, pools...), as a linear
        function of the elements read and written, measured on an Add of two tensors."""
        from nasq.ort import session

        rng = np.random.default_rng(0)
        runs = [
            (
                session(add_graph(n).SerializeToString(), threads=self.options.threads),
                {x: rng.standard_normal((1, n)).astype(np.float32) for x in ("x", "x2")},
            )
            for n in probe
        ]
        times = np.array(self._timed(runs, repetitions=reps * 4)) - overhead_ms
        traffic = np.array(probe, float) * 3  # two reads and one write per element
        slope, intercept = np.polyfit(traffic / 1e6, times, 1)
        return {
            "intercept_ms": max(float(intercept), 0.0),
            "per_melement_ms": max(float(slope), 0.0),
            "measured_on": "Add of two float tensors; elements read + written",
        }

    def _op_costs(self, overhead_ms: float, reps: int) -> dict:
        """Per-op cost of the ops in OP_PROBES, and of the int8 residual add (QLinearAdd), as a linear
        function of their work (pools: output elements x window; others: input elements), each timed at
        5 sizes, interleaved."""
        from nasq.ort import session

        costs = {}
        probes = [(op, (attrs, n_inputs)) for op, attrs, n_inputs in OP_PROBES] + [("QLinearAdd", None)]
        probes += [(op, (domain, attrs)) for op, domain, attrs in RUNTIME_PROBES]
        for op, args in probes:
            runs, works = [], []
            for channels, height in OP_PROBE_SIZES:
                if op == "QLinearAdd":
                    model, feed, work = qlinear_add_graph(channels, height)
                elif any(op == p[0] for p in RUNTIME_PROBES):
                    model, feed, work = runtime_graph(op, *args, channels, height)
                else:
                    model, feed, work = op_graph(op, *args, channels, height)
                runs.append((session(model.SerializeToString(), threads=self.options.threads), feed))
                works.append(work)
            times = np.array(self._timed(runs, repetitions=max(10, reps // 2))) - overhead_ms
            slope, intercept = np.polyfit(np.array(works, float) / 1e6, times, 1)
            costs[op] = {
                "intercept_ms": max(float(intercept), 0.0),
                "per_mwork_ms": max(float(slope), 0.0),
                "work": "output elements x window" if "Pool" in op and "GlobalAverage" not in op else "input elements",
                # (the smallest probes' times less the call overhead can come out at or below zero)
                "measured": [{"work": w, "latency_ms": round(max(float(t), 1e-4), 6)} for w, t in zip(works, times)],
            }
        return costs

    def _sandwich_points(self, op_costs: dict, op: str, sizes, graphs, island, reps: int, min_seconds: float) -> list:
        """The cost of ``op`` between two convs at each (channels, height) of ``sizes``: ``graphs(channels, height)``
        gives the sandwich without the op and with it, timed interleaved; ``island(channels, height, models)`` the
        work the op does there and the lone cost of what else it brings; never under half its lone probe's cost
        (the difference of two timings is noisy)."""
        from nasq.hardware_profiles.costs import op_cost_ms
        from nasq.ort import session

        points = []
        for channels, height in sizes:
            models = graphs(channels, height)
            runs = [(session(m.SerializeToString(), threads=self.options.threads), f) for m, f in models]
            without, with_op = self._timed(runs, repetitions=max(20, reps // 2), min_seconds=min_seconds)
            work, others = island(channels, height, models)
            alone = op_cost_ms(op_costs[op], work)
            points.append({"work": work, "latency_ms": round(max(with_op - without - others, 0.5 * alone), 6)})
        return points

    def _context_costs(self, op_costs: dict, reps: int) -> None:
        """Each of CONTEXT_PROBES between two convs (:func:`sandwich_graph`), at the op probes' sizes: its time is
        the sandwich's over the sandwich without it, less the reorders into and out of the blocked layout that it
        brings (their own probes' costs). Stored as ``op_costs[op]["in_context"]``, which prices the op in a
        network (:mod:`nasq.kernel_pricing`)."""
        from nasq.hardware_profiles.costs import op_cost_ms

        for op, over in CONTEXT_PROBES:

            def island(channels, height, models, op=op, over=over):
                numel = channels * height * height * self.options.batch_size
                reorders = sum(
                    op_cost_ms(op_costs[r], numel)
                    for r in ("nchwc.ReorderOutput", "nchwc.ReorderInput")
                    if op in BRING_REORDERS
                )
                return (2 * numel if op == "Sum" else numel), reorders  # work as nasq.kernel_pricing counts it

            op_costs[op]["in_context"] = self._sandwich_points(
                op_costs,
                op,
                OP_PROBE_SIZES,
                lambda c, h, op=op, over=over: [sandwich_graph(over, c, h), sandwich_graph(op, c, h)],
                island,
                reps,
                1.0,
            )

    def _int8_context_costs(self, op_costs: dict, reps: int, quick: bool = False) -> None:
        """Each of INT8_CONTEXT_PROBES between two int8 convs (:func:`int8_sandwich_graph`), at the op probes'
        sizes: the sandwich's time over the one without it, less the lone costs of the other kernels its island
        adds (dequantize, quantize). Stored as ``op_costs[op]["in_int8_context"]``, which prices the op after a
        dequantize (:mod:`nasq.kernel_pricing`). ``quick``: at three sizes, timed briefly."""
        from nasq.hardware_profiles.costs import op_cost_ms
        from nasq.kernel_pricing import _op_key, _work
        from nasq.ort import executed_kernels

        for op in INT8_CONTEXT_PROBES:

            def island(channels, height, models, op=op):
                before, added = [
                    list(executed_kernels(m.SerializeToString(), threads=self.options.threads)) for m, _ in models
                ]
                for k in before:  # what the island adds: the sandwich's kernels less those of the one without
                    match = next((a for a in added if _op_key(a, op_costs) == _op_key(k, op_costs)), None)
                    if match is not None:
                        added.remove(match)
                others = sum(
                    op_cost_ms(op_costs[_op_key(k, op_costs)], _work(k))
                    for k in added
                    if k.op != op and _op_key(k, op_costs) in op_costs
                )
                return sum(_work(k) for k in added if k.op == op), others

            op_costs[op]["in_int8_context"] = self._sandwich_points(
                op_costs,
                op,
                OP_PROBE_SIZES[2:5] if quick else OP_PROBE_SIZES,
                lambda c, h, op=op: [int8_sandwich_graph(o, c, h) for o in (None, op)],
                island,
                reps,
                0.2 if quick else 1.0,
            )

    def _kernel_sweep(
        self,
        table_layers: list[dict],
        rng,
        tmp: Path,
        overhead_ms: float,
        boundary: dict,
        reps: int,
        quick: bool,
        log,
        target: float = 0.9,
    ) -> tuple[dict, dict]:
        """Random layers beyond the space's shapes, measured in rounds; after each round the per-kernel
        regressor is cross-validated, and the next round samples half around the worst-predicted layers
        (nn-Meter's adaptive sampling), until ``target`` share within +-10% or the time budget."""
        from nasq.hardware_profiles.kernel_model import (
            cross_validated_errors,
            fit_kernel_model,
            perturb,
            random_chainable,
            random_layers,
        )

        budget_s = self.options.sweep_seconds if self.options.sweep_seconds is not None else (60 if quick else 120)
        round_size = 10 if quick else 30
        entries = list(table_layers)
        start, rounds = time.time(), []
        pending = random_layers(rng, round_size)
        swept = 0
        while True:
            for spec in pending:
                entries += self._measure_layer(spec, rng, tmp, overhead_ms, boundary, reps)
            entries += [self._measure_chained(spec, rng, reps) for spec in random_chainable(rng, round_size // 3)]
            swept += len(pending)
            specs = [LayerSpec("", e["op"], e["cin"], e["cout"], e["kernel"], e["stride"], e["h_in"]) for e in entries]
            precisions = [e["precision"] for e in entries]
            chained = [bool(e.get("chained")) for e in entries]
            errors = cross_validated_errors(
                specs, precisions, [e["latency_ms"] for e in entries], seed=self.options.seed, chained=chained
            )
            share = float(np.mean(errors <= 0.10))
            rounds.append(
                {
                    "layers_swept": swept,
                    "cv_within_10pct": round(share, 3),
                    "cv_median_error": round(float(np.median(errors)), 4),
                    "seconds": round(time.time() - start, 1),
                }
            )
            log(
                f"kernel regressor after {swept} swept layers: {share:.0%} of {len(entries)} measurements within +-10% "
                f"(cross-validated), median error {np.median(errors):.1%}"
            )
            if share >= target or time.time() - start > budget_s:
                break
            worst = np.argsort(errors)[-max(1, len(errors) // 4) :]
            picks = rng.choice(worst, round_size // 2)
            pending = [perturb(rng, specs[i]) for i in picks] + random_layers(rng, round_size - round_size // 2)
        model = fit_kernel_model(
            specs, precisions, [e["latency_ms"] for e in entries], chained=chained, seed=self.options.seed
        )
        sweep = {
            "rounds": rounds,
            "target_within_10pct": target,
            "budget_seconds": budget_s,
            "layers": entries[len(table_layers) :],
        }
        return model, sweep
