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
    int8_recipe      optional: how int8 models for it are quantized (reduce_range on x86 without VNNI; see
                     machine.int8_recipe)

A profile measured on a CPU (ONNX Runtime, local TVM) records that machine in ``metadata`` (device, cpu_id,
cpu_flags, cpu_flags_checked, machine; see machine.py), checked on load.

A ``table`` profile adds ``overhead_ms``, ``boundary`` and ``layers`` (see predictors.TablePredictor);
a ``bitserial`` profile adds ``accelerator`` (see bitserial.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasq.errors import NasqError
from nasq.hardware_profiles.machine import check_machine_record, describe, int8_recipe, machine_difference, this_machine
from nasq.hardware_profiles.schema import check_numbers

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
    def from_dict(cls, data: Any, source: str = "<dict>") -> Profile:
        if not isinstance(data, dict):
            raise NasqError(f"profile {source}: expected a JSON object, got {type(data).__name__}")
        for key, typ in REQUIRED.items():
            if key not in data:
                raise NasqError(f"profile {source}: missing field '{key}'")
            if not isinstance(data[key], typ):
                raise NasqError(f"profile {source}: field '{key}' must be {typ.__name__}, got {data[key]!r}")
        if data["schema_version"] != SCHEMA_VERSION:
            raise NasqError(
                f"profile {source}: schema_version {data['schema_version']} not supported; allowed: {SCHEMA_VERSION}"
            )
        check_numbers(data, source)
        for key in REQUIRED_METADATA:
            if key not in data["metadata"]:
                raise NasqError(f"profile {source}: metadata lacks '{key}'")
        from nasq.hardware_profiles.registries import PREDICTORS

        predictor_cls = PREDICTORS.get(data["predictor"])
        profile = cls(
            data["name"], data["predictor"], data["description"], data["metadata"], data["int8"], data, source
        )
        if profile.on_a_cpu:
            check_machine_record(profile.metadata, source)
        recipe = data.get("int8_recipe")
        if recipe is not None and not (isinstance(recipe, dict) and isinstance(recipe.get("reduce_range"), bool)):
            raise NasqError(
                f"profile {source}: int8_recipe must be an object with a boolean reduce_range, got {recipe!r}"
            )
        predictor_cls.validate_profile(profile)
        return profile

    @classmethod
    def load(cls, path: Path) -> Profile:
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

    def runs_either_natively(self, w_bits: int, a_bits: int) -> bool:
        """Whether the target runs the weights or the activations at these bit-widths natively (a bit-flexible
        accelerator runs 4-bit activations on float weights too): their bits, not float, set its latency."""
        native = self.data.get("native_bits", [8] if self.int8 else [])
        return w_bits in native or a_bits in native

    @property
    def on_a_cpu(self) -> bool:
        """Measured with ONNX Runtime or TVM on the machine that ran the profiler (not through RPC): it records
        that machine (:mod:`nasq.hardware_profiles.machine`)."""
        return self.metadata.get("runtime") in ("onnxruntime", "tvm") and not self.remote

    def machine_mismatch(self) -> str | None:
        """How this machine differs from the one the profile was measured on (not measured with ONNX Runtime
        or TVM here at all, on a remote device, another CPU, or other kernel-deciding CPU flags: AVX2, AVX-512,
        VNNI, AMX), or None when it does not."""
        if self.remote:
            return f"a remote device measured through {self.metadata.get('measured_via')}"
        if not self.on_a_cpu:
            return f"'{self.metadata.get('device')}' ({self.metadata.get('runtime')}), not this machine"
        difference = machine_difference(self.metadata)
        if difference is None:
            return None
        return f"measured on {describe(self.metadata)}, and this machine is {describe(this_machine())}: {difference}"

    def mismatch_warning(self, target: str) -> str | None:
        """One line for the top of a command's output when ``target`` is a CPU profile of another machine:
        both machines, and how to profile this one; None otherwise."""
        if not self.on_a_cpu or self.measured_here():
            return None
        return (
            f"warning: target '{target}' was {self.machine_mismatch()}; its latencies are that machine's, not "
            f"this one's (profile this machine: `nasq profile --backend {self.metadata['runtime']} --name NAME`, "
            "or name the target local-ort)"
        )

    @property
    def int8_recipe(self) -> dict[str, Any]:
        """How int8 models for this target are quantized (:func:`nasq.hardware_profiles.machine.int8_recipe`): as
        the profile recorded it, else for the CPU it records, else (an accelerator model, a published table) for
        this machine, where nasq runs the exported model with ONNX Runtime."""
        return self.data.get("int8_recipe") or int8_recipe(self.metadata if self.on_a_cpu else this_machine())

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
