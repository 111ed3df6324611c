"""Inference backends (one interface: ``embed(model, inputs) -> ndarray``) and micro-batching."""
