"""Our pretrained encoder as weights the authors' Keras network loads (``--pretrained-weights``).

    ../tfenv/bin/python benchmarks/authors_tf_weights.py --code ../authors-decs/DECS \\
        --checkpoint checkpoints/usps/cpu-seed0/pretrain.pt --out ours-cpu-seed0.h5

Runs in the TensorFlow environment of ``benchmarks/authors_tf.py`` (which also imports torch).
It builds the authors' autoencoder from their ``DECS.py`` and copies our encoder into it layer
by layer: convolution kernels from PyTorch's (out, in, h, w) to Keras's (h, w, in, out), batch
norm's weight, bias and running statistics, and the embedding layer's rows from PyTorch's
(channel, row, column) flattening to Keras's (row, column, channel). The decoder keeps Keras's
initial weights: the clustering stage drops it, and its stride-2 transposed convolutions place
their outputs one pixel apart from ours (:doc:`/book/03_representation_learning`), so no copy
would be the same function. Before writing, it checks that both encoders give the same
embedding of the images of ``--dataset`` (USPS by default; evaluation mode, float32; the largest
difference is printed and must be below ``--tolerance``). Running the authors' clustering loop
from our network then separates the two codes' starts from their loops (:doc:`/book/dying_clusters`).

The other way round, ``--to-ours`` copies the encoder of their pretrained network (the
``ae_weights.h5`` that ``benchmarks/authors_tf.py --keep-weights`` kept) into ours, checks the
embeddings the same way, and writes ``{"model": state dict, "from": ...}`` for
``python -m decs train --start-from``: their start in our loop. Our decoder keeps its initial
weights there (seeded by ``--seed``), which the clustering never uses::

    ../tfenv/bin/python benchmarks/authors_tf_weights.py --code ../authors-decs/DECS --to-ours \
        --keras-weights e200-i30-keep-ae_weights.h5 --from "..." --out theirs-e200.pt
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch


BN_KEYS = ("weight", "bias", "running_mean", "running_var")  # ours, in Keras's order (γ, β, mean, variance)


def _encoder_layers(autoencoder):
    """The Keras encoder's layers paired with the indices of ours: ``[(conv, bn, c, b)]`` for the
    four blocks (our conv at c = 0, 4, 8, 12 → ReLU → batch norm at b = c + 2), then the embedding
    layer and the (H, W, C) shape that is flattened into it (our linear layer 16)."""
    convs = [layer for layer in autoencoder.layers if layer.__class__.__name__ == "Conv2D"][:4]
    norms = [layer for layer in autoencoder.layers if layer.__class__.__name__ == "BatchNormalization"][:4]
    blocks = [(conv, bn, 4 * i, 4 * i + 2) for i, (conv, bn) in enumerate(zip(convs, norms))]
    return blocks, autoencoder.get_layer("embedding"), (*convs[3].output_shape[1:3], convs[3].filters)


def copy_encoder(state: dict, autoencoder) -> None:
    """Set the Keras autoencoder's encoder layers from our ``ConvAutoencoder`` state dict."""
    blocks, dense, (h, wd, c_out) = _encoder_layers(autoencoder)
    for conv, bn, c, b in blocks:
        conv.set_weights([state[f"encoder.{c}.weight"].permute(2, 3, 1, 0).numpy(),
                          state[f"encoder.{c}.bias"].numpy()])
        bn.set_weights([state[f"encoder.{b}.{k}"].numpy() for k in BN_KEYS])
    w = state["encoder.16.weight"]                       # (10, C·H·W), flattened channel first
    w = w.reshape(-1, c_out, h, wd).permute(2, 3, 1, 0).reshape(h * wd * c_out, -1)  # rows (H, W, C)
    dense.set_weights([w.numpy(), state["encoder.16.bias"].numpy()])


