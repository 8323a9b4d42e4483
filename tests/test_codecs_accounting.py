"""The codec registry: bytes credited = bytes written, and the accounting worked by hand."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from hepae_core.codecs import registry as codecs
from hepae_core.data.jets import bundled_path
from hepae_core.data.normalise import Normaliser
from hepae_core.evaluation.evaluate import baseline_metrics, latent_codecs
from hepae_core.training.models import build_model

VARS = ["pt", "eta", "phi", "E"]
KINDS = ["relative", "absolute", "angle", "relative"]


@pytest.fixture(scope="module")
def jets() -> tuple[np.ndarray, np.ndarray]:
    import uproot

    with uproot.open(bundled_path("dijet_4d")) as f:
        t = f["jets"]
        x = np.stack([t[v].array(library="np") for v in VARS], axis=1).astype(np.float64)
    idx = np.random.default_rng(1).permutation(len(x))
    return x[idx[:60_000]], x[idx[60_000:160_000]]


def test_bit_packing_by_hand() -> None:
    # 5, 0, 7, 3 at 3 bits: 101 000 111 011 -> 10100011 1011(0000): 2 bytes
    buf = codecs.pack_bits(np.array([5, 0, 7, 3]), 3)
    assert buf.tolist() == [0b10100011, 0b10110000]
    assert codecs.unpack_bits(buf, 3, 4).tolist() == [5, 0, 7, 3]
    assert codecs.packed_bytes(4, 3) == 2 and codecs.packed_bytes(1000, 12) == 1500
    rng = np.random.default_rng(0)
    for bits in (1, 7, 12, 16):
        c = rng.integers(0, 2**bits, 1001)
        assert len(codecs.pack_bits(c, bits)) == codecs.packed_bytes(1001, bits)
        assert np.array_equal(codecs.unpack_bits(codecs.pack_bits(c, bits), bits, 1001), c)


def test_scalar_quantiser_bytes_and_ratio_by_hand() -> None:
    """10 jets, 2 linear variables, 4 bits: 2 x 5 bytes of codes + 2 x 8 bytes of ranges."""
    u = np.arange(10, dtype=np.float64) + 0.5  # range [0.5, 9.5]: step 9/16
    v = np.linspace(-1.0, 1.0, 10)  # range [-1, 1]: step 1/8
    x = np.stack([u, v], axis=1)
    kinds = ["absolute", "absolute"]
    m = baseline_metrics(x, x, ["u", "v"], kinds, (4,), None)
    assert m["sq4.bits_per_jet"] == 8
    assert m["sq4.payload_bytes"] == 10 and m["sq4.side_bytes"] == 16
    assert m["sq.side_bytes"] == 16
    # float32 in: 10 jets x 2 x 4 bytes = 80; stored 10 + 16 = 26
    assert m["sq4.ratio"] == pytest.approx(80 / 26)
    # on a file of 1 M jets the ranges are nearly free: 8 bytes in, 1 byte out per jet
    assert m["sq4.ratio_file"] == pytest.approx(8e6 / (1e6 + 16))
    # the codes: u - 0.5 = 0..9 on cells of 9/16 -> floor(i * 16 / 9), 16 kept at 15
    c = codecs.build("sq", ["u", "v"], kinds, bits=4)
    c.fit(x)
    enc = c.encode(x)
    codes = codecs.unpack_bits(enc.payload["c0"], 4, 10)
    assert codes.tolist() == [0, 1, 3, 5, 7, 8, 10, 12, 14, 15]
    assert enc.side["lo"].tolist() == [0.5, -1.0] and enc.side["hi"].tolist() == [9.5, 1.0]
    # the reconstruction is each cell's centre: |error| <= half a step
    y = c.decode(enc)
    assert np.all(np.abs(y[:, 0] - u) <= 9 / 32 + 1e-12)
    assert np.all(np.abs(y[:, 1] - v) <= 1 / 16 + 1e-12)


def test_pca_is_centred_and_its_side_bytes_by_hand() -> None:
    """Jets on a line that misses the origin: one centred axis holds them exactly.

    u = 10 + t, v = 20 + 2 t: standardised, both columns are t / sigma, so the axis is
    (1, 1) / sqrt 2 and explains everything. Without centring, the axis would pass
    through the origin and miss the line by ~(10, 20).
    """
    t = np.linspace(-3.0, 3.0, 9)
    x = np.stack([10 + t, 20 + 2 * t], axis=1)
    kinds = ["absolute", "absolute"]
    c = codecs.PCACodec(["u", "v"], kinds, bits=None, z=1)
    c.fit(x)
    assert c.mean.tolist() == pytest.approx([10.0, 20.0])
    assert np.abs(c.components[0]).tolist() == pytest.approx([2**-0.5, 2**-0.5], rel=1e-6)
    assert c.explained == pytest.approx(1.0)
    y = c.decode(c.encode(x))
    assert np.max(np.abs(y - x)) < 1e-4
    # at 8 bits: 9 jets x 1 byte; side = float32 mean (2), scale (2), axis (2), range (2)
    m = baseline_metrics(x, x, ["u", "v"], kinds, (8,), 1)
    assert m["pca8.payload_bytes"] == 9 and m["pca8.side_bytes"] == 32
    assert m["pca.side_bytes"] == 32 and m["pca8.bits_per_jet"] == 8
    assert m["pca8.ratio"] == pytest.approx(72 / (9 + 32))
    # the projections span [-3, 3] sigma-units x sqrt 2; 8 bits: width of u ~ 0.34 step x std
    p_range = 2 * 3 / t.std() * math.sqrt(2)
    step_u = p_range / 256 / math.sqrt(2) * t.std()
    assert m["pca8.u.rms"] < step_u  # exact up to the quantiser's half step


def test_sz3_and_zfp_meet_the_quantisers_bound(jets) -> None:
    """SZ3 and ZFP at the k-bit half step: every value within it, in the natural space."""
    train, test = jets
    for family in ("sz3", "zfp"):
        c = codecs.build(family, VARS, KINDS, bits=10)
        c.fit(train)
        sq = codecs.build("sq", VARS, KINDS, bits=10)
        sq.fit(train)
        y = c.decode(c.encode(test))
        q = sq.quantiser
        for j, (space, a, b) in enumerate(zip(q.spaces, q.lo, q.hi)):
            half = (b - a) / 2**10 / 2
            if space == "log":
                err = np.abs(np.log(y[:, j]) - np.log(test[:, j]))
            elif space == "periodic":
                err = np.abs((y[:, j] - test[:, j] + np.pi) % (2 * np.pi) - np.pi)
            else:
                err = np.abs(y[:, j] - test[:, j])
            # float32 storage of the natural-space value adds up to ~1e-6 of it
            assert err.max() <= half * 1.001 + 2e-6, (family, VARS[j])


def _tiny_model() -> tuple[torch.nn.Module, bytes]:
    torch.manual_seed(0)
    cfg = {"encoder": [16], "decoder": None, "latent": 3, "activation": "tanh",
           "batch_norm": False, "dropout": 0.0, "latent_activation": False}  # fmt: skip
    model = build_model(cfg, 4).eval()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return model, buf.getvalue()


def _all_codecs(train: np.ndarray) -> list[tuple[codecs.BaseCodec, bytes | None]]:
    out: list[tuple[codecs.BaseCodec, bytes | None]] = [
        (c, None) for c in codecs.baseline_codecs(VARS, KINDS, (8, 12), pca_z=3)
    ]
    model, blob = _tiny_model()
    norm = Normaliser.fit("custom_4d", VARS, train)
    for c in latent_codecs(model, norm, torch.device("cpu"), (8, 12), len(blob), KINDS):
        out.append((c, blob))
    out.append((codecs.build("pred", VARS, KINDS, bounds=1e-3), None))  # model: after fit
    return out


def test_every_registered_codec_is_credited_the_bytes_its_writer_stores(
    jets, tmp_path: Path
) -> None:
    """For every codec: the file it writes is payload + side + model bytes, within 1 %.

    HDF5 adds 2-8 kB of headers per file, which the ratio does not count: under 1 % from a
    few hundred thousand jets. So the bundled jets are taken three times, the copies turned
    by the detector's symmetries (phi rotated by 1 rad, eta mirrored): 530k jets.
    """
    train, _ = jets
    with __import__("uproot").open(bundled_path("dijet_4d")) as f:
        t = f["jets"]
        x = np.stack([t[v].array(library="np") for v in VARS], axis=1).astype(np.float64)
    turned = x.copy()
    turned[:, 2] = (turned[:, 2] + 1.0 + np.pi) % (2 * np.pi) - np.pi
    mirrored = x.copy()
    mirrored[:, 1] = -mirrored[:, 1]
    test = np.concatenate([x, turned, mirrored])
    families = set()
    for codec, blob in _all_codecs(train):
        families.add(codec.family)
        codec.fit(train)
        enc = codec.encode(test)
        if codec.family == "pred":
            blob = codec.model_blob()
        path = tmp_path / f"{codec.name}.h5"
        stored = codecs.write_file(path, codec, enc, blob)
        credited = codecs.stored_bytes(enc, codec.model_bytes)
        # the datasets hold exactly the bytes credited; the file adds only HDF5's headers
        assert stored == credited, codec.name
        size = path.stat().st_size
        assert abs(size - credited) <= 0.01 * size, (codec.name, size, credited)
        assert codecs.ratio(enc, 4, codec.model_bytes) == pytest.approx(16 * len(test) / credited)
        # and what is read back decodes to the same jets
        back, model = codecs.read_file(path)
        assert model == blob
        assert np.array_equal(codec.decode(back), codec.decode(enc), equal_nan=True), codec.name
    assert families >= {"float16", "bfloat16", "sq", "pca", "sz3", "zfp", "lossless", "aeq"}
    assert families >= set(codecs.REGISTRY)


def test_registry_builds_by_name_and_refuses_unknown() -> None:
    c = codecs.build("sz3", VARS, KINDS, bits=12)
    assert c.name == "sz3_12" and c.family == "sz3"
    assert isinstance(c, codecs.JetCodec)
    assert codecs.build("zfp", VARS, KINDS, bits=8).name == "zfp8"
    with pytest.raises(ValueError, match="unknown codec 'nope'"):
        codecs.build("nope", VARS)


def test_break_even_by_hand() -> None:
    # 1000 bytes of model, 2 bytes per jet saved: paid for after 500 jets
    assert codecs.break_even_jets(4.0, 1000, 6.0) == 500
    assert codecs.break_even_jets(6.0, 1000, 6.0) == math.inf


def test_entropy_coded_quantiser_costs_the_empirical_entropy() -> None:
    """Codes at two cells only, 1:3: ANS needs H = 0.811 bits a value, not 8.

    The same reconstruction as the plain quantiser; the side information adds the
    histogram (zlib'd counts) and the word count.
    """
    rng = np.random.default_rng(3)
    n = 40_000
    u = np.where(rng.random(n) < 0.25, 0.5, 9.5)  # cells 0 and 255 of [0.5, 9.5] at 8 bits
    x = u[:, None]
    plain, coded = (codecs.build(f, ["u"], ["absolute"], bits=8) for f in ("sq", "sqe"))
    plain.fit(x)
    coded.fit(x)
    ep, ec = plain.encode(x), coded.encode(x)
    assert np.array_equal(coded.decode(ec), plain.decode(ep))
    p = np.mean(u == 0.5)
    entropy_bytes = n * -(p * math.log2(p) + (1 - p) * math.log2(1 - p)) / 8
    assert ep.payload_bytes == n  # 8 bits a value
    assert ec.payload_bytes == pytest.approx(entropy_bytes, rel=0.02)
    assert ec.side_bytes > 8  # ranges, histogram and the word count are counted
