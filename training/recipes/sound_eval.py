"""Evaluating sound runs (METHODS §4): accuracy and a confusion matrix on the test fold, or on
fresh formula clips (a seed no training step used) for a pre-training run.

``evaluate_run`` is the sound kind's ``toitsu eval`` entry (``training.recipes.kinds``);
``evaluate_sound`` is what ``train_sound_recipe`` calls at the end of a run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.recipes.sound import (
    EVAL_SEED_OFFSET,
    SoundRecipe,
    build_sound_model,
    few_shot_split,
    formula_dataset,
    initialise_from,
    load_sound_run,
)


def evaluate_run(recipe: SoundRecipe, run_dir: Path | None, out_dir: Path, *, name: str) -> dict[str, Any]:
    """``evaluate_sound`` of a run's encoder and head; with ``run_dir`` None, of the recipe's
    untrained encoder (seeded as ``train_sound_recipe`` seeds it, ``init_from`` applied) and a
    fresh head."""
    from training.trainer.rng import seed_everything

    head: nn.Module | None = None
    if run_dir is None:
        seed_everything(recipe.trainer.seed)  # the initial weights `toitsu train` starts from
        encoder = build_sound_model(recipe)
    else:
        loaded = load_sound_run(run_dir)
        encoder, head = loaded.encoder, loaded.head
    test: list[Any] = []  # formula recipes are scored on fresh clips, not on records
    if recipe.data.formula is not None:
        classes = list(formula_dataset(recipe.data.formula).class_names)
    else:
        _, test, classes, _ = few_shot_split(recipe.data)
    if head is None:
        if recipe.init_from:
            initialise_from(encoder, recipe)
        head = nn.Linear(int(encoder.embedding_dim), len(classes))
    return evaluate_sound(recipe, encoder, head, out_dir, name=name, test=test, classes=classes)


@torch.no_grad()
def predict(encoder: nn.Module, head: nn.Module, clips: Sequence[np.ndarray], batch_size: int = 16) -> np.ndarray:
    """Class index [N] of each clip (float32 [n] at the encoder's rate); similar lengths batched."""
    device = next(encoder.parameters()).device
    encoder.eval(), head.eval()
    order = sorted(range(len(clips)), key=lambda i: len(clips[i]))
    out = np.empty(len(clips), dtype=np.int64)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        lengths = torch.tensor([len(clips[i]) for i in chunk])
        batch = torch.zeros(len(chunk), int(lengths.max()))
        for row, i in enumerate(chunk):
            batch[row, : len(clips[i])] = torch.from_numpy(np.asarray(clips[i], dtype=np.float32))
        logits = head(encoder(batch.to(device), lengths.to(device)).float())
        out[chunk] = logits.argmax(1).cpu().numpy()
    return out


def evaluate_sound(
    recipe: SoundRecipe,
    encoder: nn.Module,
    head: nn.Module,
    out_dir: Path,
    *,
    name: str,
    test: Sequence = (),
    classes: Sequence[str] = (),
) -> dict[str, Any]:
    """Accuracy and confusion matrix on the test fold (or fresh formula batches); writes
    ``out_dir/report.json`` and ``out_dir/confusion.png``; returns the report."""
    d = recipe.data
    if d.formula is not None:
        from training.data.formula_batches import FormulaBatches

        batches = FormulaBatches(
            formula_dataset(d.formula),
            batch_size=d.batch_size,
            clip_seconds=d.clip_seconds,
            sample_rate=d.sample_rate,
            seed=recipe.trainer.seed + EVAL_SEED_OFFSET,
            steps=d.eval_batches,
        )
        items = [batches[i] for i in range(len(batches))]
        clips = [row[: int(n)].numpy() for b in items for row, n in zip(b["waveform"], b["lengths"])]
        labels = np.concatenate([b["labels"].numpy() for b in items])
        where = f"{len(clips)} fresh {d.formula.dataset} clips"
    else:
        from training.data.audio_store import AudioStore

        store = AudioStore(test, d.sample_rate, cache=False)
        clips = [store.load(i) for i in range(len(test))]
        index = {c: i for i, c in enumerate(classes)}
        labels = np.array([index[str(r.identity)] for r in test], dtype=np.int64)
        assert d.few_shot is not None  # SoundData: a corpus recipe has its few_shot section
        where = f"test fold {d.few_shot.test_fold} ({len(test)} clips)"
    predicted = predict(encoder, head, clips)
    report = classification_report(labels, predicted, list(classes), name=name, data=where)
    if d.few_shot is not None:
        report["few_shot"] = {"test_fold": d.few_shot.test_fold, "k": d.few_shot.k, "draw": d.few_shot.draw}
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_confusion(
        out_dir / "confusion.png",
        np.array(report["confusion"]),
        list(classes),
        title=f"{name}: accuracy {report['accuracy']:.1%}",
    )
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    return report


def classification_report(
    labels: np.ndarray, predicted: np.ndarray, classes: list[str], *, name: str, data: str
) -> dict[str, Any]:
    """Accuracy, per-class recall and the confusion matrix (rows: true class, columns: predicted)."""
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    support = confusion.sum(1)
    recall = {c: float(confusion[i, i] / support[i]) for i, c in enumerate(classes) if support[i]}
    return {
        "name": name,
        "data": data,
        "clips": int(labels.size),
        "classes": len(classes),
        "accuracy": float((labels == predicted).mean()) if labels.size else 0.0,
        "balanced_accuracy": float(np.mean(list(recall.values()))) if recall else 0.0,
        "per_class_recall": recall,
        "class_names": classes,
        "confusion": confusion.tolist(),
    }


def plot_confusion(path: Path, confusion: np.ndarray, classes: list[str], title: str) -> Path:
    """A confusion-matrix PNG (row-normalised colours, counts written in the cells when few)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(classes)
    size = min(4.0 + 0.25 * n, 16.0)
    fig = Figure(figsize=(size, size))
    FigureCanvasAgg(fig)  # no pyplot: no global state, no display backend needed
    ax = fig.add_subplot()
    rates = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    if n <= 24:
        for (i, j), count in np.ndenumerate(confusion):
            if count:
                ax.text(
                    j,
                    i,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black",
                )
    labels = [c if len(c) <= 24 else c[:23] + "…" for c in classes]
    ax.set_xticks(range(n), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(n), labels, fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path
