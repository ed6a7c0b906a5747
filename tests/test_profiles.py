import copy
import json
from pathlib import Path

import pytest

from nasq.errors import NasqError
from nasq.hardware_profiles import PREDICTORS, PROFILERS, create_predictor, list_profiles, load_profile
from nasq.hardware_profiles.probe_graphs import QUICK_STEM_SHAPES
from nasq.hardware_profiles.profile import Profile
from nasq.spaces.base import LayerSpec

#: the shipped ONNX Runtime profiles, one per kind of CPU this project has run on, and whether that CPU has VNNI
SHIPPED_ORT = {"xeon-avx512-ort": True, "epyc-zen2-avx2-ort": False, "epyc-zen5-avx512-ort": True}
SHIPPED = [*SHIPPED_ORT, "bitserial-sim"]


def test_shipped_profiles_are_listed_with_metadata():
    for name in SHIPPED:
        assert name in list_profiles()
        prof = load_profile(name)
        for key in ("device", "runtime", "date", "batch_size"):
            assert key in prof.metadata


@pytest.mark.parametrize("name", SHIPPED_ORT)
def test_shipped_cpu_profiles_record_their_machine_its_int8_recipe_and_a_validation(name):
    """Each shipped ONNX Runtime profile was measured on one kind of CPU, which it records (checked on load), with
    the int8 recipe that CPU needs (reduced range without VNNI) and its `nasq profile validate` on that machine."""
    prof = load_profile(name)
    m = prof.metadata
    assert m["threads"] == 1 and m["batch_size"] == 1 and m["repetitions"] >= 20 and not m["quick"]
    assert m["machine"] == "x86_64" and "avx2" in m["cpu_flags"]
    vnni = SHIPPED_ORT[name]
    assert ("avx512_vnni" in m["cpu_flags"]) == vnni and ("avx512f" in m["cpu_flags"]) == ("avx512" in name)
    assert prof.int8_recipe["reduce_range"] is (not vnni) and prof.data["int8_recipe"] == prof.int8_recipe
    validation = prof.data["validation"]
    assert validation["networks"] >= 30 and validation["real_topologies"]["networks"] == 7


@pytest.mark.parametrize("name", SHIPPED)
def test_every_predictor_prices_every_candidate(name, space):
    """Contract: positive finite latency for every candidate of the space the profile covers."""
    pred = create_predictor(load_profile(name))
    for seed in range(40):
        p = pred.predict(space.layers(space.sample(seed)))
        assert 0 < p.total_ms < 100
        assert set(p.layer_ms) == {l.name for l in space.layers(space.sample(seed))}
        assert all(v > 0 for v in p.layer_ms.values())


def test_registered_predictors_and_profilers():
    assert {"table", "calibrated", "bitserial"} <= set(PREDICTORS.names())
    assert {"onnxruntime", "bitserial-sim"} <= set(PROFILERS.names())


def _table_profile(**overrides):
    layers = []
    for cin in (8, 32):
        for cout in (8, 32):
            for precision, scale in (("fp32", 1.0), ("int8", 0.5)):
                layers.append(
                    dict(
                        op="conv",
                        cin=cin,
                        cout=cout,
                        kernel=1,
                        stride=1,
                        h_in=7,
                        precision=precision,
                        latency_ms=scale * cin * cout / 1000,
                    )
                )
    for precision in ("fp32", "int8"):
        layers.append(
            dict(op="linear", cin=32, cout=10, kernel=1, stride=1, h_in=1, precision=precision, latency_ms=0.01)
        )
    data = {
        "schema_version": 1,
        "name": "t",
        "predictor": "table",
        "description": "test",
        "int8": True,
        "metadata": {"device": "d", "runtime": "r", "date": "2026"},
        "overhead_ms": 0.1,
        "boundary": {
            "quantize": {"intercept_ms": 0.01, "per_melement_ms": 1.0},
            "dequantize": {"intercept_ms": 0.02, "per_melement_ms": 1.0},
        },
        "layers": layers,
    }
    data.update(overrides)
    return data


def test_table_interpolates_between_grid_points_and_adds_boundaries():
    pred = create_predictor(Profile.from_dict(_table_profile()))
    conv = LayerSpec("a", "conv", 8, 32, 1, 1, 7)
    assert pred.predict([conv]).total_ms == pytest.approx(0.1 + 8 * 32 / 1000)
    mid = LayerSpec("a", "conv", 20, 20, 1, 1, 7)  # bilinear on a bilinear function is exact
    assert pred.predict([mid]).total_ms == pytest.approx(0.1 + 20 * 20 / 1000)
    int8 = LayerSpec("a", "conv", 8, 32, 1, 1, 7, w_bits=8, a_bits=8)
    p = pred.predict([int8])
    # one fp32->int8 boundary at the input, one int8->fp32 at the output
    expected_boundary = 0.01 + 8 * 49 / 1e6 + 0.02 + 32 * 49 / 1e6
    assert p.boundary_ms == pytest.approx(expected_boundary)
    assert p.total_ms == pytest.approx(0.1 + 0.5 * 8 * 32 / 1000 + expected_boundary)
    # 4-bit weights are not int8 on this target: priced as fp32, no boundary
    four = LayerSpec("a", "conv", 8, 32, 1, 1, 7, w_bits=4, a_bits=8)
    assert pred.predict([four]).boundary_ms == 0


