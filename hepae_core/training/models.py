"""Fully connected autoencoders built from the ``model`` section of a job config."""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn

_ACTIVATIONS = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
}


class AutoEncoder(nn.Module):
    """An encoder and a decoder of linear layers; ``forward`` returns the reconstruction."""

    def __init__(self, encoder: nn.Sequential, decoder: nn.Sequential) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def _stack(
    widths: list[int],
    activation: str,
    batch_norm: bool,
    dropout: float,
    last_activation: bool,
) -> nn.Sequential:
    layers: list[nn.Module] = []
    pairs = list(itertools.pairwise(widths))
    for i, (n_in, n_out) in enumerate(pairs):
        layers.append(nn.Linear(n_in, n_out))
        if i == len(pairs) - 1 and not last_activation:
            break
        if batch_norm:
            layers.append(nn.BatchNorm1d(n_out))
        layers.append(_ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def layer_widths(model_cfg: dict[str, Any], n_inputs: int) -> tuple[list[int], list[int]]:
    """Encoder widths (input to latent) and decoder widths (latent to output)."""
    encoder = list(model_cfg["encoder"])
    decoder = model_cfg["decoder"]
    decoder = list(reversed(encoder)) if decoder is None else list(decoder)
    latent = model_cfg["latent"]
    return [n_inputs, *encoder, latent], [latent, *decoder, n_inputs]


def build_model(model_cfg: dict[str, Any], n_inputs: int) -> AutoEncoder:
    """Build the autoencoder a resolved ``model`` section describes.

    The encoder's last layer is the latent layer; it has an activation only when
    ``latent_activation`` is true. The decoder's output layer never has one.
    """
    enc_w, dec_w = layer_widths(model_cfg, n_inputs)
    common = {
        "activation": model_cfg["activation"],
        "batch_norm": model_cfg["batch_norm"],
        "dropout": float(model_cfg["dropout"]),
    }
    encoder = _stack(enc_w, last_activation=model_cfg["latent_activation"], **common)
    decoder = _stack(dec_w, last_activation=False, **common)
    return AutoEncoder(encoder, decoder)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe(model_cfg: dict[str, Any], n_inputs: int) -> str:
    """Layer widths as the thesis wrote them, e.g. ``4-200-100-50-3-50-100-200-4``."""
    enc_w, dec_w = layer_widths(model_cfg, n_inputs)
    return "-".join(str(w) for w in enc_w + dec_w[1:])
