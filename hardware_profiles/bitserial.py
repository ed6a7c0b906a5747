"""A bit-flexible accelerator in the style of BitFusion (Sharma et al., ISCA 2018): an analytic model.

BitFusion builds each multiplier from 2-bit "BitBricks": a w-bit x a-bit multiply-accumulate
occupies ceil(w/2) * ceil(a/2) BitBricks for one cycle, so 2-bit layers run 16x the MACs per
cycle of 8-bit ones. Per layer::

    compute_ms = MACs * ceil(w/2) * ceil(a/2) / (bitbricks * clock_mhz * 1e3)
    memory_ms  = (params * w + in_elements * a + out_elements * a_next) / 8 / (bandwidth_gb_s * 1e6)
    latency_ms = max(compute_ms, memory_ms) + layer_overhead_us / 1e3

where ``a_next`` is the next layer's activation bit-width (the output is written at the precision
its consumer reads; 8 for the last layer). The array has no float unit: a float (32-bit) layer runs
at ``float_bits`` (16-bit fixed point). Default constants are BitFusion's published configuration
(16x32 Fusion Units of 16 BitBricks = 8,192 BitBricks at 500 MHz) with an assumed 25.6 GB/s
(LPDDR4-3200 x64) DRAM interface and 0.5 us per-layer control overhead; all are in the profile file.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from nasq.errors import NasqError
from nasq.hardware_profiles.predictors import LatencyPredictor, Prediction, _positive
from nasq.hardware_profiles.profile import Profile
from nasq.hardware_profiles.profiler import Capabilities, ProfilerBackend
from nasq.hardware_profiles.registries import PREDICTORS, PROFILERS
from nasq.hardware_profiles.schema import ACCELERATOR_BOUNDS
from nasq.options import Options, option
from nasq.spaces.base import LayerSpec


@PREDICTORS.register("bitserial")
class BitserialPredictor(LatencyPredictor):
    """The analytic model above; profile field ``accelerator`` holds its constants."""

    @classmethod
    def validate_profile(cls, profile: Profile) -> None:
        acc = profile.data.get("accelerator")
        if not isinstance(acc, dict):
            raise NasqError(f"profile {profile.source}: field 'accelerator' must be an object")
        for key in DEFAULT_ACCELERATOR:
            if key not in acc:
                raise NasqError(f"profile {profile.source}: accelerator lacks '{key}'")
            low, high = ACCELERATOR_BOUNDS[key]
            if not low <= _positive(profile, f"accelerator.{key}", acc[key]) <= high:
                raise NasqError(
                    f"profile {profile.source}: accelerator.{key} = {acc[key]!r} is out of range; "
                    f"allowed: {low:g} to {high:g}"
                )

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self.acc = profile.data["accelerator"]

    def _bits(self, bits: int) -> int:
        return self.acc["float_bits"] if bits > 8 else bits

    def layer_ms(self, layer: LayerSpec, out_bits: int) -> float:
        w, a = self._bits(layer.w_bits), self._bits(layer.a_bits)
        brick = self.acc["brick_bits"]
        bricks_per_mac = math.ceil(w / brick) * math.ceil(a / brick)
        compute_ms = layer.macs * bricks_per_mac / (self.acc["bitbricks"] * self.acc["clock_mhz"] * 1e3)
        bits_moved = layer.params * w + layer.in_numel * a + layer.out_numel * self._bits(out_bits)
        memory_ms = bits_moved / 8 / (self.acc["bandwidth_gb_s"] * 1e6)
        return max(compute_ms, memory_ms) + self.acc["layer_overhead_us"] / 1e3

    def predict(self, layers: Sequence[LayerSpec]) -> Prediction:
        pred = Prediction(total_ms=0.0)
        for i, layer in enumerate(layers):
            out_bits = layers[i + 1].a_bits if i + 1 < len(layers) else 8
            pred.layer_ms[layer.name] = self.layer_ms(layer, out_bits)
        pred.total_ms = sum(pred.layer_ms.values())
        return pred


@dataclass(frozen=True)
class BitserialOptions(Options):
    """The simulated accelerator's constants (``bitserial-sim``), within what bit-serial hardware has been built
    with (:data:`nasq.hardware_profiles.schema.ACCELERATOR_BOUNDS`)."""

    describes = "profiler backend 'bitserial-sim'"
    bitbricks: int = option(
        8192,
        min=ACCELERATOR_BOUNDS["bitbricks"][0],
        max=ACCELERATOR_BOUNDS["bitbricks"][1],
        doc="2-bit multiply units working at once",
    )
    brick_bits: int = option(
        2,
        min=ACCELERATOR_BOUNDS["brick_bits"][0],
        max=ACCELERATOR_BOUNDS["brick_bits"][1],
        doc="bits of one brick's operands",
    )
    clock_mhz: float = option(
        500.0, min=ACCELERATOR_BOUNDS["clock_mhz"][0], max=ACCELERATOR_BOUNDS["clock_mhz"][1], doc="clock rate (MHz)"
    )
    bandwidth_gb_s: float = option(
        25.6,
        min=ACCELERATOR_BOUNDS["bandwidth_gb_s"][0],
        max=ACCELERATOR_BOUNDS["bandwidth_gb_s"][1],
        doc="memory bandwidth (GB/s)",
    )
    layer_overhead_us: float = option(
        0.5,
        min=ACCELERATOR_BOUNDS["layer_overhead_us"][0],
        max=ACCELERATOR_BOUNDS["layer_overhead_us"][1],
        doc="fixed cost of a layer (us)",
    )
    float_bits: int = option(
        16,
        min=ACCELERATOR_BOUNDS["float_bits"][0],
        max=ACCELERATOR_BOUNDS["float_bits"][1],
        doc="bits a float layer runs at",
    )


#: the constants of a BitFusion-style accelerator (Sharma et al., ISCA 2018: 2-bit bricks at 500 MHz)
DEFAULT_ACCELERATOR = dataclasses.asdict(BitserialOptions())


@PROFILERS.register("bitserial-sim")
class BitserialProfiler(ProfilerBackend):
    """Writes a bitserial profile from the model's constants (nothing to measure)."""

    Options = BitserialOptions
    options: BitserialOptions
    capabilities = Capabilities(
        runtime="analytic model (nasq.hardware_profiles.bitserial)",
        measures="nothing: an analytic model of a BitFusion-style accelerator",
        measures_layers=False,
        precisions=tuple(f"int{b}" for b in range(2, 9)),
    )

    def __init__(self, options: BitserialOptions | None = None, **kwargs) -> None:
        super().__init__(options, **kwargs)
        self.accelerator = dataclasses.asdict(self.options)

    def profile(self, shapes: Sequence[LayerSpec], *, name: str, space: str, quick: bool = False, log=print) -> dict:
        from nasq import __version__

        return {
            "schema_version": 1,
            "name": name,
            "predictor": "bitserial",
            "description": "BitFusion-style bit-flexible accelerator (analytic model, 2-8 bit weights and activations)",
            "int8": True,
            "native_bits": [2, 3, 4, 5, 6, 7, 8],
            "metadata": {
                "device": "BitFusion-style bit-serial accelerator (simulated)",
                "runtime": "analytic model (nasq.hardware_profiles.bitserial)",
                "runtime_version": __version__,
                "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "batch_size": 1,
                "repetitions": 0,
                "reference": "Sharma et al., Bit Fusion, ISCA 2018",
                "formula": "latency_ms = max(MACs*ceil(w/2)*ceil(a/2)/(bitbricks*clock_mhz*1e3), "
                "(params*w + in*a + out*a_next)/8/(bandwidth_gb_s*1e6)) + layer_overhead_us/1e3",
            },
            "accelerator": self.accelerator,
        }
