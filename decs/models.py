"""The autoencoders: the convolutional one of the authors' code, sized from the input shape,
and DEC's fully-connected one for data that are not images (:class:`MLPAutoencoder`).

Encoder (as in the authors' Keras model; each convolution is followed by ReLU, then
batch norm):

    conv3×3(32) → pool2 → conv3×3(64) → pool2 → conv3×3(128) → pool2 → conv3×3(256) → flatten → linear(10)

The fourth convolution uses 'same' padding when the side is a multiple of 8, else 'valid'
(28 → 14 → 7 → 3 → 1). The decoder mirrors it with stride-2 transposed convolutions and
a linear output layer.

One change: the authors' decoder starts from ⌊H/8⌋ and doubles the size three times, so
for 55×55 (YTF) it produces 52×52 and cannot reconstruct its input. Our decoder records
the sizes the encoder's pooling produced (55 → 27 → 13 → 6) and gives each transposed
convolution the output padding that restores exactly that size. For 16×16 and 28×28 these
are the authors' layers, shapes and parameter counts; the stride-2 transposed convolutions
place their output one pixel off Keras's 'same' (which pads after the image, ours before it);
``decoder_alignment="keras"`` places it as Keras does. Explained in
:doc:`/book/03_representation_learning`.
"""
from __future__ import annotations

import math

import torch
from torch import nn

MIN_SIDE = 8  # three 2×2 poolings need at least 8 pixels per side (7 fails, every side ≥ 8 works)
NETWORKS = ("conv", "mlp")  # the autoencoders :func:`make_autoencoder` builds
ALIGNMENTS = ("ours", "keras")  # where a stride-2 transposed convolution puts its output (:func:`_up`)