def copy_encoder_to_ours(autoencoder, ours) -> None:
    """Set our ``ConvAutoencoder``'s encoder from the Keras autoencoder: the inverse of
    :func:`copy_encoder` (kernels (h, w, in, out) → (out, in, h, w); embedding rows (H, W, C) →
    our (C, H, W) flattening)."""
    blocks, dense, (h, wd, c_out) = _encoder_layers(autoencoder)
    state = {}
    for conv, bn, c, b in blocks:
        kernel, bias = conv.get_weights()
        state[f"encoder.{c}.weight"] = torch.from_numpy(kernel).permute(3, 2, 0, 1)
        state[f"encoder.{c}.bias"] = torch.from_numpy(bias)
        for k, v in zip(BN_KEYS, bn.get_weights()):
            state[f"encoder.{b}.{k}"] = torch.from_numpy(v)
    w, bias = dense.get_weights()                        # (H·W·C, 10), rows (H, W, C)
    state["encoder.16.weight"] = torch.from_numpy(w).reshape(h, wd, c_out, -1).permute(3, 2, 0, 1).reshape(
        w.shape[1], -1)
    state["encoder.16.bias"] = torch.from_numpy(bias)
    missing = ours.load_state_dict(state, strict=False).missing_keys
    left = [k for k in missing if k.startswith("encoder.") and not k.endswith("num_batches_tracked")]
    if left:
        raise RuntimeError(f"encoder entries not copied: {left}")


def _largest_difference(ours, encoder, xs) -> float:
    """The largest difference of the two encoders' embeddings of ``xs`` (evaluation mode), printed."""
    ours.eval()
    with torch.no_grad():
        z_ours = ours.encoder(xs).numpy()
    z_theirs = encoder.predict(xs.permute(0, 2, 3, 1).numpy(), verbose=0)
    diff = float(np.abs(z_ours - z_theirs).max())
    print(f"largest difference between the two encoders on {len(xs)} images: {diff:.2e} "
          f"(embeddings up to {float(np.abs(z_ours).max()):.2f})")
    return diff


def main(argv: list[str] | None = None) -> float:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--code", required=True, type=Path, help="the DECS/ folder of the authors' repository")
    p.add_argument("--checkpoint", type=Path, help="our pretrain.pt (or a model file) to copy into theirs")
    p.add_argument("--to-ours", action="store_true",
                   help="the other way: their --keras-weights into our network, for train --start-from")
    p.add_argument("--keras-weights", type=Path, help="with --to-ours: their ae_weights.h5")
    p.add_argument("--from", dest="source", default=None, help="with --to-ours: what the weights are")
    p.add_argument("--seed", type=int, default=0, help="with --to-ours: the seed of our decoder's initial weights")
    p.add_argument("--out", required=True, type=Path, help="the file to write (.h5, or .pt with --to-ours)")
    p.add_argument("--dataset", default="usps", help="whose images the network takes (usps, mnist-test, ...)")
    p.add_argument("--check", type=int, default=1024, help="images of --dataset to compare the encoders on")
    p.add_argument("--tolerance", type=float, default=1e-3)
    args = p.parse_args(argv)
    if args.to_ours and (args.keras_weights is None or args.source is None):
        raise SystemExit("--to-ours needs --keras-weights (their ae_weights.h5) and --from (what they are)")
    if not args.to_ours and args.checkpoint is None:
        raise SystemExit("give --checkpoint (ours into theirs) or --to-ours --keras-weights (theirs into ours)")
    sys.path.insert(0, str(args.code.resolve()))
    from DECS import CAE  # the authors' network, from their code (never copied here)

    from decs.data import load
    from decs.files import save_torch
    from decs.models import ConvAutoencoder

    x, _ = load(args.dataset)
    autoencoder, encoder, _ = CAE(input_shape=(x.shape[2], x.shape[3], x.shape[1]), filters=[32, 64, 128, 256, 10])
    if args.to_ours:
        torch.manual_seed(args.seed)
        ours = ConvAutoencoder(tuple(x.shape[1:]))
        autoencoder.load_weights(str(args.keras_weights))
        copy_encoder_to_ours(autoencoder, ours)
    else:
        ck = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
        state = ck.get("model", ck)
        ours = ConvAutoencoder(tuple(x.shape[1:]))
        ours.load_state_dict(state)
        copy_encoder(state, autoencoder)
    diff = _largest_difference(ours, encoder, x[: args.check])
    if not diff < args.tolerance:
        raise SystemExit(f"the encoders differ by {diff:.3g} > {args.tolerance}: the copy is wrong")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.to_ours:
        save_torch({"model": ours.state_dict(), "from": args.source,
                    "keras_weights": {"file": args.keras_weights.name,
                                      "sha256": hashlib.sha256(args.keras_weights.read_bytes()).hexdigest()},
                    "encoder_difference": diff}, args.out)
    else:
        autoencoder.save_weights(str(args.out))
    print(f"wrote {args.out}")
    return diff


if __name__ == "__main__":
    main()
