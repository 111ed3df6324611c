"""Backup and restore time and size of a gallery (serving.gallery.backup / restore).

Bulk-loads ``--identities`` random unit 256-d templates (``--samples`` samples each) through
``Gallery.enroll_many``, takes an online backup of the open gallery (the SQLite backup API, as the
gateway's ``GalleryAdminService.Backup`` does), closes it, then restores the backup into a fresh
var/ (checksums, integrity check, index rebuilt from the store and checked against it), and times
the check every gateway start runs on each gallery (``checkup.check_at_start``: integrity check
plus index = store) on the restored gallery, its index loaded from the snapshot restore wrote.

    .venv/bin/python bench/bench_backup.py                    # 10,000 identities
    .venv/bin/python bench/bench_backup.py --identities 100000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from serving.gallery import Gallery, GalleryConfig, ModelBinding, backup, checkup
from serving.gallery.restore import restore

MODEL = ModelBinding("bench-model", 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--dim", type=int, default=256)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "var" / "galleries" / "speaker"
        config = GalleryConfig()
        with Gallery.open(root, modality="speaker", dim=args.dim, model=MODEL, config=config) as gallery:
            x = rng.standard_normal((args.identities, args.samples, args.dim)).astype(np.float32)
            x /= np.linalg.norm(x, axis=2, keepdims=True)
            gallery.enroll_many(((f"id{i:07d}", x[i]) for i in range(args.identities)), model=MODEL)
            gallery.wait_idle(600)
            store_bytes = sum(p.stat().st_size for p in root.glob("store.sqlite3*"))
            started = time.perf_counter()
            taken = backup.take(gallery, root, Path(tmp) / "backups" / "b1", "speaker")
            backup_s = time.perf_counter() - started
        started = time.perf_counter()
        done = restore(Path(taken.path), Path(tmp) / "restored", config=config)
        restore_s = time.perf_counter() - started
        assert done.identities == args.identities and done.consistency.ok
        with Gallery.open(Path(done.root), modality="speaker", dim=args.dim, model=MODEL, config=config) as gallery:
            started = time.perf_counter()
            checkup.check_at_start(gallery, "speaker", "")
            start_check_s = time.perf_counter() - started
    print(
        json.dumps(
            {
                "identities": args.identities,
                "samples_per_identity": args.samples,
                "dim": args.dim,
                "live_store_bytes": store_bytes,
                "backup_bytes": taken.bytes,
                "backup_seconds": round(backup_s, 3),
                "restore_seconds": round(restore_s, 3),
                "start_check_seconds": round(start_check_s, 3),
                "restored_index": done.consistency.index_kind,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
