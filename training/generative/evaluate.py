"""The §6 evaluation of a trained VAE: generate for every class, score with the independent
classifier, compute the test ELBO and log-likelihood bound, and draw one PNG grid per class."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.generative.classifier import ImageClassifier, predict
from training.generative.data import LabelledImages
from training.generative.metrics import fid, kid, requested_class_accuracy
from training.generative.models import VAEBase


@torch.no_grad()
def generate(model: VAEBase, labels: np.ndarray, seed: int) -> np.ndarray:
    """Images [N, H, W] generated for class ids ``labels`` with noise from ``seed``."""
    noise = torch.randn(len(labels), model.latent, generator=torch.Generator().manual_seed(seed))
    return model.eval().decode(noise, torch.from_numpy(np.asarray(labels, dtype=np.int64))).numpy()


@torch.no_grad()
def test_bounds(model: VAEBase, test: LabelledImages, iw_samples: int, seed: int) -> tuple[float, float]:
    """(mean test ELBO, mean importance-sampled log p(x|y)) in nats per image."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    x, y = torch.from_numpy(test.images), torch.from_numpy(test.labels)
    elbo = float(model.eval().elbo(x, y).mean())
    ll = float(model.log_likelihood(x, y, iw_samples).mean())
    torch.random.set_rng_state(state)
    return elbo, ll


def save_grid(images: np.ndarray, path: Path, columns: int, scale: int = 4) -> Path:
    """Tile images [N, H, W] (grey) or [N, 3, H, W] (RGB) in [0, 1] into a PNG, ``columns``
    wide, upscaled ``scale``×."""
    from PIL import Image

    images = np.asarray(images)
    rgb = images.ndim == 4
    if rgb:
        images = images.transpose(0, 2, 3, 1)  # [N, H, W, 3]
    n, h, w = images.shape[:3]
    rows = -(-n // columns)
    canvas = np.zeros((rows * (h + 1) + 1, columns * (w + 1) + 1) + images.shape[3:], dtype=np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        canvas[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = image
    pixels = (canvas.clip(0, 1) * 255).round().astype(np.uint8)
    picture = Image.fromarray(pixels, mode="RGB" if rgb else "L").resize(
        (pixels.shape[1] * scale, pixels.shape[0] * scale), Image.Resampling.NEAREST
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path


def evaluate_generator(
    model: VAEBase,
    classifier: ImageClassifier,
    test: LabelledImages,
    out_dir: Path,
    *,
    name: str,
    samples_per_class: int = 100,
    grid: int = 8,
    iw_samples: int = 64,
    seed: int = 0,
) -> dict[str, Any]:
    """The report (also ``out_dir/report.json``) and ``out_dir/class-<y>.png`` grids."""
    requested = np.repeat(np.arange(model.classes), samples_per_class)
    images = generate(model, requested, seed)
    predicted, generated_features = predict(classifier, images)
    test_predicted, real_features = predict(classifier, test.images)
    per_class = {
        str(c): requested_class_accuracy(requested[requested == c], predicted[requested == c])
        for c in range(model.classes)
    }
    kid_mean, kid_std = kid(real_features, generated_features, seed=seed)
    elbo, ll = test_bounds(model, test, iw_samples, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    grids = []
    for c in range(model.classes):
        chosen = images[requested == c][: grid * grid]
        grids.append(save_grid(chosen, out_dir / f"class-{c}.png", grid).name)
    report = {
        "name": name,
        "classes": model.classes,
        "samples_per_class": samples_per_class,
        "test_images": len(test),
        "requested_class_accuracy": requested_class_accuracy(requested, predicted),
        "requested_class_accuracy_by_class": per_class,
        "classifier_test_accuracy": float((test_predicted == test.labels).mean()),
        "fid": fid(real_features, generated_features),
        "kid": kid_mean,
        "kid_std": kid_std,
        "test_elbo": elbo,
        "test_log_likelihood_iw": ll,
        "iw_samples": iw_samples,
        "grids": grids,
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    return report
