"""`nasq predict`: any ONNX model, float or int8 QDQ, priced with every op accounted for."""

import json

import numpy as np
import onnx
import pytest

from nasq.hardware_profiles import load_profile
from nasq.onnx_graph import graph_layers
from nasq.predict import predict_model, prepared_model, real_topology
from test_cli import assert_clean_error, run


@pytest.mark.parametrize("name, layers, gmacs", [("resnet50", 54, 4.09), ("squeezenet", 26, 0.35),
                                                 ("shufflenet", 50, 0.1247), ("densenet121", 121, 2.83)])
def test_real_topologies_are_read_layer_by_layer(name, layers, gmacs):
    model, notes = prepared_model(real_topology(name))
    graph = graph_layers(model)
    assert len(graph.layers) == layers
    assert sum(l.macs for l in graph.layers) / 1e9 == pytest.approx(gmacs, rel=0.01)
    assert notes and "ConstantOfShape" in notes[0]


def test_predict_cli_lists_uncovered_ops_and_how_they_were_priced():
    out = run("predict", "--target", "x86-ort", real_topology("squeezenet"), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["latency_ms"] > 0 and result["layers"] == {"fp32 conv": 26}
    ops = result["uncovered_ops"]
    assert ops["Relu"]["priced_as"].startswith("fused") and ops["Concat"]["ms"] > 0
    assert ops["MaxPool"]["priced_as"].startswith("its own measured cost") and ops["MaxPool"]["ms"] > 0
    assert "memory traffic" in ops["Dropout"]["priced_as"] or ops["Dropout"]["priced_as"].startswith("no compute")
    text = run("predict", "--target", "bitserial-sim", real_topology("shufflenet"))
    assert text.returncode == 0 and "not modeled by this target" in text.stdout


def test_int8_qdq_layers_are_recognised(tmp_path):
    from nasq.ort import quantize_qdq

    model, _ = prepared_model(real_topology("squeezenet"))
    onnx.save(model, str(tmp_path / "f.onnx"))
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    quantize_qdq(tmp_path / "f.onnx", tmp_path / "q.onnx", [{"data_0": x}])
    profile = load_profile("x86-ort")
    q = predict_model(onnx.load(str(tmp_path / "q.onnx")), profile)
    f = predict_model(model, profile)
    assert q["layers"] == {"int8 conv": 26}
    assert q["uncovered_ops"]["DequantizeLinear"]["priced_as"].startswith("precision boundary")
    assert q["latency_ms"] != f["latency_ms"]


def test_bad_models_and_targets_are_one_line_errors(tmp_path):
    (tmp_path / "x.onnx").write_text("not a model")
    assert_clean_error(run("predict", "--target", "x86-ort", tmp_path / "x.onnx"), "is not an ONNX model")
    assert_clean_error(run("predict", "--target", "x86-ort", tmp_path / "none.onnx"), "does not exist")
    assert_clean_error(run("predict", "--target", "nb201-pixel3", real_topology("squeezenet")),
                       "prices architectures of space 'nas-bench-201' only")
