from fractions import Fraction

import pytest
import torch

from nasq import supernet
from nasq.accuracy import ESTIMATES
from nasq.config import config_from_dict
from nasq.data import load_mnist
from nasq.errors import NasqError
from nasq.spaces import create_space


@pytest.fixture(scope="module")
def space():
    return create_space("mobilenet-mnist")


def test_every_candidate_is_a_slice_of_the_largest(space):
    big = space.build_pruned(space.supernet_candidate())
    weights = dict(big.named_parameters())
    for seed in range(5):
        cand = space.sample(seed=seed)
        sub = space.build_pruned(cand)
        views = supernet.inherit(sub, weights)
        assert {k: v.shape for k, v in views.items()} == {k: p.shape for k, p in sub.named_parameters()}
        # pruned widths are what the latency predictors price
        convs = {l.name: l for l in space.layers(cand)}
        assert sub.blocks["s0b0"].expand.conv.out_channels == convs["blocks.s0b0.expand"].cout


def test_kernels_are_centred_crops_and_gradients_reach_the_supernet():
    source = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).reshape(2, 1, 5, 5).requires_grad_()
    crop = supernet._slice(source, torch.Size([1, 1, 3, 3]))
    assert torch.equal(crop.detach(), source.detach()[:1, :, 1:4, 1:4])
    crop.sum().backward()
    assert source.grad[0, 0, 1:4, 1:4].eq(1).all() and source.grad.sum() == 9
    with pytest.raises(ValueError, match="needs"):
        supernet._slice(source, torch.Size([3, 1, 5, 5]))


def test_a_network_outside_the_supernet_is_refused(space):
    sub = space.build_pruned(space.sample(seed=0))
    with pytest.raises(NasqError, match="not one of its sub-networks"):
        supernet.inherit(sub, {})


def test_training_the_supernet_makes_inherited_weights_accurate(space):
    data = load_mnist()
    untrained, _ = supernet.train_supernet(space, data, epochs=0, qat_epochs=0, batch_size=64, lr=0.01, seed=0)
    trained, seconds = supernet.train_supernet(
        space, data, epochs=0.6, qat_epochs=0.1, batch_size=64, lr=0.01, seed=0, log=lambda m: None
    )
    assert seconds > 0
    cand = space.sample(seed=11)
    cand = {k: (8 if k.endswith(("w_bits", "a_bits")) else v) for k, v in cand.items()}
    before = supernet.evaluate(space, cand, untrained, data, seed=0, bn_samples=256)
    after = supernet.evaluate(space, cand, trained, data, seed=0, bn_samples=256)
    assert before < 0.2 and after > before + 0.2, (before, after)
    # supernet-finetune: a short quantization-aware fine-tune from inherited weights helps further
    tuned = supernet.evaluate(space, cand, trained, data, seed=0, bn_samples=256, finetune_epochs=0.5)
    assert tuned > after + 0.05, (after, tuned)


def test_checkpoints_round_trip_and_refuse_other_settings(tmp_path, space):
    weights = {k: v.detach() for k, v in space.build_pruned(space.supernet_candidate()).named_parameters()}
    path = tmp_path / "s.pt"
    supernet.save(path, weights, {"fingerprint": "abc", "space": space.name, "train_seconds": 1.0})
    loaded, meta = supernet.load(path, "abc")
    assert meta["space"] == space.name and all(torch.equal(loaded[k], weights[k]) for k in weights)
    with pytest.raises(NasqError, match="trained for space 'mobilenet-mnist' with other settings"):
        supernet.load(path, "other")
    (tmp_path / "bad.pt").write_text("not torch")
    with pytest.raises(NasqError, match="is not a nasq supernet checkpoint"):
        supernet.load(tmp_path / "bad.pt", "abc")
    # a checkpoint holding any other object (what a malicious pickle needs) is never unpickled
    torch.save({"format": supernet.FORMAT, "meta": "{}", "weights": {}, "x": Fraction(1, 3)}, tmp_path / "evil.pt")
    with pytest.raises(NasqError, match="is not a nasq supernet checkpoint"):
        supernet.load(tmp_path / "evil.pt", "abc")
    with pytest.raises(NasqError, match="does not exist"):
        supernet.load(tmp_path / "none.pt", "abc")