def test_table_notes_every_fallback_and_refuses_unknown_ops():
    pred = create_predictor(Profile.from_dict(_table_profile()))
    big = LayerSpec("big", "conv", 64, 64, 1, 1, 7)
    p = pred.predict([big])
    assert p.layer_ms["big"] == pytest.approx(64 * 64 / 1000)  # scaled by MACs from the 32x32 corner
    assert any("big" in n and "outside" in n for n in p.notes)
    other_geometry = LayerSpec("g", "conv", 8, 8, 1, 1, 14)
    p = pred.predict([other_geometry])
    assert p.layer_ms["g"] == pytest.approx(8 * 8 / 1000 * 4)  # 4x the MACs of the h=7 entry
    assert any("g:" in n for n in p.notes)
    with pytest.raises(NasqError, match="dwconv"):
        pred.predict([LayerSpec("d", "dwconv", 8, 8, 3, 1, 7)])
    # costs are remembered per layer geometry, but a fallback is named every time, by each layer's name
    again = pred.predict([LayerSpec("big2", "conv", 64, 64, 1, 1, 7), LayerSpec("small", "conv", 8, 8, 1, 1, 7)])
    assert again.layer_ms["big2"] == pytest.approx(64 * 64 / 1000) and any("big2" in n for n in again.notes)
    assert pred.predict([LayerSpec("small2", "conv", 8, 8, 1, 1, 7)]).layer_ms["small2"] == again.layer_ms["small"]


def test_bitserial_latency_falls_with_bit_width(space):
    pred = create_predictor(load_profile("bitserial-sim"))
    layer = LayerSpec("l", "conv", 64, 64, 3, 1, 14)
    times = [pred.predict([LayerSpec(**{**layer.to_dict(), "w_bits": b, "a_bits": b})]).total_ms for b in (2, 4, 8)]
    assert times[0] < times[1] < times[2]
    acc = load_profile("bitserial-sim").data["accelerator"]
    compute_8bit = layer.macs * 16 / (acc["bitbricks"] * acc["clock_mhz"] * 1e3)
    assert times[2] >= compute_8bit


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("layers"), "layers"),
        (lambda d: d.update(schema_version=9), "schema_version"),
        (lambda d: d["layers"][0].update(latency_ms=-1.0), "latency_ms"),
        (lambda d: d["layers"][0].update(op="pool"), "op"),
        (lambda d: d["metadata"].pop("device"), "device"),
        (lambda d: d.update(predictor="magic"), "magic"),
        (lambda d: d["boundary"].pop("quantize"), "quantize"),
    ],
)
def test_bad_profiles_are_refused_with_the_field_named(mutate, message):
    data = copy.deepcopy(_table_profile())
    mutate(data)
    with pytest.raises(NasqError, match=message):
        Profile.from_dict(data, "bad.json")


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("brick_bits", 1e-320, r"accelerator.brick_bits = 1e-320 is out of range; allowed: 1 to 8"),
        ("clock_mhz", 1e308, r"accelerator.clock_mhz = 1e\+308 is out of range; allowed: 1 to 10000"),
        ("float_bits", 1e308, r"accelerator.float_bits = 1e\+308 is out of range; allowed: 8 to 64"),
        ("bitbricks", 0, r"accelerator.bitbricks = 0 is out of range"),
    ],
)
def test_physically_impossible_accelerators_are_refused_with_the_bounds(key, value, message):
    data = copy.deepcopy(load_profile("bitserial-sim").data)
    data["accelerator"][key] = value
    with pytest.raises(NasqError, match=message):
        Profile.from_dict(data, "bad.json")


def test_a_table_profile_overhead_of_more_than_an_hour_is_refused():
    data = copy.deepcopy(_table_profile())
    data["overhead_ms"] = 1e308
    with pytest.raises(NasqError, match=r"overhead_ms = 1e\+308 is out of range; allowed: 0 to 3.6e\+06"):
        Profile.from_dict(data, "bad.json")


def test_corrupt_and_missing_profile_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(NasqError, match="not valid JSON"):
        load_profile(str(bad))
    with pytest.raises(NasqError, match="does not exist"):
        load_profile(str(tmp_path / "missing.json"))
    with pytest.raises(NasqError, match="unknown target 'nope'; available: local-ort, .*xeon-avx512-ort"):
        load_profile("nope")


