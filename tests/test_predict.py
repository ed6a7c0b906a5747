"""`nasq predict`: any ONNX model, float or int8 QDQ, priced with every op accounted for."""

import json

import numpy as np
import onnx
import pytest
from conftest import profile_data, write_profile
from test_cli import assert_clean_error, run

from nasq.errors import NasqError
from nasq.hardware_profiles.profile import Profile
from nasq.kernel_pricing import AFFINE
from nasq.onnx_graph import graph_layers
from nasq.predict import predict_model, prepared_model, real_topology


def xeon_profile() -> Profile:
    """A profile of a Xeon with AVX-512 VNNI: pricing logic, whatever CPU runs the test (its kernels are read from
    this machine's ONNX Runtime)."""
    return Profile.from_dict(profile_data("xeon-vnni"), "a Xeon's profile")


@pytest.mark.parametrize(
    "name, layers, gmacs",
    [("resnet50", 54, 4.09), ("squeezenet", 26, 0.35), ("shufflenet", 50, 0.1247), ("densenet121", 121, 2.83)],
)
def test_real_topologies_are_read_layer_by_layer(name, layers, gmacs):
    model, notes = prepared_model(real_topology(name))
    graph = graph_layers(model)
    assert len(graph.layers) == layers
    assert sum(l.macs for l in graph.layers) / 1e9 == pytest.approx(gmacs, rel=0.01)
    assert notes and "ConstantOfShape" in notes[0]


def test_predict_cli_lists_uncovered_ops_and_how_they_were_priced(tmp_path):
    """An ORT target prices the kernels ONNX Runtime runs: SqueezeNet's convs and pools in the blocked
    layout, its ReLUs fused away; a graph-priced target names every ONNX op and how it was priced. A profile of
    another machine is said in one warning line before the results, naming both machines."""
    out = run(
        "predict", "--target", write_profile(tmp_path / "xeon.json", "xeon-vnni"), real_topology("squeezenet"), "--json"
    )
    assert out.returncode == 0, out.stderr
    warning = out.stderr.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: target") and "Intel(R) Xeon(R)" in warning[0]
    assert "this machine is" in warning[0] and "nasq profile --backend onnxruntime" in warning[0]
    here = run("predict", "--target", write_profile(tmp_path / "here.json"), real_topology("squeezenet"), "--json")
    assert here.returncode == 0 and "warning" not in here.stderr, here.stderr
    result = json.loads(out.stdout)
    assert result["latency_ms"] > 0 and result["layers"] == {"fp32 conv": 26}
    assert result["pricing"].startswith("ONNX Runtime's executed kernels")
    ops = result["uncovered_ops"]
    assert "Relu" not in ops and ops["Concat"]["ms"] > 0
    assert ops["nchwc.MaxPool"]["priced_as"].startswith("its own measured cost") and ops["nchwc.MaxPool"]["count"] == 3
    priced = sum(k["ms"] for k in result["kernels"])
    assert priced == pytest.approx(result["layers_ms"] + result["memory_ops_ms"], rel=1e-3)
    graph = predict_model(prepared_model(real_topology("squeezenet"))[0], xeon_profile(), pricing="graph")
    assert graph["uncovered_ops"]["Relu"]["priced_as"].startswith("fused")
    assert graph["uncovered_ops"]["MaxPool"]["priced_as"].startswith("its own measured cost")
    text = run("predict", "--target", "bitserial-sim", real_topology("shufflenet"))
    assert text.returncode == 0 and "not modeled by this target" in text.stdout


def test_executed_kernels_price_grouped_convs_reorders_and_int8_kernels(tmp_path):
    """ShuffleNet: grouped convs stay plain NCHW (one conv per group), its depthwise convs run blocked
    behind reorders; int8 SqueezeNet runs QLinearConv, channels-last pools and int8 concats."""
    from nasq.kernel_pricing import requantized_share
    from nasq.ort import executed_kernels, quantize_qdq

    profile = xeon_profile()
    shuffle = predict_model(prepared_model(real_topology("shufflenet"))[0], profile)
    assert shuffle["layers"]["fp32 grouped conv"] == 32 and shuffle["layers"]["fp32 dwconv"] == 16
    for op in ("nchwc.ReorderInput", "nchwc.ReorderOutput"):
        assert shuffle["uncovered_ops"][op]["count"] > 10 and shuffle["uncovered_ops"][op]["ms"] > 0
    model, _ = prepared_model(real_topology("squeezenet"))
    onnx.save(model, str(tmp_path / "f.onnx"))
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    quantize_qdq(tmp_path / "f.onnx", tmp_path / "q.onnx", [{"data_0": x}])
    q = predict_model(onnx.load(str(tmp_path / "q.onnx")), profile)
    assert q["layers"] == {"int8 conv": 26}
    for op in ("QLinearConcat", "NhwcMaxPool", "QuantizeLinear", "Transpose.uint8.c3"):
        assert q["uncovered_ops"][op]["priced_as"].startswith("its own measured cost"), op
    assert q["latency_ms"] < predict_model(model, profile)["latency_ms"]
    # ORT's quantizer puts one input of each fire module's concat on the output's scale: copied, not requantized
    concats = [
        k for k in executed_kernels(onnx.load(str(tmp_path / "q.onnx")).SerializeToString()) if k.op == "QLinearConcat"
    ]
    assert len(concats) == 8 and all(0 < requantized_share(k) < 1 for k in concats)


