"""The gateway's audio pipeline: decode → resample → VAD (DESIGN §3). No torch here."""

from serving.audio.decode import PCM_FORMATS, DecodedAudio, decode_encoded, decode_pcm
from serving.audio.pipeline import AudioLimits, AudioPipeline, PreparedAudio, decode_request
from serving.audio.resample import resample
from serving.audio.vad import SileroVad, VadParams, segments_from_probabilities, trim_to_speech

__all__ = [
    "PCM_FORMATS",
    "AudioLimits",
    "AudioPipeline",
    "DecodedAudio",
    "PreparedAudio",
    "SileroVad",
    "VadParams",
    "decode_encoded",
    "decode_pcm",
    "decode_request",
    "resample",
    "segments_from_probabilities",
    "trim_to_speech",
]
