"""White-box adversarial attacks on an embedding + cosine-scoring speaker verifier (METHODS §3).

The attacked model is any ``waveform [T] → embedding [D]`` torch callable. For a served model
that is its torch twin: the project's own modules (``training.models.ge2e``, ``.campplus``)
holding the served weights (``export.importers.*.load_pretrained``), not a graph rebuilt from the
ONNX file with onnx2torch. Those modules are parity-checked against the exported ONNX graphs at
export (the model cards record it), so an attack on them is an attack on what is served; and they
are differentiable end to end through the front end (log-mel / Kaldi fbank), so the perturbation
lives on the waveform the gateway receives, where onnx2torch's converted STFT/fbank ops are not
guaranteed to carry gradients. This package never imports export/ (the layering contract): the
caller loads the twin and hands it in.
"""
