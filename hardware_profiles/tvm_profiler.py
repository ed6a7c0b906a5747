"""TVM: per-layer costs of code compiled with ``tvm.compile`` for an LLVM target, measured on this machine
or on a remote device through ``tvm.rpc`` (a server's host and port, or a tracker and a device key).

Each layer shape becomes a one-layer ONNX graph (the same graphs the ONNX Runtime profiler builds),
imported with TVM's Relax ONNX frontend, compiled, and timed with the VM's ``time_evaluator`` on the
device; the per-call cost of an Identity graph is subtracted. TVM runs QDQ int8 as simulated
quantization (no faster than float), so the profile is float only (``int8: false``); sub-8-bit
activations are priced with the measured cost of their simulation chain, as on ONNX Runtime.
The code is untuned (no meta-schedule): the profile describes what ``tvm.compile`` produces. Whole
networks of the space, exported as for the target and compiled the same way, calibrate the table
end to end and choose between the table and the calibrated predictor, as on ONNX Runtime.

Example:
    >>> backend = TvmProfiler(rpc="192.168.1.20:9090")                                 # doctest: +SKIP
    >>> data = backend.profile(space.profile_shapes(), name="pi4-tvm", space=space.name)  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasq.errors import NasqError
from nasq.hardware_profiles.calibration import calibrate_and_select
from nasq.hardware_profiles.machine import this_machine
from nasq.hardware_profiles.probe_graphs import identity_graph, layer_graph, simulated_activation_graph
from nasq.hardware_profiles.profiler import Capabilities, Measurement, ProfilerBackend
from nasq.hardware_profiles.registries import PROFILERS
from nasq.options import Options, option
from nasq.spaces.base import LayerSpec


def _host_port(text: str, what: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise NasqError(f"{what} '{text}' must be HOST:PORT")
    return host, int(port)


@dataclass(frozen=True)
class TvmOptions(Options):
    """Options of the ``tvm`` profiler backend: where the code runs (this machine, a ``tvm.rpc`` server, or a
    device requested from a tracker by its key) and how long it is measured."""

    describes = "profiler backend 'tvm'"
    target: str | dict = option(
        '{"kind": "llvm"}', arg="tvm_target", doc='the TVM target, a JSON dict (or a dict) such as {"kind": "llvm"}'
    )
    rpc: str | None = option(None, doc="HOST:PORT of a tvm.rpc server to measure on (default: this machine)")
    tracker: str | None = option(None, arg="rpc_tracker", doc="HOST:PORT of a tvm.rpc tracker to ask for a device")
    key: str | None = option(None, arg="rpc_key", doc="the device key to request from the tracker")
    repetitions: int | None = option(
        None, min=1, max=1_000_000, doc="timed repeats per layer, each at least 1 ms of runs (default 10 quick, 30)"
    )
    seed: int = option(0, min=0, max=2**32 - 1, doc="seed of the sampled networks")
    timeout_s: int = option(60, min=1, max=86_400, doc="seconds an RPC call may take")
    networks: int | None = option(
        None,
        min=0,
        max=10_000,
        doc="calibrate on 2x this many whole networks of the space (default 4 quick, else 12; 0: a table only)",
    )
    network_seconds: float | None = option(
        None, min=0, max=86_400, arg="measure_seconds", doc="the whole-network measurement lasts at least this long (s)"
    )

    def check(self) -> None:
        target = self.target
        if isinstance(target, str):
            try:
                target = json.loads(target)
            except json.JSONDecodeError:
                raise NasqError(f'TVM target must be a JSON dict such as {{"kind": "llvm"}}, got {target!r}') from None
        if not isinstance(target, dict) or "kind" not in target:
            raise NasqError(f"TVM target must be a JSON dict with a 'kind', got {target!r}")
        object.__setattr__(self, "target", target)
        if self.rpc and self.tracker:
            raise NasqError("give either an RPC server (HOST:PORT) or a tracker with a key, not both")
        if self.tracker and not self.key:
            raise NasqError("an RPC tracker needs the device key (--rpc-key)")
        for text, what in ((self.rpc, "RPC server"), (self.tracker, "RPC tracker")):
            if text:
                _host_port(text, what)


@PROFILERS.register("tvm")
class TvmProfiler(ProfilerBackend):
    """Per-layer costs of code ``tvm.compile`` produces, measured here or on a remote device (see
    :class:`TvmOptions`)."""

    Options = TvmOptions
    options: TvmOptions
    capabilities = Capabilities(
        runtime="tvm",
        measures="layers and whole networks compiled by TVM (untuned), here or on a tvm.rpc device",
        precisions=("fp32",),
        runs_networks=True,
    )

    def __init__(self, options: TvmOptions | None = None, **kwargs) -> None:
        super().__init__(options, **kwargs)
        o = self.options
        self.rpc = _host_port(o.rpc, "RPC server") if o.rpc else None
        self.tracker = _host_port(o.tracker, "RPC tracker") if o.tracker else None

    # --- where the code runs --------------------------------------------------------------------

    def _session(self):
        """(remote session or None, device); one session per backend object (an RPC server serves one
        client at a time)."""
        import tvm
        from tvm import rpc

        if self.rpc is None and self.tracker is None:
            return None, tvm.cpu()
        if getattr(self, "_remote", None) is not None:
            return self._remote, self._remote.cpu()
        where = (
            f"RPC server {self.rpc[0]}:{self.rpc[1]}"
            if self.rpc
            else f"RPC tracker {self.tracker[0]}:{self.tracker[1]}"
        )
        try:
            if self.rpc:
                remote = rpc.connect(self.rpc[0], self.rpc[1], session_timeout=self.options.timeout_s * 20)
            else:
                remote = rpc.connect_tracker(*self.tracker).request(
                    self.options.key, priority=1, session_timeout=self.options.timeout_s * 20
                )
        except Exception as exc:  # TVM raises InternalError/RuntimeError/TimeoutError for a dead target
            raise NasqError(f"{where} does not answer: {str(exc).splitlines()[0][:200]}") from None
        self._remote = remote
        return remote, remote.cpu()

    def _load(self, model, shapes: dict[str, list[int]] | None, remote, dev, tmp: Path):
        """One ONNX model compiled for the target and loaded on ``dev``, as a Relax VM."""
        import tvm
        from tvm import relax
        from tvm.relax.frontend.onnx import from_onnx

        mod = from_onnx(model, shape_dict=shapes, keep_params_in_input=False)
        ex = tvm.compile(mod, target=tvm.target.Target(self.options.target))
        if remote is not None:
            self._uploads = getattr(self, "_uploads", 0) + 1  # a fresh name: the server caches loaded files
            path = tmp / f"model{self._uploads}.so"
            ex.export_library(str(path))
            remote.upload(str(path))
            ex = remote.load_module(path.name)
        return relax.VirtualMachine(ex, dev)

    def _time(self, model, feed: np.ndarray, remote, dev, tmp: Path, reps: int) -> float:
        """Median latency (ms) of one ONNX model compiled for the target and run on ``dev``."""
        import tvm

        vm = self._load(model, None, remote, dev, tmp)
        timer = vm.time_evaluator("main", dev, number=1, repeat=reps, min_repeat_ms=1)
        return float(np.median(timer(tvm.runtime.tensor(feed, dev)).results)) * 1e3

    def measure_models(self, models, feeds, *, repetitions: int, min_seconds: float = 0.0) -> Measurement:
        """Whole networks compiled for the target; each turn of the round-robin times 3 runs back to back."""
        import onnx
        import tvm

        remote, dev = self._session()
        timers = []
        with tempfile.TemporaryDirectory() as tmp:
            for model, feed in zip(models, feeds):
                ((name, x),) = feed.items()
                vm = self._load(onnx.load_from_string(model), {name: list(x.shape)}, remote, dev, Path(tmp))
                timers.append((vm.time_evaluator("main", dev, number=3, repeat=1), tvm.runtime.tensor(x, dev)))
            samples: list[list[float]] = [[] for _ in timers]
            deadline, rounds = time.perf_counter() + min_seconds, 0
            while rounds < repetitions or time.perf_counter() < deadline:
                rounds += 1
                for i, (timer, x) in enumerate(timers):
                    samples[i].append(timer(x).mean * 1e3)
        return Measurement([float(np.median(s)) for s in samples], samples=samples)

    @classmethod
    def for_profile(cls, metadata: dict) -> TvmProfiler:
        return cls(
            target=metadata.get("target") or '{"kind": "llvm"}',
            rpc=metadata.get("rpc"),
            tracker=metadata.get("tracker"),
            key=metadata.get("key"),
        )

    # --- the profile ----------------------------------------------------------------------------

    def profile(
        self,
        shapes: Sequence[LayerSpec],
        *,
        name: str,
        space: str,
        quick: bool = False,
        log: Callable[[str], None] = print,
    ) -> dict:
        import tvm

        from nasq import __version__

        reps = self.options.repetitions or (10 if quick else 30)
        rng = np.random.default_rng(self.options.seed)
        start = time.time()
        shapes = list(dict.fromkeys(s.shape_only() for s in shapes))
        remote, dev = self._session()
        with tempfile.TemporaryDirectory() as tmp:
            ident, feed = identity_graph()
            overhead_ms = self._time(ident, feed["x"], remote, dev, Path(tmp), reps * 3)
            log(f"per-call overhead {overhead_ms * 1e3:.1f} us")
            sizes = sorted({s.in_numel for s in shapes})
            probe = [sizes[int(round(q * (len(sizes) - 1)))] for q in np.linspace(0, 1, 5)]
            sim_times = []
            for n in probe:
                model, feed = simulated_activation_graph(n)
                sim_times.append(self._time(model, feed["x"], remote, dev, Path(tmp), reps) - overhead_ms)
            slope, intercept = np.polyfit(np.array(probe, float) / 1e6, sim_times, 1)
            layers = []
            for i, spec in enumerate(shapes):
                model, feed = layer_graph(spec, 1, rng)
                ms = self._time(model, feed["x"], remote, dev, Path(tmp), reps) - overhead_ms
                layers.append(
                    {
                        "op": spec.op,
                        "cin": spec.cin,
                        "cout": spec.cout,
                        "kernel": spec.kernel,
                        "stride": spec.stride,
                        "h_in": spec.h_in,
                        "precision": "fp32",
                        "latency_ms": round(max(ms, 1e-4), 6),
                    }
                )
                if (i + 1) % 25 == 0 or i + 1 == len(shapes):
                    log(f"compiled and measured {i + 1}/{len(shapes)} layer shapes ({time.time() - start:.0f} s)")
        where = (
            f"tvm.rpc server {self.rpc[0]}:{self.rpc[1]}"
            if self.rpc
            else f"tvm.rpc tracker {self.tracker[0]}:{self.tracker[1]} key {self.options.key}"
            if self.tracker
            else "local"
        )
        local = remote is None or (self.rpc is not None and self.rpc[0] in ("127.0.0.1", "localhost"))
        data: dict[str, Any] = {
            "schema_version": 1,
            "name": name,
            "predictor": "table",
            "description": f"TVM {tvm.__version__} {json.dumps(self.options.target)} (untuned), float, measured {where}",
            "int8": False,
            "metadata": {
                **(this_machine() if local else {"device": where, "cpu_flags": None, "machine": None}),
                "runtime": "tvm",
                "runtime_version": tvm.__version__,
                "target": self.options.target,
                "measured_via": where,
                "threads": "TVM default (all cores)" if remote is None else "remote default",
                "batch_size": 1,
                "repetitions": reps,
                "statistic": "median of time_evaluator repeats (>= 1 ms each), per-call overhead subtracted",
                "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "rpc": ":".join(map(str, self.rpc)) if self.rpc else None,
                "tracker": ":".join(map(str, self.tracker)) if self.tracker else None,
                "key": self.options.key,
                "space": space,
                "quick": quick,
                "nasq_version": __version__,
            },
            "overhead_ms": round(overhead_ms, 6),
            "simulated_activation": {
                "intercept_ms": max(float(intercept), 0.0),
                "per_melement_ms": max(float(slope), 0.0),
            },
            "layers": layers,
        }
        n_networks = self.options.networks if self.options.networks is not None else (4 if quick else 12)
        if n_networks:
            calibrate_and_select(
                self,
                data,
                space,
                n_networks,
                repetitions=reps,
                seed=self.options.seed,
                log=log,
                min_seconds=self.options.network_seconds
                if self.options.network_seconds is not None
                else (5 if quick else 30),
            )
        data["metadata"]["profiling_seconds"] = round(time.time() - start, 1)
        return data
