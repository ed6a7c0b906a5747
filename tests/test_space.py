import json

import pytest
import torch

from nasq.compress import quant_layers
from nasq.errors import NasqError
from nasq.spaces import SPACES, candidate_id, canonical_key, create_space


@pytest.mark.parametrize("name", [n for n in SPACES.names() if n != "from-model"])  # (that one needs a model:
def test_every_space_samples_deterministically_and_builds(name):  # test_model_space.py)
    space = create_space(name)
    assert space.sample(seed=3) == space.sample(seed=3)
    assert space.sample(seed=3) != space.sample(seed=4)
    for seed in range(6):
        cand = space.sample(seed)
        model = space.build(cand)
        space.compress(model, cand)
        space.quantize(model, cand)
        out = model(torch.randn(2, *space.input_shape))
        assert out.shape == (2, space.num_classes)
        assert torch.isfinite(out).all()
        # the analytic layer list (what the predictors price) matches the pruned model exactly
        specs = space.layers(cand)
        layers = quant_layers(model)
        assert [s.name for s in specs] == list(layers)
        for spec in specs:
            mod = layers[spec.name]
            weight = mod.conv.weight if hasattr(mod, "conv") else mod.linear.weight
            assert weight.shape[0] == spec.cout
            if spec.op != "dwconv":
                assert weight.shape[1] == spec.cin
            assert (mod.w_bits, mod.input_quant.bits) == (spec.w_bits, spec.a_bits)


def test_candidate_key_round_trips(space):
    cand = space.sample(7)
    key = canonical_key(cand)
    again = space.validate(json.loads(key))
    assert canonical_key(again) == key and candidate_id(again) == candidate_id(cand)
    assert list(again) == list(cand)  # canonical (definition) order restored


def test_validate_names_the_bad_parameter(space):
    cand = space.sample(1)
    with pytest.raises(NasqError, match="s0.depth"):
        space.validate({**cand, "s0.depth": 7})
    with pytest.raises(NasqError, match="unknown"):
        space.validate({**cand, "bogus": 1})
    missing = dict(cand)
    missing.pop("stem.w_bits")
    with pytest.raises(NasqError, match="stem.w_bits"):
        space.validate(missing)


def test_pruning_ratios_shrink_hidden_channels(space):
    cand = space.sample(2)
    ratios = {k: v for k, v in cand.items() if k.endswith(".prune")}
    full = {k: 0.0 for k in ratios}
    pruned_specs = {s.name: s for s in space.layers({**cand, **{k: 0.5 for k in ratios}})}
    full_specs = {s.name: s for s in space.layers({**cand, **full})}
    for key in ratios:
        layer = key[: -len(".prune")]
        assert pruned_specs[layer].cout == full_specs[layer].cout - round(full_specs[layer].cout * 0.5)


def test_profile_shapes_cover_every_geometry(space):
    shapes = {(s.op, s.kernel, s.stride, s.h_in) for s in space.profile_shapes(quick=True)}
    for seed in range(30):
        for spec in space.layers(space.sample(seed)):
            assert (spec.op, spec.kernel, spec.stride, spec.h_in) in shapes, spec


def test_nas_bench_macro_networks_match_the_published_counts():
    # (params, FLOPs) from NAS-Bench-Macro's table (Su et al. 2021, Apache-2.0), for three of its keys
    from nasq.spaces import create_space

    space = create_space("nas-bench-macro")
    published = {
        "00000000": (387882, 7713280),
        "11111111": (1588874, 53246464),
        "02012100": (890666, 47327744),
        "22222222": (2932586, 105660928),
    }
    for key, (params, flops) in published.items():
        cand = space.parse_arch(key)
        assert space.format_arch(cand) == key
        assert sum(p.numel() for p in space.build(cand).parameters()) == params
        assert sum(l.macs for l in space.layers(cand)) == flops
    with pytest.raises(NasqError, match="8 digits over 0"):
        space.parse_arch("0123")