def check_measured_ort_profile(data: dict, shapes) -> None:
    """Real ONNX Runtime measurements: every shape and image stem, fp32 and int8, the int8 ones really run as int8
    kernels, timed beside the reference layer; scaled to another speed, every prediction moves alike."""
    from nasq.hardware_profiles.ort_profiler import rescale_measurements
    from nasq.hardware_profiles.predictors import KernelRegressorPredictor, TablePredictor

    prof = Profile.from_dict(json.loads(json.dumps(data)))
    distinct = {s.shape_only() for s in [*shapes, *QUICK_STEM_SHAPES]}
    assert len(prof.data["layers"]) == 2 * len(distinct)  # the space's and image stems
    int8 = [l for l in prof.data["layers"] if l["precision"] == "int8"]
    assert {l["executed_as"] for l in int8} <= {"QLinearConv", "QGemm"}
    assert prof.data["overhead_ms"] > 0
    assert prof.data["boundary"]["quantize"]["per_melement_ms"] > 0
    pred = create_predictor(prof)
    assert pred.predict([LayerSpec("x", "conv", 48, 48, 1, 1, 14)]).total_ms > 0
    # every measurement was timed beside the reference layer: how fast the machine ran is on record
    reference = prof.metadata["reference"]
    # (a layer slower than HEAVY_MS takes the speed of the light ones before it: on a loaded machine, some do)
    assert reference["latency_ms"] > 0 and reference["speed"]["measurements"] >= len(shapes)
    assert reference["speed"]["p10"] <= reference["speed"]["median"] <= reference["speed"]["p90"]
    for cost in data["op_costs"].values():  # an op cost measured under the 0.1 us floor is priced at the floor,
        for point in [*cost.get("measured", []), *cost.get("in_context", []), *cost.get("in_int8_context", [])]:
            point["latency_ms"] = max(point["latency_ms"], 1e-4)  # which does not move with the speed
    slower = copy.deepcopy(data)  # (not faster: a cost measured at the 0.1 us floor would stay at it)
    rescale_measurements(slower, 2.0)
    net = [
        LayerSpec("a", "conv", 32, 64, 1, 1, 14, 8, 8),
        LayerSpec("b", "dwconv", 64, 64, 3, 1, 14),
        LayerSpec("c", "conv", 40, 24, 3, 2, 28),
        LayerSpec("d", "linear", 32, 10),
    ]
    for cls in (TablePredictor, KernelRegressorPredictor):
        before, after = (cls(Profile.from_dict(d)).predict(net).total_ms for d in (data, slower))
        assert after == pytest.approx(2.0 * before, rel=1e-6), cls


def test_profiling_measurements_are_scaled_by_the_reference_timed_beside_them(monkeypatch):
    """A machine running at half speed during a measurement: the reference, timed in the same rounds, took twice
    its starting latency, so the measurement is halved, round by round (a slow spell within the measurement
    cancels too); models measured for a caller are not."""
    import nasq.ort
    from nasq.hardware_profiles.ort_profiler import OnnxRuntimeProfiler

    calls = []
    # 9 rounds at 2x the profiled speed, the last ones at 4x: a spell that reached the models one round before the
    # reference (timed last in each round). The raw medians: 0.1 and 0.3, the reference's 0.2
    model, gauge = [2.0] * 4 + [4.0] * 5, [2.0] * 5 + [4.0] * 4

    def fake(runs, *, reference=None, samples=None, **kwargs):
        calls.append(reference)
        rounds = [[0.025 * s for s in model], [0.075 * s for s in model]]
        rounds += [[0.1 * s for s in gauge]] if reference is not None else []
        if samples is not None:
            samples.extend(rounds)
        return [sorted(r)[4] for r in rounds]

    monkeypatch.setattr(nasq.ort, "time_interleaved", fake)
    backend = OnnxRuntimeProfiler()
    assert backend._timed(["a", "b"], repetitions=9) == [0.1, 0.3]  # not profiling: no reference, as measured
    backend._reference, backend.reference_ms = "ref", 0.1
    # the whole run's medians over the reference's (0.2 / 0.1) would say 0.05 and 0.15
    assert backend._timed(["a", "b"], repetitions=9) == pytest.approx([0.025, 0.075])
    assert backend._speed == 2.0 and backend.speeds == [2.0]
    kept = []
    assert backend._timed(["a", "b"], repetitions=9, normalize=False, samples=kept) == [0.1, 0.3]
    assert calls == [None, "ref", "ref"] and kept[2] == [0.1 * s for s in gauge]  # the reference's rounds, last
    # after a heavy model the reference runs slow: such a measurement takes the last light ones' speed
    monkeypatch.setattr(nasq.ort, "time_interleaved", lambda runs, reference=None, **kw: [5.0, 0.8])
    assert backend._timed(["big"], repetitions=5) == [2.5] and backend.speeds == [2.0, 2.0]
    # a backend for a profile gauges the machine with the profile's reference, if it records a usable one
    gauged = OnnxRuntimeProfiler.for_profile(
        {
            "reference": {
                "layer": {"op": "conv", "cin": 8, "cout": 8, "kernel": 3, "stride": 1, "h_in": 7},
                "latency_ms": 0.01,
            }
        }
    )
    assert gauged._reference is not None and gauged.reference_ms == 0.01
    for bad in ({"layer": {"op": "conv"}, "latency_ms": 0.01}, {"layer": "x"}, "x", None):
        assert OnnxRuntimeProfiler.for_profile({"reference": bad})._reference is None


