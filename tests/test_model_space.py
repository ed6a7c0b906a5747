"""The search space derived from a user's trained model: groups, shapes, overrides, trained weights, distillation."""

import shutil
from pathlib import Path

import pytest
import torch

from nasq.compress import quant_layers
from nasq.errors import NasqError
from nasq.models.loading import LayerOverride, ModelSpec
from nasq.spaces.from_model import ModelSpace, ModelSpaceOptions

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist_cnn"
SPEC = ModelSpec(f"{EXAMPLE / 'model.py'}:small_resnet", str(EXAMPLE / "small_resnet.pt"), (1, 28, 28))


@pytest.fixture(scope="module")
def resnet_space():
    return ModelSpace(SPEC)


def test_groups_couple_the_residual_stream_and_shapes_follow_the_pruned_model(resnet_space):
    space = resnet_space
    groups = {g.name: g for g in space.trace.groups}
    # the stem's channels are added to the first block's output: one group, pruned together
    assert {"0", "3.conv2"} <= set(groups["0"].outputs) and "4.shortcut.0" in groups["0"].inputs
    assert "10" not in {n for g in groups.values() for n in g.outputs}  # the classifier's outputs are the classes
    assert space.num_classes == 10 and space.trace.unsupported == []
    assert len(space.trace.batchnorm_after) == 13
    # residual adds priced where they happen: identity shortcuts add the block's input, shortcut convs the main branch
    assert space.trace.residuals == {"3.conv2": 2, "4.shortcut.0": 1, "5.conv2": 2, "6.shortcut.0": 1, "7.conv2": 2}
    for seed in range(4):
        cand = space.sample(seed)
        model = space.build(cand)
        space.compress(model, cand)
        space.quantize(model, cand)
        assert torch.isfinite(model(torch.randn(2, 1, 28, 28))).all()
        layers = quant_layers(model)
        specs = space.layers(cand)
        assert [s.name for s in specs] == list(layers)
        for spec in specs:
            mod = layers[spec.name]
            weight = mod.conv.weight if hasattr(mod, "conv") else mod.linear.weight
            assert (weight.shape[0], weight.shape[1]) == (spec.cout, spec.cin), spec
            assert (mod.w_bits, mod.input_quant.bits) == (spec.w_bits, spec.a_bits)


def test_an_unpruned_float_candidate_computes_what_the_original_does(resnet_space):
    space = resnet_space
    cand = space.derive(
        lambda name, choices: 0.0 if name.endswith(".prune") else False if name.endswith(".remove") else 32
    )
    model = space.build(cand)
    space.compress(model, cand)  # BatchNorms folded into the convs
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    x = torch.randn(8, 1, 28, 28)
    assert torch.allclose(model.eval()(x), space.original(x), atol=1e-4)


def test_pruning_keeps_trained_channels(resnet_space):
    space = resnet_space
    cand = space.derive(
        lambda name, choices: (
            0.5
            if name == "3.conv1.prune"
            else 0.0
            if name.endswith(".prune")
            else False
            if name.endswith(".remove")
            else 32
        )
    )
    model = space.build(cand)
    space.prune(model, cand)
    kept = model.get_submodule("3.conv1").conv.weight
    trained = space.original.get_submodule("3.conv1").weight
    assert kept.shape[0] == trained.shape[0] // 2
    for row in kept:  # every kept filter is one of the trained ones, unchanged
        assert any(torch.equal(row, t) for t in trained)


