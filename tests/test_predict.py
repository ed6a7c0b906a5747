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


def _graph(nodes, inits, inputs=(("x", [1, 16, 8, 8]),)):
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_residual_adds_are_priced_as_onnx_runtime_runs_them():
    """Float: an add right after a dense float conv (through its BatchNorm) is fused into the conv, and so
    is the ReLU after it; after a grouped conv it is not. Int8: an Add between two dequantized tensors into a
    quantization is one QLinearAdd; a Sum there runs in float behind two dequantizations and before a
    quantization; a ReLU straight into a quantization is dropped."""
    from onnx import helper

    w = np.ones((16, 16, 1, 1), np.float32)
    bn = {k: np.ones(16, np.float32) for k in ("s", "b", "m", "v")}
    float_model = _graph([
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"]),
        helper.make_node("Add", ["n", "x"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Conv", ["r", "g"], ["c2"], group=4),
        helper.make_node("Add", ["c2", "r"], ["y"]),
    ], {"w": w, "g": np.ones((16, 4, 1, 1), np.float32), **bn})
    kinds = {(o.op_type, o.kind) for o in graph_layers(float_model).others}
    assert kinds == {("BatchNormalization", "fused"), ("Add", "fused"), ("Relu", "fused"), ("Add", "memory")}

    scale, zero = np.float32(0.1), np.uint8(128)
    q = {"sc": scale, "zp": zero}

    def qdq(add_op):
        return _graph([
            helper.make_node("QuantizeLinear", ["x", "sc", "zp"], ["xq"]),
            helper.make_node("DequantizeLinear", ["xq", "sc", "zp"], ["xd"]),
            helper.make_node("QuantizeLinear", ["z", "sc", "zp"], ["zq"]),
            helper.make_node("DequantizeLinear", ["zq", "sc", "zp"], ["zd"]),
            helper.make_node(add_op, ["xd", "zd"], ["a"]),
            helper.make_node("Relu", ["a"], ["r"]),
            helper.make_node("QuantizeLinear", ["r", "sc", "zp"], ["rq"]),
            helper.make_node("DequantizeLinear", ["rq", "sc", "zp"], ["rd"]),
            helper.make_node("Conv", ["rd", "w"], ["y"]),
        ], {"w": w, **q}, inputs=(("x", [1, 16, 8, 8]), ("z", [1, 16, 8, 8])))

    profile = load_profile("x86-ort")
    add = next(o for o in graph_layers(qdq("Add")).others if o.op_type == "Add")
    assert add.priced_as == "QLinearAdd" and not add.boundaries
    summed = next(o for o in graph_layers(qdq("Sum")).others if o.op_type == "Sum")
    assert summed.priced_as == "" and summed.boundaries == [("dequantize", 1024), ("dequantize", 1024), ("quantize", 1024)]
    relu = next(o for o in graph_layers(qdq("Sum")).others if o.op_type == "Relu")
    assert relu.kind == "fused"  # straight into a QuantizeLinear
    priced = predict_model(qdq("Sum"), profile)["uncovered_ops"]["Sum"]
    assert "3 precision boundaries" in priced["priced_as"] and priced["ms"] > 0
    assert "QLinearAdd" in predict_model(qdq("Add"), profile)["uncovered_ops"]["Add"]["priced_as"]
