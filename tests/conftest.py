import copy
import json
import os
import tempfile

import pytest

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# profiles measured for local-ort go to a store of the test session's own, never the user's; profiles of this
# machine are found only where a test puts them (and among the shipped ones, which tests do not rely on)
os.environ["NASQ_PROFILE_STORE"] = tempfile.mkdtemp(prefix="nasq-test-store-")
os.environ.pop("NASQ_PROFILE_PATH", None)

#: the shipped ONNX Runtime profile whose measured tables the fixture profiles below reuse: any would do, the tests
#: of logic only need a complete profile, and they say for which machine it stands
BASE_PROFILE = "xeon-avx512-ort"

#: machine records of the CPU kinds this project has run on, as a profile's metadata holds them
XEON_VNNI = {
    "device": "Intel(R) Xeon(R) Processor",
    "cpu_id": None,
    "machine": "x86_64",
    "cpu_flags": ["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_int8"],
}
EPYC_AVX2 = {"device": "AMD EPYC", "cpu_id": None, "machine": "x86_64", "cpu_flags": ["avx2", "fma"]}
OTHER_MACHINES = {"xeon-vnni": XEON_VNNI, "epyc-avx2": EPYC_AVX2}


def profile_data(machine="here", name="fixture", base=BASE_PROFILE) -> dict:
    """A complete ONNX Runtime profile (``base``'s measured tables) that says it was measured on ``machine``:
    "here" (this machine, with the ONNX Runtime installed here), a key of OTHER_MACHINES, or a record."""
    import onnxruntime

    from nasq.hardware_profiles import load_profile
    from nasq.hardware_profiles.machine import KERNEL_FLAGS, int8_recipe, machine_difference, this_machine

    data = copy.deepcopy(load_profile(base).data)
    if machine == "here":
        record = this_machine()
    else:
        record = {
            **(OTHER_MACHINES[machine] if isinstance(machine, str) else machine),
            "cpu_flags_checked": list(KERNEL_FLAGS),
        }
        if machine_difference(record) is None:  # the test runs on that very kind of machine: another one still
            record["device"] += " (another one)"
    data["metadata"].update(record, runtime_version=onnxruntime.__version__)
    data["name"] = name
    data["int8_recipe"] = int8_recipe(record)
    return data


def write_profile(path, machine="here", **kwargs):
    """:func:`profile_data` written to ``path`` (a .json file); returns the path as a string."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(profile_data(machine, name=path.stem, **kwargs)))
    return str(path)


@pytest.fixture(scope="session")
def space():
    from nasq.spaces import create_space

    return create_space("mobilenet-mnist")


@pytest.fixture(scope="session")
def mnist():
    from nasq.data import load_mnist

    return load_mnist()
