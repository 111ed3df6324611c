"""Frame quality against recognition on real faces (issue 12): the measurements behind
``serving/vision/quality.py``'s defaults and the detector's default ``min_probability``.

1. **Labelled variants.** Every packaged real face (``training.data.real_faces``: the astronaut,
   Grace Hopper, the six people of insightface's group photo) is cut with one face width of
   margin, and every variant of ``real_faces.variants`` (down-scaling to 16-80 px, Gaussian and
   motion blur, noise, JPEG, low light, occlusion, rendered yaw ±15-60°, combinations) is run
   through the served pipeline (MTCNN → dlib 5 points → chip → quality → dlib ResNet). A variant's
   label is the recognition outcome: does its embedding still match the clean crop's at the
   model card's threshold for the default FAR (1 %)? The script prints each variant family's
   match rate and quality, the area under the ROC of each score (old and new) for predicting the
   label, and the shipped floor's accepted / refused counts on matching and non-matching frames.
2. **Detector probabilities** of every detection on real photos: faces (centre inside a
   hand-drawn head region) against non-faces (on the group photo's table and hands, and on the
   face-free photos of scikit-image and scikit-learn), with the pipeline's O-net threshold at
   0.7 as served and the default floor marked.
3. **The issue's tracks**: each person of the group photo as a 6-frame track (small drift and
   zoom, as ``training.data.face_scenes.frames``), scored by the old and the new defaults.

``python -m bench.face_quality [--models DIR] [--json OUT]``: the numbers of the README's *Faces*
section. Needs the default pack (``make models``) and insightface's wheel (``make venv``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contracts.card import load_card
from serving.embedders import ImageEmbedder
from serving.inference.onnxruntime_backend import OnnxRuntimeBackend
from serving.models.repository import ModelRepository
from serving.scoring import threshold
from serving.vision.landmarks import ShapePredictor5
from serving.vision.mtcnn import MtcnnDetector
from serving.vision.pipeline import DEFAULT_MIN_PROBABILITY, AlignedFace, FacePipeline
from serving.vision.quality import QualityConfig, nose_offset
from serving.vision.types import FaceDetection
from training.data import real_faces as rf

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Served:
    pipeline: FacePipeline
    embedder: ImageEmbedder
    threshold: float  # the card's threshold at the default FAR
    loose: MtcnnDetector  # the same nets with O-net's threshold at 0.3: the non-faces' tail

    def embed(self, faces: list[AlignedFace]) -> np.ndarray:
        return self.embedder.embed_many([f.chip for f in faces])


def served(models: Path) -> Served:
    repo = ModelRepository(models)
    version = repo.get("dlib-resnet-v1")
    backend = OnnxRuntimeBackend()
    embedder = ImageEmbedder(version, backend)
    backend.load(embedder.key, version)
    nets = [repo.get(f"mtcnn-{s}").model_path for s in ("pnet", "rnet", "onet")]
    # Every face the nets pass (min_probability 0): the score and the floor are measured apart.
    pipeline = FacePipeline(
        MtcnnDetector(*nets),
        ShapePredictor5.load(repo.get("dlib-sp5").model_path),
        embedder.alignment,
        min_probability=0,
    )
    value, _ = threshold(load_card(version.directory), 0.0)
    return Served(pipeline, embedder, value, MtcnnDetector(*nets, thresholds=(0.6, 0.7, 0.3)))


def _central(detections: list[FaceDetection], box: np.ndarray) -> FaceDetection | None:
    """The detection of the face the crop was cut round: the best overlap with its box (IoU ≥ 0.25)."""
    if not detections:
        return None
    best = max(detections, key=lambda d: _iou(d.box, box))
    return best if _iou(best.box, box) >= 0.25 else None


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def face_of(s: Served, image: np.ndarray, head: tuple[int, int, int, int]) -> FaceDetection:
    found = [d for d in s.pipeline.detect(image) if rf.head_of(d.box, {"head": head})]
    if not found:
        raise RuntimeError(f"no face detected in the head region {head}")
    return max(found, key=lambda d: d.probability)


def labelled_variants(
    s: Served, seeds: int = 2, chips: list | None = None, only: tuple[str, ...] | None = None
) -> list[dict]:
    """One row per (face, variant, seed): the label, the cosine to the clean crop, the features
    (the aligned chips appended to ``chips`` when given); ``only`` these variants when given."""
    rows = []
    current: dict[str, np.ndarray] = {}

    def eyes_nose(image: np.ndarray):
        d = _central(s.pipeline.detect(image), current["box"])
        return None if d is None else (d.landmarks[:2].astype(np.float64), d.landmarks[2].astype(np.float64))

    families = {k: v for k, v in rf.variants(eyes_nose).items() if only is None or k in only}
    for face in rf.real_faces():
        image = rf.photo(face.photo)
        crop, box = rf.crop_around(image, face_of(s, image, face.head).box)
        current["box"] = box
        found = _central(s.pipeline.detect(crop), box)
        if found is None:
            raise RuntimeError(f"{face.name}: no face in its own crop")
        clean = s.pipeline.aligned(crop, found)
        reference = s.embed([clean])[0]
        for name, make in families.items():
            for seed in range(seeds if _random(name) else 1):
                degraded = make(crop, box, np.random.default_rng([seed, len(name)]))
                d = _central(s.pipeline.detect(degraded), box * degraded.shape[0] / crop.shape[0])
                row = {"face": face.name, "variant": name, "seed": seed, "detected": d is not None}
                if d is not None:
                    aligned = s.pipeline.aligned(degraded, d)
                    if chips is not None:
                        chips.append(aligned.chip)
                    cosine = float(s.embed([aligned])[0] @ reference)
                    row.update(
                        cosine=cosine,
                        match=cosine >= s.threshold,
                        quality=aligned.quality.as_dict(),
                        legacy_score=legacy_score(d, aligned.chip),
                        laplacian=laplacian_variance(aligned.chip),
                        offset=nose_offset(d.landmarks),
                        width=d.width,
                    )
                rows.append(row)
    return rows


def laplacian_variance(chip: np.ndarray) -> float:
    """The sharpness served before issue 12: variance of the 4-neighbour Laplacian of the grey chip."""
    grey = chip.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    lap = grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4.0 * grey[1:-1, 1:-1]
    return float(lap.var())


def legacy_score(d: FaceDetection, chip: np.ndarray) -> float:
    """The frame quality served before issue 12: probability × min(size / 80, 1) × Laplacian
    variance v / (v + 60) × (1 − |nose offset| / 0.5), clipped at 0."""
    v = laplacian_variance(chip)
    frontal = float(np.clip(1.0 - abs(nose_offset(d.landmarks)) / 0.5, 0.0, 1.0))
    return d.probability * min(min(d.width, d.height) / 80.0, 1.0) * v / (v + 60.0) * frontal


def _random(name: str) -> bool:
    return name.startswith(("noise", "motion", "dark"))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC: P(score of a matching frame > score of a non-matching one), ties ½."""
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + ties / 2)


