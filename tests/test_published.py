"""Published whole-network tables as targets: the NAS-Bench-201 and FBNet spaces, CSV import, transfer."""

import json
from pathlib import Path

import numpy as np
import pytest
from test_cli import assert_clean_error, run

from nasq.errors import NasqError
from nasq.hardware_profiles import create_predictor, list_profiles, load_profile
from nasq.hardware_profiles.published import (
    PublishedCsvProfiler,
    fit_additive,
    predict_tables,
    read_latency_csv,
    select_and_fit,
)
from nasq.spaces import create_space

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(scope="module")
def nb201():
    return create_space("nas-bench-201")


def test_nb201_strings_round_trip_and_bad_strings_are_named(nb201):
    cand = nb201.parse_arch(NB201)
    assert nb201.format_arch(cand) == NB201 and len(cand) == 6
    with pytest.raises(NasqError, match="not a NAS-Bench-201 string"):
        nb201.parse_arch("|nor_conv_3x3~0|")
    with pytest.raises(NasqError, match="not allowed"):
        nb201.parse_arch(NB201.replace("avg_pool_3x3", "max_pool_3x3"))
    fbnet = create_space("fbnet")
    cand = fbnet.sample(3)
    assert fbnet.parse_arch(fbnet.format_arch(cand)) == cand
    with pytest.raises(NasqError, match="22 block names"):
        fbnet.parse_arch("k3_e1 skip")


def test_nb201_features_see_only_live_paths(nb201):
    # edges 0->1 conv3x3 and 0->2 pool feed nodes whose ways out are all none: only 0->3 (a conv3x3) is live
    one = nb201.features(
        nb201.parse_arch("|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|nor_conv_3x3~0|none~1|none~2|")
    )
    assert one["live_paths"] == 1 and one["live_edges_nor_conv_3x3"] == 1 and one["live_edges_nor_conv_1x1"] == 0
    assert one["live_depth_conv"] == one["live_depth_conv_3x3"] == 1 and one["live_edges_avg_pool_3x3"] == 0
    full = nb201.features(nb201.parse_arch(NB201))  # every path live; 0->3 is a skip, 0->1->3 two conv3x3
    assert full["live_paths"] == 4 and full["live_edges_nor_conv_3x3"] == 3
    assert full["live_paths_with_nor_conv_3x3"] == 3 and full["live_depth_conv_3x3"] == 2
    dead = nb201.features(nb201.parse_arch("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
    assert dead["live_paths"] == 0 and dead["live_depth_conv"] == -1 and dead["live_edges_nor_conv_3x3"] == 0
    assert set(one) == set(full) == set(dead)  # the same keys for every candidate, as the encoder needs


def test_spaces_build_models_that_run(nb201):
    import torch

    for space in (nb201, create_space("fbnet")):
        model = space.build(space.sample(0))
        assert model(torch.zeros(2, *space.input_shape)).shape == (2, space.num_classes)


def _synthetic_csv(tmp_path, space, n, seed=0):
    """Latencies from a known additive table (a fake measurement for testing the fit's logic only)."""
    rng = np.random.default_rng(seed)
    truth = {"nor_conv_3x3": 3.0, "nor_conv_1x1": 1.0, "avg_pool_3x3": 0.5, "skip_connect": 0.1, "none": 0.0}
    rows = ["arch_str,dev_ms"]
    for i in range(n):
        cand = space.sample(seed * 1000 + i)
        rows.append(
            f"{space.format_arch(cand)},{2.0 + sum(truth[v] for v in cand.values()) * (1 + 0.01 * rng.standard_normal()):.5f}"
        )
    path = tmp_path / "lat.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_additive_fit_recovers_a_known_table(tmp_path, nb201):
    cands, y = read_latency_csv(_synthetic_csv(tmp_path, nb201, 300), nb201, "arch_str", "dev_ms")
    table = fit_additive(cands, y)
    pred = predict_tables(table, cands)
    assert np.median(np.abs(pred - y) / y) < 0.02
    costs = table["costs"]["edge0_1"]
    assert costs["nor_conv_3x3"] - costs["nor_conv_1x1"] == pytest.approx(2.0, abs=0.15)


def test_transfer_needs_few_rows_and_is_chosen_by_cross_validation(tmp_path, nb201):
    cands, y = read_latency_csv(_synthetic_csv(tmp_path, nb201, 400), nb201, "arch_str", "dev_ms")
    reference = fit_additive(cands, y)  # a device whose table is known
    few = slice(0, 10)  # a new device: 10 measurements, 3x slower
    table, selection = select_and_fit(cands[few], 3 * y[few], {"ref": reference})
    # a plain ridge over the table entries the rows show (up to 30) and an intercept, 8 rows a fold: not even tried
    assert set(selection["scores"]) == {"transfer", "transfer+additive"}
    why = selection["excluded"]["additive"]
    assert why.endswith(" parameters for 8 rows a fold") and int(why.split()[0]) > 8
    assert set(select_and_fit(cands[:100], y[:100], {"ref": reference})[1]["scores"]) == {
        "additive",
        "transfer",
        "transfer+additive",
    }
    err = np.abs(predict_tables(table, cands[10:]) - 3 * y[10:]) / (3 * y[10:])
    assert np.median(err) < 0.03


def test_import_writes_a_profile_that_prices_candidates(tmp_path, nb201):
    csv = _synthetic_csv(tmp_path, nb201, 120)
    out = run(
        "profile",
        "import",
        "--csv",
        csv,
        "--space",
        "nas-bench-201",
        "--column",
        "dev_ms",
        "--name",
        "my-dev",
        "--samples",
        "60",
        "--references",
        "none",
        "--out",
        tmp_path / "my-dev.json",
    )
    assert out.returncode == 0, out.stderr
    prof = load_profile(str(tmp_path / "my-dev.json"))
    assert prof.predictor == "architecture-table" and prof.data["validation"]["networks"] == 60
    assert prof.data["validation"]["within_10pct"] > 0.8
    pred = create_predictor(prof)
    assert pred.predict_candidate(nb201, nb201.parse_arch(NB201)).total_ms > 2.0
    with pytest.raises(NasqError, match="only, not of 'mobilenet-mnist'"):
        pred.predict_candidate(create_space("mobilenet-mnist"), create_space("mobilenet-mnist").sample(0))


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("arch_str,other\nx,1\n", "lacks column(s) dev_ms; it has: arch_str, other"),
        (f"arch_str,dev_ms\n{NB201},1.0\n{NB201},0\n", "line 3: dev_ms = 0.0 ms; latencies must be positive"),
        (f"arch_str,dev_ms\n{NB201},fast\n", "line 2: dev_ms = 'fast' is not a number"),
        ("arch_str,dev_ms\n|a~0|,1\n", "line 2: '|a~0|' is not a NAS-Bench-201 string"),
    ],
)
def test_bad_csv_is_a_one_line_error(tmp_path, content, fragment):
    (tmp_path / "bad.csv").write_text(content)
    out = run(
        "profile",
        "import",
        "--csv",
        tmp_path / "bad.csv",
        "--space",
        "nas-bench-201",
        "--column",
        "dev_ms",
        "--name",
        "x",
        "--out",
        tmp_path / "new" / "x.json",
    )
    assert_clean_error(out, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]  # not even the folder --out named


