import pytest
import torch

from nasq.compress import (
    FLOAT_BITS,
    ActivationQuantizer,
    QuantConvBNAct,
    apply_bits,
    bake_weights,
    distinct_levels,
    fake_quantize_weight,
    fold_batchnorm,
    prune_channels,
    quant_layers,
)


@pytest.mark.parametrize("bits", [2, 4, 6, 8])
def test_weight_levels_per_bit_width(bits):
    torch.manual_seed(0)
    w = torch.randn(8, 64, 3, 3)
    q = fake_quantize_weight(w, bits)
    assert q.shape == w.shape
    for row in q.reshape(8, -1):
        n = distinct_levels(row.tolist())
        assert n <= 2**bits - 1  # symmetric: -(2^(b-1)-1) .. 2^(b-1)-1
        assert n >= min(2**bits - 1, 3)
    assert torch.equal(fake_quantize_weight(w, FLOAT_BITS), w)


@pytest.mark.parametrize("bits", [2, 4, 6, 8])
def test_activation_levels_per_bit_width(bits):
    torch.manual_seed(0)
    quant = ActivationQuantizer(bits)
    x = torch.randn(4, 16, 8, 8) * 3
    quant.train()
    quant(x)
    quant.eval()
    y = quant(x)
    assert y.shape == x.shape
    assert 2**bits // 2 < distinct_levels(y.flatten().tolist()) <= 2**bits
    # export mode (plain arithmetic, any bit-width exports to ONNX) computes the same values
    quant.export_mode = True
    assert torch.allclose(quant(x), y, atol=1e-6)


def test_fold_batchnorm_preserves_outputs(space):
    torch.manual_seed(0)
    model = space.build(space.sample(0))
    model.train()
    for _ in range(3):
        model(torch.randn(16, 1, 28, 28))
    model.eval()
    x = torch.randn(4, 1, 28, 28)
    before = model(x)
    fold_batchnorm(model)
    assert torch.allclose(model(x), before, atol=1e-4)


def test_pruning_removes_channels_and_keeps_shapes(space):
    cand = space.sample(5)
    model = space.build(cand)
    layer = "blocks.s0b0.expand"
    n = quant_layers(model)[layer].conv.out_channels
    prune_channels(model, {layer: 0.5}, torch.zeros(1, 1, 28, 28))
    layers = quant_layers(model)
    assert layers[layer].conv.out_channels == n - n // 2
    assert layers["blocks.s0b0.dw"].conv.in_channels == layers[layer].conv.out_channels
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    with pytest.raises(ValueError, match="not in"):
        prune_channels(model, {layer: 1.0}, torch.zeros(1, 1, 28, 28))


def test_apply_bits_requires_every_layer(space):
    model = space.build(space.sample(0))
    names = list(quant_layers(model))
    with pytest.raises(ValueError, match="missing"):
        apply_bits(model, {n: 8 for n in names[1:]}, {n: 8 for n in names})
    with pytest.raises(ValueError, match="not supported"):
        apply_bits(model, {n: 3 if i else 9 for i, n in enumerate(names)}, {n: 8 for n in names})


def test_bake_weights_moves_quantization_into_the_weights():
    torch.manual_seed(0)
    layer = QuantConvBNAct(4, 8, 3)
    layer.w_bits = 4
    model = torch.nn.Sequential(layer)
    bake_weights(model)
    assert layer.w_bits == FLOAT_BITS
    for row in layer.conv.weight.detach().reshape(8, -1):
        assert distinct_levels(row.tolist()) <= 15