def family(name: str) -> str:
    return name.split("-")[0].rstrip("+0123456789") if not name.startswith("yaw") else "yaw"


def report_variants(rows: list[dict], floor: float, legacy_floor: float) -> dict:
    seen = [r for r in rows if r["detected"]]
    labels = np.array([r["match"] for r in seen])
    new = np.array([r["quality"]["score"] for r in seen])
    old = np.array([r["legacy_score"] for r in seen])
    print(f"\n{len(rows)} variants, {len(seen)} with a face found, {labels.sum()} still matching at the threshold")
    print(
        f"{'variant':22s} {'n':>3s} {'match':>6s} {'cos':>6s} {'size':>6s} {'detail':>7s} {'front':>6s}"
        f" {'new':>6s} {'old':>6s} {'kept':>5s} {'kept0':>5s}"
    )
    for name in dict.fromkeys(r["variant"] for r in rows):
        group = [r for r in rows if r["variant"] == name]
        found = [r for r in group if r["detected"]]
        if not found:
            print(f"{name:22s} {len(group):3d}   (no face found)")
            continue

        def mean(values: list[float]) -> float:
            return float(np.mean(values))

        q = [r["quality"] for r in found]
        print(
            f"{name:22s} {len(group):3d} {mean([r['match'] for r in found]):6.2f} "
            f"{mean([r['cosine'] for r in found]):6.3f} {mean([x['size'] for x in q]):6.1f} "
            f"{mean([x['sharpness'] for x in q]):7.3f} {mean([x['frontal'] for x in q]):6.2f} "
            f"{mean([x['score'] for x in q]):6.2f} {mean([r['legacy_score'] for r in found]):6.2f} "
            f"{mean([x['score'] >= floor for x in q]):5.2f} "
            f"{mean([r['legacy_score'] >= legacy_floor for r in found]):5.2f}"
        )
    print("(kept: share of the frames at or above the floor, new score; kept0: the old score and floor)")
    plain = np.array([not r["variant"].startswith(("yaw", "occlude")) for r in seen])
    detail = np.array([r["quality"]["sharpness"] for r in seen])
    laplacian = np.array([r["laplacian"] for r in seen])
    summary = {
        "auc_detail_no_pose_occlusion": auc(detail[plain], labels[plain]),
        "auc_laplacian_no_pose_occlusion": auc(laplacian[plain], labels[plain]),
        "variants": len(rows),
        "detected": len(seen),
        "matching": int(labels.sum()),
        "auc_new": auc(new, labels),
        "auc_old": auc(old, labels),
        "floor": floor,
        "new_accepts_matching": int(((new >= floor) & labels).sum()),
        "new_accepts_nonmatching": int(((new >= floor) & ~labels).sum()),
        "old_accepts_matching": int(((old >= legacy_floor) & labels).sum()),
        "old_accepts_nonmatching": int(((old >= legacy_floor) & ~labels).sum()),
        "nonmatching": int((~labels).sum()),
    }
    print(
        f"AUC for 'still matches': new score {summary['auc_new']:.3f}, old score {summary['auc_old']:.3f}; "
        f"without yaw and occlusion, detail ratio {summary['auc_detail_no_pose_occlusion']:.3f}, "
        f"Laplacian variance {summary['auc_laplacian_no_pose_occlusion']:.3f}\n"
        f"new floor {floor:g}: accepts {summary['new_accepts_matching']}/{summary['matching']} matching, "
        f"{summary['new_accepts_nonmatching']}/{summary['nonmatching']} non-matching frames\n"
        f"old floor {legacy_floor:g}: accepts {summary['old_accepts_matching']}/{summary['matching']} matching, "
        f"{summary['old_accepts_nonmatching']}/{summary['nonmatching']} non-matching frames"
    )
    return summary