def test_overrides_by_name_and_pattern():
    space = ModelSpace(
        SPEC,
        ModelSpaceOptions(
            bits=(4, 8, 32),
            layers={
                "0": LayerOverride(prune=False),
                "6.*": LayerOverride(quantize=False),
                "10": LayerOverride(w_bits=8, a_bits=8),
            },
        ),
    )
    choices = space.choices()
    assert "0.prune" not in choices and "3.conv1.prune" in choices  # the stem's group (the residual stream) is kept
    assert choices["6.conv1.w_bits"] == [32] and choices["6.shortcut.0.a_bits"] == [32]
    assert choices["10.w_bits"] == [8] and choices["3.conv1.w_bits"] == [4, 8, 32]
    with pytest.raises(NasqError, match="'nope.*' matches no module of the model"):
        ModelSpace(SPEC, ModelSpaceOptions(layers={"nope.*": LayerOverride(prune=False)}))
    with pytest.raises(NasqError, match="model.bits: 12 not supported"):
        ModelSpace(SPEC, ModelSpaceOptions(bits=(12,)))


def test_the_space_pickles_as_what_rebuilds_it(resnet_space, tmp_path):
    """A Ray actor or a searcher checkpoint gets the space by pickle, where the model's file may not be importable."""
    import pickle

    copy = pickle.loads(pickle.dumps(resnet_space))
    assert copy.name == resnet_space.name and copy.choices() == resnet_space.choices()
    assert len(pickle.dumps(resnet_space)) < 2 * (EXAMPLE / "small_resnet.pt").stat().st_size


def test_a_factory_file_shipped_to_another_machine_is_found_in_its_package(tmp_path, monkeypatch):
    """On a cluster node, Ray's runtime environment puts the factory's folder on the path as a package; the file's
    own path does not exist there."""
    from nasq.user_code import resolve_callable

    shipped = tmp_path / "node" / "my_nets_dir"
    shutil.copytree(EXAMPLE, shipped)
    monkeypatch.syspath_prepend(str(tmp_path / "node"))
    fn = resolve_callable("/nowhere/on/this/node/my_nets_dir/model.py:small_resnet", "model.factory")
    assert isinstance(fn(), torch.nn.Module)


def test_runtime_env_ships_the_folders_of_user_code():
    from nasq.config import config_from_dict
    from nasq.experiment import runtime_env

    cfg = config_from_dict(
        {
            "model": {"factory": f"{EXAMPLE / 'model.py'}:small_resnet", "input_shape": [1, 28, 28]},
            "data": {"dataset": "python", "factory": "nasq.data.formats:load_dataset"},
        }
    )
    assert runtime_env(cfg) == {"py_modules": [str(EXAMPLE)]}  # nasq itself is installed: not shipped
    assert runtime_env(config_from_dict({})) is None


def test_distillation_loss():
    from nasq.train import distillation_loss

    logits, labels = torch.randn(16, 10), torch.randint(0, 10, (16,))
    ce = torch.nn.functional.cross_entropy(logits, labels)
    assert torch.allclose(distillation_loss(logits, torch.randn(16, 10), labels, temperature=4.0, weight=0.0), ce)
    assert distillation_loss(logits, logits, labels, temperature=4.0, weight=1.0).abs() < 1e-6
    far = distillation_loss(logits, -logits, labels, temperature=2.0, weight=1.0)
    assert far > 0.1


def test_a_candidate_starts_from_the_trained_weights(resnet_space, mnist):
    """Without pruning, a quarter epoch of distilled fine-tuning at 8 bits keeps the trained model's accuracy; from
    scratch, nothing gets near it in that time."""
    from nasq.train import TrainSchedule, accuracy, compress_and_train

    torch.set_num_threads(1)
    original = accuracy(resnet_space.original, mnist.test)
    assert original > 0.97
    cand = resnet_space.derive(
        lambda name, choices: 0.0 if name.endswith(".prune") else False if name.endswith(".remove") else 8
    )
    model, _ = compress_and_train(resnet_space, cand, mnist, TrainSchedule(finetune_epochs=0.25), seed=0)
    assert accuracy(model, mnist.test) > original - 0.02


