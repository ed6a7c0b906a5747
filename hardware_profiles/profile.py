"""The hardware-profile file format (JSON, schema version 1) and its validation.

Common fields::

    schema_version   1
    name             the target's name
    predictor        registered latency predictor that reads this profile ("table", "bitserial")
    description      one line
    metadata         how it was made: device, runtime, runtime_version, threads, batch_size, date,
                     repetitions, ... (free-form, but device/runtime/date are required)
    int8             true when the target runs int8 kernels (layers with 8-bit weights and activations)
    native_bits      optional: the integer bit-widths the target runs natively (default [8] when int8)

A ``table`` profile adds ``overhead_ms``, ``boundary`` and ``layers`` (see predictors.TablePredictor);
a ``bitserial`` profile adds ``accelerator`` (see bitserial.py).
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasq.errors import NasqError

SCHEMA_VERSION = 1
REQUIRED = {"schema_version": int, "name": str, "predictor": str, "description": str, "metadata": dict, "int8": bool}
REQUIRED_METADATA = ("device", "runtime", "date")


@dataclass(frozen=True)
class Profile:
    name: str
    predictor: str
    description: str
    metadata: dict[str, Any]
    int8: bool
    data: dict[str, Any] = field(repr=False)
    source: str = ""

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> "Profile":
        if not isinstance(data, dict):
            raise NasqError(f"profile {source}: expected a JSON object, got {type(data).__name__}")
        for key, typ in REQUIRED.items():
            if key not in data:
                raise NasqError(f"profile {source}: missing field '{key}'")
            if not isinstance(data[key], typ):
                raise NasqError(f"profile {source}: field '{key}' must be {typ.__name__}, got {data[key]!r}")
        if data["schema_version"] != SCHEMA_VERSION:
            raise NasqError(f"profile {source}: schema_version {data['schema_version']} not supported; allowed: {SCHEMA_VERSION}")
        for key in REQUIRED_METADATA:
            if key not in data["metadata"]:
                raise NasqError(f"profile {source}: metadata lacks '{key}'")
        from nasq.hardware_profiles import PREDICTORS

        predictor_cls = PREDICTORS.get(data["predictor"])
        profile = cls(data["name"], data["predictor"], data["description"], data["metadata"], data["int8"], data, source)
        predictor_cls.validate_profile(profile)
        return profile

    @classmethod
    def load(cls, path: Path) -> "Profile":
        from nasq.fileio import read_text

        try:
            data = json.loads(read_text(path, "profile"))
        except json.JSONDecodeError as exc:
            raise NasqError(f"profile {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
        return cls.from_dict(data, str(path))

    def runs_int8(self, w_bits: int, a_bits: int) -> bool:
        """Whether this target runs a layer with these bit-widths on int8 kernels."""
        return self.int8 and w_bits == 8 and a_bits == 8

    def runs_natively(self, w_bits: int, a_bits: int) -> bool:
        """Whether the target runs these integer bit-widths natively (a bit-flexible accelerator
        runs 2..8; an int8 runtime only 8)."""
        native = self.data.get("native_bits", [8] if self.int8 else [])
        return w_bits in native and a_bits in native

    def machine_mismatch(self) -> str | None:
        """How this machine visibly differs from the one the profile was measured on (not measured
        with ONNX Runtime or TVM here at all, on a remote device, another CPU model, or other CPU
        flags that decide kernels: AVX2, AVX-512, VNNI, AMX), or None when it does not."""
        device, flags = self.metadata.get("device"), self.metadata.get("cpu_flags")
        if self.remote:
            return f"a remote device measured through {self.metadata.get('measured_via')}"
        if self.metadata.get("runtime") not in ("onnxruntime", "tvm"):
            return f"'{device}' ({self.metadata.get('runtime')}), not this machine"
        if device != cpu_model():
            return f"measured on '{device}', and this machine is '{cpu_model()}'"
        if flags is not None and sorted(flags) != sorted(cpu_flags()):
            return f"measured with CPU flags {sorted(flags)}, and this machine has {sorted(cpu_flags())}"
        return None

    @property
    def remote(self) -> bool:
        """Measured on another device through an RPC server or tracker (TVM)."""
        return bool(self.metadata.get("rpc") or self.metadata.get("tracker"))

    def measurable(self) -> bool:
        """Whether whole networks can be measured on the profile's device from here: it was measured on
        a machine like this one, or on a remote device that the backend reconnects to."""
        return self.remote or self.measured_here()

    def measured_here(self) -> bool:
        """Whether the profile was measured with ONNX Runtime or TVM on a machine like this one."""
        return self.machine_mismatch() is None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags(wanted: tuple[str, ...] = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "neon")) -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                have = set(line.split(":", 1)[1].split())
                return [f for f in wanted if f in have]
    except OSError:
        pass
    return []
