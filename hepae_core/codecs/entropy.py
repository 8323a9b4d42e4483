"""Entropy coding of quantised codes (ANS, ``constriction``): the compressed file's coder.

One home for it: the compressed-file format (:mod:`hepae_core.codecs.codec`), the registry's
entropy-coded scalar quantiser (:class:`hepae_core.codecs.registry.EntropyScalarCodec`) and anyone
measuring what entropy coding buys call :func:`ans_encode` / :func:`ans_decode`.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from hepae_core.codecs.quantise import pack_bits, unpack_bits

ANS_TOP_BITS = 8  # entropy coded: the top 8 bits of each code; the rest stored as they are


def _ans_split(widths: list[int]) -> list[int]:
    """Low bits of each code stored as they are under entropy coding (the rest is coded)."""
    return [max(0, b - ANS_TOP_BITS) for b in widths]


def ans_encode(codes: np.ndarray, widths: list[int]) -> tuple[bytes, bytes, int]:
    """Entropy-coded codes: (payload, symbol-count tables, number of 32-bit ANS words).

    The top ``ANS_TOP_BITS`` bits of each code go through an ANS coder (``constriction``)
    with the chunk's own histogram per latent dimension (stored, as side information); the
    low bits, close to uniform within a cell of the histogram, are bit-packed.
    """
    import constriction

    low = _ans_split(widths)
    coder = constriction.stream.stack.AnsCoder()
    tables = []
    models = []
    for j, b in enumerate(widths):
        top = (codes[:, j] >> low[j]).astype(np.int32)
        counts = np.bincount(top, minlength=1 << (b - low[j])).astype(np.uint32)
        tables.append(counts)
        models.append((top, _ans_model(counts)))
    for top, model in reversed(models):  # a stack: decoded in the opposite order
        coder.encode_reverse(top, model)
    words = coder.get_compressed().astype(np.uint32)
    lows = [j for j, s in enumerate(low) if s]
    packed = b""
    if lows:
        mask = [(codes[:, j] & ((1 << low[j]) - 1)) for j in lows]
        packed = pack_bits(np.stack(mask, axis=1), [low[j] for j in lows]).tobytes()
    return words.tobytes() + packed, zlib.compress(np.concatenate(tables).tobytes()), len(words)


def _ans_model(counts: np.ndarray) -> Any:
    import constriction

    p = counts.astype(np.float64)
    return constriction.stream.model.Categorical(p / p.sum() if p.sum() else p + 1.0,
                                                 perfect=False)  # fmt: skip


def ans_decode(
    payload: bytes, tables: bytes, n_words: int, n: int, widths: list[int]
) -> np.ndarray:
    import constriction

    low = _ans_split(widths)
    counts = np.frombuffer(zlib.decompress(tables), np.uint32)
    sizes = [1 << (b - s) for b, s in zip(widths, low)]
    if counts.size != sum(sizes):
        raise ValueError("entropy tables of the wrong size")
    words = np.frombuffer(payload[: 4 * n_words], np.uint32)
    coder = constriction.stream.stack.AnsCoder(words.copy())
    out = np.empty((n, len(widths)), np.uint16)
    off = 0
    for j, size in enumerate(sizes):
        out[:, j] = coder.decode(_ans_model(counts[off : off + size]), n)
        off += size
    lows = [j for j, s in enumerate(low) if s]
    if lows:
        bits = unpack_bits(np.frombuffer(payload[4 * n_words :], np.uint8),
                           [low[j] for j in lows], n)  # fmt: skip
        for i, j in enumerate(lows):
            out[:, j] = (out[:, j] << low[j]) | bits[:, i]
    elif len(payload) != 4 * n_words:
        raise ValueError("trailing bytes after the entropy-coded codes")
    return out
