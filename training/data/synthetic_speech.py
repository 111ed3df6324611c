"""A deterministic multi-voice speech corpus made offline with espeak-ng (DESIGN §4).

A pseudo-speaker is an espeak-ng language voice × voice variant (formants, pitch range, voicing,
klatt source…) × a pitch band and a speaking rate. Sentences are random sequences of common
English words drawn from a seeded RNG; other-language voices read them with their own
phonology, which is one more thing that tells speakers apart. Every random choice is derived
from (seed, speaker index, utterance index), so a build is byte-for-byte reproducible and any
part of it can be rebuilt on its own.

Speaker index k always names the same voice, variant and pitch band whatever the seed (the seed
only picks the fine pitch, rate, word gap and sentences), so disjoint index ranges are disjoint
speakers: training corpora start at 0, dev trials at DEV_SPEAKER_OFFSET. The corpus and dev
trial builders live in training.data.speech_corpus.
"""

from __future__ import annotations

import functools
import math
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from training.data.channel_effects import apply_effect_array, require_tool, write_wav

# Latin-script voices that read English words sensibly (espeak-ng ≥ 1.50 names).
LANGUAGES: tuple[str, ...] = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-029",
    "en-us-nyc",
    "de",
    "nl",
    "sv",
    "da",
    "nb",
    "fr-fr",
    "es",
    "it",
    "pt",
    "pl",
    "cs",
    "fi",
    "ro",
    "hu",
)
# Human-sounding variants with distinct output (checked: no two render the same audio). Left
# out: whisper/croak/robot/announcer voices, and klatt/klatt6/caleb (unvoiced, identical).
VARIANTS: tuple[str, ...] = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "m8",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "klatt2",
    "klatt3",
    "klatt4",
    "klatt5",
    "adam",
    "Alex",
    "Alicia",
    "Andrea",
    "Andy",
    "Annie",
    "aunty",
    "belinda",
    "benjamin",
    "boris",
    "david",
    "ed",
    "edward",
    "Gene",
    "gustave",
    "Henrique",
    "Hugo",
    "iven",
    "Jacky",
    "john",
    "linda",
    "Lee",
    "Marco",
    "Mario",
    "max",
    "Michael",
    "michel",
    "Mike",
    "miguel",
    "norbert",
    "pablo",
    "paul",
    "pedro",
    "quincy",
    "rob",
    "robert",
    "sandro",
    "shelby",
    "steph",
    "travis",
    "victor",
    "zac",
    "anika",
    "grandma",
    "grandpa",
)
# espeak-ng -p (0–99, default 50) band centres; bands are ±PITCH_JITTER wide and disjoint, so
# two speakers with the same voice and variant always differ in pitch band.
PITCH_LEVELS: tuple[int, ...] = (50, 30, 70, 40, 60, 20, 80, 10, 90)
PITCH_JITTER = 4
_GRID_SEED = 0x5EED  # fixed: the speaker grid's order must not depend on a build's seed
DEV_SPEAKER_OFFSET = 1000  # dev trial speakers are indices 1000…; training corpora use 0…
SPEED_RANGE = (140, 195)  # espeak-ng -s, words per minute
DURATION_RANGE = (2.0, 6.0)  # seconds of speech per utterance, after trimming
ESPEAK_PACKAGE = "espeak-ng"

_WORDS = """
time year people way day man thing woman life child world school state family student group
country problem hand part place case week company system program question work government
number night point home water room mother area money story fact month lot right study book
eye job word business issue side kind head house service friend father power hour game line
end member law car city community name president team minute idea kid body information back
parent face others level office door health person art war history party result change
morning reason research girl guy moment air teacher force education foot boy age policy
music market sense nation plan college interest death experience effect class control care
field development role effort rate heart drug show leader light voice wife police mind price
report decision son view relationship town road arm difference value building action model
season society tax director position player record paper space ground form event official
matter center couple site project activity star table need court oil situation cost
industry figure street image phone data picture practice piece land product doctor wall
patient worker news test movie north love support technology step baby computer type
attention film tree source organization hair window evidence population site truth
good new first last long great little own other old big high different small large next
early young important few public bad same able green blue red quiet warm cold bright
dark happy simple strong clear open full close real free easy hard late ready black white
say make go know take see come think look want give use find tell ask seem feel try leave
call keep let begin help talk turn start show hear play run move like live believe hold
bring write stand lose pay meet include continue learn lead understand watch follow stop
create speak read allow grow offer remember consider appear buy wait serve die send expect
build stay fall cut reach kill remain suggest raise pass sell require decide return explain
hope carry break receive agree walk open paint travel sing dance cook clean drive sleep
very often always never today tomorrow together again almost quickly slowly maybe perhaps
river mountain garden ocean island forest summer winter spring autumn evening weather
kitchen window letter bottle pencil orange yellow purple silver golden coffee bread apple
"""


