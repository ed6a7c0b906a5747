"""Every registered plugin honours its interface's contract, as Optuna ships a suite for samplers and timm sweeps
every registered model: a unit added to a registry is swept by these tests with nothing else to write.

Spaces are swept by tests/test_space.py, samplers' searchers by tests/test_searcher.py (both over every
registered name); options, capabilities, predictors, profilers and exporters here."""

from __future__ import annotations

import dataclasses
import math
import typing

import numpy as np
import pytest
from conftest import profile_data

from nasq.errors import NasqError
from nasq.export import EXPORTERS
from nasq.hardware_profiles import PREDICTORS, PROFILERS, list_profiles, load_profile
from nasq.hardware_profiles.profile import Profile
from nasq.hardware_profiles.profiler import Capabilities, ProfilerBackend
from nasq.options import Options
from nasq.search.samplers import SAMPLERS, OptunaSampler, SamplerCapabilities
from nasq.spaces import create_space

#: options a plugin cannot do without (its defaults are refused, naming them), for the sweep to start from
REQUIRED = {"published-csv": {"csv": "table.csv", "column": "ms"}}
PLUGINS = [(PROFILERS, name) for name in PROFILERS.names()] + [(SAMPLERS, name) for name in SAMPLERS.names()]
ids = [f"{registry.kind}:{name}" for registry, name in PLUGINS]


def numeric(typ) -> type | None:
    """int or float, where an option's type is one of them (or one of them or None)."""
    arms = [a for a in typing.get_args(typ) if a is not type(None)] if typing.get_args(typ) else [typ]
    return arms[0] if len(arms) == 1 and arms[0] in (int, float) else None


@pytest.mark.parametrize("registry, name", PLUGINS, ids=ids)
def test_options_are_frozen_checked_documented_and_bounded(registry, name):
    """A plugin's options: a frozen dataclass of nasq.options.Options, every field with a line of help, every
    number with both bounds; a value past a bound, NaN or infinity is refused in one line naming the plugin,
    the option and the bound; an unknown option is refused naming those allowed."""
    cls = registry.get(name)
    opts = cls.Options
    assert issubclass(opts, Options) and dataclasses.is_dataclass(opts) and opts.__dataclass_params__.frozen
    base = dict(REQUIRED.get(name, {}))
    options = opts(**base)
    assert cls(options).options is options
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.__setattr__("x", 1)
    hints = typing.get_type_hints(opts)
    fields = dataclasses.fields(opts)
    if fields:
        assert f"'{name}'" in opts.describes
    for f in fields:
        assert f.metadata.get("doc"), f"{name}: option {f.name} has no help"
        kind = numeric(hints[f.name])
        if kind is None:
            continue
        low, high = f.metadata.get("min"), f.metadata.get("max")
        assert low is not None and high is not None, f"{name}: {f.name} lacks a bound"
        for value, fragment in [
            (kind(math.floor(low) - 1), f"below the minimum {low}"),
            (kind(math.ceil(high) * 2 + 1), f"above the maximum {high}"),
            *([(math.nan, "finite"), (math.inf, "finite")] if kind is float else [(1.5, "must be int")]),
        ]:
            with pytest.raises(NasqError) as info:
                opts(**{**base, f.name: value})
            message = str(info.value)
            assert "\n" not in message and f.name in message and fragment in message, message
        with pytest.raises(NasqError, match="must be"):
            opts(**{**base, f.name: "3"})
    with pytest.raises(NasqError, match="unknown option 'no_such_option'; allowed: "):
        opts.from_mapping({**base, "no_such_option": 1})


@pytest.mark.parametrize("name", PROFILERS.names())
def test_profiler_backends_declare_what_they_do(name):
    """A backend's capabilities say what it measures; one that runs networks can measure again what it made."""
    cls = PROFILERS.get(name)
    assert issubclass(cls, ProfilerBackend)
    caps = cls.capabilities
    assert isinstance(caps, Capabilities) and caps.runtime and caps.measures and caps.precisions
    runs = cls.measure_models is not ProfilerBackend.measure_models and cls.for_profile.__func__ is not (
        ProfilerBackend.for_profile.__func__
    )
    assert caps.runs_networks == runs, name
    others = [PROFILERS.get(n).capabilities.runtime for n in PROFILERS.names() if n != name]
    assert caps.runtime not in others  # a profile's runtime names the backend that can measure it again


def test_every_backend_flag_of_nasq_profile_sets_an_option():
    """`nasq profile` flags reach backend options by name (or the option's `arg`), none left over."""
    from nasq.cli import BACKEND_FLAGS, build_parser

    profile = next(
        a for a in build_parser()._subparsers._group_actions[0].choices.values() if a.prog.endswith(" profile")
    )
    dests = {a.dest for a in profile._actions}
    taken = set()
    for name in PROFILERS.names():
        for f in dataclasses.fields(PROFILERS.get(name).Options):
            flag = f.metadata.get("arg") or f.name
            if f.metadata.get("arg"):
                assert flag in dests, (name, f.name, flag)
            if flag in dests:
                taken.add(flag)
    assert set(BACKEND_FLAGS) <= dests and set(BACKEND_FLAGS) <= taken