def test_window_spread_is_the_measurement_noise_left_by_the_reference():
    """Each model's rounds cut in three: how far apart the parts' medians lie, raw and over the reference."""
    from nasq.ort import window_spread

    steady = [1.0] * 9
    slowing = [1.0] * 3 + [1.1] * 3 + [1.2] * 3  # the machine slows down: so does the reference
    spread = window_spread([steady, slowing], reference=slowing)
    assert spread["windows"] == 3 and spread["rounds"] == 9
    assert spread["median"] == pytest.approx(0.1) and spread["p90"] == pytest.approx(0.18)
    # over the reference, the slowing model is steady (0) and the steady one seems to speed up 1.2x (0.2)
    assert spread["over_reference"]["median"] == pytest.approx(0.1, abs=1e-4)
    assert window_spread([slowing], reference=slowing)["over_reference"]["median"] == 0.0
    assert "over_reference" not in window_spread([steady])
    assert window_spread([[1.0] * 8]) is None  # fewer than 3 rounds per part


def test_gauged_medians_cancel_a_slow_spell_round_by_round():
    """A model's latency at the profile's speed: its time over the reference's, round by round, times the
    reference's profiled latency. A slow spell that hits both cancels; a whole-run ratio would not."""
    from nasq.ort import gauged_medians

    # the machine runs 1x for 4 rounds, then 2x for 5: the raw median is the slow one, the gauged one is not
    reference = [0.1] * 4 + [0.2] * 5
    model = [1.0] * 4 + [2.0] * 5
    assert sorted(model)[4] == 2.0
    assert gauged_medians([model], reference, reference_ms=0.1) == pytest.approx([1.0])
    # at a profile scaled to a reference twice as fast as any round here, everything is half as long
    assert gauged_medians([model, [3.0] * 9], reference, reference_ms=0.05) == pytest.approx([0.5, 0.75])
    # a model that does not slow with the reference comes out faster, as it really ran
    assert gauged_medians([[1.0] * 9], reference, reference_ms=0.1) == pytest.approx([0.5])


def test_at_profile_speed_gauges_by_the_calibration_networks_when_they_ran_beside():
    from nasq.hardware_profiles.measurement import at_profile_speed
    from nasq.hardware_profiles.profiler import Measurement

    # rounds 1-2 at the profile's speed, 3-5 twice as slow for the small networks, 1.5x for the reference conv
    small = [0.1, 0.1, 0.2, 0.2, 0.2]
    anchors = [[0.05, 0.05, 0.1, 0.1, 0.1], [0.3, 0.3, 0.6, 0.6, 0.6]]
    measured = Measurement(
        [0.2, 0.1, 0.6], samples=[small, *anchors], reference=[0.01, 0.01, 0.015, 0.015, 0.015], reference_ms=0.01
    )
    assert at_profile_speed(measured, 1, then=[0.05, 0.3]) == pytest.approx([0.1])  # by the anchors: as profiled
    assert at_profile_speed(measured, 1) == pytest.approx([0.2 / 1.5])  # by the reference: the small one seems slow
    assert at_profile_speed(Measurement([0.2], samples=[small]), 1) is None  # no reference timed
    assert at_profile_speed(Measurement([0.2]), 1) is None  # a backend that keeps no timings


