"""The independent classifier behind the §6 metrics: trained on the real training images only
(never on a VAE's output or weights), with its own seed; its penultimate layer is the feature
space of FID and KID (the role Inception plays for natural images)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.generative.data import LabelledImages


class ImageClassifier(nn.Module):
    """Flattened image → ``features`` (ReLU MLP) → class logits."""

    def __init__(self, pixels: int, classes: int, hidden: int = 128, features: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(pixels, hidden), nn.ReLU(), nn.Linear(hidden, features), nn.ReLU())
        self.head = nn.Linear(features, classes)

    def features(self, images: Tensor) -> Tensor:
        return self.body(images.reshape(images.shape[0], -1).float())

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.features(images))


def train_classifier(
    data: LabelledImages, *, epochs: int = 40, batch_size: int = 64, lr: float = 2e-3, seed: int = 1234
) -> ImageClassifier:
    """Adam on cross-entropy over ``data`` (real images); returned in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    height, width = data.shape
    state = torch.random.get_rng_state()  # the caller's stream is restored after the init
    torch.manual_seed(seed)
    model = ImageClassifier(height * width, data.classes)
    torch.random.set_rng_state(state)
    images, labels = torch.from_numpy(data.images), torch.from_numpy(data.labels)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(labels), batch_size):
            idx = order[start : start + batch_size]
            optimiser.zero_grad()
            F.cross_entropy(model(images[idx]), labels[idx]).backward()
            optimiser.step()
    return model.eval()


@torch.no_grad()
def predict(model: ImageClassifier, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class [N], features float64 [N, F]) of images [N, H, W] in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    feats = model.features(x)
    return model.head(feats).argmax(-1).numpy(), feats.double().numpy()
