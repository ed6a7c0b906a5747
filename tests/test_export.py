"""Real ONNX export of trained, compressed candidates, checked against ONNX Runtime, for CPUs with and without VNNI."""

import platform
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from conftest import profile_data

from nasq.export import EXPORTERS
from nasq.hardware_profiles import load_profile
from nasq.hardware_profiles.machine import VNNI_FLAGS, cpu_flags
from nasq.hardware_profiles.profile import Profile
from nasq.ort import executed_ops, session
from nasq.train import TrainSchedule, compress_and_train, predict_logits

SHORT = TrainSchedule(train_epochs=0.5, finetune_epochs=0.3)
#: long enough for a model that is right on most digits: agreement is measured on models nasq would export
TRAINED = TrainSchedule(train_epochs=2.0, finetune_epochs=1.0)
#: a CPU without VNNI (AMD EPYC Zen 2: AVX2 only) that qemu's user-mode emulator presents to a process
QEMU, QEMU_CPU = shutil.which("qemu-x86_64"), "EPYC-Rome-v1"


def mixed_candidate(space, seed, int8_every=2):
    """A sampled candidate whose every other layer is set to 8-bit weights and activations."""
    cand = space.sample(seed)
    for i, layer in enumerate(space.layers(cand)):
        if i % int8_every == 0:
            cand[f"{layer.name}.w_bits"] = cand[f"{layer.name}.a_bits"] = 8
        else:  # 2-bit activations would turn the int8 kernels' rounding differences into full steps
            for kind in ("w_bits", "a_bits"):
                cand[f"{layer.name}.{kind}"] = max(4, cand[f"{layer.name}.{kind}"])
    return space.validate(cand)


def int8_weights(path):
    """The int8 weight tensors of an exported QDQ model (per-channel weights feed a DequantizeLinear)."""
    model = onnx.load(str(path))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    return [
        inits[n.input[0]]
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and inits.get(n.input[0], np.zeros(0, np.uint8)).dtype == np.int8
    ]


