"""Inference backends (one interface: ``embed(model, inputs) -> ndarray``) and micro-batching.

``onnxruntime_backend`` runs models inside the gateway (the default); ``triton_backend`` sends them
to a Triton Inference Server over gRPC (``[speaker] backend = "triton"``, the ``triton`` extra).
"""
