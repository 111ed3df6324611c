"""``toitsu export RUN`` for a disentangling run (METHODS §7): the decoder → a generator card.

The group-block VAE exports ``decode_block``: ``noise`` [B, block] float32 and ``label`` [B]
int64 (the latent block to fill, i.e. the group the head predicts) → ``image`` [B, 3, S, S];
the block placement is inside the graph (``conditioning: latent-block``). The β-VAE exports
``decode_latent``: ``noise`` [B, latent] → image, no label (``conditioning: none``). Parity, as
for §6 (``export.trained_generator``): ONNX Runtime against the torch module on random noise in
batches of 1, of the block count and of 64; refused above ``MAX_ABS_DIFF``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from contracts.card import GeneratorCard
from contracts.card_sections import GeneratorSpec, Parity, ServingHints, TrainingProvenance, tensor
from export.onnx_export import export_onnx
from export.parity import Parity as ParityResult
from export.parity import compare, onnx_session, require
from export.pipeline import export_version
from export.repository import next_version
from export.trained_generator import MAX_ABS_DIFF, PARITY_BATCHES
from training.disentangle.models import BetaVAE, GroupBlockVAE


class BlockGraph(nn.Module):
    """(noise, label) → image: the group-block VAE's ``decode_block``."""

    def __init__(self, vae: GroupBlockVAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, noise: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.vae.decode_block(noise, label)


class LatentGraph(nn.Module):
    """noise → image: the β-VAE's ``decode_latent``."""

    def __init__(self, vae: BetaVAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.vae.decode_latent(noise)


def _blocks(vae: BetaVAE) -> bool:
    return isinstance(vae, GroupBlockVAE)


def noise_dim(vae: BetaVAE) -> int:
    return int(vae.block) if _blocks(vae) else int(vae.latent)


def export_decoder(vae: BetaVAE, path: Path) -> Path:
    """Write the decoder graph with a dynamic batch axis."""
    noise = torch.zeros(2, noise_dim(vae))
    axes = {"noise": {0: "batch"}, "image": {0: "batch"}}
    if _blocks(vae):
        assert isinstance(vae, GroupBlockVAE)
        return export_onnx(
            BlockGraph(vae).eval(),
            (noise, torch.tensor([0, 1], dtype=torch.int64)),
            path,
            input_names=["noise", "label"],
            output_names=["image"],
            dynamic_axes={**axes, "label": {0: "batch"}},
        )
    return export_onnx(
        LatentGraph(vae).eval(), (noise,), path, input_names=["noise"], output_names=["image"], dynamic_axes=axes
    )


def decoder_parity(vae: BetaVAE, onnx_path: Path, seed: int = 0, max_abs_diff: float = MAX_ABS_DIFF) -> ParityResult:
    """torch vs ORT on random noise (every block for the method); raises ``ParityError`` above
    ``max_abs_diff``."""
    session, blocks, rng = onnx_session(onnx_path), _blocks(vae), np.random.default_rng(seed)
    graph: nn.Module = BlockGraph(vae).eval() if isinstance(vae, GroupBlockVAE) else LatentGraph(vae).eval()
    groups = int(vae.groups)

    def pairs():
        for batch in PARITY_BATCHES:
            n = batch or groups
            noise = rng.standard_normal((n, noise_dim(vae))).astype(np.float32)
            feeds = {"noise": noise}
            args = [torch.from_numpy(noise)]
            if blocks:
                feeds["label"] = (np.arange(n) % groups).astype(np.int64)
                args.append(torch.from_numpy(feeds["label"]))
            with torch.no_grad():
                ref = graph(*args).numpy()
            got = session.run(None, feeds)[0]
            yield ref.reshape(n, -1), np.asarray(got).reshape(n, -1)

    return require(compare("generator", pairs()), max_abs_diff=max_abs_diff)


def build_decoder_card(
    name: str, version: int, vae: BetaVAE, provenance: TrainingProvenance, parity: ParityResult
) -> GeneratorCard:
    blocks, size, dim = _blocks(vae), int(vae.size), noise_dim(vae)
    inputs = [tensor("noise", "float32", [-1, dim], "noise")]
    if blocks:
        inputs.append(tensor("label", "int64", [-1], "label"))
    what = "one latent block per image group" if blocks else "one β-VAE latent"
    return GeneratorCard(
        name=name,
        version=version,
        description=f"{size}×{size} RGB image decoder ({what}; METHODS §7, {provenance.model})",
        inputs=inputs,
        outputs=[tensor("image", "float32", [-1, 3, size, size], "image")],
        provenance=provenance,
        parity=Parity(
            reference="torch: the run's checkpoint",
            inputs=[
                "standard-normal noise, batches " + ", ".join(str(b) for b in PARITY_BATCHES) + " (0: one per block)"
            ],
            checks=[parity.card_check()],
        ),
        serving=ServingHints(max_batch_size=64),
        generator=GeneratorSpec(
            latent_dim=dim,
            # Block b is the head's predicted group b, not necessarily the data's group b:
            # the head is trained without group labels, so its blocks are named by index.
            classes=int(vae.groups) if blocks else 1,
            class_names=[f"block {b}" for b in range(int(vae.groups))] if blocks else [],
            height=size,
            width=size,
            channels=3,
            conditioning="latent-block" if blocks else "none",
        ),
    )


def export_disentangle_run(run_dir: Path, models_dir: Path, *, name: str | None = None) -> Path:
    """Export a disentangling run's decoder as the next version of ``name``; returns its folder."""
    from training.recipes.disentangle import disentangle_provenance, load_disentangle_run

    recipe, vae, step, _ = load_disentangle_run(Path(run_dir))
    name = name or recipe.export_name
    version = next_version(models_dir, name)
    provenance = TrainingProvenance(**disentangle_provenance(Path(run_dir)))

    def stage(staged: Path) -> GeneratorCard:
        onnx_path = export_decoder(vae, staged / "model.onnx")
        print(f"{name} v{version}: exported from {run_dir} (step {step})")
        parity = decoder_parity(vae, onnx_path)
        return build_decoder_card(name, version, vae, provenance, parity)

    return export_version(models_dir, name, version, stage)
