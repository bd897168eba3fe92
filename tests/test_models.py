"""Tests of decs.models: the authors' convolutional autoencoder, sized from the input shape, and
DEC's fully-connected one."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from decs.models import MIN_SIDE, ConvAutoencoder, MLPAutoencoder, make_autoencoder


pytestmark = pytest.mark.usefixtures("one_thread")


def _spatial_sizes(model: ConvAutoencoder, x: torch.Tensor):
    """(H, W) after every max-pooling and convolution of the encoder, and after every transposed
    convolution of the decoder, recorded with forward hooks."""
    sizes = {"pool": [], "conv": [], "up": []}
    hooks = []
    for m in model.encoder:
        kind = "pool" if isinstance(m, nn.MaxPool2d) else "conv" if isinstance(m, nn.Conv2d) else None
        if kind:
            hooks.append(m.register_forward_hook(lambda mod, i, o, kind=kind: sizes[kind].append(tuple(o.shape[-2:]))))
    for m in model.decoder:
        if isinstance(m, nn.ConvTranspose2d):
            hooks.append(m.register_forward_hook(lambda mod, i, o: sizes["up"].append(tuple(o.shape[-2:]))))
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return sizes


@pytest.mark.parametrize("shape", [(1, 16, 16), (1, 28, 28), (3, 55, 55), (1, 8, 8), (1, 20, 24), (2, 24, 17)])
def test_shapes_embedding_and_exact_reconstruction(shape):
    torch.manual_seed(0)
    model = ConvAutoencoder(shape)
    x = torch.rand(2, *shape)
    model.eval()
    with torch.no_grad():
        z = model.encoder(x)
        assert z.shape == (2, 10)
        assert model(x).shape == x.shape
        assert model.decoder(z).shape == x.shape
    assert model.input_shape == shape


def test_mnist_sized_network_has_the_authors_layer_sizes():
    model = ConvAutoencoder((1, 28, 28))
    s = _spatial_sizes(model, torch.rand(2, 1, 28, 28))
    assert s["pool"] == [(14, 14), (7, 7), (3, 3)]
    assert s["conv"] == [(28, 28), (14, 14), (7, 7), (1, 1)]  # conv4 'valid': 3 → 1
    assert s["up"] == [(7, 7), (14, 14), (28, 28)]             # authors' deconv3 'valid': 3 → 7
    convs = [m for m in model.encoder if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [32, 64, 128, 256]
    assert [m.padding for m in convs] == [(1, 1)] * 3 + [(0, 0)]
    assert all(m.kernel_size == (3, 3) for m in convs)
    lin_enc, lin_dec = model.encoder[-1], model.decoder[0]
    assert (lin_enc.in_features, lin_enc.out_features) == (256 * 1 * 1, 10)
    assert (lin_dec.in_features, lin_dec.out_features) == (10, 256 * 3 * 3)  # Dense(⌊28/8⌋²·256)


def test_usps_sized_network_has_the_authors_layer_sizes():
    model = ConvAutoencoder((1, 16, 16))
    s = _spatial_sizes(model, torch.rand(2, 1, 16, 16))
    assert s["pool"] == [(8, 8), (4, 4), (2, 2)]
    assert s["conv"] == [(16, 16), (8, 8), (4, 4), (2, 2)]  # conv4 'same': 2 → 2
    assert s["up"] == [(4, 4), (8, 8), (16, 16)]
    assert model.encoder[-1].in_features == 256 * 2 * 2
    assert model.decoder[0].out_features == 256 * 2 * 2
    # parameter count of the authors' Keras model for 16×16×1 (conv/deconv/dense/BN, computed
    # layer by layer here): the same layers give the same number
    convs = [(1, 32), (32, 64), (64, 128), (128, 256)]
    n = sum(9 * a * b + b for a, b in convs)              # conv1..conv4
    n += sum(2 * b for _, b in convs)                     # BN γ, β of the encoder
    n += 1024 * 10 + 10 + 10 * 1024 + 1024                # embedding, decoder dense
    n += sum(9 * a * b + b + 2 * b for a, b in [(256, 128), (128, 64), (64, 32)])  # deconv3..1 + BN
    n += 9 * 32 * 1 + 1                                   # deconv0 (3×3, stride 1)
    assert sum(p.numel() for p in model.parameters()) == n


def test_ytf_sized_network_uses_valid_convolution_and_restores_55():
    s = _spatial_sizes(ConvAutoencoder((3, 55, 55)), torch.rand(1, 3, 55, 55))
    assert s["pool"] == [(27, 27), (13, 13), (6, 6)]
    assert s["conv"][-1] == (4, 4)
    assert s["up"] == [(13, 13), (27, 27), (55, 55)]


def test_encoder_order_is_conv_relu_batchnorm():
    types = [type(m) for m in ConvAutoencoder((1, 16, 16)).encoder]
    assert types[:4] == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d, nn.MaxPool2d]
    assert types[-3:] == [nn.BatchNorm2d, nn.Flatten, nn.Linear]
    assert isinstance(ConvAutoencoder((1, 16, 16)).decoder[-1], nn.Conv2d)  # linear output layer


@pytest.mark.parametrize("shape", [(1, 7, 7), (1, 7, 16), (3, 16, 5), (16, 16)])
def test_too_small_or_malformed_input_raises(shape):
    with pytest.raises(ValueError):
        ConvAutoencoder(shape)


def test_batch_norm_matches_keras_defaults():
    model = ConvAutoencoder((1, 16, 16))
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    enc = [m for m in model.encoder if isinstance(m, nn.BatchNorm2d)]
    dec = [m for m in model.decoder if isinstance(m, nn.BatchNorm2d)]
    # one after each of conv1-4 and of deconv3-1, as in the authors' Keras model
    assert (len(enc), len(dec), len(bns)) == (4, 3, 7)
    for m in bns:
        assert m.momentum == pytest.approx(0.01)  # Keras momentum 0.99 = PyTorch 1 − 0.99
        assert m.eps == pytest.approx(1e-3)


def test_glorot_init_zero_bias():
    model = ConvAutoencoder((1, 16, 16))
    lin = model.encoder[-1]
    bound = (6 / (lin.in_features + lin.out_features)) ** 0.5
    assert lin.weight.abs().max() <= bound and lin.weight.abs().max() > 0.8 * bound
    assert all(float(m.bias.detach().abs().max()) == 0 for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)))


def test_a_few_adam_steps_reduce_the_reconstruction_error():
    torch.manual_seed(0)
    model = ConvAutoencoder((1, 16, 16))
    x = torch.rand(16, 1, 16, 16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), x)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = float(nn.functional.mse_loss(model(x), x))
    assert torch.isfinite(torch.tensor(losses)).all()
    assert final < 0.5 * losses[0], (final, losses)
    # every parameter took part
    assert all(p.grad is not None for p in model.parameters())


def test_min_side_is_the_smallest_image_the_conv_network_takes():
    ConvAutoencoder((1, MIN_SIDE, MIN_SIDE))(torch.rand(2, 1, MIN_SIDE, MIN_SIDE))
    with pytest.raises(ValueError, match=f"at least {MIN_SIDE}"):
        ConvAutoencoder((1, MIN_SIDE - 1, MIN_SIDE))


def test_mlp_has_decs_layer_sizes():
    model = MLPAutoencoder(784)
    linear = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    assert linear == [(784, 500), (500, 500), (500, 2000), (2000, 10),
                      (10, 2000), (2000, 500), (500, 500), (500, 784)]
    # ReLU after every hidden layer; the embedding and the output are linear
    assert isinstance(model.encoder[-1], nn.Linear) and isinstance(model.decoder[-1], nn.Linear)
    assert sum(isinstance(m, nn.ReLU) for m in model.encoder) == 3
    assert sum(isinstance(m, nn.ReLU) for m in model.decoder) == 3
    assert model.input_shape == (784,)


def test_mlp_shapes_and_any_scale():
    model = MLPAutoencoder(7, dims=(16, 8), embedding_dim=3)
    x = torch.randn(5, 7) * 100
    assert model.encoder(x).shape == (5, 3) and model(x).shape == x.shape
    for m in model.modules():
        if isinstance(m, nn.Linear):
            assert torch.count_nonzero(m.bias) == 0  # Glorot weights, zero biases


def test_make_autoencoder():
    assert isinstance(make_autoencoder("conv", (1, 8, 8)), ConvAutoencoder)
    mlp = make_autoencoder("mlp", (1, 8, 8), embedding_dim=4)  # a sample's shape, flattened
    assert isinstance(mlp, MLPAutoencoder) and mlp.input_shape == (64,) and mlp.encoder[-1].out_features == 4
    with pytest.raises(ValueError, match="network must be one of"):
        make_autoencoder("cnn", (1, 8, 8))


@pytest.mark.parametrize("side", [16, 28, 55])
def test_the_keras_aligned_decoder_has_our_shapes_keys_and_parameters(side):
    ours = ConvAutoencoder((1, side, side))
    keras = ConvAutoencoder((1, side, side), decoder_alignment="keras")
    assert list(ours.state_dict()) == list(keras.state_dict())
    assert [v.shape for v in ours.state_dict().values()] == [v.shape for v in keras.state_dict().values()]
    x = torch.randn(2, 1, side, side)
    assert keras.eval()(x).shape == x.shape


def test_the_keras_alignment_is_ours_shifted_by_one_pixel():
    """The same weights give the same image, one pixel apart: Keras keeps the first row and column
    of the full 2·in + 1 output and drops the last, ours the other way round."""
    from decs.models import _up

    torch.manual_seed(0)
    ours, keras = _up(4, 3, (5, 5), (10, 10)), _up(4, 3, (5, 5), (10, 10), "keras")
    keras.load_state_dict(ours.state_dict())
    x = torch.randn(2, 4, 5, 5)
    a, b = ours(x), keras(x)
    assert a.shape == b.shape == (2, 3, 10, 10)
    assert torch.allclose(b[..., 1:, 1:], a[..., :-1, :-1], atol=1e-6)
    assert not torch.allclose(a, b, atol=1e-3)
    with pytest.raises(ValueError, match="decoder_alignment"):
        _up(4, 3, (5, 5), (10, 10), "tf")


def test_the_default_alignment_keeps_older_pretraining_keys_and_names():
    from decs.config import get_config
    from decs.runs import pretrain_key, pretraining_name

    cfg = get_config("cpu")
    assert "decoder_alignment" not in pretrain_key(cfg, 0, 100, (1, 16, 16))
    keras = cfg.replace(decoder_alignment="keras")
    assert pretrain_key(keras, 0, 100, (1, 16, 16))["decoder_alignment"] == "keras"
    assert "network" not in pretrain_key(cfg, 0, 100, (1, 16, 16))
    assert pretrain_key(cfg, 0, 100, (1, 16, 16), network="mlp")["network"] == "mlp"
    assert pretraining_name(cfg, 0) == "cpu-seed0"
    assert pretraining_name(keras, 0) == "cpu-seed0+decoder_alignment=keras"