def test_shipped_published_profiles_cover_27_devices_per_space(nb201):
    names = list_profiles()
    for prefix, space in (("nb201-", nb201), ("fbnet-", create_space("fbnet"))):
        mine = [n for n in names if n.startswith(prefix)]
        assert len(mine) == 27
        for name in ("gold_6226", "pixel3", "raspi4", "fpga"):
            prof = load_profile(prefix + name)
            assert prof.data["space"] == space.name and prof.data["validation"]["spearman"] > 0.9
            ms = create_predictor(prof).predict_candidate(space, space.sample(1)).total_ms
            assert 0 < ms < 1000


def test_measured_architectures_are_priced_exactly(nb201):
    from nasq.hardware_profiles.profile import Profile

    data = json.loads(json.dumps(load_profile("nb201-pixel3").data))
    cand = nb201.parse_arch(NB201)
    other = nb201.sample(3)
    table = create_predictor(Profile.from_dict(data)).predict_candidate(nb201, other).total_ms
    data["measured"] = {NB201: 12.5}
    pred = create_predictor(Profile.from_dict(data))
    assert pred.predict_candidate(nb201, cand).total_ms == 12.5
    assert pred.predict_candidate(nb201, other).total_ms == table  # not measured: the fitted table
    data["measured"] = {NB201: 0}
    with pytest.raises(NasqError, match="must be positive"):
        create_predictor(Profile.from_dict(data))


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data (the published tables) is not in this checkout")
def test_import_from_20_real_measurements_ranks_the_rest(nb201):
    data = PublishedCsvProfiler(csv=str(SHARED / "nb201_latency_ms.csv"), column="gold_6226", samples=20).profile(
        [], name="nb201-test-gold", space=nb201.name, log=lambda m: None
    )
    assert data["predictor_selection"]["reference_weights"]  # transferred from the other devices
    assert "gold_6226" not in json.dumps(data["predictor_selection"]["reference_weights"])
    assert data["validation"]["networks"] == 15625 - 20
    assert data["validation"]["spearman"] > 0.95