def face_free_photos() -> dict[str, np.ndarray]:
    """Real photos without a human face: scikit-image's and scikit-learn's."""
    import skimage.data
    from sklearn.datasets import load_sample_image

    out = {}
    for name in ("chelsea", "coffee", "rocket", "horse", "coins", "brick", "grass", "gravel", "page", "text"):
        image = np.asarray(getattr(skimage.data, name)())
        if image.dtype != np.uint8:
            image = (image * 255).astype(np.uint8) if image.max() <= 1 else image.astype(np.uint8)
        out[name] = np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image[..., :3]
    for name in ("china", "flower"):
        out[name] = load_sample_image(f"{name}.jpg")
    return out


def detection_probabilities(s: Served, rows: list[dict]) -> dict:
    """Every detection on the real photos, face (centre in a hand-drawn head region) or not: as
    served (O-net threshold 0.7) and with O-net's threshold at 0.3 (the non-faces' tail)."""
    heads = {"group": rf.GROUP_HEADS, **{n: {n: h} for n, h in rf.PHOTO_HEADS.items()}}
    images = [(name, scale, regions) for name, regions in heads.items() for scale in (1.0, 0.75, 0.5)]
    out: dict[str, list[dict]] = {"faces": [], "non_faces": [], "faces_loose": [], "non_faces_loose": []}
    free = face_free_photos()
    for name, scale, regions in images + [(name, 1.0, {}) for name in free]:
        image = free[name] if name in free else rf.photo(name)
        image = rf.downscale(image, scale) if scale < 1 else image
        for suffix, found in (("", s.pipeline.detect(image)), ("_loose", s.loose.detect(image))):
            for d in found:
                head = rf.head_of(d.box / scale, regions)
                entry = {"photo": name, "scale": scale, "head": head, "p": d.probability, "width": d.width}
                out[("faces" if head else "non_faces") + suffix].append(entry)
    useful = np.array([r["quality"]["probability"] for r in rows if r["detected"] and r["match"]])
    floor = DEFAULT_MIN_PROBABILITY
    print(f"\ndetector probabilities on {len(heads)} photos with faces (×1, ×0.75, ×0.5) and {len(free)} without")
    faces = [f["p"] for f in out["faces"]]
    print(f"  real faces, O-net 0.7 as served ({len(faces)}): min {min(faces):.4f}, " + _quantiles(faces))
    for f in sorted(out["faces"], key=lambda f: f["p"])[:3]:
        print(f"    {f['photo']}×{f['scale']:g} {f['head']}: p={f['p']:.4f}, {f['width']:.0f} px")
    print(f"  non-faces, O-net 0.7 as served ({len(out['non_faces'])}):")
    for f in sorted(out["non_faces"], key=lambda f: -f["p"]):
        print(f"    {f['photo']}×{f['scale']:g}: p={f['p']:.4f}, {f['width']:.0f} px")
    loose = np.array([f["p"] for f in out["non_faces_loose"]])
    print(
        f"  non-faces, O-net threshold 0.3 ({len(loose)}): max {loose.max():.4f}, "
        f"{(loose >= floor).sum()} at ≥ {floor:g}; 99 % below {np.quantile(loose, 0.99):.4f}"
    )
    print(
        f"  useful degraded faces (still matching, {len(useful)}): 1 % below {np.quantile(useful, 0.01):.4f}, "
        f"5 % below {np.quantile(useful, 0.05):.4f}; {(useful < floor).sum()} below the floor {floor:g}"
    )
    return out


