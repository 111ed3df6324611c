"""``toitsu export RUN`` for a generative run (METHODS §6): the VAE's decoder → a generator card.

The exported graph is the generation path itself: ``noise`` [B, latent] float32 (ε ~ N(0, I))
and ``label`` [B] int64 → ``image`` [B, H, W] float32 in [0, 1]; the label prior's class mean
(z = m_y + ε) or the conditional decoder's one-hot is inside the graph, so every model of the
kind has the same contract. Parity: ONNX Runtime against the run's torch module on random noise
for every class, in batches of 1, of the class count and of 64; the export refuses (nothing is
published) above ``MAX_ABS_DIFF`` on pixel probabilities. No calibration: nothing is verified.
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
from training.generative.models import VAEBase

MAX_ABS_DIFF = 1e-5
PARITY_BATCHES = (1, 0, 64)  # 0: one row per class


class GeneratorGraph(nn.Module):
    """(noise, label) → image, the VAE's ``decode``."""

    def __init__(self, vae: VAEBase) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, noise: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(noise, label)


def export_generator(vae: VAEBase, path: Path) -> Path:
    """Write the generator graph with a dynamic batch axis."""
    example = (torch.zeros(2, int(vae.latent)), torch.tensor([0, 1], dtype=torch.int64))
    return export_onnx(
        GeneratorGraph(vae).eval(),
        example,
        path,
        input_names=["noise", "label"],
        output_names=["image"],
        dynamic_axes={"noise": {0: "batch"}, "label": {0: "batch"}, "image": {0: "batch"}},
    )


def generator_parity(vae: VAEBase, onnx_path: Path, seed: int = 0, max_abs_diff: float = MAX_ABS_DIFF) -> ParityResult:
    """torch vs ORT on random noise over every class (images flattened per row); raises
    ``ParityError`` above ``max_abs_diff``."""
    session, graph = onnx_session(onnx_path), GeneratorGraph(vae).eval()
    rng = np.random.default_rng(seed)
    classes, latent = int(vae.classes), int(vae.latent)

    def pairs():
        for batch in PARITY_BATCHES:
            n = batch or classes
            noise = rng.standard_normal((n, latent)).astype(np.float32)
            label = (np.arange(n) % classes).astype(np.int64)
            with torch.no_grad():
                ref = graph(torch.from_numpy(noise), torch.from_numpy(label)).numpy()
            got = session.run(None, {"noise": noise, "label": label})[0]
            yield ref.reshape(n, -1), np.asarray(got).reshape(n, -1)

    return require(compare("generator", pairs()), max_abs_diff=max_abs_diff)


def build_generator_card(
    name: str, version: int, vae: VAEBase, provenance: TrainingProvenance, parity: ParityResult
) -> GeneratorCard:
    latent, height, width = int(vae.latent), int(vae.height), int(vae.width)
    return GeneratorCard(
        name=name,
        version=version,
        description=f"class-conditional {height}×{width} image generator ({provenance.model} VAE decoder)",
        inputs=[tensor("noise", "float32", [-1, latent], "noise"), tensor("label", "int64", [-1], "label")],
        outputs=[tensor("image", "float32", [-1, height, width], "image")],
        provenance=provenance,
        parity=Parity(
            reference="torch: the run's checkpoint",
            inputs=[
                "standard-normal noise, every class, batches "
                + ", ".join(str(b) for b in PARITY_BATCHES)
                + " (0: one per class)"
            ],
            checks=[parity.card_check()],
        ),
        serving=ServingHints(max_batch_size=64),
        generator=GeneratorSpec(
            latent_dim=latent,
            classes=int(vae.classes),
            class_names=[str(c) for c in range(int(vae.classes))],
            height=height,
            width=width,
        ),
    )


def export_generator_run(run_dir: Path, models_dir: Path, *, name: str | None = None) -> Path:
    """Export a generative run's decoder as the next version of ``name``; returns its folder."""
    from training.recipes.generative import generator_provenance, load_generative_run

    recipe, vae, step, _ = load_generative_run(Path(run_dir))
    name = name or recipe.export_name
    version = next_version(models_dir, name)
    provenance = TrainingProvenance(**generator_provenance(Path(run_dir)))

    def stage(staged: Path) -> GeneratorCard:
        onnx_path = export_generator(vae, staged / "model.onnx")
        print(f"{name} v{version}: exported from {run_dir} (step {step})")
        return build_generator_card(name, version, vae, provenance, generator_parity(vae, onnx_path))

    return export_version(models_dir, name, version, stage)