def test_estimate_refuses_a_checkpoint_from_another_config_and_spaces_without_supernets(tmp_path, space):
    data = load_mnist()
    small = config_from_dict(
        {"accuracy": {"estimate": "supernet", "supernet_epochs": 0.0, "supernet_qat_epochs": 0.05}}
    ).accuracy
    record = ESTIMATES.create("supernet", config=small).prepare(
        space, data, run_dir=tmp_path, seed=0, log=lambda m: None
    )
    assert (tmp_path / "supernet.pt").exists() and record["reused"] is False
    again = ESTIMATES.create("supernet", config=small).prepare(
        space, data, run_dir=tmp_path, seed=0, log=lambda m: None
    )
    assert again["reused"] is True  # a resumed run does not train it twice
    est = ESTIMATES.create("supernet", config=small, run_dir=tmp_path).run(space, space.sample(seed=2), data, seed=0)
    assert 0.0 <= est.score <= 1.0 and est.accuracy == est.score and est.cost_s > 0
    other = config_from_dict(
        {"accuracy": {"estimate": "supernet", "supernet_epochs": 3.0, "supernet_path": str(tmp_path / "supernet.pt")}}
    ).accuracy
    with pytest.raises(NasqError, match="with other settings"):
        ESTIMATES.create("supernet", config=other).prepare(space, data, run_dir=tmp_path / "x", seed=0)
    with pytest.raises(NasqError, match="does not support weight sharing"):
        ESTIMATES.create("supernet", config=small).prepare(
            create_space("nas-bench-201"), data, run_dir=tmp_path, seed=0
        )


def test_sensitivity_table_prices_bit_policies_additively_and_is_cached(tmp_path, space):
    from nasq.sensitivity import sensitivity_table
    from nasq.spaces.base import with_uniform_bits

    data = load_mnist()
    weights, _ = supernet.train_supernet(space, data, epochs=0.4, qat_epochs=0.0, batch_size=64, lr=0.01, seed=0)
    cand = space.sample(seed=4)
    table = sensitivity_table(space, cand, weights, data, seed=0, samples=128, bn_samples=256)
    layers = [l.name for l in space.layers(cand)]
    assert {(n, k, b) for n in layers for k in "wa" for b in (2, 4, 6, 8)} == set(table.changes)
    two = sum(table.changes[(n, "w", 2)] for n in layers)
    eight = sum(table.changes[(n, "w", 8)] for n in layers)
    assert two > eight  # 2-bit weights hurt more than 8-bit ones
    w = space.per_layer(with_uniform_bits(cand, 4), "w_bits")
    a = space.per_layer(with_uniform_bits(cand, 32), "a_bits")
    assert table.predicted_loss(w, a) == pytest.approx(
        table.float_loss + sum(table.changes[(n, "w", 4)] for n in layers)
    )

    cfg = config_from_dict(
        {
            "accuracy": {
                "estimate": "sensitivity",
                "supernet_epochs": 0.0,
                "supernet_qat_epochs": 0.05,
                "bn_samples": 128,
            }
        }
    ).accuracy
    ESTIMATES.create("sensitivity", config=cfg).prepare(space, data, run_dir=tmp_path, seed=0, log=lambda m: None)
    estimate = ESTIMATES.create("sensitivity", config=cfg, run_dir=tmp_path)
    first = estimate.run(space, with_uniform_bits(cand, 8), data, seed=0)
    again = estimate.run(space, with_uniform_bits(cand, 2), data, seed=0)  # same architecture: from the cache
    assert again.cost_s < first.cost_s / 10 and again.score < first.score and first.accuracy is None
