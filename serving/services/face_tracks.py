"""Batch face-track enrollment (``FaceService.EnrollTracks``): one stream, many tracks.

Per frame: decode → detect → pick the track's face (the one overlapping the previous pick most,
else the largest) → align → quality. Only the ``best_frames`` best aligned chips of a track are
kept (a bounded heap), so memory is bounded by ``MAX_OPEN_TRACKS × best_frames`` chips however
long the stream or its tracks. When a track ends, its kept frames above ``min_quality`` are
embedded in one batch and their normalised mean is committed as the one sample owned by the
track id (``TrackLedger.enroll``: atomic, and a track sent again replaces its sample).

Errors in the stream's structure (no track id, a person id that changes, too many open tracks,
too many frames in one message) end the stream with INVALID_ARGUMENT / RESOURCE_EXHAUSTED;
everything already answered with a result stays committed. A bad frame only counts against its
track. A track still open when the client half-closes is rejected (never half-committed).
"""

from __future__ import annotations

import heapq
import io
import itertools
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from protos.v1 import face_pb2
from serving import audit
from serving.errors import InvalidInput, Overloaded, ToitsuError
from serving.gallery import Media, TrackLedger
from serving.gallery import validate as gallery_validate
from serving.modality import FaceModality
from serving.services.convert import model_ref
from serving.vision.pipeline import AlignedFace
from serving.vision.quality import QualityConfig
from serving.vision.types import FaceDetection

# What the pool makes of one frame: a face (client-aligned), an image and its detections, or the
# reason it could not be read.
FrameRead = AlignedFace | tuple[np.ndarray, list[FaceDetection]] | str

MAX_OPEN_TRACKS = 16
MAX_FRAMES_PER_MESSAGE = 64
MAX_BEST_FRAMES = 32


@dataclass(frozen=True)
class TrackOptions:
    best_frames: int = 5
    min_quality: float = QualityConfig.floor
    min_frames: int = 1
    progress_every: int = 25

    @classmethod
    def from_message(cls, message: face_pb2.TrackOptions, min_quality: float | None = None) -> TrackOptions:
        """The stream's options; a field left 0 takes the default (``min_quality``: the server's
        ``face.min_quality`` when given)."""
        options = cls(
            best_frames=message.best_frames or cls.best_frames,
            min_quality=message.min_quality or (cls.min_quality if min_quality is None else min_quality),
            min_frames=message.min_frames or cls.min_frames,
            progress_every=message.progress_every or cls.progress_every,
        )
        if options.best_frames > MAX_BEST_FRAMES:
            raise InvalidInput(f"best_frames {options.best_frames} is above the limit of {MAX_BEST_FRAMES}")
        if not 0.0 <= options.min_quality <= 1.0:
            raise InvalidInput(f"min_quality must be within [0, 1], got {options.min_quality:g}")
        if options.min_frames > options.best_frames:
            raise InvalidInput(f"min_frames {options.min_frames} exceeds best_frames {options.best_frames}")
        return options


@dataclass
class OpenTrack:
    """What the server keeps of a track while it streams in (bounded: the best frames only)."""

    track_id: str
    person_id: str
    metadata: dict[str, str]
    received: int = 0
    with_face: int = 0
    unreadable: int = 0
    quality_sum: float = 0.0
    best_seen: float = 0.0
    last_box: np.ndarray | None = None
    kept: list[tuple[float, int, AlignedFace]] = field(default_factory=list)  # min-heap on quality


