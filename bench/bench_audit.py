"""What the audit trail costs a Verify: p50 / p99 with ``audit.enabled`` true vs false, one run.

Two ``toitsu serve`` subprocesses on the same model pack, both requiring tokens (so the only
difference is the trail), each with one speaker enrolled. Verify at concurrency 1, alternating
rounds between the two gateways so that load drift on a shared machine hits both alike, with two
probes: a 3 s audio clip (the usual request) and an embedding (no model work: the case where a
per-RPC cost shows most). Then the raw cost of one committed row, ``AuditLog.write``, in-process.

    .venv/bin/python bench/bench_audit.py --models models      # JSON in bench/results/audit.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_verify import _audio, _clips, _start_server  # noqa: E402
from protos.v1 import speaker_pb2, speaker_pb2_grpc  # noqa: E402
from serving.audit import AuditLog, Event  # noqa: E402
from serving.security.tokens import TokenStore  # noqa: E402


def main() -> None:
    args = _parse()
    clips = _clips(4)
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        stubs, procs = {}, []
        try:
            for audit in ("off", "on"):
                var = Path(tmp) / audit
                store = TokenStore(var / "security" / "tokens.json")
                token, enroller = store.create("bench", "verify")[0], store.create("bench-enroll", "enroll")[0]
                settings = ("sound.enabled=false", "face.enabled=false", f"audit.enabled={str(audit == 'on').lower()}")
                proc, target = _start_server(args.models, var, *settings)
                procs.append(proc)
                stub = speaker_pb2_grpc.SpeakerServiceStub(grpc.insecure_channel(target))
                request = speaker_pb2.EnrollSpeakerRequest(speaker_id="bench", audio=[_audio(clips[0])])
                stub.Enroll(request, metadata=[("authorization", f"Bearer {enroller}")], timeout=60)
                stubs[audit] = (stub, [("authorization", f"Bearer {token}")])
            embed_stub, metadata = stubs["on"]
            embedding = embed_stub.Embed(
                speaker_pb2.EmbedSpeakerRequest(audio=_audio(clips[1])), metadata=metadata, timeout=60
            ).embedding
            probes = {
                "audio": [speaker_pb2.VerifySpeakerRequest(speaker_id="bench", audio=_audio(c)) for c in clips],
                "embedding": [speaker_pb2.VerifySpeakerRequest(speaker_id="bench", embedding=embedding)],
            }
            compared = {
                kind: _compare(stubs, requests, args.rounds, args.per_round) for kind, requests in probes.items()
            }
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(30)
        row_us = _row_cost(Path(tmp) / "raw.sqlite", 2000)
    result = {**compared, "row_write_us": row_us}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    for kind in probes:
        on, off = compared[kind]["on"], compared[kind]["off"]
        print(
            f"verify ({kind:9}) p50 {off['p50_ms']:6.2f} → {on['p50_ms']:6.2f} ms ({on['p50_ms'] - off['p50_ms']:+.2f})"
            f"   p99 {off['p99_ms']:6.2f} → {on['p99_ms']:6.2f} ms   (audit off → on, {on['requests']} each)"
        )
    print(f"one audit row (AuditLog.write, committed): {row_us:.0f} µs\nwrote {args.out}")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=50)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "audit.json")
    return parser.parse_args()


def _compare(stubs: dict, requests: list, rounds: int, per_round: int) -> dict:
    latencies: dict[str, list[float]] = {"on": [], "off": []}
    for stub, metadata in stubs.values():  # warm-up
        for n in range(10):
            stub.Verify(requests[n % len(requests)], metadata=metadata, timeout=60)
    for r in range(rounds):
        for audit in ("on", "off") if r % 2 == 0 else ("off", "on"):
            stub, metadata = stubs[audit]
            for n in range(per_round):
                started = time.perf_counter()
                stub.Verify(requests[n % len(requests)], metadata=metadata, timeout=60)
                latencies[audit].append(time.perf_counter() - started)
    return {
        audit: {
            "requests": len(values),
            "p50_ms": float(np.percentile(np.array(values) * 1000, 50)),
            "p99_ms": float(np.percentile(np.array(values) * 1000, 99)),
        }
        for audit, values in latencies.items()
    }


def _row_cost(path: Path, count: int) -> float:
    trail = AuditLog(path)
    event = Event(time.time(), "bench", "0123456789abcdef", "/toitsu.v1.SpeakerService/Verify", "OK", "ipv4:x", 1.0)
    started = time.perf_counter()
    for n in range(count):
        trail.write(Event(**{**event.__dict__, "identities": (f"id-{n}",)}))
    cost = (time.perf_counter() - started) / count * 1e6
    trail.close()
    return cost


if __name__ == "__main__":
    main()
