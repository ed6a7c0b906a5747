import math

import numpy as np
import pytest
import torch

from nasq.accuracy import (
    COUNT_BASELINES,
    ESTIMATES,
    ZERO_COST_PROXIES,
    AccuracyEstimate,
    Estimate,
    EstimateError,
    layer_counts,
    proxy_batch,
)
from nasq.config import config_from_dict
from nasq.data import load_mnist
from nasq.proxies import PROXIES, compressed_at_init, naswot, proxy_score, synflow
from nasq.spaces import create_space
from nasq.spaces.base import with_uniform_bits
from nasq.spaces.mobilenet import PRUNE_RATIOS


@pytest.fixture(scope="module")
def space():
    return create_space("mobilenet-mnist")


@pytest.fixture(scope="module")
def batch():
    return proxy_batch(load_mnist().train, 32, seed=0)


def test_every_proxy_and_baseline_is_registered():
    assert set(PROXIES) == set(ZERO_COST_PROXIES)
    for name in (*ZERO_COST_PROXIES, *COUNT_BASELINES, "short-training"):
        assert name in ESTIMATES


@pytest.mark.parametrize("name", ZERO_COST_PROXIES)
def test_proxies_score_compressed_candidates_deterministically(space, batch, name):
    cand = space.sample(seed=3)
    first = proxy_score(name, space, cand, *batch, seed=0)
    assert math.isfinite(first)
    assert proxy_score(name, space, cand, *batch, seed=0) == pytest.approx(first, rel=1e-5)


def _pruned(cand, ratio):
    return {k: (ratio if k.endswith(".prune") else v) for k, v in cand.items()}


@pytest.mark.parametrize("name", ["synflow", "snip", "grad-norm"])
def test_heavy_pruning_lowers_saliency_proxies(space, batch, name):
    # the same architecture with half its channels pruned away has fewer, and no larger, saliencies
    cand = with_uniform_bits(space.sample(seed=5), 32)
    dense = proxy_score(name, space, _pruned(cand, 0.0), *batch, seed=0)
    pruned = proxy_score(name, space, _pruned(cand, max(PRUNE_RATIOS)), *batch, seed=0)
    assert pruned < dense, (name, dense, pruned)