def test_calibration_recovers_known_weights_and_loads_as_a_predictor():
    from nasq.hardware_profiles.predictors import CALIBRATION_FEATURES, Prediction, fit_calibration

    rng = __import__("numpy").random.default_rng(0)
    truth = {"fp32_conv_ms": 0.5, "int8_conv_ms": 1.2, "boundary_ms": 2.0, "layers": 0.004}
    preds, measured = [], []
    for _ in range(30):
        comps = {name: float(rng.uniform(0.01, 0.2)) for name in CALIBRATION_FEATURES}
        comps["layers"] = float(rng.integers(5, 30))
        preds.append(Prediction(total_ms=0.0, components=comps))
        measured.append(0.01 + sum(w * comps[k] for k, w in truth.items()))
    cal = fit_calibration(preds, measured)
    weights = dict(zip(cal["features"], cal["coefficients"]))
    for k, w in truth.items():
        assert weights[k] == pytest.approx(w, rel=1e-3)
    assert cal["intercept_ms"] == pytest.approx(0.01, abs=1e-4)
    data = _table_profile(predictor="calibrated", calibration=cal)
    pred = create_predictor(Profile.from_dict(data))
    assert pred.predict([LayerSpec("a", "conv", 8, 32, 1, 1, 7)]).total_ms > 0
    with pytest.raises(NasqError, match="calibration"):
        Profile.from_dict(_table_profile(predictor="calibrated"))
    bad = dict(cal, coefficients=cal["coefficients"][:-1])
    with pytest.raises(NasqError, match="coefficients"):
        Profile.from_dict(_table_profile(predictor="calibrated", calibration=bad))


def test_calibrated_regressor_reweights_the_regressors_own_parts():
    from nasq.hardware_profiles.kernel_model import fit_kernel_model
    from nasq.hardware_profiles.predictors import (
        CalibratedRegressorPredictor,
        KernelRegressorPredictor,
        fit_calibration,
    )

    layers = [LayerSpec(f"l{i}", "conv", c, c, 1, 1, 7) for i, c in enumerate((8, 16, 24, 32, 48, 64))]
    model = fit_kernel_model(layers * 2, ["fp32"] * 6 + ["int8"] * 6, [0.01 * (i + 1) for i in range(12)])
    data = _table_profile(predictor="kernel-regressor", kernel_model=model)
    regressor = KernelRegressorPredictor(Profile.from_dict(data))
    nets = [layers[:k] for k in range(1, 7)]
    parts = [regressor.predict(n) for n in nets]
    # whole networks that ran 1.5x the regressor's conv estimates plus 0.02 ms: the calibration learns both
    measured = [0.02 + 1.5 * p.components["fp32_conv_ms"] for p in parts]
    cal = fit_calibration(parts, measured)
    data = _table_profile(predictor="calibrated-regressor", kernel_model=model, regressor_calibration=cal)
    pred = create_predictor(Profile.from_dict(data))
    assert isinstance(pred, CalibratedRegressorPredictor)
    for n, m in zip(nets, measured):
        assert pred.predict(n).total_ms == pytest.approx(m, rel=1e-3)
    # the table's calibration is another field: a profile without the regressor's own is refused by name
    with pytest.raises(NasqError, match="regressor_calibration"):
        Profile.from_dict(_table_profile(predictor="calibrated-regressor", kernel_model=model, calibration=cal))


def test_calibration_sees_float_convs_off_the_blocked_layout_and_reads_older_feature_lists():
    from nasq.hardware_profiles.predictors import CALIBRATION_FEATURES, FP32_CONV_ALIGNMENT

    table = create_predictor(Profile.from_dict(_table_profile()))
    aligned = LayerSpec("a", "conv", 8, 4 * FP32_CONV_ALIGNMENT, 1, 1, 7)
    unaligned = LayerSpec("u", "conv", 8, 4 * FP32_CONV_ALIGNMENT + 4, 1, 1, 7)
    assert "fp32_unaligned_conv_melements" not in table.predict([aligned]).components
    assert table.predict([unaligned]).components["fp32_unaligned_conv_melements"] == pytest.approx(
        (unaligned.in_numel + unaligned.out_numel) / 1e6
    )
    int8 = LayerSpec("q", "conv", 8, 4 * FP32_CONV_ALIGNMENT + 4, 1, 1, 7, w_bits=8, a_bits=8)
    assert "fp32_unaligned_conv_melements" not in table.predict([int8]).components
    # a profile calibrated before the feature existed: its own list, applied by name
    older = [f for f in CALIBRATION_FEATURES if f != "fp32_unaligned_conv_melements"]
    cal = {"features": older, "coefficients": [1.0] * len(older), "intercept_ms": 0.001}
    calibrated = create_predictor(Profile.from_dict(_table_profile(predictor="calibrated", calibration=cal)))
    table_ms = table.predict([unaligned]).total_ms
    assert calibrated.predict([unaligned]).total_ms == pytest.approx(0.001 + table_ms - table.overhead_ms + 1)
    with pytest.raises(NasqError, match="calibration.features"):
        Profile.from_dict(
            _table_profile(predictor="calibrated", calibration={**cal, "features": older[:-1] + ["bogus"]})
        )


