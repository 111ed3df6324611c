"""torch → ONNX, parity, model cards, calibration and the Triton model repository (DESIGN §2, §5).

Export and serving meet only through files: what this package writes under ``models/`` is
everything the gateway knows about a model.
"""