def _pooled_sizes(side: int) -> list[int]:
    """Sizes after each of the three 2×2 max-poolings (floor division, as Keras does)."""
    sizes = [side]
    for _ in range(3):
        sizes.append(sizes[-1] // 2)
    return sizes


def _conv4_padding(side: int) -> int:
    """Authors' rule: 'same' (padding 1) if side % 8 == 0, else 'valid' (padding 0).

    'valid' needs at least 3 pixels left after pooling; smaller inputs fall back to 'same'.
    """
    return 1 if side % 8 == 0 or side // 8 < 3 else 0


class KerasAlignedUp(nn.ConvTranspose2d):
    """A 3×3 stride-2 transposed convolution placed as Keras's ``Conv2DTranspose(padding='same')``
    places it: the full 2·in + 1 output, cut to ``size_out`` at its end (Keras pads the matching
    convolution after the image). Our default layer (padding 1) cuts at the start instead, which shifts
    the image by one pixel. Same weights and state-dict keys as ``nn.ConvTranspose2d``."""

    def __init__(self, cin: int, cout: int, size_out: tuple[int, int]):
        super().__init__(cin, cout, 3, stride=2, padding=0)
        self.size_out = tuple(size_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The transposed convolution of ``x``, its first ``size_out`` rows and columns."""
        return super().forward(x)[..., : self.size_out[0], : self.size_out[1]]


def _up(cin: int, cout: int, size_in: tuple[int, int], size_out: tuple[int, int],
        alignment: str = "ours") -> nn.ConvTranspose2d:
    """A 3×3 stride-2 transposed convolution taking ``size_in`` exactly to ``size_out``.

    Output side = (in − 1)·2 − 2p + 3 + output_padding = 2·in + 1 − 2p + output_padding, so
    p = 0 gives 2·in + 1 ('valid'); p = 1 with output_padding 1 gives 2·in ('same'), and with
    output_padding 0 gives 2·in − 1. Padding p = 1 drops the first row and column of the full
    2·in + 1 output; ``alignment="keras"`` keeps them and drops the last instead
    (:class:`KerasAlignedUp`), as the authors' Keras decoder does.
    """
    if alignment not in ALIGNMENTS:
        raise ValueError(f"decoder_alignment must be one of {ALIGNMENTS}, got {alignment!r}.")
    if alignment == "keras" and any(o < 2 * i + 1 for i, o in zip(size_in, size_out)):
        return KerasAlignedUp(cin, cout, size_out)
    padding, out_pad = [], []
    for i, o in zip(size_in, size_out):
        if o == 2 * i + 1:
            padding.append(0), out_pad.append(0)
        elif o in (2 * i, 2 * i - 1):
            padding.append(1), out_pad.append(o - (2 * i - 1))
        else:  # cannot happen for sizes produced by floor-halving
            raise ValueError(f"cannot upsample {i} to {o} with a stride-2 3×3 transposed convolution")
    return nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=tuple(padding), output_padding=tuple(out_pad))


def _bn(c: int) -> nn.BatchNorm2d:
    # Keras defaults (momentum 0.99 ↔ PyTorch momentum 0.01, epsilon 1e-3), as in the authors' code.
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class ConvAutoencoder(nn.Module):
    """The authors' convolutional autoencoder for images of shape ``input_shape`` = (C, H, W).

    ``decoder_alignment``: "ours" (default) or "keras", where the decoder's stride-2 transposed
    convolutions put their output (:class:`KerasAlignedUp`); the encoder is the same either way.
    ``encoder(x)`` gives the embedding z, of shape N × ``embedding_dim``; ``decoder(z)`` an image of
    the input's shape; ``forward(x)`` the reconstruction. Used in
    :doc:`/book/03_representation_learning`.
    """

    def __init__(self, input_shape: tuple[int, int, int], filters=(32, 64, 128, 256), embedding_dim: int = 10,
                 decoder_alignment: str = "ours"):
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"input_shape must be (C, H, W), got {input_shape}.")
        c, h, w = (int(v) for v in input_shape)
        if min(h, w) < MIN_SIDE:
            raise ValueError(f"images must be at least {MIN_SIDE}×{MIN_SIDE} pixels for three poolings; "
                             f"got {h}×{w}. Upsample them first (e.g. torch.nn.functional.interpolate).")
        self.input_shape = (c, h, w)
        f1, f2, f3, f4 = filters
        hs, ws = _pooled_sizes(h), _pooled_sizes(w)
        pad4 = (_conv4_padding(h), _conv4_padding(w))
        conv4_out = (hs[3] + 2 * pad4[0] - 2, ws[3] + 2 * pad4[1] - 2)

        def block(cin, cout, padding=1):
            return [nn.Conv2d(cin, cout, 3, padding=padding), nn.ReLU(), _bn(cout)]

        self.encoder = nn.Sequential(
            *block(c, f1), nn.MaxPool2d(2),
            *block(f1, f2), nn.MaxPool2d(2),
            *block(f2, f3), nn.MaxPool2d(2),
            *block(f3, f4, padding=pad4),
            nn.Flatten(),
            nn.Linear(f4 * conv4_out[0] * conv4_out[1], embedding_dim),
        )
        # The decoder starts where the third pooling ended, as the authors' does.
        self.decoder = nn.Sequential(
            nn.Linear(embedding_dim, f4 * hs[3] * ws[3]), nn.ReLU(),
            nn.Unflatten(1, (f4, hs[3], ws[3])),
            _up(f4, f3, (hs[3], ws[3]), (hs[2], ws[2]), decoder_alignment), nn.ReLU(), _bn(f3),
            _up(f3, f2, (hs[2], ws[2]), (hs[1], ws[1]), decoder_alignment), nn.ReLU(), _bn(f2),
            _up(f2, f1, (hs[1], ws[1]), (hs[0], ws[0]), decoder_alignment), nn.ReLU(), _bn(f1),
            nn.Conv2d(f1, c, 3, padding=1),  # linear output, as the authors' deconv0
        )
        self.reset_parameters()
        # channels-last activations make the convolutions 1.3–2× faster on CPU (measured in
        # benchmarks/speed.py) and suit GPUs too; results are the same up to rounding.
        self.to(memory_format=torch.channels_last)

    def reset_parameters(self) -> None:
        """Glorot-uniform weights and zero biases: the Keras defaults of the authors' code."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction decoder(encoder(x)), of the same shape as x."""
        return self.decoder(self.encoder(x))


class MLPAutoencoder(nn.Module):
    """DEC's fully-connected autoencoder :cite:p:`xie2016dec` for feature vectors of
    ``input_dim`` values: d–500–500–2000–10 and back, ReLU after every hidden layer, a linear
    embedding and a linear output (the reconstruction of data of any scale).

    ``encoder(x)`` gives the embedding z, of shape N × ``embedding_dim``; ``decoder(z)`` a vector of
    ``input_dim`` values; ``forward(x)`` the reconstruction. ``input_shape`` is ``(input_dim,)``,
    the shape of one sample, as :class:`ConvAutoencoder`'s is (C, H, W). Weights are
    Glorot-uniform with zero biases (the Keras defaults, as in DEC's Keras reimplementations and
    :class:`ConvAutoencoder`); DEC's layer-wise pretraining with dropout is not reproduced, the
    whole network is pretrained end to end as the convolutional one is. DECS and DEC use it
    for non-image data (``network="mlp"``); see :doc:`/book/04_dec_pseudo_targets`.
    """

    def __init__(self, input_dim: int, dims: tuple[int, ...] = (500, 500, 2000), embedding_dim: int = 10):
        super().__init__()
        input_dim = int(input_dim)
        if input_dim < 1:
            raise ValueError(f"input_dim must be at least 1, got {input_dim}.")
        self.input_shape = (input_dim,)
        sizes = [input_dim, *(int(d) for d in dims)]

        def stack(widths, last):
            layers = []
            for a, b in zip(widths[:-1], widths[1:]):
                layers += [nn.Linear(a, b), nn.ReLU()]
            return layers + [nn.Linear(widths[-1], last)]  # linear: embedding, or output

        self.encoder = nn.Sequential(*stack(sizes, embedding_dim))
        self.decoder = nn.Sequential(*stack([embedding_dim, *sizes[:0:-1]], input_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform weights and zero biases (Keras defaults)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction decoder(encoder(x)), of the same shape as x."""
        return self.decoder(self.encoder(x))


def make_autoencoder(network: str, input_shape: tuple[int, ...], filters=(32, 64, 128, 256),
                     embedding_dim: int = 10, decoder_alignment: str = "ours") -> ConvAutoencoder | MLPAutoencoder:
    """The autoencoder named by ``network`` for samples of shape ``input_shape``: "conv" builds
    :class:`ConvAutoencoder` (``input_shape`` = (C, H, W), ``filters``), "mlp" builds
    :class:`MLPAutoencoder` on the flattened sample (which has no ``decoder_alignment``). Used by
    :func:`decs.runs.pretrained_autoencoder`."""
    if network == "conv":
        return ConvAutoencoder(tuple(input_shape), filters, embedding_dim, decoder_alignment)
    if network == "mlp":
        return MLPAutoencoder(math.prod(input_shape), embedding_dim=embedding_dim)
    raise ValueError(f"network must be one of {NETWORKS}, got {network!r}.")