def test_a_profile_from_a_visibly_different_machine_is_not_measured_here():
    """Alike: the same CPU name, the same kernel-deciding flags among those both looked for, the same CPU id where
    both record one. Anything else is another machine, said naming both."""
    from nasq.hardware_profiles.machine import this_machine

    here = _table_profile()
    here["metadata"].update(this_machine(), runtime="onnxruntime")
    assert Profile.from_dict(here).measured_here()
    other_flags = copy.deepcopy(here)
    other_flags["metadata"]["cpu_flags_checked"].append("made_up_flag")
    other_flags["metadata"]["cpu_flags"].append("made_up_flag")
    assert Profile.from_dict(other_flags).measured_here()  # a flag this machine's nasq does not look for: not compared
    other_flags["metadata"]["cpu_flags"].remove("avx2")
    prof = Profile.from_dict(other_flags)
    assert not prof.measured_here() and "the same CPU name without avx2" in prof.machine_mismatch()
    other_id = copy.deepcopy(here)
    other_id["metadata"]["cpu_id"] = {"vendor": "AuthenticAMD", "family": 23, "model": 49}
    if this_machine()["cpu_id"] is not None:
        assert "another CPU generation" in Profile.from_dict(other_id).machine_mismatch()
    other_id["metadata"]["cpu_id"] = None  # not recorded: not compared
    assert Profile.from_dict(other_id).measured_here()
    other_cpu = copy.deepcopy(here)
    other_cpu["metadata"]["device"] = "Cortex-A72"
    mismatch = Profile.from_dict(other_cpu).machine_mismatch()
    assert mismatch.startswith("measured on Cortex-A72 (") and f"this machine is {this_machine()['device']}" in mismatch
    warning = Profile.from_dict(other_cpu).mismatch_warning("arm")
    assert warning.startswith("warning: target 'arm' was measured on Cortex-A72") and "\n" not in warning
    assert Profile.from_dict(here).mismatch_warning("x") is None


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"cpu_flags": None}, "metadata.cpu_flags must be a list of CPU flag names"),
        ({"cpu_flags": ["AVX 2"]}, "metadata.cpu_flags must be a list of CPU flag names"),
        ({"cpu_flags_checked": ["avx2"], "cpu_flags": ["avx2", "fma"]}, "lists flags that cpu_flags_checked does not"),
        ({"cpu_id": "zen"}, "metadata.cpu_id must be null or an object"),
        ({"device": ""}, "metadata.device must be the CPU's model name"),
    ],
)
def test_a_malformed_machine_record_is_a_one_line_error(change, fragment):
    from nasq.hardware_profiles.machine import this_machine

    data = _table_profile()
    data["metadata"].update(this_machine(), runtime="onnxruntime")
    data["metadata"].update(change)
    with pytest.raises(NasqError, match=fragment):
        Profile.from_dict(data, "p.json")
    data["metadata"].update(this_machine())
    del data["metadata"]["cpu_flags_checked"]
    with pytest.raises(NasqError, match="profile p.json: metadata.cpu_flags_checked is missing"):
        Profile.from_dict(data, "p.json")


def test_the_int8_recipe_follows_the_cpu():
    """x86 without VNNI keeps int8 weights in -64..64 (its u8s8 kernels add pairs of products in 16 bits); VNNI,
    AVX-VNNI and AMX accumulate in 32 bits; Arm has no such pair sums. A profile without a CPU (an accelerator
    model) gets this machine's recipe, where nasq runs the exported model."""
    from nasq.hardware_profiles.machine import int8_recipe, int8_recipe_here

    def recipe(flags, machine="x86_64"):
        return int8_recipe({"cpu_flags": flags, "machine": machine})

    assert recipe(["avx2", "fma"]) == {**recipe(["avx2", "fma"]), "reduce_range": True, "weight_range": 64}
    assert recipe(["avx2", "avx512f"])["reduce_range"]
    for vnni in ("avx512_vnni", "avx_vnni", "amx_int8"):
        assert not recipe(["avx2", vnni])["reduce_range"] and recipe(["avx2", vnni])["weight_range"] == 127
    assert not recipe(["neon", "asimddp"], "aarch64")["reduce_range"]
    assert Profile.from_dict(_table_profile()).int8_recipe == int8_recipe_here()
    with pytest.raises(NasqError, match="int8_recipe must be an object with a boolean reduce_range"):
        Profile.from_dict(_table_profile(int8_recipe={"reduce_range": "yes"}))


