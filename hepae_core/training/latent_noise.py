"""Quantisation-aware training: uniform noise of one quantisation step on the latent.

``train.latent_noise_bits: k`` makes the training steps (not validation) add, to each
latent value, uniform noise in [-s/2, s/2] with ``s`` = the batch's range of that latent
dimension / 2**k: what rounding the latent to ``k`` bits over its range does, so the
decoder learns to tolerate the codec's quantisation (docs/compression.md). With
``train.latent_noise_epochs: N`` only the last N epochs are noisy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class LatentNoise(nn.Module):
    """``decode(encode(x) + noise)`` while ``active()``; the plain model otherwise."""

    def __init__(self, model: nn.Module, bits: int, active: Callable[[], bool]) -> None:
        super().__init__()
        self.model: Any = model  # an AutoEncoder (encode, decode)
        self.bits = int(bits)
        self.active = active

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.active():
            y: torch.Tensor = self.model(x)
            return y
        z = self.model.encode(x)
        # the batch's range stands in for the training range the codec stores; detached:
        # the noise scale is not something to learn
        span = (z.max(dim=0).values - z.min(dim=0).values).detach()
        step = span / 2**self.bits
        noisy: torch.Tensor = self.model.decode(z + (torch.rand_like(z) - 0.5) * step)
        return noisy


def wrap(
    forward: nn.Module, model: nn.Module, tcfg: dict[str, Any], epoch: Callable[[], int]
) -> nn.Module:
    """The training forward with latent noise when ``train.latent_noise_bits`` is set."""
    bits = tcfg.get("latent_noise_bits")
    if not bits:
        return forward
    epochs = int(tcfg["epochs"])
    last = tcfg.get("latent_noise_epochs") or epochs
    return LatentNoise(model, bits, lambda: epoch() >= epochs - last)