def test_lone_conv_reorders_follow_the_runtime():
    """The rule for which reorders ONNX Runtime puts around a lone float conv (subtracted from the table's
    cost inside a network) agrees with the runtime's own optimizer on random shapes."""
    from nasq.hardware_profiles.probe_graphs import layer_graph, nchwc_block_size
    from nasq.kernel_pricing import lone_conv_reorders
    from nasq.ort import executed_ops
    from nasq.spaces.base import LayerSpec

    block = nchwc_block_size()
    rng = np.random.default_rng(3)
    for i in range(40):
        op = "dwconv" if i % 3 == 0 else "conv"
        cin = int(rng.integers(2, 70))
        cout = cin if op == "dwconv" else int(rng.integers(1, 70))
        layer = LayerSpec("c", op, cin, cout, int(rng.choice([1, 3, 5])), int(rng.choice([1, 2])), 14)
        model, _ = layer_graph(layer, 1, rng)
        ran = {k for k in executed_ops(model.SerializeToString()) if k.startswith("Reorder")}
        assert {op.split(".")[1] for op, _ in lone_conv_reorders(layer, block)} == ran, layer


def test_op_probes_read_distinct_tensors_and_price_concat_copies_apart():
    """A probe of a two-input op reads two tensors, as a residual add or a concat in a network does (one
    tensor twice reads half the memory); the same-scale QLinearConcat probe copies, the other requantizes;
    a broadcast add is priced by its memory traffic; a strided average pool has its own probe."""
    from nasq.hardware_profiles.probe_graphs import OP_PROBES, RUNTIME_PROBES, op_graph, runtime_graph
    from nasq.kernel_pricing import _op_key, _work, requantized_share
    from nasq.ort import Kernel, session

    for op, attrs, n_inputs in OP_PROBES:
        model, feed, work = op_graph(op, attrs, n_inputs, 16, 8)
        assert len(feed) == len(model.graph.input) == n_inputs, op
        session(model.SerializeToString()).run(None, feed)
    strided = next(attrs for op, attrs, _ in OP_PROBES if op == "AveragePool.s2")
    assert op_graph("AveragePool.s2", strided, 1, 16, 8)[2] == 16 * 4 * 4 * 9  # output elements x window
    outputs = {}
    for op in ("QLinearConcat", "QLinearConcat.copy"):
        _, domain, attrs = next(p for p in RUNTIME_PROBES if p[0] == op)
        model, feed, work = runtime_graph(op, domain, attrs, 16, 8)
        assert len(feed) == 2 and work == 2 * 16 * 8 * 8
        outputs[op] = session(model.SerializeToString()).run(None, feed)[0]
    copied = np.concatenate([feed["x"], feed["x2"]], axis=3)
    assert np.array_equal(outputs["QLinearConcat.copy"], copied)
    assert not np.array_equal(outputs["QLinearConcat"], copied)

    kernel = Kernel(
        "c",
        "QLinearConcat",
        {"axis": 3},
        [("uint8", [1, 2, 2, 4]), ("uint8", [1, 2, 2, 12])],
        [("uint8", [1, 2, 2, 16])],
        scalars={0: 0.1, 1: 128.0, 3: 0.1, 4: 128.0, 6: 0.2, 7: 128.0},
    )
    assert requantized_share(kernel) == pytest.approx(0.75)
    kernel.scalars = {3: 0.1, 4: 128.0}  # the output's scale is not a constant: everything requantizes
    assert requantized_share(kernel) == 1.0
    # an add of two tensors counts its inputs, as measured; a per-channel bias add, the same memory traffic
    x = ("float", [1, 4, 6, 6])
    assert _work(Kernel("a", "Add", {}, [x, x], [x])) == 2 * 144
    assert _work(Kernel("a", "Add", {}, [x], [x])) == round(2 * 144 * 2 / 3)
    pool = Kernel("p", "nchwc.AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2]}, [], [])
    assert _op_key(pool, {"nchwc.AveragePool.s2": {}}) == "nchwc.AveragePool.s2"
    assert _op_key(pool, {}) == "nchwc.AveragePool"
    pool.attrs["strides"] = [1, 1]
    assert _op_key(pool, {"nchwc.AveragePool.s2": {}}) == "nchwc.AveragePool"
    # layout transposes by direction and channel count, each the most specific cost the profile measured
    costs = {k: {} for k in ("Transpose", "Transpose.uint8", "Transpose.uint8.nchw", "Transpose.uint8.c3")}

    def transpose(dtype, perm, shape):
        return _op_key(Kernel("t", "Transpose", {"perm": perm}, [(dtype, shape)], []), costs)

    assert transpose("uint8", [0, 2, 3, 1], [1, 3, 224, 224]) == "Transpose.uint8.c3"
    assert transpose("uint8", [0, 2, 3, 1], [1, 8, 56, 56]) == "Transpose.uint8"
    assert transpose("uint8", [0, 3, 1, 2], [1, 56, 56, 64]) == "Transpose.uint8.nchw"
    assert transpose("uint8", [0, 3, 1, 2], [1, 224, 224, 3]) == "Transpose.uint8.nchw"  # not measured: the next
    assert transpose("float", [0, 3, 1, 2], [1, 224, 224, 3]) == "Transpose"
    assert transpose("uint8", [0, 1, 3, 2], [1, 3, 224, 224]) == "Transpose.uint8"


def test_each_runtime_probe_runs_the_kernel_it_prices():
    """Every runtime probe runs, in ONNX Runtime, a kernel that nasq.kernel_pricing keys to that probe's own
    cost: a uint8 max pool is not priced as the float one, nor a channel shuffle as a layout transpose."""
    from nasq.hardware_profiles.probe_graphs import RUNTIME_PROBES, runtime_graph
    from nasq.kernel_pricing import _op_key
    from nasq.ort import executed_kernels

    measured = {op: {} for op, _, _ in RUNTIME_PROBES}
    for op, domain, attrs in RUNTIME_PROBES:
        model, _, _ = runtime_graph(op, domain, attrs, 16, 8)
        keys = {_op_key(k, measured) for k in executed_kernels(model.SerializeToString())}
        assert (op.removesuffix(".copy") if op == "QLinearConcat.copy" else op) in keys, (op, keys)
    # without those entries (an older profile), the plain op's cost prices them, as before
    for op in (
        "MaxPool.uint8",
        "Transpose.uint8.shuffle",
        "Transpose.shuffle",
        "Transpose.uint8.nchw",
        "Transpose.c3",
        "Transpose.uint8.nchw.c3",
    ):
        model, _, _ = runtime_graph(op, "", dict(next(p[2] for p in RUNTIME_PROBES if p[0] == op)), 16, 8)
        assert {_op_key(k, {}) for k in executed_kernels(model.SerializeToString())} <= {
            "MaxPool",
            "Transpose",
            "Transpose.uint8",
        }


def test_context_probes_add_exactly_their_op_and_its_reorders_between_two_convs():
    """A context probe's sandwich runs, beside the sandwich it is measured over, the op and the layout reorders
    it brings, nothing else: the difference of their latencies is what the op costs between convs. The shipped
    profile prices such an op in a network by that cost."""
    from collections import Counter

    from nasq.hardware_profiles.probe_graphs import CONTEXT_PROBES, sandwich_graph
    from nasq.kernel_pricing import _op_key
    from nasq.ort import executed_kernels

    profile = xeon_profile()

    def kernels(op):
        return Counter(
            _op_key(k, profile.data["op_costs"])
            for k in executed_kernels(sandwich_graph(op, 32, 8)[0].SerializeToString())
        )

    assert kernels(None) == Counter({"nchwc.ReorderInput": 1, "nchwc.Conv": 2, "nchwc.ReorderOutput": 1})
    reorders = Counter({"nchwc.ReorderOutput": 1, "nchwc.ReorderInput": 1})
    expected = {
        "Sum": reorders + Counter({"Sum": 1}),
        "Relu": Counter({"Relu": 1}),
        "Transpose.shuffle": reorders + Counter({"Transpose.shuffle": 1, "Reshape": 2}),
        # a BatchNorm after a ReLU: a per-channel scale and shift run as a 1x1 depthwise conv, blocked
        "BatchNormalization": Counter({AFFINE: 1}),
    }
    for op, over in CONTEXT_PROBES:
        assert kernels(op) - kernels(over) == expected[op] and not kernels(over) - kernels(op), op
        assert profile.data["op_costs"][op]["in_context"], op
    priced = predict_model(sandwich_graph("Sum", 32, 8)[0], profile, pricing="kernels")
    assert "between two convs" in priced["uncovered_ops"]["Sum"]["priced_as"]
    priced = predict_model(sandwich_graph("BatchNormalization", 32, 8)[0], profile, pricing="kernels")
    how = priced["uncovered_ops"][AFFINE]["priced_as"]
    assert "depthwise conv: the BatchNorm's cost measured between two convs" in how
    assert priced["layers"] == {"fp32 conv": 2}  # not a conv layer


def test_a_batchnorm_no_conv_absorbed_is_priced_as_the_memory_bound_op_it_is():
    """DenseNet-121 runs 124 per-channel scales and shifts (62 BatchNorms after its concats and pools, 62 Muls
    after convs) as 1x1 depthwise NCHWc convs: each is priced by the BatchNorm's cost, which is memory-bound, not as a conv layer less the
    reorders a lone conv pays (a tenth of their time here); in a profile without the cost measured between convs,
    by the lone probe, and the listing says so."""
    import copy

    from nasq.hardware_profiles.costs import op_cost_ms
    from nasq.hardware_profiles.profile import Profile

    profile = xeon_profile()
    model = prepared_model(real_topology("densenet121"))[0]
    priced = predict_model(model, profile, predictor="table")
    affine = priced["uncovered_ops"][AFFINE]
    assert affine["count"] == 124 and "between two convs" in affine["priced_as"]
    assert not any("dwconv" in layer for layer in priced["layers"]) and priced["layers"]["fp32 conv"] == 121
    bn = profile.data["op_costs"]["BatchNormalization"]
    # each at least as many elements as 512 channels at 7x7 (the smallest it normalizes), at the cost measured there
    assert affine["ms"] > 124 * op_cost_ms({"measured": bn["in_context"]}, 25_088)
    data = copy.deepcopy(profile.data)
    del data["op_costs"]["BatchNormalization"]["in_context"]
    alone = predict_model(model, Profile.from_dict(data, "no in_context"), predictor="table")["uncovered_ops"][AFFINE]
    assert "measured alone (this profile has none measured between convs" in alone["priced_as"]
    assert 0 < alone["ms"] < affine["ms"]


def test_int8_context_probes_add_exactly_their_island_between_two_int8_convs():
    """An int8 context probe's sandwich runs, beside the one without, its op on dequantized input and the dequantize
    and quantize around it (and the dequantized constants of a BatchNorm), nothing else. The shipped profile
    prices such an op after a dequantize by its cost measured there."""
    from collections import Counter

    from nasq.hardware_profiles.probe_graphs import INT8_CONTEXT_PROBES, int8_sandwich_graph
    from nasq.ort import executed_kernels

    def kernels(op):
        return executed_kernels(int8_sandwich_graph(op, 32, 8)[0].SerializeToString())

    base = Counter(k.op for k in kernels(None))
    assert base["QLinearConv"] == 2 and base["QLinearConcat"] == 1
    profile = xeon_profile()
    for op in INT8_CONTEXT_PROBES:
        ks = kernels(op)
        added = Counter(k.op for k in ks) - base
        constants = 2 if op == "BatchNormalization" else 0
        assert added == Counter({op: 1, "DequantizeLinear": 1 + constants, "QuantizeLinear": 1}), (op, added)
        assert not base - Counter(k.op for k in ks), op
        assert "DequantizeLinear" in next(k for k in ks if k.op == op).producers
        assert profile.data["op_costs"][op]["in_int8_context"], op
    priced = predict_model(int8_sandwich_graph("BatchNormalization", 32, 8)[0], profile, pricing="kernels")
    assert "between two int8 convs" in priced["uncovered_ops"]["BatchNormalization"]["priced_as"]
    priced = predict_model(int8_sandwich_graph("Sum", 32, 8)[0], profile, pricing="kernels")
    assert "between two int8 convs" in priced["uncovered_ops"]["Sum"]["priced_as"]


def test_image_stems_are_priced_from_the_stems_measured():
    """A 3-channel stem is priced by the table's stems: as measured at a measured size, else from the nearest
    size measured (within 1.5x) by output pixels; a layer of many channels at a stem's size is not."""
    from nasq.hardware_profiles.predictors import PREDICTORS
    from nasq.hardware_profiles.probe_graphs import STEM_SHAPES
    from nasq.spaces.base import LayerSpec

    profile = xeon_profile()
    table = PREDICTORS.get("table")(profile)
    measured = {
        (e["cout"], e["kernel"], e["h_in"], e["precision"]): e["latency_ms"]
        for e in profile.data["layers"]
        if e["cin"] == 3 and e["stride"] == 2
    }
    assert {(s.cout, s.kernel, s.h_in) for s in STEM_SHAPES} <= {k[:3] for k in measured}
    for precision in ("fp32", "int8"):
        notes = []
        stem = LayerSpec("stem", "conv", 3, 64, 3, 2, 224)
        assert table.layer_ms(stem, precision, notes) == pytest.approx(measured[(64, 3, 224, precision)]) and not notes
        between = LayerSpec("stem", "conv", 3, 48, 7, 2, 200)  # nearest 224, halfway between 32 and 64 channels
        expected = (measured[(32, 7, 224, precision)] + measured[(64, 7, 224, precision)]) / 2 * (100 / 112) ** 2
        assert table.layer_ms(between, precision, notes) == pytest.approx(expected)
        assert "priced from those measured at 224" in notes[0]
        notes.clear()
        table.layer_ms(LayerSpec("c", "conv", 64, 64, 3, 2, 224), precision, notes)
        assert "regressor" in notes[0]


def test_op_costs_interpolate_between_measured_sizes():
    from nasq.hardware_profiles.costs import op_cost_ms

    cost = {
        "intercept_ms": 0.004,
        "per_mwork_ms": 1.0,
        "measured": [{"work": 100_000, "latency_ms": 0.02}, {"work": 400_000, "latency_ms": 0.2}],
    }
    assert op_cost_ms(cost, 250_000) == pytest.approx(0.11)
    assert op_cost_ms(cost, 800_000) == pytest.approx(0.4)  # proportional beyond the largest
    assert op_cost_ms(cost, 50_000) == pytest.approx(0.012)  # toward the fixed cost below the smallest
    assert op_cost_ms({"intercept_ms": 0.004, "per_mwork_ms": 1.0}, 1e6) == pytest.approx(1.004)


def test_int8_qdq_layers_are_recognised(tmp_path):
    from nasq.ort import quantize_qdq

    model, _ = prepared_model(real_topology("squeezenet"))
    onnx.save(model, str(tmp_path / "f.onnx"))
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    quantize_qdq(tmp_path / "f.onnx", tmp_path / "q.onnx", [{"data_0": x}])
    profile = xeon_profile()
    q = predict_model(onnx.load(str(tmp_path / "q.onnx")), profile, pricing="graph")
    f = predict_model(model, profile, pricing="graph")
    assert q["layers"] == {"int8 conv": 26}
    assert q["uncovered_ops"]["DequantizeLinear"]["priced_as"].startswith("precision boundary")
    assert q["latency_ms"] != f["latency_ms"]


def test_bad_models_and_targets_are_one_line_errors(tmp_path):
    (tmp_path / "x.onnx").write_text("not a model")
    target = write_profile(tmp_path / "here.json")
    assert_clean_error(run("predict", "--target", target, tmp_path / "x.onnx"), "is not an ONNX model")
    assert_clean_error(run("predict", "--target", target, tmp_path / "none.onnx"), "does not exist")
    assert_clean_error(
        run("predict", "--target", "nb201-pixel3", real_topology("squeezenet")),
        "prices architectures of space 'nas-bench-201' only",
    )


def test_a_symbolic_input_shape_needs_input_shape_and_is_priced_as_the_fixed_one(tmp_path):
    import onnx
    from onnx import helper

    from nasq.hardware_profiles.profile import Profile

    conv = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])]
    w = {"w": np.ones((16, 16, 3, 3), np.float32)}
    onnx.save(_graph(conv, w, inputs=(("x", ["N", 16, "H", "W"]),)), tmp_path / "dynamic.onnx")
    target = write_profile(tmp_path / "here.json")
    assert_clean_error(
        run("predict", "--target", target, tmp_path / "dynamic.onnx"),
        "input 'x' has symbolic dimensions 2 ('H'), 3 ('W'); give the shape after the batch with "
        "--input-shape, e.g. --input-shape 16,N,N",
    )
    profile = Profile.load(target)
    fixed = predict_model(_graph(conv, w, inputs=(("x", [1, 16, 8, 8]),)), profile)
    given = predict_model(prepared_model(tmp_path / "dynamic.onnx", (16, 8, 8))[0], profile)
    assert given["latency_ms"] == pytest.approx(fixed["latency_ms"]) and given["macs"] == fixed["macs"] > 0
    with pytest.raises(NasqError, match="contradicts input 'x''s fixed shape"):
        prepared_model(tmp_path / "dynamic.onnx", (3, 8, 8))
    with pytest.raises(NasqError, match="has 2 dimensions; input 'x' has 3 after the batch"):
        prepared_model(tmp_path / "dynamic.onnx", (8, 8))