def test_exported_candidates_predict_what_torch_does(resnet_space, mnist, tmp_path):
    """Mixed precision on a trained model's layers (int8 convs read by float and by simulated 4-bit ones, the
    ReLU after an int8 conv that ONNX Runtime's quantizer folds into its output grid): torch and ONNX Runtime agree."""
    from conftest import profile_data

    from nasq.export import EXPORTERS
    from nasq.hardware_profiles.profile import Profile
    from nasq.ort import session
    from nasq.train import TrainSchedule, compress_and_train, predict_logits

    torch.set_num_threads(1)
    target = Profile.from_dict(profile_data("here"), "here")
    bits = {
        "0": (8, 4),
        "3.conv1": (8, 8),
        "3.conv2": (8, 32),
        "4.conv1": (8, 8),
        "4.conv2": (32, 4),
        "5.conv1": (4, 4),
        "6.conv1": (8, 8),
        "7.conv1": (8, 8),
        "7.conv2": (8, 8),
    }
    cand = resnet_space.derive(
        lambda name, choices: (
            0.25
            if name.endswith(".prune")
            else False
            if name.endswith(".remove")
            else bits.get(name.rsplit(".", 1)[0], (32, 32))[name.endswith(".a_bits")]
        )
    )
    model, _ = compress_and_train(resnet_space, cand, mnist, TrainSchedule(finetune_epochs=0.2), seed=0, target=target)
    layer_bits = {l.name: (l.w_bits, l.a_bits) for l in resnet_space.layers(cand)}
    info = EXPORTERS.create("onnx").export(model, layer_bits, target, mnist.train.x, tmp_path / "m.onnx")
    assert info.layer_modes["3.conv1"] == "int8" and info.layer_modes["5.conv1"] == "simulated"
    x = mnist.test.x[:500]
    onnx_pred = session(tmp_path / "m.onnx").run(None, {"input": x})[0].argmax(1)
    assert (onnx_pred == predict_logits(model, x).argmax(1)).mean() >= 0.99


def test_the_search_prices_a_candidate_from_the_graph_nasq_best_exports(resnet_space, tmp_path):
    """A ResNet candidate with mixed precision, priced as the search records it (exported untrained for each target)
    and as nasq predict prices the file the exporter writes after compression on real calibration data: the same
    kernels, the same price. On the bit-flexible simulator, the sub-8-bit layers are priced at their bits."""
    import onnx

    from nasq.export import EXPORTERS
    from nasq.hardware_profiles import create_predictor, load_profile
    from nasq.predict import build_untrained, exported_latencies, predict_model

    space = resnet_space
    cand = dict(space.sample(3))
    profiles = {name: load_profile(name) for name in ("epyc-zen5-avx512-ort", "bitserial-sim")}
    searched = exported_latencies(space, cand, profiles)
    bits = {l.name: (l.w_bits, l.a_bits) for l in space.layers(cand)}
    assert {b for pair in bits.values() for b in pair} >= {4, 8, 32}
    model, x = build_untrained(space, cand, seed=5)  # other weights and calibration than the search's
    for name, profile in profiles.items():
        path = tmp_path / f"{name}.onnx"
        EXPORTERS.create("onnx").export(model, bits, profile, x, path)
        assert searched[name] == pytest.approx(predict_model(onnx.load(str(path)), profile)["latency_ms"], rel=1e-3)
    # the simulator prices the graph's layers at their bits: as its own layer list does, up to the layers' order
    layers_ms = create_predictor(profiles["bitserial-sim"]).predict(space.layers(cand)).total_ms
    assert searched["bitserial-sim"] == pytest.approx(layers_ms, rel=0.05)


