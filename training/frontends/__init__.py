"""Waveform front ends that live inside exported graphs (DESIGN §2: one implementation each)."""

from training.frontends.mel import MelSpectrogram, slaney_mel_filterbank

__all__ = ["MelSpectrogram", "slaney_mel_filterbank"]
