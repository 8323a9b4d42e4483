"""The codec interface: what every way of storing jets offers (:mod:`hepae_core.codecs.registry`).

Its own module so that codecs living elsewhere (:mod:`hepae_core.codecs.predictive`) implement it
without importing the registry that lists them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass
class Encoded:
    """A chunk of jets as a codec stores it.

    Attributes
    ----------
    n
        Jets encoded.
    payload
        Per-jet data: the arrays written, as they are (packed codes, compressed streams).
    side
        What a reader needs besides the payload (ranges, axes, means), as written.
    clipped
        Values outside the codec's range, clipped (counted, not stored raw).
    attrs
        Small descriptive strings and numbers (spaces, bits): HDF5 attributes, not counted.
    """

    n: int
    payload: dict[str, np.ndarray]
    side: dict[str, np.ndarray] = field(default_factory=dict)
    clipped: int = 0
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def payload_bytes(self) -> int:
        return int(sum(np.asarray(a).nbytes for a in self.payload.values()))

    @property
    def side_bytes(self) -> int:
        return int(sum(np.asarray(a).nbytes for a in self.side.values()))


@runtime_checkable
class JetCodec(Protocol):
    """What every registered codec offers (see the module doc)."""

    name: str  # metric prefix: sq12, pca12, aeq12, sz3_12, zfp12, float16, lossless
    family: str  # sq, pca, aeq, sz3, zfp, float16, bfloat16, lossless
    bits: int | None
    variables: list[str]
    model_bytes: int  # paid once per file (the autoencoder's model.pt), else 0

    def fit(self, train: np.ndarray) -> None: ...

    def encode(self, x: np.ndarray) -> Encoded: ...

    def decode(self, enc: Encoded) -> np.ndarray: ...


class BaseCodec(ABC):
    """Shared plumbing: names, kinds and the natural spaces of the variables."""

    family = ""
    model_bytes = 0

    def __init__(
        self, variables: list[str], kinds: list[str] | None = None, bits: int | None = None
    ):
        self.variables = list(variables)
        self.kinds = list(kinds) if kinds else None
        self.bits = bits

    @property
    def name(self) -> str:
        return self.family if self.bits is None else f"{self.family}{self.bits}"

    def fit(self, train: np.ndarray) -> None:  # noqa: B027 - most codecs learn nothing
        """Learn what the codec needs from the training jets (physical units)."""

    def adopt(self, other: BaseCodec) -> bool:
        """Take what ``other`` (same family, fitted on the same jets) learnt; False: cannot.

        The fit does not depend on ``k`` for the quantiser, PCA, SZ3 and ZFP, so one fit
        serves every bit depth.
        """
        return False

    @abstractmethod
    def encode(self, x: np.ndarray) -> Encoded: ...

    @abstractmethod
    def decode(self, enc: Encoded) -> np.ndarray: ...