def test_unaligned_depthwise_channel_counts_are_their_own_class():
    """ONNX Runtime runs fp32 depthwise convs with channels not a multiple of 4 on a slower kernel: the table
    keeps them apart when it measured them, and falls back to the aligned entries when it did not."""
    dw = [
        dict(op="dwconv", cin=c, cout=c, kernel=3, stride=1, h_in=7, precision="fp32", latency_ms=ms)
        for c, ms in ((64, 0.01), (128, 0.02), (66, 0.1), (130, 0.2))
    ]
    base = _table_profile()
    pred = create_predictor(Profile.from_dict({**base, "layers": base["layers"] + dw}))
    aligned, unaligned = LayerSpec("a", "dwconv", 96, 96, 3, 1, 7), LayerSpec("u", "dwconv", 98, 98, 3, 1, 7)
    assert pred.predict([aligned]).total_ms == pytest.approx(0.1 + 0.015)
    assert pred.predict([unaligned]).total_ms == pytest.approx(0.1 + 0.1 + 0.1 * 32 / 64)
    only_aligned = create_predictor(Profile.from_dict({**base, "layers": base["layers"] + dw[:2]}))
    assert only_aligned.predict([unaligned]).total_ms == pytest.approx(0.1 + 0.01 + 0.01 * 34 / 64)


def test_int8_depthwise_channel_counts_have_their_own_alignment_classes():
    """int8 depthwise convs are fastest at multiples of 16, slower at other multiples of 8, slowest
    otherwise; each measured class is priced from its own entries, an unmeasured one from the nearest
    better-aligned class."""
    dw = [
        dict(op="dwconv", cin=c, cout=c, kernel=5, stride=1, h_in=14, precision="int8", latency_ms=ms)
        for c, ms in ((16, 0.016), (32, 0.019), (12, 0.031), (20, 0.033))
    ]
    base = _table_profile()
    pred = create_predictor(Profile.from_dict({**base, "layers": base["layers"] + dw}))

    def cost(channels):
        layer = LayerSpec("d", "dwconv", channels, channels, 5, 1, 14, w_bits=8, a_bits=8)
        return pred.predict([layer]).layer_ms["d"]

    assert cost(16) == pytest.approx(0.016) and cost(12) == pytest.approx(0.031)
    assert cost(28) == pytest.approx(0.033 * 28 / 20)  # the slow class, beyond its measured range: MACs
    assert cost(24) == pytest.approx(0.0175)  # no other multiple-of-8 entries: interpolated in the x16 class


def test_residual_adds_and_the_global_pool_are_priced_as_onnx_runtime_runs_them():
    """An int8 residual add between int8 layers is one QLinearAdd; a float one after a float conv is
    fused (free); one with a float side runs in float behind dequantized int8 inputs. The global pool
    before the classifier runs in float, so an int8 network dequantizes in front of it."""
    base = _table_profile(
        op_costs={
            "QLinearAdd": {"intercept_ms": 0.003, "per_mwork_ms": 0.0},
            "Add": {"intercept_ms": 0.005, "per_mwork_ms": 0.0},
            "GlobalAveragePool": {"intercept_ms": 0.007, "per_mwork_ms": 0.0},
        }
    )
    pred = create_predictor(Profile.from_dict(base))

    def net(bits, head_bits=None):
        head_bits = bits if head_bits is None else head_bits
        return [
            LayerSpec("a", "conv", 8, 32, 1, 1, 7, bits, bits),
            LayerSpec("b", "conv", 32, 32, 1, 1, 7, bits, bits),
            LayerSpec("c", "conv", 32, 32, 1, 1, 7, bits, bits, residual=2),
            LayerSpec("d", "conv", 32, 32, 1, 1, 7, head_bits, head_bits),
            LayerSpec("fc", "linear", 32, 10, 1, 1, 1),
        ]

    int8, fp32 = pred.predict(net(8)), pred.predict(net(32))
    assert int8.components["adds"] == 1 and fp32.components.get("adds", 0) == 0
    assert int8.layer_ms["c"] == pytest.approx(0.5 * 32 * 32 / 1000 + 0.003)  # the layer and its QLinearAdd
    assert fp32.layer_ms["c"] == pytest.approx(32 * 32 / 1000)  # fused into the float conv
    assert fp32.layer_ms["fc"] == pytest.approx(0.01 + 0.007)  # the classifier and the pool in front of it
    # int8 network: quantize at the input, dequantize before the float pool; the fp32 classifier needs nothing more
    assert int8.components["transitions"] == 2
    mixed = pred.predict(net(8, head_bits=32))  # the add's consumer is float: float add, both inputs dequantized
    assert mixed.layer_ms["c"] == pytest.approx(0.5 * 32 * 32 / 1000 + 0.005)
    assert mixed.components["transitions"] == 3  # quantize in; dequantize the add's two inputs