def test_synflow_leaves_the_model_unchanged(space, batch):
    model = compressed_at_init(space, space.sample(seed=1), batch[0], seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    synflow(model, torch.from_numpy(batch[0]), torch.from_numpy(batch[1]))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_dead_network_is_refused_not_ranked(space, batch):
    model = compressed_at_init(space, space.sample(seed=1), batch[0], seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # every activation pattern identical: a singular NASWOT kernel
    assert naswot(model, torch.from_numpy(batch[0]), torch.from_numpy(batch[1])) == -math.inf

    class Dead(AccuracyEstimate):
        def estimate(self, space, candidate, data, *, seed):
            return Estimate(float("nan"), 0.1)

    with pytest.raises(EstimateError, match="dead-one score is nan"):
        Dead(None).run(space, {}, None, seed=0, name="dead-one")


def test_count_baselines_and_proxy_estimates_through_the_registry(space):
    cfg = config_from_dict({"accuracy": {"proxy_batch_size": 16}}).accuracy
    data = load_mnist()
    cand = space.sample(seed=2)
    counts = layer_counts(space.layers(cand))
    for name in COUNT_BASELINES:
        est = ESTIMATES.create(name, config=cfg).run(space, cand, data, seed=0, name=name)
        assert est.score == counts[name] and est.accuracy is None and est.cost_s >= 0
    est = ESTIMATES.create("zico", config=cfg).run(space, cand, data, seed=0, name="zico")
    assert math.isfinite(est.score) and est.accuracy is None and 0 < est.cost_s < 60


def test_proxy_batch_is_seeded_real_data():
    split = load_mnist().train
    x1, y1 = proxy_batch(split, 16, seed=4)
    x2, _ = proxy_batch(split, 16, seed=4)
    assert np.array_equal(x1, x2) and x1.shape == (16, 1, 28, 28) and set(y1) <= set(range(10))


def test_accuracy_predictor_learns_what_bits_and_size_do(space):
    from scipy.stats import kendalltau

    from nasq.accuracy_predictor import AccuracyPredictor, CandidateEncoder

    cands = [space.sample(seed=100 + i) for i in range(160)]

    def synthetic(c):  # a known rule: low-bit layers cost accuracy, capacity adds some
        layers = space.layers(c)
        return (
            0.9
            - 0.05 * sum(min(l.w_bits, l.a_bits) <= 2 for l in layers)
            + 0.01 * math.log(sum(l.params for l in layers))
        )

    scores = [synthetic(c) for c in cands]
    predictor = AccuracyPredictor(space, seed=0).fit(cands[:120], scores[:120])
    tau = kendalltau(predictor.predict(cands[120:]), scores[120:]).statistic
    assert tau > 0.7, tau
    encoder = CandidateEncoder(space)
    shallow = next(c for c in cands if c["s0.depth"] == 1)
    assert encoder.encode(shallow).shape == (len(encoder.names),)  # absent blocks are encoded, not dropped
    with pytest.raises(Exception, match="at least 8 scored candidates"):
        AccuracyPredictor(space).fit(cands[:5], scores[:5])
    with pytest.raises(Exception, match="not fitted"):
        AccuracyPredictor(space).predict(cands[:1])


def test_accuracy_predictor_answers_on_the_score_scale_and_keeps_the_order(space):
    from nasq.accuracy_predictor import AccuracyPredictor

    cands = [space.sample(seed=300 + i) for i in range(40)]
    scores = [0.9 + 0.001 * i for i in range(36)] + [0.1] * 4  # dead networks at chance: tied worst scores
    scores[5] = scores[6]  # a tie among the others
    predictor = AccuracyPredictor(space, seed=0).fit(cands, scores)
    predicted = predictor.predict(cands)
    assert predicted.min() > 0.05 and predicted.max() < 1.0  # scores, not ranks in (0, 1)
    ranks = np.linspace(-0.5, 1.5, 401)  # beyond the best and worst seen, too
    mapped = predictor.to_score(ranks)
    assert np.all(np.diff(mapped) > 0)  # strictly increasing: no two ranks collapse onto one score
    assert mapped[-1] > max(scores) and mapped[0] < min(scores)
    assert np.isfinite(predicted).all()
    assert predictor.to_score(np.array([(2.5 - 0.5) / 40]))[0] == pytest.approx(
        0.1, abs=1e-5
    )  # the tied worst rank is their score


def test_accuracy_predictor_upper_bound_is_wider_far_from_what_it_was_fitted_on():
    from nasq.accuracy_predictor import AccuracyPredictor

    nb201 = create_space("nas-bench-201")
    # fitted only on cells without a 3x3 convolution: the known rule is that 1x1 convolutions help
    known = [c for c in (nb201.sample(seed=i) for i in range(400)) if "nor_conv_3x3" not in c.values()][:60]
    scores = [sum(v == "nor_conv_1x1" for v in c.values()) + 0.1 * (c["edge0_3"] == "skip_connect") for c in known]
    predictor = AccuracyPredictor(nb201, seed=0).fit(known, scores)
    unknown = [nb201.validate({k: "nor_conv_3x3" for k in known[0]}), nb201.sample(seed=10_000)]
    x = predictor.encoder.encode_all(known[:5] + unknown)
    mean, upper = predictor.upper_bound(x, kappa=0.0), predictor.upper_bound(x, kappa=2.0)
    assert np.all(upper > mean)
    assert (upper - mean)[5] > 2 * (upper - mean)[:5].max()  # all 3x3 convolutions: unlike anything fitted
    assert np.corrcoef(mean[:5], scores[:5])[0, 1] > 0.9  # near the fitted rows, the mean follows them


def test_accuracy_predictor_upper_bound_sees_a_feature_rare_among_the_candidates():
    """A feature constant in every fitted row (no live 3x3 convolution) but present in a few of the candidates
    being ranked: standardized over the fitted rows alone it weighs nothing; over the candidates too, a candidate
    that has it is far from everything fitted, and its bound the widest."""
    from nasq.accuracy_predictor import AccuracyPredictor

    nb201 = create_space("nas-bench-201")
    cells = [nb201.sample(seed=i) for i in range(3000)]
    dead = [c for c in cells if nb201.features(c)["live_edges_nor_conv_3x3"] == 0]  # 3x3 convolutions, if any, dead
    known = dead[:60]
    noise = np.random.default_rng(0).normal(0.0, 0.5, len(known))  # measured scores are noisy
    scores = [sum(v == "nor_conv_1x1" for v in c.values()) + e for c, e in zip(known, noise)]
    predictor = AccuracyPredictor(nb201, seed=0).fit(known, scores)
    plain = dead[60:260]
    novel = [
        c
        for c in cells
        if list(c.values()).count("nor_conv_3x3") == 1 and nb201.features(c)["live_edges_nor_conv_3x3"] == 1
    ][:3]
    x = predictor.encoder.encode_all(plain + novel)

    # kappa large: the bound is mostly the deviation
    wide = np.argsort(-predictor.upper_bound(x, kappa=10.0, among=x))[:3]
    assert sorted(wide) == [len(plain), len(plain) + 1, len(plain) + 2]  # the three with a live 3x3 convolution
    narrow = np.argsort(-predictor.upper_bound(x, kappa=10.0))[:3]  # standardized over the fitted rows only
    assert sorted(narrow) != sorted(wide)


def test_fidelities_scale_only_the_estimates_training():
    from nasq.accuracy import at_fidelity, fidelities

    cfg = config_from_dict(
        {
            "accuracy": {
                "train_epochs": 3.0,
                "finetune_epochs": 1.5,
                "schedule": "asha",
                "rungs": 3,
                "reduction_factor": 3,
            }
        }
    ).accuracy
    assert fidelities(cfg) == pytest.approx([1 / 9, 1 / 3, 1.0])
    low = at_fidelity(cfg, 1 / 3)
    assert (low.train_epochs, low.finetune_epochs, low.lr) == pytest.approx((1.0, 0.5, cfg.lr))
    tuned = at_fidelity(
        config_from_dict(
            {"accuracy": {"estimate": "supernet-finetune", "finetune_epochs": 0.9, "supernet_epochs": 4.0}}
        ).accuracy,
        1 / 3,
    )
    assert (tuned.finetune_epochs, tuned.supernet_epochs) == pytest.approx((0.3, 4.0))  # the supernet is shared
    assert fidelities(config_from_dict({}).accuracy) == [1.0]