def predictions_under_qemu(path, x, tmp_path):
    """Arg-max predictions of ``path`` by ONNX Runtime in a process that runs on an emulated CPU without VNNI."""
    np.save(tmp_path / "x.npy", x)
    code = (
        "import sys, numpy as np; from nasq.ort import session; "
        f"x = np.load({str(tmp_path / 'x.npy')!r}); "
        f"print(' '.join(map(str, session({str(path)!r}).run(None, {{'input': x}})[0].argmax(1))))"
    )
    out = subprocess.run(
        [QEMU, "-cpu", QEMU_CPU, sys.executable, "-c", code], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return np.array(out.stdout.split(), dtype=np.int64)


@pytest.mark.parametrize("target", ["here", "epyc-avx2", "xeon-vnni", "bitserial-sim"])
def test_int8_export_agrees_with_torch_for_the_target_cpu(space, mnist, tmp_path, target):
    """Trained for the target and exported with its int8 recipe (reduced range on a CPU without VNNI), every int8
    layer runs on an int8 kernel, and the model's ONNX Runtime predictions agree with torch's on at least 99% of the
    test digits, on this machine where it can run the recipe as the target does."""
    profile = (
        load_profile(target)
        if target == "bitserial-sim"
        else Profile.from_dict(profile_data(target), f"a profile of {target}")
    )
    cand = mixed_candidate(space, 11)
    model, _ = compress_and_train(space, cand, mnist, TRAINED, seed=0, target=profile)
    layers = space.layers(cand)
    bits = {l.name: (l.w_bits, l.a_bits) for l in layers}
    info = EXPORTERS.create("onnx").export(model, bits, profile, mnist.train.x, tmp_path / "m.onnx")
    int8 = [n for n, m in info.layer_modes.items() if m == "int8"]
    assert int8 == [l.name for l in layers if l.w_bits == l.a_bits == 8]
    assert set(info.layer_modes.values()) <= {"int8", "float", "simulated"}
    ops = executed_ops((tmp_path / "m.onnx").read_bytes())
    assert ops.get("QLinearConv", 0) + ops.get("QGemm", 0) == len(int8)  # really int8 kernels in ONNX Runtime
    weights = int8_weights(tmp_path / "m.onnx")
    assert len(weights) == len(int8)
    limit = 64 if profile.int8_recipe["reduce_range"] else 127
    assert max(int(np.abs(w).max()) for w in weights) == limit  # each channel's largest weight at the recipe's end
    if not profile.int8_recipe["reduce_range"] and not cpu_flags(VNNI_FLAGS):
        pytest.skip(
            "the full-range int8 recipe of a CPU with VNNI saturates on this CPU without VNNI, as "
            "test_int8_export_for_a_cpu_without_vnni_agrees_there checks: its agreement needs a CPU with VNNI"
        )
    x, y = mnist.test.x, mnist.test.y
    ort_logits = session(tmp_path / "m.onnx").run(None, {"input": x})[0]
    torch_logits = predict_logits(model, x)
    agreement = (ort_logits.argmax(1) == torch_logits.argmax(1)).mean()
    assert agreement >= 0.99, agreement
    assert abs((ort_logits.argmax(1) == y).mean() - (torch_logits.argmax(1) == y).mean()) <= 0.01


@pytest.mark.skipif(
    QEMU is None or platform.machine() != "x86_64",
    reason="needs qemu-x86_64 (Debian's qemu-user, which `make test` installs) on an x86-64 machine, "
    "to run ONNX Runtime on an emulated CPU without VNNI",
)
def test_int8_export_for_a_cpu_without_vnni_agrees_there(space, mnist, tmp_path):
    """On a CPU without VNNI (emulated: AMD EPYC Zen 2), ONNX Runtime's u8s8 kernels add pairs of products in 16
    bits: the full-range int8 recipe saturates there and the predictions part from torch's; the reduced range
    that the target's profile records keeps them within 1%."""
    cand = mixed_candidate(space, 11)
    x = mnist.test.x
    agreement = {}
    for target in ("epyc-avx2", "xeon-vnni"):  # reduced range, and the full range a VNNI CPU runs
        profile = Profile.from_dict(profile_data(target), target)
        model, _ = compress_and_train(space, cand, mnist, TRAINED, seed=0, target=profile)
        bits = {l.name: (l.w_bits, l.a_bits) for l in space.layers(cand)}
        path = tmp_path / f"{target}.onnx"
        EXPORTERS.create("onnx").export(model, bits, profile, mnist.train.x, path)
        emulated = predictions_under_qemu(path, x, tmp_path)
        agreement[target] = (emulated == predict_logits(model, x).argmax(1)).mean()
    assert agreement["epyc-avx2"] >= 0.99, agreement
    assert agreement["xeon-vnni"] < 0.97, agreement  # what the recipe prevents: the full range saturates there


def test_simulated_export_is_exact_without_int8_layers(space, mnist, tmp_path):
    cand = space.sample(4)
    for layer in space.layers(cand):  # 4- and 6-bit everywhere: nothing runs int8
        cand[f"{layer.name}.w_bits"] = 4
        cand[f"{layer.name}.a_bits"] = 6
    model, _ = compress_and_train(space, cand, mnist, SHORT, seed=0)
    bits = {l.name: (l.w_bits, l.a_bits) for l in space.layers(cand)}
    profile = Profile.from_dict(profile_data("here"), "this machine")
    info = EXPORTERS.create("onnx").export(model, bits, profile, mnist.train.x, tmp_path / "m.onnx")
    assert set(info.layer_modes.values()) == {"simulated"}
    x = mnist.test.x[:200]
    ort_logits = session(tmp_path / "m.onnx").run(None, {"input": x})[0]
    np.testing.assert_allclose(ort_logits, predict_logits(model, x), atol=2e-3, rtol=1e-3)