def test_compute_priced_as_memory_traffic_is_said_first_not_trusted(tmp_path):
    """An LSTM or an Einsum of two activations does real arithmetic; priced unmeasured as memory traffic, the
    prediction says in its first line that it cannot be trusted (it was 10-100x under the measured time)."""
    from onnx import TensorProto, helper

    from nasq.hardware_profiles.profile import Profile
    from nasq.predict import format_prediction

    profile = Profile.load(write_profile(tmp_path / "here.json"))
    lstm = helper.make_graph(
        [helper.make_node("LSTM", ["x", "w", "r"], ["y"], hidden_size=32)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [20, 1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            onnx.numpy_helper.from_array(np.ones((1, 128, 16), np.float32), "w"),
            onnx.numpy_helper.from_array(np.ones((1, 128, 32), np.float32), "r"),
        ],
    )
    einsum = helper.make_graph(
        [helper.make_node("Einsum", ["x", "x"], ["y"], equation="bij,bjk->bik")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    for graph, op in ((lstm, "LSTM"), (einsum, "Einsum")):
        result = predict_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), profile)
        assert result["untrusted"] == {op: 1}
        first = format_prediction(result).splitlines()[0]
        assert f"NOT TO BE TRUSTED: {op} x1 do real compute" in first
    conv = _graph([helper.make_node("Conv", ["x", "w"], ["y"])], {"w": np.ones((16, 16, 1, 1), np.float32)})
    assert predict_model(conv, profile)["untrusted"] == {}


def _graph(nodes, inits, inputs=(("x", [1, 16, 8, 8]),)):
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_residual_adds_are_priced_as_onnx_runtime_runs_them():
    """Float: an add right after a dense float conv (through its BatchNorm) is fused into the conv, and so
    is the ReLU after it; after a grouped conv it is not. Int8: an Add between two dequantized tensors into a
    quantization is one QLinearAdd; a Sum there runs in float behind two dequantizations and before a
    quantization; a ReLU straight into a quantization is dropped."""
    from onnx import helper

    w = np.ones((16, 16, 1, 1), np.float32)
    bn = {k: np.ones(16, np.float32) for k in ("s", "b", "m", "v")}
    float_model = _graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"]),
            helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"]),
            helper.make_node("Add", ["n", "x"], ["a"]),
            helper.make_node("Relu", ["a"], ["r"]),
            helper.make_node("Conv", ["r", "g"], ["c2"], group=4),
            helper.make_node("Add", ["c2", "r"], ["y"]),
        ],
        {"w": w, "g": np.ones((16, 4, 1, 1), np.float32), **bn},
    )
    kinds = {(o.op_type, o.kind) for o in graph_layers(float_model).others}
    assert kinds == {("BatchNormalization", "fused"), ("Add", "fused"), ("Relu", "fused"), ("Add", "memory")}

    scale, zero = np.float32(0.1), np.uint8(128)
    q = {"sc": scale, "zp": zero}

    def qdq(add_op):
        return _graph(
            [
                helper.make_node("QuantizeLinear", ["x", "sc", "zp"], ["xq"]),
                helper.make_node("DequantizeLinear", ["xq", "sc", "zp"], ["xd"]),
                helper.make_node("QuantizeLinear", ["z", "sc", "zp"], ["zq"]),
                helper.make_node("DequantizeLinear", ["zq", "sc", "zp"], ["zd"]),
                helper.make_node(add_op, ["xd", "zd"], ["a"]),
                helper.make_node("Relu", ["a"], ["r"]),
                helper.make_node("QuantizeLinear", ["r", "sc", "zp"], ["rq"]),
                helper.make_node("DequantizeLinear", ["rq", "sc", "zp"], ["rd"]),
                helper.make_node("Conv", ["rd", "w"], ["y"]),
            ],
            {"w": w, **q},
            inputs=(("x", [1, 16, 8, 8]), ("z", [1, 16, 8, 8])),
        )

    profile = xeon_profile()
    add = next(o for o in graph_layers(qdq("Add")).others if o.op_type == "Add")
    assert add.priced_as == "QLinearAdd" and not add.boundaries
    summed = next(o for o in graph_layers(qdq("Sum")).others if o.op_type == "Sum")
    assert summed.priced_as == "" and summed.boundaries == [
        ("dequantize", 1024),
        ("dequantize", 1024),
        ("quantize", 1024),
    ]
    relu = next(o for o in graph_layers(qdq("Sum")).others if o.op_type == "Relu")
    assert relu.kind == "fused"  # straight into a QuantizeLinear
    priced = predict_model(qdq("Sum"), profile, pricing="graph")["uncovered_ops"]["Sum"]
    assert "3 precision boundaries" in priced["priced_as"] and priced["ms"] > 0
    assert "QLinearAdd" in predict_model(qdq("Add"), profile, pricing="graph")["uncovered_ops"]["Add"]["priced_as"]


