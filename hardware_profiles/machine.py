"""Which machine a profile was measured on, whether this one is like it, and the int8 recipe its CPU needs.

A profile measured with ONNX Runtime (or TVM, locally) records the machine in its ``metadata``:

    device              the CPU's model name (``/proc/cpuinfo``); on a VM often only "AMD EPYC"
    cpu_id              vendor, family and model numbers, which tell CPU generations apart that share a name
    cpu_flags           the kernel-deciding flags it has, out of ``cpu_flags_checked``
    cpu_flags_checked   the flags that were looked for
    machine             the architecture (``platform.machine()``)

Two machines are alike when the names, the flags both looked for, and (where both record it) the CPU ids are
the same. ONNX Runtime picks its kernels by these flags (AVX2 or AVX-512 blocks, VNNI or not for int8), so a
profile of one kind of CPU prices another's wrongly.
"""

from __future__ import annotations

import functools
import platform
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nasq.errors import NasqError

#: CPU flags that decide which kernels ONNX Runtime (MLAS) and TVM run: x86 vector widths, int8 dot products
#: (VNNI, AMX), bf16; Arm's dot-product and matrix extensions
KERNEL_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_int8",
    "neon",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
)
#: int8 dot-product instructions that accumulate u8 x s8 products in 32 bits, without saturation
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
X86 = ("x86_64", "amd64", "i386", "i686")


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, ...]:
    """``/proc/cpuinfo``'s lines, read once: this machine's record is asked for on every profile loaded."""
    try:
        return tuple(Path("/proc/cpuinfo").read_text().splitlines())
    except OSError:
        return ()


def _field(lines: Sequence[str], *names: str) -> str | None:
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() in names:
            return value.strip()
    return None


def cpu_model() -> str:
    return _field(_cpuinfo(), "model name") or platform.processor() or platform.machine()


def cpu_id() -> dict[str, Any] | None:
    """Vendor and family/model numbers (x86), or implementer/part (Arm); None where the kernel does not say."""
    lines = _cpuinfo()
    vendor, family, model = _field(lines, "vendor_id"), _field(lines, "cpu family"), _field(lines, "model")
    if vendor and family and model and family.isdigit() and model.isdigit():
        return {"vendor": vendor, "family": int(family), "model": int(model)}
    implementer, part = _field(lines, "CPU implementer"), _field(lines, "CPU part")
    if implementer and part:
        return {"vendor": implementer, "part": part}
    return None


def cpu_flags(wanted: Sequence[str] = KERNEL_FLAGS) -> list[str]:
    have = set((_field(_cpuinfo(), "flags", "Features") or "").split())
    return [f for f in wanted if f in have]


def this_machine() -> dict[str, Any]:
    """This machine's record, as a profile measured here stores it in its metadata."""
    return {
        "device": cpu_model(),
        "cpu_id": cpu_id(),
        "cpu_flags": cpu_flags(),
        "cpu_flags_checked": list(KERNEL_FLAGS),
        "machine": platform.machine(),
    }


def check_machine_record(metadata: Mapping[str, Any], source: str) -> None:
    """NasqError naming the first missing or malformed field of a profile's machine record."""

    def bad(field: str, what: str) -> NasqError:
        return NasqError(
            f"profile {source}: metadata.{field} {what}; a profile measured on a CPU records it "
            "(measure it again with `nasq profile`)"
        )

    if not isinstance(metadata.get("device"), str) or not metadata["device"].strip():
        raise bad("device", "must be the CPU's model name")
    for field in ("cpu_flags", "cpu_flags_checked"):
        value = metadata.get(field)
        if field not in metadata:
            raise bad(field, "is missing")
        if not isinstance(value, list) or not all(isinstance(f, str) and re.fullmatch(r"[a-z0-9_]+", f) for f in value):
            raise bad(field, f"must be a list of CPU flag names, got {value!r}")
    if not set(metadata["cpu_flags"]) <= set(metadata["cpu_flags_checked"]):
        raise bad("cpu_flags", "lists flags that cpu_flags_checked does not")
    cid = metadata.get("cpu_id")
    if cid is not None and not (
        isinstance(cid, dict)
        and isinstance(cid.get("vendor"), str)
        and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in cid.values())
    ):
        raise bad("cpu_id", f"must be null or an object of vendor and model numbers, got {cid!r}")


def describe(record: Mapping[str, Any]) -> str:
    """'AMD EPYC (AuthenticAMD family 26 model 2; avx2 fma avx512f ...)': a machine record in one phrase."""
    cid = record.get("cpu_id")
    ident = " ".join(str(v) if k == "vendor" else f"{k} {v}" for k, v in cid.items()) if isinstance(cid, dict) else ""
    flags = " ".join(record.get("cpu_flags") or []) or "none of " + " ".join(record.get("cpu_flags_checked") or [])
    return f"{record.get('device')} ({ident + '; ' if ident else ''}{flags})"


def machine_difference(record: Mapping[str, Any], here: Mapping[str, Any] | None = None) -> str | None:
    """How the machine ``here`` (default: this one) differs from a profile's machine record, or None when they are
    alike: the same CPU name, the same kernel-deciding flags among those both looked for, the same CPU id where both
    record one."""
    here = this_machine() if here is None else here
    if record.get("device") != here["device"]:
        return "another CPU"
    checked = set(record.get("cpu_flags_checked") or []) & set(here["cpu_flags_checked"])
    theirs, ours = set(record.get("cpu_flags") or []) & checked, set(here["cpu_flags"]) & checked
    if theirs != ours:
        parts = ([f"without {' '.join(sorted(ours - theirs))}"] if ours - theirs else []) + (
            [f"with {' '.join(sorted(theirs - ours))}"] if theirs - ours else []
        )
        return "the same CPU name " + " and ".join(parts)
    if (
        isinstance(record.get("cpu_id"), dict)
        and isinstance(here.get("cpu_id"), dict)
        and record["cpu_id"] != here["cpu_id"]
    ):
        return "another CPU generation of the same name"
    return None


def int8_recipe(record: Mapping[str, Any]) -> dict[str, Any]:
    """How int8 QDQ models for this machine record's CPU are quantized: uint8 activations per tensor, int8 weights
    per output channel, symmetric; on x86 without VNNI the weights keep 7 bits (``reduce_range``, range -64..64).
    There ONNX Runtime's u8s8 kernels add pairs of uint8 x int8 products in 16 bits (``vpmaddubsw``), which
    saturates with full-range weights (255 x 127 x 2 > 32767); VNNI and AMX accumulate in 32 bits."""
    x86 = str(record.get("machine", "")).lower() in X86
    vnni = any(f in (record.get("cpu_flags") or []) for f in VNNI_FLAGS)
    reduce = x86 and not vnni
    return {
        "activations": "uint8, per tensor",
        "weights": "int8, per output channel, symmetric",
        "reduce_range": reduce,
        "weight_range": 64 if reduce else 127,
        "why": (
            "x86 without VNNI: 16-bit pair sums saturate with full-range int8 weights"
            if reduce
            else "int8 dot products accumulate in 32 bits (VNNI/AMX)"
            if x86
            else "not x86: no 16-bit pair sums"
        ),
    }


def int8_recipe_here() -> dict[str, Any]:
    """The int8 recipe for this machine's CPU (what profiling and validation measure with)."""
    return int8_recipe(this_machine())