@functools.cache
def word_list() -> tuple[str, ...]:
    """The built-in vocabulary (a few hundred common English words, deduplicated, in order)."""
    return tuple(dict.fromkeys(_WORDS.split()))


@dataclass(frozen=True)
class SpeakerSpec:
    """One pseudo-speaker: espeak-ng voice ``language+variant`` at a pitch, rate and word gap.

    pitch: espeak-ng -p (0–99); speed: -s (words per minute); word_gap: -g (units of 10 ms).
    """

    id: str
    language: str
    variant: str
    pitch: int
    speed: int
    word_gap: int

    @property
    def voice(self) -> str:
        """The espeak-ng ``-v`` argument."""
        return f"{self.language}+{self.variant}"

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "voice": self.voice}


def max_speakers() -> int:
    """How many distinct speakers ``enumerate_speakers`` can produce."""
    return len(LANGUAGES) * len(VARIANTS) * len(PITCH_LEVELS)


def enumerate_speakers(n: int, seed: int, start: int = 0) -> list[SpeakerSpec]:
    """Speakers ``start … start+n-1`` of the seed's enumeration (distinct, deterministic).

    The enumeration varies variant and language first — the first len(VARIANTS) speakers all
    have different variants, and the first len(VARIANTS)·len(LANGUAGES) different
    (variant, language) pairs — and only then reuses pairs in another pitch band. The grid
    order does not depend on ``seed`` (only the jitter inside a pitch band, the rate and the
    word gap do), so disjoint index ranges are disjoint speakers for any seeds.
    """
    if n < 0 or start < 0 or start + n > max_speakers():
        raise ValueError(f"can enumerate at most {max_speakers()} speakers, asked for {start}…{start + n - 1}")
    order = np.random.default_rng(_GRID_SEED)
    variants = [VARIANTS[i] for i in order.permutation(len(VARIANTS))]
    languages = [LANGUAGES[i] for i in order.permutation(len(LANGUAGES))]
    n_var, n_lang = len(variants), len(languages)
    specs = []
    for k in range(start, start + n):
        tier, within = divmod(k, n_var * n_lang)
        q, r = divmod(within, n_var)
        # (q, r) ↦ (variant r, language (q+r) mod L) is one-to-one within a tier.
        rng = np.random.default_rng(np.random.SeedSequence([seed, 1, k]))
        pitch = PITCH_LEVELS[tier] + int(rng.integers(-PITCH_JITTER, PITCH_JITTER + 1))
        specs.append(
            SpeakerSpec(
                id=f"spk{k:04d}",
                language=languages[(q + r) % n_lang],
                variant=variants[r],
                pitch=pitch,
                speed=int(rng.integers(SPEED_RANGE[0], SPEED_RANGE[1] + 1)),
                word_gap=int(rng.integers(0, 4)),
            )
        )
    return specs


def make_sentence(rng: np.random.Generator, n_words: int) -> str:
    """A random sentence of ``n_words`` words from ``word_list()``, with an occasional comma."""
    words = list(rng.choice(word_list(), size=max(1, n_words)))
    for i in range(3, len(words) - 2):
        if rng.random() < 0.08:  # commas give espeak-ng phrase breaks, i.e. varied prosody
            words[i] += ","
    return " ".join(words).capitalize() + "."