def _quantiles(values: list[float]) -> str:
    q = np.quantile(values, [0.05, 0.5])
    return f"5 % {q[0]:.4f}, median {q[1]:.4f}"


def group_tracks(s: Served, frames: int = 6) -> list[dict]:
    """Each person of the group photo as a short track (``real_faces.track_frames``), its best
    frame scored old and new (the floors: face.min_quality now, 0.2 before)."""
    out = []
    for face in rf.real_faces():
        if face.photo != "group":
            continue
        new, old = [], []
        for frame in rf.track_frames(face, frames, seed=len(face.name)):
            found = [d for d in s.pipeline.detect(frame) if d.probability >= DEFAULT_MIN_PROBABILITY]
            if not found:
                continue
            d = max(found, key=lambda d: d.width * d.height)
            aligned = s.pipeline.aligned(frame, d)
            new.append(aligned.quality.score)
            old.append(legacy_score(d, aligned.chip))
        out.append({"person": face.name, "best_new": max(new), "best_old": max(old), "frames": len(new)})
    print("\nthe group photo's people as 6-frame tracks: best frame quality (floor)")
    for t in out:
        print(
            f"  {t['person']:22s} new {t['best_new']:.2f} ({QualityConfig().floor:g})   old {t['best_old']:.2f} (0.2)"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    start = time.perf_counter()
    s = served(args.models)
    print(f"threshold at the default FAR (1 %): cosine {s.threshold:.4f}")
    rows = labelled_variants(s, args.seeds)
    summary = report_variants(rows, QualityConfig().floor, 0.2)
    probabilities = detection_probabilities(s, rows)
    tracks = group_tracks(s)
    print(f"\n{time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"summary": summary, "rows": rows, "detections": probabilities, "tracks": tracks}
        args.json.write_text(json.dumps(payload, indent=1, default=float))


if __name__ == "__main__":
    main()
