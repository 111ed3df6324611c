"""What export, training and serving agree on (DESIGN §1), importable without torch, grpc or
onnxruntime: the typed model card and its JSON Schema, atomic file writes, waveform batching with
lengths, the trial-list type and the landmark-model ``.npz`` format. Imports nothing above it."""