def test_kernel_pricing_notes_a_profile_from_another_machine():
    model = prepared_model(real_topology("squeezenet"))[0]
    here = Profile.from_dict(profile_data("here"), "x")
    assert not any("may choose other kernels" in n for n in predict_model(model, here)["notes"])
    notes = predict_model(model, Profile.from_dict(profile_data("epyc-avx2"), "x"))["notes"]
    assert any("AMD EPYC" in n and "(avx2 fma)" in n and "may choose other kernels" in n for n in notes)


def test_block_networks_run_and_are_priced_kernel_by_kernel():
    """The benchmark's random networks of real topologies' blocks are valid ONNX that ONNX Runtime runs, cover
    every kind of block, and every third runs int8 kernels; nasq predict prices each without leaving an op at 0
    beyond the shape ops (a probe's entry under a kernel's own key, else the plain op or the elementwise rate)."""
    from nasq.hardware_profiles.block_networks import BLOCKS, block_networks
    from nasq.kernel_pricing import SHAPE_ONLY
    from nasq.ort import executed_kernels, session

    models = block_networks(9, seed=3)
    assert len(models) == 9 and set(models) == set(block_networks(9, seed=3))  # seeded
    kinds = {k for name in models for k in name.split()[1].split("+")}
    assert kinds <= set(BLOCKS) and len(kinds) >= 3
    profile = xeon_profile()
    for i, (name, model) in enumerate(models.items()):
        onnx.checker.check_model(model)
        s = session(model.SerializeToString())
        shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        out = s.run(None, {"input": np.random.default_rng(i).standard_normal(shape).astype(np.float32)})[0]
        assert out.shape[0] == 1 and np.isfinite(out).all()
        ops = {k.op for k in executed_kernels(model.SerializeToString())}
        assert ("QLinearConv" in ops) == (i % 3 == 2) == name.endswith("int8"), (name, ops)
        priced = predict_model(model, profile, pricing="kernels")
        assert priced["latency_ms"] > 0
        assert all(k["ms"] > 0 for k in priced["kernels"] if k["op"] not in SHAPE_ONLY), name
    names = " ".join(block_networks(30, seed=0, int8=False))
    assert all(kind in names for kind in BLOCKS)