def test_local_ort_is_found_or_measured_once_stored_and_preferred_by_folder(tmp_path, monkeypatch, space):
    """local-ort: a profile of this machine (same CPU and flags, this ONNX Runtime, 1 thread, batch 1, the space)
    from the user's folders, the store or the shipped ones; where none, one measured with the real profiler (ONNX
    Runtime, fp32 and int8), with progress, written to the store, found there afterwards without measuring again."""
    from conftest import write_profile

    from nasq.hardware_profiles import local

    store, user = tmp_path / "store", tmp_path / "user"
    monkeypatch.setenv("NASQ_PROFILE_STORE", str(store))
    monkeypatch.setenv("NASQ_PROFILE_PATH", str(user))
    write_profile(user / "xeon.json", "xeon-vnni")
    two_threads = json.loads(Path(write_profile(user / "two.json")).read_text())
    two_threads["metadata"]["threads"] = 2
    (user / "two.json").write_text(json.dumps(two_threads))
    mine = json.loads(Path(write_profile(tmp_path / "mine.json")).read_text())
    monkeypatch.setattr(
        "nasq.hardware_profiles.registries.PROFILE_DIR", tmp_path / "no-shipped"
    )  # whatever CPU runs this
    assert local.find_local_profile("mobilenet-mnist") is None  # another CPU; this one at 2 threads
    logged = []
    path = local.local_profile_path(
        "mobilenet-mnist", log=logged.append, options={"repetitions": 5, "networks": 0, "sweep_seconds": 10}
    )
    assert path.parent == store and path.name.startswith("local-ort-") and path.name.endswith("-quick.json")
    assert "measuring an ONNX Runtime" in logged[0] and "profile of this machine" in logged[0]
    assert any(line.startswith("  measured ") and "layer shapes" in line for line in logged)  # progress
    assert f"stored {path}" in logged[-1] and [p.name for p in store.iterdir() if p.suffix == ".json"] == [path.name]
    prof = load_profile("local-ort")
    assert prof.measured_here() and prof.metadata["quick"] and prof.metadata["threads"] == 1
    check_measured_ort_profile(prof.data, space.profile_shapes())  # the full grid, quick or not
    logged.clear()
    assert local.local_profile_path("mobilenet-mnist", log=logged.append) == path and not logged  # found, not measured
    assert local.find_local_profile("nas-bench-201") is None  # a profile prices its own space's layers
    (user / "mine.json").write_text(json.dumps(mine))  # the user's own full profile of this machine comes first
    assert local.find_local_profile("mobilenet-mnist") == user / "mine.json"


def test_local_ort_that_cannot_be_measured_is_a_one_line_error_and_writes_nothing(tmp_path, monkeypatch):
    from nasq.hardware_profiles import local

    (tmp_path / "file").write_text("")
    monkeypatch.setenv("NASQ_PROFILE_STORE", str(tmp_path / "file" / "store"))
    monkeypatch.setattr("nasq.hardware_profiles.registries.PROFILE_DIR", tmp_path / "no-shipped")
    with pytest.raises(NasqError, match="no profile of this machine yet, and the profile store .* cannot hold one"):
        local.check_local_target("mobilenet-mnist")
    with pytest.raises(NasqError, match="set NASQ_PROFILE_STORE to a writable folder"):
        load_profile("local-ort")
    monkeypatch.setenv("NASQ_PROFILE_STORE", str(tmp_path / "store"))
    with pytest.raises(NasqError, match="unknown space 'nope'"):
        local.check_local_target("nope")
    monkeypatch.setattr(local, "ort_version", lambda: None)
    with pytest.raises(NasqError, match="ONNX Runtime is not installed"):
        local.check_local_target("mobilenet-mnist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_the_stored_kernel_regressor_predicts_what_scikit_learn_fitted():
    """The profile stores the boosted trees; nasq walks them all at once: the same prediction as scikit-learn's."""
    import math

    import numpy as np
    from sklearn.ensemble import GradientBoostingRegressor

    from nasq.hardware_profiles.kernel_model import FEATURES, KernelModel, features, fit_kernel_model

    rng = np.random.default_rng(0)
    layers = [
        LayerSpec(f"l{i}", "conv", int(rng.integers(3, 200)), int(rng.integers(3, 200)), 3, 1, int(rng.integers(4, 56)))
        for i in range(60)
    ]
    precisions = ["fp32", "int8"] * 30
    latency = [
        1e-6 * l.macs * (0.5 if p == "int8" else 1.0) * rng.uniform(0.8, 1.2) for l, p in zip(layers, precisions)
    ]
    stored = KernelModel(fit_kernel_model(layers, precisions, latency, n_estimators=40, max_depth=4))
    x = np.array([features(l, p) for l, p in zip(layers, precisions)])
    y = np.log(np.asarray(latency) / np.array([l.macs for l in layers]))
    gbr = GradientBoostingRegressor(
        n_estimators=40, max_depth=4, learning_rate=0.08, subsample=0.8, random_state=0
    ).fit(x, y)
    assert len(FEATURES) == x.shape[1]
    for layer, precision, expected in zip(layers, precisions, gbr.predict(x)):
        # (the stored thresholds are rounded to 6 decimals: a feature that close to one may take the other branch)
        assert stored.predict_ms(layer, precision) == pytest.approx(math.exp(expected) * layer.macs, rel=1e-3)