class TrackSession:
    """One EnrollTracks stream. ``feed`` each request, then ``finish``; both yield responses."""

    def __init__(
        self, rt: FaceModality, *, store_media: bool, actor: str, timeout: Callable[[], float | None], workers: int = 2
    ) -> None:
        self._rt, self._store_media, self._actor, self._timeout = rt, store_media, actor, timeout
        self._ledger = TrackLedger(rt.gallery)
        self._options: TrackOptions | None = None
        self._open: dict[str, OpenTrack] = {}
        self._order = itertools.count()
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="face-track")
        self.tracks_done = 0
        self.frames_total = 0

    @property
    def options(self) -> TrackOptions:
        """The stream's track options (from its first message)."""
        if self._options is None:
            raise RuntimeError("no message fed yet: the stream's options come with its first one")
        return self._options

    def feed(self, request: face_pb2.EnrollTracksRequest) -> Iterator[face_pb2.EnrollTracksResponse]:
        if self._options is None:
            self._options = TrackOptions.from_message(request.options, self._rt.pipeline.quality.floor)
        elif request.HasField("options"):
            raise InvalidInput("track options are taken from the first message of the stream only")
        track = self._track(request)
        if len(request.frames) > MAX_FRAMES_PER_MESSAGE:
            raise Overloaded(f"{len(request.frames)} frames in one message; the limit is {MAX_FRAMES_PER_MESSAGE}")
        before = track.received
        for face in self._pool.map(lambda f: self._read_frame(f), list(request.frames)):
            self._add(track, face)
        every = self.options.progress_every
        if track.received // every > before // every or (request.end and track.received == 0):
            yield face_pb2.EnrollTracksResponse(progress=self._progress(track))
        if request.end:
            del self._open[track.track_id]
            yield face_pb2.EnrollTracksResponse(result=self._close(track))

    def finish(self) -> Iterator[face_pb2.EnrollTracksResponse]:
        """The client half-closed: tracks without their ``end`` are rejected, never committed."""
        try:
            for track in list(self._open.values()):
                self.tracks_done += 1
                reason = "the stream ended before this track's end message; nothing committed"
                yield face_pb2.EnrollTracksResponse(result=self._result(track, accepted=False, reason=reason))
            self._open.clear()
        finally:
            self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- per message ----------------------------------------------------------------------------

    def _track(self, request: face_pb2.EnrollTracksRequest) -> OpenTrack:
        track_id = gallery_validate.identity(request.track_id)
        track = self._open.get(track_id)
        if track is None:
            if not request.person_id:
                raise InvalidInput(f"the first message of track {track_id!r} must name its person_id")
            if len(self._open) >= MAX_OPEN_TRACKS:
                raise Overloaded(f"more than {MAX_OPEN_TRACKS} tracks open at once in one stream; end some first")
            track = OpenTrack(track_id, gallery_validate.identity(request.person_id), dict(request.metadata))
            self._open[track_id] = track
        elif request.person_id and request.person_id != track.person_id:
            raise InvalidInput(f"track {track_id!r} started as person {track.person_id!r}, not {request.person_id!r}")
        return track

    def _read_frame(self, frame: face_pb2.Frame) -> FrameRead:
        """AlignedFace (a client crop) | (image, detections) | the reason it is unreadable. Runs in the pool."""
        which = frame.WhichOneof("content")
        try:
            if which == "aligned":
                return self._rt.pipeline.client_crop(self._rt.decode(frame.aligned))
            if which == "image":
                image = self._rt.decode(frame.image)
                return image, self._rt.pipeline.detect(image)
            return "an empty frame"
        except ToitsuError as exc:
            return exc.message

    def _add(self, track: OpenTrack, read: FrameRead) -> None:
        track.received += 1
        self.frames_total += 1
        if isinstance(read, str):
            track.unreadable += 1
            return
        if isinstance(read, tuple):
            image, detections = read
            if not detections:
                return
            detection = _continuing(detections, track.last_box)
            track.last_box = detection.box
            face = self._rt.pipeline.aligned(image, detection)
        else:
            face = read
        track.with_face += 1
        score = face.quality.score
        track.quality_sum += score
        track.best_seen = max(track.best_seen, score)
        entry = (score, next(self._order), face)
        if len(track.kept) < self.options.best_frames:
            heapq.heappush(track.kept, entry)
        elif score > track.kept[0][0]:
            heapq.heapreplace(track.kept, entry)

    def _close(self, track: OpenTrack) -> face_pb2.TrackResult:
        self.tracks_done += 1
        options = self.options
        usable = sorted((e for e in track.kept if e[0] >= options.min_quality), key=lambda e: (-e[0], e[1]))
        if len(usable) < options.min_frames:
            return self._result(track, accepted=False, reason=_rejection(track, len(usable), options))
        faces = [face for _, _, face in usable]
        vectors = self._rt.embed(faces, self._timeout())
        template = vectors.mean(axis=0)
        media = [Media(_png(f.chip), "png/aligned-chip") for f in faces] if self._store_media else ()
        committed = self._ledger.enroll(
            track.person_id,
            track.track_id,
            template,
            model=self._rt.binding,
            media=media,
            metadata=track.metadata or None,
            actor=self._actor,
        )
        if committed.moved_from:
            audit.touched(committed.moved_from)  # a write to that person too, which no message names by field
        note = f"moved from person {committed.moved_from!r}" if committed.moved_from else ""
        if track.unreadable:
            note = "; ".join(filter(None, [note, f"{track.unreadable} frame(s) could not be read"]))
        return self._result(
            track, accepted=True, reason=note, used=faces, replaced=committed.replaced, sequence=committed.sequence
        )

    def _result(
        self,
        track: OpenTrack,
        *,
        accepted: bool,
        reason: str,
        used: Sequence[AlignedFace] = (),
        replaced: bool = False,
        sequence: int = 0,
    ) -> face_pb2.TrackResult:
        scores = [f.quality.score for f in used]
        quality = face_pb2.TrackQuality(
            mean_used=float(np.mean(scores)) if scores else 0.0,
            min_used=min(scores) if scores else 0.0,
            max_all=track.best_seen,
            mean_all=track.quality_sum / track.with_face if track.with_face else 0.0,
        )
        return face_pb2.TrackResult(
            track_id=track.track_id,
            person_id=track.person_id,
            accepted=accepted,
            reason=reason,
            frames_received=track.received,
            frames_with_face=track.with_face,
            frames_used=len(used),
            quality=quality,
            replaced=replaced,
            sequence=sequence,
            model=model_ref(self._rt.binding),
        )

    def _progress(self, track: OpenTrack) -> face_pb2.TrackProgress:
        return face_pb2.TrackProgress(
            track_id=track.track_id,
            frames_received=track.received,
            frames_with_face=track.with_face,
            tracks_done=self.tracks_done,
            frames_total=self.frames_total,
        )


def _continuing(detections: list[FaceDetection], previous: np.ndarray | None) -> FaceDetection:
    """The detection that continues the track: best overlap with the last pick, else the largest."""
    if previous is not None:
        overlaps = [_iou(d.box, previous) for d in detections]
        best = int(np.argmax(overlaps))
        if overlaps[best] > 0.1:
            return detections[best]
    return max(detections, key=lambda d: d.width * d.height)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _rejection(track: OpenTrack, usable: int, options: TrackOptions) -> str:
    if track.received == 0:
        return "the track has no frames"
    if track.with_face == 0:
        unread = f" ({track.unreadable} could not be read)" if track.unreadable else ""
        return f"no face found in any of its {track.received} frames{unread}"
    return (
        f"{usable} usable frame(s) with quality ≥ {options.min_quality:g} "
        f"(best {track.best_seen:.2f}); at least {options.min_frames} needed"
    )


def _png(chip: np.ndarray) -> bytes:
    from PIL import Image  # the serve extra's image library; imported here to keep the module light

    buffer = io.BytesIO()
    Image.fromarray(chip).save(buffer, format="PNG")
    return buffer.getvalue()
