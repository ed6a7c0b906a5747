"""Real ONNX export of trained, compressed candidates, checked against ONNX Runtime."""

import numpy as np
import pytest

from nasq.export import EXPORTERS
from nasq.hardware_profiles import load_profile
from nasq.ort import executed_ops, session
from nasq.train import TrainSchedule, compress_and_train, predict_logits

SHORT = TrainSchedule(train_epochs=0.5, finetune_epochs=0.3)


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


@pytest.mark.parametrize("target", ["x86-ort", "bitserial-sim"])
def test_mixed_precision_export_matches_torch(space, mnist, tmp_path, target):
    cand = mixed_candidate(space, 11)
    model, _ = compress_and_train(space, cand, mnist, SHORT, seed=0)
    layers = space.layers(cand)
    bits = {l.name: (l.w_bits, l.a_bits) for l in layers}
    info = EXPORTERS.create("onnx").export(model, bits, load_profile(target), mnist.train.x, tmp_path / "m.onnx")
    int8 = [n for n, m in info.layer_modes.items() if m == "int8"]
    assert int8 == [l.name for l in layers if l.w_bits == l.a_bits == 8]
    assert set(info.layer_modes.values()) <= {"int8", "float", "simulated"}
    ops = executed_ops((tmp_path / "m.onnx").read_bytes())
    # every int8 layer really runs on an int8 kernel in ONNX Runtime
    assert ops.get("QLinearConv", 0) + ops.get("QGemm", 0) == len(int8)
    x = mnist.test.x[:300]
    ort_logits = session(tmp_path / "m.onnx").run(None, {"input": x})[0]
    torch_logits = predict_logits(model, x)
    agreement = (ort_logits.argmax(1) == torch_logits.argmax(1)).mean()
    assert agreement >= 0.95, agreement
    y = mnist.test.y[:300]
    assert abs((ort_logits.argmax(1) == y).mean() - (torch_logits.argmax(1) == y).mean()) <= 0.03


def test_simulated_export_is_exact_without_int8_layers(space, mnist, tmp_path):
    cand = space.sample(4)
    for layer in space.layers(cand):  # 4- and 6-bit everywhere: nothing runs int8
        cand[f"{layer.name}.w_bits"] = 4
        cand[f"{layer.name}.a_bits"] = 6
    model, _ = compress_and_train(space, cand, mnist, SHORT, seed=0)
    bits = {l.name: (l.w_bits, l.a_bits) for l in space.layers(cand)}
    info = EXPORTERS.create("onnx").export(model, bits, load_profile("x86-ort"), mnist.train.x, tmp_path / "m.onnx")
    assert set(info.layer_modes.values()) == {"simulated"}
    x = mnist.test.x[:200]
    ort_logits = session(tmp_path / "m.onnx").run(None, {"input": x})[0]
    np.testing.assert_allclose(ort_logits, predict_logits(model, x), atol=2e-3, rtol=1e-3)