def test_bit_widths_no_target_runs_natively_are_left_out(capsys):
    """An int8 CPU runtime runs 8 bits (other widths would run as float plus simulated-quantization arithmetic); a
    bit-flexible accelerator 2 to 8: a trained model's bits are what one of its targets runs, and float."""
    from nasq.config import config_from_dict
    from nasq.hardware_profiles import load_profile
    from nasq.search.driver import with_native_bits

    cfg = config_from_dict(
        {
            "name": "b",
            "targets": ["epyc-zen5-avx512-ort"],
            "model": {
                "factory": SPEC.factory,
                "weights": SPEC.weights,
                "input_shape": [1, 28, 28],
                "bits": [2, 4, 8, 32],
            },
        },
        "t",
    )
    cpu = {"epyc-zen5-avx512-ort": load_profile("epyc-zen5-avx512-ort")}
    assert with_native_bits(cfg, cpu).model.bits == (8, 32)
    assert (
        "model.bits: 2, 4 left out: no target runs them natively (epyc-zen5-avx512-ort: 8 bits)"
        in capsys.readouterr().out
    )
    both = {**cpu, "bitserial-sim": load_profile("bitserial-sim")}
    assert with_native_bits(cfg, both).model.bits == (2, 4, 8, 32) and capsys.readouterr().out == ""


def test_residual_blocks_whose_shape_they_keep_may_be_removed(resnet_space):
    """A block that adds its input to its branch (identity shortcut) and keeps its shape may go: it becomes its
    shortcut (here ``relu(x)``); a block with a shortcut conv may not. A candidate without it has its layers less,
    and the model built for it has exactly those layers, in the candidate's shapes."""
    from nasq.compress import quant_layers

    space = resnet_space
    assert space.trace.blocks == {"3": "relu", "5": "relu", "7": "relu"}  # 4 and 6 change shape (stride 2)
    cand = dict(space.sample(0))
    cand.update({"3.remove": True, "7.remove": True, "5.remove": False, "5.conv1.prune": 0.5})
    layers = {l.name: l for l in space.layers(cand)}
    assert not any(n.startswith(("3.", "7.")) for n in layers) and "5.conv1" in layers
    model = space.build(cand)
    space.compress(model, cand)
    space.quantize(model, cand)
    built = quant_layers(model)
    assert sorted(built) == sorted(layers)
    for name, layer in built.items():
        weight = (layer.linear if hasattr(layer, "linear") else layer.conv).weight
        assert tuple(weight.shape[:2]) == (layers[name].cout, layers[name].cin)
    assert torch.isfinite(model(torch.randn(2, 1, 28, 28))).all()
    assert space.unpruned(cand)["3.remove"] is False
    # a block holding a layer an override keeps is not offered
    kept = ModelSpace(SPEC, ModelSpaceOptions(layers={"5.conv1": LayerOverride(quantize=False)}))
    assert set(kept.blocks) == {"3", "7"} and "5.remove" not in kept.sample(0)


def test_a_trained_models_search_starts_from_it_and_from_the_hand_routes_uniform_ratios(resnet_space):
    """First the trained model unpruned, then pruned by each ratio but the largest in every group, each at uniform
    8-bit and at float: the front holds what torch-pruning at one ratio would give."""
    from nasq.config import config_from_dict
    from nasq.search.driver import start_points

    cfg = config_from_dict(
        {
            "name": "s",
            "targets": ["bitserial-sim"],
            "model": {
                "factory": SPEC.factory,
                "weights": SPEC.weights,
                "input_shape": [1, 28, 28],
                "bits": [4, 8, 32],
                "prune_ratios": [0.0, 0.25, 0.5, 0.75],
            },
            "search": {"uniform_starts": 1},
        },
        "t",
    )
    starts = start_points(cfg, resnet_space)
    assert len(starts) == 2 * 3 + 2
    for start, (ratio, bits) in zip(starts, [(0.0, 8), (0.0, 32), (0.25, 8), (0.25, 32), (0.5, 8), (0.5, 32)]):
        resnet_space.validate(start)
        assert {v for k, v in start.items() if k.endswith(".prune")} == {ratio}
        assert not any(v for k, v in start.items() if k.endswith(".remove"))
        assert {v for k, v in start.items() if k.endswith("_bits")} == {bits}
