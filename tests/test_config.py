import pytest

from nasq.config import check_references, config_from_dict, load_config
from nasq.errors import NasqError


def test_quickstart_config_parses_and_references_exist():
    cfg = load_config("configs/quickstart.yaml")
    assert cfg.space == "mobilenet-mnist" and cfg.targets == ("local-ort", "bitserial-sim")
    check_references(cfg)
    assert config_from_dict(cfg.to_dict()) == cfg  # round trip through the run marker


@pytest.mark.parametrize("raw, message", [
    ({"serch": {}}, "unknown key 'serch'; allowed: name, space"),
    ({"search": {"num_candidats": 3}}, "unknown key 'search.num_candidats'"),
    ({"search": {"num_candidates": "many"}}, "search.num_candidates must be int, got 'many'"),
    ({"search": {"num_candidates": 0}}, "search.num_candidates = 0 is below the minimum 1"),
    ({"search": {"sampler": "grid"}}, "search.sampler = 'grid' not allowed; allowed: tpe, nsga2, random, evolution"),
    ({"accuracy": {"lr": -1}}, "accuracy.lr = -1.0 is below the minimum 0.0"),
    ({"targets": []}, "targets must be a non-empty list"),
    ({"targets": ["a", "a"]}, "lists a name twice"),
    ({"search": [1, 2]}, "search must be a mapping"),
    ({"seed": True}, "seed must be int"),
    ({"search": {"sampler": "evolution", "screen_proxy": "jacob"}},
     "search.screen_proxy = 'jacob' not allowed; allowed: '' (none), grad-norm, snip, synflow, naswot, zico"),
    ({"search": {"screen_proxy": "naswot"}}, "search.screen_proxy = 'naswot' needs search.sampler: evolution (got 'tpe')"),
])
def test_bad_configs_name_key_value_and_allowed(raw, message):
    with pytest.raises(NasqError) as info:
        config_from_dict(raw, "x.yaml")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_space_target_and_estimate_are_refused():
    with pytest.raises(NasqError, match="unknown space 'resnet'; available: fbnet, mobilenet-mnist, nas-bench-201"):
        check_references(config_from_dict({"space": "resnet"}))
    with pytest.raises(NasqError, match="unknown target 'tpu'"):
        check_references(config_from_dict({"targets": ["tpu"]}))
    with pytest.raises(NasqError, match="unknown accuracy.estimate 'magic'"):
        check_references(config_from_dict({"accuracy": {"estimate": "magic"}}))


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
    with pytest.raises(NasqError, match="accuracy.schedule 'asha' needs an estimate with a fidelity .*'synflow' has "
                                        "none; allowed: short-training, supernet-finetune"):
        check_references(cfg)
    check_references(config_from_dict({"targets": ["bitserial-sim"], "accuracy": {"schedule": "asha"}}))