@pytest.mark.parametrize("name", [n for n in PROFILERS.names() if not PROFILERS.get(n).capabilities.runs_networks])
def test_backends_that_measure_nothing_write_a_profile_that_loads_and_prices_the_space(name, tmp_path):
    """(The backends that measure are run end to end by tests/test_profiles.py, test_tvm.py and
    test_end_to_end.py.)"""
    import shutil
    from pathlib import Path

    cls = PROFILERS.get(name)
    options = {}
    space = create_space("mobilenet-mnist")
    if name == "published-csv":
        csv = Path(__file__).resolve().parents[2] / "shared" / "data" / "nb201_latency_ms.csv"
        if not csv.is_file():
            pytest.skip("../shared/data (the published tables) is not in this checkout")
        shutil.copy(csv, tmp_path / "t.csv")
        options = {"csv": str(tmp_path / "t.csv"), "column": "gold_6226", "samples": 20}
        space = create_space("nas-bench-201")
    data = cls(**options).profile(space.profile_shapes(quick=True), name="contract", space=space.name, log=lambda m: 0)
    profile = Profile.from_dict(data, "contract")
    assert profile.metadata["runtime"] == cls.capabilities.runtime
    predictor = PREDICTORS.get(profile.predictor)(profile)
    for seed in range(3):
        cand = space.sample(seed)
        assert 0 < predictor.predict_candidate(space, cand).total_ms < 1e5


def _profile_for(predictor: str) -> Profile:
    """A profile the predictor prices: a fixture ONNX Runtime profile, or a shipped one that names it."""
    fixture = Profile.from_dict(profile_data("here"), "fixture")
    try:
        PREDICTORS.get(predictor).validate_profile(fixture)
        return fixture
    except NasqError:
        pass
    for name in list_profiles():
        try:
            profile = load_profile(name)
        except NasqError:
            continue
        if profile.predictor == predictor:
            return profile
    raise AssertionError(f"no profile here is priced by predictor '{predictor}'")


@pytest.mark.parametrize("name", PREDICTORS.names())
def test_predictors_price_candidates_positively_and_refuse_profiles_without_their_fields(name):
    profile = _profile_for(name)
    predictor = PREDICTORS.get(name)(profile)
    space = create_space(profile.data.get("space", "mobilenet-mnist"))
    totals = []
    for seed in range(4):
        cand = space.sample(seed)
        pred = predictor.predict_candidate(space, cand)
        assert math.isfinite(pred.total_ms) and pred.total_ms > 0, (name, seed)
        assert all(math.isfinite(v) for v in pred.layer_ms.values())
        totals.append(pred.total_ms)
    assert len(set(totals)) > 1  # it reads the candidate
    bare = {k: profile.data[k] for k in ("schema_version", "name", "description", "int8", "metadata")}
    with pytest.raises(NasqError) as info:
        Profile.from_dict({**bare, "predictor": name}, "a bare profile")
    assert "\n" not in str(info.value) and "a bare profile" in str(info.value)


@pytest.mark.parametrize("name", EXPORTERS.names())
@pytest.mark.parametrize("target", ["here", "bitserial-sim"])
def test_exporters_write_a_model_the_runtime_runs_with_every_layer_placed(name, target, tmp_path):
    from nasq.ort import session
    from nasq.predict import build_untrained

    space = create_space("mobilenet-mnist")
    profile = load_profile("bitserial-sim") if target == "bitserial-sim" else Profile.from_dict(profile_data(), "here")
    cand = space.sample(3)
    model, x = build_untrained(space, cand, 0, samples=16)
    bits = {layer.name: (layer.w_bits, layer.a_bits) for layer in space.layers(cand)}
    info = EXPORTERS.create(name).export(model, bits, profile, x, tmp_path / "m.onnx")
    assert set(info.layer_modes) == set(bits)
    out = session(tmp_path / "m.onnx").run(None, {"input": x[:4]})[0]
    assert out.shape == (4, space.num_classes) and np.isfinite(out).all()


def no_violation(trial):
    return [0.0]


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_samplers_declare_what_they_do_and_optuna_ones_pickle(name):
    import pickle

    import optuna
    from ray import cloudpickle

    cls = SAMPLERS.get(name)
    assert isinstance(cls.capabilities, SamplerCapabilities)
    assert cls.capabilities.optuna == issubclass(cls, OptunaSampler)
    if cls.capabilities.optuna:
        sampler = cls().optuna_sampler(0, no_violation if cls.capabilities.constrained else None)
        assert isinstance(sampler, optuna.samplers.BaseSampler)
        for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
            assert type(loads(dumps(sampler))) is type(sampler)


def test_a_samplers_options_reach_it_from_the_config():
    from nasq.config import config_from_dict
    from nasq.search.driver import build_searcher

    space = create_space("mobilenet-mnist")
    cfg = config_from_dict(
        {
            "targets": ["bitserial-sim"],
            "search": {"sampler": "nsga2", "sampler_options": {"population_size": 5}, "uniform_starts": 0},
        }
    )
    assert cfg.search.sampler_options["population_size"] == 5 and cfg.search.sampler_options["crossover_prob"] == 0.9
    s = build_searcher(cfg, space, {"bitserial-sim": load_profile("bitserial-sim").data})
    assert s.inner._sampler._population_size == 5