def test_kernel_prices_are_calibrated_on_whole_networks_by_the_calibrated_predictors(tmp_path):
    """The ONNX calibration weighs a kernel-priced model's float layers, int8 layers and other kernels (plus the
    call overhead): the fit recovers known weights, the calibrated predictors apply their base's fit and say so,
    the plain ones do not, and a profile without one prices as the base with a note."""
    import copy

    from nasq.hardware_profiles.profile import Profile
    from nasq.kernel_pricing import KERNEL_CALIBRATION_FEATURES, apply_kernel_calibration, fit_kernel_calibration
    from nasq.predict import format_prediction

    rng = np.random.default_rng(0)
    parts = [dict(zip(KERNEL_CALIBRATION_FEATURES, rng.uniform(0.1, 5.0, 3))) for _ in range(20)]
    truth = {"features": list(KERNEL_CALIBRATION_FEATURES), "coefficients": [0.9, 1.1, 1.3]}
    measured = [apply_kernel_calibration(truth, 0.006, p) for p in parts]
    fit = fit_kernel_calibration(parts, measured, 0.006)
    assert fit["coefficients"] == pytest.approx(truth["coefficients"], rel=1e-4) and fit["fitted_on_networks"] == 20

    shipped = xeon_profile()
    data = copy.deepcopy(shipped.data)
    data.pop("kernel_calibration", None)
    model, _ = prepared_model(real_topology("squeezenet"))
    plain = predict_model(model, Profile.from_dict(data), predictor="table")
    assert sum(plain["parts"].values()) + data["overhead_ms"] == pytest.approx(plain["latency_ms"], rel=1e-4)
    uncalibrated = predict_model(model, Profile.from_dict(data), predictor="calibrated")
    assert uncalibrated["latency_ms"] == plain["latency_ms"] and "calibration" not in uncalibrated
    assert any("no calibration for ONNX models" in n for n in uncalibrated["notes"])

    data["kernel_calibration"] = {"fits": {"table": {**truth, "fitted_on_networks": 40}}}
    profile = Profile.from_dict(data)
    calibrated = predict_model(model, profile, predictor="calibrated")
    expected = data["overhead_ms"] + sum(
        c * plain["parts"][f] for f, c in zip(truth["features"], truth["coefficients"])
    )
    assert calibrated["latency_ms"] == pytest.approx(expected, rel=1e-4)
    assert calibrated["calibration"]["uncalibrated_ms"] == plain["latency_ms"]
    assert "calibrated on 40 measured networks" in format_prediction(calibrated)
    assert predict_model(model, profile, predictor="table")["latency_ms"] == plain["latency_ms"]
    assert "no calibration for ONNX models" in " ".join(  # the regressor's own fit is missing
        predict_model(model, profile, predictor="calibrated-regressor")["notes"]
    )

    data["kernel_calibration"]["fits"]["table"]["coefficients"] = [1.0, -1.0, 1.0]
    (tmp_path / "bad.json").write_text(json.dumps({**data, "predictor": "calibrated"}))
    assert_clean_error(
        run("predict", "--target", tmp_path / "bad.json", real_topology("squeezenet")),
        "kernel_calibration.fits.table.coefficients[1] must be a non-negative number",
    )


