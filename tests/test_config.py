import re

import pytest

from nasq.config import check_references, config_from_dict, load_config
from nasq.errors import NasqError


@pytest.mark.parametrize(
    "path, space", [("configs/quickstart.yaml", "from-model"), ("configs/nas-mnist.yaml", "mobilenet-mnist")]
)
def test_shipped_configs_parse_and_references_exist(path, space):
    cfg = load_config(path)
    assert cfg.space == space and cfg.targets == ("local-ort", "bitserial-sim")
    check_references(cfg)
    assert config_from_dict(cfg.to_dict()) == cfg  # round trip through the run marker


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"serch": {}}, "unknown key 'serch'; allowed: name, space"),
        ({"search": {"num_candidats": 3}}, "unknown key 'search.num_candidats'"),
        ({"search": {"num_candidates": "many"}}, "search.num_candidates must be int, got 'many'"),
        ({"search": {"num_candidates": 0}}, "search.num_candidates = 0 is below the minimum 1"),
        (
            {"search": {"sampler": "grid"}},
            "search.sampler = 'grid' not allowed; allowed: evolution, nsga2, random, tpe",
        ),
        ({"accuracy": {"lr": -1}}, "accuracy.lr = -1.0 is below the minimum 0.0"),
        ({"targets": []}, "targets must be a non-empty list"),
        ({"targets": ["a", "a"]}, "lists a name twice"),
        ({"search": [1, 2]}, "search must be a mapping"),
        ({"seed": True}, "seed must be int"),
        (
            {"search": {"sampler": "evolution", "screen_proxy": "jacob"}},
            "search.screen_proxy = 'jacob' not allowed; allowed: '' (none), grad-norm, snip, synflow, naswot, zico",
        ),
        (
            {"search": {"screen_proxy": "naswot"}},
            "search.screen_proxy = 'naswot' needs search.sampler: evolution (got 'tpe')",
        ),
    ],
)
def test_bad_configs_name_key_value_and_allowed(raw, message):
    with pytest.raises(NasqError) as info:
        config_from_dict(raw, "x.yaml")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_space_target_and_estimate_are_refused():
    with pytest.raises(
        NasqError, match="unknown space 'resnet'; available: fbnet, from-model, mobilenet-mnist, nas-bench-201"
    ):
        check_references(config_from_dict({"space": "resnet"}))
    with pytest.raises(NasqError, match="unknown target 'tpu'"):
        check_references(config_from_dict({"targets": ["tpu"]}))
    with pytest.raises(NasqError, match="unknown accuracy.estimate 'magic'"):
        check_references(config_from_dict({"accuracy": {"estimate": "magic"}}))


def test_a_model_block_searches_the_models_own_space():
    cfg = config_from_dict(
        {
            "model": {
                "factory": "nets.py:resnet",
                "weights": "w.pt",
                "input_shape": [3, 32, 32],
                "layers": {"fc": {"quantize": False}, "layer4.*": {"prune": False}},
            }
        }
    )
    assert cfg.space == "from-model" and cfg.model.input_shape == (3, 32, 32)
    assert not cfg.model.layers["fc"].quantize and not cfg.model.layers["layer4.*"].prune
    assert config_from_dict(cfg.to_dict()) == cfg  # as a run directory records it


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ({"space": "from-model"}, "space 'from-model' needs a model block"),
        ({"model": {"weights": "w.pt"}}, "model.* is set but model.factory is empty"),
        ({"model": {"factory": "n.py:f"}}, "model.input_shape is missing"),
        ({"model": {"factory": "n.py:f", "input_shape": [1, "a"]}}, "model.input_shape must be a list of integers"),
        (
            {"model": {"factory": "n.py:f", "input_shape": [1], "layers": {"x": {"prune": 3}}}},
            "model.layers.x.prune must be true or false, got 3",
        ),
        (
            {"model": {"factory": "n.py:f", "input_shape": [1]}, "space": "mobilenet-mnist"},
            "space = 'mobilenet-mnist' not allowed with it; allowed: from-model",
        ),
        (
            {"data": {"dataset": "cifar"}},
            "data.dataset = 'cifar' not allowed; allowed: digits, image-folder, mnist-5k, npz, python",
        ),
    ],
)
def test_bad_model_and_data_blocks(raw, fragment):
    with pytest.raises(NasqError, match=re.escape(fragment)):
        config_from_dict(raw, "c.yaml")


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(NasqError, match="cannot read config"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("search: [unclosed\n")
    with pytest.raises(NasqError, match="not valid YAML"):
        load_config(bad)


def test_a_fidelity_schedule_needs_an_estimate_that_trains():
    from nasq.config import check_references

    cfg = config_from_dict({"targets": ["bitserial-sim"], "accuracy": {"estimate": "synflow", "schedule": "asha"}})
    with pytest.raises(
        NasqError,
        match="accuracy.schedule 'asha' needs an estimate with a fidelity .*'synflow' has "
        "none; allowed: short-training, supernet-finetune",
    ):
        check_references(cfg)
    check_references(config_from_dict({"targets": ["bitserial-sim"], "accuracy": {"schedule": "asha"}}))


def _numeric_fields():
    """Every numeric option of every config section, with its bounds: (key, type, min, max)."""
    import dataclasses
    import typing

    from nasq import config as c

    for section in ("data", "model", "search", "accuracy", "best"):
        cls = typing.get_type_hints(c.ExperimentConfig)[section]
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if hints[f.name] in (int, float):
                yield f"{section}.{f.name}", hints[f.name], f.metadata.get("min"), f.metadata.get("max")


@pytest.mark.parametrize("key, kind, low, high", list(_numeric_fields()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_numeric_option_takes_its_range_and_refuses_the_rest_naming_itself(key, kind, low, high):
    """Non-finite, huge, tiny and negative values for every numeric option: within its bounds it is taken (unless
    another rule refuses the combination, naming the key); outside them, or not finite, it is refused naming the
    key and the bound. Each option declares both bounds."""
    import math

    section, name = key.split(".")
    assert low is not None and high is not None, f"{key} declares no {'minimum' if low is None else 'maximum'}"
    values = [float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 1e-320, -1.0, 0.0, low, high]
    if kind is int:
        values = [v for v in values if not math.isfinite(v) or float(v).is_integer()]
        values = [int(v) if math.isfinite(v) else v for v in values]
    for value in values:
        raw = {section: {name: value}}
        if section == "model":
            raw["model"].update(factory="m.py:f", input_shape=[1, 28, 28])
        inside = isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high
        try:
            config_from_dict(raw, "c.yaml")
        except NasqError as exc:
            assert key in str(exc) or (inside and "val_fraction + data.test_fraction" in str(exc)), (value, exc)
            if not inside and math.isfinite(value):
                assert (
                    ("below the minimum" in str(exc)) or ("above the maximum" in str(exc)) or "must be int" in str(exc)
                )
            continue
        assert inside, f"{key} = {value!r} was taken; allowed: {low} to {high}"