def _parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """int16 mono WAV bytes as streamed by ``espeak-ng --stdout`` (size fields are bogus)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise RuntimeError("espeak-ng did not produce WAV output")
    pos, rate = 12, None
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if chunk == b"fmt ":
            rate = int.from_bytes(data[pos + 12 : pos + 16], "little")
        elif chunk == b"data":
            body = data[pos + 8 :]
            body = body[: len(body) // 2 * 2]
            if rate is None:
                raise RuntimeError("espeak-ng WAV output has no fmt chunk")
            return np.frombuffer(body, dtype="<i2").astype(np.float64) / 32768.0, rate
        pos += 8 + size
    raise RuntimeError("espeak-ng WAV output has no data chunk")


def _resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return x
    from scipy.signal import resample_poly

    g = math.gcd(rate_in, rate_out)
    return resample_poly(x, rate_out // g, rate_in // g)


def trim_silence(x: np.ndarray, sample_rate: int, floor_db: float = -40.0, margin_s: float = 0.05) -> np.ndarray:
    """Drop leading/trailing 10 ms frames quieter than ``floor_db`` below the loudest frame."""
    frame = max(1, sample_rate // 100)
    n = x.size // frame
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    active = np.flatnonzero(rms > rms.max() * 10.0 ** (floor_db / 20.0))
    if active.size == 0:
        return x[:0]
    margin = int(margin_s * sample_rate)
    return x[max(0, active[0] * frame - margin) : min(x.size, (active[-1] + 1) * frame + margin)]


def synthesize_array(
    spec: SpeakerSpec, text: str, sample_rate: int = 16000, pitch: int | None = None, speed: int | None = None
) -> np.ndarray:
    """Speak ``text`` in ``spec``'s voice: mono float64 [samples] at ``sample_rate``.

    Leading/trailing silence is trimmed and the peak normalised to 0.5 (−6 dBFS), leaving
    headroom for channel effects. ``pitch``/``speed`` override the spec's (per-utterance
    variation).
    """
    espeak = require_tool("espeak-ng", ESPEAK_PACKAGE)
    cmd = [
        espeak,
        "-v",
        spec.voice,
        "-p",
        str(spec.pitch if pitch is None else pitch),
        "-s",
        str(spec.speed if speed is None else speed),
        "-g",
        str(spec.word_gap),
        "-z",
        "-b",
        "1",
        "--stdout",
    ]
    # Text goes in on stdin so that it can never be taken for an option.
    proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"espeak-ng failed ({proc.returncode}) for voice {spec.voice}: {proc.stderr.decode(errors='replace')}"
        )
    x, rate = _parse_wav(proc.stdout)
    x = trim_silence(_resample(x, rate, sample_rate), sample_rate)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return x * (0.5 / peak) if peak > 0 else x


def synthesize(spec: SpeakerSpec, text: str, out_path: str | Path, sample_rate: int = 16000) -> Path:
    """Speak ``text`` in ``spec``'s voice into a mono 16-bit WAV at ``out_path``."""
    return write_wav(out_path, synthesize_array(spec, text, sample_rate), sample_rate)


def synthesize_utterance(
    spec: SpeakerSpec, rng: np.random.Generator, sample_rate: int = 16000
) -> tuple[np.ndarray, str]:
    """A random sentence lasting DURATION_RANGE seconds, with small per-utterance pitch and
    rate variation (a person never says two things identically). Returns (audio, text)."""
    lo, hi = DURATION_RANGE
    pitch = int(np.clip(spec.pitch + rng.integers(-2, 3), 0, 99))
    speed = int(round(spec.speed * rng.uniform(0.95, 1.05)))
    target = rng.uniform(lo + 0.5, hi - 1.0)
    n_words = max(3, round(target * speed / 60.0))
    word_seed = int(rng.integers(2**63))
    for _ in range(4):
        text = make_sentence(np.random.default_rng(word_seed), n_words)
        x = synthesize_array(spec, text, sample_rate, pitch=pitch, speed=speed)
        duration = x.size / sample_rate
        if lo <= duration <= hi:
            break
        # Words vary in length; rescale the word count towards the target and try again.
        n_words = max(2, round(n_words * target / max(duration, 0.1)))
    return x[: int(hi * sample_rate)], text


def check_voices(specs: list[SpeakerSpec]) -> None:
    """Raise if a voice or variant used by ``specs`` is not installed.

    espeak-ng silently falls back to its default voice for an unknown variant, which would
    merge speakers without a word, so builders check first.
    """
    espeak = require_tool("espeak-ng", ESPEAK_PACKAGE)
    data_dir = Path(_espeak_version_text().split("Data at:")[-1].strip())
    listing = subprocess.run([espeak, "--voices"], capture_output=True, text=True, check=True)
    languages = {line.split()[1] for line in listing.stdout.splitlines()[1:] if line.split()}
    variants = {p.name for p in (data_dir / "voices" / "!v").glob("*")}
    missing = sorted({s.language for s in specs} - languages) + sorted({s.variant for s in specs} - variants)
    if missing:
        raise RuntimeError(
            f"espeak-ng at {data_dir} lacks the voices/variants {missing}; install a newer `{ESPEAK_PACKAGE}` (≥ 1.50)"
        )


@functools.cache
def _espeak_version_text() -> str:
    espeak = require_tool("espeak-ng", ESPEAK_PACKAGE)
    return subprocess.run([espeak, "--version"], capture_output=True, text=True, check=True).stdout


def espeak_version() -> str:
    """espeak-ng's version line; recorded in build.json because the audio depends on it."""
    return _espeak_version_text().split("Data at:")[0].strip()


def render_utterance(
    spec: SpeakerSpec, seed: int, k: int, j: int, out_path: Path, sample_rate: int, effect: str
) -> tuple[str, float]:
    """Utterance j of speaker index k (seeded by (seed, k, j)) with ``effect``, into out_path.

    Returns (text, duration in seconds).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2, k, j]))
    x, text = synthesize_utterance(spec, rng, sample_rate)
    if effect != "clean":
        x = apply_effect_array(x, sample_rate, effect, seed=int(rng.integers(2**63)))
    write_wav(out_path, x, sample_rate)
    return text, x.size / sample_rate