def test_calibration_batches_measured_at_different_times_are_kept_and_checked(tmp_path):
    """`nasq profile calibrate --add` fits on every batch of block networks measured so far; a profile from before
    batches were stored has one (its top-level measurements), and malformed batches are a one-line error before
    anything is measured. Out of fold by batch: each batch priced by a fit on the others only."""
    from nasq.errors import NasqError
    from nasq.hardware_profiles.calibration import calibration_batches, out_of_fold

    old_form = {"fits": {}, "networks": 2, "networks_seed": 20_000, "date": "d", "measured_ms": [0.5, 0.7]}
    assert calibration_batches(old_form) == [
        {"networks_seed": 20_000, "networks": 2, "date": "d", "measured_ms": [0.5, 0.7]}
    ]
    assert calibration_batches({"fits": {}}) == [] and calibration_batches(None) == []
    batches = [
        {"networks_seed": 20_000, "networks": 1, "measured_ms": [0.5]},
        {"networks_seed": 20_001, "networks": 2, "measured_ms": [0.6, 0.8]},
    ]
    assert calibration_batches({"batches": batches}) == batches
    for bad in (
        [{"networks_seed": 20_000, "networks": 2, "measured_ms": [0.5]}],
        [{"networks": 1, "measured_ms": [1]}],
        [{"networks_seed": 1, "networks": 1, "measured_ms": [0.0]}],
        "x",
    ):
        with pytest.raises(NasqError, match=r"kernel_calibration.batches\[0\] is malformed"):
            calibration_batches({"batches": bad})
    # by batch: a "fit" that learns the mean of what it was fitted on prices each batch by the other batches' mean
    priced = out_of_fold(
        [0, 1, 2], [1.0, 3.0, 5.0], lambda x, y: sum(y) / len(y), lambda cal, x: cal, folds=5, groups=[0, 1, 1]
    )
    assert priced == [4.0, 1.0, 1.0]
    assert out_of_fold([0, 1, 2], [1.0, 3.0, 5.0], lambda x, y: sum(y) / len(y), lambda c, x: c, folds=3) == [
        4.0,
        3.0,
        2.0,
    ]

    data = profile_data("here")  # calibrated here (another machine's profile is refused before its batches are read)
    data["kernel_calibration"]["batches"] = [{"networks_seed": 20_000, "networks": 3, "measured_ms": [1.0]}]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    assert_clean_error(
        run("profile", "calibrate", "--target", tmp_path / "bad.json", "--add"),
        "kernel_calibration.batches[0] is malformed",
    )


