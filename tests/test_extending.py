"""docs/extending.md's examples, run as written and held to the contract suite that every registered unit passes."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import test_contracts as contract

from nasq.accuracy import ESTIMATES
from nasq.data import DATA_FORMATS
from nasq.hardware_profiles import PREDICTORS, PROFILERS
from nasq.search.samplers import SAMPLERS

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
#: what the page registers, by registry
REGISTERED = {
    SAMPLERS: ["qmc"],
    PROFILERS: ["roofline"],
    PREDICTORS: ["roofline"],
    ESTIMATES: ["kept-channels"],
    DATA_FORMATS: ["npy-pair"],
}


def plugin_source() -> str:
    """The page's Python blocks, in order: one plugin module."""
    return "\n\n".join(re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S))


@pytest.fixture(scope="module")
def plugins(tmp_path_factory):
    """The page's plugins, registered as a user's module registers them; removed afterwards."""
    path = tmp_path_factory.mktemp("plugins") / "my_plugins.py"
    path.write_text(plugin_source())
    from nasq.user_code import load_module

    load_module(str(path), "docs/extending.md")
    yield path
    for registry, names in REGISTERED.items():
        for name in names:
            registry._entries.pop(name, None)


def test_every_block_registers_what_the_page_says(plugins):
    for registry, names in REGISTERED.items():
        for name in names:
            assert name in registry, (registry.kind, name)


def test_the_sampler_passes_the_contract_and_drives_a_search(plugins):
    from nasq.config import config_from_dict
    from nasq.hardware_profiles import load_profile
    from nasq.search.driver import build_searcher
    from nasq.spaces import create_space

    contract.test_options_are_frozen_checked_documented_and_bounded(SAMPLERS, "qmc")
    contract.test_samplers_declare_what_they_do_and_optuna_ones_pickle("qmc")
    space = create_space("mobilenet-mnist")
    cfg = config_from_dict(
        {
            "plugins": [str(plugins)],
            "targets": ["bitserial-sim"],
            "search": {"sampler": "qmc", "sampler_options": {"scramble": False}, "uniform_starts": 0},
        }
    )
    s = build_searcher(cfg, space, {"bitserial-sim": load_profile("bitserial-sim").data})
    seen = set()
    for i in range(4):
        c = s.suggest(str(i))
        assert space.validate(c) == c
        seen.add(tuple(sorted(c.items())))
        s.on_trial_complete(str(i), {"status": "ok", "score": 0.5 + i / 10, "latency_ms.bitserial-sim": 1.0 + i})
    assert len(seen) == 4


def test_the_backend_and_predictor_pass_the_contract_and_price_the_space(plugins):
    from nasq.hardware_profiles.profile import Profile
    from nasq.spaces import create_space

    contract.test_options_are_frozen_checked_documented_and_bounded(PROFILERS, "roofline")
    contract.test_profiler_backends_declare_what_they_do("roofline")
    space = create_space("mobilenet-mnist")
    data = PROFILERS.get("roofline")(gb_per_s=25.0).profile(space.profile_shapes(), name="npu", space=space.name)
    profile = Profile.from_dict(data, "npu")
    predictor = PREDICTORS.get(profile.predictor)(profile)
    small, large = space.sample(0), space.sample(1)
    assert 0 < predictor.predict_candidate(space, small).total_ms != predictor.predict_candidate(space, large).total_ms
    bad = {**data, "roofline": {**data["roofline"], "gb_per_s": -1}}
    with pytest.raises(Exception, match="gb_per_s = -1.0 is below the minimum 0.001"):
        Profile.from_dict(bad, "npu")


def test_the_cli_takes_the_backend_from_nasq_plugins(plugins, tmp_path):
    """`NASQ_PLUGINS=my_plugins.py nasq profile --backend roofline ...`, as the page shows it."""
    import json
    import os

    out = tmp_path / "npu.json"
    env = {**os.environ, "NASQ_PLUGINS": str(plugins)}
    args = ["--backend", "roofline", "--name", "npu", "--out", str(out), "--option", "gb_per_s=25"]
    done = subprocess.run([sys.executable, "-m", "nasq.cli", "profile", *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["roofline"]["gb_per_s"] == 25
    bad = subprocess.run(
        [sys.executable, "-m", "nasq.cli", "profile", *args[:-1], "gb_per_s=0"], env=env, capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "minimum 0.001" in bad.stderr


def test_the_estimate_and_data_format_work_from_a_config(plugins, tmp_path):
    from nasq.config import config_from_dict
    from nasq.data import DataSpec, load_dataset
    from nasq.spaces import create_space

    space = create_space("mobilenet-mnist")
    est = ESTIMATES.get("kept-channels")(config_from_dict({}).accuracy)
    wide, narrow = space.sample(0), space.sample(0)
    for name in list(narrow):
        if name.endswith(".prune"):
            narrow[name] = max(space.choices(narrow)[name])
    assert est.run(space, wide, None, seed=0).score >= est.run(space, narrow, None, seed=0).score
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.random((60, 1, 8, 8), dtype=np.float32))
    np.save(tmp_path / "y.npy", rng.integers(0, 3, 60))
    cfg = config_from_dict({"plugins": [str(plugins)], "data": {"dataset": "npy-pair", "path": str(tmp_path)}})
    data = load_dataset(DataSpec(format=cfg.data.dataset, path=cfg.data.path))
    assert len(data.train.y) + len(data.val.y) + len(data.test.y) == 60
    with pytest.raises(Exception, match="needs x.npy and y.npy"):
        load_dataset(DataSpec(format="npy-pair", path=str(tmp_path / "missing")))


def test_a_config_naming_a_plugin_that_does_not_import_fails_in_one_line(tmp_path):
    from nasq.config import config_from_dict
    from nasq.errors import NasqError

    broken = tmp_path / "broken.py"
    broken.write_text(textwrap.dedent("import no_such_module_here\n"))
    with pytest.raises(NasqError, match=r"plugins entry .*broken.py.* does not import: ModuleNotFoundError"):
        config_from_dict({"plugins": [str(broken)]}, "x.yaml")