def test_the_predictor_for_onnx_models_is_chosen_on_block_networks_each_priced_by_a_fit_that_did_not_see_it():
    """`onnx_predictor` is chosen on the block networks' held-out scores (a calibrated predictor by a fit on the other
    batches when there are several, else out of fold, never its in-sample score), so that the real topologies that
    `nasq profile validate` measures are held out from the choice; `nasq targets` says on what it was chosen."""
    import copy

    from nasq.hardware_profiles.calibration import select_onnx_predictor

    def summary(within, median):
        return {
            "networks": 80,
            "within_10pct": within,
            "within_20pct": 0.9,
            "median_error": median,
            "p90_error": 0.2,
            "spearman": 0.99,
        }

    data = copy.deepcopy(xeon_profile().data)
    data.pop("onnx_predictor_selection", None)
    scores = {
        "table": summary(0.5, 0.09),
        "table, calibrated": summary(0.9, 0.03),
        "table, calibrated on the other batches": summary(0.3, 0.12),
        "kernel-regressor": summary(0.5, 0.08),
        "kernel-regressor, calibrated": summary(0.8, 0.04),
        "kernel-regressor, calibrated on the other batches": summary(0.4, 0.1),
    }
    data["kernel_calibration"]["scores"] = scores
    logged = []
    select_onnx_predictor(data, logged.append)
    # calibrated in-sample-by-hour would win at 90%; by the other batches it prices 30%: the kernel regressor's
    # prices alone (tied with the table at 50%, lower median error) are chosen
    selection = data["onnx_predictor_selection"]
    assert data["onnx_predictor"] == selection["chosen"] == "kernel-regressor"
    assert selection["scores"]["calibrated"]["scored_as"] == "table, calibrated on the other batches"
    assert selection["scores"]["calibrated"]["within_10pct"] == 0.3
    assert set(selection["scores"]) == {"table", "calibrated", "kernel-regressor", "calibrated-regressor"}
    assert "chose the 'kernel-regressor' predictor for ONNX models" in logged[0]
    # one batch: the calibrated predictors are judged out of fold
    for key in [k for k in scores if k.endswith("other batches")]:
        del scores[key]
    select_onnx_predictor(data, logged.append)
    assert data["onnx_predictor"] == "calibrated"
    assert data["onnx_predictor_selection"]["scores"]["calibrated"]["scored_as"] == "table, calibrated"
